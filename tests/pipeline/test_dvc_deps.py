"""dvc.yaml lists exactly the code each stage runs: every vietlegal module its import closure reaches is a dep
(else a changed module leaves a stale output that `dvc repro` calls unchanged), and every code dep is in that
closure (else editing an unrelated module reruns the stage, and what follows it, for nothing). The closure is
computed by scripts/dvc_deps.py, which also writes the deps (`python scripts/dvc_deps.py --write`).

A folder is listed only when the stage runs every module in it. Three modules are deliberately no dep:
params.py (it types and checks params; the values come from params.yaml, which sets every key, checked below,
and DVC tracks them as params), errors.py (exception classes) and paths.py (a changed path changes dvc.yaml
itself, which tests/pipeline/test_paths.py holds to it). Package __init__ files hold only a docstring (checked
below), so they are not deps either. Imports inside functions count: a lazy import still runs."""
from __future__ import annotations

import ast
import dataclasses
import importlib.util
from pathlib import Path

import pytest
import yaml

from vietlegal.params import SECTIONS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "vietlegal"
_spec = importlib.util.spec_from_file_location("dvc_deps", ROOT / "scripts" / "dvc_deps.py")
dvc_deps = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(dvc_deps)
closure, expand, expected_deps, listed_code, stage_module = (dvc_deps.closure, dvc_deps.expand, dvc_deps.expected_deps,
                                                             dvc_deps.listed_code, dvc_deps.stage_module)
STAGES = dvc_deps.stages()


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


def test_the_writer_puts_exactly_the_computed_deps_and_keeps_the_rest(tmp_path):
    """--write on a dvc.yaml with one stage's code deps scrambled restores them, comments and data deps kept."""
    text = dvc_deps.DVC_YAML.read_text(encoding="utf-8")
    scrambled = text.replace("      - src/vietlegal/metrics/likelihood.py\n", "      - src/vietlegal/rag/bm25.py\n", 1)
    assert scrambled != text
    wanted = {name: expected_deps(stage_module(spec)) for name, spec in STAGES.items()}
    written = dvc_deps.rewrite(scrambled, wanted)
    assert yaml.safe_load(written) == yaml.safe_load(text)
    assert [line for line in written.splitlines() if not line.lstrip().startswith("- src/")] == \
        [line for line in text.splitlines() if not line.lstrip().startswith("- src/")]
