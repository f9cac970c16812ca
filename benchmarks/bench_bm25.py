"""BM25 at full size: the index of a 60k-article corpus (Zalo AI 2021's is ~61k), the project's hand-written
BM25 (benchmarks/bm25_handwritten.py, what vietlegal.rag.bm25 was) against bm25s (a maintained BM25 library,
what vietlegal.rag.bm25 uses now) on the same tokenisation, and what a query costs.

    python benchmarks/bench_bm25.py [--articles 60000] [--queries 500]

The corpus is generated with the statistics of real articles: syllables drawn from a Zipf-distributed lexicon
of 1-3-syllable Vietnamese words (~6.5k distinct syllables, as the language has), article lengths log-normal
around a median of 180 syllables (p95 ~700), each article headed by its citation and a title, as
`Provision.document` is. bm25s is timed through the project's own path (`retriever.build`, `Retriever.search`);
the hand-written index as the retriever used it (a stable sort of every score). Each query is a 6-14-syllable span of one article plus two off-topic words; recall@k
is the share of queries whose article is in the top k. Both sides index `vietlegal.rag.bm25.terms` (syllables
and syllable pairs) with the same k1, b and Lucene idf, so they must rank alike; the figures are build time,
index size on disk, single-query latency p50/p95 (scores + top 10) and recall.
"""
from __future__ import annotations

import argparse
import json
import math
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from vietlegal.params import RagConfig
from vietlegal.rag.corpus import load_corpus
from vietlegal.rag.retriever import Retriever, build

ONSETS = ["", "b", "c", "ch", "d", "đ", "g", "gi", "h", "k", "kh", "l", "m", "n", "ng", "nh", "ph", "qu", "r", "s", "t",
          "th", "tr", "v", "x"]
RHYMES = ["a", "ai", "am", "an", "ang", "anh", "ao", "at", "ay", "ăn", "ăng", "âm", "ân", "ât", "e", "em", "en", "ê", "ênh",
          "i", "iên", "iêt", "inh", "o", "oa", "oai", "oan", "ong", "ô", "ôi", "ông", "ơ", "ơi", "u", "ua", "uân", "ung",
          "uy", "ư", "ưa", "ương", "ươc", "y"]
TONES = {"a": "aàáảãạ", "ă": "ăằắẳẵặ", "â": "âầấẩẫậ", "e": "eèéẻẽẹ", "ê": "êềếểễệ", "i": "iìíỉĩị", "o": "oòóỏõọ",
         "ô": "ôồốổỗộ", "ơ": "ơờớởỡợ", "u": "uùúủũụ", "ư": "ưừứửữự", "y": "yỳýỷỹỵ"}
LAWS = ["Bộ luật Dân sự", "Bộ luật Lao động", "Bộ luật Hình sự", "Luật Đất đai", "Luật Hôn nhân và gia đình",
        "Luật Doanh nghiệp", "Luật Nhà ở", "Luật Thuế thu nhập cá nhân", "Luật Bảo hiểm xã hội", "Luật Xây dựng"]


def syllables(rng: random.Random) -> list[str]:
    out = set()
    for onset in ONSETS:
        for rhyme in RHYMES:
            vowel = next(c for c in rhyme if c in TONES)
            for tone in TONES[vowel]:
                out.add(onset + rhyme.replace(vowel, tone, 1))
    return sorted(out)


def corpus_rows(n: int, seed: int = 0) -> list[dict]:
    rng = random.Random(seed)
    sylls = syllables(rng)
    rng.shuffle(sylls)
    lexicon = [" ".join(rng.choices(sylls, k=rng.choice((1, 2, 2, 2, 3)))) for _ in range(30_000)]
    weights = [1 / (r + 1) ** 1.05 for r in range(len(lexicon))]  # Zipf
    cum = list(np.cumsum(weights))
    rows = []
    for i in range(n):
        law, year = LAWS[i % len(LAWS)], 1995 + (i // len(LAWS)) % 30
        length = min(3000, max(20, int(rng.lognormvariate(math.log(180), 0.8))))
        words = rng.choices(lexicon, cum_weights=cum, k=length // 2 + 1)
        text = " ".join(words)
        title = " ".join(rng.choices(lexicon, cum_weights=cum, k=rng.randint(2, 6)))
        rows.append({"id": f"a{i}", "instrument": {"name": law, "number": None, "year": year}, "article": str(i % 700 + 1),
                     "clause": None, "title": title.capitalize(), "text": text.capitalize() + ".",
                     "effective_from": None, "effective_to": None})
    return rows


def queries(rows: list[dict], k: int, seed: int = 1) -> list[tuple[str, int]]:
    rng = random.Random(seed)
    filler = "xin hỏi luật sư về trường hợp của tôi như thế nào".split()
    out = []
    for _ in range(k):
        target = rng.randrange(len(rows))
        words = rows[target]["text"].rstrip(".").split()
        span = rng.randint(6, min(14, len(words)))
        start = rng.randrange(0, len(words) - span + 1)
        out.append((" ".join(rng.sample(filler, 2) + words[start:start + span]) + "?", target))
    return out


def percentiles(times: list[float]) -> tuple[float, float]:
    ms = sorted(t * 1000 for t in times)
    return statistics.median(ms), ms[int(0.95 * (len(ms) - 1))]


def recall(ranked: list[list[int]], qs: list[tuple[str, int]], k: int) -> float:
    return sum(t in r[:k] for r, (_, t) in zip(ranked, qs)) / len(qs)


def project(tmp: Path, qs: list[tuple[str, int]]) -> dict:
    cfg = RagConfig(corpus_dir=str(tmp / "corpus"), index_dir=str(tmp / "index"), dense=False, in_force_on="2025-07-01")
    corpus = load_corpus(tmp / "corpus")
    t0 = time.perf_counter()
    build(corpus, cfg, tmp / "index")
    build_s = time.perf_counter() - t0
    retriever = Retriever.load(tmp / "index", tmp / "corpus", cfg)
    row_of = {p.id: i for i, p in enumerate(corpus.provisions)}
    ranked, times = [], []
    for q, _ in qs:
        t = time.perf_counter()
        hits = retriever.search(q, top_k=10)
        times.append(time.perf_counter() - t)
        ranked.append([row_of[h.provision.id] for h in hits])
    size = sum(p.stat().st_size for p in (tmp / "index").rglob("*") if p.is_file())
    return {"build_s": build_s, "index_mb": size / 1e6, "times": times, "ranked": ranked, "documents": [p.document for p in corpus.provisions]}


def handwritten(documents: list[str], qs: list[tuple[str, int]], tmp: Path) -> dict:
    from bm25_handwritten import BM25 as HandBM25  # benchmarks/ is this script's directory

    t0 = time.perf_counter()
    index = HandBM25.build(documents)
    (tmp / "hand").mkdir()
    index.save(tmp / "hand")
    build_s = time.perf_counter() - t0
    ranked, times = [], []
    for q, _ in qs:
        t = time.perf_counter()
        scores = index.scores(q)
        top = [int(r) for r in np.argsort(-scores, kind="stable")[:10] if scores[r] > 0]
        times.append(time.perf_counter() - t)
        ranked.append(top)
    return {"build_s": build_s, "index_mb": (tmp / "hand" / "bm25.npz").stat().st_size / 1e6, "times": times, "ranked": ranked}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--articles", type=int, default=60_000)
    ap.add_argument("--queries", type=int, default=500)
    args = ap.parse_args()
    rows = corpus_rows(args.articles)
    qs = queries(rows, args.queries)
    lengths = sorted(len(r["text"].split()) for r in rows)
    print(f"corpus: {len(rows)} articles, syllables p50 {lengths[len(lengths) // 2]}, p95 {lengths[int(0.95 * len(lengths))]}; "
          f"{len(qs)} queries")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        (tmp / "corpus").mkdir()
        (tmp / "corpus" / "articles.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
        b = project(tmp, qs)
        a = handwritten(b["documents"], qs, tmp)
        shutil.rmtree(tmp / "index", ignore_errors=True)
    for name, r in (("hand-written", a), ("bm25s 0.3.16", b)):
        p50, p95 = percentiles(r["times"])
        print(f"{name:<15} build {r['build_s']:6.1f} s  index {r['index_mb']:7.1f} MB  query p50 {p50:6.2f} ms  p95 {p95:6.2f} ms  "
              f"recall@1 {recall(r['ranked'], qs, 1):.3f}  recall@10 {recall(r['ranked'], qs, 10):.3f}")
    same = sum(x[:10] == y[:10] for x, y in zip(a["ranked"], b["ranked"])) / len(qs)
    print(f"identical top-10 lists: {same:.1%} of queries")


if __name__ == "__main__":
    main()
