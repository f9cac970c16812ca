"""The served-model catalog: names, versions, the base, A/B routes, and what one server refuses to mix."""
from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vietlegal.errors import AdapterError, ConfigError
from vietlegal.model.adapter import BASE_ADAPTER, AdapterManifest
from vietlegal.serve.versions.catalog import Catalog, Served, pick
from vietlegal.serve.protocol.errors import ApiError
from vietlegal.serve.versions.version import AdapterVersion, BaseVersion

BASE = BaseVersion("meta-llama/Llama-3.1-8B-Instruct", "0e9e39f2")


def served(name: str, hash_: str, base=BASE) -> Served:
    return Served(name, Path(f"models/{name}"), AdapterVersion(hash_, "content"), AdapterManifest(base.model_id, base.revision))


def catalog(merged: bool = False, routes: dict | None = None) -> Catalog:
    c = Catalog(BASE, 8192, merged=merged, rng=random.Random(0))
    c.put(served("v12", "aaaaaaaaaaaa"))
    c.put(served("v13", "bbbbbbbbbbbb"))
    c.set_routes(routes or {})
    return c


def test_a_name_a_version_id_and_the_base_each_resolve():
    c = catalog()
    assert c.resolve("v12").adapter == "aaaaaaaaaaaa" and c.resolve("v12").version.model_id == "vietlegal-aaaaaaaaaaaa"
    assert c.resolve("vietlegal-bbbbbbbbbbbb").adapter == "bbbbbbbbbbbb"
    base = c.resolve(BASE.model_id)
    assert base.adapter == BASE_ADAPTER and base.version.fingerprint == "fp_base_0e9e39f2"
    assert c.resolve(None).version.hash == c.resolve("").version.hash == "aaaaaaaaaaaa"  # the first configured


def test_an_unknown_model_is_a_404_model_not_found_naming_what_is_served():
    with pytest.raises(ApiError) as caught:
        catalog().resolve("gpt-4o")
    assert (caught.value.status, caught.value.code, caught.value.param) == (404, "model_not_found", "model")
    assert "v12" in caught.value.message and BASE.model_id in caught.value.message


def test_a_merged_server_lists_no_base_and_decodes_without_adapter_names():
    c = Catalog(BASE, 8192, merged=True)
    c.put(served("vietlegal", "aaaaaaaaaaaa"))
    assert [m["id"] for m in c.models(0)] == ["vietlegal"]
    assert c.resolve("vietlegal").adapter is None
    with pytest.raises(ApiError):
        c.resolve(BASE.model_id)


def test_the_base_served_alone_is_the_default_every_alias_and_its_own_id_resolve_to():
    """`--model BASE` alone: the worker holds the plain base, so requests name no adapter."""
    c = Catalog(BASE, 8192, merged=True)
    c.set_routes({})
    assert c.names() == [BASE.model_id] and [m["id"] for m in c.models(0)] == [BASE.model_id]
    for model in (None, "", "vietlegal", BASE.model_id):
        target = c.resolve(model)
        assert (target.adapter, target.version) == (None, BASE)
    with pytest.raises(ApiError) as caught:
        c.resolve("vietlegal-aaaaaaaaaaaa")
    assert caught.value.status == 404 and BASE.model_id in caught.value.message


def test_a_merged_directory_answers_as_the_adapter_version_its_manifest_names(tmp_path):
    from vietlegal.serve.versions.version import MERGED_SOURCE, merged_version

    md5 = "0123456789abcdef0123456789abcdef"
    version = merged_version(AdapterManifest(BASE.model_id, merged={"adapter_version": md5, "dtype": "bfloat16"}),
                             tmp_path)
    assert (version.model_id, version.fingerprint, version.source) == ("vietlegal-0123456789ab", "fp_0123456789ab",
                                                                       MERGED_SOURCE)
    for bad in (None, "", md5[:12], md5.upper(), 7):
        with pytest.raises(AdapterError, match="merged.adapter_version"):
            merged_version(AdapterManifest(BASE.model_id, merged={"adapter_version": bad}), tmp_path)


def test_models_lists_each_adapter_with_its_version_the_routes_and_the_base():
    c = catalog(routes={"vietlegal": {"v12": 0.9, "v13": 0.1}})
    by_id = {m["id"]: m for m in c.models(123)}
    assert list(by_id) == ["vietlegal", "v12", "v13", BASE.model_id]
    assert by_id["v13"]["root"] == "vietlegal-bbbbbbbbbbbb" and by_id["v13"]["parent"] == BASE.model_id
    assert by_id["v13"]["adapter_version"] == "bbbbbbbbbbbb" and by_id["v13"]["max_model_len"] == 8192
    assert by_id["vietlegal"]["routes"] == {"v12": 0.9, "v13": 0.1} and by_id[BASE.model_id]["parent"] is None


def test_an_adapter_on_another_base_or_revision_is_refused_naming_both():
    c = catalog()
    for other in (BaseVersion("Qwen/Qwen2.5-7B-Instruct", "0e9e39f2"), BaseVersion(BASE.model_id, "ffff0000")):
        with pytest.raises(AdapterError) as caught:
            c.put(served("v14", "cccccccccccc", base=other))
        assert other.model_id in str(caught.value) and BASE.model_id in str(caught.value)
        assert other.revision in str(caught.value)
    assert set(c.adapters) == {"v12", "v13"}


def test_a_route_over_an_unknown_adapter_is_a_config_error():
    with pytest.raises(ConfigError, match="v99"):
        catalog(routes={"vietlegal": {"v12": 1.0, "v99": 1.0}})


def test_an_adapter_in_a_route_or_the_last_one_cannot_be_unloaded():
    c = catalog(routes={"vietlegal": {"v12": 1.0}})
    with pytest.raises(ApiError) as caught:
        c.remove("v12")
    assert caught.value.status == 409
    c.remove("v13")
    with pytest.raises(ApiError):
        c.remove("v13")  # gone: 404


def test_moving_a_name_to_a_new_version_keeps_the_old_one_pinnable_until_then():
    c = catalog()
    old = c.put(served("v12", "dddddddddddd"))
    assert old.version.hash == "aaaaaaaaaaaa" and c.resolve("v12").adapter == "dddddddddddd"
    with pytest.raises(ApiError):
        c.resolve("vietlegal-aaaaaaaaaaaa")  # no longer served


weights = st.dictionaries(st.sampled_from(["v12", "v13", "v14"]), st.floats(0.05, 10), min_size=1)


@settings(max_examples=40, deadline=None)
@given(weights, st.text(min_size=1, max_size=30))
def test_a_user_always_lands_on_the_same_version(w, user):
    assert len({pick(w, "vietlegal", user, random.Random(seed)) for seed in range(5)}) == 1


@settings(max_examples=25, deadline=None)
@given(weights)
def test_route_shares_follow_the_weights_over_many_users(w):
    n = 4000
    counts = {name: 0 for name in w}
    for i in range(n):
        counts[pick(w, "vietlegal", f"user-{i}", random.Random())] += 1
    total = sum(w.values())
    for name, weight in w.items():
        assert abs(counts[name] / n - weight / total) < 0.04  # ~5 standard deviations at n=4000


def test_without_user_the_choice_follows_the_weights_too():
    rng = random.Random(7)
    picks = [pick({"v12": 0.9, "v13": 0.1}, "vietlegal", None, rng) for _ in range(5000)]
    assert 0.87 < picks.count("v12") / len(picks) < 0.93


def test_adapter_options_name_each_directory():
    from vietlegal.commands.serve import named_adapters

    assert named_adapters(None, {}) == {"vietlegal": Path("models/adapter")}
    assert named_adapters(None, {"v12": "models/v12"}) == {"v12": Path("models/v12")}
    assert named_adapters(["models/x"], {"v12": "models/v12"}) == {"vietlegal": Path("models/x")}
    assert named_adapters(["v12=models/a", "v13=models/b"], {}) == {"v12": Path("models/a"), "v13": Path("models/b")}
    for bad in (["models/a", "models/b"], ["=models/a"], ["v12="], ["v12=a", "v12=b"]):
        with pytest.raises(ConfigError, match="--adapter"):
            named_adapters(bad, {})


@pytest.mark.parametrize("section, message", [
    ({"routes": {"vietlegal": {"v12": -1.0}}}, "serve.routes.vietlegal"),
    ({"routes": {"vietlegal": {}}}, "serve.routes.vietlegal"),
    ({"routes": {"vietlegal": ["v12"]}}, "serve.routes.vietlegal"),
    ({"adapters": {"v12": ""}}, "serve.adapters"),
    ({"adapters": ["models/a"]}, "serve.adapters"),
    ({"watch_seconds": 0}, "serve.watch_seconds"),
])
def test_bad_adapter_and_route_params_name_the_key(section, message):
    from vietlegal.params import build_section

    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        build_section("serve", section)
