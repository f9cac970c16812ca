"""dvc.yaml's code deps, computed: each stage's deps are exactly its module's import closure.

    python scripts/dvc_deps.py           print, per stage, the code deps dvc.yaml should list (exit 1 if it differs)
    python scripts/dvc_deps.py --write   rewrite the `src/...` lines of every stage's deps in dvc.yaml to those

A stage runs `vietlegal.stages.<name>`; every vietlegal module its imports reach (lazy ones too: they still
run) is a dep, so an edit there reruns the stage, and nothing else is, so an unrelated edit does not. A folder
is listed where the stage runs every module in it. params.py, errors.py and paths.py are never deps (params
are tracked as params; a changed path changes dvc.yaml itself); package __init__ files hold only a docstring.
The model resources (tokenizer, chat template) are a dep of every stage that runs model/tiny.py.

The rewrite keeps everything else of dvc.yaml as it is (comments, data deps, params, outs): only the code lines
of each `deps:` list change, the stage's own module first. tests/pipeline/test_dvc_deps.py checks the file
against the same computation.
"""
from __future__ import annotations

import argparse
import ast
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src"
DVC_YAML = ROOT / "dvc.yaml"
NOT_DEPS = {"src/vietlegal/params.py", "src/vietlegal/errors.py", "src/vietlegal/paths.py"}
RESOURCES = "src/vietlegal/resources"  # data files the tiny model and the chat template are built from
NEEDS_RESOURCES = {"src/vietlegal/model/tiny.py"}


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


def stages() -> dict:
    return yaml.safe_load(DVC_YAML.read_text(encoding="utf-8"))["stages"]


def stage_module(spec: dict) -> str:
    return "vietlegal.stages." + spec["cmd"].split()[1].replace("-", "_")


def expand(dep: str) -> set[str]:
    """A listed folder stands for every module in it (the resources folder for itself)."""
    if dep == RESOURCES or not (ROOT / dep).is_dir():
        return {dep}
    return {p.relative_to(ROOT).as_posix() for p in (ROOT / dep).rglob("*.py") if p.name != "__init__.py"}


def expected_deps(module: str) -> list[str]:
    """The closure with a folder named where the stage runs all of it, the stage's module first."""
    files = closure(module)
    folders = sorted({str(Path(f).parent) for f in files if f != RESOURCES and Path(f).parent != Path("src/vietlegal")})
    whole = [d for d in folders if expand(d) <= files and not any(d.startswith(o + "/") for o in folders if expand(o) <= files)]
    rest = sorted(f for f in files if not any(f.startswith(d + "/") for d in whole))
    own = module_file(module).relative_to(ROOT).as_posix()
    return [own] + [d for d in whole + rest if d != own]


def listed_code(spec: dict) -> list[str]:
    return [d for d in spec.get("deps", []) if d.startswith("src/")]


def rewrite(text: str, wanted: dict[str, list[str]]) -> str:
    """dvc.yaml's text with each stage's `- src/...` dep lines replaced by `wanted[stage]`, all else kept."""
    out, stage, in_deps = [], None, False
    for line in text.splitlines(keepends=True):
        head = re.match(r"^  ([\w-]+):\s*$", line)
        if head:
            stage, in_deps = head.group(1), False
        elif re.match(r"^    deps:\s*$", line):
            in_deps = True
            out.append(line)
            out.extend(f"      - {dep}\n" for dep in wanted.get(stage, []))
            continue
        elif in_deps and not re.match(r"^      (- |#)", line):
            in_deps = False
        if in_deps and re.match(r"^      - src/", line):
            continue
        out.append(line)
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help="rewrite the code deps in dvc.yaml")
    args = ap.parse_args(argv)
    wanted = {name: expected_deps(stage_module(spec)) for name, spec in stages().items()}
    if args.write:
        DVC_YAML.write_text(rewrite(DVC_YAML.read_text(encoding="utf-8"), wanted), encoding="utf-8")
        print(f"dvc.yaml: code deps of {len(wanted)} stages written")
        return 0
    differ = [name for name, spec in stages().items() if set(listed_code(spec)) != set(wanted[name])]
    for name, deps in wanted.items():
        print(f"{name}{' (differs from dvc.yaml)' if name in differ else ''}:\n" + "".join(f"  - {d}\n" for d in deps), end="")
    if differ:
        print(f"dvc.yaml differs for {', '.join(differ)}: run `python scripts/dvc_deps.py --write`", file=sys.stderr)
    return 1 if differ else 0


if __name__ == "__main__":
    sys.exit(main())
