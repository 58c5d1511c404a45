"""Prepares dialogue-aware JSON manifests for IEMOCAP.

Reads the ``IEMOCAP_full_release`` layout:

* labels from ``Session{1..5}/dialog/EmoEvaluation/<dialog>.txt`` (only the
  files directly in that folder; ``Categorical/``, ``Attribute/``,
  ``Self-evaluation/`` and other subfolders are ignored). Of these files only
  the lines starting with ``[`` are read, e.g.
  ``[6.2901 - 8.2357]<TAB>Ses01F_impro01_F000<TAB>neu<TAB>[2.5000, ...]``;
  the annotator lines (``C-E1:``, ``A-E3:``...) are ignored;
* audio from ``Session{k}/sentences/wav/<dialog>/<turn>.wav``;
* text from ``Session{k}/dialog/transcriptions/<dialog>.txt`` (lines
  ``Ses01F_impro01_F000 [006.2901-008.2357]: Excuse me.``; lines without a
  time stamp or with non-turn ids, such as ``M: (breathing)`` or
  ``Ses01F_impro01_MXX0 ...``, do not belong to labelled turns and are
  ignored).

It writes ``train.json``, ``valid.json`` and ``test.json`` in ``save_folder``
(contract in ARCHITECTURE.md), keyed by turn id, with ``wav`` (absolute),
``length`` (seconds), ``emo``, ``dialogue_id`` (the EmoEvaluation file name),
``turn_index`` (0-based order by start time among the *kept* turns of the
dialogue), ``speaker`` (the actor: session + gender letter of the last part of
the turn id, e.g. ``Ses01M`` for ``Ses01F_impro01_M003``), ``start``, ``end``
(seconds in the dialogue recording) and ``text``.

Classes
-------
* ``n_classes=4`` (default, the usual IEMOCAP protocol): ``neu``, ``hap``,
  ``sad``, ``ang``, with ``exc`` merged into ``hap``. ``fru``, ``sur``,
  ``fea``, ``dis``, ``oth`` and ``xxx`` are dropped and counted per label.
* ``n_classes=6``: ``neu``, ``hap``, ``sad``, ``ang``, ``exc``, ``fru``
  (no merge); the others are dropped and counted.

Any label outside the IEMOCAP inventory is skipped as ``unknown_label`` with
its file and line logged: it is never mapped to a class.

Splits
------
* ``loso`` (leave one session out), fold ``k`` in 1..5: test = Session k,
  valid = Session k-1 (Session 5 for fold 1), train = the other three
  sessions. Sessions hold disjoint actors, so the splits are speaker
  independent.
* ``session5``: ``loso`` fold 5 (test Session 5, valid Session 4); ``fold``
  is ignored.
* ``random``: whole dialogues shuffled with ``seed`` into ``split_ratio``
  (train/valid/test percent). The same actors appear in all splits, so it is
  **speaker dependent** (a WARNING says so).

Whole dialogues always stay in one split.

Bad inputs
----------
Each of these is a counted skip, logged with its location, and listed in
the summary at the end: a malformed ``[...]`` line in an EmoEvaluation file
(``malformed_line``), a duplicate turn id (``duplicate_turn``), an unknown
label, a label outside the selected classes (``dropped_label:<lab>``), a
missing, unreadable, empty, silent or NaN wav, a wav that is not 16 kHz
(``wrong_sample_rate``) or not mono (``not_mono``), and a dialogue left with
no utterance (``empty_dialogue``). IEMOCAP ships 16 kHz mono wav, so a file
in another format is a damaged copy, and it is skipped rather than resampled
(the manifests promise 16 kHz mono for the loaders). A labelled turn without
transcription keeps ``text=""`` and is counted as a note (``missing_text``).

Idempotency
-----------
Options and a hash of the input file list are stored in
``save_folder/prepare_opts.json``; a later call with the same options on an
unchanged corpus does nothing, any change prepares again (SpeechBrain's own
IEMOCAP script reuses manifests whenever they exist).

Authors
 * speechbrain_dpm contributors 2026
"""

import os
import random
import re

from speechbrain.utils.logger import get_logger

from speechbrain_dpm import dataprep
from speechbrain_dpm.dataprep import SkipCounter

logger = get_logger(__name__)

PREP_VERSION = 1
N_SESSIONS = 5

# Every label that occurs in the EmoEvaluation turn lines.
IEMOCAP_LABELS = (
    "neu",
    "hap",
    "exc",
    "sad",
    "ang",
    "fru",
    "sur",
    "fea",
    "dis",
    "oth",
    "xxx",
)
CLASS_MAPS = {
    4: {"neu": "neu", "hap": "hap", "exc": "hap", "sad": "sad", "ang": "ang"},
    6: {lab: lab for lab in ("neu", "hap", "sad", "ang", "exc", "fru")},
}
SPLIT_MODES = ("loso", "session5", "random")

_NUM = r"(\d+(?:\.\d*)?)"
_EVAL_RE = re.compile(
    rf"^\[\s*{_NUM}\s*-\s*{_NUM}\s*\]\s+(\S+)\s+(\S+)\s+\[([^\]]*)\]\s*$"
)
_TRANS_RE = re.compile(rf"^(\S+)\s+\[\s*{_NUM}\s*-\s*{_NUM}\s*\]:\s?(.*)$")
_DIALOGUE_RE = re.compile(r"^Ses\d\d[FM]_")
_TURN_SUFFIX_RE = re.compile(r"^([FM])\d+$")


def prepare_iemocap(
    data_folder,
    save_folder,
    split="session5",
    fold=5,
    n_classes=4,
    seed=1986,
    skip_prep=False,
    split_ratio=(80, 10, 10),
    silence_threshold=1e-4,
):
    """Writes the IEMOCAP train/valid/test manifests (see module docstring).

    Arguments
    ---------
    data_folder : str
        The ``IEMOCAP_full_release`` folder (holding ``Session1`` ...).
    save_folder : str
        Where ``train.json``, ``valid.json``, ``test.json`` and
        ``prepare_opts.json`` are written.
    split : str
        ``"loso"``, ``"session5"`` or ``"random"``.
    fold : int
        The test session of ``loso`` (1..5).
    n_classes : int
        4 (neu, hap+exc, sad, ang) or 6 (neu, hap, sad, ang, exc, fru).
    seed : int
        Seed of the ``random`` split (unused otherwise).
    skip_prep : bool
        If True, do nothing.
    split_ratio : tuple of int
        Train/valid/test percentages of dialogues for ``random``.
    silence_threshold : float
        Wavs whose peak amplitude is below this are skipped as silent.

    Returns
    -------
    dict or None
        The summary (``splits`` with per-split dialogue, utterance and class
        counts, ``skipped`` and ``notes`` counts by reason), or None with
        ``skip_prep``. When an up-to-date preparation is reused, the stored
        summary is returned.

    Example
    -------
    On a tiny synthetic corpus in IEMOCAP's layout:

    >>> from speechbrain_dpm.synth import IemocapConfig, generate_iemocap
    >>> tmp = getfixture("tmp_path")
    >>> corpus = generate_iemocap(
    ...     tmp / "IEMOCAP_full_release",
    ...     IemocapConfig(n_dialogues=5, turns=(2, 2)),
    ... )
    >>> summary = prepare_iemocap(corpus, tmp / "save", split="loso", fold=3)
    >>> {name: split["dialogues"] for name, split in summary["splits"].items()}
    {'train': 3, 'valid': 1, 'test': 1}
    >>> sorted(path.name for path in (tmp / "save").glob("*.json"))
    ['prepare_opts.json', 'test.json', 'train.json', 'valid.json']
    """
    if skip_prep:
        logger.info("IEMOCAP preparation skipped (skip_prep=True)")
        return None
    if split not in SPLIT_MODES:
        raise ValueError(f"split must be one of {SPLIT_MODES}, got {split!r}")
    if n_classes not in CLASS_MAPS:
        raise ValueError(f"n_classes must be 4 or 6, got {n_classes!r}")
    if split == "session5":
        if fold != 5:
            logger.info(f"split='session5' ignores fold={fold}; using 5")
        fold = 5
    if split != "random" and fold not in range(1, N_SESSIONS + 1):
        raise ValueError(f"fold must be in 1..{N_SESSIONS}, got {fold!r}")
    if split == "random":
        split_ratio = [float(r) for r in split_ratio]
        if len(split_ratio) != 3 or sum(split_ratio) <= 0:
            raise ValueError(f"bad split_ratio {split_ratio!r}")

    data_folder = os.path.abspath(os.path.expanduser(str(data_folder)))
    save_folder = os.path.abspath(os.path.expanduser(str(save_folder)))
    sessions = _find_sessions(data_folder)

    options = {
        "prep": "iemocap",
        "version": PREP_VERSION,
        "data_folder": data_folder,
        "split": split,
        "fold": fold if split != "random" else None,
        "n_classes": n_classes,
        "seed": seed if split == "random" else None,
        "split_ratio": list(split_ratio) if split == "random" else None,
        "silence_threshold": silence_threshold,
    }
    inputs = _input_files(data_folder, sessions)
    digest = dataprep.corpus_hash(inputs, root=data_folder)
    stored = dataprep.prep_is_current(save_folder, options, digest)
    if stored is not None:
        logger.info(
            f"IEMOCAP manifests in {save_folder} are up to date, "
            "skipping preparation"
        )
        return stored.get("summary")

    dataprep.clear_prep_signature(save_folder)
    counter = SkipCounter()
    class_map = CLASS_MAPS[n_classes]
    dialogues = {}  # dialogue_id -> (session, [entries])
    for session in sessions:
        for eval_path in _eval_files(data_folder, session):
            dialogue_id = os.path.splitext(os.path.basename(eval_path))[0]
            utts = _read_dialogue(
                data_folder,
                session,
                dialogue_id,
                eval_path,
                class_map,
                counter,
                silence_threshold,
            )
            if not utts:
                counter.skip(
                    dataprep.EMPTY_DIALOGUE,
                    eval_path,
                    "no utterance left, dialogue dropped",
                )
                continue
            dialogues[dialogue_id] = (session, utts)

    assignment = _assign_splits(dialogues, split, fold, seed, split_ratio)
    manifests = {name: {} for name in dataprep.SPLITS}
    for dialogue_id in sorted(dialogues):
        _, utts = dialogues[dialogue_id]
        utts.sort(key=lambda u: (u["start"], u["end"], u["id"]))
        target = manifests[assignment[dialogue_id]]
        for index, utt in enumerate(utts):
            utt_id = utt.pop("id")
            utt["turn_index"] = index
            target[utt_id] = utt

    for name, entries in manifests.items():
        if not entries:
            logger.warning(f"IEMOCAP split '{name}' is empty")
        dataprep.write_manifest(
            entries, os.path.join(save_folder, f"{name}.json")
        )
    summary = {
        "splits": dataprep.summarize_splits(manifests),
        "skipped": counter.skipped,
        "notes": counter.notes,
    }
    dataprep.save_prep_signature(save_folder, options, digest, summary)
    counter.log_summary("IEMOCAP")
    logger.info(dataprep.format_summary("IEMOCAP", summary))
    return summary


def _find_sessions(data_folder):
    """Returns the session numbers present in ``data_folder``."""
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(f"IEMOCAP folder not found: {data_folder}")
    sessions = [
        k
        for k in range(1, N_SESSIONS + 1)
        if os.path.isdir(
            os.path.join(data_folder, f"Session{k}", "dialog", "EmoEvaluation")
        )
    ]
    if not sessions:
        raise FileNotFoundError(
            f"{data_folder}: no Session{{1..5}}/dialog/EmoEvaluation folder; "
            "is it the IEMOCAP_full_release folder?"
        )
    missing = sorted(set(range(1, N_SESSIONS + 1)) - set(sessions))
    if missing:
        logger.warning(
            f"{data_folder}: sessions {missing} not found, preparing the rest"
        )
    return sessions


def _eval_files(data_folder, session):
    """Lists the EmoEvaluation files directly in the session's folder."""
    folder = os.path.join(
        data_folder, f"Session{session}", "dialog", "EmoEvaluation"
    )
    return [
        os.path.join(folder, name)
        for name in sorted(os.listdir(folder))
        if name.endswith(".txt")
        and not name.startswith(".")
        and os.path.isfile(os.path.join(folder, name))
    ]


def _input_files(data_folder, sessions):
    """Lists every input file whose change should trigger a new prep."""
    files = []
    for session in sessions:
        root = os.path.join(data_folder, f"Session{session}")
        files.extend(_eval_files(data_folder, session))
        trans = os.path.join(root, "dialog", "transcriptions")
        if os.path.isdir(trans):
            files.extend(
                os.path.join(trans, n)
                for n in os.listdir(trans)
                if n.endswith(".txt")
            )
        wav_root = os.path.join(root, "sentences", "wav")
        if os.path.isdir(wav_root):
            for dirpath, _, names in os.walk(wav_root):
                files.extend(
                    os.path.join(dirpath, n)
                    for n in names
                    if n.endswith(".wav") and not n.startswith(".")
                )
    return files


def _read_transcriptions(path, counter):
    """Maps turn id -> text from a transcription file (empty if absent)."""
    texts = {}
    if not os.path.isfile(path):
        counter.note("missing_transcription_file", path, "text left empty")
        return texts
    for line in dataprep.read_text(path).splitlines():
        match = _TRANS_RE.match(line.strip())
        if match:
            texts[match.group(1)] = match.group(4).strip()
    return texts


def _read_dialogue(
    data_folder,
    session,
    dialogue_id,
    eval_path,
    class_map,
    counter,
    silence_threshold,
):
    """Parses one EmoEvaluation file into manifest entries (unsorted)."""
    session_dir = os.path.join(data_folder, f"Session{session}")
    texts = _read_transcriptions(
        os.path.join(
            session_dir, "dialog", "transcriptions", f"{dialogue_id}.txt"
        ),
        counter,
    )
    utts = []
    seen = set()
    lines = dataprep.read_text(eval_path).splitlines()
    for line_no, raw in enumerate(lines, start=1):
        line = raw.strip()
        if not line.startswith("["):
            continue  # header, annotator details, blank lines
        where = f"{eval_path}:{line_no}"
        parsed = _parse_eval_line(line, dialogue_id)
        if isinstance(parsed, str):
            counter.skip(dataprep.MALFORMED_LINE, where, parsed)
            continue
        start, end, turn, label = parsed
        if turn in seen:
            counter.skip("duplicate_turn", where, f"turn {turn} repeated")
            continue
        seen.add(turn)
        if label not in IEMOCAP_LABELS:
            counter.skip(dataprep.UNKNOWN_LABEL, where, f"label {label!r}")
            continue
        if label not in class_map:
            counter.skip(f"{dataprep.DROPPED_LABEL}:{label}", where)
            continue
        wav = os.path.join(
            session_dir, "sentences", "wav", dialogue_id, f"{turn}.wav"
        )
        try:
            info = dataprep.check_audio(
                wav, sample_rate=16000, silence_threshold=silence_threshold
            )
        except dataprep.AudioCheckError as err:
            counter.skip(err.reason, wav, f"{err.detail} (from {where})")
            continue
        text = texts.get(turn)
        if text is None:
            counter.note("missing_text", where, f"no transcription of {turn}")
            text = ""
        utts.append(
            {
                "id": turn,
                "wav": wav,
                "length": round(info.duration, 4),
                "emo": class_map[label],
                "dialogue_id": dialogue_id,
                "speaker": _speaker(turn),
                "start": start,
                "end": end,
                "text": text,
            }
        )
    return utts


def _parse_eval_line(line, dialogue_id):
    """Returns (start, end, turn, label) or an error message string."""
    match = _EVAL_RE.match(line)
    if not match:
        return f"cannot parse {line[:80]!r}"
    start = dataprep.finite_or_none(match.group(1))
    end = dataprep.finite_or_none(match.group(2))
    turn, label = match.group(3), match.group(4).lower()
    if start is None or end is None or end < start:
        return f"bad times [{match.group(1)} - {match.group(2)}]"
    if not turn.startswith(dialogue_id + "_"):
        return f"turn {turn!r} does not belong to dialogue {dialogue_id!r}"
    if not _DIALOGUE_RE.match(turn) or not _TURN_SUFFIX_RE.match(
        turn.rsplit("_", 1)[-1]
    ):
        return f"turn id {turn!r} is not Ses##X_..._[FM]###"
    return start, end, turn, label


def _speaker(turn):
    """The actor of a turn: ``Ses01F_impro01_M003`` -> ``Ses01M``."""
    return turn[:5] + turn.rsplit("_", 1)[-1][0]


def _assign_splits(dialogues, split, fold, seed, split_ratio):
    """Maps each dialogue id to ``train``, ``valid`` or ``test``."""
    if split == "random":
        logger.warning(
            "IEMOCAP split='random' is speaker dependent: the same actors "
            "are in train, valid and test (speaker leakage); use 'loso' for "
            "speaker-independent results"
        )
        ids = sorted(dialogues)
        random.Random(seed).shuffle(ids)
        total = sum(split_ratio)
        n_test = int(round(len(ids) * split_ratio[2] / total))
        n_valid = int(round(len(ids) * split_ratio[1] / total))
        out = dict.fromkeys(ids[:n_test], "test")
        out.update(dict.fromkeys(ids[n_test : n_test + n_valid], "valid"))
        out.update(dict.fromkeys(ids[n_test + n_valid :], "train"))
        return out
    valid_session = (fold - 2) % N_SESSIONS + 1
    logger.info(
        f"IEMOCAP LOSO fold {fold}: test Session{fold}, valid "
        f"Session{valid_session}, train the other sessions"
    )
    out = {}
    for dialogue_id, (session, _) in dialogues.items():
        if session == fold:
            out[dialogue_id] = "test"
        elif session == valid_session:
            out[dialogue_id] = "valid"
        else:
            out[dialogue_id] = "train"
    return out
