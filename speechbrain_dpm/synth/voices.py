"""Synthetic speakers: espeak-ng voices, baselines and emotion prosody.

Every speaker has their own voice and prosodic baseline (pitch, pitch range,
speaking rate, loudness); an emotion shifts the prosody *relative to that
baseline*, and each utterance gets its own jitter. A single utterance is
therefore ambiguous across speakers, while the speaker's earlier turns
disambiguate it.

Authors
 * speechbrain_dpm developers 2026
"""

import math
from dataclasses import dataclass

import numpy as np

from speechbrain_dpm.synth.corpora import MELD_TO_IEMOCAP

#: Share of the emotion shift kept by a subdued turn (``subdued_share``).
SUBDUED_INTENSITY = 0.2

FEMALE_VOICES = (
    "en-us+f1",
    "en+f2",
    "en-us+f3",
    "en-gb-x-rp+f4",
    "en-us+f5",
    "en-029+f2",
)
MALE_VOICES = (
    "en-us+m1",
    "en+m3",
    "en-us+m2",
    "en-gb-scotland+m4",
    "en-us+m7",
    "en-029+m5",
)


@dataclass(frozen=True)
class EmotionProsody:
    """Prosody shift of an emotion, relative to the speaker's baseline.

    Arguments
    ---------
    pitch : float
        Added to the speaker's espeak-ng pitch (0..99 scale).
    pitch_range : float
        Multiplies the speaker's pitch range.
    rate : float
        Multiplies the speaker's speaking rate.
    gain_db : float
        Added to the speaker's loudness (dB).

    Example
    -------
    >>> EMOTION_PROSODY["sad"].rate < 1.0 < EMOTION_PROSODY["ang"].rate
    True
    """

    pitch: float = 0.0
    pitch_range: float = 1.0
    rate: float = 1.0
    gain_db: float = 0.0


EMOTION_PROSODY = {
    "neu": EmotionProsody(),
    "hap": EmotionProsody(8.0, 1.5, 1.06, 2.0),
    "exc": EmotionProsody(12.0, 1.8, 1.14, 4.0),
    "sad": EmotionProsody(-10.0, 0.55, 0.78, -5.0),
    "ang": EmotionProsody(6.0, 1.25, 1.16, 6.0),
    "fru": EmotionProsody(3.0, 0.9, 1.06, 3.0),
    "sur": EmotionProsody(14.0, 2.0, 0.95, 3.0),
    "fea": EmotionProsody(10.0, 0.8, 1.18, -2.0),
    "dis": EmotionProsody(-5.0, 0.8, 0.88, 1.0),
    "oth": EmotionProsody(0.0, 1.1, 1.0, 0.0),
}


@dataclass(frozen=True)
class SpeakerVoice:
    """A synthetic speaker: an espeak-ng voice and its prosodic baseline.

    Arguments
    ---------
    speaker_id : str
        E.g. ``Ses01F`` (IEMOCAP) or ``Avery`` (MELD).
    gender : str
        ``F`` or ``M``.
    voice : str
        espeak-ng voice with variant, e.g. ``en-us+f2``.
    pitch : float
        Baseline espeak-ng pitch (0..99).
    pitch_range : float
        Baseline pitch range in percent of espeak-ng's default.
    rate : float
        Baseline speaking rate (words per minute).
    level_db : float
        Baseline RMS level (dBFS).

    Example
    -------
    >>> v = SpeakerVoice("Ses01F", "F", "en+f2", 55.0, 100.0, 170.0, -25.0)
    >>> p = v.prosody("ang", np.random.default_rng(0), jitter=0.0)
    >>> p["level_db"] > v.level_db and p["rate"] > v.rate
    True
    """

    speaker_id: str
    gender: str
    voice: str
    pitch: float
    pitch_range: float
    rate: float
    level_db: float

    def prosody(self, emotion, rng, intensity=1.0, jitter=1.0):
        """Prosody of one utterance: baseline + emotion shift + jitter.

        Arguments
        ---------
        emotion : str
            IEMOCAP or MELD label (MELD labels are mapped to IEMOCAP's).
        rng : numpy.random.Generator
            Source of the jitter.
        intensity : float
            Scales the emotion shift (0 gives the baseline).
        jitter : float
            Scales the random per-utterance variation.

        Returns
        -------
        dict
            ``pitch``, ``pitch_range``, ``rate``, ``level_db``.

        Example
        -------
        >>> v = SpeakerVoice("Avery", "F", "en+f2", 55.0, 100.0, 170.0, -25.0)
        >>> rng = np.random.default_rng(0)
        >>> v.prosody("sadness", rng, intensity=0.0, jitter=0.0)["rate"]
        170.0
        >>> v.prosody("sadness", rng, jitter=0.0)["rate"] < v.rate
        True
        """
        shift = EMOTION_PROSODY.get(
            MELD_TO_IEMOCAP.get(emotion, emotion), EMOTION_PROSODY["neu"]
        )
        z = rng.normal(size=4) * jitter
        pitch = self.pitch + intensity * shift.pitch + 3.0 * z[0]
        prange = self.pitch_range * shift.pitch_range**intensity
        rate = self.rate * shift.rate**intensity
        return {
            "pitch": float(np.clip(pitch, 0.0, 99.0)),
            "pitch_range": float(
                np.clip(prange * math.exp(0.1 * z[1]), 10, 300)
            ),
            "rate": float(np.clip(rate * math.exp(0.04 * z[2]), 80, 450)),
            "level_db": float(
                self.level_db + intensity * shift.gain_db + 1.5 * z[3]
            ),
        }


_BASELINE_KEYS = ("pitch", "pitch_range", "rate", "level_db")


def make_speaker(speaker_id, gender, voice, rng, quantiles=None):
    """Draws a speaker's baseline (pitch, range, rate, loudness).

    Arguments
    ---------
    speaker_id : str
        The speaker's id.
    gender : str
        ``F`` or ``M``.
    voice : str
        espeak-ng voice with variant.
    rng : numpy.random.Generator
        Source of the baseline.
    quantiles : dict, optional
        Quantile in [0, 1) of each baseline value (``pitch``,
        ``pitch_range``, ``rate``, ``level_db``) within its range; drawn
        uniformly if not given.

    Returns
    -------
    SpeakerVoice
        The speaker.

    Example
    -------
    >>> s = make_speaker("Ses01M", "M", "en+m3", np.random.default_rng(0))
    >>> 25 <= s.pitch <= 60 and 140 <= s.rate <= 195
    True
    """
    ranges = {
        "pitch": (35.0, 70.0) if gender == "F" else (25.0, 60.0),
        "pitch_range": (70.0, 140.0),
        "rate": (140.0, 195.0),
        "level_db": (-30.0, -21.0),
    }
    values = {}
    for key in _BASELINE_KEYS:
        q = rng.uniform() if quantiles is None else quantiles[key]
        lo, hi = ranges[key]
        values[key] = round(float(lo + q * (hi - lo)), 2)
    return SpeakerVoice(speaker_id, gender, voice, **values)


def stratified_quantiles(rng, n):
    """Quantiles of ``n`` speakers' baselines, spread out by strata.

    Per baseline value (``pitch``, ``pitch_range``, ``rate``,
    ``level_db``), each speaker gets a quantile from a stratum of its own,
    so that speakers' baselines are spread out and never coincide.

    Arguments
    ---------
    rng : numpy.random.Generator
        Source of the strata order and the position within a stratum.
    n : int
        Number of speakers.

    Returns
    -------
    list of dict
        Per speaker, baseline value → quantile in [0, 1) (the
        ``quantiles`` of :func:`make_speaker`).

    Example
    -------
    >>> q = stratified_quantiles(np.random.default_rng(0), 4)
    >>> sorted(int(4 * s["rate"]) for s in q)
    [0, 1, 2, 3]
    """
    return [
        dict(zip(_BASELINE_KEYS, q))
        for q in zip(
            *(
                (rng.permutation(n) + rng.uniform(0.1, 0.9, n)) / n
                for _ in _BASELINE_KEYS
            )
        )
    ]
