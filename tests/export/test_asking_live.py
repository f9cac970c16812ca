"""Perplexity asked of a server (metrics.asking, `vietlegal score --ask URL --perplexity DIR`) is the pipeline's
perplexity: llama.cpp's server on the F16 file against transformers on the merged model, same conversations."""
from __future__ import annotations

import json
import math

import openai
import pytest

from tests.conftest import QA
from vietlegal.data.conversation import Conversation
from vietlegal.errors import ConfigError
from vietlegal.export.llama_server import ALIAS
from vietlegal.metrics.asking import served_perplexity

pytestmark = pytest.mark.slow
MAX_LENGTH = 512


@pytest.fixture(scope="module")
def cases(conversations) -> list[Conversation]:
    return [Conversation(f"c{i}", f"fixture:{i}", messages) for i, messages in enumerate(conversations)]


@pytest.fixture(scope="module")
def transformers_perplexity(exported, cases):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from vietlegal.metrics.likelihood import perplexity

    merged = exported[0] / "merged"
    model = AutoModelForCausalLM.from_pretrained(str(merged)).eval()
    return perplexity(model, AutoTokenizer.from_pretrained(str(merged)), [c.messages for c in cases], MAX_LENGTH)


def client_of(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=120)


def test_llama_cpp_perplexity_is_the_pipelines_up_to_f16_rounding(f16_server, exported, cases, transformers_perplexity):
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(exported[0] / "merged"))
    served = served_perplexity(client_of(f16_server.url), ALIAS, tokenizer, cases, MAX_LENGTH)
    assert served.answer_tokens == transformers_perplexity.answer_tokens
    assert [e["answer_tokens"] for e in served.per_example] == [e["answer_tokens"] for e in
                                                                transformers_perplexity.per_example]
    # F16 weights (10-bit mantissa) and F16 activations in llama.cpp's matrix products against float32 here:
    # measured on the untrained tiny adapter, perplexity ratio 0.9999986 and at most 4e-5 nats per token apart per
    # conversation. 1e-3 leaves room for other CPUs; a wrong token or an off-by-one prefix moves it by far more.
    assert math.isclose(served.perplexity, transformers_perplexity.perplexity, rel_tol=1e-3)


def test_score_ask_perplexity_writes_the_same_figure(f16_server, exported, tmp_path, cases):
    from vietlegal.commands import score

    split = tmp_path / "test.jsonl"
    split.write_text("".join(json.dumps(c.row(), ensure_ascii=False) + "\n" for c in cases[:3]), encoding="utf-8")
    out = tmp_path / "scores.json"
    assert score.main(["--ask", f16_server.url, "--questions", str(split), "--predictions", str(tmp_path / "p.jsonl"),
                       "--max-tokens", "8", "--perplexity", str(exported[0] / "merged"), "--out", str(out)]) == 0
    report = json.loads(out.read_text(encoding="utf-8"))
    from transformers import AutoTokenizer

    direct = served_perplexity(client_of(f16_server.url), ALIAS,
                               AutoTokenizer.from_pretrained(str(exported[0] / "merged")), cases[:3], MAX_LENGTH)
    assert report["perplexity"]["perplexity"] == pytest.approx(direct.perplexity, rel=1e-9)
    assert report["prediction"]["examples"] == 3


def test_a_server_without_completions_logprobs_is_named(live_server, exported, cases):
    from transformers import AutoTokenizer

    client = openai.OpenAI(base_url=live_server.base_url + "/v1", api_key="test-key", max_retries=0, timeout=60)
    with pytest.raises(ConfigError, match=r"/v1/completions"):
        served_perplexity(client, "vietlegal", AutoTokenizer.from_pretrained(str(exported[0] / "merged")), cases[:1],
                          MAX_LENGTH)
