"""GPU smoke run: the project's GPU paths on one CUDA GPU, in a few minutes, printed as one table.

    python benchmarks/gpu_smoke.py --download .whl     # here (PyPI reachable): the wheels a GPU image lacks
    python benchmarks/gpu_smoke.py --dry-run           # anywhere: the wheel list, its size and the imports
    python benchmarks/gpu_smoke.py [--wheels .whl]     # on the GPU machine (no network), from the repo root

It needs PyTorch with CUDA, transformers and PEFT on the machine; what else it runs (TRL, LitServe, the openai
client and their small pure-Python needs, CARRIED below at the versions requirements.txt pins) is installed
from `--wheels` into a private directory when the machine lacks it. Steps, each timed and bounded:

    env      torch, CUDA, the GPU, bf16
    train    the tiny Llama's LoRA through the TRL path in bf16 (tokens/s, peak GPU memory), saved as an adapter
    serve    `vietlegal serve` (HF backend) on CUDA with that adapter, answering through the openai client
    unsloth  the Unsloth backend for a few steps, if unsloth is importable (its wheels do not fit the budget)
    vllm     vLLM's offline engine answering with the adapter's LoRA, if vllm is importable (its wheel does not fit)

A step that cannot run says why in its row; the exit code is 1 only when a step that could run failed.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SITE = Path(tempfile.gettempdir()) / "vietlegal-smoke-site"
BUDGET_MB = 60
# What the smoke run imports beyond PyTorch, transformers and PEFT, and what of their needs the GPU image lacks
# (benchmarks/gpu_image_packages.txt lists what it has). --dry-run recomputes the second from the first.
ROOTS = ("trl", "litserve", "openai")
CARRIED = ("trl", "datasets", "dill", "multiprocess", "litserve", "fastapi", "starlette", "pydantic", "pydantic-core",
           "annotated-types", "typing-inspection", "opentelemetry-api", "uvicorn", "pyzmq", "openai", "jiter", "sniffio",
           "httpx2", "httpcore2", "truststore")
MODULES = {"pydantic-core": "pydantic_core", "annotated-types": "annotated_types", "typing-inspection": "typing_inspection",
           "opentelemetry-api": "opentelemetry", "pyzmq": "zmq"}
# The GPU machine's interpreter, for evaluating the requirements' environment markers.
GPU_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
# The project code each step imports; the dry run imports all of it.
PROJECT_MODULES = ("vietlegal.model.tiny", "vietlegal.model.adapter", "vietlegal.model.device", "vietlegal.train.backends",
                   "vietlegal.train.sft", "vietlegal.train.batching", "vietlegal.train.dataset", "vietlegal.train.export",
                   "vietlegal.train.meter", "vietlegal.train.provenance", "vietlegal.stages.prepare",
                   "vietlegal.serve.process", "vietlegal.model.vllm_engine", "vietlegal.answering")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def pins() -> dict[str, str]:
    """name -> version from requirements.txt (names normalised the way pip compares them)."""
    found = {}
    for line in (ROOT / "requirements.txt").read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.\-]+)==([^\s#;]+)", line.strip())
        if m:
            found[normal(m[1])] = m[2]
    return found


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_of(name: str) -> str:
    return MODULES.get(name, name.replace("-", "_"))


def gpu_image() -> set[str]:
    lines = (ROOT / "benchmarks" / "gpu_image_packages.txt").read_text(encoding="utf-8").splitlines()
    return {normal(line) for line in lines if line.strip() and not line.startswith("#")}


def needed_beyond_image() -> set[str]:
    """ROOTS and their requirements, transitively (as installed here, at the pinned versions), less the image's."""
    from packaging.requirements import Requirement

    image, seen, todo = gpu_image(), set(), list(ROOTS)
    while todo:
        name = normal(todo.pop())
        if name in seen or name in image:
            continue
        seen.add(name)
        for spec in importlib.metadata.requires(name) or []:
            req = Requirement(spec)
            if req.marker is None or req.marker.evaluate(GPU_PYTHON):
                todo.append(req.name)
    return seen


def installed_mb(name: str) -> float:
    """Bytes a distribution occupies installed, in MB: an upper bound of its (compressed) wheel."""
    dist = importlib.metadata.distribution(name)
    return sum((f.size or 0) for f in dist.files or []) / 1e6


def wheel_list() -> list[tuple[str, str]]:
    versions = pins()
    missing = [n for n in CARRIED if normal(n) not in versions]
    if missing:
        raise SystemExit(f"requirements.txt pins no version of {missing}: add them, the smoke run carries pinned wheels")
    return [(n, versions[normal(n)]) for n in CARRIED]


# --- outside the GPU machine ------------------------------------------------------------------------------

def download(target: Path) -> int:
    target.mkdir(parents=True, exist_ok=True)
    for name, version in wheel_list():
        cmd = [sys.executable, "-m", "pip", "download", "-q", "--no-deps", "--only-binary=:all:", "--python-version",
               "3.12", "--implementation", "cp", *[a for p in PLATFORMS for a in ("--platform", p)],
               "--platform", "any", "-d", str(target), f"{name}=={version}"]
        subprocess.run(cmd, check=True)
    total = sum(p.stat().st_size for p in target.glob("*.whl")) / 1e6
    print(f"{len(list(target.glob('*.whl')))} wheels, {total:.1f} MB in {target} (budget {BUDGET_MB} MB)")
    return 0 if total <= BUDGET_MB else 1


def dry_run(wheels: Path | None) -> int:
    rows, ok = [], True
    listed = wheel_list()
    sizes = {n: installed_mb(n) for n, _ in listed}
    total = sum(sizes.values())
    needed = needed_beyond_image()
    carried = {normal(n) for n, _ in listed}
    gaps = sorted(needed - carried)
    ok &= not gaps
    rows.append(("wheel list", "ok" if not gaps else "FAILED",
                 f"{len(listed)} packages pinned in requirements.txt; {len(needed)} needed beyond the GPU image"
                 + (f"; not carried: {gaps}" if gaps else "") + (f"; carried but unneeded: {sorted(carried - needed)}"
                                                                 if carried - needed else "")))
    fits = total <= BUDGET_MB
    ok &= fits
    rows.append(("size", "ok" if fits else "FAILED", f"{total:.1f} MB installed (wheels are smaller), budget {BUDGET_MB} MB"))
    if wheels is not None and wheels.is_dir():
        have = {normal(p.name.split("-")[0]) for p in wheels.glob("*.whl")}
        absent = [n for n, _ in listed if normal(n) not in have]
        size = sum(p.stat().st_size for p in wheels.glob("*.whl")) / 1e6
        ok &= not absent and size <= BUDGET_MB
        rows.append(("wheels dir", "ok" if not absent and size <= BUDGET_MB else "FAILED",
                     f"{size:.1f} MB in {wheels}" + (f"; missing {absent}" if absent else "")))
    broken = []
    for module in [module_of(n) for n, _ in listed] + list(PROJECT_MODULES):
        try:
            importlib.import_module(module)
        except Exception as exc:  # noqa: BLE001 - every failing import is listed
            broken.append(f"{module} ({type(exc).__name__}: {exc})")
    ok &= not broken
    rows.append(("imports", "ok" if not broken else "FAILED",
                 f"{len(listed)} carried + {len(PROJECT_MODULES)} project modules" + (f"; {broken}" if broken else "")))
    cuda = importlib.import_module("torch").cuda.is_available()
    rows.append(("gpu", "present" if cuda else "absent", "the real run would train, serve, and try unsloth and vllm"))
    print(table(rows))
    return 0 if ok else 1


# --- on the GPU machine -------------------------------------------------------------------------------------

def ensure_packages(wheels: Path | None) -> list[str]:
    """Install the carried wheels the machine lacks into SITE; returns what is still missing."""
    lacking = [n for n, _ in wheel_list() if importlib.util.find_spec(module_of(n)) is None]
    if lacking and wheels is not None and wheels.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(SITE), *map(str, sorted(wheels.glob("*.whl")))], check=True)
        sys.path.insert(0, str(SITE))
        importlib.invalidate_caches()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return [n for n, _ in wheel_list() if importlib.util.find_spec(module_of(n)) is None]


def step_env() -> str:
    import torch

    name = torch.cuda.get_device_name(0)
    return f"torch {torch.__version__}, CUDA {torch.version.cuda}, {name}, bf16 {torch.cuda.is_bf16_supported()}"


def processed_sample(work: Path) -> Path:
    from vietlegal.params import BaseConfig, PrepareConfig
    from vietlegal.stages import prepare

    cfg = PrepareConfig(raw_dir=str(work / "no-raw"), sample=str(ROOT / "data/sample/legal_qa.jsonl"),
                        out_dir=str(work / "processed"))
    prepare.run(cfg, BaseConfig(), root=Path("/"))
    return work / "processed"


def train_adapter(work: Path, backend_name: str, steps: int, precision: str = "bf16") -> tuple[Path, str]:
    """A few optimizer steps of the tiny model's LoRA (bf16 on the GPU); the adapter written as `train` writes it.
    precision "fp32" runs it on the CPU: how the test suite checks this script's own code."""
    import torch

    on_gpu = precision != "fp32"

    from vietlegal.model import base as base_model
    from vietlegal.params import BaseConfig, TrainConfig
    from vietlegal.train import backends, batching, dataset, export, provenance, sft
    from vietlegal.train.meter import TokenMeter

    base_cfg = BaseConfig()
    cfg = TrainConfig(backend=backend_name, batch_size=8, grad_accum=1, max_steps=steps, learning_rate=3e-3,
                      warmup_steps=0, logging_steps=steps, save_steps=10_000, eval_steps=10_000, bf16=on_gpu)
    base = base_model.resolve(base_cfg.model)
    tokenizer = base_model.load_tokenizer(base)
    train = dataset.encode_split("train", processed_sample(work) / "train.jsonl", tokenizer, base_cfg.max_seq_length, False)
    backend = backends.get(backend_name)
    model = backend.load_model(base, cfg, base_cfg.max_seq_length, base_cfg.seed, precision)
    meter = TokenMeter()
    meter.attach(model)
    if on_gpu:
        torch.cuda.reset_peak_memory_stats()
    trainer = sft.build(model, tokenizer, dataset.to_dataset(train), None, cfg=cfg, base=base_cfg,
                        output_dir=work / f"ckpt-{backend_name}", precision=precision, use_cpu=not on_gpu,
                        collator=batching.PadCollator(tokenizer.pad_token_id), callbacks=[],
                        overrides=backend.trainer_overrides(cfg), evaluate_base=False)
    result = trainer.train()
    seconds = result.metrics.get("train_runtime", 0.0)
    real, _ = meter.totals()
    out = work / f"adapter-{backend_name}"
    staging = export.save_weights(trainer, out)
    manifest = provenance.adapter_manifest(base_cfg, base.revision, cfg, data_hash="smoke", run_key="smoke",
                                           backend=backend_name, hardware={"device": "cuda" if on_gpu else "cpu"})
    export.finish(staging, out, tokenizer, manifest)
    peak = torch.cuda.max_memory_allocated() / 1e9 if on_gpu else 0.0
    return out, (f"{steps} steps, {real / seconds:,.0f} tok/s, peak {peak:.2f} GB, loss {result.training_loss:.3f}"
                 if seconds else f"{steps} steps, peak {peak:.2f} GB")


def step_serve(work: Path, adapter: Path) -> str:
    import openai

    from vietlegal.serve.process import ServerProcess

    params = work / "serve-params.yaml"
    params.write_text("serve:\n  backend: hf\n  max_batch_size: 8\n  max_new_tokens: 64\n", encoding="utf-8")
    with ServerProcess(adapter, work / "server.log", api_key="smoke", params=params, cwd=work) as server:
        client = openai.OpenAI(base_url=server.base_url + "/v1", api_key="smoke", max_retries=0, timeout=120)
        started, tokens = time.perf_counter(), 0
        for question in ("Tuổi kết hôn là bao nhiêu?", "Nghỉ thai sản bao lâu?", "Thời hiệu khởi kiện là bao lâu?"):
            reply = client.chat.completions.create(model="vietlegal", messages=[{"role": "user", "content": question}],
                                                   max_tokens=64, temperature=0)
            tokens += reply.usage.completion_tokens
        wall = time.perf_counter() - started
    return f"3 answers via the openai client, {tokens} tokens in {wall:.2f} s ({tokens / wall:,.0f} tok/s)"


def step_vllm(work: Path, adapter: Path) -> str:
    from vietlegal.model import base as base_model
    from vietlegal.model import chat, decoding, vllm_engine
    from vietlegal.model.adapter import load_tokenizer, read_manifest
    from vietlegal.model.sampling import SamplingRequest

    manifest = read_manifest(adapter)
    base = base_model.resolve(manifest.base_model, manifest.base_revision)
    tokenizer = load_tokenizer(adapter, manifest.base_model)
    prompts = [[{"role": "user", "content": f"Câu hỏi pháp luật số {i}?"}] for i in range(64)]
    requests = [SamplingRequest(chat.encode_prompt(tokenizer, p), 64) for p in prompts]
    started = time.perf_counter()
    done = vllm_engine.generate_offline(adapter, base.path, base.revision, base_model.context_of(base), requests,
                                        decoding.end_token_ids(None, tokenizer), 1, 256)
    wall = time.perf_counter() - started
    tokens = sum(c.completion_tokens for system in done.values() for c in system)
    return f"64 prompts x base and tuned, {tokens} tokens in {wall:.1f} s incl. engine start ({tokens / wall:,.0f} tok/s)"


def run(wheels: Path | None, steps: int) -> int:
    rows, failed = [], False
    sys.path.insert(0, str(ROOT / "src"))
    missing = ensure_packages(wheels)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU visible: run `python benchmarks/gpu_smoke.py --dry-run` here, the real run on a GPU machine")
        return 1

    def attempt(name: str, fn, *args):
        nonlocal failed
        started = time.perf_counter()
        try:
            result = fn(*args)
            figure = result[1] if isinstance(result, tuple) else result
            rows.append((name, f"ok {time.perf_counter() - started:.0f}s", figure))
            return result
        except Exception as exc:  # noqa: BLE001 - a failed step is a row, the others still run
            failed = True
            traceback.print_exc()
            rows.append((name, "FAILED", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
            return None

    attempt("env", step_env)
    if missing:
        rows.append(("packages", "MISSING", f"{missing}: pass --wheels DIR (made by --download)"))
    with tempfile.TemporaryDirectory(prefix="vietlegal-smoke-") as tmp:
        work = Path(tmp)
        trained = attempt("train (trl, bf16)", train_adapter, work, "trl", steps) if "trl" not in missing else None
        adapter = trained[0] if trained else None
        if adapter and not {"litserve", "openai"} & set(missing):
            attempt("serve (hf, cuda)", step_serve, work, adapter)
        else:
            rows.append(("serve (hf, cuda)", "skipped", "needs the trained adapter, litserve and openai"))
        if importlib.util.find_spec("unsloth") is not None:
            attempt("train (unsloth)", train_adapter, work, "unsloth", min(steps, 10))
        else:
            rows.append(("train (unsloth)", "not run", "unsloth is not importable here (its wheels exceed the budget)"))
        if importlib.util.find_spec("vllm") is not None and adapter:
            attempt("vllm offline (lora)", step_vllm, work, adapter)
        else:
            rows.append(("vllm offline (lora)", "not run", "vllm is not importable here (its wheel exceeds the budget)"))
    print(table(rows))
    return 1 if failed else 0


def table(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    state = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:<{state}}  {c}" for a, b, c in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="check the wheel list, its size and the imports; no GPU")
    ap.add_argument("--download", type=Path, metavar="DIR", help="download the carried wheels (Python 3.12, x86-64)")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".whl", help="carried wheels to install from (default: .whl)")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps of the training step")
    args = ap.parse_args()
    if args.download:
        return download(args.download)
    if args.dry_run:
        sys.path.insert(0, str(ROOT / "src"))
        return dry_run(args.wheels)
    return run(args.wheels, args.steps)


if __name__ == "__main__":
    sys.exit(main())
