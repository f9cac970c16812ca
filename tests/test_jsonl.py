"""The one JSON Lines reader: strict (the first bad line stops, naming file:line) or collecting (every bad line kept)."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vietlegal import jsonl
from vietlegal.errors import DataError


def test_strict_mode_stops_at_the_first_bad_line_naming_it(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_text('{"a": 1}\n\n{"a": \n', encoding="utf-8")
    rows = jsonl.read_objects(path, DataError)
    assert next(rows) == (1, {"a": 1})
    with pytest.raises(DataError, match=rf"{path}:3: not valid JSON"):
        next(rows)
    with pytest.raises(DataError, match="not found; run `vietlegal prepare`"):
        list(jsonl.read_objects(tmp_path / "none.jsonl", DataError, "run `vietlegal prepare`"))


def test_collecting_mode_keeps_every_bad_line_and_reads_on(tmp_path):
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n[1, 2]\n{"b": "caf\xe9"}\n{"c": "x\xe2\x80\xa8y"}\n{broken\n')
    bad: list[jsonl.BadLine] = []
    rows = list(jsonl.read_objects(path, DataError, rejects=bad))
    assert rows == [(1, {"a": 1}), (4, {"c": "x\u2028y"})]  # BOM, CRLF and a raw U+2028 inside a string
    assert [(b.line, b.reason) for b in bad] == [(2, "not_an_object"), (3, "not_utf8"), (5, "malformed_json")]
    assert bad[2].raw == "{broken" and bad[0].where(path) == f"{path}:2: expected a JSON object, got list"


LINE = st.one_of(
    st.dictionaries(st.text(max_size=5), st.one_of(st.integers(-5, 5), st.text(max_size=8)), max_size=3).map(
        lambda d: ("object", json.dumps(d, ensure_ascii=False))),
    st.lists(st.integers(), max_size=3).map(lambda v: ("not_an_object", json.dumps(v))),
    st.sampled_from(["{", "{'a': 1}", "nul", '{"a": }']).map(lambda t: ("malformed_json", t)),
    st.just(("blank", "   ")),
)


@settings(max_examples=80, deadline=None)
@given(st.lists(LINE, max_size=12))
def test_every_line_is_either_read_or_reported_with_its_number(tmp_path_factory, lines):
    path = tmp_path_factory.mktemp("j") / "x.jsonl"
    path.write_text("\n".join(text for _, text in lines) + "\n", encoding="utf-8")
    bad: list[jsonl.BadLine] = []
    rows = list(jsonl.read_objects(path, DataError, rejects=bad))
    assert [n for n, _ in rows] == [k for k, (kind, _) in enumerate(lines, 1) if kind == "object"]
    assert [(b.line, b.reason) for b in bad] == [(k, kind) for k, (kind, _) in enumerate(lines, 1)
                                                 if kind not in ("object", "blank")]
