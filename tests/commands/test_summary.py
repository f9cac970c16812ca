"""`vietlegal summary` prints base vs tuned side by side, from whatever metrics files exist."""
from __future__ import annotations

import json

from vietlegal.commands.summary import render


def test_base_and_tuned_side_by_side(tmp_path):
    ev = {"base": {"rougeL_f1": 0.25, "perplexity": 3067.5}, "tuned": {"rougeL_f1": 0.5, "perplexity": 2449.0},
          "delta": {"rougeL_f1": 0.25, "perplexity": -618.5}}
    (tmp_path / "eval.json").write_text(json.dumps(ev), encoding="utf-8")
    (tmp_path / "train.json").write_text(json.dumps({"label_audit": {"share_ending_in_eot": 1.0}}), encoding="utf-8")
    out = render(tmp_path)
    assert out.splitlines()[out.splitlines().index("  metric                        base       tuned       delta") + 3].split() == [
        "rougeL_f1", "0.25", "0.5", "0.25"]
    assert "perplexity                    3068        2449      -618.5" in out
    assert "label_audit.share_ending_in_eot" in out and "retrieval" not in out


def test_no_metrics_says_what_to_run(tmp_path):
    assert "run `dvc repro`" in render(tmp_path)


def test_training_context_shows_what_the_context_held(tmp_path):
    ground = {"with_context": True, "top_k": 3, "method": "bm25",
              "train": {"examples": 153, "no_hit": 0, "cited_provisions": 184, "cited_in_context": 0.7934782608695652}}
    (tmp_path / "ground.json").write_text(json.dumps(ground), encoding="utf-8")
    lines = render(tmp_path).splitlines()
    assert lines[0] == "training context (metrics/ground.json)"
    assert lines[lines.index("training context (metrics/ground.json)") + 5].split() == ["train.cited_in_context", "0.7935"]
    assert not any("val." in line for line in lines)  # absent keys are not printed as blanks


def test_reviewers_verdicts_per_version(tmp_path):
    from vietlegal.metrics.review import review_report

    rows = [{"model": "vietlegal-aaaaaaaaaaaa", "verdict": "correct", "preferred": True},
            {"model": "vietlegal-aaaaaaaaaaaa", "verdict": "wrong_law", "preferred": None},
            {"model": "vietlegal-bbbbbbbbbbbb", "verdict": "incomplete", "preferred": False}]
    (tmp_path / "review.json").write_text(json.dumps(review_report(rows)), encoding="utf-8")
    lines = [line.split() for line in render(tmp_path).splitlines() if "vietlegal-" in line]
    assert lines == [["vietlegal-aaaaaaaaaaaa", "2", "1", "0.5", "1/1"], ["vietlegal-bbbbbbbbbbbb", "1", "0", "0", "0/1"]]


def test_closed_book_against_retrieval_and_the_pretrained_base(tmp_path):
    scores = lambda f1: {"rougeL_f1": 0.1, "chrf_0_100": 12.0, "citation_precision": f1, "citation_recall": f1,  # noqa: E731
                         "citation_f1": f1, "citation_none_share": 0.0}
    rag = {"enabled": True, "examples": 73, "no_hit_questions": 0,
           "without_retrieval": {"base": scores(0.0), "tuned": scores(0.05)},
           "with_retrieval": {"base": scores(0.01), "tuned": scores(0.4)}}
    (tmp_path / "rag.json").write_text(json.dumps(rag), encoding="utf-8")
    pretrain = {"enabled": True, "parameters": 1_061_120, "steps": 150, "seconds": 69.2,
                "curve": [{"eval_perplexity": 3062.3}, {"eval_perplexity": 15.9}]}
    (tmp_path / "pretrain.json").write_text(json.dumps(pretrain), encoding="utf-8")
    lines = render(tmp_path).splitlines()
    assert lines[lines.index("closed-book vs retrieval on the test split (metrics/rag.json)") + 1].split() == [
        "metric", "base", "base", "+rag", "tuned", "tuned", "+rag"]
    assert next(line for line in lines if "citation_f1" in line).split() == ["citation_f1", "0", "0.01", "0.05", "0.4"]
    assert "  1.06M parameters, 150 steps, 69s; held-out perplexity 3062 -> 15.9" in lines
    (tmp_path / "rag.json").write_text(json.dumps({"enabled": False}), encoding="utf-8")
    assert "  off (rag.enabled: false)" in render(tmp_path).splitlines()


def test_preference_tuning_shows_sft_against_aligned_and_eval_gains_a_column(tmp_path):
    align = {"trained": True, "reason": None, "pairs": {"train": 50, "held_out": 14},
             "held_out": {"pairs": 14, "sft": {"preference_accuracy": 0.5714}, "aligned": {"preference_accuracy": 0.8571,
                          "reward_margin": 0.125, "kl_to_reference": 0.0247}}, "wall_seconds": 42.0}
    (tmp_path / "align.json").write_text(json.dumps(align), encoding="utf-8")
    ev = {part: {"rougeL_f1": value} for part, value in (("base", 0.1), ("tuned", 0.2), ("delta", 0.1), ("aligned", 0.3))}
    (tmp_path / "eval.json").write_text(json.dumps(ev), encoding="utf-8")
    lines = render(tmp_path).splitlines()
    start = lines.index("preference tuning on held-out pairs (metrics/align.json)")
    shown = {line.split()[0]: line.split()[-1] for line in lines[start + 1:start + 9] if line.strip()}
    assert shown["held_out.sft.preference_accuracy"] == "0.5714"
    assert shown["held_out.aligned.preference_accuracy"] == "0.8571" and shown["pairs.held_out"] == "14"
    assert "aligned" in lines[lines.index("evaluation on the test split (metrics/eval.json; BLEU and chrF++ on 0-100)") + 1]
    assert next(line for line in lines if line.strip().startswith("rougeL_f1")).split() == [
        "rougeL_f1", "0.1", "0.2", "0.1", "0.3"]
