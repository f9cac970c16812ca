"""Paths once: every artifact path lives in vietlegal.paths, dvc.yaml's deps and outs are the files each stage
module says it reads and writes, and no other module spells an artifact path."""
from __future__ import annotations

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import pytest
import yaml

from vietlegal import paths
from vietlegal.params import SECTIONS

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "vietlegal"
STAGES = yaml.safe_load((ROOT / "dvc.yaml").read_text(encoding="utf-8"))["stages"]
PARAMS = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))
ARTIFACT = re.compile(r"^(data|models|metrics|dvclive)/[\w./-]+$")
ALL_PATHS = {v for k, v in vars(paths).items() if k.isupper() and isinstance(v, str)}


def data_paths(spec: dict) -> set[str]:
    """Non-code deps and every out, metric and plot of a dvc.yaml stage."""
    found = {d for d in spec.get("deps", []) if not d.startswith("src/")}
    for kind in ("outs", "metrics", "plots"):
        found |= {next(iter(o)) if isinstance(o, dict) else o for o in spec.get(kind, [])}
    return found


def param_value(key: str):
    section, name = key.split(".")
    return PARAMS[section][name]


def stage_files(stage: str) -> set[str]:
    module = importlib.import_module(f"vietlegal.stages.{stage}")
    files = {v for v in module.FILES.values() if v is not None}
    return files | {param_value(k) for k in getattr(module, "PARAM_FILES", ())}


def covers(a: str, b: str) -> bool:
    return a == b or a.startswith(b + "/") or b.startswith(a + "/")


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_dvc_yaml_deps_and_outs_are_the_files_the_stage_module_names(stage):
    declared, named = data_paths(STAGES[stage]), stage_files(stage)
    not_named = sorted(d for d in declared if not any(covers(d, n) for n in named))
    not_declared = sorted(n for n in named if not any(covers(n, d) for d in declared))
    assert not not_named, f"dvc.yaml stage {stage!r} tracks {not_named}, which vietlegal.stages.{stage} never names"
    assert not not_declared, f"vietlegal.stages.{stage} reads or writes {not_declared}, which dvc.yaml does not track"


@pytest.mark.parametrize("stage", sorted(STAGES))
def test_a_path_taken_from_params_is_a_param_of_the_stage(stage):
    module = importlib.import_module(f"vietlegal.stages.{stage}")
    declared = STAGES[stage].get("params", [])
    for key in getattr(module, "PARAM_FILES", ()):
        assert key in declared or key.split(".")[0] in declared, f"dvc.yaml stage {stage!r} reads {key} but does not declare it"


def test_every_tracked_path_is_in_the_paths_module():
    tracked = set().union(*(data_paths(s) for s in STAGES.values()))
    assert sorted(tracked - ALL_PATHS) == []


def test_path_params_default_to_the_paths_module_and_params_yaml_agrees():
    for section, cls in SECTIONS.items():
        for f in dataclasses.fields(cls):
            if isinstance(f.default, str) and f.default in ALL_PATHS:
                assert PARAMS[section][f.name] == f.default, f"params.yaml {section}.{f.name} != vietlegal.paths"


def test_no_module_but_paths_spells_an_artifact_path():
    found = []
    for path in PACKAGE.rglob("*.py"):
        if path.name == "paths.py" and path.parent == PACKAGE:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        docstrings = {id(n.body[0].value) for n in ast.walk(tree)
                      if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
                      and n.body and isinstance(n.body[0], ast.Expr) and isinstance(n.body[0].value, ast.Constant)}
        found += [f"{path.relative_to(ROOT)}:{n.lineno}: {n.value}" for n in ast.walk(tree)
                  if isinstance(n, ast.Constant) and isinstance(n.value, str) and id(n) not in docstrings
                  and ARTIFACT.match(n.value)]
    assert not found, "artifact paths outside vietlegal/paths.py:\n" + "\n".join(found)
