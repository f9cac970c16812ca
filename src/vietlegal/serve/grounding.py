"""`vietlegal serve --rag`: the retriever a server grounds each request with.

The server's request parser calls the returned function on the checked messages (system prompt
already added); it retrieves for the last user message and appends the top-k provisions to the system
message through `rag.context.ground`, the function `generate_rag` and training with context use. The
index is checked against the configured corpus at start, so a stale index stops the server with one
clear line instead of citing the wrong provisions.
"""
from __future__ import annotations

from collections.abc import Callable

from vietlegal.model.adapter import AdapterManifest
from vietlegal.params import RagConfig
from vietlegal.rag.context import Grounded, ground
from vietlegal.rag.retriever import Retriever

Grounder = Callable[[list[dict]], Grounded]


def grounder(cfg: RagConfig, flag: bool | None) -> tuple[Grounder | None, str]:
    """(the grounding function, or None when retrieval is off; a description for the start-up log line).

    `flag` is --rag / --no-rag; None means rag.enabled decides."""
    if not (cfg.enabled if flag is None else flag):
        return None, "rag=off"
    retriever = Retriever.load(cfg.index_dir, cfg.corpus_dir, cfg)
    retriever.warm()
    on = cfg.in_force_on or "today"
    described = (f"rag=on (top {cfg.top_k} {cfg.method} over {len(retriever.corpus)} provisions of {cfg.corpus_dir}, "
                 f"in force on {on})")
    return Grounding(retriever), described


class Grounding:
    """The grounding function; its retriever's corpus also serves the review page (serve/review_routes.py)."""

    def __init__(self, retriever: Retriever):
        self.retriever = retriever

    def __call__(self, messages: list[dict]) -> Grounded:
        return ground(self.retriever, messages)


def context_mismatch(manifest: AdapterManifest, rag_on: bool) -> str | None:
    """A warning when the adapter learnt from grounded prompts (stage ground) but is served without retrieval."""
    if rag_on or not manifest.trained_with_context:
        return None
    return (f"this adapter was trained with top-{manifest.context.get('top_k')} retrieved provisions in its prompts "
            "(rag.train_with_context); without --rag it answers closed-book, unlike its training")
