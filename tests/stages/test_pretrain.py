"""The pretrain stage: a base the rest of the pipeline loads by its directory, its held-out articles never trained on."""
from __future__ import annotations

import json

import pytest

from vietlegal import jsonl
from vietlegal.errors import BaseModelError
from vietlegal.model import base as base_model
from vietlegal.model import tiny
from vietlegal.params import PretrainConfig
from vietlegal.stages import pretrain

SMALL = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=2,
             seq_length=32, batch_size=2, steps=3, warmup_steps=1, eval_every=2)


def corpus(tmp_path, n=12, held=("d3", "d7")):
    rows = [{"id": f"d{k}", "instrument": {"name": "Bộ luật Dân sự", "number": "91/2015/QH13", "year": 2015},
             "article": k, "title": f"Quy định thứ {k}", "text": f"Người thành niên số {k} có quyền và nghĩa vụ dân sự. " * 4,
             "effective_from": "2017-01-01", "effective_to": None} for k in range(1, n + 1)]
    jsonl.write(tmp_path / "codes.jsonl", rows)
    jsonl.write_json(tmp_path / "articles.json", {"train": [], "val": [held[0]], "test": list(held[1:]), "skipped": {}})
    return tmp_path / "codes.jsonl", tmp_path / "articles.json"


def test_held_out_articles_are_never_training_text(tmp_path):
    train, held = pretrain.texts(*corpus(tmp_path))
    assert len(train) == 10 and len(held) == 2
    assert all("Điều 3." not in t and "Điều 7." not in t for t in train)
    assert held[0].startswith("Bộ luật Dân sự 2015\nĐiều 3. Quy định thứ 3\n")


def test_the_stage_writes_a_base_that_base_model_resolves_by_its_revision(tmp_path):
    codes, articles = corpus(tmp_path)
    out = tmp_path / "pretrained"
    report = pretrain.run(PretrainConfig(out_dir=str(out), **SMALL), codes, articles)
    assert [p["step"] for p in report["curve"]] == [0, 2, 3] and report["tokens_seen"] == 3 * 2 * 32
    assert report["curve"][-1]["eval_perplexity"] < report["curve"][0]["eval_perplexity"]
    resolved = base_model.resolve(str(out))
    assert resolved.revision == report["revision"] == tiny.base_info(out)["revision"]
    config = json.loads((out / "config.json").read_text())
    assert (config["hidden_size"], config["num_hidden_layers"]) == (32, 1)
    tokenizer = base_model.load_tokenizer(resolved)
    assert tokenizer.get_vocab() == tiny.tokenizer().get_vocab() and tokenizer.chat_template == tiny.chat_template()
    with pytest.raises(BaseModelError, match="holds base revision .* not 0123"):
        base_model.resolve(str(out), "0123")  # an adapter trained on another version of the base


def test_the_same_params_give_the_same_weights(tmp_path):
    codes, articles = corpus(tmp_path)
    first = pretrain.run(PretrainConfig(out_dir=str(tmp_path / "a"), **SMALL), codes, articles)
    second = pretrain.run(PretrainConfig(out_dir=str(tmp_path / "b"), **SMALL), codes, articles)
    assert first["revision"] == second["revision"]


def test_off_it_writes_a_note_that_the_base_loader_explains(tmp_path):
    out = tmp_path / "pretrained"
    assert pretrain.run(PretrainConfig(enabled=False, out_dir=str(out)), *corpus(tmp_path)) == {"enabled": False}
    assert [p.name for p in out.iterdir()] == [tiny.BASE_FILE]
    with pytest.raises(BaseModelError, match="holds no model .*pretrain.enabled: true"):
        base_model.resolve(str(out))


def test_a_missing_project_directory_is_not_taken_for_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "models").mkdir()
    with pytest.raises(BaseModelError, match=r"does not exist; `dvc repro`.*`dvc pull models/pretrained`"):
        base_model.resolve("models/pretrained")
    assert base_model.resolve("meta-llama/Llama-3.1-8B-Instruct", "abc").path == "meta-llama/Llama-3.1-8B-Instruct"
