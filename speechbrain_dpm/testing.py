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


def tiny_llm(hidden_size=32, layers=2, heads=4, vocab_size=64, seed=0):
    """Builds a tiny randomly initialised Llama, for tests and examples.

    Arguments
    ---------
    hidden_size : int
        Model width.
    layers : int
        Number of decoder layers.
    heads : int
        Number of attention heads.
    vocab_size : int
        Size of the (unused) text vocabulary.
    seed : int
        Seed of the initialisation.

    Returns
    -------
    transformers.LlamaForCausalLM
        The model, in eval mode.

    Example
    -------
    >>> llm = tiny_llm()
    >>> llm.config.hidden_size
    32
    """
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        num_key_value_heads=heads,
        max_position_embeddings=4096,
        tie_word_embeddings=True,
    )
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        llm = LlamaForCausalLM(config)
    return llm.eval()
