"""dvc.yaml lists the code each stage runs: a stage whose module imports a vietlegal module that is not among its
deps would keep a stale output after that module changes (`dvc repro` would say "didn't change").

Two modules are deliberately no dep: config.py (it only types and checks params; the values come from
params.yaml, which sets every key, checked below, and DVC tracks them as params) and errors.py (exception
classes). Package __init__ files run on import but hold no stage logic, so they are not followed."""
from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from vietlegal.cli import COMMANDS
from vietlegal.config import SECTIONS

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
NOT_DEPS = {"src/vietlegal/config.py", "src/vietlegal/errors.py"}
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


def code_of(module: str) -> set[str]:
    """Every file of the package the module runs, following imports."""
    seen, todo = set(), [module]
    while todo:
        name = todo.pop()
        path = module_file(name)
        if name in seen or path is None:
            continue
        seen.add(name)
        todo += imported(path)
    return {module_file(name).relative_to(ROOT).as_posix() for name in seen}


def covered(path: str, deps: list[str]) -> bool:
    return any(path == d or path.startswith(d.rstrip("/") + "/") for d in deps)


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_every_module_a_stage_runs_is_among_its_deps(stage):
    spec = STAGES[stage]
    module = COMMANDS[spec["cmd"].split()[1]][0]
    missing = sorted(p for p in code_of(module) - NOT_DEPS if not covered(p, spec["deps"]))
    assert not missing, f"dvc.yaml stage {stage!r} runs {missing} but does not list them as deps"


@pytest.mark.parametrize("params_file", ["params.yaml", "recipes/llama-3.1-8b-h200.yaml"])
def test_params_set_every_key_so_config_defaults_never_reach_an_output(params_file):
    params = yaml.safe_load((ROOT / params_file).read_text(encoding="utf-8"))
    for section, cls in SECTIONS.items():
        unset = {f.name for f in dataclasses.fields(cls)} - set(params.get(section) or {})
        assert not unset, f"{params_file}: section {section!r} leaves {sorted(unset)} to config.py's defaults"
