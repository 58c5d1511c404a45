"""Audio: reading and checking the waveforms the recognizer labels.

Files are read with soundfile (wav, flac, ogg, mp3; convert m4a/mp4 with
ffmpeg), multi-channel audio is downmixed to mono by averaging the
channels, and any sample rate is resampled to 16 kHz. Tensors given
directly must already be 16 kHz mono. Missing or unreadable files, empty
audio, audio shorter than ``MIN_SECONDS``, NaN/infinite samples and
all-silent utterances raise a ``ValueError`` (``FileNotFoundError`` for a
missing file) naming the input.

Authors
 * speechbrain_dpm developers 2026
"""

import functools
import os

import torch
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.settings import check_choice

logger = get_logger(__name__)

SAMPLE_RATE = 16000
#: Peak amplitude below which an utterance counts as silent (-80 dBFS).
SILENCE_PEAK = 1e-4
#: Shortest utterance accepted, in seconds (two 40 ms unit frames); shorter
#: audio (e.g. a truncated file) holds no speech to label.
MIN_SECONDS = 0.08
#: What ``on_error`` may be: fail on a bad turn, or leave it out.
ON_ERROR = ("raise", "skip")


def peak_amplitude(samples):
    """Peak absolute amplitude of some samples, or None if one is not finite.

    The one NaN/Inf check of the project's waveforms, also applied block by
    block to the files a prepare script checks (``dataprep.check_audio``).

    Arguments
    ---------
    samples : torch.Tensor or numpy.ndarray
        Samples of any shape, on the -1..1 float scale.

    Returns
    -------
    float or None
        The peak (0.0 for no samples), or None if a sample is NaN or
        infinite.

    Example
    -------
    >>> peak_amplitude(torch.tensor([0.5, -0.75]))
    0.75
    >>> peak_amplitude(torch.tensor([0.5, float("nan")])) is None
    True
    """
    samples = torch.as_tensor(samples)
    if not bool(torch.isfinite(samples).all()):
        return None
    return float(samples.abs().max()) if samples.numel() else 0.0


def is_silent(peak, threshold=SILENCE_PEAK):
    """Whether a peak amplitude means silence.

    Arguments
    ---------
    peak : float
        Peak absolute amplitude (:func:`peak_amplitude`).
    threshold : float
        Peaks below it are silent (``SILENCE_PEAK``); with 0, only an
        all-zero signal is.

    Returns
    -------
    bool
        True if the signal counts as silent.

    Example
    -------
    >>> is_silent(5e-5), is_silent(0.1), is_silent(0.0, threshold=0)
    (True, False, True)
    """
    return peak <= 0.0 or peak < threshold


def check_waveform(
    wav, name="audio", allow_silence=False, min_seconds=MIN_SECONDS
):
    """Checks a 1-D waveform: non-empty, long enough, finite, not silent.

    Arguments
    ---------
    wav : torch.Tensor
        1-D waveform.
    name : str
        What to call it in error messages (a file name, ``wavs[2]``...).
    allow_silence : bool
        Do not reject an all-silent waveform.
    min_seconds : float
        Shortest duration accepted (``MIN_SECONDS``; 0 accepts any
        non-empty waveform).

    Returns
    -------
    torch.Tensor
        The waveform (float32).

    Raises
    ------
    ValueError
        If it is empty, shorter than ``min_seconds``, has NaN/infinite
        samples or (unless allowed) its peak amplitude is below
        ``SILENCE_PEAK``.

    Example
    -------
    >>> check_waveform(torch.ones(1600)).shape
    torch.Size([1600])
    >>> check_waveform(torch.zeros(1600), "x.wav")
    Traceback (most recent call last):
    ...
    ValueError: x.wav: the audio is silent (peak amplitude 0.0e+00)
    >>> check_waveform(torch.ones(8), "cut.wav")
    Traceback (most recent call last):
    ...
    ValueError: cut.wav: the audio is too short: 0.0005 s (8 samples ...)...s
    """
    wav = torch.as_tensor(wav)
    if wav.dim() != 1:
        raise ValueError(
            f"{name}: expected a 1-D (mono) waveform, got shape "
            f"{tuple(wav.shape)}"
        )
    if wav.numel() == 0:
        raise ValueError(f"{name}: the audio is empty (0 samples)")
    if wav.numel() < min_seconds * SAMPLE_RATE:
        raise ValueError(
            f"{name}: the audio is too short: "
            f"{wav.numel() / SAMPLE_RATE:.4f} s ({wav.numel()} samples at "
            f"16 kHz), the minimum is {min_seconds} s"
        )
    wav = wav.float()
    peak = peak_amplitude(wav)
    if peak is None:
        raise ValueError(f"{name}: the audio has NaN or infinite samples")
    if is_silent(peak) and not allow_silence:
        raise ValueError(
            f"{name}: the audio is silent (peak amplitude {peak:.1e})"
        )
    return wav


def read_audio_16k(source, allow_silence=False, min_seconds=MIN_SECONDS):
    """Reads audio as a checked mono 16 kHz waveform: the project's one
    audio loader (recognizer, long audio, units stage).

    As ``Pretrained.load_audio`` does, the file is read with SpeechBrain's
    ``audio_io.load`` (soundfile) and brought to 16 kHz mono by SpeechBrain's
    ``AudioNormalizer`` (channels averaged, other rates resampled), then
    checked by :func:`check_waveform`.

    Arguments
    ---------
    source : str, path-like or dict
        An audio file soundfile can read (wav, flac, ogg, mp3), or a
        SpeechBrain manifest ``{"file", "start", "stop"}`` dict (start and
        stop in samples of the file; no stop, or stop equal to start, reads
        to the end).
    allow_silence : bool
        Do not reject an all-silent recording.
    min_seconds : float
        Shortest duration accepted (see :func:`check_waveform`).

    Returns
    -------
    torch.Tensor
        1-D float32 waveform at 16 kHz (CPU).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be decoded, is empty, too short, has NaN samples or
        is silent; the message names the file and the problem.

    Example
    -------
    >>> import soundfile as sf
    >>> path = str(getfixture("tmpdir") / "tone.wav")
    >>> tone = torch.sin(torch.arange(8000) / 10.0).numpy()
    >>> sf.write(path, tone, 8000)
    >>> read_audio_16k(path).shape
    torch.Size([16000])
    >>> read_audio_16k({"file": path, "start": 0, "stop": 4000}).shape
    torch.Size([8000])
    >>> read_audio_16k("missing.wav")
    Traceback (most recent call last):
    ...
    FileNotFoundError: audio file not found: missing.wav
    """
    from speechbrain.dataio import audio_io

    if isinstance(source, dict):
        path = os.fspath(source["file"])
        start = int(source.get("start", 0))
        stop = int(source.get("stop", start))
        frames = stop - start if stop != start else -1
        name = f"{path} [{start}:{stop if stop != start else ''}]"
    else:
        path = name = os.fspath(source)
        start, frames = 0, -1
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, rate = audio_io.load(
            path, channels_first=False, frame_offset=start, num_frames=frames
        )
    except RuntimeError as err:  # audio_io wraps soundfile's errors
        raise ValueError(
            f"cannot read audio file {path}: {err.__cause__ or err} (formats: "
            "wav, flac, ogg, mp3; convert others with ffmpeg -i IN -ac 1 "
            "-ar 16000 OUT.wav)"
        ) from err
    if data.numel() and bool(torch.isfinite(data).all()):
        wav = _normalizer()(data, rate)
    else:  # nothing to resample: check_waveform names the problem
        wav = data.mean(dim=1)
    return check_waveform(wav, name, allow_silence, min_seconds)


@functools.lru_cache(maxsize=1)
def _normalizer():
    """SpeechBrain's ``AudioNormalizer`` to 16 kHz mono (it keeps one
    resampler per input rate, so one instance serves every read)."""
    from speechbrain.dataio.preprocess import AudioNormalizer

    return AudioNormalizer(SAMPLE_RATE, mix="avg-to-mono")


def as_waveform(item, name):
    """A path or a 16 kHz mono tensor as a checked 1-D waveform.

    Arguments
    ---------
    item : str, path-like or torch.Tensor
        An audio file (read with :func:`read_audio_16k`), or a [T] or
        [1, T] 16 kHz mono waveform.
    name : str
        What to call a tensor in error messages (a file is named by its
        path).

    Returns
    -------
    torch.Tensor
        1-D float32 waveform at 16 kHz (CPU).

    Example
    -------
    >>> as_waveform(torch.ones(1, 1600), "turn 0").shape
    torch.Size([1600])
    """
    if isinstance(item, (str, os.PathLike)):
        return read_audio_16k(item)
    wav = torch.as_tensor(item)
    if wav.dim() == 2 and wav.shape[0] == 1:
        wav = wav[0]
    return check_waveform(wav.detach().cpu(), name)


def checked_turns(items, on_error):
    """Checked waveforms of a conversation's turns.

    Arguments
    ---------
    items : list of str or torch.Tensor
        The turns (paths or 16 kHz mono tensors).
    on_error : str
        ``raise``: the first bad turn raises. ``skip``: bad turns
        (missing, unreadable, empty, too short, NaN, silent) are left
        out, with a logged count.

    Returns
    -------
    list
        Per turn, a waveform, or the error message of a skipped turn.

    Example
    -------
    >>> turns = checked_turns([torch.ones(1600), torch.zeros(1600)], "skip")
    >>> turns[0].shape
    torch.Size([1600])
    >>> turns[1]
    'utterance 1: the audio is silent (peak amplitude 0.0e+00)'
    """
    check_choice("on_error", on_error, ON_ERROR)
    out = []
    for i, item in enumerate(items):
        try:
            out.append(as_waveform(item, f"utterance {i}"))
        except (OSError, ValueError) as err:
            if on_error == "raise":
                raise
            is_path = isinstance(item, (str, os.PathLike))
            out.append(f"utterance {i}: {err}" if is_path else str(err))
    bad = [x for x in out if isinstance(x, str)]
    if bad:
        logger.warning(
            "left %d of %d turns out of the conversation (on_error='skip'): %s",
            len(bad),
            len(out),
            "; ".join(bad),
        )
    return out
