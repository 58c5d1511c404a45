"""The recipe's units stage: a per-utterance cache of features and units.

:func:`extract_units` encodes every utterance of the manifests once, fits
the codebook on training-split frames only, and adds a ``"units"`` entry to
the manifests.

Units cache layout (``cache_dir``)::

    feats/<encoder key>/<utt>.pt           {"feats": HalfTensor[n, D]}
    units/<encoder key>-k<K>-<codebook>/<utt>.pt
                                           {"units": LongTensor[n],
                                            "feats": HalfTensor[n, D]}

``<encoder key>`` holds the encoder source and layer, ``<codebook>`` is a
fingerprint of the centroids, so changing the encoder, the layer or the
number of units never reuses stale files. ``<utt>`` is the utterance id plus
a hash of its audio reference.

Authors
 * speechbrain_dpm contributors 2026
"""

import hashlib
import json
import os
import re

import numpy as np
import torch
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.audio import read_audio_16k
from speechbrain_dpm.units.codebook import UnitCodebook

logger = get_logger(__name__)


def _utt_filename(utt_id, wav):
    """Safe file stem: the id plus a hash of the audio reference."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", str(utt_id))[:100]
    ref = json.dumps(wav, sort_keys=True)
    return f"{safe}-{hashlib.sha1(ref.encode()).hexdigest()[:8]}.pt"


def _atomic_save(obj, path):
    """``torch.save`` through a temporary file, so that an interrupted run
    never leaves a truncated cache file behind."""
    tmp = f"{path}.tmp{os.getpid()}"
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _tqdm(iterable, **kwargs):
    """tqdm when available, else the plain iterable."""
    try:
        from tqdm import tqdm
    except ImportError:
        return iterable
    return tqdm(iterable, **kwargs)


def units_manifest_path(manifest_path, suffix="_units"):
    """Path of the manifest that :func:`extract_units` writes.

    Arguments
    ---------
    manifest_path : str
        The input manifest, e.g. ``.../train.json``.
    suffix : str
        Added to the file stem.

    Returns
    -------
    str
        e.g. ``.../train_units.json``.

    Example
    -------
    >>> units_manifest_path("/exp/train.json")
    '/exp/train_units.json'
    """
    stem, ext = os.path.splitext(manifest_path)
    return f"{stem}{suffix}{ext or '.json'}"


def _sample_fit_frames(paths, max_frames, seed):
    """Loads up to ``max_frames`` frames, drawn uniformly without
    replacement (seeded) from the cached feature files ``paths``."""
    counts = []
    for path in paths:
        state = torch.load(path, map_location="cpu", mmap=True)
        counts.append(int(state["feats"].shape[0]))
    total = sum(counts)
    if total <= max_frames:
        picks = None
    else:
        rng = np.random.default_rng(seed)
        picks = np.sort(rng.choice(total, size=max_frames, replace=False))
    chunks, offset = [], 0
    for path, count in zip(paths, counts):
        if picks is None:
            idx = None
        else:
            lo, hi = np.searchsorted(picks, [offset, offset + count])
            idx = picks[lo:hi] - offset
        offset += count
        if idx is not None and len(idx) == 0:
            continue
        feats = torch.load(path, map_location="cpu")["feats"]
        if idx is not None:
            feats = feats[torch.from_numpy(idx)]
        chunks.append(feats.float())
    return torch.cat(chunks) if chunks else torch.zeros(0, 0)


def extract_units(
    manifests,
    encoder,
    codebook_path,
    cache_dir,
    n_units=512,
    fit_split="train",
    max_fit_frames=300_000,
    seed=1234,
    output_suffix="_units",
    progressbar=True,
):
    """Recipe stage: features, codebook and units for every manifest split.

    Pass 1 encodes every utterance that has no cached features (fp16) yet.
    The codebook is then loaded from ``codebook_path`` if it matches (same
    encoder key, ``n_units``, seed, ``max_fit_frames`` and training
    utterances) or fitted on frames of the ``fit_split`` split only and
    saved there. Pass 2 writes ``{"units", "feats"}`` per utterance. Files
    that exist are reused, so a rerun encodes nothing. Every manifest entry
    gets ``"units": <path>``; the updated manifests are written next to the
    inputs as ``<stem><output_suffix>.json`` (see
    :func:`units_manifest_path`). Returns nothing else, so it can run as
    ``run_on_main(extract_units, kwargs=...)`` and every process then reads
    the written manifests.

    Arguments
    ---------
    manifests : dict
        Split name -> manifest JSON path (utt id -> entry with ``"wav"``).
    encoder : WhisperFrameEncoder
        The frame encoder (only called for utterances not cached yet).
    codebook_path : str
        Where the codebook is saved / reused from.
    cache_dir : str
        Root of the units cache (layout in the module docstring).
    n_units : int
        Number of k-means units.
    fit_split : str
        The split whose frames fit the codebook (never valid or test).
    max_fit_frames : int
        At most this many training frames (a seeded random subset) are used
        to fit the codebook.
    seed : int
        Seed of the frame subset and of the k-means.
    output_suffix : str
        Suffix of the written manifests.
    progressbar : bool
        Show tqdm progress bars.

    Returns
    -------
    dict
        Split name -> path of the written manifest.

    Example
    -------
    >>> import soundfile
    >>> from speechbrain_dpm.testing import save_tiny_whisper
    >>> from speechbrain_dpm.units import WhisperFrameEncoder
    >>> tmp = getfixture("tmpdir")
    >>> enc = WhisperFrameEncoder(save_tiny_whisper(tmp / "whisper"), layer=1)
    >>> manifests = {}
    >>> for split in ["train", "test"]:
    ...     wav = str(tmp / f"{split}.wav")
    ...     soundfile.write(wav, 0.1 * torch.randn(16000).numpy(), 16000)
    ...     manifests[split] = str(tmp / f"{split}.json")
    ...     with open(manifests[split], "w") as fout:
    ...         json.dump({f"{split}0": {"wav": wav}}, fout)
    >>> out = extract_units(
    ...     manifests,
    ...     enc,
    ...     str(tmp / "save" / "codebook.ckpt"),
    ...     str(tmp / "units_cache"),
    ...     n_units=4,
    ...     progressbar=False,
    ... )
    >>> out["train"] == units_manifest_path(manifests["train"])
    True
    >>> with open(out["test"]) as fin:
    ...     entry = json.load(fin)["test0"]
    >>> torch.load(entry["units"])["units"].shape
    torch.Size([25])
    """
    if fit_split not in manifests:
        raise ValueError(f"fit_split {fit_split!r} not in {list(manifests)}")
    data = {}
    for split, path in manifests.items():
        with open(path, encoding="utf-8") as fin:
            data[split] = json.load(fin)

    enc_key = encoder.cache_key
    feats_dir = os.path.join(cache_dir, "feats", enc_key)
    os.makedirs(feats_dir, exist_ok=True)
    feat_path = {
        split: {
            utt: os.path.join(feats_dir, _utt_filename(utt, entry["wav"]))
            for utt, entry in entries.items()
        }
        for split, entries in data.items()
    }

    # Pass 1: features of every utterance not cached yet.
    todo = [
        (split, utt)
        for split, entries in data.items()
        for utt in entries
        if not os.path.isfile(feat_path[split][utt])
    ]
    logger.info(
        "Units stage (%s): %d utterances to encode, %d cached",
        enc_key,
        len(todo),
        sum(len(e) for e in data.values()) - len(todo),
    )
    step = max(1, encoder.batch_size)
    batches = [todo[i : i + step] for i in range(0, len(todo), step)]
    for batch in _tqdm(batches, desc="Encoding audio", disable=not progressbar):
        # Manifests were checked when prepared (dataprep.check_audio), which
        # keeps clips of any length: so does the cache (min_seconds=0).
        wavs = [
            read_audio_16k(data[s][u]["wav"], min_seconds=0) for s, u in batch
        ]
        feats = encoder.encode_list(wavs)
        for (split, utt), f in zip(batch, feats):
            _atomic_save({"feats": f.half()}, feat_path[split][utt])

    # Codebook: reuse when it was fitted on the same thing, else refit.
    train_ids = sorted(data[fit_split])
    fit_meta = {
        "encoder": enc_key,
        "fit_split": fit_split,
        "train_ids": hashlib.sha1("\n".join(train_ids).encode()).hexdigest(),
        "max_fit_frames": int(max_fit_frames),
    }
    codebook = None
    if os.path.isfile(codebook_path):
        cached = UnitCodebook.from_file(codebook_path)
        if (
            cached.n_units == n_units
            and cached.seed == seed
            and cached.meta == fit_meta
        ):
            codebook = cached
            logger.info("Reusing codebook %s", codebook_path)
        else:
            logger.info("Codebook %s is stale: refitting", codebook_path)
    if codebook is None:
        paths = [feat_path[fit_split][u] for u in train_ids]
        frames = _sample_fit_frames(paths, max_fit_frames, seed)
        codebook = UnitCodebook(n_units=n_units, seed=seed).fit(frames)
        codebook.meta = fit_meta
        parent = os.path.dirname(os.path.abspath(codebook_path))
        os.makedirs(parent, exist_ok=True)
        codebook.save(codebook_path)

    # Pass 2: units (the directory name carries the codebook fingerprint).
    units_dir = os.path.join(
        cache_dir, "units", f"{enc_key}-k{n_units}-{codebook.fingerprint}"
    )
    os.makedirs(units_dir, exist_ok=True)
    written = {}
    for split, entries in data.items():
        for utt, entry in _tqdm(
            entries.items(),
            desc=f"Units {split}",
            disable=not progressbar,
        ):
            src = feat_path[split][utt]
            dst = os.path.join(units_dir, os.path.basename(src))
            if not os.path.isfile(dst):
                feats = torch.load(src, map_location="cpu")["feats"]
                units = codebook.assign(feats.float())
                _atomic_save({"units": units, "feats": feats}, dst)
            entry["units"] = dst
        out_path = units_manifest_path(manifests[split], output_suffix)
        with open(out_path, "w", encoding="utf-8") as fout:
            json.dump(entries, fout, indent=2)
        written[split] = out_path
    return written
