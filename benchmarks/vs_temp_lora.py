"""DPM's memory writes against Temp-LoRA's per-document procedure.

Temp-LoRA (dpm.md section 1), re-implemented here as the reference, per
document (= dialogue): a *new* ``peft.get_peft_model`` wrap (LoRA on every
projection, dropout 0.05) and a *new* AdamW (betas 0.9/0.999, eps 1e-7)
with a constant schedule after 2 warm-up steps (stepped once per chunk);
per chunk (= utterance, with ``n_r`` masked context tokens before it):
evaluate first (loss with the adapter on and off), then 2 training steps
(train mode, gradient clipping 1.0); the wrap is unloaded at the end.

Ours: ``DPMStrategy`` with its ``LoRAMemory`` (one adapter reset in place
per conversation) on the same model and the same windows, with
``steps=2`` so that both make the same number of updates (2 per
utterance); it also reads the emotion after each write (the product).
Both use the same rank and learning rate (``--rank``, ``--lr``) so that
only the procedure differs. The model is the EmotionSLLM without a fixed
LoRA (peft's wrap and our injected adapters do not mix), on synthetic
unit sequences with a dialogue-specific Markov structure (so the memory
can learn). Documents alternate ours / reference; the ratio is the median
over documents of (reference time per update) / (ours). The loss each
reaches is the prequential audio loss (each utterance's loss before its
own update), averaged over the last half of each dialogue.

Usage::

    python benchmarks/vs_temp_lora.py
    python benchmarks/vs_temp_lora.py --model tiny --utts 6 --docs 1

Authors
 * speechbrain_dpm developers 2026
"""

import copy
import statistics
import time

import torch
from common import (
    base_parser,
    build_sllm,
    median,
    set_threads,
    synthetic_dialogue,
    write_json,
)

from speechbrain_dpm.dpm_strategy import DPMStrategy
from speechbrain_dpm.llm import ALL_LINEAR
from speechbrain_dpm.sequence import Window


def chunk_windows(utts, n_r):
    """Per utterance: ``n_r`` tokens of masked context, then its tokens.

    The same windows as ``DPMStrategy.write_windows`` (no ``n_limit``).
    """
    tokens = torch.cat([u.tokens for u in utts])
    feats = None
    if utts[0].feats is not None:
        feats = torch.cat([u.feats for u in utts])
    windows, start = [], 0
    for utt in utts:
        end = start + len(utt)
        lo = max(start - n_r, 0)
        targets = torch.zeros(end - lo, dtype=torch.bool)
        targets[start - lo :] = True
        targets[0] = False
        windows.append(
            Window(
                tokens[lo:end],
                None if feats is None else feats[lo:end],
                targets,
                [end - lo - 1],
                [-1],
            )
        )
        start = end
    return windows


def window_loss(sllm, window):
    """Audio loss of a window's targets (the loss both procedures use)."""
    tokens = window.tokens[None]
    feats = None if window.feats is None else window.feats[None]
    hidden = sllm.hidden_states(tokens, feats)
    return sllm.audio_loss(hidden, tokens, window.audio_targets[None])


def temp_lora_document(sllm, windows, rank, alpha, lr, steps=2):
    """Temp-LoRA's loop on one document; returns per-chunk losses.

    Parameters
    ----------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model (no fixed LoRA); its LLM is wrapped and unwrapped here.
    windows : list of Window
        The chunks with their masked context.
    rank, alpha, lr : float
        LoRA rank, alpha and learning rate.
    steps : int
        Training steps per chunk (Temp-LoRA: 2 epochs).

    Returns
    -------
    dict
        ``loss_on`` / ``loss_off``: evaluation losses of each chunk before
        its training (adapter on / off); ``updates``.
    """
    import peft
    from transformers import get_constant_schedule_with_warmup

    config = peft.LoraConfig(
        task_type="CAUSAL_LM",
        inference_mode=False,
        r=rank,
        lora_alpha=alpha,
        lora_dropout=0.05,
        target_modules=list(ALL_LINEAR),  # every linear but the heads
    )
    base = sllm.llm
    model = peft.get_peft_model(base, config)
    sllm.llm = model
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(
        params, lr=lr, betas=(0.9, 0.999), eps=1e-7, weight_decay=0.0
    )
    schedule = get_constant_schedule_with_warmup(optimizer, 2)
    out = {"loss_on": [], "loss_off": [], "updates": 0}
    try:
        for window in windows:
            sllm.eval()
            with torch.no_grad():  # evaluate first (prequential)
                out["loss_on"].append(window_loss(sllm, window).item())
                with model.disable_adapter():
                    loss = window_loss(sllm, window)
                    out["loss_off"].append(loss.item())
            sllm.train()
            for _ in range(steps):
                loss = window_loss(sllm, window)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                optimizer.zero_grad(set_to_none=True)
                out["updates"] += 1
            schedule.step()
    finally:
        sllm.eval()
        sllm.llm = model.unload()  # the module dies with the document
    return out


def ours_document(dpm, utts):
    """Our DPM on one dialogue; returns per-utterance losses (pre-write)."""
    dpm.clear_records()
    steps0 = dpm.memory.n_steps
    dpm.predict_dialogue(utts)
    losses = [r["loss_with"] for r in dpm.records]
    return {"loss_on": losses, "updates": dpm.memory.n_steps - steps0}


def late_mean(values):
    """Mean over the last half of a dialogue."""
    values = [v for v in values if v is not None]
    return statistics.mean(values[len(values) // 2 :])


def main(argv=None):
    """Runs the benchmark; returns the report."""
    parser = base_parser(__doc__, "vs_temp_lora.json")
    parser.add_argument("--utts", type=int, default=12, help="per document")
    parser.add_argument("--docs", type=int, default=3)
    parser.add_argument("--n-r", type=int, default=256)
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument(
        "--no-context-grad",
        action="store_true",
        help="ours back-propagates through the utterance only",
    )
    args = parser.parse_args(argv)
    set_threads(args.threads)

    sllm, weights = build_sllm(args.model, lora_rank=0)
    for param in sllm.parameters():  # only the LoRAs are ever trained
        param.requires_grad_(False)
    # Same weights, separate modules: peft's wrap and our injected adapter
    # must not see each other.
    ref_sllm = copy.deepcopy(sllm)
    dpm = DPMStrategy(
        sllm,
        n_context=args.n_r,
        rank=args.rank,
        alpha=2 * args.rank,
        lr=args.lr,
        steps=args.steps,
        context_grad=not args.no_context_grad,
    )
    docs = []
    for doc in range(-1, args.docs):  # document -1: warm-up, not counted
        utts = synthetic_dialogue(
            args.utts if doc >= 0 else 1,
            sllm.space,
            seed=args.seed + 1000 * (doc + 1),
            feats=sllm.feat_proj is not None,
        )
        windows = chunk_windows(utts, args.n_r)
        runs = {}
        order = ("ours", "ref") if doc % 2 == 0 else ("ref", "ours")
        for name in order:
            start = time.perf_counter()
            if name == "ours":
                res = ours_document(dpm, utts)
            else:
                res = temp_lora_document(
                    ref_sllm,
                    windows,
                    args.rank,
                    2 * args.rank,
                    args.lr,
                    args.steps,
                )
            res["seconds"] = time.perf_counter() - start
            res["per_update_s"] = res["seconds"] / res["updates"]
            runs[name] = res
        if doc < 0:
            continue
        runs["speedup"] = (
            runs["ref"]["per_update_s"] / runs["ours"]["per_update_s"]
        )
        for name in ("ours", "ref"):
            runs[name]["late_loss"] = late_mean(runs[name]["loss_on"])
        runs["late_loss_no_memory"] = late_mean(runs["ref"]["loss_off"])
        docs.append(runs)
        print(
            f"[doc {doc}] per update: ours {runs['ours']['per_update_s']:.3f}"
            f" s, Temp-LoRA {runs['ref']['per_update_s']:.3f} s "
            f"({runs['speedup']:.2f}x); late loss ours "
            f"{runs['ours']['late_loss']:.3f}, Temp-LoRA "
            f"{runs['ref']['late_loss']:.3f}, no memory "
            f"{runs['late_loss_no_memory']:.3f}",
            flush=True,
        )
    speedup = median([d["speedup"] for d in docs])
    ours_loss = statistics.mean(d["ours"]["late_loss"] for d in docs)
    ref_loss = statistics.mean(d["ref"]["late_loss"] for d in docs)
    base_loss = statistics.mean(d["late_loss_no_memory"] for d in docs)
    report = {
        "model": args.model,
        "weights": weights,
        "utts": args.utts,
        "docs": args.docs,
        "n_r": args.n_r,
        "rank": args.rank,
        "lr": args.lr,
        "updates_per_utt": args.steps,
        "context_grad": not args.no_context_grad,
        "speedup": speedup,
        "late_loss": {
            "ours": ours_loss,
            "temp_lora": ref_loss,
            "no_memory": base_loss,
        },
        "targets": {
            "speedup >= 1.5": speedup >= 1.5,
            "ours loss <= temp_lora loss": ours_loss <= ref_loss,
        },
        "docs_detail": docs,
    }
    write_json(args.out, report)
    print(
        f"late-dialogue audio loss: ours {ours_loss:.4f}, Temp-LoRA "
        f"{ref_loss:.4f}, no memory {base_loss:.4f} (ours no worse: "
        f"{'met' if ours_loss <= ref_loss else 'MISSED'})"
    )
    print(
        f"time per update Temp-LoRA / ours = {speedup:.2f} (target >= 1.5: "
        f"{'met' if speedup >= 1.5 else 'MISSED'})"
    )
    return report


if __name__ == "__main__":
    main()
