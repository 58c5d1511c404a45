"""Smoke tests of the benchmark scripts: each runs with its smallest options
(tiny random models, tiny sizes, one thread) in a subprocess and writes a
JSON report with the expected keys. The subprocesses are started
together (module fixture), so the file costs about one script's wall time.
They run whole scripts end to end, so they belong to the integration tier
(``pytest -m integration``), which CI runs after the fast tier.

Authors
 * speechbrain_dpm developers 2026
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "benchmarks"
HAS_ESPEAK = shutil.which("espeak-ng") is not None

ARGS = {
    "dpm_cost": ["--model", "tiny", "--n-r", "32", "--utt", "20"]
    + ["--repeats", "1", "--warmup", "0"],
    "growth": ["--model", "tiny", "--lengths", "2", "--n-r", "32"]
    + ["--n-limit", "160", "--window", "60"],
    "rtf": ["--model", "tiny", "--seconds", "6", "--n-units", "8"]
    + ["--streams", "2"],
    "batched": ["--model", "tiny", "--batches", "1", "2", "--repeats", "1"]
    + ["--warmup", "0", "--n-r", "16", "--utt", "6", "--target-batch", "2"],
    "vs_temp_lora": ["--model", "tiny", "--utts", "3", "--docs", "1"]
    + ["--n-r", "32"],
    "footprint": ["--models", "tiny", "--batch", "2", "--n-ctx", "64"]
    + ["--n-r", "32", "--utt", "20"],
}


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    """Runs every script at once; returns name -> (report, stdout)."""
    tmp = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = {}
    for name, args in ARGS.items():
        if name == "rtf" and not HAS_ESPEAK:
            continue
        cmd = [sys.executable, str(BENCH / f"{name}.py"), "--threads", "1"]
        cmd += ["--out", str(tmp / f"{name}.json"), *args]
        procs[name] = subprocess.Popen(
            cmd,
            cwd=str(tmp),
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
    out = {}
    for name, proc in procs.items():
        stdout, stderr = proc.communicate(timeout=600)
        out[name] = (proc.returncode, stdout, stderr, tmp / f"{name}.json")
    return out


def result(reports, name):
    """The JSON report and the last printed line of one script."""
    rc, stdout, stderr, path = reports[name]
    assert rc == 0, stdout[-2000:] + stderr[-4000:]
    return json.loads(path.read_text()), stdout.strip().splitlines()[-1]


def test_dpm_cost(reports):
    report, last = result(reports, "dpm_cost")
    case = report["results"][0]
    for key in ("forward_s", "step_s", "ratio_after_write"):
        assert key in case
    assert "ratio_before_write" in case and "window_tokens" in case
    assert "environment" in report
    assert "dpm_per_utt / (a + b)" in last


def test_growth(reports):
    report, last = result(reports, "growth")
    for key in ("dpm_peak_rss_spread", "time_ratio", "time_pair", "rows"):
        assert key in report
    assert "one_pass_first_cut_utt" in report and "targets" in report
    assert {r["strategy"] for r in report["rows"]} == {"dpm", "one_pass"}
    assert Path(reports["growth"][3]).with_suffix(".png").is_file()
    assert last.startswith("DPM t(2) / t(2)")


@pytest.mark.skipif(not HAS_ESPEAK, reason="espeak-ng is not installed")
def test_rtf(reports):
    report, last = result(reports, "rtf")
    for key in ("audio_s", "wall_s", "stages_s", "audio_s_per_wall_s"):
        assert key in report
    assert set(report["stages_s"]) == {"vad", "units", "dpm", "other"}
    assert report["audio_s"] >= 6
    assert report["streams"]["calls"] == 2 and report["streams"]["steps"] > 0
    assert "audio seconds per wall second" in last


def test_batched(reports):
    report, last = result(reports, "batched")
    assert set(report["grid"]) == {"fp32_b1", "fp32_b2", "bf16_b1", "bf16_b2"}
    assert report["grid"]["fp32_b1"]["speedup_vs_sequential_fp32"] == 1.0
    assert report["default"] == "bf16_b2"
    assert "/ sequential fp32 DPM utterances per second" in last


def test_vs_temp_lora(reports):
    report, last = result(reports, "vs_temp_lora")
    for key in ("speedup", "late_loss", "targets", "docs_detail"):
        assert key in report
    detail = report["docs_detail"][0]
    # Same number of updates: 2 per utterance each.
    assert detail["ours"]["updates"] == detail["ref"]["updates"] == 6
    assert "time per update" in last


def test_footprint(reports):
    report, last = result(reports, "footprint")
    row = report["rows"]["tiny"]
    assert row["source"] == "built here"
    assert 0 < row["trainable"] < row["params"]
    for key in ("weights_gib", "train_activations_gib", "dpm_eval_gib"):
        assert key in row
    measured = row["measured"]
    assert set(measured["peak_rss_mib"]) == {
        "checkpointing",
        "no_checkpointing",
    }
    # checkpointing recomputes: the same losses (float32, same seed)
    assert measured["loss_max_abs_diff"] < 1e-4
    act = row["train_activations_gib"]
    assert act["checkpointing"] < act["no_checkpointing"]
    assert last.startswith("| DPM FLOPs per utterance / forward")
