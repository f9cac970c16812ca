"""What a missing manifest says: the fix for the directory at hand, not a generic one."""
from __future__ import annotations

import pytest

from vietlegal.errors import AdapterIncomplete
from vietlegal.model.adapter import read_manifest


def test_a_directory_without_an_adapter_says_how_to_get_one(tmp_path):
    with pytest.raises(AdapterIncomplete, match=r"vietlegal\.json: not found\. Train one with `dvc repro train`.*dvc pull"):
        read_manifest(tmp_path)


def test_align_with_nothing_to_train_is_named_with_its_reason(tmp_path):
    (tmp_path / "NOT_TRAINED.txt").write_text("No aligned adapter: no preference pairs in data/processed.\n",
                                              encoding="utf-8")
    with pytest.raises(AdapterIncomplete, match=r"no adapter was trained here: No aligned adapter: no preference pairs"
                                                r".*dvc repro align"):
        read_manifest(tmp_path)
