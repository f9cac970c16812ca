"""serve/versions: an adapter's version is the md5 DVC gives its directory, confirmed by dvc.lock only when it
records these bytes."""
from __future__ import annotations

import sys

from vietlegal.model.adapter import dir_md5
from vietlegal.serve.versions.version import adapter_version


def _lock(root, md5: str) -> None:
    (root / "dvc.lock").write_text(
        "schema: '2.0'\nstages:\n  train:\n    cmd: vietlegal train\n    outs:\n"
        f"    - path: models/adapter\n      hash: md5\n      md5: {md5}.dir\n      size: 1\n      nfiles: 3\n",
        encoding="utf-8")


def test_version_is_confirmed_by_dvc_lock_only_when_it_records_these_bytes(tmp_path, tiny_adapter):
    import shutil

    from vietlegal.model.adapter import dir_md5

    adapter = tmp_path / "models" / "adapter"
    shutil.copytree(tiny_adapter, adapter)
    _lock(tmp_path, dir_md5(adapter))
    version = adapter_version(adapter)
    assert (version.hash, version.source) == (dir_md5(adapter)[:12], "dvc.lock")
    assert version.model_id == "vietlegal-" + version.hash and version.fingerprint == "fp_" + version.hash
    # A new version copied over the tracked directory: dvc.lock is stale and must not name it.
    (adapter / "adapter_config.json").write_text("{}", encoding="utf-8")
    copied = adapter_version(adapter)
    assert copied.source == "content" and copied.hash == dir_md5(adapter)[:12] != version.hash


def test_version_falls_back_to_the_content_hash(tiny_adapter):
    version = adapter_version(tiny_adapter)
    assert (version.hash, version.source) == (dir_md5(tiny_adapter)[:12], "content")


def test_dir_md5_is_the_md5_dvc_records(tmp_path, tiny_adapter):
    """The version of an adapter is the hash `dvc add` gives its directory (so dvc.lock can confirm it)."""
    import shutil
    import subprocess

    import yaml

    from vietlegal.model.adapter import dir_md5

    shutil.copytree(tiny_adapter, tmp_path / "adapter")
    (tmp_path / "adapter" / "nested").mkdir()
    (tmp_path / "adapter" / "nested" / "Điều 1.txt").write_text("Điều 1", encoding="utf-8")
    env = {"DVC_NO_ANALYTICS": "1", "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    for cmd in (["git", "init", "-q"], [sys.executable, "-m", "dvc", "init", "-q"],
                [sys.executable, "-m", "dvc", "add", "-q", "adapter"]):
        subprocess.run(cmd, cwd=tmp_path, check=True, env=env, capture_output=True)
    recorded = yaml.safe_load((tmp_path / "adapter.dvc").read_text(encoding="utf-8"))["outs"][0]["md5"]
    assert recorded == dir_md5(tmp_path / "adapter") + ".dir"
