"""Training curves through DVCLive, keyed by the optimizer step so a resumed run continues them.

    dvclive/plots/metrics/loss/{train,eval}.tsv
    dvclive/plots/metrics/token_accuracy/{train,eval}.tsv
    dvclive/plots/metrics/{learning_rate,grad_norm}.tsv
    dvclive/metrics.json                                  latest value of each
    dvclive/align/...                                     stage align: loss, reward margin and accuracy (DPO)

(Not DVCLive's usual train/loss: `dvc exp show` would mix a `train.loss` metric with the `train.*` params.)

transformers' own DVCLive callback (report_to="dvclive") counts log calls as steps, dumps every
TrainingArguments field as params and restarts the curves on resume. This subclass logs the chosen
curves at `state.global_step`; on resume the rows after the checkpoint's step (written by the
killed run and about to be redone) are cut, so the curves have no duplicate steps.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

# Trainer log key -> DVCLive metric name (what `dvc plots show` titles the plots).
CURVES = {
    "loss": "loss/train",
    "eval_loss": "loss/eval",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
    "mean_token_accuracy": "token_accuracy/train",
    "eval_mean_token_accuracy": "token_accuracy/eval",
}
# Stage align (TRL's DPOTrainer logs): the loss, and the implicit rewards beta * log(policy / reference).
PREFERENCE_CURVES = {
    "loss": "loss/train",
    "eval_loss": "loss/eval",
    "rewards/margins": "reward_margin/train",
    "eval_rewards/margins": "reward_margin/eval",
    "rewards/accuracies": "reward_accuracy/train",
    "eval_rewards/accuracies": "reward_accuracy/eval",
    "learning_rate": "learning_rate",
    "grad_norm": "grad_norm",
}


def open_live(directory: Path, resume_step: int | None):
    from dvclive import Live

    if resume_step is not None:
        trim(directory, resume_step)
    # dvc.yaml declares the plots (dvcyaml=None); inside `dvc exp run` DVC saves the experiment itself.
    return Live(dir=str(directory), resume=resume_step is not None, dvcyaml=None, save_dvc_exp=False, report=None)


def trim(directory: Path, last_step: int) -> None:
    """Drop curve rows logged after the step being resumed from."""
    for tsv in (directory / "plots" / "metrics").rglob("*.tsv"):
        lines = tsv.read_text(encoding="utf-8").splitlines()
        if not lines:
            continue
        column = lines[0].split("\t").index("step")
        kept = [lines[0]] + [row for row in lines[1:] if int(row.split("\t")[column]) <= last_step]
        tmp = tsv.with_suffix(".tsv.tmp")
        tmp.write_text("\n".join(kept) + "\n", encoding="utf-8")
        os.replace(tmp, tsv)


def no_curves(directory: Path, curves: dict[str, str]) -> None:
    """A run that trained nothing (stage align without preference pairs): each curve as DVCLive's header with no
    rows, so the declared plots exist, render empty, and are the same bytes on every machine."""
    shutil.rmtree(directory / "plots" / "metrics", ignore_errors=True)  # a previous run's curves
    for name in sorted(set(curves.values())):
        tsv = directory / "plots" / "metrics" / f"{name}.tsv"
        tsv.parent.mkdir(parents=True, exist_ok=True)
        tsv.write_text(f"step\t{name.rsplit('/', 1)[-1]}\n", encoding="utf-8")  # DVCLive's header
    (directory / "metrics.json").write_text("{}\n", encoding="utf-8")


def last_logged(trainer, key: str) -> float | None:
    return next((e[key] for e in reversed(trainer.state.log_history) if key in e), None)


def logged_at(trainer, key: str, step: int) -> float | None:
    """From the log history, which checkpoints carry over a resume."""
    return next((e[key] for e in trainer.state.log_history if key in e and e.get("step") == step), None)


def step_curves(live, curves: dict[str, str] = CURVES):
    """The DVCLive callback; built on call so that importing this module does not import transformers
    (Unsloth must be imported first when it is the backend)."""
    from transformers.integrations import DVCLiveCallback

    class StepCurves(DVCLiveCallback):
        """DVCLive at the optimizer step; only the main process (the one given a Live) writes."""

        def __init__(self) -> None:
            super().__init__(live=live, log_model=False)
            self._initialized = True  # no TrainingArguments dump into params

        def on_train_begin(self, args, state, control, **kwargs):
            return control

        def on_log(self, args, state, control, logs=None, **kwargs):
            if self.live is None or not state.is_world_process_zero:
                return control
            values = {curves[k]: v for k, v in (logs or {}).items() if k in curves and isinstance(v, (int, float))}
            if values:
                self.live.step = state.global_step
                for name, value in values.items():
                    self.live.log_metric(name, float(value))
                self.live.next_step()
            return control

        def on_train_end(self, args, state, control, **kwargs):
            return control  # the stage ends the Live after its final evaluation is logged

    return StepCurves()
