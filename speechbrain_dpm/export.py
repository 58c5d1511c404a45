"""Export: the ready-to-use model folder a trained recipe leaves behind.

:func:`export_model_folder` writes a folder that SpeechBrain loads fully
offline, either with ``DPMEmotionRecognizer.from_hparams(source=<folder>)``
or with ``speechbrain.inference.interfaces.foreign_class``. Layout::

    <folder>/hyperparams.yaml     inference hparams (HyperPyYAML)
    <folder>/sllm.ckpt            trained tensors of the SLLM only
    <folder>/codebook.ckpt        k-means centroids of the speech units
    <folder>/label_encoder.txt    CategoricalEncoder, in class order
    <folder>/custom_interface.py  re-exports DPMEmotionRecognizer

The frozen Whisper encoder and LLM are *not* copied: ``hyperparams.yaml``
names them by asset key (rebuilt offline from registry packages by
``speechbrain_dpm.assets``) or by absolute local folder.

Authors
 * speechbrain_dpm developers 2026
"""

import os
import shutil

from speechbrain.utils.logger import get_logger

from speechbrain_dpm.audio import SAMPLE_RATE
from speechbrain_dpm.settings import SLLMSettings

logger = get_logger(__name__)

HPARAMS_FILE = "hyperparams.yaml"
SLLM_FILE = "sllm.ckpt"
CODEBOOK_FILE = "codebook.ckpt"
LABEL_ENCODER_FILE = "label_encoder.txt"
INTERFACE_FILE = "custom_interface.py"

#: What an export adds to the model's settings (``SLLMSettings``).
EXPORT_OPTIONS = ("strategy", "strategy_opts", "sample_rate")
#: The model's settings without which a folder cannot rebuild it.
REQUIRED_SETTINGS = ("encoder_source", "encoder_layer", "llm_source")
#: Every key of an export's settings.
KNOWN_SETTINGS = tuple(SLLMSettings.names()) + EXPORT_OPTIONS

_INTERFACE_CODE = '''"""Interface of a speechbrain_dpm emotion model, for
speechbrain.inference.interfaces.foreign_class (written by
speechbrain_dpm.export.export_model_folder)."""

from speechbrain_dpm.inference import DPMEmotionRecognizer

__all__ = ["DPMEmotionRecognizer"]
'''

_HPARAMS_TEMPLATE = """\
# ############################################################################
# Inference hyperparameters of a speechbrain_dpm emotion model, written by
# speechbrain_dpm.export.export_model_folder. Load it offline with
#   DPMEmotionRecognizer.from_hparams(source=<this folder>)
# or foreign_class(source=<this folder>, pymodule_file="custom_interface.py",
#                  classname="DPMEmotionRecognizer").
# The Whisper encoder and the LLM are named by asset key (built offline by
# speechbrain_dpm.assets) or by absolute local folder; only the trained
# tensors live in this folder.
# ############################################################################

# Where the files below are; from_hparams() overrides it with the folder it
# loads from, so the folder can be moved.
pretrained_path: {pretrained_path}

sample_rate: {sample_rate}
emotions: {emotions}

# The model's settings (speechbrain_dpm.settings.SLLMSettings; llm_dtype is
# the frozen trunk's precision, the trained tensors are float32)
{model_settings}

# Context strategy of classify_dialogue / stream / classify_long_audio
strategy: {strategy}
strategy_opts: {strategy_opts}

frame_encoder: !new:speechbrain_dpm.units.WhisperFrameEncoder
    source: !ref <encoder_source>
    layer: !ref <encoder_layer>

codebook: !new:speechbrain_dpm.units.UnitCodebook
    n_units: !ref <n_units>

llm: !apply:speechbrain_dpm.llm.load_llm
    source: !ref <llm_source>
    num_layers: !ref <llm_layers>
    dtype: !ref <llm_dtype>

sllm: !new:speechbrain_dpm.sllm.EmotionSLLM
    llm: !ref <llm>
{sllm_options}

label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder

modules:
    frame_encoder: !ref <frame_encoder>
    codebook: !ref <codebook>
    sllm: !ref <sllm>

pretrainer: !new:speechbrain.utils.parameter_transfer.Pretrainer
    loadables:
        sllm: !ref <sllm>
        codebook: !ref <codebook>
        label_encoder: !ref <label_encoder>
    # UnitCodebook has no transfer hook: without this, a Pretrainer would
    # fall back on load_state_dict and silently skip the centroids.
    custom_hooks:
        codebook: !name:speechbrain_dpm.units.UnitCodebook.load
    paths:
        sllm: !ref <pretrained_path>/{sllm_file}
        codebook: !ref <pretrained_path>/{codebook_file}
        label_encoder: !ref <pretrained_path>/{label_encoder_file}
"""


def _yaml_value(value):
    """One YAML flow value (plain types only), safely quoted."""
    import yaml

    if isinstance(value, tuple):
        value = list(value)
    text = yaml.safe_dump(value, default_flow_style=True, width=10**6)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[: -len("...")].strip()
    return text


def _portable_source(source):
    """A local folder as an absolute path; an asset key or hub id as is."""
    source = os.fspath(source)
    if os.path.isdir(source):
        return os.path.abspath(source)
    return source


def _lora_targets(targets):
    """The sorted linear names of a ``lora_targets`` value."""
    from speechbrain_dpm.llm import ALL_LINEAR

    if targets == "all-linear":
        targets = ALL_LINEAR
    if isinstance(targets, str):
        targets = [targets]
    return sorted(targets)


def _same_setting(key, given, model):
    """Whether a given export setting agrees with the model's."""
    if key == "lora_targets":
        return _lora_targets(given) == _lora_targets(model)
    if isinstance(model, float) or isinstance(given, float):
        return abs(float(given) - float(model)) < 1e-9
    return given == model


def complete_settings(sllm, settings):
    """The model's settings (``sllm.settings``) completed and checked by
    the export's.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The trained model.
    settings : dict
        See :func:`export_model_folder`.

    Returns
    -------
    dict
        Every key of ``KNOWN_SETTINGS``, sources made portable.

    Raises
    ------
    ValueError
        On an unknown or missing key, or a value that contradicts the
        model (which would make the exported folder unloadable).

    Example
    -------
    >>> from speechbrain_dpm.sllm import EmotionSLLM
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, feat_dim=16, lora_rank=2)
    >>> out = complete_settings(sllm, {"encoder_source": "whisper-tiny.en",
    ...     "encoder_layer": 2, "llm_source": "smollm2-135m"})
    >>> out["n_units"], out["feat_dim"], out["lora_rank"], out["strategy"]
    (8, 16, 2, 'dpm')
    >>> complete_settings(sllm, {**out, "n_units": 9})
    Traceback (most recent call last):
    ...
    ValueError: settings['n_units']=9 contradicts the model (8)
    """
    from speechbrain_dpm.context import strategy_class

    given = dict(settings)
    unknown = sorted(set(given) - set(KNOWN_SETTINGS))
    if unknown:
        raise ValueError(
            f"unknown export settings {unknown}; known: {list(KNOWN_SETTINGS)}"
        )
    model = sllm.settings.to_dict()
    # Without a feature projection, feat_dim is the codebook's (checked by
    # export_model_folder), not the model's.
    unchecked = () if sllm.feat_proj is not None else ("feat_dim",)
    for key, value in model.items():
        if given.get(key) is None:
            given[key] = value
        elif key in unchecked or value is None:
            continue
        elif not _same_setting(key, given[key], value):
            raise ValueError(
                f"settings[{key!r}]={given[key]!r} contradicts the model "
                f"({value!r})"
            )
    missing = [key for key in REQUIRED_SETTINGS if given[key] is None]
    if missing:
        raise ValueError(f"export settings lack {missing}")
    out = SLLMSettings.from_dict({key: given[key] for key in model}).to_dict()
    out["encoder_source"] = _portable_source(out["encoder_source"])
    out["llm_source"] = _portable_source(out["llm_source"])
    out["strategy"] = given.get("strategy") or "dpm"
    strategy_class(out["strategy"])  # fails early on an unknown name
    out["strategy_opts"] = dict(given.get("strategy_opts") or {})
    rate = given.get("sample_rate") or SAMPLE_RATE
    if int(rate) != SAMPLE_RATE:
        raise ValueError(
            f"sample_rate must be {SAMPLE_RATE} (the Whisper encoder's "
            f"rate); got {rate}"
        )
    out["sample_rate"] = SAMPLE_RATE
    return out


def export_model_folder(out_dir, sllm, codebook_path, emotions, settings):
    """Writes a ready-to-use (offline) model folder for inference.

    Files: ``hyperparams.yaml`` (builds ``WhisperFrameEncoder``,
    ``UnitCodebook``, the LLM through ``speechbrain_dpm.llm.load_llm``,
    ``EmotionSLLM``, a ``CategoricalEncoder`` and a ``Pretrainer`` whose
    loadables are named after the files), ``sllm.ckpt`` (``sllm.save``:
    trained tensors only), ``codebook.ckpt`` (a copy), ``label_encoder.txt``
    (classes in the order of ``emotions``) and ``custom_interface.py`` (for
    ``foreign_class``). Local source folders are written as absolute paths;
    asset keys stay keys. Existing files of the folder are overwritten.

    Arguments
    ---------
    out_dir : str
        The folder to write (created if needed).
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The trained model.
    codebook_path : str
        The fitted codebook (``UnitCodebook.save``).
    emotions : list of str
        Class names, in the order of the model's emotion tokens.
    settings : dict
        Keys of ``SLLMSettings``: read from the model (``sllm.settings``)
        when missing, checked against it when given (``encoder_source``,
        ``encoder_layer`` and ``llm_source`` are required, from either);
        ``strategy`` (default ``"dpm"``), ``strategy_opts`` (dict, options
        of that strategy, e.g. ``n_context``, ``n_limit``, ``rank``,
        ``alpha``, ``lr``, ``every``) and ``sample_rate`` (16000).

    Returns
    -------
    str
        The absolute path of the folder.

    Raises
    ------
    ValueError
        If the settings, the codebook or the class list do not match the
        model.

    Example
    -------
    A recipe passes its trained ``hparams["sllm"]``, its
    ``hparams["codebook_path"]`` and asset keys (``"whisper-tiny.en"``,
    ``"smollm2-135m"``); here a tiny random model and tiny local assets:

    >>> from speechbrain_dpm.testing import tiny_assets, tiny_sllm
    >>> assets = tiny_assets(getfixture("tmp_path"))
    >>> export_model_folder(
    ...     getfixture("tmp_path") / "model",
    ...     tiny_sllm(assets["llm"]),
    ...     assets["codebook"],
    ...     ["neu", "hap", "sad", "ang"],
    ...     {"encoder_source": assets["whisper"], "encoder_layer": 1,
    ...      "llm_source": assets["llm"],
    ...      "strategy_opts": {"n_context": 40, "n_limit": 200}},
    ... )
    '/.../model'
    """
    from speechbrain.dataio.encoder import CategoricalEncoder

    from speechbrain_dpm.units import UnitCodebook

    settings = complete_settings(sllm, settings)
    emotions = [str(e) for e in emotions]
    if len(set(emotions)) != len(emotions):
        raise ValueError(f"duplicate class names in {emotions}")
    if len(emotions) != sllm.space.n_emotions:
        raise ValueError(
            f"{len(emotions)} emotions {emotions} for a model with "
            f"{sllm.space.n_emotions} emotion tokens"
        )
    codebook_path = os.fspath(codebook_path)
    if not os.path.isfile(codebook_path):
        raise FileNotFoundError(f"codebook not found: {codebook_path}")
    codebook = UnitCodebook.from_file(codebook_path)
    if codebook.n_units != settings["n_units"] or not codebook.fitted:
        raise ValueError(
            f"codebook {codebook_path} has {codebook.n_units} units "
            f"(fitted: {codebook.fitted}); the model expects "
            f"{settings['n_units']}"
        )
    dim = int(codebook.centroids.shape[1])
    if sllm.feat_proj is not None and dim != settings["feat_dim"]:
        raise ValueError(
            f"codebook {codebook_path} has {dim}-d centroids; the model "
            f"reads {settings['feat_dim']}-d features"
        )
    if sllm.feat_proj is None:
        settings["feat_dim"] = dim

    out_dir = os.path.abspath(os.fspath(out_dir))
    os.makedirs(out_dir, exist_ok=True)
    sllm.save(os.path.join(out_dir, SLLM_FILE))
    target = os.path.join(out_dir, CODEBOOK_FILE)
    if os.path.abspath(codebook_path) != target:
        shutil.copyfile(codebook_path, target)
    encoder = CategoricalEncoder()
    encoder.update_from_iterable(emotions)
    encoder.expect_len(len(emotions))
    encoder.save(os.path.join(out_dir, LABEL_ENCODER_FILE))
    with open(os.path.join(out_dir, INTERFACE_FILE), "w") as fout:
        fout.write(_INTERFACE_CODE)
    names = SLLMSettings.names()
    text = _HPARAMS_TEMPLATE.format(
        pretrained_path=_yaml_value(out_dir),
        sample_rate=settings["sample_rate"],
        emotions=_yaml_value(emotions),
        model_settings="\n".join(
            f"{key}: {_yaml_value(settings[key])}" for key in names
        ),
        strategy=_yaml_value(settings["strategy"]),
        strategy_opts=_yaml_value(settings["strategy_opts"]),
        sllm_options="\n".join(f"    {key}: !ref <{key}>" for key in names),
        sllm_file=SLLM_FILE,
        codebook_file=CODEBOOK_FILE,
        label_encoder_file=LABEL_ENCODER_FILE,
    )
    with open(os.path.join(out_dir, HPARAMS_FILE), "w") as fout:
        fout.write(text)
    logger.info("Exported the inference model folder %s", out_dir)
    return out_dir
