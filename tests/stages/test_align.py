"""Stage align end to end on the real tiny model: generated pairs whose chosen answer cites the right article and
whose rejected one a wrong article; the aligned adapter prefers the right one on held-out questions more often
than the SFT adapter it started from, and ships in the SFT adapter's layout. Without pairs it trains nothing,
says why, and writes the same bytes every time."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import ROOT, conversation
from tests.helpers.preference_pairs import write_preferences
from vietlegal import cli
from vietlegal.errors import AdapterIncomplete
from vietlegal.model.adapter import check_complete, dir_md5, load_adapters, read_manifest

pytestmark = pytest.mark.slow


def project(where: Path, pairs: bool = True, **align) -> Path:
    """A working directory as DVC runs the stage in: params.yaml (the committed align section), prepare's outputs."""
    committed = yaml.safe_load((ROOT / "params.yaml").read_text(encoding="utf-8"))["align"]
    params = {"base": {"model": "vietlegal/tiny-llama", "max_seq_length": 512}, "train": {"cpu_threads": 1},
              "align": {**committed, "held_out_fraction": 0.25, **align}}
    (where / "params.yaml").write_text(yaml.safe_dump(params), encoding="utf-8")
    processed = where / "data" / "processed"
    processed.mkdir(parents=True)
    if pairs:
        write_preferences(processed / "preferences.jsonl")
    else:
        (processed / "preferences.jsonl").write_text("", encoding="utf-8")
    unrelated = conversation("Thủ tục đăng ký kết hôn gồm những gì?", "Theo Điều 18 Luật Hộ tịch 2014, ...")
    (processed / "test.jsonl").write_text(json.dumps({"id": "t", "source": "x:1", "messages": unrelated},
                                                     ensure_ascii=False) + "\n", encoding="utf-8")
    return where


def align(tiny_adapter: Path) -> int:
    return cli.main(["align", "--adapter", str(tiny_adapter)])


def test_aligned_adapter_prefers_the_right_article_on_held_out_questions(tmp_path, monkeypatch, tiny_adapter, capsys):
    monkeypatch.chdir(project(tmp_path))
    assert align(tiny_adapter) == 0

    metrics = json.loads((tmp_path / "metrics" / "align.json").read_text(encoding="utf-8"))
    held = metrics["held_out"]
    assert metrics["trained"] and metrics["pairs"]["held_out"] == held["pairs"] >= 8
    assert metrics["pairs"]["train"] + held["pairs"] == metrics["pairs"]["usable"] == 64
    assert held["aligned"]["preference_accuracy"] > held["sft"]["preference_accuracy"], held
    assert held["accuracy_gain"] > 0 and held["aligned"]["reward_margin"] > 0
    assert held["aligned"]["mean_logp_margin"] > held["sft"]["mean_logp_margin"]
    assert 0 < held["aligned"]["kl_to_reference"] < 1, "moved, but stayed near the SFT adapter"
    assert metrics["train"]["first_step"]["rewards/margins"] == 0 and metrics["train"]["backend"] == "trl"

    aligned = tmp_path / "models" / "aligned"
    manifest, sft = check_complete(aligned), read_manifest(tiny_adapter)  # every file there, as the manifest says
    assert (manifest.base_model, manifest.base_revision) == (sft.base_model, sft.base_revision)
    assert manifest.context == sft.context and manifest.train == sft.train, "the SFT adapter's LoRA, continued"
    assert manifest.align["sft"]["version"] == dir_md5(tiny_adapter) and manifest.align["params"]["beta"] == 0.1
    assert manifest.align["pairs"]["train"] == metrics["pairs"]["train"]
    assert sorted(p.name for p in aligned.iterdir()) == sorted([*manifest.files, "vietlegal.json"])
    assert json.loads((aligned / "adapter_config.json").read_text())["modules_to_save"] is None
    both = load_adapters({"sft": tiny_adapter, "aligned": aligned})  # one base, as serve and evaluate load them
    assert set(both.peft_config) == {"sft", "aligned"}

    curves = tmp_path / "dvclive" / "align" / "plots" / "metrics"
    assert (curves / "reward_margin" / "train.tsv").read_text().splitlines()[0] == "step\ttrain"
    assert "held-out preference accuracy SFT" in capsys.readouterr().err


def test_without_pairs_nothing_is_trained_and_the_outputs_never_change(tmp_path, monkeypatch, tiny_adapter, capsys):
    monkeypatch.chdir(project(tmp_path, pairs=False))
    outputs = ("models/aligned/NOT_TRAINED.txt", "metrics/align.json", "dvclive/align/metrics.json",
               "dvclive/align/plots/metrics/reward_margin/train.tsv")
    assert align(tiny_adapter) == 0
    first = {name: (tmp_path / name).read_bytes() for name in outputs}
    assert align(tiny_adapter) == 0
    assert {name: (tmp_path / name).read_bytes() for name in outputs} == first, "DVC sees the same outputs: a no-op"
    assert [p.name for p in (tmp_path / "models" / "aligned").iterdir()] == ["NOT_TRAINED.txt"]
    with pytest.raises(AdapterIncomplete):
        check_complete(tmp_path / "models" / "aligned")  # nothing a server would load
    metrics = json.loads(first["metrics/align.json"])
    assert metrics["trained"] is False and "no preference pairs" in metrics["reason"]
    assert metrics["held_out"]["sft"] is None and "dvc add data/raw/feedback" in capsys.readouterr().err


def test_disabled_it_trains_nothing_even_with_pairs_and_replaces_a_previous_adapter(tmp_path, monkeypatch, tiny_adapter):
    import shutil

    monkeypatch.chdir(project(tmp_path, enabled=False))
    shutil.copytree(tiny_adapter, tmp_path / "models" / "aligned")  # what an earlier, enabled run left
    assert align(tiny_adapter) == 0
    assert [p.name for p in (tmp_path / "models" / "aligned").iterdir()] == ["NOT_TRAINED.txt"]
    metrics = json.loads((tmp_path / "metrics" / "align.json").read_text(encoding="utf-8"))
    assert metrics["reason"] == "align.enabled is false" and metrics["pairs"]["usable"] == 64


def test_a_bad_pair_stops_with_its_file_and_line(tmp_path, monkeypatch, tiny_adapter, capsys):
    monkeypatch.chdir(project(tmp_path))
    path = tmp_path / "data" / "processed" / "preferences.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    bad = json.loads(lines[2])
    bad["chosen"] = bad["prompt"] + bad["chosen"]  # the whole conversation in chosen (trl#1541)
    path.write_text("\n".join(lines[:2] + [json.dumps(bad, ensure_ascii=False)] + lines[3:]) + "\n", encoding="utf-8")
    assert align(tiny_adapter) == 2
    err = capsys.readouterr().err
    assert "preferences.jsonl:3: 'chosen' must be one assistant message" in err
    assert not (tmp_path / "models" / "aligned").exists()


def test_unsloth_is_imported_before_transformers_trl_and_peft(tmp_path, tiny_adapter):
    """On a GPU the stage reaches the backend (which imports unsloth) before anything imports transformers."""
    fake = tmp_path / "unsloth"
    fake.mkdir()
    (fake / "__init__.py").write_text(
        "import sys\nALREADY = sorted({'transformers', 'trl', 'peft'} & set(sys.modules))\n"
        "print('unsloth imported after', ALREADY, flush=True)\nraise SystemExit(0)\n", encoding="utf-8")
    (tmp_path / "p").mkdir()
    project(tmp_path / "p")
    code = ("from vietlegal.train import hardware\n"
            "from vietlegal.train.hardware import Hardware\n"
            "class State:\n    num_processes = 1\n"
            "hardware.setup = lambda cfg: (Hardware('cuda', 'NVIDIA H200', 1, True, 16), State(), 'bf16')\n"
            "from vietlegal import cli\n"
            f"cli.main(['align', '--adapter', {str(tiny_adapter)!r}])\n")
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300,
                          cwd=tmp_path / "p")
    assert "unsloth imported after []" in done.stdout, done.stdout + done.stderr
