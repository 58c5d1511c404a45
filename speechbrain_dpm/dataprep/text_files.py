"""Reading annotation files robustly: text and CSV of unknown encoding, and
numbers that may be missing or not finite.

Authors
 * speechbrain_dpm contributors 2026
"""

import csv
import io
import math


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
