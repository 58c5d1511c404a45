"""K-means codebook from 25 Hz frames to unit ids, and the extractor that
applies encoder and codebook to waveforms at inference.

Authors
 * speechbrain_dpm contributors 2026
"""

import hashlib

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
    >>> from speechbrain_dpm.testing import save_tiny_whisper
    >>> from speechbrain_dpm.units import WhisperFrameEncoder
    >>> folder = save_tiny_whisper(getfixture("tmpdir") / "whisper")
    >>> enc = WhisperFrameEncoder(folder, layer=1)
    >>> wavs = torch.randn(2, 16000)
    >>> cb = UnitCodebook(n_units=4, seed=0).fit(enc(wavs)[0].flatten(0, 1))
    >>> extractor = UnitExtractor(enc, cb)
    >>> units, feats, n = extractor(wavs, torch.tensor([1.0, 0.5]))
    >>> units.shape, feats.shape, n.tolist()
    (torch.Size([2, 25]), torch.Size([2, 25, 64]), [25, 13])
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
