"""The project's hand-written BM25 (vietlegal.rag.bm25 before bm25s replaced it), kept for bench_bm25.py only.

Okapi BM25 over Vietnamese syllables, in numpy: works offline, needs no model.

Tokens are NFC, lower-cased Unicode `\\w+` runs, i.e. syllables with their diacritics ("điều",
"thai", "sản"): whitespace separates syllables, not words, and a tone mark changes the word.
Terms are the syllables plus adjacent syllable pairs ("thai_sản"): most Vietnamese words have two
syllables, and on the bundled sample the pairs lift recall@3 from 0.75 to 0.79 (docs/rag.md).
The index is a term-major sparse matrix of precomputed BM25 weights, so a query costs one
slice-add per query term.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vietlegal.rag.bm25 import terms

FILE = "bm25.npz"


@dataclass
class BM25:
    terms: np.ndarray  # (V,) str; a term's id is its position
    indptr: np.ndarray  # (V + 1,) int64: postings of term t are [indptr[t], indptr[t + 1])
    doc_ids: np.ndarray  # int32
    weights: np.ndarray  # float32: idf * saturated, length-normalised term frequency
    n_docs: int
    k1: float
    b: float
    pairs: bool = True  # index syllable pairs too

    def __post_init__(self) -> None:
        self.vocab = {str(t): i for i, t in enumerate(self.terms)}

    @classmethod
    def build(cls, documents: list[str], k1: float = 1.5, b: float = 0.75, pairs: bool = True) -> "BM25":
        counts = [Counter(terms(d, pairs)) for d in documents]
        lengths = np.array([sum(c.values()) for c in counts], dtype=np.float64)
        avg = lengths.mean() if len(lengths) and lengths.mean() > 0 else 1.0
        postings: dict[str, list[tuple[int, int]]] = {}
        for doc, c in enumerate(counts):
            for term, tf in c.items():
                postings.setdefault(term, []).append((doc, tf))
        vocabulary = sorted(postings)
        indptr, doc_ids, weights = [0], [], []
        n = len(documents)
        for term in vocabulary:
            docs = np.array([d for d, _ in postings[term]], dtype=np.int32)
            tf = np.array([t for _, t in postings[term]], dtype=np.float64)
            df = len(docs)
            idf = np.log(1.0 + (n - df + 0.5) / (df + 0.5))  # Lucene's idf: never negative
            norm = k1 * (1.0 - b + b * lengths[docs] / avg)
            doc_ids.append(docs)
            weights.append((idf * tf * (k1 + 1.0) / (tf + norm)).astype(np.float32))
            indptr.append(indptr[-1] + df)
        return cls(
            terms=np.array(vocabulary, dtype=str),
            indptr=np.array(indptr, dtype=np.int64),
            doc_ids=np.concatenate(doc_ids) if doc_ids else np.zeros(0, np.int32),
            weights=np.concatenate(weights) if weights else np.zeros(0, np.float32),
            n_docs=n, k1=k1, b=b, pairs=pairs,
        )

    def scores(self, query: str) -> np.ndarray:
        """BM25 score of every document; 0 where no query syllable occurs."""
        out = np.zeros(self.n_docs, dtype=np.float32)
        for token in terms(query, self.pairs):
            t = self.vocab.get(token)
            if t is not None:
                s, e = self.indptr[t], self.indptr[t + 1]
                out[self.doc_ids[s:e]] += self.weights[s:e]
        return out

    def save(self, directory: Path) -> Path:
        path = Path(directory) / FILE
        np.savez(path, terms=self.terms, indptr=self.indptr, doc_ids=self.doc_ids, weights=self.weights,
                 params=np.array([self.n_docs, self.k1, self.b, self.pairs], dtype=np.float64))
        return path

    @classmethod
    def load(cls, directory: Path) -> "BM25":
        with np.load(Path(directory) / FILE, allow_pickle=False) as z:
            n_docs, k1, b, pairs = z["params"]
            return cls(z["terms"], z["indptr"], z["doc_ids"], z["weights"], int(n_docs), float(k1), float(b), bool(pairs))
