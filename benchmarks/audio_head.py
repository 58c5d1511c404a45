"""Training cost of the audio loss's output head: ``units`` vs ``full``.

``audio_head: units`` normalises the next-unit loss over the K unit tokens
and ``<audio_end>``; ``full`` over the LLM's whole vocabulary too (as in the
paper), which adds the 49k-row output projection at every audio position.
Times one training step (forward + backward of ½ (L_audio + L_emotion) on
one window) of both heads, interleaved, and prints ``full / units`` last.

Usage::

    python benchmarks/audio_head.py                 # SmolLM2-135M, 512 tokens
    python benchmarks/audio_head.py --model tiny --tokens 64 --repeats 2

Authors
 * speechbrain_dpm developers 2026
"""

import torch
from common import (
    base_parser,
    build_sllm,
    interleaved,
    median,
    ratio,
    set_threads,
    write_json,
)


def step_fn(sllm, tokens, feats):
    """One forward + backward of the recipe's training loss on a window."""
    targets = torch.ones_like(tokens, dtype=torch.bool)
    positions = torch.tensor([[tokens.shape[1] - 1]])
    labels = torch.tensor([[0]])

    def step():
        """One training step."""
        hidden = sllm(tokens, feats)
        loss = 0.5 * sllm.audio_loss(hidden, tokens, targets)
        loss = loss + 0.5 * sllm.emotion_loss(hidden, positions, labels)
        loss.backward()
        for param in sllm.trainable_parameters():
            param.grad = None

    return step


def main(argv=None):
    """Runs the comparison and prints the ratio last."""
    parser = base_parser(__doc__, "audio_head.json")
    parser.add_argument("--tokens", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    heads = {}
    for head in ("units", "full"):
        sllm, weights = build_sllm(args.model, seed=args.seed)
        sllm.settings = sllm.settings.replace(audio_head=head)
        heads[head] = sllm
    gen = torch.Generator().manual_seed(args.seed)
    n_units = heads["units"].space.n_units
    tokens = torch.randint(0, n_units, (1, args.tokens), generator=gen)
    feats = torch.randn(
        1,
        args.tokens,
        heads["units"].feat_proj[0].normalized_shape[0],
        generator=gen,
    )
    times = interleaved(
        {h: step_fn(s, tokens, feats) for h, s in heads.items()},
        repeats=args.repeats,
    )
    report = {
        "model": args.model,
        "weights": weights,
        "tokens": args.tokens,
        "seconds": {h: median(t) for h, t in times.items()},
        "full_over_units": ratio(times["full"], times["units"]),
    }
    write_json(args.out, report)
    for head, sec in report["seconds"].items():
        print(f"audio_head={head}: {sec:.3f} s per training step")
    print(f"full / units = {report['full_over_units']:.2f}")
    return report


if __name__ == "__main__":
    main()
