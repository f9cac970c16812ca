"""OpenAI's published OpenAPI file, cut to the operations this server implements (openapi.yaml, written by
extract.py), and what the contract tests do with it (spec.py)."""
