"""The hybrid retriever's index files (`build`), and `Retriever`, which everything that retrieves loads.

    data/corpus/*.jsonl  ->  models/index/manifest.json   corpus sha256, provision count, params
                             models/index/bm25s/, bm25.json  BM25 weights over syllables, bm25s's files (always)
                             models/index/dense.faiss     embeddings (rag.dense: true)

Every provision is indexed; the in-force filter (rag.in_force_on) is applied at query time, so
changing the date needs no rebuild and a request could ask about another date. The manifest records
the corpus hash: `Retriever.load` refuses an index built from a corpus other than the configured one,
because its rows would point at the wrong provisions.
"""
from __future__ import annotations

import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import numpy as np

from vietlegal.errors import DataError
from vietlegal.params import RagConfig
from vietlegal.rag import dense
from vietlegal.rag.bm25 import BM25
from vietlegal.rag.corpus import Corpus, Provision, load_corpus
from vietlegal.rag.fusion import reciprocal_rank_fusion

MANIFEST = "manifest.json"
FORMAT = 2  # 2: BM25 through bm25s (models/index/bm25s/); 1 was the hand-written bm25.npz
CANDIDATES = 100  # depth of each ranking that reciprocal rank fusion sees
METHODS = ("bm25", "dense", "hybrid")


def dense_settings(cfg: RagConfig) -> dict:
    """What the query side must share with the index: a vector from another model means nothing."""
    return {"model": cfg.embedding_model, "query_prefix": cfg.query_prefix, "passage_prefix": cfg.passage_prefix}


def embedder_for(cfg: RagConfig) -> dense.Embedder:
    return dense.Embedder(cfg.embedding_model, cfg.query_prefix, cfg.passage_prefix)


def build(corpus: Corpus, cfg: RagConfig, out_dir: Path) -> dict:
    """Write the index files into `out_dir` (replaced whole, so no stale file survives) and return the manifest."""
    t0 = time.perf_counter()
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    documents = [p.document for p in corpus.provisions]
    bm25 = BM25.build(documents)
    bm25.save(tmp)
    manifest = {
        "format": FORMAT,
        "corpus": {"dir": str(corpus.directory), "sha256": corpus.sha256, "provisions": len(corpus)},
        "bm25": {"k1": bm25.k1, "b": bm25.b, "terms": len(bm25.terms)},
        "dense": None,
    }
    if cfg.dense:
        vectors = embedder_for(cfg).passages(documents)
        index = dense.build_index(vectors, cfg.ann_threshold)
        dense.save(index, tmp)
        manifest["dense"] = {**dense_settings(cfg), "dim": int(vectors.shape[1]), "kind": dense.kind(index),
                             "ann_threshold": cfg.ann_threshold}
    manifest["build_seconds"] = round(time.perf_counter() - t0, 2)
    (tmp / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    shutil.rmtree(out_dir, ignore_errors=True)
    tmp.rename(out_dir)
    return manifest


def top_rows(scores: np.ndarray, depth: int) -> np.ndarray:
    """The `depth` best rows with a positive score, best first, ties in row order: what a stable sort of all
    scores gives, without sorting 60k of them for every query."""
    rows = np.flatnonzero(scores > 0)
    if len(rows) > depth:
        kth = np.partition(scores[rows], len(rows) - depth)[len(rows) - depth]
        rows = rows[scores[rows] >= kth]  # every tie of the last place stays a candidate
    return rows[np.lexsort((rows, -scores[rows]))][:depth]


@dataclass
class Hit:
    provision: Provision
    score: float  # RRF score for hybrid, BM25 score or cosine similarity otherwise
    ranks: dict[str, int] = field(default_factory=dict)  # method -> 1-based rank in that method's list


def query_date(cfg: RagConfig, on: date | None = None) -> date:
    if on is not None:
        return on
    return date.fromisoformat(cfg.in_force_on) if cfg.in_force_on else date.today()


class Retriever:
    def __init__(self, corpus: Corpus, bm25: BM25, cfg: RagConfig, manifest: dict, dense_index=None):
        self.corpus, self.bm25, self.cfg, self.manifest = corpus, bm25, cfg, manifest
        self.dense_index = dense_index
        self.embedder = embedder_for(cfg) if dense_index is not None else None
        self._masks: dict[date, np.ndarray] = {}

    @classmethod
    def load(cls, index_dir: str | Path, corpus_dir: str | Path, cfg: RagConfig | None = None) -> "Retriever":
        """The index in `index_dir` over the corpus in `corpus_dir`; DataError if they do not belong together."""
        cfg = cfg or RagConfig()
        index_dir = Path(index_dir)
        manifest_path = index_dir / MANIFEST
        if not manifest_path.exists():
            raise DataError(f"{index_dir}: no retrieval index ({MANIFEST} missing); build it with `dvc repro index` "
                            f"(or `vietlegal index`), or fetch the pushed one with `dvc pull {index_dir.as_posix()}`")
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        corpus = load_corpus(corpus_dir)
        check_matches(manifest, corpus, cfg, index_dir)
        index = dense.load(index_dir) if cfg.dense else None
        return cls(corpus, BM25.load(index_dir), cfg, manifest, index)

    @property
    def methods(self) -> tuple[str, ...]:
        return METHODS if self.dense_index is not None else ("bm25",)

    @property
    def default_method(self) -> str:
        return self.cfg.method

    def warm(self) -> None:
        """Load the embedding model now (a server does this at start, not in its first request).

        Load only, never encode: LitServe forks its HTTP workers, and a child forked after torch has run
        a parallel op hangs in its first one (measured here: the child's first encode never returned)."""
        if self.embedder is not None and self.default_method != "bm25":
            dense.load_model(self.embedder.model)

    def in_force(self, on: date) -> np.ndarray:
        if on not in self._masks:
            self._masks[on] = np.array(self.corpus.in_force_mask(on), dtype=bool)
        return self._masks[on]

    def _bm25(self, query: str, allowed: np.ndarray, depth: int) -> list[tuple[int, float]]:
        scores = np.where(allowed, self.bm25.scores(query), 0.0)
        return [(int(r), float(scores[r])) for r in top_rows(scores, depth)]

    def _dense(self, vector: np.ndarray, allowed: np.ndarray, depth: int) -> list[tuple[int, float]]:
        if not allowed.any():
            return []
        sims, rows = dense.search(self.dense_index, vector, depth, None if allowed.all() else allowed)
        return [(int(r), float(s)) for r, s in zip(rows, sims) if s >= self.cfg.dense_min_similarity]

    def search(self, query: str, top_k: int | None = None, on: date | None = None, method: str | None = None,
               vector: np.ndarray | None = None) -> list[Hit]:
        """The top_k provisions in force on `on` (default rag.in_force_on, else today), best first; [] = no hit.

        `vector` is the query's embedding when the caller embedded many queries at once."""
        method = method or self.default_method
        if method not in self.methods:
            raise DataError(f"retrieval method {method!r} is not available in this index (it has: {', '.join(self.methods)})")
        k = top_k or self.cfg.top_k
        allowed = self.in_force(query_date(self.cfg, on))
        depth = max(k, CANDIDATES)
        lists: dict[str, list[tuple[int, float]]] = {}
        if method in ("bm25", "hybrid"):
            lists["bm25"] = self._bm25(query, allowed, depth)
        if method in ("dense", "hybrid"):
            vector = self.embedder.queries([query])[0] if vector is None else vector
            lists["dense"] = self._dense(vector, allowed, depth)
        if method == "hybrid":
            ranked = reciprocal_rank_fusion([[r for r, _ in lst] for lst in lists.values()], self.cfg.rrf_k)
        else:
            ranked = lists[method]
        ranks = {name: {r: i for i, (r, _) in enumerate(lst, start=1)} for name, lst in lists.items()}
        return [
            Hit(self.corpus.provisions[r], score, {name: rk[r] for name, rk in ranks.items() if r in rk})
            for r, score in ranked[:k]
        ]

    def embed_queries(self, queries: list[str]) -> np.ndarray | None:
        return self.embedder.queries(queries) if self.embedder is not None else None


def check_matches(manifest: dict, corpus: Corpus, cfg: RagConfig, index_dir: Path) -> None:
    if manifest.get("format") != FORMAT:
        raise DataError(f"{index_dir}: index format {manifest.get('format')!r}, this code reads {FORMAT}; rebuild it with "
                        "`dvc repro index`")
    built = manifest["corpus"]
    if built["sha256"] != corpus.sha256:
        raise DataError(
            f"{index_dir} was built from another corpus ({built['dir']}: {built['provisions']} provisions, sha256 "
            f"{built['sha256'][:12]}) than rag.corpus_dir {corpus.directory} ({len(corpus)} provisions, sha256 "
            f"{corpus.sha256[:12]}); its rows would point at the wrong provisions. Rebuild it: `dvc repro index` "
            "(or `vietlegal index`)"
        )
    if not cfg.dense:
        return
    if manifest["dense"] is None:
        raise DataError(f"{index_dir} has no dense index (built with rag.dense: false) but rag.dense is true; "
                        "rebuild it with `dvc repro index`, or set rag.dense: false")
    built_dense = {k: manifest["dense"][k] for k in dense_settings(cfg)}
    if built_dense != dense_settings(cfg):
        raise DataError(f"{index_dir}: dense index built with {built_dense}, but params say {dense_settings(cfg)}; "
                        "query vectors from another model do not match. Rebuild it with `dvc repro index`")
