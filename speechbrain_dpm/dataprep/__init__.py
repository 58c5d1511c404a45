"""Shared helpers for the corpus preparation scripts (``*_prepare.py``).

The recipes ``recipes/IEMOCAP/iemocap_prepare.py`` and
``recipes/MELD/meld_prepare.py`` use these helpers to

* check audio files (:func:`check_audio`; module ``audio_checks``, whose
  docstring states the audio policy),
* read annotation text and CSV files robustly (:func:`read_text`,
  :func:`read_csv_rows`; module ``text_files``),
* count and log every skipped item (:class:`SkipCounter` and the shared
  skip reasons; module ``skips``), so that nothing is dropped silently,
* write the JSON manifests (:func:`write_manifest`) and summarise them
  (:func:`summarize_splits`; module ``manifests``),
* decide whether a preparation can be skipped (:func:`corpus_hash`,
  :func:`prep_is_current`, :func:`save_prep_signature`; module
  ``prep_signature``, whose docstring states the idempotency rule).

Authors
 * speechbrain_dpm contributors 2026
"""

from speechbrain_dpm.dataprep.audio_checks import (
    AudioCheckError,
    AudioInfo,
    check_audio,
)
from speechbrain_dpm.dataprep.manifests import (
    SPLITS,
    format_summary,
    summarize_splits,
    write_manifest,
)
from speechbrain_dpm.dataprep.prep_signature import (
    SIGNATURE_FILE,
    clear_prep_signature,
    corpus_hash,
    prep_is_current,
    save_prep_signature,
)
from speechbrain_dpm.dataprep.skips import (
    DROPPED_LABEL,
    EMPTY_AUDIO,
    EMPTY_DIALOGUE,
    MALFORMED_LINE,
    MISSING_AUDIO,
    NAN_AUDIO,
    NOT_MONO,
    SILENT_AUDIO,
    UNKNOWN_LABEL,
    UNREADABLE_AUDIO,
    WRONG_SAMPLE_RATE,
    SkipCounter,
)
from speechbrain_dpm.dataprep.text_files import (
    decode_text,
    finite_or_none,
    fix_mojibake,
    read_csv_rows,
    read_text,
)

__all__ = [
    "DROPPED_LABEL",
    "EMPTY_AUDIO",
    "EMPTY_DIALOGUE",
    "MALFORMED_LINE",
    "MISSING_AUDIO",
    "NAN_AUDIO",
    "NOT_MONO",
    "SIGNATURE_FILE",
    "SILENT_AUDIO",
    "SPLITS",
    "UNKNOWN_LABEL",
    "UNREADABLE_AUDIO",
    "WRONG_SAMPLE_RATE",
    "AudioCheckError",
    "AudioInfo",
    "SkipCounter",
    "check_audio",
    "clear_prep_signature",
    "corpus_hash",
    "decode_text",
    "finite_or_none",
    "fix_mojibake",
    "format_summary",
    "prep_is_current",
    "read_csv_rows",
    "read_text",
    "save_prep_signature",
    "summarize_splits",
    "write_manifest",
]
