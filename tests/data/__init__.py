"""Tests, laid out like the package they test (pipeline/: real dvc, S3, Docker lint, deps)."""
