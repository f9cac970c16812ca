"""LLM-as-judge over generated answers (off unless configured).

    data/generated/answers.jsonl -> metrics/judge.json, data/judge/verdicts.jsonl, data/judge/cache.jsonl

The judge, its rubric, cache and retries are `vietlegal.metrics.llm_judge`; the judge model and the rubric
version are params. Failed and unparseable verdicts are counted; neither stops the run.
"""
from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.data.answers import SYSTEMS, read_answers
from vietlegal.metrics.llm_judge import AXES, Judge, Verdict, VerdictCache, make_client, rubric, summarise
from vietlegal.params import JudgeConfig
from vietlegal.stage_cli import stage_args

FILES = {"answers": paths.ANSWERS, "metrics": paths.JUDGE_METRICS, "verdicts": paths.VERDICTS, "cache": paths.JUDGE_CACHE}


def judge_rows(judge: Judge, rows: list[dict]) -> tuple[dict, list[dict]]:
    jobs = [(k, s) for k in range(len(rows)) for s in SYSTEMS]

    def one(job: tuple[int, str]) -> Verdict:
        row = rows[job[0]]
        return judge.verdict(row["question"], row["reference"], row[job[1]])

    with ThreadPoolExecutor(max_workers=max(1, judge.cfg.concurrency)) as pool:
        verdicts = dict(zip(jobs, pool.map(one, jobs)))
    report = {s: summarise([verdicts[(k, s)] for k in range(len(rows))]) for s in SYSTEMS}
    report["delta"] = {a: report["tuned"][a] - report["base"][a] for a in AXES if a in report["base"] and a in report["tuned"]}
    all_verdicts = list(verdicts.values())
    report["api_calls"] = sum(v.attempts for v in all_verdicts)
    report["cache_hits"] = sum(v.cached for v in all_verdicts)
    report["retries"] = sum(max(0, v.attempts - 1) for v in all_verdicts)
    detail = [
        {"id": row["id"], **{s: {"status": verdicts[(k, s)].status, "scores": verdicts[(k, s)].scores,
                                 "raw": verdicts[(k, s)].raw, "error": verdicts[(k, s)].error} for s in SYSTEMS}}
        for k, row in enumerate(rows)
    ]
    return report, detail


def run(cfg: JudgeConfig, answers_path: Path, metrics_path: Path, verdicts_path: Path, cache_path: Path,
        client=None, backoff_s: float = 1.0) -> dict:
    cache = VerdictCache(cache_path)  # exists even when off: it is a stage output
    if not cfg.enabled:
        report, detail = {"enabled": False}, []
    else:
        rubric(cfg.rubric_version)
        rows = read_answers(answers_path)[: cfg.limit]
        judge = Judge(cfg, client or make_client(cfg), cache, backoff_s=backoff_s)
        report, detail = judge_rows(judge, rows)
        report = {"enabled": True, "model": cfg.model, "rubric_version": cfg.rubric_version, **report}
    jsonl.write_json(metrics_path, report)
    jsonl.write(verdicts_path, detail)
    return report


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    report = run(params.judge, args.answers, args.metrics, args.verdicts, args.cache)
    if not report["enabled"]:
        print("judge: off (set judge.enabled: true and OPENAI_API_KEY to grade answers with an LLM)", file=sys.stderr)
        return 0
    for s in SYSTEMS:
        r = report[s]
        print(f"judge {s}: overall {r.get('overall', float('nan')):.2f}/10 over {r['scored']} answers "
              f"({r['unparseable']} unparseable, {r['failed']} failed, {r['empty']} empty)", file=sys.stderr)
    print(f"judge: {report['api_calls']} API calls, {report['cache_hits']} cached, {report['retries']} retries", file=sys.stderr)
    return 0
