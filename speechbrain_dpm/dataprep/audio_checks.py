"""Audio checks of the prepare scripts, block by block.

Audio policy
------------
Manifests promise 16 kHz mono wav files that the loaders read as they are
(``speechbrain.dataio.dataio.read_audio`` does not resample). The checks of
:func:`check_audio` therefore reject, with a counted and logged skip, a
missing file, an unreadable file, an empty file (no samples), a file with a
wrong sample rate or more than one channel, NaN/Inf samples, and a silent
file (peak amplitude below ``silence_threshold``). Corpora whose media are
not 16 kHz mono (MELD) are converted by their prepare script instead.

The sample rate, the silence threshold and the NaN and silence rules are
those of :mod:`speechbrain_dpm.audio`, the project's waveform checker.

Authors
 * speechbrain_dpm contributors 2026
"""

import os
from collections import namedtuple

import soundfile as sf

from speechbrain_dpm.audio import (
    SAMPLE_RATE,
    SILENCE_PEAK,
    is_silent,
    peak_amplitude,
)
from speechbrain_dpm.dataprep.skips import (
    EMPTY_AUDIO,
    MISSING_AUDIO,
    NAN_AUDIO,
    NOT_MONO,
    SILENT_AUDIO,
    UNREADABLE_AUDIO,
    WRONG_SAMPLE_RATE,
)

AudioInfo = namedtuple(
    "AudioInfo", ["duration", "sample_rate", "channels", "frames"]
)


class AudioCheckError(Exception):
    """An audio file failed a check of :func:`check_audio`.

    Arguments
    ---------
    reason : str
        One of the skip reasons (``missing_audio``, ``unreadable_audio``,
        ``empty_audio``, ``wrong_sample_rate``, ``not_mono``, ``nan_audio``,
        ``silent_audio``).
    path : str
        The audio file.
    detail : str
        A human-readable explanation.

    Example
    -------
    >>> err = AudioCheckError("missing_audio", "/x.wav", "no such file")
    >>> err.reason
    'missing_audio'
    >>> str(err)
    'missing_audio: /x.wav: no such file'
    """

    def __init__(self, reason, path, detail=""):
        self.reason = reason
        self.path = str(path)
        self.detail = detail
        super().__init__(f"{reason}: {self.path}: {detail}")


def check_audio(
    path,
    sample_rate=SAMPLE_RATE,
    mono=True,
    silence_threshold=SILENCE_PEAK,
    block=1 << 20,
):
    """Checks that an audio file is usable and returns its properties.

    The file is read once in blocks, so long files do not need to fit in
    memory at once.

    Arguments
    ---------
    path : str
        The audio file.
    sample_rate : int or None
        The required sample rate; ``None`` accepts any rate.
    mono : bool
        If True, files with more than one channel are rejected.
    silence_threshold : float
        A file whose peak absolute amplitude (on the -1..1 float scale) is
        below this value is rejected as silent. ``0`` disables the check
        (an all-zero file is then still rejected).
    block : int
        Number of frames read at a time.

    Returns
    -------
    AudioInfo
        ``(duration, sample_rate, channels, frames)``, duration in seconds.

    Raises
    ------
    AudioCheckError
        With ``reason`` set to the failed check.

    Example
    -------
    >>> import numpy as np, soundfile as sf
    >>> tmp = getfixture("tmpdir")
    >>> path = str(tmp / "a.wav")
    >>> sf.write(path, 0.1 * np.ones(8000, dtype="float32"), 16000)
    >>> check_audio(path)
    AudioInfo(duration=0.5, sample_rate=16000, channels=1, frames=8000)
    >>> sf.write(path, np.zeros(8000, dtype="float32"), 16000)
    >>> check_audio(path)
    Traceback (most recent call last):
    ...
    speechbrain_dpm.dataprep.audio_checks.AudioCheckError: silent_audio: ...
    """
    path = str(path)
    if not os.path.isfile(path):
        raise AudioCheckError(MISSING_AUDIO, path, "file does not exist")
    try:
        info = sf.info(path)
    except Exception as exc:  # soundfile raises several types
        raise AudioCheckError(UNREADABLE_AUDIO, path, str(exc)) from exc
    if info.frames <= 0:
        raise AudioCheckError(EMPTY_AUDIO, path, "no samples")
    if sample_rate is not None and info.samplerate != sample_rate:
        raise AudioCheckError(
            WRONG_SAMPLE_RATE,
            path,
            f"{info.samplerate} Hz, expected {sample_rate} Hz",
        )
    if mono and info.channels != 1:
        raise AudioCheckError(
            NOT_MONO, path, f"{info.channels} channels, expected 1"
        )
    peak = 0.0
    frames = 0
    try:
        for chunk in sf.blocks(path, blocksize=block, dtype="float32"):
            frames += len(chunk)
            chunk_peak = peak_amplitude(chunk)
            if chunk_peak is None:
                raise AudioCheckError(NAN_AUDIO, path, "NaN or Inf samples")
            peak = max(peak, chunk_peak)
    except AudioCheckError:
        raise
    except Exception as exc:
        raise AudioCheckError(UNREADABLE_AUDIO, path, str(exc)) from exc
    if frames == 0:
        raise AudioCheckError(EMPTY_AUDIO, path, "no samples")
    if is_silent(peak, silence_threshold):
        raise AudioCheckError(
            SILENT_AUDIO, path, f"peak amplitude {peak:.2e} (silent)"
        )
    return AudioInfo(
        duration=frames / info.samplerate,
        sample_rate=info.samplerate,
        channels=info.channels,
        frames=frames,
    )
