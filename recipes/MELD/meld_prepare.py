"""Prepares dialogue-aware JSON manifests for MELD.

Reads the ``MELD.Raw`` release: ``train_sent_emo.csv``, ``dev_sent_emo.csv``
and ``test_sent_emo.csv`` (columns ``Sr No., Utterance, Speaker, Emotion,
Sentiment, Dialogue_ID, Utterance_ID, Season, Episode, StartTime, EndTime``)
and the media ``dia{D}_utt{U}.mp4`` extracted from the release's tarballs:

=====  ===========================  =======================================
split  CSV                          media folder (first one found)
=====  ===========================  =======================================
train  ``train_sent_emo.csv``       ``train/train_splits/``, ``train_splits/``
valid  ``dev_sent_emo.csv``         ``dev/dev_splits_complete/``,
                                    ``dev_splits_complete/``
test   ``test_sent_emo.csv``        ``test/output_repeated_splits_test/``,
                                    ``output_repeated_splits_test/``
=====  ===========================  =======================================

The CSVs and media folders are looked up in ``data_folder`` and, failing
that, in ``data_folder/MELD.Raw``. As a documented fallback, a
``dia{D}_utt{U}.wav`` file next to (or instead of) the ``.mp4`` is used.

Audio is converted with ffmpeg to 16 kHz mono 16-bit wav in
``save_folder/wav/<split>_dia{D}_utt{U}.wav`` (conversion is skipped when that
wav already exists; it is written to a temporary name first, so an interrupted
conversion is never reused). A ``.wav`` fallback that already is 16 kHz mono is
used in place, without ffmpeg. If a conversion is needed and ffmpeg is not
installed, a ``RuntimeError`` says so.

Manifests ``train.json`` (official train), ``valid.json`` (official dev) and
``test.json`` (official test) follow ARCHITECTURE.md; ids are
``<split>_dia{D}_utt{U}`` with split ``train``, ``dev`` or ``test``,
``dialogue_id`` is ``<split>_dia{D}``, ``turn_index`` the 0-based order by
``Utterance_ID`` among the kept utterances of the dialogue, ``speaker`` the
CSV speaker name, ``start``/``end`` the ``StartTime``/``EndTime`` stamps
(``hh:mm:ss,mmm`` in the episode) in seconds, ``text`` the utterance.

Classes
-------
Labels use the same short codes as IEMOCAP, so that models and metrics can
be shared across corpora:

* ``n_classes=7`` (default, the official MELD task): neutral→``neu``,
  joy→``hap``, sadness→``sad``, anger→``ang``, surprise→``sur``,
  fear→``fea``, disgust→``dis``.
* ``n_classes=4`` (the IEMOCAP 4-class set, for cross-corpus work):
  neutral→``neu``, joy→``hap``, sadness→``sad``, anger→``ang``; surprise,
  fear and disgust are dropped and counted (``dropped_label:<lab>``).
  Surprise is not merged into ``hap`` because MELD surprise is positive or
  negative (its sentiment column is split), and fear and disgust have no
  counterpart among the four classes. Keeping them would put wrong labels in
  the data; dropping them follows the IEMOCAP protocol, which drops its
  ``sur``/``fea``/``dis`` turns too.

Bad inputs
----------
A CSV without a needed column raises ``ValueError`` naming the file and the
column. CSV files are read whatever their encoding (UTF-8, Windows-1252,
Latin-1), and UTF-8 mojibake (``â€™``) is repaired. These are counted skips,
logged with file and line and listed in the final summary: a row with a
non-integer ``Dialogue_ID``/``Utterance_ID``, an unparseable time stamp or
missing fields (``malformed_line``), a repeated (dialogue, utterance) pair
(``duplicate_turn``), an emotion outside the seven MELD emotions
(``unknown_label``), a label outside the selected classes, missing media
(``missing_audio``), media ffmpeg cannot decode (``unreadable_audio``), an
empty, silent or NaN result, and a dialogue left with no utterance
(``empty_dialogue``). An empty speaker name becomes ``"unknown"`` and is
counted as a note.

Idempotency
-----------
Options and a hash of the input file list are stored in
``save_folder/prepare_opts.json``; a later call with the same options on an
unchanged corpus (and with every wav still present) does nothing, any change
prepares again.

Authors
 * speechbrain_dpm contributors 2026
"""

import os
import re
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor

from speechbrain.utils.logger import get_logger

from speechbrain_dpm import dataprep
from speechbrain_dpm.dataprep import SkipCounter

logger = get_logger(__name__)

PREP_VERSION = 1
SAMPLE_RATE = 16000

MELD_LABELS = {
    "neutral": "neu",
    "joy": "hap",
    "sadness": "sad",
    "anger": "ang",
    "surprise": "sur",
    "fear": "fea",
    "disgust": "dis",
}
CLASS_SETS = {
    7: ("neu", "hap", "sad", "ang", "sur", "fea", "dis"),
    4: ("neu", "hap", "sad", "ang"),
}
REQUIRED_COLUMNS = (
    "Utterance",
    "Speaker",
    "Emotion",
    "Dialogue_ID",
    "Utterance_ID",
    "StartTime",
    "EndTime",
)
# (manifest name, MELD split name, CSV, candidate media folders)
MELD_SPLITS = (
    ("train", "train", "train_sent_emo.csv", ("train/train_splits",)),
    ("valid", "dev", "dev_sent_emo.csv", ("dev/dev_splits_complete",)),
    (
        "test",
        "test",
        "test_sent_emo.csv",
        ("test/output_repeated_splits_test",),
    ),
)

_TIME_RE = re.compile(r"^(\d+):(\d{1,2}):(\d{1,2}(?:[.,]\d+)?)$")


def prepare_meld(
    data_folder,
    save_folder,
    n_classes=7,
    skip_prep=False,
    num_workers=None,
    silence_threshold=1e-4,
):
    """Writes the MELD train/valid/test manifests (see module docstring).

    Arguments
    ---------
    data_folder : str
        The folder holding the MELD CSVs and media folders (directly or in
        ``MELD.Raw/``).
    save_folder : str
        Where the manifests, ``prepare_opts.json`` and the converted
        ``wav/`` folder are written.
    n_classes : int
        7 (all MELD emotions) or 4 (neu, hap, sad, ang).
    skip_prep : bool
        If True, do nothing.
    num_workers : int or None
        Parallel ffmpeg conversions; None uses the number of CPUs.
    silence_threshold : float
        Audio whose peak amplitude is below this is skipped as silent.

    Returns
    -------
    dict or None
        The summary (``splits`` with per-split dialogue, utterance and class
        counts, ``skipped`` and ``notes`` counts by reason), or None with
        ``skip_prep``. When an up-to-date preparation is reused, the stored
        summary is returned.

    Example
    -------
    On a tiny synthetic corpus in MELD's layout (one dialogue per split):

    >>> from speechbrain_dpm.synth import MeldConfig, generate_meld
    >>> tmp = getfixture("tmp_path")
    >>> corpus = generate_meld(
    ...     tmp / "MELD.Raw", MeldConfig(n_dialogues=(1, 1, 1), turns=(2, 2))
    ... )
    >>> summary = prepare_meld(corpus, tmp / "save")
    >>> {name: split["utterances"] for name, split in summary["splits"].items()}
    {'train': 2, 'valid': 2, 'test': 2}
    """
    if skip_prep:
        logger.info("MELD preparation skipped (skip_prep=True)")
        return None
    if n_classes not in CLASS_SETS:
        raise ValueError(f"n_classes must be 7 or 4, got {n_classes!r}")
    data_folder = os.path.abspath(os.path.expanduser(str(data_folder)))
    save_folder = os.path.abspath(os.path.expanduser(str(save_folder)))
    root = _find_root(data_folder)
    layout = [
        (name, meld_split, os.path.join(root, csv_name), _media_dir(root, c))
        for name, meld_split, csv_name, c in MELD_SPLITS
    ]

    options = {
        "prep": "meld",
        "version": PREP_VERSION,
        "data_folder": root,
        "n_classes": n_classes,
        "sample_rate": SAMPLE_RATE,
        "silence_threshold": silence_threshold,
    }
    inputs = []
    for _, _, csv_path, media_dir in layout:
        inputs.append(csv_path)
        if media_dir:
            inputs.extend(
                os.path.join(media_dir, n)
                for n in os.listdir(media_dir)
                if n.endswith((".mp4", ".wav"))
            )
    digest = dataprep.corpus_hash(inputs, root=root)
    stored = dataprep.prep_is_current(save_folder, options, digest)
    if stored is not None:
        logger.info(
            f"MELD manifests in {save_folder} are up to date, "
            "skipping preparation"
        )
        return stored.get("summary")

    dataprep.clear_prep_signature(save_folder)
    counter = SkipCounter()
    classes = CLASS_SETS[n_classes]
    wav_folder = os.path.join(save_folder, "wav")
    os.makedirs(wav_folder, exist_ok=True)

    # Read every CSV first, so a missing column fails before any conversion.
    parsed = []
    for name, meld_split, csv_path, media_dir in layout:
        dialogues = _read_csv(csv_path, meld_split, classes, counter)
        parsed.append((name, meld_split, media_dir, dialogues))

    jobs = []  # (utterance, source media or None, target wav)
    for _, meld_split, media_dir, dialogues in parsed:
        names = set(os.listdir(media_dir)) if media_dir else set()
        for utts in dialogues.values():
            for utt in utts:
                base = f"dia{utt['dia']}_utt{utt['utt']}"
                src = None
                for ext in (".mp4", ".wav"):
                    if base + ext in names:
                        src = os.path.join(media_dir, base + ext)
                        break
                target = os.path.join(wav_folder, f"{meld_split}_{base}.wav")
                jobs.append((utt, src, target))

    _convert_all(jobs, counter, num_workers, silence_threshold)

    manifests = {}
    for (name, _, _, dialogues), (_, _, csv_path, _) in zip(parsed, layout):
        entries = {}
        for dia in sorted(dialogues):
            utts = [u for u in dialogues[dia] if u.get("wav")]
            if not utts:
                counter.skip(
                    dataprep.EMPTY_DIALOGUE,
                    f"{csv_path}: dia{dia}",
                    "no utterance left, dialogue dropped",
                )
                continue
            utts.sort(key=lambda u: u["utt"])
            for index, utt in enumerate(utts):
                entries[utt["id"]] = {
                    "wav": utt["wav"],
                    "length": utt["length"],
                    "emo": utt["emo"],
                    "dialogue_id": utt["dialogue_id"],
                    "turn_index": index,
                    "speaker": utt["speaker"],
                    "start": utt["start"],
                    "end": utt["end"],
                    "text": utt["text"],
                }
        if not entries:
            logger.warning(f"MELD split '{name}' is empty")
        manifests[name] = entries
        dataprep.write_manifest(
            entries, os.path.join(save_folder, f"{name}.json")
        )

    summary = {
        "splits": dataprep.summarize_splits(manifests),
        "skipped": counter.skipped,
        "notes": counter.notes,
    }
    dataprep.save_prep_signature(save_folder, options, digest, summary)
    counter.log_summary("MELD")
    logger.info(dataprep.format_summary("MELD", summary))
    return summary


def parse_timestamp(text):
    """Converts a MELD time stamp ``hh:mm:ss,mmm`` to seconds.

    Arguments
    ---------
    text : str
        The time stamp (a ``.`` decimal separator is accepted too).

    Returns
    -------
    float or None
        Seconds, or None if the stamp cannot be parsed.

    Example
    -------
    >>> parse_timestamp("00:16:16,059")
    976.059
    >>> parse_timestamp("soon") is None
    True
    """
    match = _TIME_RE.match((text or "").strip())
    if not match:
        return None
    hours, minutes = int(match.group(1)), int(match.group(2))
    seconds = float(match.group(3).replace(",", "."))
    if minutes >= 60 or seconds >= 60:
        return None
    return round(hours * 3600 + minutes * 60 + seconds, 3)


def _find_root(data_folder):
    """Returns the folder that holds the MELD CSVs."""
    if not os.path.isdir(data_folder):
        raise FileNotFoundError(f"MELD folder not found: {data_folder}")
    csvs = [c for _, _, c, _ in MELD_SPLITS]
    for root in (data_folder, os.path.join(data_folder, "MELD.Raw")):
        if all(os.path.isfile(os.path.join(root, c)) for c in csvs):
            return root
    raise FileNotFoundError(
        f"{data_folder}: the MELD CSVs {csvs} are not in this folder nor in "
        "its MELD.Raw/ subfolder"
    )


def _media_dir(root, candidates):
    """Returns the first existing media folder, or None (with a warning)."""
    candidates = [*candidates, *(os.path.basename(c) for c in candidates)]
    for cand in candidates:
        path = os.path.join(root, cand)
        if os.path.isdir(path):
            return path
    logger.warning(
        f"{root}: none of the media folders {list(candidates)} exists; "
        "every utterance of that split will be skipped as missing_audio"
    )
    return None


def _read_csv(csv_path, meld_split, classes, counter):
    """Parses a MELD CSV into ``{dialogue: [utterance dicts]}``."""
    rows = dataprep.read_csv_rows(csv_path, REQUIRED_COLUMNS)
    dialogues = {}
    seen = set()
    for line_no, row in rows:
        where = f"{csv_path}:{line_no}"
        if any(row.get(c) is None for c in REQUIRED_COLUMNS):
            counter.skip(dataprep.MALFORMED_LINE, where, "missing fields")
            continue
        try:
            dia = int(row["Dialogue_ID"].strip())
            utt = int(row["Utterance_ID"].strip())
        except ValueError:
            counter.skip(
                dataprep.MALFORMED_LINE,
                where,
                f"Dialogue_ID={row['Dialogue_ID']!r} "
                f"Utterance_ID={row['Utterance_ID']!r} are not integers",
            )
            continue
        dialogues.setdefault(dia, [])
        start = parse_timestamp(row["StartTime"])
        end = parse_timestamp(row["EndTime"])
        if start is None or end is None:
            counter.skip(
                dataprep.MALFORMED_LINE,
                where,
                f"bad time stamps {row['StartTime']!r} - {row['EndTime']!r}",
            )
            continue
        if (dia, utt) in seen:
            counter.skip("duplicate_turn", where, f"dia{dia}_utt{utt} again")
            continue
        seen.add((dia, utt))
        emotion = row["Emotion"].strip().lower()
        if emotion not in MELD_LABELS:
            counter.skip(dataprep.UNKNOWN_LABEL, where, f"label {emotion!r}")
            continue
        label = MELD_LABELS[emotion]
        if label not in classes:
            counter.skip(f"{dataprep.DROPPED_LABEL}:{label}", where)
            continue
        speaker = " ".join(row["Speaker"].split())
        if not speaker:
            counter.note("missing_speaker", where, "speaker set to 'unknown'")
            speaker = "unknown"
        dialogues[dia].append(
            {
                "id": f"{meld_split}_dia{dia}_utt{utt}",
                "dialogue_id": f"{meld_split}_dia{dia}",
                "dia": dia,
                "utt": utt,
                "emo": label,
                "speaker": speaker,
                "start": start,
                "end": end,
                "text": " ".join(row["Utterance"].split()),
                "where": where,
            }
        )
    return dialogues


def _is_ready_wav(path):
    """True if ``path`` is a readable 16 kHz mono wav (no full check)."""
    try:
        import soundfile as sf

        info = sf.info(path)
    except Exception:
        return False
    return info.samplerate == SAMPLE_RATE and info.channels == 1


def _ffmpeg_convert(src, target):
    """Converts ``src`` to 16 kHz mono wav; returns an error text or None."""
    tmp = target + ".part.wav"
    cmd = [
        "ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y",
        "-i", src, "-vn", "-ac", "1", "-ar", str(SAMPLE_RATE),
        "-c:a", "pcm_s16le", tmp,
    ]  # fmt: skip
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    except OSError as exc:
        return str(exc)
    if proc.returncode != 0 or not os.path.isfile(tmp):
        if os.path.exists(tmp):
            os.remove(tmp)
        err = (proc.stderr or "").strip().splitlines()
        return f"ffmpeg failed ({proc.returncode}): " + (
            err[-1] if err else "no output"
        )
    os.replace(tmp, target)
    return None


def _convert_all(jobs, counter, num_workers, silence_threshold):
    """Converts/locates the audio of every job and checks it.

    Sets ``wav`` and ``length`` on the utterance dicts that pass, and counts
    a skip for the others.
    """
    todo = []
    for utt, src, target in jobs:
        if os.path.isfile(target) and (
            src is None or os.path.getmtime(target) >= os.path.getmtime(src)
        ):
            utt["wav"] = target  # converted before
        elif src is None:
            counter.skip(
                dataprep.MISSING_AUDIO,
                utt["where"],
                f"no dia{utt['dia']}_utt{utt['utt']}.mp4 or .wav",
            )
        elif src.endswith(".wav") and _is_ready_wav(src):
            utt["wav"] = src
        else:
            todo.append((utt, src, target))

    if todo:
        if shutil.which("ffmpeg") is None:
            raise RuntimeError(
                f"ffmpeg is needed to convert {len(todo)} MELD media files "
                "to 16 kHz wav but was not found on PATH; install it (e.g. "
                "'apt-get install ffmpeg' or 'conda install ffmpeg')"
            )
        logger.info(f"MELD: converting {len(todo)} files with ffmpeg")
        workers = num_workers or os.cpu_count() or 1
        with ThreadPoolExecutor(max_workers=workers) as pool:
            errors = pool.map(lambda job: _ffmpeg_convert(job[1], job[2]), todo)
            for done, ((utt, src, target), error) in enumerate(
                zip(todo, errors), start=1
            ):
                if error is None:
                    utt["wav"] = target
                else:
                    counter.skip(dataprep.UNREADABLE_AUDIO, src, error)
                if done % 1000 == 0:
                    logger.info(f"MELD: converted {done}/{len(todo)}")

    for utt, _, _ in jobs:
        if not utt.get("wav"):
            continue
        try:
            info = dataprep.check_audio(
                utt["wav"],
                sample_rate=SAMPLE_RATE,
                silence_threshold=silence_threshold,
            )
        except dataprep.AudioCheckError as err:
            counter.skip(err.reason, err.path, f"{err.detail} ({utt['where']})")
            utt["wav"] = None
            continue
        utt["length"] = round(info.duration, 4)
