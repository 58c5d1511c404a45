"""The options of a synthetic corpus, as one object per corpus kind.

:class:`IemocapConfig` and :class:`MeldConfig` say *what* to generate
(sizes, emotion dynamics, prosody, texts, seed); planning and the layout
writers read them, the command line fills them, and :meth:`record` gives the
parameters written to ``SYNTHETIC.txt``, which decide whether an existing
corpus is the same one. Each field declares its default and how it is
recorded, so adding an option is one line here (plus its use). *How* to run
(worker processes, overwriting) stays an argument of ``generate_iemocap`` /
``generate_meld``.

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
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path


def _ints(values):
    """A tuple of counts as a JSON list of ints."""
    return [int(v) for v in values]


def _floats(values):
    """A tuple of reals as a JSON list of floats."""
    return [float(v) for v in values]


def _path(path):
    """An optional path as a JSON string (None if not given)."""
    return str(path) if path else None


def _optional_int(value):
    """An optional number as a JSON int (None if not given)."""
    return value and int(value)


def _option(default, as_json):
    """A config field and how ``SYNTHETIC.txt`` records it (JSON types)."""
    return field(default=default, metadata={"as_json": as_json})


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

    seed: int = _option(1234, int)
    long_dialogues: int = _option(0, int)
    long_turns: int = _option(200, int)
    contagion: float = _option(0.2, float)
    intensity: float = _option(1.0, float)
    jitter: float = _option(1.0, float)
    snr_db: tuple = _option((20.0, 35.0), _floats)
    laden_share: float = _option(0.0, float)
    text_csv: str = _option(None, _path)
    csv_labels: bool = _option(False, bool)
    # Recorded apart: left out at 0 (see ``record``).
    subdued_share: float = _option(0.0, None)

    def record(self):
        """The options as written to ``SYNTHETIC.txt`` (JSON types).

        The CSV is recorded by path and sha256; ``subdued_share`` is left
        out at 0, so that corpora generated before the option existed
        still count as identical.

        Returns
        -------
        dict
            Option → value.

        Example
        -------
        >>> record = CorpusConfig().record()
        >>> record["snr_db"], "subdued_share" in record
        ([20.0, 35.0], False)
        >>> IemocapConfig(long_session=5, turns=(3, 5)).record()["turns"]
        [3, 5]
        """
        values = asdict(self)
        text_csv = self.text_csv
        return {
            **{
                f.name: f.metadata["as_json"](values[f.name])
                for f in fields(self)
                if f.metadata["as_json"] is not None
            },
            "text_csv_sha256": file_digest(text_csv) if text_csv else None,
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

    n_dialogues: int = _option(20, int)
    turns: tuple = _option((8, 16), _ints)
    stickiness: float = _option(0.8, float)
    long_session: int = _option(None, _optional_int)
    p_disagree: float = _option(0.05, float)


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

    n_dialogues: tuple = _option((12, 3, 4), _ints)
    turns: tuple = _option((4, 12), _ints)
    stickiness: float = _option(0.7, float)
    participants: tuple = _option((2, 4), _ints)
    # The MELD writer records it only where ffmpeg can write video.
    video: bool = _option(False, bool)


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
