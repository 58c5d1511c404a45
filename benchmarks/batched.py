"""DPM throughput for many conversations at once: batch size × precision.

``DPMStrategy.push_many`` reads B conversations side by side (one padded
write forward/backward and one read forward per step, one memory slot per
conversation). This times one DPM step for B = 1, 2, 4, 8, 16 in float32
and bfloat16 autocast, interleaved (every configuration once per round, so
that machine load hits them alike), each conversation with a full
``n_r``-token context and a fresh utterance, and reports utterances per
second relative to B = 1 float32: the sequential float32 DPM, whose
computation is the one of the memory before it had a slot axis.

With ``--recipe-output DIR`` (a finished recipe run: ``DIR/model`` and
``DIR/save/test.json``) it also reads that run's test dialogues with DPM in
both precisions at ``--agree-batch`` and reports the argmax agreement of
bfloat16 with float32 and the memory diagnostics of both (a memory rounded
away would agree on labels but transfer less).

The ratio of the chosen default (``--target-batch``, ``bf16``) to the
sequential float32 DPM is printed last.

Usage::

    python benchmarks/batched.py                     # SmolLM2-135M, n_r 256
    python benchmarks/batched.py --recipe-output results/mini_iemocap
    python benchmarks/batched.py --model tiny --batches 1 2 --repeats 1

Authors
 * speechbrain_dpm developers 2026
"""

import torch
from common import (
    base_parser,
    build_sllm,
    interleaved,
    max_rss_mb,
    median,
    set_threads,
    synthetic_dialogue,
    write_json,
)

from speechbrain_dpm.dpm_strategy import DPMStrategy

#: The recipes' DPM row (recipes/IEMOCAP/hparams/dpm.yaml).
DPM_OPTS = {"n_context": 256, "n_limit": 512, "rank": 8, "alpha": 16}
DPM_OPTS["lr"] = 1e-3


def filled_conversations(dpm, n, n_r, utt_units):
    """``n`` conversations of ``dpm`` with a full ``n_r``-token context
    (history and write context as after pushing it, minus the writes:
    timing depends on the shapes, not on what the memory holds)."""
    convs, nexts = [], []
    for seed in range(n):
        utts = synthetic_dialogue(
            n_r // (utt_units + 1) + 2,
            dpm.sllm.space,
            seed=seed,
            lengths=(utt_units, utt_units),
            feats=dpm.sllm.feat_proj is not None,
        )
        conv = dpm.open()
        for prev in utts[:-1]:
            dpm.remember(conv, prev)
        tokens = torch.cat([u.tokens for u in utts[:-1]])
        conv.ctx_tokens = tokens[-n_r:]
        if utts[0].feats is not None:
            conv.ctx_feats = torch.cat([u.feats for u in utts[:-1]])[-n_r:]
        convs.append(conv)
        nexts.append(utts[-1])
    return convs, nexts


def time_grid(sllm, args):
    """Seconds per DPM step for every (precision, batch), interleaved."""
    strategies, cases = {}, {}
    for precision in args.precisions:
        dpm = DPMStrategy(
            sllm,
            n_context=args.n_r,
            n_limit=args.n_r + 2 * args.utt,
            precision=precision,
            rank=8,
            alpha=16,
            lr=1e-3,
        )
        strategies[precision] = dpm
        for batch in args.batches:
            convs, utts = filled_conversations(dpm, batch, args.n_r, args.utt)

            def step(dpm=dpm, convs=convs, utts=utts):
                """One batched turn of every conversation."""
                dpm.push_many(convs, utts)
                for conv in convs:
                    # Same window size every round: forget the new turn.
                    conv.history.pop()
                    conv.records.clear()

            cases[f"{precision}_b{batch}"] = step
    print(f"timing {len(cases)} cases x {args.repeats} rounds", flush=True)
    return interleaved(cases, args.repeats, args.warmup)


def agreement(folder, recipe_output, batch):
    """bf16 vs fp32 DPM reads of a trained run's test dialogues."""
    import os

    from speechbrain_dpm.dpm_strategy import summarize_diagnostics
    from speechbrain_dpm.recognizer import DPMEmotionRecognizer
    from speechbrain_dpm.training_data import load_dialogues

    rec = DPMEmotionRecognizer.from_hparams(folder, run_opts={"device": "cpu"})
    sllm = rec.mods.sllm
    manifest = os.path.join(recipe_output, "save", "test_units.json")
    dialogues = [
        utts for _, utts in load_dialogues(manifest, rec.emotions, sllm.space)
    ]
    opts = dict(rec.hparams.strategy_opts or {})
    opts.pop("precision", None)
    out = {}
    for precision in ("fp32", "bf16"):
        dpm = DPMStrategy(
            sllm,
            diagnostics=True,
            precision=precision,
            **{k: v for k, v in opts.items() if k != "diagnostics"},
        )
        preds = torch.cat(dpm.predict_dialogues(dialogues, batch))
        diag = summarize_diagnostics(dpm.records)
        out[precision] = {
            "pred": preds.argmax(-1),
            "transfer_ratio": diag["transfer"]["all"]["ratio"],
            "drift": diag["drift"]["all"],
        }
    same = (out["fp32"]["pred"] == out["bf16"]["pred"]).float().mean()
    return {
        "n_utterances": int(out["fp32"]["pred"].numel()),
        "argmax_agreement": float(same),
        "transfer_ratio": {p: out[p]["transfer_ratio"] for p in out},
        "drift": {p: out[p]["drift"] for p in out},
    }


def main(argv=None):
    """Runs the benchmark; returns the report."""
    parser = base_parser(__doc__, "batched.json")
    parser.add_argument("--n-r", type=int, default=256)
    parser.add_argument("--utt", type=int, default=75, help="units (3 s)")
    # (B = 16 with SmolLM2 at n_r 256 needs more than the 24 GB here: the
    # write's backward keeps every layer's activations of 16 windows.)
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--target-batch", type=int, default=8)
    parser.add_argument(
        "--layers", type=int, default=0, help="keep the first k blocks"
    )
    parser.add_argument("--device", default="cpu", help="e.g. cuda:0")
    parser.add_argument("--recipe-output", default=None)
    parser.add_argument("--agree-batch", type=int, default=8)
    parser.add_argument(
        "--agreement-only",
        action="store_true",
        help="only the bf16 / fp32 agreement of --recipe-output",
    )
    args = parser.parse_args(argv)
    set_threads(args.threads)

    report = {}
    if not args.agreement_only:
        sllm, weights = build_sllm(args.model)
        if args.layers:
            # The first k blocks only (the recipes' llm_layers): same shapes
            # per block, k/30 of the time and activation memory.
            blocks = sllm.llm.get_decoder().layers
            del blocks[args.layers :]
            sllm.llm.config.num_hidden_layers = args.layers
        sllm.to(args.device)
        times = time_grid(sllm, args)
        base = median(times[f"fp32_b{args.batches[0]}"]) / args.batches[0]
        grid = {}
        for name, samples in times.items():
            batch = int(name.split("_b")[1])
            per_utt = median(samples) / batch
            grid[name] = {
                "step_s": median(samples),
                "utts_per_s": 1 / per_utt,
                "speedup_vs_sequential_fp32": base / per_utt,
            }
            print(
                f"{name:10s} step {median(samples) * 1e3:8.1f} ms  "
                f"{1 / per_utt:6.2f} utt/s  x{base / per_utt:.2f}"
            )
        peak_gpu = None
        if torch.cuda.is_available() and args.device != "cpu":
            peak_gpu = torch.cuda.max_memory_allocated() / 2**20
            print(f"peak GPU memory {peak_gpu:.0f} MiB")
        report = {
            "peak_gpu_mib": peak_gpu,
            "peak_rss_mb": max_rss_mb(),
            "model": args.model,
            "weights": weights,
            "layers": args.layers or "all",
            "n_r": args.n_r,
            "utt_units": args.utt,
            "threads": args.threads,
            "device": args.device,
            "grid": grid,
            "samples_s": times,
        }
    if args.recipe_output:
        import os

        folder = os.path.join(args.recipe_output, "model")
        report["agreement"] = agreement(
            folder, args.recipe_output, args.agree_batch
        )
        agree = report["agreement"]
        print(
            f"bf16 vs fp32 on {agree['n_utterances']} test turns: argmax "
            f"agreement {100 * agree['argmax_agreement']:.1f} % (target >= "
            f"98); transfer ratio fp32 {agree['transfer_ratio']['fp32']} "
            f"bf16 {agree['transfer_ratio']['bf16']}"
        )
    if args.agreement_only:
        write_json(args.out, report)
        return report
    key = f"bf16_b{args.target_batch}"
    if key not in grid:
        key = max(grid, key=lambda k: grid[k]["speedup_vs_sequential_fp32"])
    report["default"] = key
    speedup = grid[key]["speedup_vs_sequential_fp32"]
    report["target"] = ">= 2x the sequential float32 DPM throughput"
    report["target_met"] = speedup >= 2
    write_json(args.out, report)
    print(
        f"{key} / sequential fp32 DPM utterances per second = {speedup:.2f} "
        f"(target >= 2: {'met' if speedup >= 2 else 'MISSED'})"
    )
    return report


if __name__ == "__main__":
    main()
