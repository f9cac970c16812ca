"""export.formats names what llama.cpp writes: the converter's float types and the quantiser's, lower-case."""
from __future__ import annotations

import pytest
from hypothesis import given, strategies as st

from vietlegal.errors import ConfigError
from vietlegal.params import GGUF_FLOAT_FORMATS, GGUF_QUANT_FORMATS, ExportConfig, build_section
from vietlegal.stages.export import plain_greedy

KNOWN = GGUF_FLOAT_FORMATS + GGUF_QUANT_FORMATS


@given(st.lists(st.sampled_from(KNOWN), min_size=1, unique=True).filter(lambda f: set(f) & set(GGUF_FLOAT_FORMATS)))
def test_any_distinct_known_formats_with_a_float_one_are_accepted_in_any_case(formats):
    cfg = build_section("export", {"formats": [f.upper() for f in formats]})
    assert cfg.formats == tuple(formats)


@given(st.lists(st.sampled_from(GGUF_QUANT_FORMATS), min_size=1, unique=True))
def test_quantised_formats_alone_are_refused_they_are_made_from_a_float_file(formats):
    with pytest.raises(ConfigError, match="float format"):
        ExportConfig(formats=tuple(formats))


@pytest.mark.parametrize("bad", ["iq4_xs", "q4_k", "gguf", "fp16", ""])
def test_an_unknown_or_importance_matrix_format_is_named(bad):
    with pytest.raises(ConfigError, match=f"export.formats: \\['{bad}'\\] not among"):
        ExportConfig(formats=("f16", bad))


def test_a_repeated_format_is_refused():
    with pytest.raises(ConfigError, match="distinct"):
        ExportConfig(formats=("f16", "q8_0", "Q8_0"))


def test_defaults_match_the_issue_and_params_yaml():
    cfg = ExportConfig()
    assert (cfg.enabled, cfg.formats, cfg.adapter) == (False, ("f16", "q8_0", "q4_k_m"), "models/adapter")


@given(temperature=st.sampled_from([0.0, 0.7]), presence=st.sampled_from([0.0, 0.5, -1.0]),
       frequency=st.sampled_from([0.0, 0.3]))
def test_generate_answers_are_compared_with_llama_cpp_only_when_it_can_reproduce_them(temperature, presence, frequency):
    gen = build_section("generate", {"temperature": temperature, "presence_penalty": presence,
                                     "frequency_penalty": frequency})
    assert plain_greedy(gen) == (temperature == 0 and presence == 0 and frequency == 0)
