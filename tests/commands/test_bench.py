"""`vietlegal bench` against the real server, and its statistics."""
from __future__ import annotations

import json

import pytest

from vietlegal.commands import bench
from vietlegal.errors import ConfigError


def test_bench_writes_table_json_and_plot(live_server, tmp_path, capsys):
    out = tmp_path / "bench"
    code = bench.main(["--base-url", live_server.base_url + "/v1", "--api-key", "test-key", "--concurrency", "1,4",
                       "--requests", "4", "--max-tokens", "3", "--out", str(out)])
    assert code == 0
    report = json.loads((out / "bench.json").read_text())
    levels = report["levels"]
    assert [lv["concurrency"] for lv in levels] == [1, 4]
    for lv in levels:
        assert lv["requests"] == 4 and lv["errors"] == 0
        assert lv["completion_tokens"] == 4 * 3
        assert 0 < lv["avg_ttft_s"] <= lv["avg_latency_s"] and lv["p50_latency_s"] <= lv["p95_latency_s"]
        assert lv["tokens_per_s"] > 0 and lv["requests_per_s"] > 0
    assert (out / "bench.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    printed = capsys.readouterr().out
    assert "avg s" in printed and "p95 s" in printed and "tok/s" in printed


def test_bench_counts_auth_failures_as_errors(live_server):
    target = bench.target_from(live_server.base_url, "wrong", None, 2, 30, allow_remote=False)
    level = bench.run_level(target, 2, 3)
    assert (level.requests, level.errors) == (3, 3)
    assert "401" in level.first_error and level.tokens_per_s == 0 and level.avg_latency_s is None


def test_percentile_is_nearest_rank():
    values = [float(v) for v in range(1, 21)]
    assert bench.percentile(values, 50) == 10.0
    assert bench.percentile(values, 95) == 19.0
    assert bench.percentile([3.0], 95) == 3.0
    assert bench.percentile([], 50) is None


def test_summary_separates_errors_from_answers():
    results = [bench.Result(True, 1.0, 0.2, 10), bench.Result(True, 3.0, 0.4, 30), bench.Result(False, 0.1, error="HTTP 500")]
    level = bench.summarize(5, results, wall=2.0)
    assert (level.requests, level.errors, level.completion_tokens) == (3, 1, 40)
    assert level.avg_latency_s == 2.0 and level.avg_ttft_s == pytest.approx(0.3)
    assert level.tokens_per_s == 20.0 and level.requests_per_s == 1.0 and level.first_error == "HTTP 500"


@pytest.mark.parametrize("text", ["", "0", "1,x", "1,300"])
def test_bad_concurrency_levels_are_refused(text):
    with pytest.raises(ConfigError, match="--concurrency"):
        bench.parse_levels(text)


def test_only_loopback_targets_unless_allowed():
    with pytest.raises(ConfigError, match="--allow-remote"):
        bench.target_from("http://10.0.0.5:8000", None, None, 8, 5, allow_remote=False)
    with pytest.raises(ConfigError, match="http://HOST:PORT"):
        bench.target_from("https://127.0.0.1:8000", None, None, 8, 5, allow_remote=False)
    target = bench.target_from("http://127.0.0.1:9000/v1", None, None, 8, 5, allow_remote=False)
    assert (target.host, target.port, target.path) == ("127.0.0.1", 9000, "/v1/chat/completions")
