"""Recipe tests: every YAML of ``recipes/*/hparams`` runs end to end (prep →
units → 1 epoch → evaluation → export) on a tiny generated corpus with a
tiny random Whisper and a tiny random Llama, as listed with its debug flags
and file checks in ``tests/recipes/<Dataset>.csv`` (SpeechBrain's
recipe-test convention). Also: every YAML is listed, every YAML key is
used and every key the code reads is declared (both directions; SpeechBrain's
own yaml-vs-script check through ``tools/check_yaml.py``), and a stopped run
resumes from its last checkpoint.

The helpers here are shared with ``tests/test_ddp.py``; corpora, tiny
models and recipe runs are built once per pytest session (in the session's
base temporary folder) and reused by both modules.

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import importlib.util
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CSV_DIR = REPO / "tests" / "recipes"


def _load_tool(name):
    spec = importlib.util.spec_from_file_location(name, REPO / "tools" / name)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


CHECK_YAML = _load_tool("check_yaml.py")
# Python files that may read a recipe's hparams (besides its train.py).
HPARAM_READERS = CHECK_YAML.HPARAM_READERS
RUN_TIMEOUT = 600  # seconds per recipe run (a tiny run takes ~30 s)
STALL_TIMEOUT = 180  # no new output for this long: the run hangs


# -- the CSV rows ------------------------------------------------------------


def read_rows():
    """All rows of ``tests/recipes/*.csv``, each with an ``id``
    (``<Dataset>_<yaml stem>``)."""
    rows = []
    for path in sorted(CSV_DIR.glob("*.csv")):
        with open(path, newline="", encoding="utf-8") as fin:
            for row in csv.DictReader(fin):
                row["id"] = f"{row['Dataset']}_{Path(row['Hparam_file']).stem}"
                rows.append(row)
    return rows


ROWS = read_rows()
ROWS_BY_ID = {row["id"]: row for row in ROWS}


def file_checks(row):
    """The files of ``test_debug_checks``'s ``file_exists=[...]``."""
    match = re.search(r"file_exists=\[([^\]]*)\]", row["test_debug_checks"])
    if match is None:
        return []
    return [f.strip() for f in match.group(1).split(",") if f.strip()]


# -- session-wide shared folders --------------------------------------------


def shared_folder(tmp_path_factory, name, build):
    """A folder under the session's base temporary folder, built once per
    session by ``build(path)`` (whichever test module asks first).

    Returns
    -------
    tuple
        ``(path, info)``: the folder and what ``build`` returned (JSON).
    """
    path = tmp_path_factory.getbasetemp() / "shared" / name
    marker = path.with_name(name + ".done.json")
    if not marker.exists():
        if path.exists():
            shutil.rmtree(path)
        path.mkdir(parents=True)
        info = build(path)
        marker.write_text(json.dumps(info))
    return path, json.loads(marker.read_text())


def build_tiny_models(root):
    """A tiny random HF Whisper (64-d, 2 encoder blocks) and a tiny random
    Llama, saved under ``root`` (absolute paths), the Llama also in
    bfloat16 (``llm_bf16``, for the ``*_paper.yaml`` rows: a real
    checkpoint folder's dtype, checkpointing and new-row paths)."""
    from speechbrain_dpm.testing import save_tiny_whisper, tiny_llm

    whisper = str((root / "whisper").resolve())
    save_tiny_whisper(whisper)
    llm = str((root / "llm").resolve())
    tiny_llm(hidden_size=32, layers=2, heads=4).save_pretrained(llm)
    llm_bf16 = str((root / "llm_bf16").resolve())
    tiny = tiny_llm(hidden_size=32, layers=2, heads=4)
    tiny.to(torch.bfloat16).save_pretrained(llm_bf16)
    return {"whisper": whisper, "llm": llm, "llm_bf16": llm_bf16}


def build_corpus(dataset):
    """A builder of the tiny synthetic corpus of ``dataset``. IEMOCAP: 10
    dialogues of 3-4 turns, two per session, so the test split (Session5)
    has two dialogues to shard over DDP ranks."""

    def build(root):
        from speechbrain_dpm import synth

        if dataset == "IEMOCAP":
            config = synth.IemocapConfig(n_dialogues=10, turns=(3, 4))
            synth.generate_iemocap(root, config, n_jobs=1)
        else:
            config = synth.MeldConfig(n_dialogues=(2, 1, 1), turns=(3, 4))
            synth.generate_meld(root, config, n_jobs=1)
        return {"root": str(root.resolve())}

    return build


def tiny_models(tmp_path_factory):
    """Folders of the tiny Whisper and Llama (shared by the session)."""
    return shared_folder(tmp_path_factory, "tiny_models", build_tiny_models)[1]


def corpus(tmp_path_factory, dataset):
    """Root of the tiny corpus of ``dataset`` (shared by the session)."""
    name = f"corpus_{dataset}"
    return shared_folder(tmp_path_factory, name, build_corpus(dataset))[1][
        "root"
    ]


# -- running a recipe ------------------------------------------------------


def recipe_args(row, data_folder, output_folder, models, extra=()):
    """The script's arguments for a CSV row (tiny sources injected);
    ``extra`` flags replace the row's flags of the same name."""
    names = {flag.split("=")[0] for flag in extra}
    llm = models["llm"]
    if Path(row["Hparam_file"]).stem.endswith("_paper"):
        llm = models["llm_bf16"]
    flags = [
        flag
        for flag in row["test_debug_flags"].split()
        if flag.split("=")[0] not in names
    ]
    return [
        row["Script_file"],
        row["Hparam_file"],
        f"--data_folder={data_folder}",
        f"--output_folder={output_folder}",
        f"--encoder_source={models['whisper']}",
        f"--llm_source={llm}",
        *flags,
        "--device=cpu",
        "--noprogressbar",
        *extra,
    ]


def run_logged(
    cmd,
    log_path,
    env=None,
    timeout=RUN_TIMEOUT,
    stall=STALL_TIMEOUT,
    done_file=None,
    done_stall=30,
):
    """Runs ``cmd`` (cwd: the repository) with its output in ``log_path``.

    The process group is killed when the run exceeds ``timeout`` seconds,
    or writes nothing for ``stall`` seconds (``done_stall`` once
    ``done_file`` exists: a run that has written its results but neither
    writes nor exits any more hangs).

    Returns
    -------
    dict
        ``rc`` (None if killed), ``killed`` (None, ``timeout`` or
        ``stall``), ``seconds``, ``output``.
    """
    full_env = dict(os.environ if env is None else env)
    full_env.setdefault("HF_HUB_OFFLINE", "1")
    full_env.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Tiny models run far faster on one thread, above all on a busy
    # machine (DPM evaluation: 0.3 s on 1 thread, 13 s on 2, measured).
    full_env.setdefault("OMP_NUM_THREADS", "1")
    start = time.monotonic()
    killed = None
    with open(log_path, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            cwd=REPO,
            env=full_env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        size, last_change = -1, start
        while proc.poll() is None:
            time.sleep(0.5)
            now = time.monotonic()
            new_size = os.path.getsize(log_path)
            if new_size != size:
                size, last_change = new_size, now
            quiet = stall
            if done_file is not None and os.path.exists(done_file):
                quiet = min(stall, done_stall)
            if now - start > timeout:
                killed = "timeout"
            elif now - last_change > quiet:
                killed = "stall"
            if killed:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
                break
    output = Path(log_path).read_text(encoding="utf-8", errors="replace")
    return {
        "rc": None if killed else proc.returncode,
        "killed": killed,
        "seconds": round(time.monotonic() - start, 1),
        "output": output,
    }


def describe(run):
    """A failure message: how the run ended and its last output."""
    how = f"killed ({run['killed']})" if run["killed"] else f"rc={run['rc']}"
    return f"run {how} after {run['seconds']} s; output tail:\n" + "\n".join(
        run["output"].splitlines()[-40:]
    )


#: Recipe runs (one single-threaded process each) in flight at once: one
#: per core of the 2-core CI machine.
PARALLEL_RUNS = 2
_RUNS = {}


def _build_run(tmp_path_factory, row_id, models, data):
    row = ROWS_BY_ID[row_id]

    def build(path):
        out = path / "out"
        cmd = [sys.executable, *recipe_args(row, data, out, models)]
        run = run_logged(cmd, path / "stdout.txt")
        run.pop("output")
        return {**run, "folder": str(out)}

    return shared_folder(tmp_path_factory, f"run_{row_id}", build)[1]


def recipe_run(tmp_path_factory, row_id, prefetch=True):
    """The single-process run of a CSV row, once per session.

    With ``prefetch``, the first call starts every row's run,
    ``PARALLEL_RUNS`` at a time in background threads (each run is its own
    process), and waits for the one asked for; without, only this row is
    run (if not yet run).

    Returns
    -------
    dict
        ``run_logged``'s result (without ``output``) plus ``folder``, the
        run's output folder; never modify it, copy it (``copy_run``).
    """
    if not prefetch and row_id not in _RUNS:
        data = corpus(tmp_path_factory, ROWS_BY_ID[row_id]["Dataset"])
        return _build_run(
            tmp_path_factory, row_id, tiny_models(tmp_path_factory), data
        )
    if not _RUNS:
        from concurrent.futures import ThreadPoolExecutor

        # shared inputs first, in this thread (no two builders of one)
        models = tiny_models(tmp_path_factory)
        data = {
            ds: corpus(tmp_path_factory, ds)
            for ds in sorted({row["Dataset"] for row in ROWS})
        }
        pool = ThreadPoolExecutor(PARALLEL_RUNS)
        first = [row_id] + [r for r in sorted(ROWS_BY_ID) if r != row_id]
        for rid in first:
            _RUNS[rid] = pool.submit(
                _build_run,
                tmp_path_factory,
                rid,
                models,
                data[ROWS_BY_ID[rid]["Dataset"]],
            )
        pool.shutdown(wait=False)
    return _RUNS[row_id].result()


def copy_run(folder, dest, drop=("results", "model")):
    """Copies a run's output folder, without its evaluation outputs."""
    shutil.copytree(folder, dest)
    for name in drop:
        shutil.rmtree(Path(dest) / name, ignore_errors=True)
    return Path(dest)


def read_stdout(folder):
    """The captured output of a shared run."""
    return (Path(folder).parent / "stdout.txt").read_text(errors="replace")


# -- tests ---------------------------------------------------------------


# The follow-up tests come first: each starts one more run of its own,
# which then overlaps the rows' runs still in flight (the tier is
# CPU-bound on 2 cores; last, they ran one at a time on an idle core).
def test_stopped_run_resumes(tmp_path_factory, tmp_path):
    """A run stopped after epoch 1 resumes there: asked for 2 epochs, it
    recovers the checkpoint and runs epoch 2 only."""
    row = ROWS_BY_ID["IEMOCAP_context"]
    first = recipe_run(tmp_path_factory, row["id"])
    assert first["rc"] == 0, "the first run failed (see test_recipe_row)"
    out = copy_run(first["folder"], tmp_path / "out")
    data = corpus(tmp_path_factory, row["Dataset"])
    args = recipe_args(
        row,
        data,
        out,
        tiny_models(tmp_path_factory),
        extra=["--number_of_epochs=2"],
    )
    run = run_logged([sys.executable, *args], tmp_path / "stdout.txt")
    assert run["rc"] == 0, describe(run)
    assert "Going into epoch 2" in run["output"]
    assert "Going into epoch 1" not in run["output"]
    assert "Loading a checkpoint" in run["output"]
    log = (out / "train_log.txt").read_text()
    assert len(re.findall(r"^epoch: 1 -", log, re.M)) == 1
    assert len(re.findall(r"^epoch: 2 -", log, re.M)) == 1
    assert (out / "results" / "test.json").exists()
    assert len(list((out / "save").glob("CKPT+*"))) >= 1


def test_init_from_starts_from_another_runs_tensors(tmp_path_factory, tmp_path):
    """``--init_from`` loads another run's trained tensors into a fresh run
    (with 0 epochs, the exported model is exactly those tensors), and the
    output folder's own checkpoints are not involved. Rows set to ``false``
    in ``--test_strategies`` are not evaluated."""
    row = ROWS_BY_ID["IEMOCAP_dpm"]
    first = recipe_run(tmp_path_factory, row["id"])
    assert first["rc"] == 0, "the first run failed (see test_recipe_row)"
    init = Path(first["folder"]) / "model" / "sllm.ckpt"
    out = tmp_path / "out"
    args = recipe_args(
        row,
        corpus(tmp_path_factory, row["Dataset"]),
        out,
        tiny_models(tmp_path_factory),
        extra=[
            "--number_of_epochs=0",
            f"--init_from={init}",
            "--test_strategies={one_pass: false, sliding: false, dpm: false}",
        ],
    )
    run = run_logged([sys.executable, *args], tmp_path / "stdout.txt")
    assert run["rc"] == 0, describe(run)
    assert "Initialised the SLLM from" in run["output"]
    got = torch.load(out / "model" / "sllm.ckpt")
    want = torch.load(init)
    assert got.keys() == want.keys()
    assert all(torch.equal(got[k], want[k]) for k in want)
    evaluated = sorted(p.name for p in (out / "results").glob("*.jsonl"))
    assert evaluated == ["test_predictions_utterance.jsonl"]


def test_two_stage_run_resumes_in_its_stage(tmp_path_factory, tmp_path):
    """A two-stage run (``dpm_feedback.yaml``) stopped after stage 1
    resumes in stage 2: stage 1 is not trained again, stage 2 starts from
    stage 1's tensors and trains; the exported row is the best on valid,
    with the reason written next to the model."""
    row = ROWS_BY_ID["IEMOCAP_dpm_feedback"]
    first = recipe_run(tmp_path_factory, row["id"])
    assert first["rc"] == 0, "the first run failed (see test_recipe_row)"
    out = copy_run(first["folder"], tmp_path / "out")
    # as if stopped right after stage 1: stage 2 has no checkpoint yet
    for ckpt in (out / "save").glob("CKPT+*"):
        shutil.rmtree(ckpt)
    (out / "train_log.txt").unlink()
    args = recipe_args(
        row,
        corpus(tmp_path_factory, "IEMOCAP"),
        out,
        tiny_models(tmp_path_factory),
    )
    run = run_logged([sys.executable, *args], tmp_path / "stdout.txt")
    assert run["rc"] == 0, describe(run)
    stage1 = (out / "train_log_classifier.txt").read_text()
    assert len(re.findall(r"^epoch: 1 -", stage1, re.M)) == 1
    stage2 = (out / "train_log.txt").read_text()
    assert len(re.findall(r"^epoch: 1 -", stage2, re.M)) == 1
    assert list((out / "save").glob("CKPT+*"))
    valid = json.loads((out / "results" / "valid.json").read_text())
    test = json.loads((out / "results" / "test.json").read_text())
    assert list(test)[0] == "classifier" and "dpm" in test
    best = max(valid, key=lambda name: valid[name]["UA"])
    reason = (out / "model" / "EXPORT_REASON.txt").read_text()
    assert f"best_on_valid chose {best}" in reason
    exported = (out / "model" / "hyperparams.yaml").read_text()
    want = "utterance" if best == "classifier" else best
    assert re.search(rf"^strategy: {want}\b", exported, re.M), exported


@pytest.mark.parametrize("row_id", sorted(ROWS_BY_ID))
def test_recipe_row(row_id, tmp_path_factory):
    """The row's recipe runs for one epoch and writes its checked files."""
    run = recipe_run(tmp_path_factory, row_id)
    out = Path(run["folder"])
    assert run["rc"] == 0, describe({**run, "output": read_stdout(out)})
    missing = [
        f for f in file_checks(ROWS_BY_ID[row_id]) if not (out / f).exists()
    ]
    assert not missing, f"missing outputs: {missing}"
    results = json.loads((out / "results" / "test.json").read_text())
    yaml_text = Path(REPO / ROWS_BY_ID[row_id]["Hparam_file"]).read_text()
    for name, metrics in results.items():
        assert name in yaml_text
        for key in ("WA", "UA", "WF1"):
            assert 0.0 <= metrics[key] <= 100.0
    assert "epoch: 1" in (out / "train_log.txt").read_text()


def test_every_yaml_is_listed():
    """Every recipe YAML has a row (SpeechBrain's consistency check), and
    every file a row names exists."""
    listed = {row["Hparam_file"] for row in ROWS}
    yamls = {
        str(p.relative_to(REPO)) for p in REPO.glob("recipes/*/hparams/*.yaml")
    }
    assert yamls, "no recipe YAML found"
    assert not yamls - listed, f"not in tests/recipes/*.csv: {yamls - listed}"
    for row in ROWS:
        for col in ("Script_file", "Hparam_file", "Data_prep_file"):
            assert (REPO / row[col]).is_file(), f"{row['id']}: {row[col]}"
        if row["Readme_file"]:
            assert (REPO / row["Readme_file"]).is_file(), row["Readme_file"]
        assert file_checks(row), f"{row['id']}: no file_exists checks"
        assert "--number_of_epochs=1" in row["test_debug_flags"]


def top_level_keys(yaml_text):
    """The top-level keys of a HyperPyYAML file (``__``-keys excluded)."""
    keys = re.findall(r"^([A-Za-z_]\w*)\s*:", yaml_text, re.M)
    return [k for k in keys if not k.startswith("__")]


def key_is_used(key, yaml_text, code):
    """True if ``key`` is referenced by ``!ref <key...>`` in the YAML,
    read from the hparams in ``code``, or a SpeechBrain run option (e.g.
    ``precision``: ``sb.Brain`` reads it from the hparams)."""
    from speechbrain.core import RunOptions

    if re.search(rf"<{key}\b", yaml_text) or key in RunOptions().as_dict():
        return True
    return key in keys_read(code)


def keys_read(code):
    """The hparams keys that ``code`` reads: ``hparams["key"]``,
    ``hparams.key`` (``self.hparams.key``) and ``"key" in hparams``.

    Example
    -------
    >>> sorted(keys_read('hparams["a"]; self.hparams.b; "c" in hparams'))
    ['a', 'b', 'c']
    """
    patterns = [
        r"hparams\[\s*['\"](\w+)['\"]\s*\]",
        r"hparams\.(\w+)\b(?!\()",  # not a method call (hparams.get(...))
        r"['\"](\w+)['\"] in hparams\b",
    ]
    return {key for p in patterns for key in re.findall(p, code)}


#: Keys read only on a code path that a YAML opts into by declaring the key
#: on the left (which is read there too): a two-stage YAML
#: (``recipe.has_classifier_stage``), a DPM-aware one
#: (``recipe.is_dpm_aware``: its options are the keys of its
#: ``dpm_aware_training`` block), one that can turn emotion feedback on
#: (the ``emotion_feedback`` branches of ``brain.DPMBrain``: training
#: windows, validation read).
GATED_READS = {
    "dpm_aware_training": set(),
    "classifier_checkpointer": {
        "classifier_hparams",
        "classifier_counter",
        "classifier_loader_kwargs",
        "classifier_logger",
    },
    "emotion_feedback": {"feedback_source", "feedback_noise", "n_r", "n_limit"},
}


def yaml_block_keys(yaml_text, key):
    """The keys of a top-level YAML block (``key: !new:...`` and its
    indented lines), or None if the YAML has no such block."""
    match = re.search(rf"^{key}:.*\n((?:[ \t]+.*\n|\n)*)", yaml_text, re.M)
    if match is None:
        return None
    return re.findall(r"^    (\w+)\s*:", match.group(1), re.M)


def recipe_yamls():
    """``(path, its YAML text, the code that runs it)`` of every recipe
    YAML."""
    readers = "".join(p.read_text() for p in HPARAM_READERS)
    return [
        (
            path,
            path.read_text(),
            readers + (path.parents[1] / "train.py").read_text(),
        )
        for path in sorted(REPO.glob("recipes/*/hparams/*.yaml"))
    ]


def test_every_yaml_key_is_used():
    """No YAML key the recipe never reads (SpeechBrain's
    ``check_yaml_vs_script``)."""
    unused = {}
    for path, text, code in recipe_yamls():
        keys = [
            k for k in top_level_keys(text) if not key_is_used(k, text, code)
        ]
        if keys:
            unused[str(path.relative_to(REPO))] = keys
    assert not unused, f"YAML keys never used: {unused}"


def test_every_key_the_code_reads_is_declared():
    """The other direction: every hparams key that the code running a YAML
    reads is a key of that YAML (so ``--key=...`` overrides it), and every
    option of a typed settings block (``SLLMSettings``,
    ``DPMAwareOptions``) is a key of its block (no silent default)."""
    from speechbrain.core import RunOptions

    from speechbrain_dpm.settings import DPMAwareOptions, SLLMSettings

    fields = {
        "sllm": set(SLLMSettings.names()) | {"llm"},
        "dpm_aware_training": set(DPMAwareOptions.names()),
    }
    missing, incomplete = {}, {}
    for path, text, code in recipe_yamls():
        name = str(path.relative_to(REPO))
        declared = set(top_level_keys(text)) | set(RunOptions().as_dict())
        read = keys_read(code)
        for gate, keys in GATED_READS.items():
            assert keys <= keys_read(code), f"stale GATED_READS[{gate!r}]"
            if gate not in declared:
                read -= keys | {gate}
        if read - declared:
            missing[name] = sorted(read - declared)
        for block, wanted in fields.items():
            keys = yaml_block_keys(text, block)
            if keys is not None and set(keys) != wanted:
                incomplete[f"{name}: {block}"] = sorted(set(keys) ^ wanted)
    assert not missing, f"keys read by the code, not in the YAML: {missing}"
    assert not incomplete, f"typed blocks not in full: {incomplete}"
