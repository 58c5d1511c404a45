"""The options of a synthetic corpus, as one object per corpus kind.

:class:`IemocapConfig` and :class:`MeldConfig` say *what* to generate
(sizes, emotion dynamics, prosody, texts, seed); planning and the layout
writers read them, the command line fills them, and :meth:`record` gives the
parameters written to ``SYNTHETIC.txt``, which decide whether an existing
corpus is the same one. *How* to run (worker processes, overwriting) stays
an argument of ``generate_iemocap`` / ``generate_meld``.

Example
-------
>>> config = IemocapConfig(n_dialogues=4, seed=7)
>>> config.turns, config.stickiness
((8, 16), 0.8)
>>> MeldConfig().turns, MeldConfig().stickiness
((4, 12), 0.7)

Authors
 * speechbrain_dpm developers 2026
"""

import hashlib
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class CorpusConfig:
    """Options both corpus kinds share (use a subclass to generate).

    Arguments
    ---------
    seed : int
        Random seed: the same options and seed give byte-identical files.
    long_dialogues : int
        Number of extra long dialogues (for long-sequence experiments).
    long_turns : int
        Number of turns of a long dialogue.
    contagion : float
        Probability of taking over the previous turn's emotion when a
        speaker's emotion changes (see ``planning.emotion_chain``).
    intensity : float
        Scales the emotion's prosody shift.
    jitter : float
        Scales the per-utterance prosody jitter.
    snr_db : tuple of float
        Range of the per-utterance signal-to-noise ratio.
    laden_share : float
        Share of emotion-laden texts (0: the words carry no emotion).
    text_csv : str or Path, optional
        CSV with MELD's columns whose dialogues supply texts and
        turn-taking (ordinary dialogues take their length from it).
    csv_labels : bool
        Take labels from the CSV's ``Emotion`` column where it maps.
    subdued_share : float
        Share of turns delivered *subdued*: with only
        ``SUBDUED_INTENSITY`` of their emotion's prosody shift, close to the
        speaker's neutral baseline, while the label keeps the (persisting)
        emotion, as when annotators label a flat-sounding turn from the
        scene around it. Alone such a turn is ambiguous; the conversation
        disambiguates it. Drawn from a random stream of its own, so 0 gives
        the same corpus as before this option existed.

    Example
    -------
    >>> CorpusConfig(seed=3).record()["seed"]
    3
    """

    seed: int = 1234
    long_dialogues: int = 0
    long_turns: int = 200
    contagion: float = 0.2
    intensity: float = 1.0
    jitter: float = 1.0
    snr_db: tuple = (20.0, 35.0)
    laden_share: float = 0.0
    text_csv: str = None
    csv_labels: bool = False
    subdued_share: float = 0.0

    def record(self):
        """The shared options as written to ``SYNTHETIC.txt`` (JSON types).

        Returns
        -------
        dict
            Option → value; the CSV is recorded by path and sha256.

        Example
        -------
        >>> record = CorpusConfig().record()
        >>> record["snr_db"], "subdued_share" in record
        ([20.0, 35.0], False)
        """
        text_csv = self.text_csv
        return {
            "seed": int(self.seed),
            "long_dialogues": int(self.long_dialogues),
            "long_turns": int(self.long_turns),
            "contagion": float(self.contagion),
            "intensity": float(self.intensity),
            "jitter": float(self.jitter),
            "snr_db": [float(s) for s in self.snr_db],
            "laden_share": float(self.laden_share),
            "text_csv": str(text_csv) if text_csv else None,
            "text_csv_sha256": file_digest(text_csv) if text_csv else None,
            "csv_labels": bool(self.csv_labels),
            **_subdued_param(self.subdued_share),
        }


@dataclass(frozen=True)
class IemocapConfig(CorpusConfig):
    """Options of an IEMOCAP-style corpus (5 sessions, 2 actors each).

    Takes every option of :class:`CorpusConfig`, and these.

    Arguments
    ---------
    n_dialogues : int
        Number of ordinary dialogues, spread over the 5 sessions.
    turns : tuple of int
        Inclusive range of the number of turns of an ordinary dialogue.
    stickiness : float
        Probability that a speaker keeps their previous emotion.
    long_session : int, optional
        Put every long dialogue in this session (e.g. 5, the test session
        of ``split=session5``: long conversations of unseen speakers);
        ``None`` spreads them over the sessions like the others.
    p_disagree : float
        Probability that annotators disagree (label ``xxx``; the audio
        keeps the true emotion at half intensity).

    Example
    -------
    >>> record = IemocapConfig(n_dialogues=4, turns=(3, 5)).record()
    >>> record["n_dialogues"], record["turns"], record["long_session"]
    (4, [3, 5], None)
    """

    n_dialogues: int = 20
    turns: tuple = (8, 16)
    stickiness: float = 0.8
    long_session: int = None
    p_disagree: float = 0.05

    def record(self):
        """All options as written to ``SYNTHETIC.txt`` (JSON types).

        Returns
        -------
        dict
            Option → value.

        Example
        -------
        >>> IemocapConfig(long_session=5).record()["long_session"]
        5
        """
        return {
            **super().record(),
            "n_dialogues": int(self.n_dialogues),
            "turns": [int(t) for t in self.turns],
            "stickiness": float(self.stickiness),
            "long_session": self.long_session and int(self.long_session),
            "p_disagree": float(self.p_disagree),
        }


@dataclass(frozen=True)
class MeldConfig(CorpusConfig):
    """Options of a MELD-style corpus (multi-party scenes, 3 splits).

    Takes every option of :class:`CorpusConfig` (long dialogues are appended
    to the test split), and these.

    Arguments
    ---------
    n_dialogues : tuple of int
        Number of dialogues in train, dev and test.
    turns : tuple of int
        Inclusive range of the number of turns of a dialogue.
    stickiness : float
        Probability that a speaker keeps their previous emotion.
    participants : tuple of int
        Inclusive range of the number of speakers in a dialogue.
    video : bool
        Add a tiny black video track (H.264) to each mp4.

    Example
    -------
    >>> MeldConfig(n_dialogues=(2, 1, 1)).record()["n_dialogues"]
    [2, 1, 1]
    """

    n_dialogues: tuple = (12, 3, 4)
    turns: tuple = (4, 12)
    stickiness: float = 0.7
    participants: tuple = (2, 4)
    video: bool = False

    def record(self):
        """All options but the media, as written to ``SYNTHETIC.txt``.

        The MELD writer adds ``video`` and ``media``, which depend on
        whether ffmpeg is installed.

        Returns
        -------
        dict
            Option → value.

        Example
        -------
        >>> MeldConfig().record()["participants"]
        [2, 4]
        """
        return {
            **super().record(),
            "n_dialogues": [int(n) for n in self.n_dialogues],
            "turns": [int(t) for t in self.turns],
            "stickiness": float(self.stickiness),
            "participants": [int(p) for p in self.participants],
        }


def _subdued_param(share):
    """``subdued_share`` for SYNTHETIC.txt, left out at 0 so that corpora
    generated before the option existed still count as identical."""
    return {"subdued_share": float(share)} if share else {}


def file_digest(path):
    """sha256 of a file (records the CSV a corpus was built from).

    Arguments
    ---------
    path : str or Path
        The file.

    Returns
    -------
    str
        Hex digest.

    Example
    -------
    >>> import tempfile
    >>> p = Path(tempfile.mkdtemp()) / "empty.csv"
    >>> _ = p.write_bytes(b"")
    >>> file_digest(p)[:12]
    'e3b0c44298fc'
    """
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()
