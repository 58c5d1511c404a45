"""Synthetic conversational emotion corpora in the IEMOCAP and MELD layouts.

The real IEMOCAP and MELD corpora are licensed and absent, so demos, tests and
benchmarks run on corpora generated here, written in exactly the real on-disk
layouts so that the real data-preparation scripts run on them unchanged.

Speech comes from espeak-ng. Every speaker has their own voice and baseline
(pitch, pitch range, speaking rate, loudness); an emotion shifts the prosody
*relative to that baseline*, and each utterance gets prosody jitter and
additive noise. A single utterance is therefore ambiguous across speakers,
while the speaker's earlier turns disambiguate it: exactly what a
conversation-level memory can exploit. Emotions persist across a speaker's
turns through a per-speaker Markov chain (``stickiness``). Texts are
emotion-neutral by default, so the words do not give the label away.
With ``subdued_share`` > 0, that share of turns is delivered close to the
speaker's neutral baseline while keeping its label: such a turn can only be
read from the conversation around it (measured in the IEMOCAP recipe's
``RESULTS.md``).

Every corpus carries a ``SYNTHETIC.txt`` at its root (generator, parameters,
seed) and a ``SYNTHETIC_meta.json`` (speakers' baselines and the plan of every
utterance: true emotion, prosody, whether it is subdued). Generation is
deterministic: the same parameters and seed give byte-identical files,
whatever ``n_jobs``.

IEMOCAP layout (``IEMOCAP_full_release``)::

    Session{1..5}/dialog/EmoEvaluation/<dialog>.txt
    Session{1..5}/dialog/transcriptions/<dialog>.txt
    Session{1..5}/dialog/wav/<dialog>.wav
    Session{1..5}/sentences/wav/<dialog>/<turn>.wav

MELD layout (``MELD.Raw``)::

    {train,dev,test}_sent_emo.csv
    train/train_splits/dia{D}_utt{U}.mp4
    dev/dev_splits_complete/dia{D}_utt{U}.mp4
    test/output_repeated_splits_test/dia{D}_utt{U}.mp4

Authors
 * speechbrain_dpm developers 2026
"""

import argparse
import csv
import hashlib
import json
import math
import multiprocessing
import os
import shutil
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from xml.sax.saxutils import escape

import numpy as np
import soundfile as sf
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

GENERATOR_VERSION = 1
#: Share of the emotion shift kept by a subdued turn (``subdued_share``).
SUBDUED_INTENSITY = 0.2
SAMPLE_RATE = 16000
# Turn times are written with 4 decimals; aligning every boundary to 8
# samples (0.5 ms) makes them exact, so cutting the dialogue wav at the
# written times gives back the sentence wav sample for sample.
_GRID = 8
SYNTH_FILE = "SYNTHETIC.txt"
META_FILE = "SYNTHETIC_meta.json"
_PARAMS_MARKER = "PARAMETERS (JSON):"

IEMOCAP_LABELS = (
    "neu",
    "hap",
    "sad",
    "ang",
    "exc",
    "fru",
    "sur",
    "fea",
    "dis",
    "oth",
    "xxx",
)
# Mostly the five classes used in the literature, plus some fru / sur so
# that class mapping gets exercised; xxx comes from annotator disagreement.
IEMOCAP_PRIOR = {
    "neu": 0.28,
    "hap": 0.13,
    "exc": 0.13,
    "sad": 0.16,
    "ang": 0.16,
    "fru": 0.10,
    "sur": 0.04,
}
IEMOCAP_CATEGORY = {
    "neu": "Neutral state",
    "hap": "Happiness",
    "sad": "Sadness",
    "ang": "Anger",
    "exc": "Excited",
    "fru": "Frustration",
    "sur": "Surprise",
    "fea": "Fear",
    "dis": "Disgust",
    "oth": "Other",
}
# The category a dissenting annotator picks instead.
_CONFUSION = {
    "neu": "fru",
    "hap": "exc",
    "exc": "hap",
    "sad": "neu",
    "ang": "fru",
    "fru": "ang",
    "sur": "exc",
    "fea": "sur",
    "dis": "ang",
    "oth": "neu",
}
# Mean valence, activation, dominance (1..5) per category.
_VAD = {
    "neu": (3.0, 2.5, 2.5),
    "hap": (4.0, 3.0, 3.0),
    "exc": (4.0, 3.8, 3.5),
    "sad": (2.0, 2.0, 2.0),
    "ang": (1.8, 4.0, 4.0),
    "fru": (2.0, 3.2, 3.2),
    "sur": (3.5, 3.8, 3.0),
    "fea": (2.0, 3.5, 2.0),
    "dis": (1.8, 3.0, 3.5),
    "oth": (3.0, 3.0, 3.0),
}

MELD_LABELS = (
    "neutral",
    "joy",
    "sadness",
    "anger",
    "surprise",
    "fear",
    "disgust",
)
MELD_PRIOR = {
    "neutral": 0.40,
    "joy": 0.17,
    "sadness": 0.10,
    "anger": 0.12,
    "surprise": 0.13,
    "fear": 0.04,
    "disgust": 0.04,
}
MELD_TO_IEMOCAP = {
    "neutral": "neu",
    "joy": "hap",
    "sadness": "sad",
    "anger": "ang",
    "surprise": "sur",
    "fear": "fea",
    "disgust": "dis",
}
MELD_SPLIT_DIRS = {
    "train": "train/train_splits",
    "dev": "dev/dev_splits_complete",
    "test": "test/output_repeated_splits_test",
}
MELD_COLUMNS = (
    "Sr No.",
    "Utterance",
    "Speaker",
    "Emotion",
    "Sentiment",
    "Dialogue_ID",
    "Utterance_ID",
    "Season",
    "Episode",
    "StartTime",
    "EndTime",
)
MELD_NAMES = (
    "Avery",
    "Blake",
    "Casey",
    "Drew",
    "Emery",
    "Finley",
    "Harper",
    "Jordan",
)

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


def _stratified_quantiles(rng, n):
    """Per baseline value, one quantile per speaker from distinct strata,
    so that speakers' baselines are spread out and never coincide."""
    return [
        dict(zip(_BASELINE_KEYS, q))
        for q in zip(
            *(
                (rng.permutation(n) + rng.uniform(0.1, 0.9, n)) / n
                for _ in _BASELINE_KEYS
            )
        )
    ]


# ----------------------------------------------------------------- texts
_FIXED_SENTENCES = (
    "Excuse me.",
    "Can you hand me that?",
    "I left it on the counter.",
    "We should leave at six.",
    "The bus comes every twenty minutes.",
    "Did you see the note on the door?",
    "It is on the second shelf.",
    "I will call them tomorrow.",
    "The meeting moved to Thursday.",
    "She said it was in the car.",
    "Let me check the schedule.",
    "I think it was the other one.",
    "They closed the store early today.",
    "We need two more chairs.",
    "The printer is in the hallway.",
    "Is this the right address?",
    "I have not read it yet.",
    "The train was on time.",
    "You can park behind the building.",
    "It takes about an hour.",
    "We talked about it last week.",
    "Do you want the window open?",
    "My phone is charging.",
    "I wrote it down somewhere.",
    "What time is it now?",
    "It is the third door on the left.",
    "We can take the stairs.",
    "The package arrived on Monday.",
    "He is still on the phone.",
    "Turn left at the corner.",
    "You said the red one.",
    "It was raining in the morning.",
)
_SUBJECTS = ("I", "We", "She", "He", "They", "My sister", "The manager")
_VERBS = (
    ("moved", "move"),
    ("checked", "check"),
    ("painted", "paint"),
    ("counted", "count"),
    ("carried", "carry"),
    ("opened", "open"),
    ("cleaned", "clean"),
    ("measured", "measure"),
)
_OBJECTS = (
    "the boxes",
    "the chairs",
    "the windows",
    "the papers",
    "the blue folder",
    "the kitchen table",
    "the old car",
    "the garden fence",
)
_WHENS = (
    "this morning",
    "on Tuesday",
    "last week",
    "after lunch",
    "yesterday",
    "before dinner",
)
_PLACES = (
    "next to the door",
    "in the car",
    "on the second floor",
    "behind the desk",
    "in the hallway",
    "near the window",
)
# Only used for the optional share of emotion-laden texts.
EMOTION_SENTENCES = {
    "neu": ("Okay.", "I see.", "That makes sense."),
    "hap": (
        "That is wonderful news!",
        "I am so happy for you.",
        "I love it, thank you!",
    ),
    "exc": (
        "I cannot wait, this is amazing!",
        "We actually did it!",
        "Oh wow, that is fantastic!",
    ),
    "sad": (
        "I miss her so much.",
        "Nothing seems to work out anymore.",
        "I feel so alone lately.",
    ),
    "ang": (
        "This is completely unacceptable!",
        "Stop lying to me!",
        "I am sick of this!",
    ),
    "fru": (
        "Why does this keep happening?",
        "I have asked you three times already.",
        "This is going nowhere.",
    ),
    "sur": ("Wait, really?", "I did not expect that at all!"),
    "fea": ("I think someone is following us.", "What was that noise?"),
    "dis": ("That is absolutely disgusting.", "Ugh, it smells terrible."),
    "oth": ("Well, whatever.",),
}


def neutral_sentences():
    """The pool of emotion-neutral conversational sentences.

    A fixed list plus combinations of everyday subjects, actions, objects and
    times, all without emotional words, so that text alone carries no label.

    Returns
    -------
    list of str
        Sentences in a fixed order.

    Example
    -------
    >>> pool = neutral_sentences()
    >>> len(pool) > 300 and "Excuse me." in pool
    True
    """
    pool = list(_FIXED_SENTENCES)
    for subj in _SUBJECTS:
        for past, _ in _VERBS:
            for obj in _OBJECTS:
                for when in _WHENS:
                    pool.append(f"{subj} {past} {obj} {when}.")
    for _, base in _VERBS:
        for obj in _OBJECTS:
            for when in _WHENS:
                pool.append(f"Did you {base} {obj} {when}?")
    for obj in _OBJECTS:
        for place in _PLACES:
            pool.append(f"I left {obj} {place}.")
    return pool


def read_dialogue_csv(path):
    """Reads dialogues from a CSV with MELD's columns.

    Arguments
    ---------
    path : str or Path
        CSV with at least ``Utterance``, ``Speaker`` and ``Dialogue_ID``
        (``Utterance_ID`` orders the turns, ``Emotion`` is kept if present).

    Returns
    -------
    list of list of dict
        Dialogues in file order; each turn has ``text``, ``speaker`` and
        ``emotion`` (``None`` if the column is missing).

    Example
    -------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = p.write_text(
    ...     "Utterance,Speaker,Emotion,Dialogue_ID,Utterance_ID\\n"
    ...     "Hi.,Ann,joy,0,0\\nHello.,Bob,neutral,0,1\\n"
    ... )
    >>> read_dialogue_csv(p)[0][1]["text"]
    'Hello.'
    """
    dialogues = {}
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            text = " ".join(str(row.get("Utterance") or "").split())
            if not text:
                continue
            key = row.get("Dialogue_ID", "0")
            order = row.get("Utterance_ID")
            dialogues.setdefault(key, []).append(
                (
                    int(order) if order and order.isdigit() else i,
                    {
                        "text": text,
                        "speaker": row.get("Speaker") or "A",
                        "emotion": (row.get("Emotion") or None),
                    },
                )
            )
    return [
        [t for _, t in sorted(d, key=lambda x: x[0])]
        for d in dialogues.values()
    ]


# ------------------------------------------------------------ planning
def emotion_chain(speakers, prior, stickiness, rng, contagion=0.2):
    """Samples emotions for a sequence of turns with per-speaker persistence.

    Each speaker keeps their previous emotion with probability
    ``stickiness``; otherwise, with probability ``contagion``, they take the
    emotion of the previous turn (someone else's), else they draw from
    ``prior``.

    Arguments
    ---------
    speakers : list of str
        Who speaks each turn.
    prior : dict
        Emotion → probability.
    stickiness : float
        Probability of keeping one's previous emotion.
    rng : numpy.random.Generator
        Source of randomness.
    contagion : float
        Probability of taking over the previous turn's emotion on a change.

    Returns
    -------
    list of str
        One emotion per turn.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> emos = emotion_chain(["A", "B"] * 20, {"neu": .5, "ang": .5}, 1.0, rng)
    >>> len(set(emos[0::2])) == 1 and len(set(emos[1::2])) == 1
    True
    """
    labels = list(prior)
    probs = np.asarray([prior[k] for k in labels], dtype=float)
    probs = probs / probs.sum()
    last, out = {}, []
    for spk in speakers:
        if spk in last and rng.random() < stickiness:
            emo = last[spk]
        elif out and rng.random() < contagion:
            emo = out[-1]
        else:
            emo = labels[int(rng.choice(len(labels), p=probs))]
        last[spk] = emo
        out.append(emo)
    return out


@dataclass
class PlannedUtterance:
    """One utterance of a planned corpus (everything but the audio).

    Arguments
    ---------
    utt_id : str
        Turn name (IEMOCAP) or ``dia{D}_utt{U}`` (MELD).
    dialogue_id : str
        Dialogue name.
    speaker : str
        Speaker id.
    text : str
        What is said.
    emotion : str
        The emotion rendered in the audio.
    label : str
        The written label (differs from ``emotion`` for IEMOCAP ``xxx``).
    prosody : dict
        ``pitch``, ``pitch_range``, ``rate``, ``level_db``.
    snr_db : float
        Signal-to-noise ratio of the added noise.
    noise_seed : int
        Seed of the noise.
    gap : float
        Pause before this turn (seconds).
    subdued : bool
        Delivered with little of its emotion's prosody (``subdued_share``).
    n_samples : int
        Length at 16 kHz, filled in after synthesis.
    start : float
        Start time in the dialogue, filled in after synthesis.
    end : float
        End time in the dialogue, filled in after synthesis.
    """

    utt_id: str
    dialogue_id: str
    speaker: str
    text: str
    emotion: str
    label: str
    prosody: dict
    snr_db: float
    noise_seed: int
    gap: float
    subdued: bool = False
    n_samples: int = 0
    start: float = 0.0
    end: float = 0.0


@dataclass
class PlannedDialogue:
    """A planned dialogue.

    Arguments
    ---------
    dialogue_id : str
        E.g. ``Ses01F_impro01`` or ``dia3``.
    group : str
        ``Session1`` .. ``Session5`` (IEMOCAP) or the split (MELD).
    utterances : list of PlannedUtterance
        The turns in order.
    offset : float
        Time of the first turn (seconds).
    info : dict
        Extra per-dialogue fields (MELD season and episode).
    """

    dialogue_id: str
    group: str
    utterances: list
    offset: float = 0.0
    info: dict = field(default_factory=dict)


def _iemocap_dialogue_names(session, count):
    """Real-style dialogue names of one session, in a realistic order."""
    names, impro, script = [], 0, 0
    while len(names) < count:
        if (len(names) // 2) % 2 == 0:
            impro += 1
            stem = f"impro{impro:02d}"
        else:
            script += 1
            stem = f"script{(script - 1) // 3 + 1:02d}_{(script - 1) % 3 + 1}"
        # The same scenario exists twice: marker on the F, then the M actor.
        names.extend(f"Ses{session:02d}{g}_{stem}" for g in "FM")
    return names[:count]


def _choose_texts(n, emotions, rng, pool, laden_share):
    """Draws texts; a share of them is emotion-laden (matching the label)."""
    texts = []
    for emo in emotions:
        laden = EMOTION_SENTENCES.get(MELD_TO_IEMOCAP.get(emo, emo))
        if laden and laden_share > 0 and rng.random() < laden_share:
            texts.append(laden[int(rng.integers(len(laden)))])
        else:
            texts.append(pool[int(rng.integers(len(pool)))])
    return texts[:n]


def _csv_turns(csv_dialogues, index, n_turns):
    """Turns from CSV dialogues: dialogue ``index``, or enough consecutive
    ones for ``n_turns`` (long dialogues)."""
    if n_turns is None:
        return csv_dialogues[index % len(csv_dialogues)]
    turns, k = [], index
    while len(turns) < n_turns:
        turns.extend(csv_dialogues[k % len(csv_dialogues)])
        k += 1
    return turns[:n_turns]


def _map_csv_emotion(emotion, labels):
    """Maps a CSV emotion onto the target label set (None if unknown)."""
    if emotion is None:
        return None
    emotion = emotion.strip().lower()
    if emotion in labels:
        return emotion
    if emotion in MELD_TO_IEMOCAP and MELD_TO_IEMOCAP[emotion] in labels:
        return MELD_TO_IEMOCAP[emotion]
    return None


def _subdued_flags(seed, index, n, share):
    """Which of a dialogue's ``n`` turns are subdued (own random stream)."""
    if share <= 0:
        return [False] * n
    return list(np.random.default_rng([seed, 5, index]).random(n) < share)


def plan_iemocap(
    n_dialogues=20,
    turns=(8, 16),
    stickiness=0.8,
    seed=1234,
    long_dialogues=0,
    long_turns=200,
    long_session=None,
    contagion=0.2,
    intensity=1.0,
    jitter=1.0,
    snr_db=(20.0, 35.0),
    p_disagree=0.05,
    laden_share=0.0,
    text_csv=None,
    csv_labels=False,
    subdued_share=0.0,
):
    """Plans an IEMOCAP-style corpus: speakers, dialogues, turns, labels.

    Cheap (no audio); :func:`generate_iemocap` synthesises this plan.

    Arguments
    ---------
    n_dialogues : int
        Number of ordinary dialogues, spread over the 5 sessions.
    turns : tuple of int
        Inclusive range of the number of turns of an ordinary dialogue.
    stickiness : float
        Probability that a speaker keeps their previous emotion.
    seed : int
        Random seed.
    long_dialogues : int
        Number of extra long dialogues.
    long_turns : int
        Number of turns of a long dialogue.
    long_session : int, optional
        Put every long dialogue in this session (e.g. 5, the test session
        of ``split=session5``: long conversations of unseen speakers);
        ``None`` spreads them over the sessions like the others.
    contagion : float
        See :func:`emotion_chain`.
    intensity : float
        Scales the emotion's prosody shift.
    jitter : float
        Scales the per-utterance prosody jitter.
    snr_db : tuple of float
        Range of the per-utterance signal-to-noise ratio.
    p_disagree : float
        Probability that annotators disagree (label ``xxx``; the audio keeps
        the true emotion at half intensity).
    laden_share : float
        Share of emotion-laden texts (0: the words carry no emotion).
    text_csv : str or Path, optional
        CSV with MELD's columns whose dialogues supply texts and turn-taking
        (ordinary dialogues take their length from it).
    csv_labels : bool
        Take labels from the CSV's ``Emotion`` column where it maps.
    subdued_share : float
        Share of turns delivered *subdued*: with only ``SUBDUED_INTENSITY``
        of their emotion's prosody shift, close to the speaker's neutral
        baseline, while the label keeps the (persisting) emotion, as when
        annotators label a flat-sounding turn from the scene around it.
        Alone such a turn is ambiguous; the conversation disambiguates it.
        Drawn from a random stream of its own, so 0 gives the same corpus
        as before this option existed.

    Returns
    -------
    tuple
        (dict speaker id → SpeakerVoice, list of PlannedDialogue).

    Example
    -------
    >>> speakers, dialogues = plan_iemocap(n_dialogues=5, seed=0)
    >>> sorted(speakers)[:2], dialogues[0].dialogue_id
    (['Ses01F', 'Ses01M'], 'Ses01F_impro01')
    >>> dialogues[0].utterances[0].utt_id[:-4]
    'Ses01F_impro01_'
    """
    rng = np.random.default_rng(seed)
    pool = neutral_sentences()
    csv_dialogues = read_dialogue_csv(text_csv) if text_csv else None
    if csv_dialogues is not None and not csv_dialogues:
        raise ValueError(f"No dialogues in {text_csv}")
    female = list(rng.permutation(len(FEMALE_VOICES)))
    male = list(rng.permutation(len(MALE_VOICES)))
    quantiles = iter(_stratified_quantiles(rng, 10))
    speakers = {}
    for k in range(1, 6):
        for g, voices, order in (
            ("F", FEMALE_VOICES, female),
            ("M", MALE_VOICES, male),
        ):
            sid = f"Ses{k:02d}{g}"
            speakers[sid] = make_speaker(
                sid, g, voices[order[k - 1]], rng, next(quantiles)
            )

    total = n_dialogues + long_dialogues
    if long_session is not None and not 1 <= int(long_session) <= 5:
        raise ValueError(f"long_session must be 1..5, got {long_session}")
    sessions = [
        int(long_session) if i >= n_dialogues and long_session else i % 5 + 1
        for i in range(total)
    ]
    names = {
        s: _iemocap_dialogue_names(s, sessions.count(s)) for s in range(1, 6)
    }
    used = dict.fromkeys(names, 0)
    dialogues = []
    for i in range(total):
        session = sessions[i]
        name = names[session][used[session]]
        used[session] += 1
        is_long = i >= n_dialogues
        drng = np.random.default_rng([seed, 1, i])
        csv_turns = None
        if csv_dialogues is not None:
            csv_turns = _csv_turns(
                csv_dialogues, i, long_turns if is_long else None
            )
            n = len(csv_turns)
            first = {}
            for t in csv_turns:
                first.setdefault(t["speaker"], len(first))
            start_g = "F" if drng.random() < 0.5 else "M"
            other_g = "M" if start_g == "F" else "F"
            genders = [
                start_g if first[t["speaker"]] % 2 == 0 else other_g
                for t in csv_turns
            ]
        else:
            n = (
                long_turns
                if is_long
                else int(drng.integers(turns[0], turns[1] + 1))
            )
            g = "F" if drng.random() < 0.5 else "M"
            genders = []
            for _ in range(n):
                genders.append(g)
                # Mostly alternating, sometimes the same actor goes on.
                if drng.random() < 0.85:
                    g = "M" if g == "F" else "F"
        emotions = emotion_chain(
            genders, IEMOCAP_PRIOR, stickiness, drng, contagion
        )
        if csv_turns is not None and csv_labels:
            for j, t in enumerate(csv_turns):
                emotions[j] = (
                    _map_csv_emotion(t["emotion"], IEMOCAP_CATEGORY)
                    or emotions[j]
                )
        if csv_turns is not None:
            texts = [t["text"] for t in csv_turns]
        else:
            texts = _choose_texts(n, emotions, drng, pool, laden_share)
        counters = {"F": 0, "M": 0}
        subdued = _subdued_flags(seed, i, n, subdued_share)
        utts = []
        for j in range(n):
            g = genders[j]
            spk = speakers[f"Ses{session:02d}{g}"]
            disagree = drng.random() < p_disagree
            label = "xxx" if disagree else emotions[j]
            scale = intensity * (0.5 if disagree else 1.0)
            scale *= SUBDUED_INTENSITY if subdued[j] else 1.0
            utts.append(
                PlannedUtterance(
                    utt_id=f"{name}_{g}{counters[g]:03d}",
                    dialogue_id=name,
                    speaker=spk.speaker_id,
                    text=texts[j],
                    emotion=emotions[j],
                    label=label,
                    prosody=spk.prosody(emotions[j], drng, scale, jitter),
                    snr_db=float(drng.uniform(*snr_db)),
                    noise_seed=int(drng.integers(2**31)),
                    gap=float(
                        drng.uniform(0.25, 1.2)
                        if j == 0 or genders[j - 1] != g
                        else drng.uniform(0.3, 0.8)
                    ),
                    subdued=bool(subdued[j]),
                )
            )
            counters[g] += 1
        dialogues.append(
            PlannedDialogue(
                name, f"Session{session}", utts, float(drng.uniform(1.5, 6.0))
            )
        )
    return speakers, dialogues


def plan_meld(
    n_dialogues=(12, 3, 4),
    turns=(4, 12),
    participants=(2, 4),
    stickiness=0.7,
    seed=1234,
    long_dialogues=0,
    long_turns=200,
    contagion=0.2,
    intensity=1.0,
    jitter=1.0,
    snr_db=(20.0, 35.0),
    laden_share=0.0,
    text_csv=None,
    csv_labels=False,
    subdued_share=0.0,
):
    """Plans a MELD-style corpus: a cast of speakers and multi-party scenes.

    Arguments
    ---------
    n_dialogues : tuple of int
        Number of dialogues in train, dev and test.
    turns : tuple of int
        Inclusive range of the number of turns of a dialogue.
    participants : tuple of int
        Inclusive range of the number of speakers in a dialogue.
    stickiness : float
        Probability that a speaker keeps their previous emotion.
    seed : int
        Random seed.
    long_dialogues : int
        Number of extra long dialogues, added to the test split.
    long_turns : int
        Number of turns of a long dialogue.
    contagion : float
        See :func:`emotion_chain`.
    intensity : float
        Scales the emotion's prosody shift.
    jitter : float
        Scales the per-utterance prosody jitter.
    snr_db : tuple of float
        Range of the per-utterance signal-to-noise ratio.
    laden_share : float
        Share of emotion-laden texts.
    text_csv : str or Path, optional
        CSV with MELD's columns supplying texts and turn-taking.
    csv_labels : bool
        Take labels from the CSV's ``Emotion`` column where it maps.
    subdued_share : float
        Share of flat-sounding turns that keep their label (see
        :func:`plan_iemocap`).

    Returns
    -------
    tuple
        (dict speaker name → SpeakerVoice, list of PlannedDialogue whose
        ``group`` is the split).

    Example
    -------
    >>> cast, dialogues = plan_meld(n_dialogues=(2, 1, 1), seed=0)
    >>> [d.group for d in dialogues]
    ['train', 'train', 'dev', 'test']
    >>> dialogues[2].utterances[0].utt_id
    'dia0_utt0'
    """
    rng = np.random.default_rng([seed, 7])
    pool = neutral_sentences()
    csv_dialogues = read_dialogue_csv(text_csv) if text_csv else None
    if csv_dialogues is not None and not csv_dialogues:
        raise ValueError(f"No dialogues in {text_csv}")
    cast = {}
    quantiles = _stratified_quantiles(rng, len(MELD_NAMES))
    f_order = rng.permutation(len(FEMALE_VOICES))
    m_order = rng.permutation(len(MALE_VOICES))
    for i, name in enumerate(MELD_NAMES):
        g = "F" if i % 2 == 0 else "M"
        voices, order = (
            (FEMALE_VOICES, f_order) if g == "F" else (MALE_VOICES, m_order)
        )
        cast[name] = make_speaker(
            name, g, voices[order[i // 2]], rng, quantiles[i]
        )
    names = list(cast)

    splits = (
        ["train"] * n_dialogues[0]
        + ["dev"] * n_dialogues[1]
        + ["test"] * (n_dialogues[2] + long_dialogues)
    )
    counters = dict.fromkeys(MELD_SPLIT_DIRS, 0)
    dialogues = []
    for i, split in enumerate(splits):
        is_long = split == "test" and counters["test"] >= n_dialogues[2]
        d = counters[split]
        counters[split] += 1
        drng = np.random.default_rng([seed, 2, i])
        csv_turns = None
        if csv_dialogues is not None:
            csv_turns = _csv_turns(
                csv_dialogues, i, long_turns if is_long else None
            )
            n = len(csv_turns)
            roles = {}
            for t in csv_turns:
                roles.setdefault(t["speaker"], len(roles))
            perm = drng.permutation(len(names))
            who = [
                names[perm[roles[t["speaker"]] % len(names)]] for t in csv_turns
            ]
        else:
            n = (
                long_turns
                if is_long
                else int(drng.integers(turns[0], turns[1] + 1))
            )
            k = int(drng.integers(participants[0], participants[1] + 1))
            present = [names[j] for j in drng.permutation(len(names))[:k]]
            who, cur = [], present[0]
            for _ in range(n):
                who.append(cur)
                if drng.random() < 0.85:
                    others = [p for p in present if p != cur]
                    cur = others[int(drng.integers(len(others)))]
        emotions = emotion_chain(who, MELD_PRIOR, stickiness, drng, contagion)
        if csv_turns is not None and csv_labels:
            for j, t in enumerate(csv_turns):
                emotions[j] = (
                    _map_csv_emotion(t["emotion"], MELD_PRIOR) or emotions[j]
                )
        if csv_turns is not None:
            texts = [t["text"] for t in csv_turns]
        else:
            texts = _choose_texts(n, emotions, drng, pool, laden_share)
        subdued = _subdued_flags(seed, i, n, subdued_share)
        utts = []
        for j in range(n):
            spk = cast[who[j]]
            scale = intensity * (SUBDUED_INTENSITY if subdued[j] else 1.0)
            utts.append(
                PlannedUtterance(
                    utt_id=f"dia{d}_utt{j}",
                    dialogue_id=f"dia{d}",
                    speaker=spk.speaker_id,
                    text=texts[j],
                    emotion=emotions[j],
                    label=emotions[j],
                    prosody=spk.prosody(emotions[j], drng, scale, jitter),
                    snr_db=float(drng.uniform(*snr_db)),
                    noise_seed=int(drng.integers(2**31)),
                    gap=float(drng.uniform(0.2, 1.5)),
                    subdued=bool(subdued[j]),
                )
            )
        info = {
            "season": int(drng.integers(1, 11)),
            "episode": int(drng.integers(1, 25)),
        }
        dialogues.append(
            PlannedDialogue(
                f"dia{d}", split, utts, float(drng.uniform(30, 1200)), info
            )
        )
    return cast, dialogues


# ----------------------------------------------------------- synthesis
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
    >>> x = synthesize_utterance("Hello.", "en+f2", p)  # doctest: +SKIP
    """
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt install espeak-ng)")
    import tempfile

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
    if task.get("mp4"):
        wav = path.with_suffix(".tmp.wav")
        sf.write(wav, x, SAMPLE_RATE, subtype="PCM_16")
        try:
            _encode_mp4(wav, path, task.get("video", False))
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


def _run_tasks(tasks, n_jobs):
    """Runs render tasks, in a process pool when ``n_jobs > 1``."""
    if n_jobs <= 1 or len(tasks) < 2:
        return [_render_task(t) for t in tasks]
    # fork: cheap start; workers only use numpy/scipy/soundfile/subprocess.
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else None)
    with ProcessPoolExecutor(max_workers=n_jobs, mp_context=ctx) as pool:
        return list(pool.map(_render_task, tasks, chunksize=4))


def _place_times(dialogue):
    """Fills in start/end times from gaps and synthesised lengths, on the
    8-sample grid so that 4-decimal times are exact."""
    pos = int(round(dialogue.offset * SAMPLE_RATE / _GRID)) * _GRID
    for u in dialogue.utterances:
        pos += int(round(u.gap * SAMPLE_RATE / _GRID)) * _GRID
        u.start = pos / SAMPLE_RATE
        pos += u.n_samples
        u.end = pos / SAMPLE_RATE
    return pos


# ------------------------------------------------------------ bookkeeping
def _params_digest(params):
    """Canonical JSON of the parameters (for the idempotency check)."""
    return json.dumps(params, sort_keys=True)


def _subdued_param(share):
    """``subdued_share`` for SYNTHETIC.txt, left out at 0 so that corpora
    generated before the option existed still count as identical."""
    return {"subdued_share": float(share)} if share else {}


def _read_synthetic(root):
    """(parameters, complete?) from ``SYNTHETIC.txt``, or (None, False)."""
    path = Path(root) / SYNTH_FILE
    if not path.is_file():
        return None, False
    text = path.read_text(encoding="utf-8")
    if _PARAMS_MARKER not in text:
        return None, False
    try:
        params = json.loads(text.split(_PARAMS_MARKER, 1)[1])
    except json.JSONDecodeError:
        return None, False
    return params, "status: complete" in text


def read_synthetic_params(root):
    """Reads the generator parameters of a complete synthetic corpus.

    Arguments
    ---------
    root : str or Path
        Corpus root.

    Returns
    -------
    dict or None
        The parameters stored in ``SYNTHETIC.txt``, or None if the file is
        absent or the corpus is incomplete.

    Example
    -------
    >>> read_synthetic_params("/nonexistent") is None
    True
    """
    params, complete = _read_synthetic(root)
    return params if complete else None


def _prepare_root(root, params, overwrite, generated, corpus):
    """Returns True if an identical complete corpus exists (skip); else
    makes room for a new one, refusing to touch a corpus not written here."""
    existing, complete = _read_synthetic(root)
    same = existing is not None and _params_digest(existing) == _params_digest(
        params
    )
    if complete and same:
        logger.info("Synthetic corpus already complete in %s, skipping", root)
        return True
    present = [root / g for g in generated if (root / g).exists()]
    if present:
        if existing is None:
            raise FileExistsError(
                f"{root} holds data that this generator did not write "
                f"({present[0].name}); refusing to overwrite it"
            )
        if complete and not overwrite:
            raise FileExistsError(
                f"{root} holds a synthetic corpus with other parameters; "
                "pass overwrite=True (--overwrite) to regenerate it"
            )
        logger.info("Removing an incomplete or outdated corpus in %s", root)
        for p in present:
            shutil.rmtree(p) if p.is_dir() else p.unlink()
    root.mkdir(parents=True, exist_ok=True)
    # Labels the folder as ours from the start, so that an interrupted run
    # is recognised and redone.
    _write_label(root, corpus, params, ["status: in progress"])
    return False


def _write_label(root, corpus, params, extra):
    """Writes ``SYNTHETIC.txt``: what this is, how it was made, parameters."""
    lines = [
        f"SYNTHETIC {corpus} CORPUS: NOT the real {corpus} release.",
        "Generated by speechbrain_dpm.synth: espeak-ng speech whose prosody",
        "(pitch, pitch range, rate, loudness) is shifted by the emotion",
        "relative to each speaker's own baseline, plus per-utterance jitter",
        "and noise. Emotions follow a per-speaker Markov chain.",
        "Per-utterance ground truth: " + META_FILE + ".",
        *extra,
        f"seed: {params['seed']}",
        _PARAMS_MARKER,
        json.dumps(params, indent=1, sort_keys=True),
        "",
    ]
    (root / SYNTH_FILE).write_text("\n".join(lines), encoding="utf-8")


def _write_synthetic_files(root, corpus, params, speakers, dialogues, extra):
    """Writes SYNTHETIC_meta.json, then the final SYNTHETIC.txt (status
    complete)."""
    meta = {
        "corpus": corpus,
        "speakers": {k: asdict(v) for k, v in speakers.items()},
        "utterances": {
            f"{d.group}/{u.utt_id}" if corpus == "MELD" else u.utt_id: {
                "dialogue_id": d.dialogue_id,
                "group": d.group,
                "speaker": u.speaker,
                "emotion": u.emotion,
                "label": u.label,
                "text": u.text,
                "prosody": u.prosody,
                "snr_db": u.snr_db,
                "subdued": u.subdued,
                "start": u.start,
                "end": u.end,
            }
            for d in dialogues
            for u in d.utterances
        },
    }
    with open(root / META_FILE, "w", encoding="utf-8") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
    _write_label(root, corpus, params, [*extra, "status: complete"])


def _file_digest(path):
    """sha256 of a file (records the CSV a corpus was built from)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def _check_espeak():
    """Fails early and clearly without espeak-ng."""
    if shutil.which("espeak-ng") is None:
        raise RuntimeError("espeak-ng is not installed (apt install espeak-ng)")


# ---------------------------------------------------------------- IEMOCAP
def _annotations(label, emotion, gender, rng):
    """Annotator lines of one turn and the mean V/A/D."""
    true = emotion if emotion in IEMOCAP_CATEGORY else "oth"
    evaluators = sorted(rng.choice(6, size=3, replace=False) + 1)
    if label == "xxx":
        alt = _CONFUSION[true]
        third = "neu" if "neu" not in (true, alt) else "oth"
        cats = [true, alt, third]
        cats = [cats[k] for k in rng.permutation(3)]
    else:
        cats = [true] * 3
        if rng.random() < 0.5:
            cats[int(rng.integers(3))] = _CONFUSION[true]
    lines, vads = [], []
    for e, c in zip(evaluators, cats):
        lines.append(f"C-E{e}:\t{IEMOCAP_CATEGORY[c]};\t()")
    lines.append(f"C-{gender}1:\t{IEMOCAP_CATEGORY[true]};\t()")
    raters = [f"E{e}" for e in evaluators] + [f"{gender}1"]
    for k, r in enumerate(raters):
        v, a, d = (
            int(np.clip(round(m + rng.normal(0, 0.6)), 1, 5))
            for m in _VAD[true]
        )
        lines.append(f"A-{r}:\tval {v}; act {a}; dom  {d};\t()")
        if k < 3:
            vads.append((v, a, d))
    return lines, np.mean(vads, axis=0)


def _write_iemocap_dialogue(root, dialogue, speakers, seed):
    """Writes EmoEvaluation, transcription and the whole-dialogue wav."""
    name = dialogue.dialogue_id
    ses = root / dialogue.group / "dialog"
    rng = np.random.default_rng([seed, 3, int(name[3:5]), sum(map(ord, name))])
    total = _place_times(dialogue)
    blocks = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    trans = []
    for u in dialogue.utterances:
        g = speakers[u.speaker].gender
        ann, vad = _annotations(u.label, u.emotion, g, rng)
        blocks.append(
            f"[{u.start:.4f} - {u.end:.4f}]\t{u.utt_id}\t{u.label}\t"
            f"[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]"
        )
        blocks.extend(ann)
        blocks.append("")
        trans.append(f"{u.utt_id} [{u.start:08.4f}-{u.end:08.4f}]: {u.text}")
    for sub in ("EmoEvaluation", "transcriptions", "wav"):
        (ses / sub).mkdir(parents=True, exist_ok=True)
    (ses / "EmoEvaluation" / f"{name}.txt").write_text("\n".join(blocks) + "\n")
    (ses / "transcriptions" / f"{name}.txt").write_text("\n".join(trans) + "\n")
    # Room tone in the pauses; the turns are pasted in unchanged, so a cut
    # at a turn's times equals its sentence wav.
    tail = int(round(float(rng.uniform(0.5, 2.0)) * SAMPLE_RATE))
    audio = np.round(rng.normal(0, 3.0, size=total + tail)).astype(np.int16)
    sent_dir = root / dialogue.group / "sentences" / "wav" / name
    for u in dialogue.utterances:
        x, _ = sf.read(sent_dir / f"{u.utt_id}.wav", dtype="int16")
        a = int(round(u.start * SAMPLE_RATE))
        audio[a : a + len(x)] = x
    sf.write(ses / "wav" / f"{name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")


def generate_iemocap(
    out_dir,
    n_dialogues=20,
    turns=(8, 16),
    stickiness=0.8,
    seed=1234,
    long_dialogues=0,
    long_turns=200,
    long_session=None,
    n_jobs=2,
    contagion=0.2,
    intensity=1.0,
    jitter=1.0,
    snr_db=(20.0, 35.0),
    p_disagree=0.05,
    laden_share=0.0,
    text_csv=None,
    csv_labels=False,
    overwrite=False,
    subdued_share=0.0,
):
    """Generates a synthetic corpus in IEMOCAP's ``IEMOCAP_full_release``
    layout.

    Each session has one female (``Ses0kF``) and one male (``Ses0kM``)
    speaker; turns are named ``<dialog>_{F|M}{nnn}`` after the speaking
    actor. Labels are mostly neu/hap/exc/sad/ang plus some fru/sur, and
    ``xxx`` where the simulated annotators disagree. Skips all work when
    ``out_dir`` already holds a complete corpus with the same parameters.

    Arguments
    ---------
    out_dir : str or Path
        Corpus root (the folder holding ``Session1`` .. ``Session5``).
    n_dialogues : int
        Number of ordinary dialogues, spread over the 5 sessions.
    turns : tuple of int
        Inclusive range of the number of turns of an ordinary dialogue.
    stickiness : float
        Probability that a speaker keeps their previous emotion.
    seed : int
        Random seed.
    long_dialogues : int
        Number of extra long dialogues (for long-sequence experiments).
    long_turns : int
        Number of turns of a long dialogue.
    long_session : int, optional
        Session holding all long dialogues (``None``: spread).
    n_jobs : int
        Worker processes for speech synthesis.
    contagion : float
        Probability of taking over the previous turn's emotion on a change.
    intensity : float
        Scales the emotion's prosody shift.
    jitter : float
        Scales the per-utterance prosody jitter.
    snr_db : tuple of float
        Range of the per-utterance signal-to-noise ratio.
    p_disagree : float
        Probability of an ``xxx`` (no agreement) label.
    laden_share : float
        Share of emotion-laden texts (0: the words carry no emotion).
    text_csv : str or Path, optional
        CSV with MELD's columns supplying texts and turn-taking.
    csv_labels : bool
        Take labels from the CSV's ``Emotion`` column where it maps.
    subdued_share : float
        Share of flat-sounding turns that keep their label (see
        :func:`plan_iemocap`).
    overwrite : bool
        Replace a synthetic corpus generated with other parameters.

    Returns
    -------
    Path
        The corpus root.

    Example
    -------
    >>> root = generate_iemocap("/tmp/iemo", n_dialogues=5)  # doctest: +SKIP
    >>> sorted(p.name for p in root.glob("Session*"))  # doctest: +SKIP
    ['Session1', 'Session2', 'Session3', 'Session4', 'Session5']
    """
    root = Path(out_dir)
    params = {
        "generator": "speechbrain_dpm.synth.generate_iemocap",
        "version": GENERATOR_VERSION,
        "n_dialogues": int(n_dialogues),
        "turns": [int(t) for t in turns],
        "stickiness": float(stickiness),
        "seed": int(seed),
        "long_dialogues": int(long_dialogues),
        "long_turns": int(long_turns),
        "long_session": long_session and int(long_session),
        "contagion": float(contagion),
        "intensity": float(intensity),
        "jitter": float(jitter),
        "snr_db": [float(s) for s in snr_db],
        "p_disagree": float(p_disagree),
        "laden_share": float(laden_share),
        "text_csv": str(text_csv) if text_csv else None,
        "text_csv_sha256": _file_digest(text_csv) if text_csv else None,
        "csv_labels": bool(csv_labels),
        **_subdued_param(subdued_share),
    }
    generated = [f"Session{k}" for k in range(1, 6)] + [META_FILE]
    if _prepare_root(root, params, overwrite, generated, "IEMOCAP"):
        return root
    _check_espeak()
    speakers, dialogues = plan_iemocap(
        n_dialogues=n_dialogues,
        turns=turns,
        stickiness=stickiness,
        seed=seed,
        long_dialogues=long_dialogues,
        long_turns=long_turns,
        long_session=long_session,
        contagion=contagion,
        intensity=intensity,
        jitter=jitter,
        snr_db=snr_db,
        p_disagree=p_disagree,
        laden_share=laden_share,
        text_csv=text_csv,
        csv_labels=csv_labels,
        subdued_share=subdued_share,
    )
    utts = [(d, u) for d in dialogues for u in d.utterances]
    logger.info(
        "Synthesising %d IEMOCAP-style utterances in %d dialogues into %s",
        len(utts),
        len(dialogues),
        root,
    )
    tasks = [
        {
            "text": u.text,
            "voice": speakers[u.speaker].voice,
            "prosody": u.prosody,
            "snr_db": u.snr_db,
            "noise_seed": u.noise_seed,
            "path": str(
                root
                / d.group
                / "sentences"
                / "wav"
                / d.dialogue_id
                / f"{u.utt_id}.wav"
            ),
        }
        for d, u in utts
    ]
    for (_, u), n in zip(utts, _run_tasks(tasks, n_jobs)):
        u.n_samples = n
    for d in dialogues:
        _write_iemocap_dialogue(root, d, speakers, seed)
    _write_synthetic_files(
        root,
        "IEMOCAP",
        params,
        speakers,
        dialogues,
        ["Layout: IEMOCAP_full_release (Session1..5, 16 kHz mono wav)."],
    )
    return root


# ------------------------------------------------------------------- MELD
def _meld_time(seconds):
    """Seconds → MELD's ``HH:MM:SS,mmm``."""
    ms = int(round(seconds * 1000))
    h, ms = divmod(ms, 3_600_000)
    m, ms = divmod(ms, 60_000)
    s, ms = divmod(ms, 1000)
    return f"{h:02d}:{m:02d}:{s:02d},{ms:03d}"


def _sentiment(emotion, rng):
    """MELD's sentiment of an emotion (surprise can go either way)."""
    if emotion == "neutral":
        return "neutral"
    if emotion == "joy":
        return "positive"
    if emotion == "surprise":
        return "positive" if rng.random() < 0.5 else "negative"
    return "negative"


def generate_meld(
    out_dir,
    n_dialogues=(12, 3, 4),
    turns=(4, 12),
    participants=(2, 4),
    stickiness=0.7,
    seed=1234,
    long_dialogues=0,
    long_turns=200,
    n_jobs=2,
    contagion=0.2,
    intensity=1.0,
    jitter=1.0,
    snr_db=(20.0, 35.0),
    laden_share=0.0,
    text_csv=None,
    csv_labels=False,
    video=False,
    overwrite=False,
    subdued_share=0.0,
):
    """Generates a synthetic corpus in MELD's ``MELD.Raw`` layout.

    Writes ``{train,dev,test}_sent_emo.csv`` and one mp4 (AAC audio, 16 kHz
    mono) per utterance under ``train/train_splits``,
    ``dev/dev_splits_complete`` and ``test/output_repeated_splits_test``.
    Without ffmpeg, the media are wav files with the same names (``.wav``)
    and a warning is logged. A cast of 8 speakers (4 female, 4 male) plays
    multi-party scenes.

    Arguments
    ---------
    out_dir : str or Path
        Corpus root (the ``MELD.Raw`` folder).
    n_dialogues : tuple of int
        Number of dialogues in train, dev and test.
    turns : tuple of int
        Inclusive range of the number of turns of a dialogue.
    participants : tuple of int
        Inclusive range of the number of speakers in a dialogue.
    stickiness : float
        Probability that a speaker keeps their previous emotion.
    seed : int
        Random seed.
    long_dialogues : int
        Number of extra long dialogues, appended to the test split.
    long_turns : int
        Number of turns of a long dialogue.
    n_jobs : int
        Worker processes for synthesis and encoding.
    contagion : float
        Probability of taking over the previous turn's emotion on a change.
    intensity : float
        Scales the emotion's prosody shift.
    jitter : float
        Scales the per-utterance prosody jitter.
    snr_db : tuple of float
        Range of the per-utterance signal-to-noise ratio.
    laden_share : float
        Share of emotion-laden texts.
    text_csv : str or Path, optional
        CSV with MELD's columns supplying texts and turn-taking.
    csv_labels : bool
        Take labels from the CSV's ``Emotion`` column where it maps.
    subdued_share : float
        Share of flat-sounding turns that keep their label (see
        :func:`plan_iemocap`).
    video : bool
        Add a tiny black video track (H.264) to each mp4.
    overwrite : bool
        Replace a synthetic corpus generated with other parameters.

    Returns
    -------
    Path
        The corpus root.

    Example
    -------
    >>> root = generate_meld("/tmp/meld", (2, 1, 1))  # doctest: +SKIP
    >>> media = root / "dev" / "dev_splits_complete"  # doctest: +SKIP
    >>> (media / "dia0_utt0.mp4").exists()  # doctest: +SKIP
    True
    """
    root = Path(out_dir)
    has_ffmpeg = shutil.which("ffmpeg") is not None
    params = {
        "generator": "speechbrain_dpm.synth.generate_meld",
        "version": GENERATOR_VERSION,
        "n_dialogues": [int(n) for n in n_dialogues],
        "turns": [int(t) for t in turns],
        "participants": [int(p) for p in participants],
        "stickiness": float(stickiness),
        "seed": int(seed),
        "long_dialogues": int(long_dialogues),
        "long_turns": int(long_turns),
        "contagion": float(contagion),
        "intensity": float(intensity),
        "jitter": float(jitter),
        "snr_db": [float(s) for s in snr_db],
        "laden_share": float(laden_share),
        "text_csv": str(text_csv) if text_csv else None,
        "text_csv_sha256": _file_digest(text_csv) if text_csv else None,
        "csv_labels": bool(csv_labels),
        "video": bool(video) and has_ffmpeg,
        "media": "mp4" if has_ffmpeg else "wav",
        **_subdued_param(subdued_share),
    }
    generated = ["train", "dev", "test", META_FILE] + [
        f"{s}_sent_emo.csv" for s in MELD_SPLIT_DIRS
    ]
    if _prepare_root(root, params, overwrite, generated, "MELD"):
        return root
    _check_espeak()
    if not has_ffmpeg:
        logger.warning(
            "ffmpeg not found: writing MELD media as .wav instead of .mp4"
        )
    cast, dialogues = plan_meld(
        n_dialogues=n_dialogues,
        turns=turns,
        participants=participants,
        stickiness=stickiness,
        seed=seed,
        long_dialogues=long_dialogues,
        long_turns=long_turns,
        contagion=contagion,
        intensity=intensity,
        jitter=jitter,
        snr_db=snr_db,
        laden_share=laden_share,
        text_csv=text_csv,
        csv_labels=csv_labels,
        subdued_share=subdued_share,
    )
    ext = ".mp4" if has_ffmpeg else ".wav"
    utts = [(d, u) for d in dialogues for u in d.utterances]
    logger.info(
        "Synthesising %d MELD-style utterances in %d dialogues into %s",
        len(utts),
        len(dialogues),
        root,
    )
    tasks = [
        {
            "text": u.text,
            "voice": cast[u.speaker].voice,
            "prosody": u.prosody,
            "snr_db": u.snr_db,
            "noise_seed": u.noise_seed,
            "path": str(root / MELD_SPLIT_DIRS[d.group] / f"{u.utt_id}{ext}"),
            "mp4": has_ffmpeg,
            "video": bool(video),
        }
        for d, u in utts
    ]
    for (_, u), n in zip(utts, _run_tasks(tasks, n_jobs)):
        u.n_samples = n
    rows = {s: [] for s in MELD_SPLIT_DIRS}
    for d in dialogues:
        _place_times(d)
        rng = np.random.default_rng([seed, 4, len(rows[d.group])])
        for j, u in enumerate(d.utterances):
            rows[d.group].append(
                [
                    len(rows[d.group]) + 1,
                    u.text,
                    u.speaker,
                    u.label,
                    _sentiment(u.label, rng),
                    int(d.dialogue_id[3:]),
                    j,
                    d.info["season"],
                    d.info["episode"],
                    _meld_time(u.start),
                    _meld_time(u.end),
                ]
            )
    for split, split_rows in rows.items():
        (root / MELD_SPLIT_DIRS[split]).mkdir(parents=True, exist_ok=True)
        with open(
            root / f"{split}_sent_emo.csv", "w", encoding="utf-8", newline=""
        ) as f:
            writer = csv.writer(f, lineterminator="\n")
            writer.writerow(MELD_COLUMNS)
            writer.writerows(split_rows)
    _write_synthetic_files(
        root,
        "MELD",
        params,
        cast,
        dialogues,
        [
            "Layout: MELD.Raw ({train,dev,test}_sent_emo.csv, "
            f"dia{{D}}_utt{{U}}{ext}).",
            "Media: "
            + (
                "mp4, AAC 16 kHz mono" + (" + tiny video" if video else "")
                if has_ffmpeg
                else "WAV FALLBACK (ffmpeg missing): .wav instead of .mp4"
            ),
        ],
    )
    return root


# -------------------------------------------------------------------- CLI
def _pair(text):
    """``8,16`` → (8, 16)."""
    lo, hi = (int(v) for v in text.split(","))
    return lo, hi


def main(argv=None):
    """Command line: ``python -m speechbrain_dpm.synth {iemocap,meld} ...``.

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status.

    Example
    -------
    >>> main(["iemocap", "--out", "/tmp/iemo"])  # doctest: +SKIP
    0
    """
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_dpm.synth",
        description="Synthetic IEMOCAP / MELD corpora (espeak-ng speech).",
    )
    sub = parser.add_subparsers(dest="corpus", required=True)
    for name in ("iemocap", "meld"):
        p = sub.add_parser(name, help=f"{name.upper()} layout")
        p.add_argument("--out", required=True, help="corpus root")
        p.add_argument("--seed", type=int, default=1234)
        p.add_argument("--long", type=int, default=0, help="long dialogues")
        p.add_argument("--long-turns", type=int, default=200)
        p.add_argument("--stickiness", type=float)
        p.add_argument("--turns", type=_pair, help="min,max turns")
        p.add_argument("--jobs", type=int, default=2)
        p.add_argument("--intensity", type=float, default=1.0)
        p.add_argument("--jitter", type=float, default=1.0)
        p.add_argument("--laden-share", type=float, default=0.0)
        p.add_argument(
            "--subdued-share",
            type=float,
            default=0.0,
            help="share of flat-sounding turns that keep their label",
        )
        p.add_argument("--text-csv", help="CSV with MELD's columns")
        p.add_argument("--csv-labels", action="store_true")
        p.add_argument("--overwrite", action="store_true")
    sub.choices["iemocap"].add_argument("--dialogues", type=int, default=20)
    sub.choices["iemocap"].add_argument(
        "--long-session", type=int, help="session of all long dialogues"
    )
    sub.choices["meld"].add_argument(
        "--dialogues",
        type=lambda s: tuple(int(v) for v in s.split(",")),
        default=(12, 3, 4),
        help="train,dev,test dialogue counts",
    )
    sub.choices["meld"].add_argument("--video", action="store_true")
    args = parser.parse_args(argv)
    common = {
        "seed": args.seed,
        "long_dialogues": args.long,
        "long_turns": args.long_turns,
        "n_jobs": args.jobs,
        "intensity": args.intensity,
        "jitter": args.jitter,
        "laden_share": args.laden_share,
        "subdued_share": args.subdued_share,
        "text_csv": args.text_csv,
        "csv_labels": args.csv_labels,
        "overwrite": args.overwrite,
    }
    if args.stickiness is not None:
        common["stickiness"] = args.stickiness
    if args.turns is not None:
        common["turns"] = args.turns
    if args.corpus == "iemocap":
        root = generate_iemocap(
            args.out,
            n_dialogues=args.dialogues,
            long_session=args.long_session,
            **common,
        )
    else:
        root = generate_meld(
            args.out, n_dialogues=args.dialogues, video=args.video, **common
        )
    print(root)
    return 0


if __name__ == "__main__":
    sys.exit(main())
