"""Real-time factor end to end: long audio -> VAD -> units -> DPM labels.

Runs ``DPMEmotionRecognizer.classify_long_audio`` on a generated long
recording (espeak-ng sentences of several voices separated by pauses, at
least ``--seconds`` of audio; or ``--wav`` of your own) and reports audio
seconds per wall second (target >= 2, i.e. RTF <= 0.5) with the time split
by stage: VAD (silero-vad), units (Whisper encoder + k-means) and DPM (the
strategy's write + read per segment). Model loading is timed apart.

The model folder is ``--model DIR`` (a trained export) or, by default, one
exported here with untrained but real components (accuracy is irrelevant
for speed): the real whisper-tiny.en encoder (layer 2), a UnitCodebook
fitted on a few sentences' features and a real SmolLM2-135M EmotionSLLM
with random new rows, DPM with the recipe's options. ``--model tiny``
builds a tiny random Whisper and Llama instead (for tests).

Usage::

    python benchmarks/rtf.py                       # >= 120 s of audio
    python benchmarks/rtf.py --model results/IEMOCAP/dpm/1986/model

Authors
 * speechbrain_dpm developers 2026
"""

import os
import random
import subprocess
import tempfile
import time

import numpy as np
import soundfile as sf
import torch
from common import N_EMO, base_parser, set_threads, write_json

WORDS = (
    "we really need to talk about what happened yesterday at the office "
    "I cannot believe you said that in front of everyone it was so funny "
    "please do not leave me here alone tonight the weather is nice and "
    "calm maybe we should go for a walk along the river after dinner "
    "honestly I am tired of waiting for answers that never come"
).split()
VOICES = ("en-us", "en-us+f3", "en-gb", "en-us+m3", "en-us+f2")
EMOTIONS = ("neu", "hap", "sad", "ang")[:N_EMO]
STRATEGY_OPTS = {"n_context": 256, "n_limit": 512, "rank": 8, "alpha": 16}


def make_recording(path, seconds, seed=0, rate=22050):
    """Writes espeak-ng sentences with pauses until ``seconds`` of audio.

    Parameters
    ----------
    path : str
        Output wav.
    seconds : float
        Minimum duration.
    seed : int
        Seed of the texts, voices, speeds and pauses.
    rate : int
        espeak-ng's output rate.

    Returns
    -------
    float
        The duration in seconds.
    """
    rng = random.Random(seed)
    parts, total = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        while total < seconds:
            text = " ".join(
                rng.choice(WORDS) for _ in range(rng.randint(6, 14))
            )
            out = os.path.join(tmp, "s.wav")
            subprocess.run(
                [
                    "espeak-ng",
                    "-v",
                    rng.choice(VOICES),
                    "-s",
                    str(rng.randint(140, 190)),
                    "-p",
                    str(rng.randint(30, 70)),
                    "-w",
                    out,
                    text,
                ],
                check=True,
                capture_output=True,
            )
            data, rate = sf.read(out, dtype="float32")
            pause = np.zeros(int(rng.uniform(0.4, 1.2) * rate), np.float32)
            parts += [data, pause]
            total += (len(data) + len(pause)) / rate
    sf.write(path, np.concatenate(parts), rate)
    return total


def tiny_sources(root):
    """A tiny random Whisper and Llama saved as HF folders (for tests)."""
    from speechbrain_dpm.testing import save_tiny_whisper, tiny_llm

    whisper = os.path.join(root, "tiny_whisper")
    save_tiny_whisper(whisper)
    llm = os.path.join(root, "tiny_llm")
    tiny_llm().save_pretrained(llm)
    return whisper, 1, llm


def export_untrained(root, model, wav, n_units, seed=0):
    """Exports a model folder with real but untrained components.

    Parameters
    ----------
    root : str
        Work folder (the model goes to ``root/model``).
    model : str
        ``smollm2-135m`` (real whisper-tiny.en and SmolLM2) or ``tiny``.
    wav : str
        Recording whose first 60 s of features fit the codebook.
    n_units : int
        Codebook size.
    seed : int
        Seed of the codebook and the new rows.

    Returns
    -------
    str
        The exported folder.
    """
    from speechbrain_dpm.audio import read_audio_16k
    from speechbrain_dpm.export import export_model_folder
    from speechbrain_dpm.llm import load_llm
    from speechbrain_dpm.sllm import EmotionSLLM
    from speechbrain_dpm.units import UnitCodebook, WhisperFrameEncoder

    if model == "tiny":
        encoder_source, layer, llm_source = tiny_sources(root)
    else:
        encoder_source, layer, llm_source = "whisper-tiny.en", 2, model
    encoder = WhisperFrameEncoder(encoder_source, layer=layer)
    audio = read_audio_16k(wav)[: 60 * 16000]
    feats = encoder.encode_list([audio])[0]
    codebook = UnitCodebook(n_units=n_units, seed=seed, n_init=1)
    codebook.fit(feats.half().float())
    codebook_path = os.path.join(root, "codebook.ckpt")
    codebook.save(codebook_path)
    torch.manual_seed(seed)
    sllm = EmotionSLLM(
        load_llm(llm_source), n_units, len(EMOTIONS), feat_dim=encoder.dim
    )
    return export_model_folder(
        os.path.join(root, "model"),
        sllm,
        codebook_path,
        list(EMOTIONS),
        {
            "encoder_source": encoder_source,
            "encoder_layer": layer,
            "llm_source": llm_source,
            "strategy": "dpm",
            "strategy_opts": dict(STRATEGY_OPTS, lr=1e-3),
        },
    )


def stage_timer(obj, attr, totals, key):
    """Wraps ``obj.attr`` so that its wall time adds up in ``totals[key]``."""
    fn = getattr(obj, attr)

    def timed(*args, **kwargs):
        """The wrapped call, its time added to its stage."""
        start = time.perf_counter()
        try:
            return fn(*args, **kwargs)
        finally:
            totals[key] += time.perf_counter() - start

    setattr(obj, attr, timed)


def live_calls(rec, audio, spans, calls):
    """Serves ``calls`` live sessions together (``push_streams``).

    The speech segments are dealt to the calls in turn; at each step every
    call pushes its next segment, encoding included. A step is real time
    when it ends before the shortest of its utterances has been spoken
    again, i.e. each call's utterance is labelled before its next one
    (back to back) arrives.

    Returns
    -------
    dict
        Steps, the share of real-time steps and audio seconds per wall
        second over all calls.
    """
    turns = [spans[k::calls] for k in range(calls)]
    sessions = [rec.stream() for _ in range(calls)]
    steps, realtime, audio_s, wall = 0, 0, 0.0, 0.0
    try:
        for step in range(min(len(t) for t in turns)):
            pushes = [
                (session, audio[lo:hi])
                for session, (lo, hi) in zip(sessions, (t[step] for t in turns))
            ]
            start = time.perf_counter()
            rec.push_streams(pushes)
            took = time.perf_counter() - start
            durations = [p[1].shape[0] / 16000 for p in pushes]
            steps += 1
            realtime += int(took <= min(durations))
            audio_s += sum(durations)
            wall += took
    finally:
        for session in sessions:
            session.close()
    return {
        "calls": calls,
        "steps": steps,
        "realtime_share": realtime / max(steps, 1),
        "audio_s_per_wall_s": audio_s / max(wall, 1e-9),
    }


def main(argv=None):
    """Runs the benchmark; returns the report."""
    from speechbrain_dpm.audio import read_audio_16k
    from speechbrain_dpm.recognizer import DPMEmotionRecognizer

    parser = base_parser(__doc__, "rtf.json")
    parser.add_argument("--seconds", type=float, default=120.0)
    parser.add_argument("--wav", default=None, help="use this recording")
    parser.add_argument("--n-units", type=int, default=512)
    parser.add_argument("--workdir", default=None, help="keep files here")
    parser.add_argument(
        "--no-context-grad",
        action="store_true",
        help="writes back-propagate through the utterance only",
    )
    parser.add_argument(
        "--read-order", choices=("after_write", "before_write"), default=None
    )
    parser.add_argument("--precision", choices=("fp32", "bf16"), default="bf16")
    parser.add_argument(
        "--streams",
        type=int,
        default=4,
        help="live calls served together (0: skip that part)",
    )
    args = parser.parse_args(argv)
    set_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        root = args.workdir or tmp
        os.makedirs(root, exist_ok=True)
        wav = args.wav or os.path.join(root, "long.wav")
        if not args.wav:
            make_recording(wav, args.seconds, args.seed)
        audio_s = read_audio_16k(wav).shape[0] / 16000
        start = time.perf_counter()
        if os.path.isdir(args.model):
            folder, built = args.model, "given folder"
        else:
            folder = export_untrained(root, args.model, wav, args.n_units)
            built = f"exported untrained ({args.model})"
        rec = DPMEmotionRecognizer.from_hparams(
            folder, run_opts={"device": "cpu", "precision": args.precision}
        )
        from speechbrain_dpm.long_audio import silero_vad

        _, load_silero_vad = silero_vad()  # keeps --threads

        rec._vad_cache["model"] = load_silero_vad()  # loading is not RTF
        memory = rec.strategy.memory
        if args.no_context_grad:
            memory.context_grad = False
        if args.read_order:
            memory.read_order = args.read_order
        load_s = time.perf_counter() - start
        totals = {"vad": 0.0, "units": 0.0, "dpm": 0.0}
        stage_timer(rec, "_speech_segments", totals, "vad")
        stage_timer(rec, "encode_utterances", totals, "units")
        stage_timer(rec.strategy, "push_many", totals, "dpm")
        cpu0, start = time.process_time(), time.perf_counter()
        segments = rec.classify_long_audio(wav)
        wall = time.perf_counter() - start
        cpu = time.process_time() - cpu0
        totals = dict(totals)  # the live calls below are timed apart
        streams = None
        if args.streams:
            audio = read_audio_16k(wav)
            spans = [
                (int(s.start * 16000), int(s.end * 16000)) for s in segments
            ]
            streams = live_calls(rec, audio, spans, args.streams)
    speed = audio_s / wall
    other = wall - sum(totals.values())
    report = {
        "model": args.model,
        "model_folder": built,
        "context_grad": memory.context_grad,
        "read_order": memory.read_order,
        "audio_s": audio_s,
        "segments": len(segments),
        "mean_segment_s": (
            sum(s.end - s.start for s in segments) / max(len(segments), 1)
        ),
        "load_s": load_s,
        "wall_s": wall,
        "cpu_s": cpu,
        "stages_s": dict(totals, other=other),
        "stage_share": {
            k: v / wall for k, v in dict(totals, other=other).items()
        },
        "audio_s_per_wall_s": speed,
        "rtf": wall / audio_s,
        "precision": args.precision,
        "target": "audio_s_per_wall_s >= 4 (RTF <= 0.25)",
        "target_met": speed >= 4,
        "streams": streams,
    }
    write_json(args.out, report)
    print(
        f"{audio_s:.1f} s of audio, {len(segments)} segments, model loaded "
        f"in {load_s:.1f} s; labelled in {wall:.1f} s wall ({cpu:.1f} s CPU)"
    )
    for key, value in report["stages_s"].items():
        print(f"  {key:6s} {value:8.2f} s  {100 * value / wall:5.1f} %")
    if streams:
        print(
            f"{streams['calls']} live calls served together: "
            f"{streams['audio_s_per_wall_s']:.2f} audio s per wall s in "
            f"all; {100 * streams['realtime_share']:.0f} % of steps labelled "
            "every call's utterance before its next one arrives"
        )
    print(
        f"audio seconds per wall second = {speed:.2f} "
        f"(RTF {wall / audio_s:.3f}, {args.precision}; target >= 4: "
        f"{'met' if speed >= 4 else 'MISSED'})"
    )
    return report


if __name__ == "__main__":
    main()
