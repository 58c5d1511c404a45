"""DDP tests of the IEMOCAP recipe on 2 CPU processes (gloo), with the tiny
models and corpus of ``tests/test_recipes.py`` (shared with it per
session): a training smoke test, and evaluation parity (``--test_only``
on 1 and on 2 processes give exactly the same metrics and predictions).

Authors
 * speechbrain_dpm developers 2026
"""

import importlib.util
import json
import os
import socket
import sys
from pathlib import Path

import pytest

_spec = importlib.util.spec_from_file_location(
    "_dpm_recipe_tests", Path(__file__).with_name("test_recipes.py")
)
rt = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(rt)

ROW = rt.ROWS_BY_ID["IEMOCAP_dpm"]


def _has_torchrun():
    """torchrun (``torch.distributed.run``) with the gloo backend."""
    try:
        import torch.distributed as dist
    except ImportError:
        return False
    return (
        dist.is_available()
        and dist.is_gloo_available()
        and importlib.util.find_spec("torch.distributed.run") is not None
    )


# torchrun of this interpreter (the one on PATH may be another install)
TORCHRUN = [sys.executable, "-m", "torch.distributed.run"]
pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not _has_torchrun(), reason="torchrun / gloo unavailable"
    ),
]


def free_port():
    """A TCP port free on localhost now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun(args, log_path, out, env=None):
    """Runs the recipe on 2 gloo processes; a run that hangs once its
    results are written is killed after 30 s of silence."""
    cmd = [
        *TORCHRUN,
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        *args,
        "--distributed_backend=gloo",
    ]
    return rt.run_logged(
        cmd, log_path, env=env, done_file=Path(out) / "results" / "test.md"
    )


def check_ddp_run(run):
    """Fails with the run's output unless it exited cleanly."""
    assert run["rc"] == 0, rt.describe(run)


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """The tiny Whisper and Llama folders."""
    return rt.tiny_models(tmp_path_factory)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """The tiny IEMOCAP corpus."""
    return rt.corpus(tmp_path_factory, "IEMOCAP")


def test_ddp_training_smoke(models, data, tmp_path):
    """``torchrun --nproc_per_node=2`` trains one epoch, evaluates and
    exports."""
    out = tmp_path / "out"
    args = rt.recipe_args(ROW, data, out, models)
    run = torchrun(args, tmp_path / "stdout.txt", out)
    check_ddp_run(run)
    for name in ("train_log.txt", "results/test.json", "model/sllm.ckpt"):
        assert (out / name).exists(), name
    assert "epoch: 1 -" in (out / "train_log.txt").read_text()
    assert list((out / "save").glob("CKPT+*"))


def read_predictions(folder):
    """Strategy → rows of ``results/test_predictions_<strategy>.jsonl``."""
    out = {}
    for path in sorted((Path(folder) / "results").glob("test_predictions_*")):
        name = path.stem[len("test_predictions_") :]
        out[name] = [
            json.loads(line) for line in path.read_text().split("\n") if line
        ]
    return out


def same_up_to_rounding(a, b, path="", tol=1e-6):
    """Asserts two JSON values are equal, floats to ``tol`` (absolute)."""
    if isinstance(a, dict):
        assert isinstance(b, dict) and a.keys() == b.keys(), path
        for key in a:
            same_up_to_rounding(a[key], b[key], f"{path}.{key}", tol)
    elif isinstance(a, list):
        assert isinstance(b, list) and len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            same_up_to_rounding(x, y, f"{path}[{i}]", tol)
    elif isinstance(a, float) or isinstance(b, float):
        assert b == pytest.approx(a, abs=tol), path
    else:
        assert a == b, path


def test_ddp_evaluation_parity(models, data, tmp_path_factory, tmp_path):
    """Evaluating a trained folder with ``--test_only`` on 1 and on 2
    processes gives the same predictions and metrics. Each rank reads its
    dialogues side by side (``eval_batch_size``), so the batches differ
    from the single process's: labels and counts are identical, floats
    equal up to rounding."""
    trained = rt.recipe_run(tmp_path_factory, ROW["id"], prefetch=False)
    assert trained["rc"] == 0, "the training run failed (see test_recipes)"
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same math in both
    outs, runs = {}, {}
    for mode in ("single", "ddp"):
        out = rt.copy_run(trained["folder"], tmp_path / mode)
        ckpts = sorted(p.name for p in (out / "save").glob("CKPT+*"))
        args = rt.recipe_args(ROW, data, out, models, extra=["--test_only"])
        log = tmp_path / f"{mode}.txt"
        if mode == "single":
            runs[mode] = rt.run_logged([sys.executable, *args], log, env=env)
        else:
            runs[mode] = torchrun(args, log, out, env=env)
        outs[mode] = out
        # --test_only trains nothing and saves no new checkpoint
        assert "Going into epoch" not in runs[mode]["output"]
        assert ckpts == sorted(p.name for p in (out / "save").glob("CKPT+*"))
    assert runs["single"]["rc"] == 0, rt.describe(runs["single"])
    check_ddp_run(runs["ddp"])
    metrics = {
        mode: json.loads((out / "results" / "test.json").read_text())
        for mode, out in outs.items()
    }
    assert set(metrics["single"]) == {"utterance", "one_pass", "sliding", "dpm"}
    same_up_to_rounding(metrics["single"], metrics["ddp"])
    preds = {mode: read_predictions(out) for mode, out in outs.items()}
    assert set(preds["ddp"]) == set(preds["single"]) == set(metrics["single"])
    n_dialogues = len({r["dialogue_id"] for r in preds["single"]["dpm"]})
    assert n_dialogues >= 2, "too few test dialogues to shard"
    for name, rows in preds["single"].items():
        # the DPM diagnostics' dialogue counter included
        same_up_to_rounding(rows, preds["ddp"][name], name)
