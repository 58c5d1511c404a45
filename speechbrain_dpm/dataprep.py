"""Shared helpers for the corpus preparation scripts (``*_prepare.py``).

The recipes ``recipes/IEMOCAP/iemocap_prepare.py`` and
``recipes/MELD/meld_prepare.py`` use these helpers to

* check audio files (:func:`check_audio`),
* read annotation text and CSV files robustly (:func:`read_text`,
  :func:`read_csv_rows`),
* count and log every skipped item (:class:`SkipCounter`), so that nothing
  is dropped silently,
* write the JSON manifests (:func:`write_manifest`) and summarise them
  (:func:`summarize_splits`),
* decide whether a preparation can be skipped (:func:`corpus_hash`,
  :func:`prep_is_current`, :func:`save_prep_signature`).

Audio policy
------------
Manifests promise 16 kHz mono wav files that the loaders read as they are
(``speechbrain.dataio.dataio.read_audio`` does not resample). The checks of
:func:`check_audio` therefore reject, with a counted and logged skip, a
missing file, an unreadable file, an empty file (no samples), a file with a
wrong sample rate or more than one channel, NaN/Inf samples, and a silent
file (peak amplitude below ``silence_threshold``). Corpora whose media are
not 16 kHz mono (MELD) are converted by their prepare script instead.

Idempotency
-----------
A prepare script stores its options and a hash of the corpus file list
(relative path, size and modification time of every input file) in
``prepare_opts.json`` next to the manifests. A later call skips the work only
when that signature matches and every manifest (and every wav it points to)
exists; otherwise it prepares again.

Authors
 * speechbrain_dpm contributors 2026
"""

import csv
import hashlib
import io
import json
import math
import os
from collections import Counter, namedtuple

import numpy as np
import soundfile as sf
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

SIGNATURE_FILE = "prepare_opts.json"
SPLITS = ("train", "valid", "test")

# Skip reasons shared by the prepare scripts.
MISSING_AUDIO = "missing_audio"
UNREADABLE_AUDIO = "unreadable_audio"
EMPTY_AUDIO = "empty_audio"
SILENT_AUDIO = "silent_audio"
NAN_AUDIO = "nan_audio"
WRONG_SAMPLE_RATE = "wrong_sample_rate"
NOT_MONO = "not_mono"
MALFORMED_LINE = "malformed_line"
UNKNOWN_LABEL = "unknown_label"
DROPPED_LABEL = "dropped_label"
EMPTY_DIALOGUE = "empty_dialogue"

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
    path, sample_rate=16000, mono=True, silence_threshold=1e-4, block=1 << 20
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
    speechbrain_dpm.dataprep.AudioCheckError: silent_audio: ...
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
            if not np.all(np.isfinite(chunk)):
                raise AudioCheckError(NAN_AUDIO, path, "NaN or Inf samples")
            if chunk.size:
                peak = max(peak, float(np.max(np.abs(chunk))))
    except AudioCheckError:
        raise
    except Exception as exc:
        raise AudioCheckError(UNREADABLE_AUDIO, path, str(exc)) from exc
    if frames == 0:
        raise AudioCheckError(EMPTY_AUDIO, path, "no samples")
    if peak <= 0.0 or peak < silence_threshold:
        raise AudioCheckError(
            SILENT_AUDIO, path, f"peak amplitude {peak:.2e} (silent)"
        )
    return AudioInfo(
        duration=frames / info.samplerate,
        sample_rate=info.samplerate,
        channels=info.channels,
        frames=frames,
    )


class SkipCounter:
    """Counts skipped items by reason and logs them.

    Every skip is counted. The first ``max_logged`` skips of each reason are
    logged at WARNING level with their location (file and line); the rest go
    to DEBUG. :meth:`log_summary` logs the counts at the end. Items that are
    kept but worth reporting (e.g. a turn without transcription) are counted
    with :meth:`note`.

    Arguments
    ---------
    max_logged : int
        Number of skips per reason logged at WARNING level.
    quiet_reasons : iterable of str
        Reason prefixes that are expected in large numbers (e.g. labels
        outside the selected classes); they are only logged at DEBUG level
        but still counted and summarised.

    Example
    -------
    >>> counter = SkipCounter()
    >>> counter.skip("unknown_label", "f.txt:3", "label 'zzz'")
    >>> counter.skip("unknown_label", "f.txt:9", "label 'yyy'")
    >>> counter.skipped
    {'unknown_label': 2}
    >>> counter.total
    2
    """

    def __init__(self, max_logged=10, quiet_reasons=(DROPPED_LABEL,)):
        self.max_logged = max_logged
        self.quiet_reasons = tuple(quiet_reasons)
        self._skipped = Counter()
        self._notes = Counter()

    def _log(self, kind, counts, reason, where, detail):
        n = counts[reason]
        msg = f"{kind} ({reason}): {where}" + (f": {detail}" if detail else "")
        if reason.startswith(self.quiet_reasons) or n > self.max_logged:
            logger.debug(msg)
        else:
            logger.warning(msg)
            if n == self.max_logged:
                logger.warning(
                    f"further '{reason}' messages are logged at DEBUG level"
                )

    def skip(self, reason, where, detail=""):
        """Counts (and logs) one skipped item.

        Arguments
        ---------
        reason : str
            Why the item was skipped (e.g. ``missing_audio``).
        where : str
            Where it comes from, e.g. ``"path/file.txt:12"`` or a wav path.
        detail : str
            Extra explanation.

        Example
        -------
        >>> counter = SkipCounter()
        >>> counter.skip("missing_audio", "/data/x.wav")
        >>> counter.skipped["missing_audio"]
        1
        """
        self._skipped[reason] += 1
        self._log("skip", self._skipped, reason, where, detail)

    def note(self, reason, where, detail=""):
        """Counts (and logs) an item that is kept but worth reporting.

        Arguments
        ---------
        reason : str
            What was noticed (e.g. ``missing_text``).
        where : str
            Where it comes from.
        detail : str
            Extra explanation.

        Example
        -------
        >>> counter = SkipCounter()
        >>> counter.note("missing_text", "Ses01F_impro01_F000")
        >>> counter.notes
        {'missing_text': 1}
        """
        self._notes[reason] += 1
        self._log("note", self._notes, reason, where, detail)

    @property
    def skipped(self):
        """Skip counts by reason, as a plain sorted dict.

        Returns
        -------
        dict
            ``{reason: count}``.

        Example
        -------
        >>> SkipCounter().skipped
        {}
        """
        return dict(sorted(self._skipped.items()))

    @property
    def notes(self):
        """Note counts by reason, as a plain sorted dict.

        Returns
        -------
        dict
            ``{reason: count}``.

        Example
        -------
        >>> SkipCounter().notes
        {}
        """
        return dict(sorted(self._notes.items()))

    @property
    def total(self):
        """Total number of skipped items.

        Returns
        -------
        int
            The sum of the skip counts.

        Example
        -------
        >>> SkipCounter().total
        0
        """
        return sum(self._skipped.values())

    def log_summary(self, name="prepare"):
        """Logs the skip and note counts.

        Arguments
        ---------
        name : str
            A prefix for the log lines (e.g. the corpus name).

        Returns
        -------
        str
            The logged text.

        Example
        -------
        >>> counter = SkipCounter()
        >>> counter.skip("missing_audio", "/x.wav")
        >>> print(counter.log_summary("demo"))
        demo: skipped 1 item(s): missing_audio=1
        """
        if self._skipped:
            text = f"{name}: skipped {self.total} item(s): " + ", ".join(
                f"{k}={v}" for k, v in self.skipped.items()
            )
        else:
            text = f"{name}: nothing skipped"
        if self._notes:
            text += "; notes: " + ", ".join(
                f"{k}={v}" for k, v in self.notes.items()
            )
        logger.info(text)
        return text


def decode_text(data):
    """Decodes bytes of a text file of unknown encoding.

    Tries UTF-8 (with or without BOM), then Windows-1252, then Latin-1
    (which never fails), and repairs common UTF-8-read-as-1252 mojibake
    (``â€™`` → ``’``) with :func:`fix_mojibake`.

    Arguments
    ---------
    data : bytes
        The raw file content.

    Returns
    -------
    str
        The decoded text.

    Example
    -------
    >>> decode_text("It’s".encode("cp1252"))
    'It’s'
    >>> decode_text("It’s".encode("utf-8"))
    'It’s'
    """
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            return fix_mojibake(data.decode(encoding))
        except UnicodeDecodeError:
            continue
    return fix_mojibake(data.decode("latin-1"))


_MOJIBAKE_MARKERS = ("â€", "Ã", "Â")


def fix_mojibake(text):
    """Repairs text that was UTF-8 but got decoded as Windows-1252.

    Only applied when typical marker sequences are present, and only kept if
    the round trip succeeds, so correct text is returned unchanged.

    Arguments
    ---------
    text : str
        The text to repair.

    Returns
    -------
    str
        The repaired text (or the input if it cannot be repaired).

    Example
    -------
    >>> fix_mojibake("Itâ€™s")
    'It’s'
    >>> fix_mojibake("Café")
    'Café'
    """
    if not any(marker in text for marker in _MOJIBAKE_MARKERS):
        return text
    out = []
    for part in text.splitlines(keepends=True):
        if any(marker in part for marker in _MOJIBAKE_MARKERS):
            try:
                part = part.encode("cp1252").decode("utf-8")
            except (UnicodeEncodeError, UnicodeDecodeError):
                pass
        out.append(part)
    return "".join(out)


def read_text(path):
    """Reads a text file of unknown encoding (see :func:`decode_text`).

    Arguments
    ---------
    path : str
        The file.

    Returns
    -------
    str
        Its decoded content.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> p = tmp / "t.txt"
    >>> _ = p.write_binary("caf\\xe9".encode("latin-1"))
    >>> read_text(str(p))
    'café'
    """
    with open(path, "rb") as f:
        return decode_text(f.read())


def read_csv_rows(path, required_columns):
    """Reads a CSV file with a header row, robust to its encoding.

    Arguments
    ---------
    path : str
        The CSV file.
    required_columns : list of str
        Columns that must be present in the header (compared after stripping
        white space).

    Returns
    -------
    list of (int, dict)
        ``(line_number, row)`` per data row; ``line_number`` is the 1-based
        line of the file where the row ends. Rows with a wrong number of
        fields get the key ``None`` (extra fields) or ``None`` values
        (missing fields), as :class:`csv.DictReader` does.

    Raises
    ------
    ValueError
        If the file is empty or a required column is missing; the message
        names the file and the columns.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> p = tmp / "a.csv"
    >>> _ = p.write("Utterance,Emotion\\nHi there,joy\\n")
    >>> read_csv_rows(str(p), ["Emotion"])
    [(2, {'Utterance': 'Hi there', 'Emotion': 'joy'})]
    >>> read_csv_rows(str(p), ["Speaker"])
    Traceback (most recent call last):
    ...
    ValueError: ...a.csv: missing column(s) 'Speaker' ...
    """
    text = read_text(path)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty CSV file (no header row)") from None
    missing = [c for c in required_columns if c not in header]
    if missing:
        raise ValueError(
            f"{path}: missing column(s) "
            + ", ".join(repr(c) for c in missing)
            + f" (found: {', '.join(header)})"
        )
    rows = []
    for fields in reader:
        if not fields or all(not f.strip() for f in fields):
            continue
        row = dict(zip(header, fields))
        if len(fields) < len(header):
            for col in header[len(fields) :]:
                row[col] = None
        elif len(fields) > len(header):
            row[None] = fields[len(header) :]
        rows.append((reader.line_num, row))
    return rows


def write_manifest(data, path):
    """Writes a JSON manifest atomically (temporary file + rename).

    Arguments
    ---------
    data : dict
        ``{utterance_id: {field: value}}``.
    path : str
        The output JSON file; its folder is created if needed.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> path = str(tmp / "m" / "train.json")
    >>> write_manifest({"u1": {"emo": "neu"}}, path)
    >>> import json; json.load(open(path))
    {'u1': {'emo': 'neu'}}
    """
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, indent=2, ensure_ascii=False)
    os.replace(tmp, path)


def summarize_splits(manifests):
    """Counts dialogues, utterances, hours and classes per split.

    Arguments
    ---------
    manifests : dict
        ``{split_name: {utterance_id: entry}}`` with entries holding
        ``dialogue_id``, ``emo`` and ``length``.

    Returns
    -------
    dict
        ``{split_name: {"dialogues", "utterances", "hours", "classes"}}``.

    Example
    -------
    >>> m = {"train": {"a": {"dialogue_id": "d", "emo": "neu", "length": 36}}}
    >>> summarize_splits(m)["train"]["classes"]
    {'neu': 1}
    """
    out = {}
    for split, entries in manifests.items():
        classes = Counter(e["emo"] for e in entries.values())
        out[split] = {
            "dialogues": len({e["dialogue_id"] for e in entries.values()}),
            "utterances": len(entries),
            "hours": round(
                sum(e["length"] for e in entries.values()) / 3600, 3
            ),
            "classes": dict(sorted(classes.items())),
        }
    return out


def format_summary(name, summary):
    """Formats a preparation summary as text (one line per split).

    Arguments
    ---------
    name : str
        The corpus name.
    summary : dict
        With ``splits`` (see :func:`summarize_splits`), ``skipped`` and
        ``notes`` (reason → count).

    Returns
    -------
    str
        The formatted summary.

    Example
    -------
    >>> s = {"splits": {"test": {"dialogues": 1, "utterances": 2,
    ...      "hours": 0.0, "classes": {"neu": 2}}}, "skipped": {}, "notes": {}}
    >>> print(format_summary("X", s))
    X preparation summary:
      test: 1 dialogues, 2 utterances, 0.0 h, classes neu=2
      skipped: none
    """
    lines = [f"{name} preparation summary:"]
    for split, s in summary["splits"].items():
        classes = " ".join(f"{k}={v}" for k, v in s["classes"].items())
        lines.append(
            f"  {split}: {s['dialogues']} dialogues, {s['utterances']} "
            f"utterances, {s['hours']} h, classes {classes or '-'}"
        )
    skipped = summary.get("skipped", {})
    if skipped:
        lines.append(
            f"  skipped {sum(skipped.values())}: "
            + ", ".join(f"{k}={v}" for k, v in skipped.items())
        )
    else:
        lines.append("  skipped: none")
    notes = summary.get("notes", {})
    if notes:
        lines.append(
            "  notes: " + ", ".join(f"{k}={v}" for k, v in notes.items())
        )
    return "\n".join(lines)


def corpus_hash(paths, root=None):
    """Hashes a list of files by relative path, size and modification time.

    Missing files are hashed as missing, so creating, deleting, replacing
    or touching any listed file changes the hash.

    Arguments
    ---------
    paths : iterable of str
        The input files of a preparation.
    root : str or None
        Paths are hashed relative to this folder (so that a moved corpus
        hashes the same); ``None`` uses them as given.

    Returns
    -------
    str
        A hex SHA-256 digest.

    Example
    -------
    >>> tmp = getfixture("tmpdir")
    >>> p = tmp / "a.txt"
    >>> _ = p.write("x")
    >>> h1 = corpus_hash([str(p)], root=str(tmp))
    >>> _ = p.write("xy")
    >>> h1 == corpus_hash([str(p)], root=str(tmp))
    False
    """
    digest = hashlib.sha256()
    for path in sorted(str(p) for p in paths):
        rel = os.path.relpath(path, root) if root else path
        try:
            st = os.stat(path)
            item = f"{rel}\t{st.st_size}\t{st.st_mtime_ns}\n"
        except OSError:
            item = f"{rel}\tmissing\n"
        digest.update(item.encode("utf-8", "surrogateescape"))
    return digest.hexdigest()


def _manifest_paths(save_folder, splits=SPLITS):
    return [os.path.join(save_folder, f"{s}.json") for s in splits]


def prep_is_current(save_folder, options, corpus_digest, splits=SPLITS):
    """Tells whether an earlier preparation can be reused.

    True only if ``prepare_opts.json`` in ``save_folder`` holds exactly these
    options and corpus hash, every manifest exists and parses, and every wav
    file the manifests point to exists.

    Arguments
    ---------
    save_folder : str
        Where the manifests and ``prepare_opts.json`` are.
    options : dict
        The (JSON-serialisable) options of the preparation.
    corpus_digest : str
        The :func:`corpus_hash` of the inputs.
    splits : tuple of str
        Manifest names without ``.json``.

    Returns
    -------
    dict or None
        The stored signature (with its ``summary``) if the preparation is
        current, else None.

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> prep_is_current(tmp, {"a": 1}, "abc") is None
    True
    >>> for s in SPLITS:
    ...     write_manifest({}, os.path.join(tmp, s + ".json"))
    >>> save_prep_signature(tmp, {"a": 1}, "abc", {"splits": {}})
    >>> prep_is_current(tmp, {"a": 1}, "abc")["options"]
    {'a': 1}
    >>> prep_is_current(tmp, {"a": 2}, "abc") is None
    True
    """
    sig_path = os.path.join(save_folder, SIGNATURE_FILE)
    try:
        with open(sig_path, encoding="utf-8") as f:
            stored = json.load(f)
    except (OSError, ValueError):
        return None
    # Round trip through JSON so tuples compare equal to lists.
    wanted = json.loads(json.dumps(options))
    if stored.get("options") != wanted:
        logger.info(f"{sig_path}: options changed, preparing again")
        return None
    if stored.get("corpus_hash") != corpus_digest:
        logger.info(f"{sig_path}: corpus changed, preparing again")
        return None
    for path in _manifest_paths(save_folder, splits):
        try:
            with open(path, encoding="utf-8") as f:
                entries = json.load(f)
        except (OSError, ValueError):
            logger.info(f"{path} missing or unreadable, preparing again")
            return None
        for entry in entries.values():
            if not os.path.isfile(entry.get("wav", "")):
                logger.info(
                    f"{path}: {entry.get('wav')} is gone, preparing again"
                )
                return None
    return stored


def save_prep_signature(save_folder, options, corpus_digest, summary):
    """Stores the options, corpus hash and summary of a preparation.

    Call it after all manifests are written: an interrupted preparation then
    leaves no valid signature and runs again next time.

    Arguments
    ---------
    save_folder : str
        Where the manifests are.
    options : dict
        The (JSON-serialisable) options of the preparation.
    corpus_digest : str
        The :func:`corpus_hash` of the inputs.
    summary : dict
        The preparation summary (returned again on reuse).

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> save_prep_signature(tmp, {"n_classes": 4}, "abc", {})
    >>> os.path.isfile(os.path.join(tmp, SIGNATURE_FILE))
    True
    """
    write_manifest(
        {
            "options": options,
            "corpus_hash": corpus_digest,
            "summary": summary,
        },
        os.path.join(save_folder, SIGNATURE_FILE),
    )


def clear_prep_signature(save_folder):
    """Removes ``prepare_opts.json`` before a preparation rewrites files.

    Arguments
    ---------
    save_folder : str
        Where the manifests are.

    Example
    -------
    >>> tmp = str(getfixture("tmpdir"))
    >>> save_prep_signature(tmp, {}, "abc", {})
    >>> clear_prep_signature(tmp)
    >>> os.path.exists(os.path.join(tmp, SIGNATURE_FILE))
    False
    """
    try:
        os.remove(os.path.join(save_folder, SIGNATURE_FILE))
    except FileNotFoundError:
        pass


def finite_or_none(value):
    """Returns a float if it is finite, else None.

    Arguments
    ---------
    value : str or float
        The value to convert.

    Returns
    -------
    float or None
        The value as a float, or None if it is not a finite number.

    Example
    -------
    >>> finite_or_none("6.2901"), finite_or_none("nan"), finite_or_none("x")
    (6.2901, None, None)
    """
    try:
        value = float(value)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
