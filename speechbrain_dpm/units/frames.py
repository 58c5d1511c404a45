"""The 25 Hz frame grid of the speech units (one frame per 40 ms).

Whisper's encoder gives one hidden state per 20 ms (50 Hz) of a 30 s
piece; :func:`pool_to_25hz` cuts them to the real audio and averages pairs,
and :func:`n_frames_25hz` says how many frames an utterance gets.
:func:`prosody_features` puts log-F0 and log-energy on the same grid.

Authors
 * speechbrain_dpm contributors 2026
"""

import math

import torch
import torch.nn as nn

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
