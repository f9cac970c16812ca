"""Preference pairs: the reader of data/processed/preferences.jsonl, the split by question, and the token ids TRL
trains on (the traps: a doubled BOS, the prompt inside chosen/rejected, a cut answer). No training here."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import QA, SYSTEM
from tests.helpers.preference_pairs import review_bodies, write_preferences
from vietlegal.data.splitting import question_key
from vietlegal.errors import DataError
from vietlegal.model.chat import encode_example, encode_prompt
from vietlegal.train import pairs, preferences
from vietlegal.train.preferences import Pair

BOS, EOT = "<|begin_of_text|>", "<|eot_id|>"
# Vietnamese letters with every diacritic, digits, legal punctuation; never empty.
TEXT = st.text(alphabet=st.sampled_from(list("aăâbcdđeêghiklmnoôơpqrstuưvxyàảãáạằẳẵắặầẩẫấậèẻẽéẹềểễếệìỉĩíị"
                                                "òỏõóọồổỗốộờởỡớợùủũúụừửữứựỳỷỹýỵĐĂ 0123456789,.;:/%()")),
               min_size=1, max_size=80).map(str.strip).filter(bool)


def row(prompt, chosen, rejected, **extra) -> dict:
    return {"id": extra.pop("id", "p1"), "source": "fb/2026-01-01.jsonl:1", "kind": "side_by_side", "prompt": prompt,
            "chosen": chosen, "rejected": rejected, **extra}


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


ASK = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": QA[1][0]}]


def answer(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def test_prepares_pairs_are_read_back_whole(tmp_path):
    written = write_preferences(tmp_path / "preferences.jsonl")
    read = preferences.read_pairs(tmp_path / "preferences.jsonl")
    assert len(read.pairs) == len(written) == len(review_bodies()) and read.same_answers == [] and read.duplicates == 0
    by_id = {p["id"]: p for p in written}
    for pair in read.pairs:
        assert pair.chosen == by_id[pair.id]["chosen"][0]["content"] and pair.prompt == by_id[pair.id]["prompt"]
        assert "Điều" in pair.chosen and pair.chosen != pair.rejected and pair.kind == "side_by_side"


@pytest.mark.parametrize(("chosen", "field"), [
    (ASK + answer("Theo Điều 139."), "'chosen' must be one assistant message"),  # the whole conversation (trl#1541)
    ([{"role": "user", "content": "x"}], "'chosen' must be one assistant message"),
    ("Theo Điều 139.", "'chosen' must be one assistant message"),
])
def test_a_chosen_answer_holding_more_than_the_answer_is_refused_naming_the_line(tmp_path, chosen, field):
    path = write(tmp_path / "p.jsonl", [row(ASK, answer("ok"), answer("no"), id="a"), row(ASK, chosen, answer("no"))])
    with pytest.raises(DataError, match=rf"p.jsonl:2: {field}"):
        preferences.read_pairs(path)


def test_a_prompt_must_end_with_the_question(tmp_path):
    path = write(tmp_path / "p.jsonl", [row(ASK + answer("x"), answer("a"), answer("b"))])
    with pytest.raises(DataError, match="p.jsonl:1: the prompt must end with the user's question"):
        preferences.read_pairs(path)
    with pytest.raises(DataError, match="p.jsonl:1: prompt messages"):
        preferences.read_pairs(write(tmp_path / "p.jsonl", [row([], answer("a"), answer("b"))]))


def test_identical_answers_and_repeated_pairs_are_counted_not_trained_on(tmp_path):
    path = write(tmp_path / "p.jsonl", [row(ASK, answer("a"), answer("b"), id="x"), row(ASK, answer("a"), answer("b"), id="x"),
                                        row(ASK, answer("same"), answer("same"), id="y", source="fb/f.jsonl:3")])
    read = preferences.read_pairs(path)
    assert [p.id for p in read.pairs] == ["x"] and read.duplicates == 1 and read.same_answers == ["fb/f.jsonl:3"]


def some_pairs(questions: list[str]) -> list[Pair]:
    return [Pair(f"{i}-{k}", f"f:{i}", "side_by_side", [{"role": "user", "content": q}], f"a{k}", f"b{k}")
            for i, q in enumerate(questions) for k in range(2)]


@settings(max_examples=60, deadline=None)
@given(questions=st.lists(TEXT, min_size=1, max_size=30, unique_by=lambda q: " ".join(q.casefold().split())),
       fraction=st.sampled_from([0.0, 0.1, 0.2, 0.5]), seed=st.integers(0, 3), tests=st.integers(0, 3))
def test_held_out_pairs_are_whole_questions_never_trained_on(questions, fraction, seed, tests):
    all_pairs = some_pairs(questions)
    test_questions = {question_key(p.prompt) for p in all_pairs[: 2 * tests]}
    train, held = preferences.split_by_question(all_pairs, fraction, seed, test_questions)
    assert sorted(p.id for p in train + held) == sorted(p.id for p in all_pairs)
    assert not {p.question for p in train} & {p.question for p in held}, "a question on both sides leaks"
    assert test_questions <= {p.question for p in held}, "the test split's questions are never trained on"
    if fraction and len(questions) > 1:
        assert held, "something to score"
    # More reviews later never move a question that was held out by its rank into training.
    more_train, more_held = preferences.split_by_question(all_pairs + some_pairs(["Một câu hỏi mới?"]), fraction, seed,
                                                          test_questions)
    ranked = {p.question for p in held if preferences.held_out_rank(p.question, seed) < fraction}
    assert ranked <= {p.question for p in more_held}


def test_roughly_the_held_out_fraction_of_questions_is_held_out():
    questions = [f"Câu hỏi số {i} về hợp đồng lao động?" for i in range(400)]
    _, held = preferences.split_by_question(some_pairs(questions), 0.2, 42, set())
    assert 0.15 < len({p.question for p in held}) / 400 < 0.25


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(question=TEXT, chosen=TEXT, rejected=TEXT, turns=st.integers(0, 2))
def test_pair_ids_are_the_serving_prompt_then_the_supervised_answer(tiny_tokenizer, question, chosen, rejected, turns):
    from vietlegal.model.base import ensure_pad_token

    tokenizer = ensure_pad_token(tiny_tokenizer, "vietlegal/tiny-llama")
    history = [m for k in range(turns) for m in ({"role": "user", "content": f"Hỏi {k}"}, *answer(f"Đáp {k}"))]
    prompt = [{"role": "system", "content": SYSTEM}, *history, {"role": "user", "content": question}]
    pair = Pair("p", "f:1", "side_by_side", prompt, chosen, rejected)
    encoded = pairs.encode_pair(tokenizer, pair, 4096)
    bos = tokenizer.convert_tokens_to_ids(BOS)
    assert encoded.prompt_ids == encode_prompt(tokenizer, prompt), "the ids serving sends"
    for text, ids in ((chosen, encoded.chosen_ids), (rejected, encoded.rejected_ids)):
        whole = encoded.prompt_ids + ids
        assert whole.count(bos) == 1 and whole[0] == bos, "one BOS (axolotl#1616)"
        assert bos not in ids and tokenizer.decode(ids) == text + EOT, "the answer alone, ending on <|eot_id|>"
        supervised = encode_example(tokenizer, prompt + answer(text), 4096)
        assert supervised.input_ids == whole, "exactly the ids SFT trains on"
        assert [t for t, lab in zip(supervised.input_ids, supervised.labels) if lab != -100][-len(ids):] == ids


def test_a_pair_too_long_for_max_seq_length_is_left_out_and_named(tiny_tokenizer):
    from vietlegal.model.base import ensure_pad_token

    tokenizer = ensure_pad_token(tiny_tokenizer, "vietlegal/tiny-llama")
    short = Pair("s", "fb/a.jsonl:1", "side_by_side", ASK, "Theo Điều 139.", "Theo Điều 138.")
    long = Pair("l", "fb/a.jsonl:2", "correction", ASK, "Theo Điều 139. " * 200, "Theo Điều 138.")
    length = len(pairs.encode_pair(tokenizer, short, 4096).prompt_ids) + 40
    encoded, too_long = pairs.encode_pairs(tokenizer, [short, long], length)
    assert len(encoded) == 1 and too_long == ["fb/a.jsonl:2"]
