"""The prepare stage on data as it really comes: a reading-comprehension CSV, a ShareGPT JSON, a parquet file and
a save_to_disk directory in data/raw come out as chat records, and the fields they carry beyond their shape are
reported, not lost."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from datasets import Dataset

from vietlegal.cli import main as cli_main
from vietlegal.data import splitting
from vietlegal.errors import ConfigError
from vietlegal.params import DEFAULT_CONTEXT_TEMPLATE, PrepareConfig, build_section

CONTEXT = "Điều 8. Điều kiện kết hôn\n1. Nam, nữ kết hôn với nhau phải tuân theo các điều kiện sau đây:\na) Nam từ đủ 20 tuổi trở lên, nữ từ đủ 18 tuổi trở lên;"


def make_raw(raw: Path) -> None:
    raw.mkdir(parents=True)
    with open(raw / "rc.csv", "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["context", "question", "answer", "source_url"])
        w.writerow([CONTEXT, "Nam bao nhiêu tuổi được kết hôn?", "Nam từ đủ 20 tuổi.", "https://vbpl.vn/1"])
        w.writerow(["Điều 139.\r\nLao động nữ được nghỉ thai sản 06 tháng.", "Nghỉ thai sản bao lâu?", "06 tháng.", "https://vbpl.vn/2"])
    (raw / "sharegpt.json").write_text(json.dumps([
        {"conversations": [{"from": "human", "value": "Thời hiệu khởi kiện hợp đồng?"}, {"from": "gpt", "value": "03 năm."},
                           {"from": "human", "value": "Tính từ khi nào?"}, {"from": "gpt", "value": "Từ ngày biết quyền bị xâm phạm."}],
         "category": "dan_su"}], ensure_ascii=False, indent=2), encoding="utf-8")
    pq.write_table(pa.Table.from_pylist([{"prompt": "Tuổi nghỉ hưu?", "completion": "Theo Điều 169 Bộ luật Lao động 2019.", "domain": "lao_dong"}]),
                   raw / "hub.parquet")
    Dataset.from_list([{"instruction": "Lãi suất tối đa?", "output": "20%/năm.", "domain": "dan_su"}]).save_to_disk(str(raw / "saved"))


def test_real_world_sources_become_chat_records_with_the_context_in_the_prompt(tmp_path, capsys, monkeypatch):
    make_raw(tmp_path / "data" / "raw")
    (tmp_path / "params.yaml").write_text("prepare:\n  sample: null\n  val_fraction: 0.0\n  test_fraction: 0.0\n"
                                          "  keep_fields: [domain]\n", encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert cli_main(["prepare"]) == 0
    rows = {json.loads(line)["source"]: json.loads(line) for name in splitting.SPLITS
            for line in (tmp_path / "data" / "processed" / f"{name}.jsonl").read_text(encoding="utf-8").splitlines()}
    assert set(rows) == {"data/raw/rc.csv:2", "data/raw/rc.csv:5", "data/raw/sharegpt.json:2", "data/raw/hub.parquet:1", "data/raw/saved:1"}
    assert rows["data/raw/rc.csv:2"]["messages"][1]["content"] == DEFAULT_CONTEXT_TEMPLATE.format(context=CONTEXT, question="Nam bao nhiêu tuổi được kết hôn?")
    assert "Điều 139.\nLao động nữ" in rows["data/raw/rc.csv:5"]["messages"][1]["content"]
    assert [m["role"] for m in rows["data/raw/sharegpt.json:2"]["messages"]] == ["system", "user", "assistant", "user", "assistant"]
    assert rows["data/raw/hub.parquet:1"]["meta"] == {"domain": "lao_dong"} and rows["data/raw/saved:1"]["meta"] == {"domain": "dan_su"}
    assert "meta" not in rows["data/raw/rc.csv:2"]
    report = json.loads((tmp_path / "metrics" / "data.json").read_text(encoding="utf-8"))
    assert report["ignored_fields"] == {"data/raw/rc.csv": {"source_url": 2}, "data/raw/sharegpt.json": {"category": 1}}
    assert report["rejects"]["total"] == 0
    err = capsys.readouterr().err
    assert err.count("source_url (2)") == 1 and err.count("category (1)") == 1 and "prepare.keep_fields" in err


@pytest.mark.parametrize("template, message", [
    ("{question}", "must contain {context} and {question}"),
    ("{context} {question} {answer}", "no other field"),
    ("{context} {question", "prepare.context_template"),
])
def test_context_template_is_checked_at_load(template, message):
    with pytest.raises(ConfigError, match=message.replace("{", r"\{").replace("}", r"\}")):
        build_section("prepare", {"context_template": template})


@pytest.mark.parametrize("fields", [["id"], ["domain", "domain"], ["meta"], [""]])
def test_keep_fields_are_checked_at_load(fields):
    with pytest.raises(ConfigError, match="prepare.keep_fields"):
        build_section("prepare", {"keep_fields": fields})


def test_literal_braces_in_the_template_stay(tmp_path):
    cfg = PrepareConfig(context_template="{{văn bản}}\n{context}\n{question}")
    assert cfg.context_template.format(context="c", question="q") == "{văn bản}\nc\nq"
