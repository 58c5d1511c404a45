"""Rendering planned utterances to audio with espeak-ng.

:func:`synthesize_utterance` speaks one text with a voice and a prosody
(espeak-ng, then trimming, level, noise); :func:`run_tasks` renders many to
files, in worker processes, deterministically whatever their number. MELD's
media are encoded to mp4 (AAC) by ffmpeg in the same workers.

Authors
 * speechbrain_dpm developers 2026
"""

import math
import multiprocessing
import os
import shutil
import subprocess
import tempfile
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf

SAMPLE_RATE = 16000
# Turn times are written with 4 decimals; aligning every boundary to 8
# samples (0.5 ms) makes them exact, so cutting the dialogue wav at the
# written times gives back the sentence wav sample for sample.
_GRID = 8


def check_espeak():
    """Fails early and clearly without espeak-ng.

    Raises
    ------
    RuntimeError
        If ``espeak-ng`` is not on the ``PATH``.

    Example
    -------
    >>> check_espeak()  # espeak-ng is installed by tools/setup.sh
    """
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt install espeak-ng)")


def _resample(x, orig, new):
    """Polyphase resampling (deterministic, no torch in the workers)."""
    from scipy.signal import resample_poly

    g = math.gcd(orig, new)
    return resample_poly(x, new // g, orig // g)


def _trim(x, sr, threshold_db=-45.0, margin=0.03):
    """Trims leading/trailing silence (espeak-ng pads its output)."""
    hop = int(0.01 * sr)
    n = len(x) // hop
    if n == 0:
        return x
    frames = x[: n * hop].reshape(n, hop)
    energy = 10 * np.log10(np.mean(frames**2, axis=1) + 1e-12)
    active = np.nonzero(energy > energy.max() + threshold_db)[0]
    if len(active) == 0:
        return x
    m = int(margin * sr)
    return x[
        max(0, active[0] * hop - m) : min(len(x), (active[-1] + 1) * hop + m)
    ]


def synthesize_utterance(
    text,
    voice,
    prosody,
    snr_db=30.0,
    noise_seed=0,
    sample_rate=SAMPLE_RATE,
):
    """Speaks one utterance with espeak-ng and the given prosody.

    The output is trimmed, set to the target RMS level, given additive noise
    at ``snr_db`` and padded to a multiple of 8 samples.

    Arguments
    ---------
    text : str
        What to say.
    voice : str
        espeak-ng voice, e.g. ``en-us+f2``.
    prosody : dict
        ``pitch`` (0..99), ``pitch_range`` (percent), ``rate`` (words per
        minute), ``level_db`` (RMS, dBFS).
    snr_db : float
        Signal-to-noise ratio of the added white noise.
    noise_seed : int
        Seed of the noise.
    sample_rate : int
        Output sampling rate.

    Returns
    -------
    numpy.ndarray
        float32 waveform in [-1, 1].

    Example
    -------
    >>> p = {"pitch": 50, "pitch_range": 100, "rate": 170, "level_db": -25}
    >>> x = synthesize_utterance("Hello.", "en+f2", p)
    >>> x.dtype, len(x) % 8, 0.1 < len(x) / SAMPLE_RATE < 2.0
    (dtype('float32'), 0, True)
    """
    check_espeak()
    clean = "".join(c if c.isprintable() else " " for c in text).strip() or "."
    ssml = (
        f'<speak><prosody range="{int(round(prosody["pitch_range"]))}%">'
        f"{escape(clean)}</prosody></speak>"
    )
    fd, tmp = tempfile.mkstemp(suffix=".wav")
    os.close(fd)
    try:
        cmd = [
            "espeak-ng",
            "-m",
            "-v",
            voice,
            "-p",
            str(int(round(prosody["pitch"]))),
            "-s",
            str(int(round(prosody["rate"]))),
            "-w",
            tmp,
            ssml,
        ]
        subprocess.run(cmd, check=True, capture_output=True)
        x, sr = sf.read(tmp, dtype="float64")
    finally:
        os.remove(tmp)
    if x.ndim > 1:
        x = x.mean(axis=1)
    if sr != sample_rate:
        x = _resample(x, sr, sample_rate)
    x = _trim(x, sample_rate)
    rms = np.sqrt(np.mean(x**2)) + 1e-12
    x = x * (10 ** (prosody["level_db"] / 20) / rms)
    rng = np.random.default_rng(noise_seed)
    pad = (-len(x)) % _GRID
    x = np.concatenate([x, np.zeros(pad)])
    noise_rms = 10 ** ((prosody["level_db"] - snr_db) / 20)
    x = x + rng.normal(0.0, noise_rms, size=len(x))
    peak = np.abs(x).max()
    if peak > 0.97:
        # Soft limiter: loud (angry) speech saturates instead of wrapping.
        x = 0.97 * np.tanh(x / 0.97)
    return x.astype(np.float32)


def _render_task(task):
    """Worker: synthesises one utterance to ``task['path']``; returns the
    number of samples. MELD media are encoded to mp4 here too."""
    x = synthesize_utterance(
        task["text"],
        task["voice"],
        task["prosody"],
        task["snr_db"],
        task["noise_seed"],
    )
    path = Path(task["path"])
    path.parent.mkdir(parents=True, exist_ok=True)
    if task["mp4"]:
        wav = path.with_suffix(".tmp.wav")
        sf.write(wav, x, SAMPLE_RATE, subtype="PCM_16")
        try:
            _encode_mp4(wav, path, task["video"])
        finally:
            wav.unlink()
    else:
        sf.write(path, x, SAMPLE_RATE, subtype="PCM_16")
    return len(x)


def _encode_mp4(wav, mp4, video=False):
    """wav → mp4 with AAC audio (and a tiny black video track if asked);
    bit-exact flags keep the bytes deterministic."""
    cmd = ["ffmpeg", "-nostdin", "-loglevel", "error", "-y", "-i", str(wav)]
    if video:
        cmd += ["-f", "lavfi", "-i", "color=c=black:s=32x32:r=5"]
        cmd += ["-shortest", "-c:v", "libx264", "-pix_fmt", "yuv420p"]
        cmd += ["-threads", "1", "-flags:v", "+bitexact"]
    cmd += ["-c:a", "aac", "-b:a", "64k", "-ar", str(SAMPLE_RATE), "-ac", "1"]
    cmd += ["-map_metadata", "-1", "-fflags", "+bitexact"]
    cmd += ["-flags:a", "+bitexact", str(mp4)]
    subprocess.run(cmd, check=True, capture_output=True)


def run_tasks(tasks, n_jobs):
    """Renders utterances to files, in a process pool when ``n_jobs > 1``.

    Arguments
    ---------
    tasks : list of dict
        Per utterance: ``text``, ``voice``, ``prosody``, ``snr_db``,
        ``noise_seed`` (see :func:`synthesize_utterance`), ``path``, ``mp4``
        (encode to mp4 with ffmpeg) and ``video`` (add a tiny black video
        track to the mp4).
    n_jobs : int
        Worker processes (the files are the same whatever the number).

    Returns
    -------
    list of int
        Number of samples of each utterance at 16 kHz, in task order.

    Example
    -------
    >>> p = {"pitch": 50, "pitch_range": 100, "rate": 170, "level_db": -25}
    >>> path = Path(tempfile.mkdtemp()) / "hi.wav"
    >>> task = {"text": "Hi.", "voice": "en+f2", "prosody": p,
    ...         "snr_db": 30.0, "noise_seed": 0, "path": str(path),
    ...         "mp4": False, "video": False}
    >>> [n] = run_tasks([task], n_jobs=1)
    >>> sf.info(path).frames == n
    True
    """
    if n_jobs <= 1 or len(tasks) < 2:
        return [_render_task(t) for t in tasks]
    # fork: cheap start; workers only use numpy/scipy/soundfile/subprocess.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
        return list(pool.map(_render_task, tasks, chunksize=4))


def render_plan(dialogues, speakers, path_of, n_jobs, mp4=False, video=False):
    """Renders every utterance of a plan and records its length.

    Arguments
    ---------
    dialogues : list of PlannedDialogue
        The plan; each utterance's ``n_samples`` is set here.
    speakers : dict
        Speaker id → SpeakerVoice.
    path_of : callable
        ``path_of(dialogue, utterance)`` → the file to write.
    n_jobs : int
        Worker processes.
    mp4 : bool
        Encode each file to mp4 (AAC) with ffmpeg.
    video : bool
        Add a tiny black video track to each mp4.

    Example
    -------
    >>> from speechbrain_dpm.synth.config import IemocapConfig
    >>> from speechbrain_dpm.synth.planning import plan_iemocap
    >>> config = IemocapConfig(n_dialogues=1, turns=(2, 2))
    >>> speakers, dialogues = plan_iemocap(config)
    >>> folder = Path(tempfile.mkdtemp())
    >>> def path_of(dialogue, utterance):
    ...     return folder / f"{utterance.utt_id}.wav"
    >>> render_plan(dialogues, speakers, path_of, n_jobs=1)
    >>> [u.n_samples == sf.info(path_of(None, u)).frames
    ...  for u in dialogues[0].utterances]
    [True, True]
    """
    utts = [(d, u) for d in dialogues for u in d.utterances]
    tasks = [
        {
            "text": u.text,
            "voice": speakers[u.speaker].voice,
            "prosody": u.prosody,
            "snr_db": u.snr_db,
            "noise_seed": u.noise_seed,
            "path": str(path_of(d, u)),
            "mp4": mp4,
            "video": video,
        }
        for d, u in utts
    ]
    for (_, u), n in zip(utts, run_tasks(tasks, n_jobs)):
        u.n_samples = n


def place_times(dialogue):
    """Fills in the turns' start and end times of a rendered dialogue.

    Times follow from the dialogue's offset, each turn's gap and its
    synthesised length, on an 8-sample grid so that times written with 4
    decimals are exact.

    Arguments
    ---------
    dialogue : PlannedDialogue
        A dialogue whose utterances know their ``n_samples``; their
        ``start`` and ``end`` are set here.

    Returns
    -------
    int
        The end of the last turn, in samples.

    Example
    -------
    >>> from speechbrain_dpm.synth.planning import plan_iemocap
    >>> dialogue = plan_iemocap()[1][0]
    >>> for u in dialogue.utterances:
    ...     u.n_samples = 8000
    >>> end = place_times(dialogue)
    >>> u = dialogue.utterances[-1]
    >>> round((u.end - u.start) * SAMPLE_RATE), u.end * SAMPLE_RATE == end
    (8000, True)
    """
    pos = int(round(dialogue.offset * SAMPLE_RATE / _GRID)) * _GRID
    for u in dialogue.utterances:
        pos += int(round(u.gap * SAMPLE_RATE / _GRID)) * _GRID
        u.start = pos / SAMPLE_RATE
        pos += u.n_samples
        u.end = pos / SAMPLE_RATE
    return pos
