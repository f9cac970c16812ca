"""Per-domain scores: evaluate groups the test split by the metadata prepare kept (prepare.keep_fields)."""
from __future__ import annotations

import json

from vietlegal import jsonl
from vietlegal.metrics.groups import MAX_GROUPS, by_field
from vietlegal.metrics.scoring import score_all
from vietlegal.params import EvaluateConfig
from vietlegal.stages import evaluate

REFS = ["Theo Điều 139 Bộ luật Lao động 2019, được nghỉ 06 tháng.", "Theo Điều 429 Bộ luật Dân sự 2015, thời hiệu 03 năm.",
        "Theo Điều 8 Luật Hôn nhân và gia đình 2014, nam đủ 20 tuổi.", "Theo Điều 113 Bộ luật Lao động 2019, nghỉ 12 ngày."]
TUNED = ["Theo Điều 139 Bộ luật Lao động 2019, được nghỉ 06 tháng.", "Theo Điều 430 Bộ luật Dân sự 2015, hai năm.",
         "Nam đủ 20 tuổi.", "Theo Điều 113 Bộ luật Lao động 2019, nghỉ 12 ngày."]
DOMAINS = ["lao_dong", "dan_su", None, "lao_dong"]


def test_each_group_is_scored_as_its_own_test_split():
    metas = [{"domain": d} if d else {} for d in DOMAINS]
    got = by_field(metas, {"tuned": TUNED}, REFS)["domain"]
    assert sorted(got) == ["(none)", "dan_su", "lao_dong"]
    assert got["lao_dong"]["examples"] == 2 and got["lao_dong"]["tuned"]["citation_f1"] == 1.0
    alone = score_all([TUNED[1]], [REFS[1]])["metrics"]
    assert got["dan_su"]["tuned"] == {k: alone[k] for k in got["dan_su"]["tuned"]}
    assert got["dan_su"]["tuned"]["citation_f1"] == 0.0


def test_a_field_with_too_many_values_is_not_a_grouping():
    n = MAX_GROUPS + 1
    got = by_field([{"url": f"https://x/{i}"} for i in range(n)], {"tuned": ["a"] * n}, ["a"] * n)
    assert "not_grouped" in got["url"]


def test_evaluate_reports_by_field_only_when_prepare_kept_one(tmp_path):
    rows = [{"id": f"q{i}", "source": f"raw/a.jsonl:{i}", "messages": [
        {"role": "user", "content": f"Hỏi {i}?"}, {"role": "assistant", "content": ref}], **({"meta": {"domain": d}} if d else {})}
        for i, (ref, d) in enumerate(zip(REFS, DOMAINS))]
    jsonl.write(tmp_path / "test.jsonl", rows)
    jsonl.write(tmp_path / "answers.jsonl", [{"id": r["id"], "source": r["source"], "question": r["messages"][0]["content"],
                                             "reference": ref, "base": "", "tuned": t} for r, ref, t in zip(rows, REFS, TUNED)])
    ppl = {s: {"perplexity": 2.0, "answer_tokens": 10} for s in ("base", "tuned")}
    jsonl.write_json(tmp_path / "ppl.json", ppl)
    paths = [tmp_path / n for n in ("answers.jsonl", "test.jsonl", "ppl.json", "eval.json", "pred.jsonl", "plot.json")]
    report = evaluate.run(EvaluateConfig(), *paths)
    assert report["by_field"]["domain"]["lao_dong"]["tuned"]["citation_f1"] == 1.0
    assert report["by_field"]["domain"]["lao_dong"]["base"]["rougeL_f1"] == 0.0
    assert json.loads((tmp_path / "eval.json").read_text(encoding="utf-8"))["by_field"] == report["by_field"]
    jsonl.write(tmp_path / "test.jsonl", [{k: v for k, v in r.items() if k != "meta"} for r in rows])
    assert "by_field" not in evaluate.run(EvaluateConfig(), *paths)
