"""Tiny randomly initialised models for tests, doctests and benchmarks.

Nothing here is used by the pipeline itself: these builders stand in for
the packaged weights (``speechbrain_dpm.assets``) where a test needs a model
of the right shape but no trained one.

Authors
 * speechbrain_dpm contributors 2026
"""

import os

import torch


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
    >>> from speechbrain_dpm.units import WhisperFrameEncoder
    >>> WhisperFrameEncoder(folder, layer=1).dim
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
