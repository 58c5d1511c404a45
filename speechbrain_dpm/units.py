"""25 Hz speech units from a frozen Whisper encoder.

The DPM paper tokenises speech with the CosyVoice2 tokenizer (25 Hz, one
codebook), which is not available here. This module builds the closest
offline equivalent:

1. :class:`WhisperFrameEncoder`: a frozen Whisper encoder (SpeechBrain's HF
   wrapper); the hidden states of a *middle* layer (50 Hz) are cut to the real
   audio length and 2x average-pooled to 25 Hz (one frame per 40 ms).
2. :class:`UnitCodebook`: k-means (scikit-learn ``MiniBatchKMeans``) fitted on
   training-split frames only; maps each frame to a unit id.
3. :func:`extract_units`: the recipe stage. It caches the pooled features and
   the units of every utterance and adds a ``"units"`` entry to the
   manifests.

Why a middle layer and why the continuous features are kept next to the unit
ids: see ``/work/shared/reference/units_probe.md`` (units keep only about
half of the emotion signal of the continuous features).

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
import math
import os
import re

import numpy as np
import torch
import torch.nn as nn
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

SAMPLE_RATE = 16000
# Whisper sees at most 30 s; longer audio is cut into pieces of this size.
CHUNK_SAMPLES = 30 * SAMPLE_RATE
# Samples per encoder frame (50 Hz) and per unit frame (25 Hz).
HOP_50HZ = SAMPLE_RATE // 50
HOP_25HZ = SAMPLE_RATE // 25
# Bump when the pooling/cutting logic changes, so old caches are not reused.
FEATURE_VERSION = "v1"


def n_frames_25hz(n_samples):
    """Number of 25 Hz frames for ``n_samples`` of 16 kHz audio.

    This is ``round(seconds * 25)`` (half rounds up), with at least one frame
    for any non-empty audio.

    Arguments
    ---------
    n_samples : int
        Number of samples at 16 kHz.

    Returns
    -------
    int
        Number of 40 ms frames.

    Example
    -------
    >>> n_frames_25hz(160000), n_frames_25hz(32000), n_frames_25hz(100)
    (250, 50, 1)
    """
    n_samples = int(n_samples)
    if n_samples <= 0:
        return 0
    return max(1, (n_samples + HOP_25HZ // 2) // HOP_25HZ)


def pool_to_25hz(hidden, n_samples):
    """Cuts 50 Hz encoder frames to the real audio and pools them to 25 Hz.

    Only frames that cover real audio are used (Whisper pads every input to
    30 s, and the padding frames must not leak into the features). Pairs of
    50 Hz frames are averaged; when the last 25 Hz frame has a single real
    50 Hz frame, that frame is used alone.

    Arguments
    ---------
    hidden : torch.Tensor
        Encoder hidden states of one piece, [T50, D] (T50 = 1500 for 30 s).
    n_samples : int
        Number of real audio samples in the piece (at most 30 s).

    Returns
    -------
    torch.Tensor
        Pooled features, [n_frames_25hz(n_samples), D].

    Example
    -------
    >>> hidden = torch.arange(1500.0).unsqueeze(1)
    >>> pool_to_25hz(hidden, 3 * 320)[:, 0]  # 60 ms -> 2 frames
    tensor([0.5000, 2.0000])
    """
    n25 = n_frames_25hz(n_samples)
    if n25 == 0:
        return hidden[:0]
    # 50 Hz frames that contain at least one real sample.
    n50_real = min(math.ceil(n_samples / HOP_50HZ), hidden.shape[0])
    n50 = min(2 * n25, n50_real)
    frames = hidden[:n50]
    if n50 < 2 * n25:
        # Odd count: repeat the last real frame instead of reading padding.
        frames = torch.cat([frames, frames[-1:]], dim=0)
    return frames.reshape(n25, 2, -1).mean(dim=1)


def _whisper_class():
    """Returns SpeechBrain's HF Whisper wrapper class (1.1.x or older)."""
    try:
        from speechbrain.integrations.huggingface.whisper import Whisper
    except ImportError:  # speechbrain < 1.1
        from speechbrain.lobes.models.huggingface_transformers.whisper import (
            Whisper,
        )
    return Whisper


def _resolve_source(source):
    """Maps a cache key (``whisper-tiny.en``) or folder to a local folder."""
    if os.path.isdir(source):
        # SpeechBrain needs an absolute local dir (a relative one can be
        # joined twice with the source path).
        return os.path.abspath(source)
    # Imported lazily: assets.py may be written after this module.
    from speechbrain_dpm.assets import resolve_model

    path = resolve_model(source)
    return os.path.abspath(path) if os.path.isdir(path) else path


class WhisperFrameEncoder(nn.Module):
    """Frozen Whisper encoder giving 25 Hz continuous frame features.

    The hidden states of one encoder layer (50 Hz) are cut to the real audio
    and 2x average-pooled to 25 Hz, so an utterance of ``s`` seconds gives
    ``round(25 * s)`` frames. Audio longer than 30 s is split into pieces of
    at most 30 s whose frames are concatenated.

    Arguments
    ---------
    source : str
        A cache key understood by ``speechbrain_dpm.assets.resolve_model``
        (e.g. ``"whisper-tiny.en"``) or a local HF Whisper folder.
    layer : int
        Hidden state to use: 0 is the convolutional front-end output, ``k``
        the output of encoder block ``k``, -1 the last (layer-normed) one.
        A middle layer keeps more prosody (see ``units_probe.md``).
    save_path : str, optional
        Passed to SpeechBrain's wrapper as its download/cache folder.
    device : str
        Device of the encoder.
    batch_size : int
        Number of 30 s pieces encoded at once.
    prune : bool
        If True, drop the encoder blocks above ``layer``: they cannot change
        the selected hidden state, and dropping them halves the cost of a
        middle layer.

    Example
    -------
    >>> enc = WhisperFrameEncoder("whisper-tiny.en")  # doctest: +SKIP
    >>> wavs = torch.randn(2, 16000 * 10)  # doctest: +SKIP
    >>> feats, n = enc(wavs, torch.tensor([1.0, 0.2]))  # doctest: +SKIP
    >>> feats.shape, n.tolist()  # doctest: +SKIP
    (torch.Size([2, 250, 384]), [250, 50])
    """

    def __init__(
        self,
        source="whisper-tiny.en",
        layer=2,
        save_path=None,
        device="cpu",
        batch_size=4,
        prune=True,
    ):
        super().__init__()
        self.source = source
        self.batch_size = int(batch_size)
        local = _resolve_source(source)
        Whisper = _whisper_class()
        self.whisper = Whisper(
            local,
            save_path or "",
            encoder_only=True,
            freeze=True,
            output_all_hiddens=True,
        ).float()
        encoder = self.whisper.model.encoder
        n_blocks = len(encoder.layers)
        if not -(n_blocks + 1) <= layer <= n_blocks:
            raise ValueError(
                f"layer={layer} out of range for {n_blocks} encoder blocks"
            )
        # Normalise so that cache keys of -1 and n_blocks agree.
        self.layer = layer % (n_blocks + 1)
        self.n_blocks = n_blocks
        self.dim = encoder.config.d_model
        if prune and self.layer < n_blocks:
            # Blocks run in sequence, so the ones above the selected layer
            # are dead weight. The final layer norm is applied only to the
            # last block's output, so it goes too.
            # (At least one block is kept: hidden states are recorded by
            # hooks on the blocks, so none at all would record nothing.)
            encoder.layers = encoder.layers[: max(self.layer, 1)]
            encoder.layer_norm = nn.Identity()
        for param in self.parameters():
            param.requires_grad_(False)
        self.eval()
        self.to(device)

    @property
    def cache_key(self):
        """A short string naming the features: source, layer, version."""
        name = os.path.basename(os.path.normpath(str(self.source)))
        name = re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40]
        digest = hashlib.sha1(
            f"{self.source}|{self.layer}|{FEATURE_VERSION}".encode()
        ).hexdigest()[:8]
        return f"{name}-L{self.layer}-{digest}"

    @property
    def device(self):
        """The device of the encoder weights."""
        return next(self.whisper.model.parameters()).device

    def train(self, mode=True):
        """Keeps the encoder in eval mode (it is always frozen).

        Arguments
        ---------
        mode : bool
            Ignored for the encoder; a Brain calls ``train()`` on all modules.

        Returns
        -------
        WhisperFrameEncoder
            self
        """
        super().train(False)
        return self

    @torch.no_grad()
    def encode_pieces(self, pieces):
        """Encodes a list of 1-D waveforms of at most 30 s each.

        Arguments
        ---------
        pieces : list of torch.Tensor
            1-D waveforms at 16 kHz, each at most 30 s long.

        Returns
        -------
        list of torch.Tensor
            25 Hz features, one [n_frames_25hz(len), D] tensor per piece.
        """
        out = []
        device = self.device
        for start in range(0, len(pieces), self.batch_size):
            batch = pieces[start : start + self.batch_size]
            # Log-mel one piece at a time: the wrapper clamps the spectrogram
            # against the max of the whole tensor, which would make an
            # utterance's features depend on its batch mates.
            mels = torch.cat(
                [
                    self.whisper._get_mel(p.to(device).float().unsqueeze(0))
                    for p in batch
                ]
            )
            hiddens = self.whisper.forward_encoder(mels)[self.layer]
            for piece, hidden in zip(batch, hiddens):
                out.append(pool_to_25hz(hidden, piece.shape[0]).float())
        return out

    def encode_list(self, wavs):
        """Encodes a list of 1-D waveforms of any length.

        Arguments
        ---------
        wavs : list of torch.Tensor
            1-D waveforms at 16 kHz.

        Returns
        -------
        list of torch.Tensor
            One [n_frames_25hz(len), D] tensor per waveform (CPU, float32).
        """
        pieces, owner = [], []
        for i, wav in enumerate(wavs):
            # Pieces of 30 s (not a crop): Whisper cannot see more at once.
            for start in range(0, max(wav.shape[0], 1), CHUNK_SAMPLES):
                piece = wav[start : start + CHUNK_SAMPLES]
                if piece.shape[0] > 0:
                    pieces.append(piece)
                    owner.append(i)
        encoded = self.encode_pieces(pieces)
        grouped = [[] for _ in wavs]
        for i, feats in zip(owner, encoded):
            grouped[i].append(feats.cpu())
        return [
            torch.cat(g) if g else torch.zeros(0, self.dim) for g in grouped
        ]

    def forward(self, wavs, wav_lens=None):
        """Computes 25 Hz features for a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms at 16 kHz, [B, T].
        wav_lens : torch.Tensor, optional
            Relative lengths in [0, 1], [B] (SpeechBrain convention).

        Returns
        -------
        feats : torch.Tensor
            Features [B, N, D], zero-padded after each utterance's frames.
        n_frames : torch.Tensor
            LongTensor [B], number of real frames of each utterance.
        """
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        B, T = wavs.shape
        if wav_lens is None:
            lengths = [T] * B
        else:
            lengths = [int(round(float(r) * T)) for r in wav_lens]
        feats = self.encode_list([w[:n] for w, n in zip(wavs, lengths)])
        n_frames = torch.tensor([f.shape[0] for f in feats], dtype=torch.long)
        out = torch.zeros(B, int(n_frames.max()) if B else 0, self.dim)
        for i, f in enumerate(feats):
            out[i, : f.shape[0]] = f
        return out.to(wavs.device), n_frames.to(wavs.device)


@register_checkpoint_hooks
class UnitCodebook(nn.Module):
    """K-means codebook mapping 25 Hz frames to unit ids.

    Fitting uses scikit-learn ``MiniBatchKMeans`` with a fixed seed (same
    seed and data give identical centroids); assignment is a nearest-centroid
    search in torch, so a fitted codebook needs only its centroids. The
    checkpoint hooks let a ``Checkpointer`` or ``Pretrainer`` hold it; keep
    it as its own recoverable (the centroids are a non-persistent buffer).

    Arguments
    ---------
    n_units : int
        Number of units (k-means clusters).
    seed : int
        Random state of the k-means.
    batch_size : int
        Mini-batch size of ``MiniBatchKMeans``.
    max_iter : int
        Maximum number of passes over the data.
    n_init : int
        Number of k-means++ initialisations; the best one is kept.

    Example
    -------
    >>> feats = torch.randn(400, 8)
    >>> codebook = UnitCodebook(n_units=4, seed=0).fit(feats)
    >>> codebook.centroids.shape
    torch.Size([4, 8])
    >>> units = codebook.assign(feats)
    >>> units.shape, units.dtype, int(units.max()) < 4
    (torch.Size([400]), torch.int64, True)
    >>> path = getfixture("tmpdir") / "codebook.ckpt"
    >>> codebook.save(path)
    >>> other = UnitCodebook.from_file(path)
    >>> torch.equal(other.assign(feats), units)
    True
    """

    def __init__(
        self, n_units=512, seed=1234, batch_size=4096, max_iter=100, n_init=3
    ):
        super().__init__()
        self.n_units = int(n_units)
        self.seed = int(seed)
        self.batch_size = int(batch_size)
        self.max_iter = int(max_iter)
        self.n_init = int(n_init)
        # Free-form facts about the fit (encoder key, train ids hash, ...).
        self.meta = {}
        self.register_buffer("centroids", torch.zeros(0, 0), persistent=False)

    @property
    def fitted(self):
        """Whether centroids are available."""
        return self.centroids.shape[0] > 0

    @property
    def fingerprint(self):
        """A short hash of the centroids (changes with any refit)."""
        data = self.centroids.detach().cpu().float().numpy().tobytes()
        return hashlib.sha1(data).hexdigest()[:10]

    def fit(self, feats):
        """Fits the centroids on frames (use training-split frames only).

        Arguments
        ---------
        feats : torch.Tensor or numpy.ndarray
            Frames, [N, D], N >= n_units.

        Returns
        -------
        UnitCodebook
            self, fitted.
        """
        from sklearn.cluster import MiniBatchKMeans

        if isinstance(feats, torch.Tensor):
            feats = feats.detach().cpu().float().numpy()
        feats = np.ascontiguousarray(feats, dtype=np.float32)
        if feats.ndim != 2 or feats.shape[0] < self.n_units:
            raise ValueError(
                f"need [N, D] frames with N >= n_units={self.n_units}, "
                f"got shape {feats.shape}"
            )
        kmeans = MiniBatchKMeans(
            n_clusters=self.n_units,
            random_state=self.seed,
            batch_size=self.batch_size,
            max_iter=self.max_iter,
            n_init=self.n_init,
        )
        kmeans.fit(feats)
        centroids = torch.from_numpy(kmeans.cluster_centers_.astype(np.float32))
        self.centroids = centroids.to(self.centroids.device)
        logger.info(
            "Fitted %d units on %d frames (inertia/frame %.4f)",
            self.n_units,
            feats.shape[0],
            kmeans.inertia_ / feats.shape[0],
        )
        return self

    @torch.no_grad()
    def assign(self, feats, chunk_size=16384):
        """Nearest-centroid unit id of every frame.

        Arguments
        ---------
        feats : torch.Tensor
            Frames, [..., D] (any float dtype).
        chunk_size : int
            Frames per distance computation (bounds the memory).

        Returns
        -------
        torch.Tensor
            LongTensor [...] of unit ids in [0, n_units).
        """
        if not self.fitted:
            raise RuntimeError("UnitCodebook is not fitted or loaded")
        shape = feats.shape[:-1]
        flat = feats.reshape(-1, feats.shape[-1])
        cent = self.centroids.to(flat.device)
        cent_sq = (cent * cent).sum(dim=1)
        out = []
        for start in range(0, flat.shape[0], chunk_size):
            x = flat[start : start + chunk_size].float()
            # ||x - c||^2 up to the constant ||x||^2.
            dist = cent_sq.unsqueeze(0) - 2.0 * x @ cent.T
            out.append(dist.argmin(dim=1))
        units = torch.cat(out) if out else flat.new_zeros(0, dtype=torch.long)
        return units.reshape(shape)

    def forward(self, feats):
        """Same as :meth:`assign`.

        Arguments
        ---------
        feats : torch.Tensor
            Frames, [..., D].

        Returns
        -------
        torch.Tensor
            Unit ids [...].
        """
        return self.assign(feats)

    @mark_as_saver
    def save(self, path):
        """Saves centroids and settings with ``torch.save``.

        Arguments
        ---------
        path : str or path-like
            Destination file.
        """
        torch.save(
            {
                "centroids": self.centroids.detach().cpu(),
                "n_units": self.n_units,
                "seed": self.seed,
                "meta": dict(self.meta),
            },
            str(path),
        )

    @mark_as_transfer
    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Loads what :meth:`save` wrote.

        Arguments
        ---------
        path : str or path-like
            File written by :meth:`save`.
        end_of_epoch : bool
            Unused (checkpoint loader signature).
        """
        del end_of_epoch  # Unused
        state = torch.load(str(path), map_location="cpu", weights_only=True)
        self.n_units = int(state["n_units"])
        self.seed = int(state["seed"])
        self.meta = dict(state.get("meta", {}))
        self.centroids = state["centroids"].float().to(self.centroids.device)

    @classmethod
    def from_file(cls, path):
        """Builds a codebook from a file written by :meth:`save`.

        Arguments
        ---------
        path : str or path-like
            File written by :meth:`save`.

        Returns
        -------
        UnitCodebook
            The loaded codebook.
        """
        codebook = cls()
        codebook.load(path)
        return codebook


class UnitExtractor(nn.Module):
    """Waveforms to (units, continuous features) with a fitted codebook.

    For inference, where no cache exists.

    Arguments
    ---------
    encoder : WhisperFrameEncoder
        The frame encoder.
    codebook : UnitCodebook
        A fitted codebook matching the encoder's features.

    Example
    -------
    >>> enc = WhisperFrameEncoder("whisper-tiny.en")  # doctest: +SKIP
    >>> cb = UnitCodebook.from_file("codebook.ckpt")  # doctest: +SKIP
    >>> units, feats, n = UnitExtractor(enc, cb)(wavs)  # doctest: +SKIP
    """

    def __init__(self, encoder, codebook):
        super().__init__()
        self.encoder = encoder
        self.codebook = codebook

    @torch.no_grad()
    def forward(self, wavs, wav_lens=None):
        """Computes units and features of a padded batch.

        Arguments
        ---------
        wavs : torch.Tensor
            Waveforms at 16 kHz, [B, T].
        wav_lens : torch.Tensor, optional
            Relative lengths, [B].

        Returns
        -------
        units : torch.Tensor
            LongTensor [B, N]; positions past ``n_frames`` hold 0.
        feats : torch.Tensor
            Features [B, N, D], zero-padded.
        n_frames : torch.Tensor
            LongTensor [B], real frames per utterance.
        """
        feats, n_frames = self.encoder(wavs, wav_lens)
        units = self.codebook.assign(feats)
        mask = torch.arange(feats.shape[1], device=units.device)[None, :]
        units = units.masked_fill(mask >= n_frames[:, None], 0)
        return units, feats, n_frames


def load_audio_16k(wav):
    """Reads a manifest ``wav`` entry as a mono 16 kHz 1-D tensor.

    Arguments
    ---------
    wav : str or dict
        A path, or a SpeechBrain ``{"file", "start", "stop"}`` dict (start
        and stop in samples).

    Returns
    -------
    torch.Tensor
        The waveform, [T], float32.
    """
    from speechbrain.dataio.dataio import read_audio, read_audio_info

    path = wav["file"] if isinstance(wav, dict) else wav
    sig = read_audio(wav)
    if sig.dim() == 2:  # [T, C]
        sig = sig.mean(dim=1)
    sr = read_audio_info(path).sample_rate
    if sr != SAMPLE_RATE:
        import torchaudio.functional as AF

        sig = AF.resample(sig, sr, SAMPLE_RATE)
    return sig.float()


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
    >>> enc = WhisperFrameEncoder("whisper-tiny.en")  # doctest: +SKIP
    >>> out = extract_units(
    ...     {"train": "train.json", "test": "test.json"},
    ...     enc,
    ...     "save/codebook.ckpt",
    ...     "units_cache",
    ... )  # doctest: +SKIP
    >>> out["train"]  # doctest: +SKIP
    'train_units.json'
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
        wavs = [load_audio_16k(data[s][u]["wav"]) for s, u in batch]
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


def prosody_features(wav, n_frames=None):
    """Log-F0 and log-energy per 40 ms frame (an optional extra stream).

    F0 comes from ``torchaudio.functional.detect_pitch_frequency``
    (normalised cross-correlation); it is not voicing-aware, so unvoiced
    frames carry a noisy value and only the low-energy ones are easy to
    discard downstream.

    Arguments
    ---------
    wav : torch.Tensor
        1-D waveform at 16 kHz.
    n_frames : int, optional
        Number of output frames; defaults to ``n_frames_25hz(len(wav))`` so
        that it lines up with the units.

    Returns
    -------
    torch.Tensor
        [n_frames, 2]: log F0 (Hz), log RMS energy.

    Example
    -------
    >>> t = torch.arange(16000) / 16000
    >>> pros = prosody_features(torch.sin(2 * torch.pi * 200 * t))
    >>> pros.shape
    torch.Size([25, 2])
    >>> 180 < float(pros[5:20, 0].exp().median()) < 220
    True
    """
    import torchaudio.functional as AF

    wav = wav.float().reshape(-1)
    if n_frames is None:
        n_frames = n_frames_25hz(wav.shape[0])
    if n_frames == 0:
        return torch.zeros(0, 2)
    # Energy: RMS of each 40 ms frame (zero-padded to n_frames frames).
    need = n_frames * HOP_25HZ
    padded = nn.functional.pad(wav, (0, max(0, need - wav.shape[0])))
    frames = padded[:need].reshape(n_frames, HOP_25HZ)
    log_energy = torch.log(frames.pow(2).mean(dim=1) + 1e-8) / 2
    if wav.shape[0] >= 2 * HOP_25HZ:
        f0 = AF.detect_pitch_frequency(
            wav, SAMPLE_RATE, frame_time=0.02, win_length=3, freq_high=500
        )
        # Resample the F0 track (about 50 Hz) onto the n_frames grid.
        f0 = nn.functional.interpolate(
            f0.view(1, 1, -1), size=n_frames, mode="linear"
        ).view(-1)
    else:
        f0 = torch.full((n_frames,), 100.0)
    log_f0 = torch.log(f0.clamp(min=50.0))
    return torch.stack([log_f0, log_energy], dim=1)


def save_tiny_whisper(folder, d_model=64, layers=2, seed=0):
    """Saves a tiny randomly initialised Whisper (for tests and examples).

    The folder loads like a real one (``WhisperFrameEncoder(folder)``):
    HF weights plus the feature extractor's config.

    Arguments
    ---------
    folder : str
        Where to save it (created).
    d_model : int
        Model width (the features' dimension).
    layers : int
        Number of encoder blocks.
    seed : int
        Seed of the initialisation.

    Returns
    -------
    str
        The absolute path of the folder (SpeechBrain needs an absolute one).

    Example
    -------
    >>> folder = save_tiny_whisper(getfixture("tmpdir") / "whisper")
    >>> WhisperFrameEncoder(folder, layer=1).feat_dim  # doctest: +SKIP
    64
    """
    from transformers import (
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperModel,
    )

    folder = os.path.abspath(str(folder))
    config = WhisperConfig(
        d_model=d_model,
        encoder_layers=layers,
        decoder_layers=1,
        encoder_attention_heads=2,
        decoder_attention_heads=2,
        encoder_ffn_dim=2 * d_model,
        decoder_ffn_dim=2 * d_model,
        vocab_size=100,
        num_mel_bins=80,
        max_source_positions=1500,
        max_target_positions=32,
        pad_token_id=0,
        bos_token_id=1,
        eos_token_id=2,
        decoder_start_token_id=1,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        WhisperModel(config).save_pretrained(folder)
    WhisperFeatureExtractor(feature_size=80).save_pretrained(folder)
    return folder
