"""Cut OpenAI's published OpenAPI file down to what this server implements, for the contract tests.

    python tests/serve/openai_spec/extract.py /path/to/openai-openapi.yaml

writes tests/serve/openai_spec/openapi.yaml: the file's `openapi` and `info` (its MIT licence), the operations
listed in OPERATIONS, and every schema they reach through `$ref`, unchanged. The source is OpenAI's own file
(github.com/openai/openai-openapi, MIT); the project keeps a copy in shared/openai-openapi.yaml.
"""
from __future__ import annotations

import sys
from pathlib import Path

import yaml

OUT = Path(__file__).with_name("openapi.yaml")
OPERATIONS = {"/chat/completions": ("post",), "/completions": ("post",), "/models": ("get",),
              "/models/{model}": ("get",)}


def refs(node, found: set[str]) -> None:
    if isinstance(node, dict):
        ref = node.get("$ref")
        if isinstance(ref, str) and ref.startswith("#/components/"):
            found.add(ref)
        for value in node.values():
            refs(value, found)
    elif isinstance(node, list):
        for value in node:
            refs(value, found)


def extract(spec: dict) -> dict:
    paths = {path: {verb: spec["paths"][path][verb] for verb in verbs} for path, verbs in OPERATIONS.items()}
    out = {"openapi": spec["openapi"], "info": spec["info"], "servers": spec.get("servers", []),
           "security": spec.get("security", []), "paths": paths, "components": {}}
    todo: set[str] = set()
    refs(paths, todo)
    done: set[str] = set()
    while todo:
        ref = todo.pop()
        if ref in done:
            continue
        done.add(ref)
        _, _, kind, name = ref.split("/", 3)
        node = spec["components"][kind][name]
        out["components"].setdefault(kind, {})[name] = node
        refs(node, todo)
    if "securitySchemes" in spec.get("components", {}):
        out["components"]["securitySchemes"] = spec["components"]["securitySchemes"]
    for kind in out["components"].values():  # a stable file: sorted by name
        items = sorted(kind.items())
        kind.clear()
        kind.update(items)
    return out


def main(source: str) -> None:
    spec = yaml.load(Path(source).read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    text = yaml.dump(extract(spec), sort_keys=False, allow_unicode=True, width=120,
                     Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper))
    OUT.write_text("# Extracted from OpenAI's OpenAPI file (MIT licence, see info.license) by tests/serve/openai_spec/"
                   "extract.py;\n# regenerate with it, never edit by hand.\n" + text, encoding="utf-8")
    print(f"{OUT}: {len(text) // 1024} KiB")


if __name__ == "__main__":
    main(sys.argv[1])
