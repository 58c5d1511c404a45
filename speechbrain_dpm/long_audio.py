"""Long recordings: speech segments found by silero-vad, labelled in order
as one conversation, and their CSV.

:func:`classify_long_audio` is the work of
``DPMEmotionRecognizer.classify_long_audio``: it reads each recording,
cuts it into speech segments (:func:`speech_segments`), encodes them a few
at a time and reads the segments of each recording as one conversation
through the recognizer's context strategy, several recordings side by side.

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import os
from dataclasses import dataclass

import torch
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.audio import (
    MIN_SECONDS,
    ON_ERROR,
    SAMPLE_RATE,
    SILENCE_PEAK,
    check_waveform,
    read_audio_16k,
)
from speechbrain_dpm.settings import check_choice

logger = get_logger(__name__)


def silero_vad():
    """silero-vad's ``(get_speech_timestamps, load_silero_vad)``, imported
    without its side effect.

    Importing ``silero_vad`` calls ``torch.set_num_threads(1)``, which would
    silently make every later forward of the process single-threaded (the
    DPM steps of ``classify_long_audio`` included): the caller's setting is
    put back.

    Example
    -------
    >>> threads = torch.get_num_threads()
    >>> get_speech_timestamps, load_silero_vad = silero_vad()
    >>> torch.get_num_threads() == threads
    True
    """
    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad
    finally:
        torch.set_num_threads(threads)
    return get_speech_timestamps, load_silero_vad


@dataclass
class Segment:
    """A speech segment of a long recording and its emotion.

    Unpacks as ``start, end, label, probs = segment``.

    Arguments
    ---------
    start : float
        Start time in seconds.
    end : float
        End time in seconds.
    label : str
        The most likely class (None for a skipped segment).
    probs : torch.Tensor
        [C] class probabilities (NaN for a skipped segment).
    error : str, optional
        Why the segment was left out of the conversation
        (``on_error="skip"``).

    Example
    -------
    >>> seg = Segment(1.0, 2.5, "neu", torch.tensor([1.0, 0.0]))
    >>> start, end, label, probs = seg
    >>> end - start
    1.5
    """

    start: float
    end: float
    label: str
    probs: torch.Tensor
    error: str = None

    def __iter__(self):
        return iter((self.start, self.end, self.label, self.probs))


def write_segments_csv(csv_path, segments, emotions):
    """Writes segments as CSV rows: ``start,end,label,score``, one
    ``p_<class>`` column per class, then ``error`` (empty, or why the
    segment was left out).

    Arguments
    ---------
    csv_path : str
        Destination (parent folders are created).
    segments : list of Segment
        The segments.
    emotions : list of str
        Class names, in probability order.

    Example
    -------
    >>> path = getfixture("tmpdir") / "out.csv"
    >>> seg = Segment(0.5, 1.25, "sad", torch.tensor([0.25, 0.75]))
    >>> write_segments_csv(path, [seg], ["neu", "sad"])
    >>> print(path.read_text("utf-8").strip())
    start,end,label,score,p_neu,p_sad,error
    0.500,1.250,sad,0.7500,0.2500,0.7500,
    """
    csv_path = os.fspath(csv_path)
    parent = os.path.dirname(os.path.abspath(csv_path))
    os.makedirs(parent, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as fout:
        writer = csv.writer(fout)
        writer.writerow(
            ["start", "end", "label", "score"]
            + [f"p_{e}" for e in emotions]
            + ["error"]
        )
        for seg in segments:
            times = [f"{seg.start:.3f}", f"{seg.end:.3f}"]
            if seg.error is not None:
                blank = [""] * (len(emotions) + 1)
                writer.writerow(times + [""] + blank + [seg.error])
                continue
            probs = [float(p) for p in seg.probs]
            writer.writerow(
                times
                + [seg.label, f"{max(probs):.4f}"]
                + [f"{p:.4f}" for p in probs]
                + [""]
            )


def speech_segments(
    wav, vad_model, min_speech, max_segment, min_silence, threshold
):
    """silero-vad speech spans of a recording, in samples, each at most
    ``max_segment`` long (longer speech is cut into equal pieces).

    Arguments
    ---------
    wav : torch.Tensor
        1-D 16 kHz waveform.
    vad_model : torch.nn.Module
        silero-vad's model (``load_silero_vad()``).
    min_speech : float
        Shortest kept segment, in seconds (at least ``MIN_SECONDS``).
    max_segment : float
        Longest segment, in seconds.
    min_silence : float
        Shortest pause that separates two segments, in seconds.
    threshold : float
        silero-vad speech probability threshold.

    Returns
    -------
    list of (int, int)
        ``(start, end)`` sample indices, in time order.

    Example
    -------
    >>> get_speech_timestamps, load_silero_vad = silero_vad()
    >>> speech_segments(torch.zeros(16000), load_silero_vad(), 0.5, 20.0,
    ...     0.3, 0.5)
    []
    """
    get_speech_timestamps, _ = silero_vad()
    spans = get_speech_timestamps(
        wav,
        vad_model,
        threshold=threshold,
        sampling_rate=SAMPLE_RATE,
        min_speech_duration_ms=int(min_speech * 1000),
        max_speech_duration_s=max_segment,
        min_silence_duration_ms=int(min_silence * 1000),
    )
    limit = int(max_segment * SAMPLE_RATE)
    out = []
    for span in spans:
        start = max(0, int(span["start"]))
        end = min(int(span["end"]), wav.shape[0])
        if end - start < SAMPLE_RATE * max(MIN_SECONDS, min_speech):
            continue
        n_pieces = -(-(end - start) // limit)
        size = -(-(end - start) // n_pieces)
        for lo in range(start, end, size):
            out.append((lo, min(lo + size, end)))
    return out


def classify_long_audio(
    recognizer,
    path,
    csv_path=None,
    min_speech=0.5,
    max_segment=20.0,
    min_silence=0.3,
    vad_threshold=0.5,
    progressbar=False,
    batch_size=None,
    on_error="raise",
):
    """Emotions along long recordings (each a whole conversation).

    silero-vad (bundled weights, offline) finds the speech segments;
    segments longer than ``max_segment`` are cut into equal pieces; the
    segments of a recording are then labelled in order as one
    conversation through the configured strategy. Several recordings
    are read side by side, each with its own memory.

    Arguments
    ---------
    recognizer : speechbrain_dpm.recognizer.DPMEmotionRecognizer
        The model (its VAD, encoder and context strategy); this function
        is also the recognizer's method ``classify_long_audio``, where it
        is ``self``.
    path : str or path-like, or list of them
        The recording(s) (any rate, mono or multi-channel).
    csv_path : str or list of str, optional
        Also write ``start,end,label,score,p_<class>...`` rows there
        (one path per recording).
    min_speech : float
        Shortest kept segment, in seconds.
    max_segment : float
        Longest segment, in seconds (longer speech is split).
    min_silence : float
        Shortest pause that separates two segments, in seconds.
    vad_threshold : float
        silero-vad speech probability threshold.
    progressbar : bool
        Show a tqdm bar over the segments' encoding.
    batch_size : int, optional
        Recordings read at once (default ``BATCH_SIZE``).
    on_error : str
        ``raise`` (default): a bad segment (shorter than
        ``MIN_SECONDS``, silent, NaN) raises. ``skip``: it is left out
        of the conversation (a warning counts them) and kept in the
        output marked with its ``error`` (the CSV's ``error`` column).
        A recording that cannot be read raises either way.

    Returns
    -------
    list of Segment, or a list of them per recording
        In time order; empty (with a warning, and a CSV with the header
        only) when a recording is silent or has no speech.

    Raises
    ------
    FileNotFoundError
        If a file does not exist.
    ValueError
        If it cannot be read, is empty or has NaN samples, or on bad
        arguments.
    """
    check_choice("on_error", on_error, ON_ERROR)
    if max_segment <= 0 or min_speech < 0 or min_speech > max_segment:
        raise ValueError(
            "need 0 <= min_speech <= max_segment and max_segment > 0, "
            f"got min_speech={min_speech}, max_segment={max_segment}"
        )
    single = isinstance(path, (str, os.PathLike))
    paths = [path] if single else list(path)
    csv_paths = [csv_path] if single else csv_path
    if csv_paths is not None and len(csv_paths) != len(paths):
        raise ValueError(
            f"{len(csv_paths)} CSV paths for {len(paths)} recordings"
        )
    spans, turns, dialogues = [], [], []
    vad = (min_speech, max_segment, min_silence, vad_threshold)
    for item in paths:
        found, checked, utts = _recording_utterances(
            recognizer, item, progressbar, on_error, *vad
        )
        spans.append(found)
        turns.append(checked)
        dialogues.append(utts)
    results = []
    logits = recognizer._read_conversations(dialogues, batch_size)
    for d, (found, rows) in enumerate(zip(spans, logits)):
        segments = []
        preds = recognizer._with_skipped(turns[d], rows)
        for (lo, hi), pred in zip(found, preds):
            segments.append(
                Segment(
                    lo / SAMPLE_RATE,
                    hi / SAMPLE_RATE,
                    pred.label,
                    pred.probs,
                    pred.error,
                )
            )
        if csv_paths is not None and csv_paths[d] is not None:
            write_segments_csv(csv_paths[d], segments, recognizer.emotions)
        results.append(segments)
    return results[0] if single else results


def _recording_utterances(
    recognizer,
    path,
    progressbar,
    on_error,
    min_speech,
    max_segment,
    min_silence,
    threshold,
):
    """A recording's speech spans (samples), each span's checked
    waveform or error message (``on_error="skip"``), and the
    utterances of the good ones."""
    from tqdm import tqdm

    wav = read_audio_16k(path, allow_silence=True)
    spans = []
    if float(wav.abs().max()) >= SILENCE_PEAK:
        spans = recognizer._speech_segments(
            wav, min_speech, max_segment, min_silence, threshold
        )
    if not spans:
        logger.warning("%s: no speech found", os.fspath(path))
    checked = []
    for lo, hi in spans:
        try:
            checked.append(
                check_waveform(
                    wav[lo:hi],
                    f"{os.fspath(path)} at {lo / SAMPLE_RATE:.2f} s",
                )
            )
        except ValueError as err:
            if on_error == "raise":
                raise
            checked.append(str(err))
    good = [x for x in checked if not isinstance(x, str)]
    if len(good) < len(checked):
        logger.warning(
            "%s: left %d of %d segments out of the conversation "
            "(on_error='skip'; marked in the output)",
            os.fspath(path),
            len(checked) - len(good),
            len(checked),
        )
    utts = []
    bar = tqdm(
        total=len(good),
        desc="Segments",
        unit="seg",
        disable=not progressbar,
    )
    # A few segments at a time: the encoder's memory stays bounded.
    size = recognizer.BATCH_SIZE
    for lo in range(0, len(good), size):
        part = good[lo : lo + size]
        utts += recognizer.encode_utterances(part)
        bar.update(len(part))
    bar.close()
    return spans, checked, utts
