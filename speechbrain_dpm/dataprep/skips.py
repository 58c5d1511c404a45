"""Counted skips: every item a prepare script leaves out is counted and logged.

The skip reasons shared by the prepare scripts are defined here, so that
their summaries use the same names.

Authors
 * speechbrain_dpm contributors 2026
"""

from collections import Counter

from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

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
