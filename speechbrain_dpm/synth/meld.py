"""The MELD layout writer: a planned corpus as ``MELD.Raw``.

Layout::

    {train,dev,test}_sent_emo.csv
    train/train_splits/dia{D}_utt{U}.mp4
    dev/dev_splits_complete/dia{D}_utt{U}.mp4
    test/output_repeated_splits_test/dia{D}_utt{U}.mp4

The media are mp4 files with AAC audio (16 kHz mono), as ffmpeg writes them
bit-exactly; without ffmpeg they are wav files with the same names.

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import shutil
from pathlib import Path

import numpy as np
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.synth.config import MeldConfig
from speechbrain_dpm.synth.corpora import MELD_COLUMNS, MELD_SPLIT_DIRS
from speechbrain_dpm.synth.planning import plan_meld
from speechbrain_dpm.synth.provenance import (
    GENERATOR_VERSION,
    META_FILE,
    prepare_root,
    write_synthetic_files,
)
from speechbrain_dpm.synth.render import check_espeak, place_times, render_plan

logger = get_logger(__name__)


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


def generate_meld(out_dir, config=None, n_jobs=2, overwrite=False):
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
    config : MeldConfig, optional
        What to generate (default: ``MeldConfig()``).
    n_jobs : int
        Worker processes for synthesis and encoding (the files are the
        same whatever the number).
    overwrite : bool
        Replace a synthetic corpus generated with other parameters.

    Returns
    -------
    Path
        The corpus root.

    Example
    -------
    >>> import tempfile
    >>> config = MeldConfig(n_dialogues=(0, 1, 0), turns=(2, 2))
    >>> root = generate_meld(Path(tempfile.mkdtemp()) / "meld", config)
    >>> media = root / "dev" / "dev_splits_complete"
    >>> (media / "dia0_utt1.mp4").exists()  # ffmpeg from tools/setup.sh
    True
    """
    config = MeldConfig() if config is None else config
    root = Path(out_dir)
    has_ffmpeg = shutil.which("ffmpeg") is not None
    params = {
        "generator": "speechbrain_dpm.synth.generate_meld",
        "version": GENERATOR_VERSION,
        **config.record(),
        "video": bool(config.video) and has_ffmpeg,
        "media": "mp4" if has_ffmpeg else "wav",
    }
    generated = ["train", "dev", "test", META_FILE] + [
        f"{s}_sent_emo.csv" for s in MELD_SPLIT_DIRS
    ]
    if prepare_root(root, params, overwrite, generated, "MELD"):
        return root
    check_espeak()
    if not has_ffmpeg:
        logger.warning(
            "ffmpeg not found: writing MELD media as .wav instead of .mp4"
        )
    cast, dialogues = plan_meld(config)
    ext = ".mp4" if has_ffmpeg else ".wav"
    logger.info(
        "Synthesising %d MELD-style utterances in %d dialogues into %s",
        sum(len(d.utterances) for d in dialogues),
        len(dialogues),
        root,
    )

    def media_file(dialogue, utterance):
        """Where a turn's media go."""
        return (
            root / MELD_SPLIT_DIRS[dialogue.group] / f"{utterance.utt_id}{ext}"
        )

    render_plan(
        dialogues, cast, media_file, n_jobs, has_ffmpeg, bool(config.video)
    )
    rows = {s: [] for s in MELD_SPLIT_DIRS}
    for d in dialogues:
        place_times(d)
        rng = np.random.default_rng([config.seed, 4, len(rows[d.group])])
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
    write_synthetic_files(
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
                "mp4, AAC 16 kHz mono"
                + (" + tiny video" if config.video else "")
                if has_ffmpeg
                else "WAV FALLBACK (ffmpeg missing): .wav instead of .mp4"
            ),
        ],
    )
    return root
