"""Growth with conversation length: time and peak memory, DPM vs one pass.

For dialogues of 10, 50, 100, 200, 400 and 1000 synthetic utterances (60-100
units each with continuous features, no audio needed) this runs

* ``dpm``: the streaming DPM strategy (``n_r`` context + temporary LoRA
  written per utterance), utterances arriving one at a time;
* ``one_pass``: the full-context model without memory, one causal pass
  that must cut the conversation into windows of ``--window`` tokens (the
  LLM's context length by default) and restart its context at each cut;

each length and strategy in a *fresh subprocess* (so that peak RSS values
are comparable), alternating the strategies. Peak memory is the process's
resident set sampled every 5 ms during the dialogue (total, and the growth
over the RSS just before it). The time ratio is taken from the longest
DPM run's prefix times (streaming: its first n utterances are a dialogue
of n), so both times come from one run; the ratio of separate runs is
reported too. Targets: DPM peak memory flat within 10 %
from the shortest to the longest dialogue; ``t(400) / t(100) <= 4.4``
(printed last). With SmolLM2 a 400-utterance DPM dialogue takes far longer
than 15 minutes on 2 CPU cores (about 7-30 s per utterance), so SmolLM2
runs 5 and 20 utterances by default (``--lengths``, ``--max-utts``) and
the headline becomes the largest 4x pair run, e.g. ``t(20) / t(5)``.

Usage::

    python benchmarks/growth.py                  # SmolLM2, 5 20
    python benchmarks/growth.py --model tiny     # 10 ... 1000

Authors
 * speechbrain_dpm developers 2026
"""

import time

from common import (
    PeakRSS,
    base_parser,
    build_sllm,
    child_result,
    max_rss_mb,
    plot_path,
    run_child,
    set_threads,
    synthetic_dialogue,
    write_json,
)

STRATEGIES = ("dpm", "one_pass")
HIDDEN = "internal: run one dialogue in this process"


def child(args):
    """One dialogue of ``args.child`` utterances with one strategy.

    Parameters
    ----------
    args : argparse.Namespace
        The options (``child``: length, ``strategy``).

    Returns
    -------
    dict
        Seconds, peak RSS (MiB), where one pass cut the dialogue.
    """
    from speechbrain_dpm.context import build_strategy
    from speechbrain_dpm.sequence import pack_dialogue

    sllm, weights = build_sllm(args.model)
    window = args.window or sllm.llm.config.max_position_embeddings
    n = args.child
    result = {"n_utts": n, "strategy": args.strategy, "weights": weights}
    if args.strategy == "dpm":
        dpm = build_strategy(
            "dpm",
            sllm,
            n_context=args.n_r,
            n_limit=args.n_limit,
            rank=args.rank,
            alpha=2 * args.rank,
            lr=1e-3,
        )
        # Streaming: utterances are generated one at a time, so the input
        # does not accumulate either (as from a microphone).
        utts = (
            synthetic_dialogue(1, sllm.space, seed=args.seed * 100003 + i)[0]
            for i in range(n)
        )
        tokens, marks = 0, {}
        with PeakRSS() as peak:
            start = time.perf_counter()
            dpm.start()
            for i, utt in enumerate(utts):
                tokens += len(utt)
                dpm.push(utt)
                dpm.clear_records()  # as DPMEmotionRecognizer does
                if i + 1 in args.marks:  # a shorter dialogue ends here
                    marks[i + 1] = time.perf_counter() - start
            dpm.close()
            seconds = time.perf_counter() - start
        result["prefix_seconds"] = marks
    else:
        utts = synthetic_dialogue(n, sllm.space, seed=args.seed)
        tokens = sum(len(u) for u in utts)
        one_pass = build_strategy("one_pass", sllm, max_tokens=window)
        with PeakRSS() as peak:
            start = time.perf_counter()
            one_pass.predict_dialogue(utts)
            seconds = time.perf_counter() - start
        windows = pack_dialogue(utts, window)
        result["n_windows"] = len(windows)
        first = len(windows[0].emo_positions)
        result["first_cut_utt"] = first if len(windows) > 1 else None
    result.update(
        tokens=tokens,
        window=window,
        seconds=seconds,
        per_utt_s=seconds / n,
        rss_base_mb=peak.base_mb,
        rss_peak_mb=peak.peak_mb,
        rss_growth_mb=peak.peak_mb - peak.base_mb,
        max_rss_mb=max_rss_mb(),
    )
    return result


def plot(rows, path, truncation):
    """Time and peak RSS against length, one curve per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name in STRATEGIES:
        mine = [r for r in rows if r["strategy"] == name]
        xs = [r["n_utts"] for r in mine]
        axes[0].plot(xs, [r["seconds"] for r in mine], "o-", label=name)
        axes[1].plot(xs, [r["rss_peak_mb"] for r in mine], "o-", label=name)
    for ax, label in zip(axes, ("total time (s)", "peak RSS (MiB)")):
        if truncation:
            ax.axvline(truncation, ls=":", c="gray", label="one pass cuts")
        ax.set_xscale("log")
        ax.set_xlabel("utterances in the dialogue")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"wrote {path}")


def main(argv=None):
    """Runs the benchmark (or one child); returns the report."""
    parser = base_parser(__doc__, "growth.json")
    parser.add_argument(
        "--lengths",
        nargs="+",
        type=int,
        default=None,
        help="default: 10 50 100 200 400 1000 (tiny), 5 20 (else)",
    )
    parser.add_argument(
        "--max-utts",
        type=int,
        default=None,
        help="drop longer dialogues (default: none for tiny, 20 else)",
    )
    parser.add_argument("--n-r", type=int, default=256)
    parser.add_argument("--n-limit", type=int, default=512)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument(
        "--window",
        type=int,
        default=None,
        help="one-pass context window (default: the LLM's)",
    )
    parser.add_argument("--child", type=int, default=None, help=HIDDEN)
    parser.add_argument("--strategy", default="dpm", help=HIDDEN)
    parser.add_argument("--marks", nargs="*", type=int, default=[], help=HIDDEN)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    if args.child is not None:
        child_result(child(args))
        return None

    tiny = args.model == "tiny"
    lengths = args.lengths or (
        [10, 50, 100, 200, 400, 1000] if tiny else [5, 20]
    )
    max_utts = args.max_utts or (None if tiny else 20)
    if max_utts:
        lengths = [n for n in lengths if n <= max_utts]
    common = ["--model", args.model, "--threads", str(args.threads)]
    common += ["--seed", str(args.seed), "--n-r", str(args.n_r)]
    common += ["--n-limit", str(args.n_limit), "--rank", str(args.rank)]
    if args.window:
        common += ["--window", str(args.window)]
    rows = []
    for i, n in enumerate(lengths):
        # Alternate which strategy goes first, so load drifts hit both.
        order = STRATEGIES if i % 2 == 0 else STRATEGIES[::-1]
        for name in order:
            marks = ["--marks"] + [str(m) for m in lengths if m <= n]
            row = run_child(
                __file__,
                common + ["--child", str(n), "--strategy", name] + marks,
            )
            rows.append(row)
            print(
                f"[{name:8s} n={n:5d}] {row['seconds']:8.2f} s "
                f"({row['per_utt_s'] * 1e3:.0f} ms/utt)  peak RSS "
                f"{row['rss_peak_mb']:.0f} MiB (+{row['rss_growth_mb']:.0f})"
                + (
                    f"  windows {row['n_windows']}"
                    if name == "one_pass"
                    else ""
                ),
                flush=True,
            )
    rows.sort(key=lambda r: (r["strategy"], r["n_utts"]))
    dpm = {r["n_utts"]: r for r in rows if r["strategy"] == "dpm"}
    one = [r for r in rows if r["strategy"] == "one_pass"]
    cuts = [r["first_cut_utt"] for r in one if r["first_cut_utt"]]
    truncation = min(cuts) if cuts else None
    peaks = [r["rss_peak_mb"] for r in dpm.values()]
    growths = [r["rss_growth_mb"] for r in dpm.values()]
    flat = max(peaks) / min(peaks) - 1
    pairs = [(4 * a, a) for a in sorted(dpm) if 4 * a in dpm]
    big, small = max(pairs) if pairs else (max(dpm), min(dpm))
    # Headline: both lengths timed in one run (the longest dialogue's
    # prefixes: DPM is streaming, so its first n utterances are exactly a
    # dialogue of n), so load drift between subprocesses cancels.
    prefix = {int(k): v for k, v in dpm[max(dpm)]["prefix_seconds"].items()}
    growth = prefix[big] / prefix[small]
    separate = dpm[big]["seconds"] / dpm[small]["seconds"]
    report = {
        "model": args.model,
        "weights": rows[0]["weights"],
        "lengths_run": lengths,
        "n_r": args.n_r,
        "n_limit": args.n_limit,
        "rank": args.rank,
        "window": rows[0]["window"],
        "one_pass_first_cut_utt": truncation,
        "dpm_peak_rss_spread": flat,
        "dpm_rss_growth_mb": {r: dpm[r]["rss_growth_mb"] for r in dpm},
        "time_pair": [big, small],
        "time_ratio": growth,
        "time_ratio_separate_runs": separate,
        "dpm_prefix_seconds": prefix,
        "targets": {
            "dpm_peak_rss_spread <= 0.10": flat <= 0.10,
            "time_ratio <= 4.4 (4x more utterances)": growth <= 4.4,
        },
        "rows": rows,
    }
    write_json(args.out, report)
    if args.out:
        plot(rows, plot_path(args.out), truncation)
    where = (
        f"after utterance {truncation}"
        if truncation
        else "never (dialogues fit the window)"
    )
    print(f"one pass ({rows[0]['window']}-token window) truncates {where}")
    print(
        f"DPM peak RSS {min(peaks):.0f}..{max(peaks):.0f} MiB over "
        f"{min(dpm)}..{max(dpm)} utterances: spread {100 * flat:.1f} % "
        f"(target <= 10 %: {'met' if flat <= 0.10 else 'MISSED'}); growth "
        f"over the pre-dialogue RSS {min(growths):.0f}..{max(growths):.0f} "
        "MiB"
    )
    print(f"(separate subprocesses: t({big}) / t({small}) = {separate:.2f})")
    print(
        f"DPM t({big}) / t({small}) = {growth:.2f} (target <= "
        f"{4.4 * big / small / 4:.1f}: "
        f"{'met' if growth <= 4.4 * big / small / 4 else 'MISSED'})"
    )
    return report


if __name__ == "__main__":
    main()
