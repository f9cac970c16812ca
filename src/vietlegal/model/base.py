"""Where the base model comes from: the built-in tiny model, a local directory, or the HF hub.

Hub weights stay in the Hugging Face cache, pinned by `base.revision`; only adapters and data go
to the DVC remote. Every failure says what to do.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from vietlegal.errors import BaseModelError
from vietlegal.params import TINY_MODEL_ID


@dataclass
class ResolvedBase:
    model_id: str  # what the user asked for
    path: str  # what from_pretrained receives
    revision: str | None

    def hub_kwargs(self) -> dict:
        if Path(self.path).is_dir():
            return {}
        return {"revision": self.revision, "token": os.environ.get("HF_TOKEN") or None}


def resolve(model_id: str, revision: str | None = None) -> ResolvedBase:
    if model_id == TINY_MODEL_ID:
        from vietlegal.model import tiny

        path, built = tiny.ensure_built()
        if revision not in (None, built):
            raise BaseModelError(
                f"base.revision {revision!r} does not match the tiny model's recipe hash {built!r}; "
                "set base.revision to null (or to that hash)"
            )
        return ResolvedBase(model_id, str(path), built)
    if Path(model_id).is_dir():
        return ResolvedBase(model_id, model_id, _local_revision(model_id, revision))
    if model_id.startswith((".", "/")) or Path(Path(model_id).parts[0]).is_dir():
        # "models/pretrained" in a project that has models/: a local directory, not a hub id
        raise BaseModelError(f"base.model: directory {model_id!r} does not exist; `dvc repro` builds a pipeline's "
                             f"base (the pretrain stage writes models/pretrained), `dvc pull {model_id}` fetches it")
    return ResolvedBase(model_id, model_id, revision)


def same_model(a: ResolvedBase, b: ResolvedBase) -> bool:
    """Whether two resolved bases are one model: the same directory (or one a pretrain stage wrote at the same
    revision: its weights' hash), or the same hub id at revisions that do not disagree."""
    if a.revision and b.revision and a.revision != b.revision:
        return False
    local = Path(a.path).is_dir(), Path(b.path).is_dir()
    if all(local):
        return os.path.realpath(a.path) == os.path.realpath(b.path) or (a.revision is not None
                                                                         and a.revision == b.revision)
    return not any(local) and a.path == b.path


def _local_revision(directory: str, revision: str | None) -> str | None:
    """A directory the pretrain stage wrote names its revision (its weights' hash): an adapter trained on another
    version of the base must not load onto this one."""
    from vietlegal.model import tiny

    info = tiny.base_info(directory)
    if info is None:
        return revision
    if not info.get("pretrained", True) or not info.get("revision"):
        raise BaseModelError(f"base.model {directory!r} holds no model ({info.get('note', 'no revision')}); set "
                             "pretrain.enabled: true and run `dvc repro pretrain`, or point base.model elsewhere")
    if revision not in (None, info["revision"]):
        raise BaseModelError(f"{directory} holds base revision {info['revision']}, not {revision} (what the adapter or "
                             f"base.revision names): `dvc pull {directory}` the base it was trained on, or retrain")
    return info["revision"]


def context_window(config) -> int:
    """The model's context in tokens: its config's max_position_embeddings (2048 when the config does not say)."""
    return int(getattr(config, "max_position_embeddings", 0) or 2048)


def config_of(base: ResolvedBase):
    """The base model's config alone (no weights loaded)."""
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(base.path, **base.hub_kwargs())
    except OSError as exc:
        raise BaseModelError(f"could not read the config of base model {base.model_id!r}: {exc}") from exc


def context_of(base: ResolvedBase) -> int:
    """The context window of a base model, read from its config."""
    return context_window(config_of(base))


def load_model(base: ResolvedBase, device: str = "cpu", dtype=None):
    """The model at `base` as it is (a base, or a merged model directory), in eval mode on `device`."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base.path, dtype=dtype or "auto", **base.hub_kwargs())
    return model.to(device).eval()


def load_tokenizer(base: ResolvedBase):
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(base.path, **base.hub_kwargs())
    except OSError as exc:
        raise BaseModelError(_hub_hint(base, exc)) from exc
    return ensure_pad_token(tok, base.model_id)


def ensure_pad_token(tok, model_id: str):
    """A pad token distinct from EOS: a collator masking pad ids would otherwise mask the real EOS too."""
    if tok.pad_token is None or tok.pad_token_id == tok.eos_token_id:
        # Llama-3.1 reserves <|finetune_right_pad_id|>: using it keeps EOS supervised and the vocab unchanged.
        if "<|finetune_right_pad_id|>" not in tok.get_vocab():
            raise BaseModelError(
                f"{model_id}: tokenizer has no pad token distinct from EOS and no "
                "<|finetune_right_pad_id|>; pick a Llama-3.1 tokenizer or add a pad token to its config"
            )
        tok.pad_token = "<|finetune_right_pad_id|>"
    return tok


def _hub_hint(base: ResolvedBase, exc: Exception) -> str:
    text = str(exc)
    if "gated" in text.lower() or "401" in text or "403" in text:
        return (
            f"{base.model_id} is gated: accept its licence on the Hugging Face hub and export HF_TOKEN=<token> "
            f"({type(exc).__name__}: {text.splitlines()[0]})"
        )
    return (
        f"could not load base model {base.model_id!r} (revision {base.revision}): {text.splitlines()[0] if text else exc!r}. "
        "Check base.model in params.yaml, your network and HF_TOKEN; the built-in default is "
        f"{TINY_MODEL_ID!r}"
    )
