"""TRL's fused LM head in plain torch, for where its Triton kernel cannot run (a CPU).

TRL 1.15's DPOTrainer scores completions with `model(..., labels=..., fused_lm_head=True)`, a forward that
`trl.trainer.utils.add_fused_lm_head` installs and that runs a Triton kernel (`trl.kernels.chunked_logprob`):
without Triton, or on CPU tensors, it fails. This forward returns the same `FusedCausalLMOutput` fields from the
full logits: per-token log-probabilities of the next-token labels, entropy, mean logit and top-1, each zero where
the label is -100, and the mean NLL as `loss`. The full logits cost memory a GPU would not spend, which is why
it is used only on a CPU (the tiny model), and a GPU keeps TRL's kernel.
"""
from __future__ import annotations

import types

IGNORE_INDEX = -100


def install(model) -> None:
    """Replace the fused forward TRL put on `model` (the base model under any PEFT wrapper)."""
    original = types.MethodType(type(model).forward, model)

    def forward(self, *args, fused_lm_head=False, labels=None, shift_labels=None, num_items_in_batch=None, **kwargs):
        if not fused_lm_head:
            extra = {"labels": labels, "shift_labels": shift_labels, "num_items_in_batch": num_items_in_batch}
            return original(*args, **kwargs, **{k: v for k, v in extra.items() if v is not None})
        kwargs["use_cache"] = False
        logits = original(*args, **kwargs).logits
        if shift_labels is None:
            logits, shift_labels = logits[:, :-1], labels[:, 1:]
        return scored(logits, shift_labels, num_items_in_batch)

    model.forward = types.MethodType(forward, model)


def scored(logits, labels, num_items_in_batch=None):
    """FusedCausalLMOutput of next-token `logits` (batch, seq, vocab) against `labels` (batch, seq)."""
    import torch
    from trl.trainer.utils import FusedCausalLMOutput

    mask = labels != IGNORE_INDEX
    log_probs_all = logits.float().log_softmax(-1)
    log_probs = log_probs_all.gather(-1, labels.clamp(min=0).unsqueeze(-1)).squeeze(-1) * mask
    with torch.no_grad():
        entropy = -(log_probs_all.exp() * log_probs_all).sum(-1) * mask
        mean_logits = logits.float().mean(-1) * mask
        is_top1 = (logits.argmax(-1) == labels) & mask
    count = mask.sum().clamp(min=1) if num_items_in_batch is None else num_items_in_batch
    return FusedCausalLMOutput(loss=-log_probs.sum() / count, log_probs=log_probs, entropy=entropy,
                               mean_logits=mean_logits, is_top1=is_top1, label_mask=mask)
