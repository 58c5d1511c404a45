"""Command line of speechbrain_dpm (``python -m speechbrain_dpm`` or the
``speechbrain-dpm`` console script).

Subcommands:

* ``long-audio --model DIR AUDIO [--csv OUT]``: silero-vad segments one long
  recording, then labels the segments in order as one conversation (DPM
  memory by default); prints ``start end label score`` per segment, with a
  progress bar over the segments;
* ``classify --model DIR FILE...``: labels each file alone, or, with
  ``--dialogue``, the files in order as one conversation.

``DIR`` is a folder written by ``speechbrain_dpm.export
.export_model_folder``. Everything runs offline.

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
import sys

from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)


def build_parser():
    """The argument parser of the command line.

    Returns
    -------
    argparse.ArgumentParser
        The parser (subcommands ``long-audio`` and ``classify``).

    Example
    -------
    >>> args = build_parser().parse_args(
    ...     ["long-audio", "--model", "m", "talk.wav", "--csv", "out.csv"])
    >>> args.command, args.audio, args.csv
    ('long-audio', 'talk.wav', 'out.csv')
    """
    parser = argparse.ArgumentParser(
        prog="speechbrain-dpm",
        description="Emotion recognition in conversations with a speech "
        "LLM and Dynamic Parameter Memory (offline inference).",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--model", required=True, help="exported model folder")
        p.add_argument("--device", default="cpu", help="e.g. cpu, cuda:0")
        p.add_argument(
            "--precision",
            default="fp32",
            choices=("fp32", "bf16", "fp16"),
            help="autocast of the reads and memory writes (default fp32)",
        )
        p.add_argument(
            "--savedir",
            default=None,
            help="collect the model files there (default: read in place)",
        )
        p.add_argument(
            "--on-error",
            choices=("raise", "skip"),
            default="raise",
            help="a bad turn (unreadable, empty, too short, NaN, silent): "
            "fail (default), or leave it out, marked in the output",
        )

    long_audio = sub.add_parser(
        "long-audio", help="segment a long recording and label its turns"
    )
    common(long_audio)
    long_audio.add_argument("audio", help="the recording")
    long_audio.add_argument("--csv", default=None, help="write segments here")
    long_audio.add_argument(
        "--min-speech", type=float, default=0.5, help="seconds (default 0.5)"
    )
    long_audio.add_argument(
        "--max-segment",
        type=float,
        default=20.0,
        help="longer speech is split (seconds, default 20)",
    )
    long_audio.add_argument(
        "--min-silence",
        type=float,
        default=0.3,
        help="pause that separates segments (seconds, default 0.3)",
    )
    long_audio.add_argument(
        "--no-progress", action="store_true", help="no progress bar"
    )

    classify = sub.add_parser("classify", help="label audio files")
    common(classify)
    classify.add_argument("files", nargs="+", help="audio files")
    classify.add_argument(
        "--dialogue",
        action="store_true",
        help="the files are the turns of one conversation, in order",
    )
    return parser


def load_model(folder, device="cpu", savedir=None, precision="fp32"):
    """Loads an exported model folder offline.

    Arguments
    ---------
    folder : str
        The folder written by ``export_model_folder``.
    device : str
        Torch device.
    savedir : str, optional
        Where to collect the model files.
    precision : str
        ``fp32``, ``bf16`` or ``fp16`` (SpeechBrain's run option).

    Returns
    -------
    speechbrain_dpm.recognizer.DPMEmotionRecognizer
        The model.

    Example
    -------
    >>> from speechbrain_dpm.testing import tiny_model_folder
    >>> model = load_model(tiny_model_folder(getfixture("tmp_path") / "model"))
    >>> model.hparams.emotions
    ['neu', 'hap', 'sad', 'ang']
    """
    from speechbrain_dpm.recognizer import DPMEmotionRecognizer

    return DPMEmotionRecognizer.from_hparams(
        source=folder,
        savedir=savedir,
        run_opts={"device": device, "precision": precision},
    )


def classify_one(model, path, on_error):
    """``(label, score, error)`` of one file read alone; with
    ``on_error="skip"`` a bad file gives ``(None, nan, message)``."""
    try:
        _, score, _, text = model.classify_file(path)
    except (OSError, ValueError) as err:
        if on_error == "raise":
            raise
        return None, float("nan"), str(err)
    return text[0], float(score[0]), None


def main(argv=None):
    """Runs the command line.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status: 0 on success, 1 on an input or model error (the
        message is printed to stderr).

    Example
    -------
    >>> from speechbrain_dpm.testing import (
    ...     tiny_model_folder, write_dialogue_wavs)
    >>> folder = tiny_model_folder(getfixture("tmp_path") / "model")
    >>> wavs = write_dialogue_wavs(getfixture("tmp_path"), n_turns=2)
    >>> main(["classify", "--model", folder, "--dialogue", *wavs])
    /.../turn0.wav ...
    /.../turn1.wav ...
    0
    """
    args = build_parser().parse_args(argv)
    try:
        model = load_model(
            args.model, args.device, args.savedir, args.precision
        )
        if args.command == "long-audio":
            segments = model.classify_long_audio(
                args.audio,
                csv_path=args.csv,
                min_speech=args.min_speech,
                max_segment=args.max_segment,
                min_silence=args.min_silence,
                progressbar=not args.no_progress,
                on_error=args.on_error,
            )
            for seg in segments:
                if seg.error is not None:
                    print(f"{seg.start:.2f}\t{seg.end:.2f}\terror: {seg.error}")
                    continue
                score = float(seg.probs.max())
                print(
                    f"{seg.start:.2f}\t{seg.end:.2f}\t{seg.label}\t{score:.3f}"
                )
            if args.csv:
                print(f"wrote {len(segments)} segments to {args.csv}")
        else:
            if args.dialogue:
                preds = model.classify_dialogue(
                    args.files, on_error=args.on_error
                )
                labels = [(p.label, p.score, p.error) for p in preds]
            else:
                labels = [
                    classify_one(model, f, args.on_error) for f in args.files
                ]
            for path, (label, score, error) in zip(args.files, labels):
                if error is not None:
                    print(f"{path}\terror: {error}")
                else:
                    print(f"{path}\t{label}\t{score:.3f}")
    except (OSError, ValueError, RuntimeError) as err:
        print(f"speechbrain-dpm: error: {err}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
