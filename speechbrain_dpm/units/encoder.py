"""Frozen Whisper encoder giving 25 Hz continuous frame features.

The hidden states of a *middle* encoder layer (SpeechBrain's HF Whisper
wrapper, 50 Hz) are cut to the real audio length and 2x average-pooled to
the 25 Hz grid of :mod:`speechbrain_dpm.units.frames`.

Authors
 * speechbrain_dpm contributors 2026
"""

import hashlib
import os
import re

import torch
import torch.nn as nn

from speechbrain_dpm.units.frames import (
    CHUNK_SAMPLES,
    FEATURE_VERSION,
    pool_to_25hz,
)


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
    # Imported lazily: only a source named by asset key needs the cache.
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
    >>> from speechbrain_dpm.testing import save_tiny_whisper
    >>> folder = save_tiny_whisper(getfixture("tmpdir") / "whisper")
    >>> enc = WhisperFrameEncoder(folder, layer=1)  # or "whisper-tiny.en"
    >>> wavs = torch.randn(2, 16000 * 10)
    >>> feats, n = enc(wavs, torch.tensor([1.0, 0.2]))
    >>> feats.shape, n.tolist()
    (torch.Size([2, 250, 64]), [250, 50])
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
