"""Tiny randomly initialised models for tests, doctests and benchmarks.

Nothing here is used by the pipeline itself: these builders stand in for
the packaged weights (``speechbrain_dpm.assets``) where a test needs a model
of the right shape but no trained one.

Authors
 * speechbrain_dpm contributors 2026
"""

import os

import torch

# The tiny folder and the test signals use the pipeline's rate.
from speechbrain_dpm.audio import SAMPLE_RATE


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


#: Classes of the tiny model folder, in the order of its emotion tokens.
TINY_EMOTIONS = ["neu", "hap", "sad", "ang"]
#: Codebook size of the tiny model folder.
TINY_N_UNITS = 16
#: DPM options of the tiny model folder (small memory, one step per turn).
TINY_STRATEGY_OPTS = {
    "n_context": 40,
    "n_limit": 200,
    "rank": 2,
    "alpha": 4,
    "lr": 0.05,
    "every": 1,
}


def speech_like(seconds, seed=0, f0=150.0, rate=SAMPLE_RATE):
    """A deterministic speech-like signal (harmonics of ``f0``, a 3 Hz
    syllable envelope and a little noise).

    Arguments
    ---------
    seconds : float
        Duration.
    seed : int
        Seed of the noise.
    f0 : float
        Fundamental frequency in Hz.
    rate : int
        Sample rate.

    Returns
    -------
    torch.Tensor
        The 1-D float32 waveform.

    Example
    -------
    >>> speech_like(0.5).shape
    torch.Size([8000])
    """
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * rate)) / rate
    wav = sum(torch.sin(2 * torch.pi * f0 * k * t + k) / k for k in range(1, 6))
    wav = wav * (0.5 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
    noise = torch.randn(t.shape[0], generator=gen)
    return (0.1 * wav + 0.02 * noise).float()


def write_wav(path, wav, rate=SAMPLE_RATE):
    """Writes a ``[T]`` or ``[T, C]`` float waveform as a wav file.

    Arguments
    ---------
    path : str or pathlib.Path
        The file to write.
    wav : torch.Tensor or numpy.ndarray
        The waveform.
    rate : int
        Sample rate.

    Returns
    -------
    str
        ``path``.

    Example
    -------
    >>> path = write_wav(getfixture("tmp_path") / "a.wav", speech_like(1.0))
    >>> path.endswith("a.wav")
    True
    """
    import numpy as np
    import soundfile as sf

    sf.write(str(path), np.asarray(wav, dtype=np.float32), rate)
    return str(path)


def tiny_dialogue(n_turns=4):
    """Utterances of a tiny test conversation: different lengths (from
    1 s, 0.3 s longer each turn) and pitches.

    Arguments
    ---------
    n_turns : int
        Number of utterances.

    Returns
    -------
    list of torch.Tensor
        16 kHz waveforms.

    Example
    -------
    >>> [round(len(wav) / SAMPLE_RATE, 1) for wav in tiny_dialogue(3)]
    [1.0, 1.3, 1.6]
    """
    return [
        speech_like(1.0 + 0.3 * i, seed=10 + i, f0=90 + 35 * i)
        for i in range(n_turns)
    ]


def write_dialogue_wavs(folder, n_turns=4):
    """Writes :func:`tiny_dialogue` as numbered files, ``turn0.wav`` onwards.

    Arguments
    ---------
    folder : str or pathlib.Path
        Where to write them (created).
    n_turns : int
        Number of utterances.

    Returns
    -------
    list of str
        The files, in conversation order.

    Example
    -------
    >>> write_dialogue_wavs(getfixture("tmp_path"), 2)
    ['/.../turn0.wav', '/.../turn1.wav']
    """
    folder = os.path.abspath(str(folder))
    os.makedirs(folder, exist_ok=True)
    return [
        write_wav(os.path.join(folder, f"turn{i}.wav"), wav)
        for i, wav in enumerate(tiny_dialogue(n_turns))
    ]


def tiny_assets(folder):
    """Saves the inputs of a tiny model folder: a tiny random Whisper, a
    tiny random Llama and a codebook fitted on the Whisper's frames.

    Arguments
    ---------
    folder : str or pathlib.Path
        Where to save them (created).

    Returns
    -------
    dict
        Absolute paths: ``whisper`` and ``llm`` (folders), ``codebook``
        (``UnitCodebook.save`` file).

    Example
    -------
    >>> assets = tiny_assets(getfixture("tmp_path"))
    >>> sorted(assets)
    ['codebook', 'llm', 'whisper']
    """
    from speechbrain_dpm.units import UnitCodebook, WhisperFrameEncoder

    root = os.path.abspath(str(folder))
    whisper = save_tiny_whisper(os.path.join(root, "tiny_whisper"))
    llm_dir = os.path.join(root, "tiny_llm")
    tiny_llm(hidden_size=32, layers=2, heads=4).save_pretrained(llm_dir)
    encoder = WhisperFrameEncoder(whisper, layer=1)
    feats = torch.cat(
        encoder.encode_list(
            [speech_like(3, seed=s, f0=100 + 40 * s) for s in range(4)]
        )
    )
    codebook = UnitCodebook(n_units=TINY_N_UNITS, seed=0, n_init=1).fit(feats)
    codebook_path = os.path.join(root, "codebook.ckpt")
    codebook.save(codebook_path)
    return {"whisper": whisper, "llm": llm_dir, "codebook": codebook_path}


def tiny_sllm(
    llm_dir, seed=0, speaker_slots=0, emotion_feedback=False, dtype="float32"
):
    """An EmotionSLLM on the tiny LLM whose trained tensors are all
    non-trivial (random offsets instead of training).

    Arguments
    ---------
    llm_dir : str
        The tiny LLM folder (``tiny_assets(...)["llm"]``).
    seed : int
        Seed of the offsets.
    speaker_slots : int
        ``EmotionSLLM``'s speaker slots.
    emotion_feedback : bool
        ``EmotionSLLM``'s emotion feedback.
    dtype : str
        dtype of the frozen LLM weights.

    Returns
    -------
    speechbrain_dpm.sllm.EmotionSLLM
        The model, in eval mode.

    Example
    -------
    >>> sllm = tiny_sllm(tiny_assets(getfixture("tmp_path"))["llm"])
    >>> sllm.space.n_emotions
    4
    """
    from speechbrain_dpm.llm import load_llm
    from speechbrain_dpm.sllm import EmotionSLLM

    sllm = EmotionSLLM(
        load_llm(llm_dir, dtype=dtype),
        n_units=TINY_N_UNITS,
        n_emotions=len(TINY_EMOTIONS),
        feat_dim=64,
        lora_rank=4,
        lora_alpha=8,
        lora_dropout=0.0,
        speaker_slots=speaker_slots,
        emotion_feedback=emotion_feedback,
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in sllm.trainable_parameters():
            param.add_(0.3 * torch.randn(param.shape, generator=gen))
    return sllm.eval()


def tiny_settings(assets, **extra):
    """Export settings (``export_model_folder``) of the tiny model.

    Arguments
    ---------
    assets : dict
        Output of :func:`tiny_assets`.
    **extra : dict
        Settings that replace or add to the defaults.

    Returns
    -------
    dict
        The settings.

    Example
    -------
    >>> tiny_settings({"whisper": "w", "llm": "l"}, strategy="one_pass")[
    ...     "strategy"]
    'one_pass'
    """
    out = {
        "encoder_source": assets["whisper"],
        "encoder_layer": 1,
        "feat_dim": 64,
        "n_units": TINY_N_UNITS,
        "llm_source": assets["llm"],
        "audio_input": "units+continuous",
        "audio_head": "units",
        "lora_rank": 4,
        "lora_alpha": 8,
        "lora_dropout": 0.0,
        "lora_targets": "all-linear",
        "strategy": "dpm",
        "strategy_opts": dict(TINY_STRATEGY_OPTS),
        "sample_rate": SAMPLE_RATE,
    }
    out.update(extra)
    return out


def tiny_model_folder(folder, assets=None, sllm=None):
    """Exports a tiny model folder that loads like a trained one
    (``DPMEmotionRecognizer.from_hparams(source=folder)``), with random
    weights: for tests and examples of the inference API.

    Arguments
    ---------
    folder : str or pathlib.Path
        The model folder to write.
    assets : dict, optional
        :func:`tiny_assets` to use; by default they are saved in
        ``<folder>_assets`` beside the model folder.
    sllm : speechbrain_dpm.sllm.EmotionSLLM, optional
        The model to export (default: :func:`tiny_sllm` on the assets).

    Returns
    -------
    str
        The absolute path of the folder.

    Example
    -------
    >>> folder = tiny_model_folder(getfixture("tmp_path") / "model")
    >>> sorted(os.listdir(folder))
    ['codebook.ckpt', 'custom_interface.py', 'hyperparams.yaml',
     'label_encoder.txt', 'sllm.ckpt']
    """
    from speechbrain_dpm.export import export_model_folder

    folder = os.path.abspath(str(folder))
    if assets is None:
        assets = tiny_assets(folder + "_assets")
    if sllm is None:
        sllm = tiny_sllm(assets["llm"])
    return export_model_folder(
        folder, sllm, assets["codebook"], TINY_EMOTIONS, tiny_settings(assets)
    )
