"""Cost of one DPM utterance against one forward and one LoRA step.

On one model and one window (``n_r`` context tokens + one utterance of
``--utt`` units + ``<audio_end>``) this times

* (a) one forward: the sliding-window read of the utterance;
* (b) one forward + backward + optimizer step of the temporary LoRA on the
  utterance's audio loss (``LoRAMemory.write`` with ``steps=1``);
* (c) one DPM utterance (write + read) exactly as ``DPMStrategy.push`` runs
  it, with ``read_order="after_write"`` (the paper's) and
  ``"before_write"`` (one forward serves the read and the write);

and prints ``dpm_per_utt / (a + b)`` last (≈ 1: the module adds no work
beyond the maths; below 1: work is shared). Timing depends only on the
shapes, so ``smollm2-135m`` falls back to the same architecture with random
weights when the packaged weights are unavailable (recorded in the JSON).

Usage::

    python benchmarks/dpm_cost.py --model tiny smollm2-135m \\
        --n-r 256 1024 --out results/dpm_cost.json

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
import json
import platform
import statistics
import time
from pathlib import Path

import torch

from speechbrain_dpm.context import SlidingWindow
from speechbrain_dpm.memory import DPMStrategy, LoRAMemory
from speechbrain_dpm.sequence import context_window, make_utterance
from speechbrain_dpm.sllm import EmotionSLLM, load_llm, tiny_llm

N_UNITS, N_EMO = 512, 4

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


def build_llm(name):
    """The LLM to time, and where its weights come from."""
    if name == "tiny":
        return tiny_llm(), "random (tiny_llm)"
    try:
        return load_llm(name), "packaged weights"
    except Exception as err:  # no assets module or no package: same shape
        if name != "smollm2-135m":
            raise
        from transformers import LlamaConfig, LlamaForCausalLM

        print(f"[{name}] weights unavailable ({err!r}); random weights")
        torch.manual_seed(0)
        return LlamaForCausalLM(LlamaConfig(**SMOLLM2_SHAPE)).eval(), (
            "random (same shape)"
        )


def sync(device):
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def timed(fn, device, repeats, warmup):
    """Median seconds of ``fn()`` over ``repeats`` runs."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        fn()
        sync(device)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def run_case(sllm, n_r, utt_units, memory_kw, device, repeats, warmup):
    """Times (a), (b), (c) on one window of ``n_r`` + one utterance."""
    gen = torch.Generator().manual_seed(0)
    # Context: earlier utterances of the same length, then the utterance.
    units = [
        torch.randint(0, N_UNITS, (utt_units,), generator=gen)
        for _ in range(n_r // (utt_units + 1) + 2)
    ]
    utts = [make_utterance(u, None, sllm.space) for u in units]
    history, utt = utts[:-1], utts[-1]
    window = context_window(history, utt, n_r)
    size = window.tokens.shape[0]

    sliding = SlidingWindow(sllm, n_context=n_r)
    forward = timed(lambda: sliding.read(window), device, repeats, warmup)

    memory = LoRAMemory(sllm, **memory_kw)
    memory.reset()
    step = timed(lambda: memory.write(window), device, repeats, warmup)
    memory.discard()

    out = {
        "n_r": n_r,
        "window_tokens": size,
        "forward_s": forward,
        "step_s": step,
        "step_over_forward": step / forward,
    }
    for order in ("after_write", "before_write"):
        dpm = DPMStrategy(sllm, n_context=n_r, memory=memory, diagnostics=False)
        memory.read_order = order
        dpm.start()
        for prev in history:  # fill the context (not timed)
            dpm.push(prev)

        # Pushing the same utterance again keeps the window at n_r + utt.
        def push(dpm=dpm):
            dpm.push(utt)

        per_utt = timed(push, device, repeats, warmup)
        dpm.close()
        out[f"dpm_{order}_s"] = per_utt
        out[f"ratio_{order}"] = per_utt / (forward + step)
        out[f"dpm_{order}_over_forward"] = per_utt / forward
    memory.read_order = "after_write"
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--model", nargs="+", default=["tiny"], help="tiny | smollm2-135m"
    )
    parser.add_argument("--n-r", nargs="+", type=int, default=[256, 1024])
    parser.add_argument("--utt", type=int, default=100, help="units")
    parser.add_argument("--rank", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--out", default="results/dpm_cost.json")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)

    results = []
    for name in args.model:
        try:
            llm, weights = build_llm(name)
        except Exception as err:
            print(f"[{name}] skipped: {err!r}")
            results.append({"model": name, "skipped": repr(err)})
            continue
        torch.manual_seed(0)
        sllm = EmotionSLLM(
            llm, N_UNITS, N_EMO, audio_input="units", lora_rank=16
        )
        sllm = sllm.to(args.device).eval()
        for n_r in args.n_r:
            case = run_case(
                sllm,
                n_r,
                args.utt,
                {"rank": args.rank, "alpha": 2 * args.rank, "lr": 1e-3},
                args.device,
                args.repeats,
                args.warmup,
            )
            case.update(model=name, weights=weights)
            results.append(case)
            print(
                f"[{name} n_r={n_r} T={case['window_tokens']}] "
                f"a) forward {case['forward_s'] * 1e3:.1f} ms  "
                f"b) step {case['step_s'] * 1e3:.1f} ms "
                f"({case['step_over_forward']:.2f}x)  "
                f"c) dpm after_write "
                f"{case['dpm_after_write_s'] * 1e3:.1f} ms, "
                f"before_write {case['dpm_before_write_s'] * 1e3:.1f} ms"
            )
    report = {
        "device": args.device,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "machine": platform.processor() or platform.machine(),
        "utt_units": args.utt,
        "rank": args.rank,
        "results": results,
    }
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=2))
    for case in results:
        if "skipped" in case:
            continue
        print(
            f"{case['model']} n_r={case['n_r']}: dpm_per_utt / (a + b) = "
            f"{case['ratio_after_write']:.3f} (after_write), "
            f"{case['ratio_before_write']:.3f} (before_write)"
        )
    return report


if __name__ == "__main__":
    main()
