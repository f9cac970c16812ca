"""Split raw Q&A files into clean chat-format train/val/test.

    data/raw/** + the bundled sample  ->  data/processed/{train,val,test}.jsonl   {"id", "source": "file:line", "messages"}
    + the generated statute Q&A           (its pairs keep the split the statute_qa stage gave their article)
                                          data/processed/rejects.jsonl            {"source", "reason", "detail", "raw"}
                                          metrics/data.json                       counts, rejects per reason, lengths,
                                                                                  ignored_fields {file: {field: count}}
    data/raw/feedback/*.jsonl         ->  corrections into the splits (the correction as the answer)
    (reviewers' verdicts, docs/review.md) data/processed/preferences.jsonl        {"prompt", "chosen", "rejected"}
                                          data/processed/reviews.jsonl            one row per reviewed answer

Same inputs and params give byte-identical outputs, so DVC skips everything downstream.
"""
from __future__ import annotations

import sys
import time
from collections import Counter, defaultdict
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data import feedback, records, splitting
from vietlegal.errors import ConfigError
from vietlegal.model import base as base_model, lengths
from vietlegal.params import BaseConfig, PrepareConfig
from vietlegal.stage_cli import stage_args

FILES = {"metrics": paths.DATA_METRICS}
PARAM_FILES = ("prepare.raw_dir", "prepare.sample", "prepare.statute_qa", "prepare.out_dir", "base.model")


def run(cfg: PrepareConfig, base: BaseConfig, root: Path = Path("."), metrics_path: Path | None = None,
        tokenizer=None) -> dict:
    files = records.find_files(root / cfg.raw_dir, root / cfg.sample if cfg.sample else None,
                               root / cfg.statute_qa if cfg.statute_qa else None)
    if cfg.sample and not (root / cfg.sample).exists():
        raise ConfigError(f"prepare.sample: {cfg.sample} not found; set it to null to use only {cfg.raw_dir}")
    if cfg.statute_qa and not (root / cfg.statute_qa).exists():
        raise ConfigError(f"prepare.statute_qa: {cfg.statute_qa} not found; `dvc repro statute_qa` generates it "
                          "(or set prepare.statute_qa: null)")
    feedback_dir = root / cfg.raw_dir / feedback.DIRECTORY  # reviews, not Q&A files: read by data/feedback.py
    files = [f for f in files if feedback_dir not in f.parents]
    reading = records.read_records(files, root, cfg.system_prompt, cfg.context_template, cfg.keep_fields)
    recs, rejects = reading.records, reading.rejects
    if not recs:
        raise ConfigError(f"no usable records in {', '.join(str(f) for f in files) or cfg.raw_dir}")
    recs, n_dupes = splitting.dedupe(recs)
    parts = splitting.split(recs, cfg)
    reviewed = feedback.read_feedback(feedback_dir, root, cfg.system_prompt)
    rejects += reviewed.rejects
    parts, corrections_per_split, correction_dupes = feedback.place_corrections(parts, reviewed.corrections,
                                                                                splitting.question_key)
    out = root / cfg.out_dir
    out.mkdir(parents=True, exist_ok=True)
    for name, rows in parts.items():
        jsonl.write(out / f"{name}.jsonl", (r.row() for r in rows))
    jsonl.write(out / "rejects.jsonl", [vars(r) for r in rejects])
    jsonl.write(out / Path(paths.PREFERENCES).name, reviewed.preferences)
    jsonl.write(out / Path(paths.REVIEWS).name, reviewed.reviews)

    if tokenizer is None:
        tokenizer = base_model.load_tokenizer(base_model.resolve(base.model, base.revision))
    per_source: dict[str, Counter] = defaultdict(Counter)
    for name, rows in parts.items():
        for r in rows:
            per_source[r.source.rsplit(":", 1)[0]][name] += 1
    seen = len(recs) + n_dupes + len(rejects) + reviewed.records
    report = {
        "records": {**{s: len(parts[s]) for s in splitting.SPLITS}, "total": sum(map(len, parts.values()))},
        "per_source": {src: dict(c) for src, c in sorted(per_source.items())},
        "rejects": {"total": len(rejects), "share": len(rejects) / seen, "by_reason": dict(sorted(Counter(r.reason for r in rejects).items()))},
        "duplicates_removed": n_dupes,
        # fields records carried that their shape does not read and prepare.keep_fields does not keep
        "ignored_fields": {src: dict(sorted(c.items())) for src, c in sorted(reading.ignored_fields.items())},
        "lengths": lengths.length_report(list(recs.values()), tokenizer, base.max_seq_length),
        "feedback": {**reviewed.counts(), "corrections_per_split": corrections_per_split,
                     "corrections_duplicates": correction_dupes},
    }
    if metrics_path:
        jsonl.write_json(metrics_path, report)
    if report["rejects"]["share"] > cfg.max_reject_fraction:
        raise ConfigError(too_many_rejects(rejects, report["rejects"]["share"], cfg, out))
    return report


def too_many_rejects(rejects: list[records.Reject], share: float, cfg: PrepareConfig, out: Path) -> str:
    by_file: dict[str, Counter] = defaultdict(Counter)
    for r in rejects:
        by_file[r.source.rsplit(":", 1)[0]][r.reason] += 1
    lines = [f"  {f}: " + ", ".join(f"{n} {reason}" for reason, n in c.most_common()) for f, c in sorted(by_file.items())]
    return (
        f"{share:.1%} of records were rejected, above prepare.max_reject_fraction={cfg.max_reject_fraction}:\n"
        + "\n".join(lines)
        + f"\nEach rejected line is listed with its reason in {out / 'rejects.jsonl'}; fix those files or raise the threshold."
    )


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    t0 = time.perf_counter()
    report = run(params.prepare, params.base, metrics_path=args.metrics)
    r = report["records"]
    print(
        f"prepare: {r['total']} records -> train {r['train']}, val {r['val']}, test {r['test']}; "
        f"{report['duplicates_removed']} duplicates removed; {report['rejects']['total']} rejected "
        f"({time.perf_counter() - t0:.1f}s)",
        file=sys.stderr,
    )
    if report["ignored_fields"]:
        print("prepare: fields left out (not part of the record's shape; keep one as metadata with prepare.keep_fields):",
              file=sys.stderr)
        for src, fields in report["ignored_fields"].items():
            print(f"  {src}: " + ", ".join(f"{name} ({n})" for name, n in fields.items()), file=sys.stderr)
    return 0
