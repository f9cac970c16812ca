"""GPU smoke run: the project's GPU paths on one CUDA GPU, each step in its own process, printed as one table.

    python benchmarks/gpu_smoke.py --dry-run           # anywhere: the wheel list, its size, the imports, the steps
    python benchmarks/gpu_smoke.py                     # on a GPU machine (`make gpu`), from the repo root
    python benchmarks/gpu_smoke.py --download .whl     # for a GPU machine without network that lacks TRL & co
    python benchmarks/gpu_smoke.py --wheels .whl       # ... then there: install those into a private directory

On a machine installed with `make gpu` (requirements-gpu.txt) every step runs. A bare CUDA image (PyTorch,
transformers and PEFT only, as benchmarks/gpu_image_packages.txt lists) gets what else the TRL and serving steps
import (CARRIED, at the versions requirements-gpu.txt pins, under BUDGET_MB) from --wheels; vLLM and Unsloth do not
fit that budget, and their rows say so. Steps, each in its own process (Unsloth patches transformers and TRL when
imported; vLLM holds the GPU's memory), each timed and bounded:

    train (trl, bf16)      the tiny Llama's LoRA through TRL + PEFT in bf16: tokens/s, peak GPU memory; the adapter
    train (unsloth, 4-bit) the same through Unsloth, 4-bit base
    serve (hf)             `vietlegal serve` (HF backend) with that adapter, answering through the openai client
    vllm offline           vLLM's offline engine, base and tuned (LoRA) answers to 64 prompts: decode tokens/s
    vllm serve             `vietlegal serve` with serve.backend: vllm and two versions (v1: the trained adapter,
                           v2: another), each answering through the openai client: multi-LoRA

A step that cannot run says why in its row; the exit code is 1 only when a step that could run failed.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import importlib.util
import json
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
BUDGET_S = 480  # the whole run: under 8 minutes, so a rerun fits a 15-minute lease
GPU_LOCK = ROOT / "requirements-gpu.txt"
# What the TRL and serving steps import beyond PyTorch, transformers and PEFT, and what of their needs the bare GPU
# image lacks (benchmarks/gpu_image_packages.txt lists what it has). --dry-run recomputes the second from the first.
ROOTS = ("trl", "litserve", "openai")
CARRIED = ("trl", "datasets", "dill", "multiprocess", "litserve", "fastapi", "starlette", "pydantic", "pydantic-core",
           "annotated-types", "typing-inspection", "uvicorn", "pyzmq", "openai", "jiter", "sniffio",
           "httpx2", "httpcore2", "truststore", "distro")
MODULES = {"pydantic-core": "pydantic_core", "annotated-types": "annotated_types", "typing-inspection": "typing_inspection",
           "pyzmq": "zmq"}
# The GPU machine's interpreter, for evaluating the requirements' environment markers.
GPU_PYTHON = {"python_version": "3.12", "python_full_version": "3.12.3", "sys_platform": "linux",
              "platform_system": "Linux", "platform_machine": "x86_64", "implementation_name": "cpython",
              "platform_python_implementation": "CPython", "os_name": "posix", "extra": ""}
# The project code the steps import; the dry run imports all of it.
PROJECT_MODULES = ("vietlegal.model.tiny", "vietlegal.model.adapter", "vietlegal.model.device", "vietlegal.model.untrained",
                   "vietlegal.train.backends", "vietlegal.train.sft", "vietlegal.train.batching", "vietlegal.train.dataset",
                   "vietlegal.train.export", "vietlegal.train.meter", "vietlegal.train.provenance",
                   "vietlegal.stages.prepare", "vietlegal.serve.process", "vietlegal.model.vllm_engine",
                   "vietlegal.answering")
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")
# name -> (the packages it needs, its time bound in seconds)
STEPS = {
    "train (trl, bf16)": (("trl",), 120),
    "train (unsloth, 4-bit)": (("unsloth", "bitsandbytes"), 180),
    "serve (hf)": (("litserve", "openai"), 120),
    "vllm offline": (("vllm",), 240),
    "vllm serve": (("vllm", "litserve", "openai"), 300),
}
RESULT = "SMOKE-RESULT "


def pins() -> dict[str, str]:
    """name -> version from requirements-gpu.txt, the GPU machine's lock (Python 3.12's lines)."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        from lock import read_pins
    finally:
        sys.path.pop(0)
    return read_pins(GPU_LOCK, GPU_PYTHON["python_version"])


def normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def module_of(name: str) -> str:
    return MODULES.get(name, name.replace("-", "_"))


def gpu_image() -> set[str]:
    lines = (ROOT / "benchmarks" / "gpu_image_packages.txt").read_text(encoding="utf-8").splitlines()
    return {normal(line) for line in lines if line.strip() and not line.startswith("#")}


def needed_beyond_image() -> set[str]:
    """ROOTS and their requirements, transitively (as installed here: requirements-gpu.txt's versions of every
    library the CPU set shares), less the image's."""
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
        raise SystemExit(f"requirements-gpu.txt pins no version of {missing}: the smoke run carries the GPU lock's wheels")
    return [(n, versions[normal(n)]) for n in CARRIED]


def importable(name: str) -> bool:
    return importlib.util.find_spec(module_of(name)) is not None


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
    versions = pins()
    drift = [f"{n} {importlib.metadata.version(n)} here, {v} locked" for n, v in listed
             if importable(n) and importlib.metadata.version(n) != v]
    ok &= not drift
    rows.append(("lock", "ok" if not drift else "FAILED",
                 f"carried wheels at requirements-gpu.txt's versions (torch {versions['torch']}, vllm {versions['vllm']}, "
                 f"unsloth {versions['unsloth']})" + (f"; differs here: {drift}" if drift else "")))
    sizes = {n: installed_mb(n) for n, _ in listed}
    total = sum(sizes.values())
    needed = needed_beyond_image()
    carried = {normal(n) for n, _ in listed}
    gaps = sorted(needed - carried)
    ok &= not gaps
    rows.append(("wheel list", "ok" if not gaps else "FAILED",
                 f"{len(listed)} carried; {len(needed)} needed beyond the GPU image"
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
    for step, (needs, bound) in STEPS.items():
        lacking = [n for n in needs if not importable(n)]
        rows.append((step, "would run" if not lacking else "would skip",
                     f"own process, at most {bound} s" + (f"; not installed here: {', '.join(lacking)}" if lacking else "")))
    cuda = importlib.import_module("torch").cuda.is_available()
    rows.append(("gpu", "present" if cuda else "absent", f"the real run: every step above, under {BUDGET_S} s in all"))
    print(table(rows))
    return 0 if ok else 1


# --- on the GPU machine -------------------------------------------------------------------------------------

def ensure_packages(wheels: Path | None) -> list[str]:
    """Install the carried wheels the machine lacks into SITE; returns what is still missing."""
    lacking = [n for n, _ in wheel_list() if not importable(n)]
    if lacking and wheels is not None and wheels.is_dir():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-index", "--no-deps", "--no-compile",
                        "--target", str(SITE), *map(str, sorted(wheels.glob("*.whl")))], check=True)
        sys.path.insert(0, str(SITE))
        importlib.invalidate_caches()
    os.environ["PYTHONPATH"] = os.pathsep.join([str(SITE), str(ROOT / "src"), os.environ.get("PYTHONPATH", "")])
    return [n for n, _ in wheel_list() if not importable(n)]


def step_env() -> str:
    import torch

    name = torch.cuda.get_device_name(0)
    return f"torch {torch.__version__}, CUDA {torch.version.cuda}, {name}, bf16 {torch.cuda.is_bf16_supported()}"


def processed_sample(work: Path) -> Path:
    from vietlegal.params import BaseConfig, PrepareConfig
    from vietlegal.stages import prepare

    if not (work / "processed" / "train.jsonl").exists():
        cfg = PrepareConfig(raw_dir=str(work / "no-raw"), sample=str(ROOT / "data/sample/legal_qa.jsonl"),
                            out_dir=str(work / "processed"))
        prepare.run(cfg, BaseConfig(), root=Path("/"))
    return work / "processed"


def train_adapter(work: Path, backend_name: str, steps: int, precision: str = "bf16",
                  load_in_4bit: bool = False) -> tuple[Path, str]:
    """A few optimizer steps of the tiny model's LoRA; the adapter written as `train` writes it.
    precision "fp32" runs it on the CPU: how the test suite checks this script's own code."""
    import torch

    on_gpu = precision != "fp32"

    from vietlegal.model import base as base_model
    from vietlegal.params import BaseConfig, TrainConfig
    from vietlegal.train import backends, batching, dataset, export, provenance, sft
    from vietlegal.train.meter import TokenMeter

    base_cfg = BaseConfig()
    cfg = TrainConfig(backend=backend_name, batch_size=8, grad_accum=1, max_steps=steps, learning_rate=3e-3,
                      warmup_steps=0, logging_steps=steps, save_steps=10_000, eval_steps=10_000, bf16=on_gpu,
                      load_in_4bit=load_in_4bit)
    backend = backends.get(backend_name)  # before transformers: Unsloth patches it when imported
    base = base_model.resolve(base_cfg.model)
    tokenizer = base_model.load_tokenizer(base)
    train = dataset.encode_split("train", processed_sample(work) / "train.jsonl", tokenizer, base_cfg.max_seq_length, False)
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


def ask(base_url: str, model: str, questions: tuple[str, ...]) -> tuple[int, float, list[str]]:
    """(completion tokens, seconds, the models named in the replies) for the questions, through the openai client."""
    import openai

    client = openai.OpenAI(base_url=base_url + "/v1", api_key="smoke", max_retries=0, timeout=120)
    started, tokens, named = time.perf_counter(), 0, []
    for question in questions:
        reply = client.chat.completions.create(model=model, messages=[{"role": "user", "content": question}],
                                               max_tokens=64, temperature=0)
        tokens += reply.usage.completion_tokens
        named.append(reply.model)
    return tokens, time.perf_counter() - started, named


QUESTIONS = ("Tuổi kết hôn là bao nhiêu?", "Nghỉ thai sản bao lâu?", "Thời hiệu khởi kiện là bao lâu?")


def step_serve(work: Path, adapter: Path) -> str:
    from vietlegal.serve.process import ServerProcess

    params = work / "serve-params.yaml"
    params.write_text("serve:\n  backend: hf\n  max_batch_size: 8\n  max_new_tokens: 64\n", encoding="utf-8")
    with ServerProcess(adapter, work / "server.log", api_key="smoke", params=params, cwd=work) as server:
        tokens, wall, _ = ask(server.base_url, "vietlegal", QUESTIONS)
    return f"3 answers via the openai client, {tokens} tokens in {wall:.2f} s ({tokens / wall:,.0f} tok/s)"


def step_vllm_offline(work: Path, adapter: Path) -> str:
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


def step_vllm_serve(work: Path, adapter: Path) -> str:
    """Two versions over one base in vLLM (multi-LoRA): the trained adapter and an untrained one of another seed."""
    from vietlegal.model import untrained
    from vietlegal.serve.process import ServerProcess

    other = untrained.adapter(work / "adapter-v2", seed=1)
    params = work / "vllm-params.yaml"
    params.write_text("serve:\n  backend: vllm\n  max_batch_size: 16\n  max_new_tokens: 64\n", encoding="utf-8")
    server = ServerProcess([f"v1={adapter}", f"v2={other}"], work / "vllm-server.log", api_key="smoke", params=params,
                           cwd=work)
    server.start(timeout=STEPS["vllm serve"][1] - 60)  # vLLM's engine start: longer than the HF worker's
    try:
        figures = []
        for version in ("v1", "v2"):
            tokens, wall, named = ask(server.base_url, version, QUESTIONS)
            figures.append(f"{version}: {tokens} tokens in {wall:.2f} s, answered as {sorted(set(named))}")
    finally:
        server.stop()
    return "; ".join(figures)


def run_step(name: str, work: Path, steps: int, precision: str = "bf16") -> str:
    """One step, in this process (the parent starts one process per step). precision "fp32": on the CPU (tests)."""
    if name == "train (trl, bf16)":
        return train_adapter(work, "trl", steps, precision)[1]
    if name == "train (unsloth, 4-bit)":
        return train_adapter(work, "unsloth", min(steps, 10), precision, load_in_4bit=precision != "fp32")[1]
    adapter = work / "adapter-trl"
    if not (adapter / "vietlegal.json").exists():
        raise RuntimeError("needs the adapter of the train (trl, bf16) step")
    if name == "serve (hf)":
        return step_serve(work, adapter)
    if name == "vllm offline":
        return step_vllm_offline(work, adapter)
    return step_vllm_serve(work, adapter)


def child(name: str, work: Path, steps: int, precision: str) -> int:
    try:
        figure = run_step(name, work, steps, precision)
    except Exception as exc:  # noqa: BLE001 - reported to the parent as its row
        traceback.print_exc()
        print(RESULT + json.dumps({"ok": False, "figure": f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"}))
        return 1
    print(RESULT + json.dumps({"ok": True, "figure": figure}))
    return 0


def in_process(name: str, work: Path, steps: int, bound: float, precision: str = "bf16") -> tuple[str, str]:
    """(state, figure) of a step run in a process of its own, its log passed through."""
    started = time.perf_counter()
    cmd = [sys.executable, str(Path(__file__).resolve()), "--step", name, "--work", str(work), "--steps", str(steps),
           "--precision", precision]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=bound, cwd=work)
    except subprocess.TimeoutExpired as exc:
        sys.stderr.write((exc.stderr or b"").decode(errors="replace")[-3000:] if isinstance(exc.stderr, bytes) else "")
        return "FAILED", f"not done within {bound:.0f} s"
    sys.stderr.write(done.stderr[-3000:])
    found = [line[len(RESULT):] for line in done.stdout.splitlines() if line.startswith(RESULT)]
    if not found:
        return "FAILED", f"the step's process ended with {done.returncode} and no result (log above)"
    result = json.loads(found[-1])
    return ("ok" if result["ok"] else "FAILED") + f" {time.perf_counter() - started:.0f}s", result["figure"]


def run(wheels: Path | None, steps: int, only: list[str] | None) -> int:
    rows, failed, started = [], False, time.perf_counter()
    sys.path.insert(0, str(ROOT / "src"))
    missing = ensure_packages(wheels)
    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU visible: run `python benchmarks/gpu_smoke.py --dry-run` here, the real run on a GPU machine")
        return 1
    rows.append(("env", "ok", step_env()))
    if missing:
        rows.append(("packages", "MISSING", f"{missing}: pass --wheels DIR (made by --download)"))
    with tempfile.TemporaryDirectory(prefix="vietlegal-smoke-") as tmp:
        work = Path(tmp)
        for name, (needs, bound) in STEPS.items():
            lacking = [n for n in needs if not importable(n)]
            left = BUDGET_S - (time.perf_counter() - started)
            if only and name not in only:
                continue
            if lacking:
                rows.append((name, "not run", f"not installed here: {', '.join(lacking)} (`make gpu` installs them)"))
            elif left < 30:
                rows.append((name, "not run", f"the {BUDGET_S} s budget is spent"))
            else:
                state, figure = in_process(name, work, steps, min(bound, left))
                failed |= state.startswith("FAILED")
                rows.append((name, state, figure))
    print(table(rows))
    return 1 if failed else 0


def table(rows: list[tuple[str, str, str]]) -> str:
    width = max(len(r[0]) for r in rows)
    state = max(len(r[1]) for r in rows)
    return "\n".join(f"{a:<{width}}  {b:<{state}}  {c}" for a, b, c in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--dry-run", action="store_true", help="check the wheel list, its size, the imports and the steps; no GPU")
    ap.add_argument("--download", type=Path, metavar="DIR", help="download the carried wheels (Python 3.12, x86-64)")
    ap.add_argument("--wheels", type=Path, default=ROOT / ".whl", help="carried wheels to install from (default: .whl)")
    ap.add_argument("--steps", type=int, default=30, help="optimizer steps of the training steps")
    ap.add_argument("--only", action="append", choices=list(STEPS), help="run only this step (repeatable)")
    ap.add_argument("--step", choices=list(STEPS), help=argparse.SUPPRESS)  # one step, in the process the parent started
    ap.add_argument("--work", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--precision", default="bf16", choices=["bf16", "fp32"], help=argparse.SUPPRESS)  # fp32: CPU tests
    args = ap.parse_args()
    if args.step:
        sys.path.insert(0, str(ROOT / "src"))
        return child(args.step, args.work, args.steps, args.precision)
    if args.download:
        return download(args.download)
    if args.dry_run:
        sys.path.insert(0, str(ROOT / "src"))
        return dry_run(args.wheels)
    return run(args.wheels, args.steps, args.only)


if __name__ == "__main__":
    sys.exit(main())
