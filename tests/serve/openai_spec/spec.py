"""OpenAI's spec as the tests use it: response validators, and the request schemas for generation.

The file is OpenAPI 3.1 but still marks some fields `nullable: true` (3.0's word); `as_json_schema` turns those
into JSON Schema's `null` type so that a standard validator (jsonschema, draft 2020-12) reads the file as its
authors mean it.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import yaml
from jsonschema import Draft202012Validator
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

FILE = Path(__file__).with_name("openapi.yaml")
URI = "urn:openai-openapi"


@functools.cache
def raw() -> dict:
    return yaml.load(FILE.read_text(encoding="utf-8"), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def as_json_schema(node):
    """`nullable: true` -> the null type (or an anyOf with it), everywhere; the rest unchanged."""
    if isinstance(node, list):
        return [as_json_schema(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: as_json_schema(value) for key, value in node.items() if key != "nullable"}
    if not node.get("nullable"):
        return out
    if isinstance(out.get("type"), str):
        out["type"] = [out["type"], "null"]
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
        return out
    return {"anyOf": [out, {"type": "null"}]}


@functools.cache
def _registry() -> Registry:
    return Registry().with_resource(URI, Resource(as_json_schema(raw()), specification=DRAFT202012))


@functools.cache
def validator(name: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": f"{URI}#/components/schemas/{name}"}, registry=_registry())


def problems(name: str, instance) -> list[str]:
    """Where `instance` breaks the spec's schema `name` (empty: it conforms)."""
    return [f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message[:300]}"
            for e in validator(name).iter_errors(instance)]


def property_names() -> set[str]:
    """Every property name the spec defines anywhere in the operations kept (a field it knows)."""
    found: set[str] = set()

    def walk(node):
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict):
                found.update(node["properties"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(raw()["components"])
    return found


def closed() -> dict:
    """The spec with every request object closed (`additionalProperties: false` where it says nothing), so that
    generated bodies carry only the fields it defines and reach the server's handling of each; the top request
    schemas' `allOf` is merged into one object first (closing each part alone would admit nothing)."""
    spec = as_json_schema(copy.deepcopy(raw()))
    schemas = spec["components"]["schemas"]
    for name in ("CreateChatCompletionRequest", "CreateCompletionRequest"):
        schemas[name] = _merged(schemas[name], schemas)

    def close(node):
        if isinstance(node, dict):
            if isinstance(node.get("properties"), dict) and "additionalProperties" not in node:
                node["additionalProperties"] = False
            for value in node.values():
                close(value)
        elif isinstance(node, list):
            for value in node:
                close(value)

    close(schemas)  # only generation reads this copy; responses are checked against the file as published
    return spec


def _merged(schema: dict, schemas: dict) -> dict:
    """allOf of object schemas (through $refs) -> one object schema with all their properties and requirements."""
    if "$ref" in schema:
        return _merged(schemas[schema["$ref"].rsplit("/", 1)[1]], schemas)
    if "allOf" not in schema:
        return copy.deepcopy(schema)
    out = {key: value for key, value in schema.items() if key != "allOf"}
    out.setdefault("type", "object")
    properties, required = dict(out.get("properties", {})), list(out.get("required", []))
    for part in schema["allOf"]:
        part = _merged(part, schemas)
        properties.update(part.get("properties", {}))
        required += [r for r in part.get("required", []) if r not in required]
    out["properties"], out["required"] = properties, required
    return out


# What docs/serving.md refuses by design (400 `unsupported_parameter` / `unsupported_value`): no tools or functions,
# text only, no logit_bias.
REFUSED_FIELDS = ("tools", "functions", "tool_choice", "function_call", "audio", "prediction", "web_search_options",
                  "modalities", "logit_bias")
SPOKEN_ROLES = ("Developer", "System", "User", "Assistant")


def supported() -> dict:
    """`closed()` less what the server refuses by design (REFUSED_FIELDS, tool and function messages, image, audio,
    file and refusal parts, an assistant turn without text): the requests it claims to answer."""
    spec = closed()
    schemas = spec["components"]["schemas"]
    request = schemas["CreateChatCompletionRequest"]
    for name in REFUSED_FIELDS:
        request["properties"].pop(name, None)
    schemas["ChatCompletionRequestMessage"]["oneOf"] = [
        {"$ref": f"#/components/schemas/ChatCompletionRequest{role}Message"} for role in SPOKEN_ROLES]
    text_part = {"$ref": "#/components/schemas/ChatCompletionRequestMessageContentPartText"}
    for name in ("ChatCompletionRequestUserMessageContentPart", "ChatCompletionRequestAssistantMessageContentPart"):
        schemas[name] = {"oneOf": [text_part]}
    assistant = schemas["ChatCompletionRequestAssistantMessage"]
    for name in ("audio", "tool_calls", "function_call"):
        assistant["properties"].pop(name)
    assistant["properties"]["content"] = assistant["properties"]["content"]["anyOf"][0]  # text, never null
    assistant["required"] = sorted({*assistant.get("required", []), "content"})
    return spec
