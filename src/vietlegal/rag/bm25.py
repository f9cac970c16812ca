"""Okapi BM25 over Vietnamese syllables, through bm25s (a maintained BM25 library): offline, no model.

Tokens are NFC, lower-cased Unicode `\\w+` runs, i.e. syllables with their diacritics ("điều",
"thai", "sản"): whitespace separates syllables, not words, and a tone mark changes the word.
Terms are the syllables plus adjacent syllable pairs ("thai_sản"): most Vietnamese words have two
syllables, and on the bundled sample the pairs lift recall@3 from 0.75 to 0.79 (docs/rag.md).

bm25s precomputes every (term, document) weight with Lucene's idf and length normalisation, the formula this
project's own numpy BM25 used, so rankings are the same; scores are multiplied by (k1 + 1) to keep the classic
Okapi scale that BM25 scores here always had. On 60k articles it builds and answers faster than the hand-written
index did (benchmarks/bench_bm25.py, figures in docs/rag.md).
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vietlegal.text import nfc

TOKEN = re.compile(r"\w+")
DIRECTORY = "bm25s"  # bm25s's own files: data/indices/indptr .npy, vocab and params .json
PARAMS = "bm25.json"


def tokenize(text: str) -> list[str]:
    return TOKEN.findall(nfc(text).lower())


def terms(text: str, pairs: bool = True) -> list[str]:
    syllables = tokenize(text)
    return syllables + [f"{a}_{b}" for a, b in zip(syllables, syllables[1:])] if pairs else syllables


@dataclass
class BM25:
    model: object  # bm25s.BM25
    n_docs: int
    k1: float
    b: float
    pairs: bool = True  # index syllable pairs too

    @property
    def terms(self) -> list[str]:
        return [t for t in self.model.vocab_dict if t != ""]  # bm25s adds "" for empty documents

    @classmethod
    def build(cls, documents: list[str], k1: float = 1.5, b: float = 0.75, pairs: bool = True) -> "BM25":
        import bm25s

        model = bm25s.BM25(k1=k1, b=b, method="lucene")
        model.index([terms(d, pairs) for d in documents], show_progress=False)
        return cls(model, len(documents), k1, b, pairs)

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document; 0 where no query term occurs."""
        vocab = self.model.vocab_dict
        ids = [vocab[t] for t in terms(query, self.pairs) if t in vocab and t != ""]
        # bm25s's own get_scores sums with np.add.at; a term's postings never repeat a document, so a plain
        # fancy-index add over its CSC slice gives the same sums, several times faster (benchmarks/bench_bm25.py).
        index = self.model.scores
        data, rows, indptr = index["data"], index["indices"], index["indptr"]
        out = np.zeros(self.n_docs, dtype=np.float32)
        for t in ids:
            start, end = indptr[t], indptr[t + 1]
            out[rows[start:end]] += data[start:end]
        return out * np.float32(self.k1 + 1.0)

    def save(self, directory: Path) -> Path:
        path = Path(directory)
        self.model.save(str(path / DIRECTORY), show_progress=False)
        (path / PARAMS).write_text(json.dumps({"n_docs": self.n_docs, "k1": self.k1, "b": self.b, "pairs": self.pairs}) + "\n",
                                   encoding="utf-8")
        return path / DIRECTORY

    @classmethod
    def load(cls, directory: Path) -> "BM25":
        import bm25s

        params = json.loads((Path(directory) / PARAMS).read_text(encoding="utf-8"))
        model = bm25s.BM25.load(str(Path(directory) / DIRECTORY), show_progress=False)
        return cls(model, params["n_docs"], params["k1"], params["b"], params["pairs"])
