"""dvc.yaml lists exactly the code each stage runs: every vietlegal module its import closure reaches is a dep
(else a changed module leaves a stale output that `dvc repro` calls unchanged), and every code dep is in that
closure (else editing an unrelated module reruns the stage, and what follows it, for nothing).

A folder is listed only when the stage runs every module in it. Three modules are deliberately no dep:
params.py (it types and checks params; the values come from params.yaml, which sets every key, checked below,
and DVC tracks them as params), errors.py (exception classes) and paths.py (a changed path changes dvc.yaml
itself, which tests/pipeline/test_paths.py holds to it). Package __init__ files hold only a docstring (checked
below), so they are not deps either. Imports inside functions count: a lazy import still runs."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from vietlegal.params import SECTIONS

ROOT = Path(__file__).resolve().parents[2]
SRC = ROOT / "src"
PACKAGE = SRC / "vietlegal"
NOT_DEPS = {"src/vietlegal/params.py", "src/vietlegal/errors.py", "src/vietlegal/paths.py"}
RESOURCES = "src/vietlegal/resources"  # data files the tiny model and the chat template are built from
NEEDS_RESOURCES = {"src/vietlegal/model/tiny.py"}
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]


def module_file(module: str) -> Path | None:
    base = SRC / module.replace(".", "/")
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.exists():
            return path
    return None


def imported(path: Path) -> set[str]:
    """vietlegal modules `path` imports (`from pkg import mod` names the module, not the package)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("vietlegal")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("vietlegal"):
            submodules = {f"{node.module}.{a.name}" for a in node.names if module_file(f"{node.module}.{a.name}")}
            found |= submodules if len(submodules) == len(node.names) else submodules | {node.module}
    return found


def closure(module: str) -> set[str]:
    """Every file of the package the module runs (following imports), as dvc.yaml would name it."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo += imported(path)
    files = {module_file(name).relative_to(ROOT).as_posix() for name in seen}
    files = {f for f in files if f not in NOT_DEPS and not f.endswith("/__init__.py")}
    return files | ({RESOURCES} if files & NEEDS_RESOURCES else set())


def stage_module(spec: dict) -> str:
    return "vietlegal.stages." + spec["cmd"].split()[1].replace("-", "_")


def listed_code(spec: dict) -> list[str]:
    return [d for d in spec["deps"] if d.startswith("src/")]


def expand(dep: str) -> set[str]:
    """A listed folder stands for every module in it (the resources folder for itself)."""
    if dep == RESOURCES or not (ROOT / dep).is_dir():
        return {dep}
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / dep).rglob("*.py") if p.name != "__init__.py"}


def expected_deps(module: str) -> list[str]:
    """The closure with a folder named where the stage runs all of it: what dvc.yaml should list."""
    files = closure(module)
    folders = sorted({str(Path(f).parent) for f in files if f != RESOURCES and Path(f).parent != Path("src/vietlegal")})
    whole = [d for d in folders if expand(d) <= files and not any(d.startswith(o + "/") for o in folders if expand(o) <= files)]
    rest = sorted(f for f in files if not any(f.startswith(d + "/") for d in whole))
    return whole + rest


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_runs_is_among_its_deps(stage):
    spec = STAGES[stage]
    listed = set().union(*(expand(d) for d in listed_code(spec)))
    missing = sorted(closure(stage_module(spec)) - listed)
    assert not missing, f"dvc.yaml stage {stage!r} runs {missing} but does not list them as deps"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_code_dep_of_a_stage_is_code_it_runs(stage):
    spec = STAGES[stage]
    runs = closure(stage_module(spec))
    unused = sorted(d for d in listed_code(spec) if not expand(d) <= runs)
    assert not unused, (f"dvc.yaml stage {stage!r} lists {unused}, which it does not run (or not all of it): an edit "
                        f"there would rerun it for nothing; its deps are {expected_deps(stage_module(spec))}")


def test_the_deps_check_fails_both_ways():
    """The two checks above catch a dropped dep and an extra one (on the perplexity stage, as dvc.yaml has it)."""
    spec = STAGES["perplexity"]
    runs = closure(stage_module(spec))
    dropped = [d for d in listed_code(spec) if d != "src/vietlegal/model/chat.py"]
    assert runs - set().union(*(expand(d) for d in dropped)) == {"src/vietlegal/model/chat.py"}
    extra = listed_code(spec) + ["src/vietlegal/rag/bm25.py"]
    assert [d for d in extra if not expand(d) <= runs] == ["src/vietlegal/rag/bm25.py"]


def test_package_init_files_hold_no_code():
    """What the deps check relies on: importing a package runs nothing but its docstring."""
    for init in PACKAGE.rglob("__init__.py"):
        body = ast.parse(init.read_text(encoding="utf-8")).body
        code = [n for n in body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
        if init.parent == PACKAGE:  # the package's own version string
            code = [n for n in code if not (isinstance(n, ast.Assign) and n.targets[0].id == "__version__")]
        assert not code, f"{init.relative_to(ROOT)} runs code on import; move it into a module"


@pytest.mark.parametrize("params_file", ["params.yaml", "recipes/llama-3.1-8b-h200.yaml"])
def test_params_set_every_key_so_config_defaults_never_reach_an_output(params_file):
    params = yaml.safe_load((ROOT / params_file).read_text(encoding="utf-8"))
    for section, cls in SECTIONS.items():
        unset = {f.name for f in dataclasses.fields(cls)} - set(params.get(section) or {})
        assert not unset, f"{params_file}: section {section!r} leaves {sorted(unset)} to params.py's defaults"


if __name__ == "__main__":  # prints what dvc.yaml should list, stage by stage
    for name, spec in STAGES.items():
        print(name, expected_deps(stage_module(spec)))
