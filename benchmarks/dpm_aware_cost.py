"""Training cost of DPM-aware training against plain training.

On one model and one synthetic corpus (``--dialogues`` dialogues of
``--turns`` utterances of ``--utt`` units), this times one training epoch

* plain: ``DPMBrain``'s packed windows of ``--n-ctx`` tokens;
* DPM-aware, first order (adapted memory weights treated as constants);
* DPM-aware, second order (through the inner steps);

with the same optimizer and the same labels: every utterance is trained on
its label once per epoch in every mode, so the epoch ratio is the overhead
per trained label (per "step" of the data). Per-batch medians are printed
too. The ratio ``dpm_aware / plain`` (first and second order) is printed
last. Timing depends only on the shapes: ``smollm2-135m`` falls back to its
architecture with random weights when the packaged weights are missing.

Usage::

    python benchmarks/dpm_aware_cost.py --model tiny smollm2-135m

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
import statistics
import time

import speechbrain as sb
import torch
from common import build_llm

from speechbrain_dpm.brain import DPMBrain
from speechbrain_dpm.dpm_training import DPMAwareBrain
from speechbrain_dpm.sequence import make_utterance
from speechbrain_dpm.settings import DPMAwareOptions
from speechbrain_dpm.sllm import EmotionSLLM

N_UNITS, N_EMO = 512, 4


def corpus(space, dialogues, turns, utt, feat_dim, seed=0):
    """Random dialogues of fixed-length utterances."""
    gen = torch.Generator().manual_seed(seed)
    data = []
    for d in range(dialogues):
        utts = [
            make_utterance(
                torch.randint(0, N_UNITS, (utt,), generator=gen),
                torch.randn(utt, feat_dim, generator=gen),
                space,
                label=int(torch.randint(0, N_EMO, (1,), generator=gen)),
            )
            for _ in range(turns)
        ]
        data.append((f"d{d}", utts))
    return data


def time_epoch(sllm, data, args, meta_order=None):
    """Seconds of one training epoch, and per-batch seconds: plain training
    (``meta_order=None``) or DPM-aware of that order."""
    hp = {
        "audio_loss_weight": 0.5,
        "emotion_loss_weight": 0.5,
        "emotion_class_weights": None,
        "emotions": [str(i) for i in range(N_EMO)],
        "n_ctx": args.n_ctx,
        "utterance_windows": False,
        "train_logger": None,
    }
    brain_class = DPMBrain
    if meta_order is not None:
        brain_class = DPMAwareBrain
        hp["dpm_aware_training"] = DPMAwareOptions(
            meta_order=meta_order,
            dpm_n_context=args.n_r,
            inner_utts=args.inner,
            outer_utts=args.outer,
            inner_lr=1e-3,
            memory_rank=args.rank,
            memory_alpha=2 * args.rank,
        )
    brain = brain_class(
        modules={"sllm": sllm},
        opt_class=lambda params: torch.optim.AdamW(params, lr=1e-4),
        hparams=hp,
        run_opts={"device": args.device, "noprogressbar": True},
    )
    brain.init_optimizers()
    loader = brain.make_window_loader(
        data, sb.Stage.TRAIN, batch_size=args.batch_size
    )
    brain.modules.train()
    brain.on_stage_start(sb.Stage.TRAIN)
    for batch in list(loader)[: args.warmup]:
        brain.fit_batch(batch)
    times = []
    for batch in loader:
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        brain.fit_batch(batch)
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return sum(times), statistics.median(times), len(times)


def main(argv=None):
    """Times the three modes per model; prints the ratio last."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", nargs="+", default=["tiny"])
    parser.add_argument("--dialogues", type=int, default=2)
    parser.add_argument("--turns", type=int, default=6)
    parser.add_argument("--utt", type=int, default=50, help="units")
    parser.add_argument("--n-r", type=int, default=64)
    parser.add_argument("--n-ctx", type=int, default=256)
    parser.add_argument("--inner", type=int, default=4)
    parser.add_argument("--outer", type=int, default=2)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--feat-dim", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=2)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    lines = []
    for name in args.model:
        llm, source = build_llm(name)
        torch.manual_seed(0)
        sllm = EmotionSLLM(llm, N_UNITS, N_EMO, feat_dim=args.feat_dim)
        sllm.to(args.device)
        data = corpus(
            sllm.space, args.dialogues, args.turns, args.utt, args.feat_dim
        )
        result = {}
        modes = {"plain": None, "first": "first", "second": "second"}
        for mode, order in modes.items():
            total, median, n = time_epoch(sllm, data, args, order)
            result[mode] = total
            print(
                f"[{name}, {source}] {mode}: epoch {total:.3f} s "
                f"({n} batches, median {median:.3f} s/batch)"
            )
        lines.append(
            f"[{name}] ratio per epoch vs plain: first-order "
            f"{result['first'] / result['plain']:.2f}x, second-order "
            f"{result['second'] / result['plain']:.2f}x"
        )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
