"""`vietlegal <command>`: one entry point; dvc.yaml calls the stages through it.

By convention, not by a table: `vietlegal <name>` runs `vietlegal.stages.<name>` (a dvc.yaml stage) or else
`vietlegal.commands.<name>` (a tool around the pipeline), with `-` read as `_` (`generate-rag`). Its help line
is the first line of that module's docstring. Modules are imported only when run, so `vietlegal serve` never
imports training code (and a CPU machine never imports unsloth or vllm).

Errors a user can fix (`vietlegal.errors.UserError`) are printed as one line, exit 2; anything else is a bug
and keeps its traceback.
"""
from __future__ import annotations

import ast
import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path

from vietlegal.errors import UserError

PACKAGES = ("vietlegal.stages", "vietlegal.commands")


def module_for(name: str) -> str | None:
    """The module that `vietlegal <name>` runs, or None."""
    module = name.replace("-", "_")
    if not module.isidentifier():
        return None
    for package in PACKAGES:
        if importlib.util.find_spec(f"{package}.{module}") is not None:
            return f"{package}.{module}"
    return None


def commands() -> dict[str, tuple[str, str]]:
    """name -> (module, help line) of every stage and command, read from the sources without importing them."""
    found = {}
    for package in PACKAGES:
        path = importlib.util.find_spec(package).submodule_search_locations
        for info in sorted(pkgutil.iter_modules(path), key=lambda i: i.name):
            module = f"{package}.{info.name}"
            source = Path(importlib.util.find_spec(module).origin).read_text(encoding="utf-8")
            doc = ast.get_docstring(ast.parse(source)) or ""
            found[info.name.replace("_", "-")] = (module, doc.strip().splitlines()[0].rstrip(".") if doc else "")
    return found


def usage() -> str:
    table = commands()
    width = max(map(len, table))
    rows = "\n".join(f"  {name:<{width}}  {help_}" for name, (_, help_) in table.items())
    return f"usage: vietlegal <command> [options]\n\ncommands:\n{rows}\n\n`vietlegal <command> --help` for options."


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    name, rest = argv[0], argv[1:]
    module_name = module_for(name)
    if module_name is None:
        print(f"vietlegal: unknown command {name!r}\n\n{usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(module_name)
    try:
        return module.main(rest) or 0
    except UserError as exc:
        print(f"vietlegal {name}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
