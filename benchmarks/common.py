"""Helpers shared by the benchmark scripts.

This machine is shared and noisy, so every benchmark reports *ratios*
measured in one run, with the compared measurements interleaved
(``interleaved``: a, b, c, a, b, c, ...) and summarised by medians so that
load changes hit them alike. Peak memory is measured in a fresh
subprocess per configuration (``run_child``) so that peaks are comparable.

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
import json
import platform
import random
import resource
import statistics
import subprocess
import sys
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

import torch

N_UNITS, N_EMO, FEAT_DIM = 512, 4, 384
RESULTS = Path("results/benchmarks")

# SmolLM2-135M's shape, for timing when its weights are not available.
SMOLLM2_SHAPE = {
    "hidden_size": 576,
    "intermediate_size": 1536,
    "num_hidden_layers": 30,
    "num_attention_heads": 9,
    "num_key_value_heads": 3,
    "head_dim": 64,
    "vocab_size": 49152,
    "max_position_embeddings": 8192,
    "rms_norm_eps": 1e-5,
    "tie_word_embeddings": True,
}


def base_parser(doc, out_name, model="smollm2-135m"):
    """An argument parser with the options every benchmark takes.

    Parameters
    ----------
    doc : str
        The script's docstring (its first line is the description).
    out_name : str
        Default JSON file name under ``results/benchmarks``.
    model : str
        Default ``--model``.

    Returns
    -------
    argparse.ArgumentParser
        With ``--model``, ``--threads``, ``--seed`` and ``--out``.
    """
    parser = argparse.ArgumentParser(description=doc.split("\n")[0])
    parser.add_argument(
        "--model", default=model, help="tiny | smollm2-135m | HF folder"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(RESULTS / out_name))
    return parser


def set_threads(threads):
    """Sets torch's intra-op threads (explicitly: timings depend on it).

    Parameters
    ----------
    threads : int
        Number of threads.
    """
    torch.set_num_threads(int(threads))


def build_llm(name):
    """The LLM to time, and where its weights come from.

    Parameters
    ----------
    name : str
        ``tiny`` (a random 2-layer Llama), ``smollm2-135m`` (the packaged
        weights, else random weights of the same shape) or an HF folder.

    Returns
    -------
    llm : transformers.PreTrainedModel
        The model, in eval mode.
    weights : str
        Where the weights come from.
    """
    from speechbrain_dpm.llm import load_llm
    from speechbrain_dpm.testing import tiny_llm

    if name == "tiny":
        return tiny_llm(), "random (tiny_llm)"
    try:
        return load_llm(name), "packaged weights"
    except Exception as err:  # no package: same shape, random weights
        if name != "smollm2-135m":
            raise
        from transformers import LlamaConfig, LlamaForCausalLM

        print(f"[{name}] weights unavailable ({err!r}); random weights")
        torch.manual_seed(0)
        llm = LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE)).eval()
        return llm, "random (same shape)"


def build_sllm(name, audio_input="units+continuous", lora_rank=16, seed=0):
    """An EmotionSLLM over ``build_llm(name)`` (the recipe's layout).

    Parameters
    ----------
    name : str
        See ``build_llm``.
    audio_input : str
        ``units+continuous`` (recipe default) or ``units``.
    lora_rank : int
        Rank of the fixed LoRA (0: none).
    seed : int
        Seed of the new rows.

    Returns
    -------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        In eval mode.
    weights : str
        Where the LLM weights come from.
    """
    from speechbrain_dpm.sllm import EmotionSLLM

    llm, weights = build_llm(name)
    torch.manual_seed(seed)
    sllm = EmotionSLLM(
        llm,
        N_UNITS,
        N_EMO,
        feat_dim=FEAT_DIM,
        audio_input=audio_input,
        lora_rank=lora_rank,
        lora_dropout=0.0,
    )
    return sllm.eval(), weights


def synthetic_dialogue(
    n_utts, space, seed=0, lengths=(60, 100), feat_dim=FEAT_DIM, feats=True
):
    """A dialogue of synthetic unit sequences with learnable structure.

    Units follow a dialogue-specific sparse Markov chain (each unit has 4
    likely successors), so a memory written on the first utterances can
    lower the audio loss of the later ones; features are a fixed random
    vector per unit plus noise.

    Parameters
    ----------
    n_utts : int
        Number of utterances.
    space : speechbrain_dpm.sequence.TokenSpace
        The SLLM's token space.
    seed : int
        Seed (one dialogue per seed).
    lengths : tuple of int
        Inclusive range of units per utterance (25 Hz: 2.4-4 s).
    feat_dim : int
        Dimension of the features.
    feats : bool
        Attach continuous features (``units+continuous`` models).

    Returns
    -------
    list of speechbrain_dpm.sequence.Utterance
        The dialogue (labels random in 0..C-1, never used as input).
    """
    from speechbrain_dpm.sequence import make_utterance

    rng = random.Random(seed)
    gen = torch.Generator().manual_seed(seed)
    k = space.n_units
    succ = [[rng.randrange(k) for _ in range(4)] for _ in range(k)]
    table = torch.randn(k, feat_dim, generator=gen)
    utts = []
    unit = rng.randrange(k)
    for _ in range(n_utts):
        ids = []
        for _ in range(rng.randint(lengths[0], lengths[1])):
            if rng.random() < 0.1:
                unit = rng.randrange(k)
            else:
                unit = succ[unit][rng.randrange(4)]
            ids.append(unit)
        units = torch.tensor(ids, dtype=torch.long)
        frames = None
        if feats:
            noise = 0.3 * torch.randn(len(ids), feat_dim, generator=gen)
            frames = (table[units] + noise).half().float()
        label = rng.randrange(space.n_emotions)
        utts.append(make_utterance(units, frames, space, label=label))
    return utts


def interleaved(fns, repeats=5, warmup=1):
    """Times several callables in alternation; returns all the samples.

    Parameters
    ----------
    fns : dict
        Name -> callable without arguments.
    repeats : int
        Timed rounds; each round runs every callable once, in order.
    warmup : int
        Untimed rounds first.

    Returns
    -------
    dict
        Name -> list of seconds (one per round).
    """
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    times = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(values):
    """The median of a list of numbers."""
    return statistics.median(values)


def ratio(num, den):
    """Median of per-round ratios of two interleaved sample lists.

    Parameters
    ----------
    num, den : list of float
        Samples of the same rounds.

    Returns
    -------
    float
        ``median(num[i] / den[i])``: each ratio compares measurements taken
        moments apart, so it is robust to slow load changes.
    """
    return statistics.median(a / b for a, b in zip(num, den))


def rss_mb():
    """Current resident set size of this process, in MiB."""
    import psutil

    return psutil.Process().memory_info().rss / 2**20


class PeakRSS:
    """Samples this process's RSS in a thread; gives the peak, in MiB.

    Parameters
    ----------
    interval : float
        Seconds between samples.

    Example
    -------
    >>> with PeakRSS() as peak:
    ...     x = bytearray(10**6)
    >>> peak.peak_mb >= peak.base_mb
    True
    """

    def __init__(self, interval=0.005):
        self.interval = interval
        self.base_mb = self.peak_mb = 0.0
        self._stop = threading.Event()

    def _run(self):
        while not self._stop.is_set():
            self.peak_mb = max(self.peak_mb, rss_mb())
            time.sleep(self.interval)

    def __enter__(self):
        self.base_mb = self.peak_mb = rss_mb()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.peak_mb = max(self.peak_mb, rss_mb())
        return False


def max_rss_mb():
    """Peak RSS of this process since it started (getrusage), in MiB."""
    kb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return kb / 1024


def run_child(script, args, timeout=900):
    """Runs ``python <script> <args>`` in a fresh process; parses its JSON.

    The child must print one line ``RESULT <json>``.

    Parameters
    ----------
    script : str
        Path of the script.
    args : list of str
        Its arguments.
    timeout : float
        Seconds before the child is killed.

    Returns
    -------
    dict
        The child's result.
    """
    proc = subprocess.run(
        [sys.executable, script, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT "):
            return json.loads(line[len("RESULT ") :])
    raise RuntimeError(
        f"child {script} {args} failed (rc {proc.returncode}):\n"
        f"{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    )


def child_result(result):
    """Prints a child's result where ``run_child`` finds it."""
    print("RESULT " + json.dumps(result), flush=True)


def environment():
    """Facts about the run recorded in every JSON."""
    return {
        "date": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "cpus": __import__("os").cpu_count(),
        "load_avg_1m": __import__("os").getloadavg()[0],
    }


def write_json(path, report):
    """Writes a report (with ``environment()``) as JSON; returns the path.

    Parameters
    ----------
    path : str
        Output file (parents created); empty: nothing written.
    report : dict
        The results.

    Returns
    -------
    str or None
        The path written.
    """
    if not path:
        return None
    report = {"environment": environment(), **report}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text(json.dumps(report, indent=2))
    print(f"wrote {path}")
    return str(path)


def plot_path(out):
    """The PNG next to a JSON output (same stem)."""
    return str(Path(out).with_suffix(".png")) if out else None
