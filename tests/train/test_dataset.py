"""Training examples: the ids the model learns from, the labels, the padding, the audit."""
from __future__ import annotations

import json

import pytest

from vietlegal.model.chat import END_OF_TURN, IGNORE_INDEX, encode_prompt
from vietlegal.train import audit, dataset
from vietlegal.train.batching import LengthGroupedBatches, PadCollator
from vietlegal.errors import DataError


def test_training_ids_start_with_exactly_the_serving_prompt(processed_dir, tiny_tokenizer):
    """Train/serve template drift is the most reported fine-tuning failure: the prompt part of every
    training example must be, id for id, what the server sends for the same conversation."""
    split = dataset.encode_split("train", processed_dir / "train.jsonl", tiny_tokenizer, 512, False)
    rows = dataset.read_rows(processed_dir / "train.jsonl")
    assert len(split) == len(rows) == 8
    for example, conversation in zip(split.examples, rows):
        prompt = encode_prompt(tiny_tokenizer, conversation.prompt)
        assert example.input_ids[: len(prompt)] == prompt
        assert all(label == IGNORE_INDEX for label in example.labels[: len(prompt)])
        answer = example.labels[len(prompt):]
        assert answer == example.input_ids[len(prompt):], "every answer token (and its <|eot_id|>) is supervised"
        assert tiny_tokenizer.decode(answer) == conversation.reference + END_OF_TURN


def test_label_audit_reads_100_percent_and_pad_is_not_eos(processed_dir, tiny_tokenizer):
    split = dataset.encode_split("train", processed_dir / "train.jsonl", tiny_tokenizer, 512, False)
    report = audit.label_audit(split, tiny_tokenizer)
    assert report["share_ending_in_eot"] == 1.0
    assert 0.3 < report["share_tokens_masked"] < 0.9  # system + question masked, answer supervised
    assert report["truncated"] == report["dropped"] == 0
    assert report["pad_token"] == "<|finetune_right_pad_id|>" != report["eos_token"]
    assert report["pad_tokens_supervised"] == 0


def test_audit_refuses_a_template_that_does_not_close_turns_with_eot(processed_dir, tiny_tokenizer):
    split = dataset.encode_split("train", processed_dir / "train.jsonl", tiny_tokenizer, 512, False)
    broken = split.examples[3]
    broken.labels[-1] = IGNORE_INDEX  # what a pad=eos collator does to the real end of turn
    with pytest.raises(DataError, match=r"<\|eot_id\|> \(first: fixture:4\)"):
        audit.label_audit(split, tiny_tokenizer)


def test_collator_pads_with_pad_token_and_masks_only_padding(tiny_tokenizer):
    pad = tiny_tokenizer.pad_token_id
    eot = tiny_tokenizer.convert_tokens_to_ids(END_OF_TURN)
    features = [{"input_ids": [5, 6, 7, eot], "labels": [IGNORE_INDEX, 6, 7, eot]},
                {"input_ids": [8, eot], "labels": [IGNORE_INDEX, eot]}]
    batch = PadCollator(pad)(features)
    assert batch["input_ids"].tolist() == [[5, 6, 7, eot], [8, eot, pad, pad]]
    assert batch["labels"].tolist() == [[IGNORE_INDEX, 6, 7, eot], [IGNORE_INDEX, eot, IGNORE_INDEX, IGNORE_INDEX]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]


def test_truncation_is_counted_named_and_dropped_on_request(processed_dir, tiny_tokenizer, capsys):
    prompt_len = len(encode_prompt(tiny_tokenizer, dataset.read_rows(processed_dir / "train.jsonl")[0].prompt))
    cut = prompt_len + 3  # room for the prompt and the first answer tokens, not for the end of the answer
    kept = dataset.encode_split("train", processed_dir / "train.jsonl", tiny_tokenizer, cut, drop_truncated=False)
    assert len(kept.truncated) == 8 and "fixture:1" in capsys.readouterr().err
    report = audit.label_audit(kept, tiny_tokenizer)
    assert report["truncated"] == 8 and report["share_ending_in_eot"] < 1.0
    dropped = dataset.encode_split("train", processed_dir / "train.jsonl", tiny_tokenizer, cut, drop_truncated=True)
    assert len(dropped) == 0 and len(dropped.dropped) == 8


def test_prompt_longer_than_max_length_leaves_nothing_to_learn_and_is_dropped(processed_dir, tiny_tokenizer):
    split = dataset.encode_split("train", processed_dir / "train.jsonl", tiny_tokenizer, 10, drop_truncated=False)
    assert len(split) == 0 and len(split.dropped) == 8


def test_bad_row_names_file_and_line(processed_dir, tiny_tokenizer):
    path = processed_dir / "val.jsonl"
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[1] = json.dumps({"id": "x", "messages": [{"role": "robot", "content": "hi"}]})
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"val\.jsonl:2: messages\[0\]\.role"):
        dataset.read_rows(path)
    with pytest.raises(DataError, match=r"missing\.jsonl: not found; run the stages before train first: `dvc repro ground`"):
        dataset.read_rows(processed_dir / "missing.jsonl")


def test_length_grouped_batches_waste_little_and_agree_across_processes():
    import random

    rng = random.Random(0)
    lengths = [rng.randint(80, 400) for _ in range(153)]
    sampler = LengthGroupedBatches(lengths, batch_size=8, seed=42)
    order = sampler.order()
    assert sorted(order) == list(range(153))
    batches = [order[i:i + 8] for i in range(0, len(order), 8)]
    real = sum(lengths)
    padded = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    assert real / padded > 0.95
    again = LengthGroupedBatches(lengths, batch_size=8, seed=42)
    assert again.order() == order, "every process (and a resumed run) must see the same batches"
    sampler.set_epoch(1)
    assert sampler.order() != order, "a new epoch reshuffles"
