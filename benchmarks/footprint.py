"""Memory footprint of the emotion SLLM, to plan a run at the paper's scale.

For the tiny random Llama and SmolLM2-135M (built and **measured** here)
and a 7B Llama (**computed** from its config alone, never loaded), it
reports:

* parameters, trainable parameters (new token rows, feature projection,
  fixed LoRA) and the weight memory per dtype;
* activation memory of one training window (the recipe's step: read and
  audio forwards as one trunk call of 2B rows, backward, AdamW step), with
  and without gradient checkpointing: the peak RSS of the step above the
  loaded model, each configuration in a fresh process (measured), and for
  7B a formula whose per-token, per-layer constants are counted on two
  small Llama blocks with saved-tensor hooks (computed);
* the temporary LoRA's size and its optimizer state per conversation slot;
* DPM cost per utterance relative to one forward of the same window, in
  FLOPs (computed: write = forward + backward to the activations, read =
  forward; ``benchmarks/dpm_cost.py`` measures the time ratio);
* the GPU memory a 7B run needs for training and for DPM evaluation at
  batch 1 and 16 (computed).

The training step of each measured model also runs in float32 with and
without checkpointing on the same seed, and the two losses are compared
(they must agree: checkpointing recomputes, it does not approximate).

Usage::

    python benchmarks/footprint.py                  # tiny, SmolLM2, 7B
    python benchmarks/footprint.py --models tiny 7b --batch 2 --n-ctx 64

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
import sys

import torch
from common import (
    FEAT_DIM,
    N_EMO,
    N_UNITS,
    PeakRSS,
    base_parser,
    build_llm,
    child_result,
    max_rss_mb,
    rss_mb,
    run_child,
    set_threads,
    synthetic_dialogue,
    write_json,
)

from speechbrain_dpm.llm import ALL_LINEAR

GIB = 2**30
# Llama-2-7B's shape (config.json of meta-llama/Llama-2-7b-hf); the paper
# used a 32K-window variant of the same shape (dpm.md section 2).
LLAMA2_7B = {
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
    "vocab_size": 32000,
    "max_position_embeddings": 32768,
    "tie_word_embeddings": False,
}
# The paper's settings (dpm.md section 2) and recipes/*/hparams/dpm_paper.yaml
# (batch and n_ctx are the YAML's choices: the paper does not give them).
PAPER = {
    "lora_rank": 64,
    "memory_rank": 64,
    "n_r": 1024,
    "n_units": 512,
    "batch": 4,
    "n_ctx": 2048,
}
BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


def build_model(name, dtype="float32", checkpointing=False, lora_rank=16):
    """The recipe's EmotionSLLM over a named LLM (seeded).

    Parameters
    ----------
    name : str
        ``tiny`` (random 2-layer Llama) or a ``load_llm`` source.
    dtype : str
        The frozen trunk's dtype.
    checkpointing : bool
        Gradient checkpointing of the decoder blocks.
    lora_rank : int
        Rank of the fixed LoRA.

    Returns
    -------
    speechbrain_dpm.sllm.EmotionSLLM
        In train mode (as in the recipe's training stage).
    """
    from speechbrain_dpm.llm import enable_checkpointing, load_llm
    from speechbrain_dpm.sllm import EmotionSLLM
    from speechbrain_dpm.testing import tiny_llm

    if name == "tiny":
        llm = tiny_llm().to(getattr(torch, dtype))
        if checkpointing:
            enable_checkpointing(llm)
    else:
        try:
            llm = load_llm(
                name, dtype=dtype, gradient_checkpointing=checkpointing
            )
        except Exception:  # no package: the same shape, random weights
            if name != "smollm2-135m":
                raise
            llm = build_llm(name)[0].to(getattr(torch, dtype))
            if checkpointing:
                enable_checkpointing(llm)
    torch.manual_seed(0)
    sllm = EmotionSLLM(
        llm,
        N_UNITS,
        N_EMO,
        feat_dim=FEAT_DIM,
        lora_rank=lora_rank,
        lora_alpha=lora_rank,
        lora_dropout=0.05,
    )
    return sllm.train()


def training_batch(space, batch, n_ctx, seed=0):
    """``batch`` windows of ``n_ctx`` tokens of a synthetic dialogue."""
    from speechbrain_dpm.sequence import collate_windows, pack_dialogue

    n_utts = 2 * batch * n_ctx // 40 + 4
    utts = synthetic_dialogue(n_utts, space, seed=seed, lengths=(20, 40))
    windows = pack_dialogue(utts, n_ctx)[:batch]
    return collate_windows(windows)


def train_step(sllm, batch, optimizer):
    """The recipe's training step (DPMBrain, plain): returns the loss."""
    hidden, audio_hidden = sllm(
        batch["tokens"], batch["feats"], batch["lengths"], outputs="both"
    )
    steps = torch.arange(hidden.shape[1], device=hidden.device)
    targets = batch["audio_targets"] & (steps[None] < batch["lengths"][:, None])
    l_audio = sllm.audio_loss(audio_hidden, batch["tokens"], targets)
    l_emo = sllm.emotion_loss(hidden, batch["emo_positions"], batch["labels"])
    loss = 0.5 * l_audio + 0.5 * l_emo
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return loss.item()


def child_train(args):
    """One model, one configuration: two training steps (the recipe's, on
    ``--device``; CPU: as ``DPMBrain`` sets the allocator up), peak RSS
    (and peak GPU memory on CUDA), seconds per step."""
    import time

    from speechbrain_dpm.brain import return_freed_memory

    set_threads(args.threads)
    if args.lean_malloc:
        return_freed_memory(args.device)
    sllm = build_model(args.model, args.dtype, args.checkpointing)
    sllm.to(args.device)
    batch = training_batch(sllm.space, args.batch, args.n_ctx)
    batch = {
        k: v.to(args.device) if torch.is_tensor(v) else v
        for k, v in batch.items()
    }
    optimizer = torch.optim.AdamW(sllm.trainable_parameters(), lr=1e-4)
    cuda = torch.device(args.device).type == "cuda"
    torch.manual_seed(1)
    base = rss_mb()
    losses = []
    with PeakRSS() as peak:
        for step in range(args.steps):
            if step == 1:  # the first step warms up (and creates AdamW)
                if cuda:
                    torch.cuda.synchronize()
                start = time.perf_counter()
            with torch.autocast(
                torch.device(args.device).type,
                dtype=torch.bfloat16,
                enabled=bool(args.autocast),
            ):
                losses.append(train_step(sllm, batch, optimizer))
    seconds = (time.perf_counter() - start) / max(args.steps - 1, 1)
    tokens = int(batch["lengths"].sum())
    child_result(
        {
            "losses": losses,
            "tokens": tokens,
            "window": list(batch["tokens"].shape),
            "loaded_rss_mb": base,
            "step_extra_mb": peak.peak_mb - base,
            "peak_rss_mb": max(max_rss_mb(), peak.peak_mb),
            "step_s": seconds,
            "tokens_per_s": tokens / seconds,
            "peak_gpu_mib": (
                torch.cuda.max_memory_allocated() / 2**20 if cuda else None
            ),
        }
    )


def child_dpm(args):
    """DPM at batch 1 on ``--device`` (``benchmarks/dpm_cost.py``'s timed
    cases: one forward, one write, one DPM utterance) and its peak GPU
    memory."""
    from dpm_cost import run_case

    set_threads(args.threads)
    sllm = build_model(args.model, args.dtype).eval().to(args.device)
    kwargs = {"rank": args.memory_rank, "alpha": 2 * args.memory_rank}
    case, _, _ = run_case(
        sllm, args.n_r, args.utt, {**kwargs, "lr": 1e-3}, 5, 1
    )
    cuda = torch.device(args.device).type == "cuda"
    case.pop("samples", None)
    case["peak_gpu_mib"] = (
        torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    )
    child_result(case)


def linear_shapes(config):
    """(in, out) of the seven projections of one Llama-style block."""
    h, i = config.hidden_size, config.intermediate_size
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or h // heads
    q = heads * head_dim
    kv = config.num_key_value_heads * head_dim
    return {
        "q_proj": (h, q),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (q, h),
        "gate_proj": (h, i),
        "up_proj": (h, i),
        "down_proj": (i, h),
    }


def lora_size(config, rank, targets=ALL_LINEAR):
    """Parameters of a LoRA of ``rank`` on ``targets`` of every block."""
    shapes = linear_shapes(config)
    per_layer = sum(rank * (shapes[t][0] + shapes[t][1]) for t in targets)
    return per_layer * config.num_hidden_layers


def llama_params(config):
    """Parameters of a Llama-style causal LM, from its config alone."""
    h = config.hidden_size
    block = sum(a * b for a, b in linear_shapes(config).values()) + 2 * h
    emb = config.vocab_size * h
    head = 0 if config.tie_word_embeddings else emb
    return config.num_hidden_layers * block + emb + head + h


def new_rows_and_proj(config, n_units, audio_input):
    """Trained parameters outside the LoRA: new token rows (input and
    output) and, for ``units+continuous``, the feature projection."""
    h = config.hidden_size
    rows = 2 * (n_units + 1 + N_EMO) * h
    proj = (FEAT_DIM + 1) * h + 2 * FEAT_DIM
    return rows + (proj if audio_input == "units+continuous" else 0)


def block_bytes_per_token(config, rank, dtype, train=True, tokens=32):
    """Bytes the autograd graph keeps per token for one decoder block of
    ``config``'s shape with a LoRA of ``rank`` (dropout 0.05, active in
    ``train`` mode: training; off: a DPM write in evaluation) on its seven
    projections: counted with saved-tensor hooks on a forward of one
    random block (parameters excluded, shared storages once). Linear in
    the window length with SDPA (no T x T matrix is kept)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from speechbrain_dpm.llm import add_lora_adapter

    one = LlamaConfig(
        **{
            **{k: getattr(config, k) for k in LLAMA2_7B},
            "num_hidden_layers": 1,
            "vocab_size": 8,
        }
    )
    with torch.random.fork_rng():
        torch.manual_seed(0)
        llm = LlamaForCausalLM._from_config(one, dtype=getattr(torch, dtype))
    params = add_lora_adapter(llm, "fixed", rank, rank, dropout=0.05)
    for param in params:
        param.requires_grad_(True)
    llm.train(train)
    x = torch.randn(1, tokens, one.hidden_size, dtype=getattr(torch, dtype))
    x.requires_grad_(True)
    skip = {p.untyped_storage().data_ptr() for p in llm.parameters()}
    skip.add(x.untyped_storage().data_ptr())
    seen = {}

    def pack(tensor):
        """Counts a saved tensor's storage once."""
        storage = tensor.untyped_storage()
        if storage.data_ptr() not in skip:
            seen[storage.data_ptr()] = storage.nbytes()
        return tensor

    emb = llm.model.rotary_emb(x, torch.arange(tokens)[None])
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        llm.model.layers[0](x, position_embeddings=emb, attention_mask=None)
    return sum(seen.values()) / tokens


def activations(config, rows, dtype, per_token, checkpointing):
    """Activation bytes of a training window of ``rows`` trunk tokens.

    Without checkpointing every block keeps ``per_token`` bytes per token;
    with it each block keeps its input (``hidden_size`` values per token)
    and one block at a time is recomputed in the backward pass.
    """
    block = per_token * rows
    if not checkpointing:
        return config.num_hidden_layers * block
    kept = config.num_hidden_layers * rows * config.hidden_size
    return kept * BYTES[dtype] + block


def dpm_flops_ratio():
    """DPM FLOPs per utterance over one forward of its window (computed).

    The write is a forward and a backward to the activations (about one
    more forward: the frozen weights get no gradient; a LoRA's weight
    gradients are rank/width of that) over the window of ``n_r`` + the
    utterance; the read is one more forward: about 3.
    """
    return 3.0


def plan(config, args, dtype, audio_input, source, sllm=None):
    """Counts and memory figures of one model (computed from its config;
    exact counts from the built model when ``sllm`` is given)."""
    lora = lora_size(config, args.lora_rank)
    trainable = lora + new_rows_and_proj(config, args.n_units, audio_input)
    params = llama_params(config) + trainable
    if sllm is not None:
        params = sum(p.numel() for p in sllm.parameters())
        trainable = sum(p.numel() for p in sllm.trainable_parameters())
    frozen = params - trainable
    per_token = block_bytes_per_token(config, args.lora_rank, dtype)
    rows = 2 * args.batch * args.n_ctx  # read + audio forwards: 2B rows
    act = {
        ck: activations(config, rows, dtype, per_token, ck)
        for ck in (False, True)
    }
    memory = lora_size(config, args.memory_rank)
    slot = memory * 4 * 4  # float32 weights, grads, AdamW's two moments
    # A write back-propagates through the fixed and temporary LoRAs (in
    # eval mode: no dropout) over the n_r context + the utterance, or
    # (memory_context_grad: False) over the utterance only, the context
    # then being a key/value cache.
    both = args.lora_rank + args.memory_rank
    write_token = block_bytes_per_token(config, both, dtype, train=False)
    utt = args.utt + 1
    write = activations(config, args.n_r + utt, dtype, write_token, False)
    heads = config.num_attention_heads
    kv_dim = config.num_key_value_heads * (
        getattr(config, "head_dim", None) or config.hidden_size // heads
    )
    cache = 2 * config.num_hidden_layers * args.n_r * kv_dim * BYTES[dtype]
    write_no_ctx = activations(config, utt, dtype, write_token, False) + cache
    weights = frozen * BYTES[dtype] + trainable * 4
    trained_state = trainable * 4 * 3  # grads + AdamW's two moments
    return {
        "source": source,
        "dtype": dtype,
        "params": params,
        "trainable": trainable,
        "weights_gib": {k: params * v / GIB for k, v in BYTES.items()},
        "activation_bytes_per_token_layer": per_token,
        "train_activations_gib": {
            "no_checkpointing": act[False] / GIB,
            "checkpointing": act[True] / GIB,
        },
        "train_total_gib": {
            "no_checkpointing": (weights + trained_state + act[False]) / GIB,
            "checkpointing": (weights + trained_state + act[True]) / GIB,
        },
        "memory_lora_params": memory,
        "memory_slot_mib": slot / 2**20,
        "dpm_write_activations_gib": write / GIB,
        "dpm_write_no_context_grad_gib": write_no_ctx / GIB,
        "dpm_eval_gib": {
            f"batch_{b}": (weights + b * (slot + write)) / GIB for b in (1, 16)
        },
        "dpm_eval_no_context_grad_gib": {
            f"batch_{b}": (weights + b * (slot + write_no_ctx)) / GIB
            for b in (1, 16)
        },
        "dpm_flops_per_utt_over_forward": dpm_flops_ratio(),
    }


def measure(name, args):
    """The measured training step (both checkpointing settings, each in a
    fresh process) of one model."""
    cmd = ["--child", "train", "--model", name, "--threads"]
    cmd += [str(args.threads), "--batch", str(args.batch)]
    cmd += ["--n-ctx", str(args.n_ctx), "--dtype", "float32"]
    runs = {
        ck: run_child(__file__, [*cmd, "--checkpointing", str(int(ck))])
        for ck in (False, True)
    }
    diff = max(
        abs(a - b) for a, b in zip(runs[False]["losses"], runs[True]["losses"])
    )
    return {
        "window": runs[False]["window"],
        "peak_rss_mib": {
            "no_checkpointing": runs[False]["peak_rss_mb"],
            "checkpointing": runs[True]["peak_rss_mb"],
        },
        "step_extra_mib": {
            "no_checkpointing": runs[False]["step_extra_mb"],
            "checkpointing": runs[True]["step_extra_mb"],
        },
        "step_s": {
            "no_checkpointing": runs[False]["step_s"],
            "checkpointing": runs[True]["step_s"],
        },
        "losses": runs[False]["losses"],
        "loss_max_abs_diff": diff,
    }


def main(argv=None):
    """Runs the measurements and prints the table (see the docstring)."""
    parser = base_parser(__doc__, "footprint.json", model="tiny")
    parser.add_argument(
        "--models", nargs="+", default=["tiny", "smollm2-135m", "7b"]
    )
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--n-ctx", type=int, default=512)
    parser.add_argument("--n-r", type=int, default=PAPER["n_r"])
    parser.add_argument("--utt", type=int, default=100, help="units")
    parser.add_argument("--lora-rank", type=int, default=16)
    parser.add_argument("--memory-rank", type=int, default=8)
    parser.add_argument("--n-units", type=int, default=N_UNITS)
    parser.add_argument("--no-measure", action="store_true")
    parser.add_argument("--child", default=None, help=HIDDEN)
    parser.add_argument("--dtype", default="float32", help=HIDDEN)
    parser.add_argument("--checkpointing", type=int, default=0, help=HIDDEN)
    parser.add_argument("--lean-malloc", type=int, default=1, help=HIDDEN)
    parser.add_argument("--device", default="cpu", help=HIDDEN)
    parser.add_argument("--steps", type=int, default=2, help=HIDDEN)
    parser.add_argument("--autocast", type=int, default=0, help=HIDDEN)
    args = parser.parse_args(argv)
    if args.child == "train":
        args.checkpointing = bool(args.checkpointing)
        return child_train(args)
    if args.child == "dpm":
        return child_dpm(args)
    set_threads(args.threads)
    report = {"settings": vars(args), "rows": {}}
    for name in args.models:
        if name == "7b":
            from transformers import LlamaConfig

            paper = argparse.Namespace(**{**vars(args), **PAPER})
            row = plan(
                LlamaConfig(**LLAMA2_7B),
                paper,
                "bfloat16",
                "units",
                "computed from the config (paper settings, bfloat16)",
            )
        else:
            sllm = build_model(name, lora_rank=args.lora_rank)
            row = plan(
                sllm.llm.config,
                args,
                "float32",
                "units+continuous",
                "built here",
                sllm,
            )
            del sllm
            if not args.no_measure:
                row["measured"] = measure(name, args)
        report["rows"][name] = row
    write_json(args.out, report)
    print(table(report))
    return report


def gib(value):
    """A figure in GiB, 2 decimals (MiB under 0.1 GiB)."""
    if value < 0.1:
        return f"{value * 1024:.1f} MiB"
    return f"{value:.2f} GiB"


def table(report):
    """The README's table (markdown)."""
    lines = [
        "| | " + " | ".join(report["rows"]) + " |",
        "|---|" + "---|" * len(report["rows"]),
    ]

    def line(label, fn):
        """One table row, a cell per model."""
        cells = [fn(row) for row in report["rows"].values()]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")

    line("figures", lambda r: r["source"])
    line("parameters", lambda r: f"{r['params'] / 1e6:.1f} M")
    line("trainable", lambda r: f"{r['trainable'] / 1e6:.2f} M")
    for dt in ("float32", "bfloat16"):
        line(f"weights {dt}", lambda r, dt=dt: gib(r["weights_gib"][dt]))
    for ck in ("no_checkpointing", "checkpointing"):
        line(
            f"train activations, {ck.replace('_', ' ')} (counted)",
            lambda r, ck=ck: gib(r["train_activations_gib"][ck]),
        )
        line(
            f"train step peak RSS, {ck.replace('_', ' ')} (measured)",
            lambda r, ck=ck: (
                f"{r['measured']['peak_rss_mib'][ck] / 1024:.2f} GiB"
                if "measured" in r
                else "-"
            ),
        )
        line(
            f"train total (weights + state + act.), {ck.replace('_', ' ')}",
            lambda r, ck=ck: gib(r["train_total_gib"][ck]),
        )
    line(
        "temporary LoRA params",
        lambda r: f"{r['memory_lora_params'] / 1e6:.2f} M",
    )
    line(
        "per slot: LoRA + grads + AdamW",
        lambda r: f"{r['memory_slot_mib']:.1f} MiB",
    )
    line("DPM write activations", lambda r: gib(r["dpm_write_activations_gib"]))
    for b in (1, 16):
        line(
            f"DPM evaluation, batch {b}",
            lambda r, b=b: gib(r["dpm_eval_gib"][f"batch_{b}"]),
        )
    for b in (1, 16):
        line(
            f"DPM evaluation, batch {b}, memory_context_grad False",
            lambda r, b=b: gib(r["dpm_eval_no_context_grad_gib"][f"batch_{b}"]),
        )
    line(
        "DPM FLOPs per utterance / forward",
        lambda r: f"{r['dpm_flops_per_utt_over_forward']:.1f}",
    )
    return "\n".join(lines)


HIDDEN = "internal: the measuring child process"


if __name__ == "__main__":
    main(sys.argv[1:])
