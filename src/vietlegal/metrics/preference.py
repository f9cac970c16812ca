"""How often a model prefers the reviewers' chosen answer, and how far alignment moved it (metrics/align.json).

For each held-out pair, log p(answer | prompt) is summed over the answer's tokens (its <|eot_id|> included), the
tokens `chat.encode_example` supervises:

    preference_accuracy   share of pairs where log p(chosen) > log p(rejected)          (per adapter)
    mean_logp_margin      mean of log p(chosen) - log p(rejected)                       (per adapter)
    reward_chosen/rejected  mean DPO implicit reward beta * (log p_aligned - log p_sft)   (aligned)
    reward_margin         mean reward_chosen - reward_rejected; reward_accuracy: share above 0
    kl_to_reference       mean per-token KL(aligned || sft) over the answers' tokens, in nats: the whole next-token
                          distributions compared, not only the sampled token

The reference is the SFT adapter, which is what DPO was anchored to. One model holds both adapters (one base).
"""
from __future__ import annotations

from collections.abc import Sequence

IGNORE_INDEX = -100


def _batch(rows: Sequence[tuple[list[int], list[int]]], pad_id: int, device):
    """Right-padded (ids, attention mask, labels on the completion only) of (prompt_ids, completion_ids) rows."""
    import torch

    width = max(len(p) + len(c) for p, c in rows)
    ids, mask, labels = [], [], []
    for prompt, completion in rows:
        n, pad = len(prompt) + len(completion), width - len(prompt) - len(completion)
        ids.append(prompt + completion + [pad_id] * pad)
        mask.append([1] * n + [0] * pad)
        labels.append([IGNORE_INDEX] * len(prompt) + completion + [IGNORE_INDEX] * pad)
    return tuple(torch.tensor(t, dtype=torch.long, device=device) for t in (ids, mask, labels))


def _scores(model, adapters: tuple[str, str], rows, pad_id: int):
    """Per row: (sum log p under adapters[0], under adapters[1], summed KL(adapters[1] || adapters[0]), tokens)."""
    import torch

    device = next(model.parameters()).device
    ids, mask, labels = _batch(rows, pad_id, device)
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    log_probs = []
    for name in adapters:
        model.set_adapter(name)
        logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
        log_probs.append(logits.log_softmax(-1))
    reference, policy = log_probs
    picked = [lp.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1) * keep for lp in log_probs]
    kl = ((policy.exp() * (policy - reference)).sum(-1) * keep).sum(-1)
    return picked[0].sum(-1), picked[1].sum(-1), kl, keep.sum(-1)


def pair_scores(model, pairs: Sequence, pad_id: int, reference: str, policy: str, batch_size: int = 8) -> list[dict]:
    """Per pair: log p of chosen and rejected under both adapters, and the KL summed over both answers' tokens."""
    import torch

    out = []
    with torch.inference_mode():
        for start in range(0, len(pairs), batch_size):
            chunk = pairs[start:start + batch_size]
            rows = [(p.prompt_ids, p.chosen_ids) for p in chunk] + [(p.prompt_ids, p.rejected_ids) for p in chunk]
            ref, pol, kl, tokens = (t.tolist() for t in _scores(model, (reference, policy), rows, pad_id))
            n = len(chunk)
            for i in range(n):
                out.append({"reference": (ref[i], ref[n + i]), "policy": (pol[i], pol[n + i]),
                            "kl_sum": kl[i] + kl[n + i], "tokens": tokens[i] + tokens[n + i]})
    return out


def _side(logps: list[tuple[float, float]]) -> dict:
    margins = [c - r for c, r in logps]
    return {"preference_accuracy": sum(m > 0 for m in margins) / len(margins),
            "mean_logp_margin": sum(margins) / len(margins)}


def report(scores: list[dict], beta: float) -> dict:
    """metrics/align.json's held-out section: {"pairs", "sft": {...}, "aligned": {...}, "accuracy_gain"}."""
    if not scores:
        return {"pairs": 0, "sft": None, "aligned": None, "accuracy_gain": None}
    sft, aligned = _side([s["reference"] for s in scores]), _side([s["policy"] for s in scores])
    chosen = [beta * (s["policy"][0] - s["reference"][0]) for s in scores]
    rejected = [beta * (s["policy"][1] - s["reference"][1]) for s in scores]
    margins = [c - r for c, r in zip(chosen, rejected)]
    aligned.update({
        "reward_chosen": sum(chosen) / len(chosen),
        "reward_rejected": sum(rejected) / len(rejected),
        "reward_margin": sum(margins) / len(margins),
        "reward_accuracy": sum(m > 0 for m in margins) / len(margins),
        "kl_to_reference": sum(s["kl_sum"] for s in scores) / max(1, sum(s["tokens"] for s in scores)),
    })
    return {"pairs": len(scores), "sft": sft, "aligned": aligned,
            "accuracy_gain": aligned["preference_accuracy"] - sft["preference_accuracy"]}
