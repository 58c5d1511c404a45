"""Cost of one DPM utterance against one forward and one LoRA step.

On one model and one window (``n_r`` context tokens + one utterance of
``--utt`` units + ``<audio_end>``) this times, interleaved (a, b, c, c', a,
b, ...) so that machine load affects them alike:

* (a) one forward: the sliding-window read of the utterance;
* (b) one forward + backward + optimizer step of the temporary LoRA on the
  utterance's audio loss (``LoRAMemory.write`` with ``steps=1``);
* (c) one DPM utterance (write + read) exactly as ``DPMStrategy.push`` runs
  it, with ``read_order="after_write"`` (the paper's) and (c')
  ``"before_write"`` (one forward serves the read and the write);
* (b') the step of (b) with ``context_grad=False``: the context runs as a
  key/value cache without a graph, the backward covers the utterance only;

and prints ``dpm_per_utt / (a + b)`` last (target <= 1.3; about 1: the
module adds no work beyond the maths; below 1: work is shared). Ratios are
medians of per-round ratios. ``--profile`` adds a torch.profiler table
of one DPM utterance at the first ``n_r`` (what dominates). Timing depends
only on the shapes, so ``smollm2-135m`` falls back to the same
architecture with random weights when the packaged weights are
unavailable (recorded in the JSON).

Usage::

    python benchmarks/dpm_cost.py                      # SmolLM2, 256 1024
    python benchmarks/dpm_cost.py --model tiny --n-r 64 --repeats 2

Authors
 * speechbrain_dpm developers 2026
"""

import torch
from common import (
    build_sllm,
    interleaved,
    median,
    ratio,
    set_threads,
    synthetic_dialogue,
    write_json,
)

from speechbrain_dpm.context import SlidingWindow
from speechbrain_dpm.dpm_strategy import DPMStrategy
from speechbrain_dpm.memory import LoRAMemory
from speechbrain_dpm.sequence import context_window


def fill_context(dpm, history):
    """A conversation of ``dpm`` in the state it has after ``history``.

    Same history and write context as ``push``-ing every utterance, minus
    the writes themselves (minutes with SmolLM2 at n_r = 1024; timing
    depends only on the shapes, not on what the memory holds).
    """
    conv = dpm.open()
    for prev in history:
        dpm.remember(conv, prev)
    tokens = torch.cat([u.tokens for u in history])
    conv.ctx_tokens = tokens[-dpm.n_context :]
    if history[0].feats is not None:
        feats = torch.cat([u.feats for u in history])
        conv.ctx_feats = feats[-dpm.n_context :]
    return conv


def run_case(sllm, n_r, utt_units, memory_kw, repeats, warmup):
    """Times (a), (b), (c), (c') interleaved on one window.

    Parameters
    ----------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    n_r : int
        Context tokens before the utterance.
    utt_units : int
        Units of the utterance.
    memory_kw : dict
        ``LoRAMemory`` options.
    repeats : int
        Timed rounds.
    warmup : int
        Untimed rounds.

    Returns
    -------
    dict
        Medians (seconds), ratios and the raw samples.
    """
    n_ctx = n_r // (utt_units + 1) + 2
    utts = synthetic_dialogue(
        n_ctx,
        sllm.space,
        lengths=(utt_units, utt_units),
        feats=sllm.feat_proj is not None,
    )
    history, utt = utts[:-1], utts[-1]
    window = context_window(history, utt, n_r)

    sliding = SlidingWindow(sllm, n_context=n_r)
    memory = LoRAMemory(sllm, **memory_kw)
    dpms = {}
    for order in ("after_write", "before_write"):
        memory.read_order = order
        dpm = DPMStrategy(sllm, n_context=n_r, memory=memory)
        dpms[order] = (dpm, fill_context(dpm, history))

    def step_without_context_grad():
        """A write whose context is a cache without gradient."""
        memory.context_grad = False
        try:
            memory.write(window)
        finally:
            memory.context_grad = True

    def push(order):
        """One DPM turn in the given read/write order."""
        # Pushing the same utterance again keeps the window at n_r + utt.
        memory.read_order = order
        dpm, conv = dpms[order]
        dpm.push_many([conv], [utt])
        conv.records.clear()

    times = interleaved(
        {
            "forward": lambda: sliding.read(window),
            "step": lambda: memory.write(window),
            "step_no_context_grad": step_without_context_grad,
            "dpm_after_write": lambda: push("after_write"),
            "dpm_before_write": lambda: push("before_write"),
        },
        repeats,
        warmup,
    )
    memory.read_order = "after_write"
    floor = [a + b for a, b in zip(times["forward"], times["step"])]
    out = {
        "n_r": n_r,
        "window_tokens": int(window.tokens.shape[0]),
        "forward_s": median(times["forward"]),
        "step_s": median(times["step"]),
        "step_over_forward": ratio(times["step"], times["forward"]),
        "step_no_context_grad_s": median(times["step_no_context_grad"]),
        "step_no_context_grad_over_step": ratio(
            times["step_no_context_grad"], times["step"]
        ),
    }
    for order in ("after_write", "before_write"):
        key = f"dpm_{order}"
        out[f"{key}_s"] = median(times[key])
        out[f"ratio_{order}"] = ratio(times[key], floor)
        out[f"{key}_over_forward"] = ratio(times[key], times["forward"])
    out["samples"] = times
    return out, dpms, utt


def profile_push(dpm, conv, utt, rows=15):
    """torch.profiler table of one DPM utterance (self CPU time).

    Parameters
    ----------
    dpm : DPMStrategy
        The strategy.
    conv : speechbrain_dpm.context.Conversation
        Its conversation, with a full context.
    utt : speechbrain_dpm.sequence.Utterance
        The utterance pushed.
    rows : int
        Rows of the table.

    Returns
    -------
    list of dict
        The top operators: name, self CPU ms, total CPU ms, calls.
    """
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        dpm.push_many([conv], [utt])
    events = sorted(
        prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True
    )
    total = sum(e.self_cpu_time_total for e in events) or 1.0
    top = []
    for event in events[:rows]:
        top.append(
            {
                "op": event.key,
                "self_ms": event.self_cpu_time_total / 1e3,
                "self_share": event.self_cpu_time_total / total,
                "calls": event.count,
            }
        )
        print(
            f"  {event.key[:48]:48s} {event.self_cpu_time_total / 1e3:9.1f} "
            f"ms {100 * event.self_cpu_time_total / total:5.1f} % "
            f"x{event.count}"
        )
    return top


def main(argv=None):
    """Runs the benchmark; returns the report."""
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model",
        nargs="+",
        default=["smollm2-135m"],
        help="tiny | smollm2-135m",
    )
    parser.add_argument("--n-r", nargs="+", type=int, default=[256, 1024])
    parser.add_argument("--utt", type=int, default=80, help="units")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--out", default="results/benchmarks/dpm_cost.json")
    args = parser.parse_args(argv)
    set_threads(args.threads)

    results = []
    for name in args.model:
        try:
            sllm, weights = build_sllm(name)
        except Exception as err:
            print(f"[{name}] skipped: {err!r}")
            results.append({"model": name, "skipped": repr(err)})
            continue
        for n_r in args.n_r:
            case, dpms, utt = run_case(
                sllm,
                n_r,
                args.utt,
                {"rank": args.rank, "alpha": 2 * args.rank, "lr": 1e-3},
                args.repeats,
                args.warmup,
            )
            case.update(model=name, weights=weights)
            if args.profile and n_r == args.n_r[0]:
                print(f"[{name} n_r={n_r}] profile of one DPM utterance:")
                dpm, conv = dpms["after_write"]
                dpm.memory.read_order = "after_write"
                case["profile"] = profile_push(dpm, conv, utt)
            for dpm, conv in dpms.values():
                dpm.release(conv)
            results.append(case)
            print(
                f"[{name} n_r={n_r} T={case['window_tokens']}] "
                f"a) forward {case['forward_s'] * 1e3:.1f} ms  "
                f"b) step {case['step_s'] * 1e3:.1f} ms "
                f"({case['step_over_forward']:.2f}x), without context grad "
                f"{case['step_no_context_grad_s'] * 1e3:.1f} ms "
                f"({case['step_no_context_grad_over_step']:.2f}x of b)  "
                f"c) dpm after_write "
                f"{case['dpm_after_write_s'] * 1e3:.1f} ms, "
                f"before_write {case['dpm_before_write_s'] * 1e3:.1f} ms"
            )
    report = {
        "utt_units": args.utt,
        "rank": args.rank,
        "repeats": args.repeats,
        "target": "ratio_after_write <= 1.3",
        "results": results,
    }
    write_json(args.out, report)
    for case in results:
        if "skipped" in case:
            continue
        ok = "met" if case["ratio_after_write"] <= 1.3 else "MISSED"
        print(
            f"{case['model']} n_r={case['n_r']}: dpm_per_utt / (a + b) = "
            f"{case['ratio_after_write']:.3f} (after_write, target <= 1.3: "
            f"{ok}), {case['ratio_before_write']:.3f} (before_write)"
        )
    return report


if __name__ == "__main__":
    main()
