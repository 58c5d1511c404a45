"""Inference: a ready-to-use model folder and its ``Pretrained`` interface.

:func:`export_model_folder` writes what a trained recipe leaves behind for
users: a folder that SpeechBrain loads fully offline, either with
``DPMEmotionRecognizer.from_hparams(source=<folder>)`` or with
``speechbrain.inference.interfaces.foreign_class``. Layout::

    <folder>/hyperparams.yaml     inference hparams (HyperPyYAML)
    <folder>/sllm.ckpt            trained tensors of the SLLM only
    <folder>/codebook.ckpt        k-means centroids of the speech units
    <folder>/label_encoder.txt    CategoricalEncoder, in class order
    <folder>/custom_interface.py  re-exports DPMEmotionRecognizer

The frozen Whisper encoder and LLM are *not* copied: ``hyperparams.yaml``
names them by asset key (rebuilt offline from registry packages by
``speechbrain_dpm.assets``) or by absolute local folder.

:class:`DPMEmotionRecognizer` labels single utterances (utterance-only
context), whole conversations and live streams (with the configured context
strategy, Dynamic Parameter Memory by default), and long recordings cut
into speech segments by silero-vad.

Audio: files are read with soundfile (wav, flac, ogg, mp3; convert m4a/mp4
with ffmpeg), multi-channel audio is downmixed to mono by averaging the
channels, and any sample rate is resampled to 16 kHz. Tensors given
directly must already be 16 kHz mono. Missing or unreadable files, empty
audio, audio shorter than ``MIN_SECONDS``, NaN/infinite samples and
all-silent utterances raise a ``ValueError`` (``FileNotFoundError`` for a
missing file) naming the input. ``classify_dialogue`` and
``classify_long_audio`` take ``on_error="skip"`` to leave such turns out of
the conversation instead, counted in the log and marked in the output.

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import os
import shutil
from dataclasses import dataclass

import torch
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig, LocalStrategy
from speechbrain.utils.logger import get_logger

logger = get_logger(__name__)

SAMPLE_RATE = 16000
HPARAMS_FILE = "hyperparams.yaml"
SLLM_FILE = "sllm.ckpt"
CODEBOOK_FILE = "codebook.ckpt"
LABEL_ENCODER_FILE = "label_encoder.txt"
INTERFACE_FILE = "custom_interface.py"
#: Peak amplitude below which an utterance counts as silent (-80 dBFS).
SILENCE_PEAK = 1e-4
#: Shortest utterance accepted, in seconds (two 40 ms unit frames); shorter
#: audio (e.g. a truncated file) holds no speech to label.
MIN_SECONDS = 0.08
#: What ``on_error`` may be: fail on a bad turn, or leave it out.
ON_ERROR = ("raise", "skip")

REQUIRED_SETTINGS = ("encoder_source", "encoder_layer", "llm_source")
KNOWN_SETTINGS = REQUIRED_SETTINGS + (
    "feat_dim",
    "n_units",
    "llm_layers",
    "llm_dtype",
    "audio_input",
    "audio_head",
    "audio_loss_input",
    "lora_rank",
    "lora_alpha",
    "lora_dropout",
    "lora_targets",
    "speaker_slots",
    "emotion_feedback",
    "strategy",
    "strategy_opts",
    "sample_rate",
)

_INTERFACE_CODE = '''"""Interface of a speechbrain_dpm emotion model, for
speechbrain.inference.interfaces.foreign_class (written by
speechbrain_dpm.inference.export_model_folder)."""

from speechbrain_dpm.inference import DPMEmotionRecognizer

__all__ = ["DPMEmotionRecognizer"]
'''

_HPARAMS_TEMPLATE = """\
# ############################################################################
# Inference hyperparameters of a speechbrain_dpm emotion model, written by
# speechbrain_dpm.inference.export_model_folder. Load it offline with
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

# Speech units (25 Hz Whisper frames -> k-means ids)
encoder_source: {encoder_source}
encoder_layer: {encoder_layer}
feat_dim: {feat_dim}
n_units: {n_units}

# Emotion SLLM
llm_source: {llm_source}
llm_layers: {llm_layers}
llm_dtype: {llm_dtype}  # of the frozen trunk (trained tensors: float32)
audio_input: {audio_input}
audio_head: {audio_head}
audio_loss_input: {audio_loss_input}
lora_rank: {lora_rank}
lora_alpha: {lora_alpha}
lora_dropout: {lora_dropout}
lora_targets: {lora_targets}
speaker_slots: {speaker_slots}  # speaker tokens (0: none)
emotion_feedback: {emotion_feedback}  # own predictions fed back as tokens

# Context strategy of classify_dialogue / stream / classify_long_audio
strategy: {strategy}
strategy_opts: {strategy_opts}

frame_encoder: !new:speechbrain_dpm.units.WhisperFrameEncoder
    source: !ref <encoder_source>
    layer: !ref <encoder_layer>

codebook: !new:speechbrain_dpm.units.UnitCodebook
    n_units: !ref <n_units>

llm: !apply:speechbrain_dpm.sllm.load_llm
    source: !ref <llm_source>
    num_layers: !ref <llm_layers>
    dtype: !ref <llm_dtype>

sllm: !new:speechbrain_dpm.sllm.EmotionSLLM
    llm: !ref <llm>
    n_units: !ref <n_units>
    n_emotions: {n_emotions}
    feat_dim: !ref <feat_dim>
    audio_input: !ref <audio_input>
    audio_head: !ref <audio_head>
    audio_loss_input: !ref <audio_loss_input>
    speaker_slots: !ref <speaker_slots>
    emotion_feedback: !ref <emotion_feedback>
    lora_rank: !ref <lora_rank>
    lora_alpha: !ref <lora_alpha>
    lora_dropout: !ref <lora_dropout>
    lora_targets: !ref <lora_targets>

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


# ---------------------------------------------------------------------------
# Export
# ---------------------------------------------------------------------------


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


def _sllm_settings(sllm):
    """The settings that can be read back from a built EmotionSLLM."""
    from speechbrain_dpm.sllm import FIXED_ADAPTER

    derived = {
        "n_units": sllm.space.n_units,
        "audio_input": sllm.audio_input,
        "audio_head": sllm.audio_head,
        "audio_loss_input": sllm.audio_loss_input,
        "llm_layers": int(sllm.llm.config.num_hidden_layers),
        "llm_dtype": str(sllm.llm.get_input_embeddings().weight.dtype).split(
            "."
        )[-1],
        "speaker_slots": sllm.space.n_speakers,
        "emotion_feedback": sllm.emotion_feedback,
    }
    if sllm.feat_proj is not None:
        derived["feat_dim"] = int(sllm.feat_proj[0].normalized_shape[0])
    config = getattr(sllm.llm, "peft_config", {}).get(FIXED_ADAPTER)
    if config is None:
        derived["lora_rank"] = 0
    else:
        derived["lora_rank"] = int(config.r)
        derived["lora_alpha"] = config.lora_alpha
        derived["lora_dropout"] = float(config.lora_dropout)
        derived["lora_targets"] = sorted(config.target_modules)
    return derived


def _same_setting(key, given, derived):
    """Whether a user setting agrees with the value read from the model."""
    from speechbrain_dpm.sllm import ALL_LINEAR

    if key == "lora_targets":
        if given == "all-linear":
            given = ALL_LINEAR
        if isinstance(given, str):
            given = [given]
        return sorted(given) == sorted(derived)
    if isinstance(derived, float) or isinstance(given, float):
        return abs(float(given) - float(derived)) < 1e-9
    return given == derived


def complete_settings(sllm, settings):
    """Checks export settings against the model and fills the missing ones.

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

    settings = dict(settings)
    unknown = sorted(set(settings) - set(KNOWN_SETTINGS))
    if unknown:
        raise ValueError(
            f"unknown export settings {unknown}; known: {list(KNOWN_SETTINGS)}"
        )
    missing = [k for k in REQUIRED_SETTINGS if settings.get(k) is None]
    if missing:
        raise ValueError(f"export settings lack {missing}")
    derived = _sllm_settings(sllm)
    for key, value in derived.items():
        given = settings.get(key)
        if given is None:
            settings[key] = value
        elif not _same_setting(key, given, value):
            raise ValueError(
                f"settings[{key!r}]={given!r} contradicts the model ({value!r})"
            )
    settings.setdefault("feat_dim", 384)
    for key, default in (("lora_alpha", 16), ("lora_dropout", 0.0)):
        settings.setdefault(key, default)
    settings.setdefault("lora_targets", "all-linear")
    if settings.get("strategy") is None:
        settings["strategy"] = "dpm"
    strategy_class(settings["strategy"])  # fails early on an unknown name
    settings["strategy_opts"] = dict(settings.get("strategy_opts") or {})
    rate = settings.get("sample_rate") or SAMPLE_RATE
    if int(rate) != SAMPLE_RATE:
        raise ValueError(
            f"sample_rate must be {SAMPLE_RATE} (the Whisper encoder's "
            f"rate); got {rate}"
        )
    settings["sample_rate"] = SAMPLE_RATE
    settings["encoder_source"] = _portable_source(settings["encoder_source"])
    settings["llm_source"] = _portable_source(settings["llm_source"])
    settings["encoder_layer"] = int(settings["encoder_layer"])
    return settings


def export_model_folder(out_dir, sllm, codebook_path, emotions, settings):
    """Writes a ready-to-use (offline) model folder for inference.

    Files: ``hyperparams.yaml`` (builds ``WhisperFrameEncoder``,
    ``UnitCodebook``, the LLM through ``speechbrain_dpm.sllm.load_llm``,
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
        ``encoder_source``, ``encoder_layer``, ``llm_source`` (required);
        ``feat_dim``, ``n_units``, ``audio_input``, ``audio_head``,
        ``lora_rank``, ``lora_alpha``, ``lora_dropout``, ``lora_targets``
        (read from the model when missing, checked against it when given);
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
    >>> export_model_folder(
    ...     "results/IEMOCAP/dpm/1986/model",
    ...     hparams["sllm"],
    ...     hparams["codebook_path"],
    ...     hparams["emotions"],
    ...     {"encoder_source": "whisper-tiny.en", "encoder_layer": 2,
    ...      "llm_source": "smollm2-135m",
    ...      "strategy_opts": {"n_context": 256, "n_limit": 512}},
    ... )  # doctest: +SKIP
    '/.../results/IEMOCAP/dpm/1986/model'
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
    values = {k: _yaml_value(v) for k, v in settings.items()}
    text = _HPARAMS_TEMPLATE.format(
        pretrained_path=_yaml_value(out_dir),
        emotions=_yaml_value(emotions),
        n_emotions=len(emotions),
        sllm_file=SLLM_FILE,
        codebook_file=CODEBOOK_FILE,
        label_encoder_file=LABEL_ENCODER_FILE,
        **values,
    )
    with open(os.path.join(out_dir, HPARAMS_FILE), "w") as fout:
        fout.write(text)
    logger.info("Exported the inference model folder %s", out_dir)
    return out_dir


# ---------------------------------------------------------------------------
# Audio
# ---------------------------------------------------------------------------


def check_waveform(wav, name="audio", allow_silence=False):
    """Checks a 1-D waveform: non-empty, finite, not silent.

    Arguments
    ---------
    wav : torch.Tensor
        1-D waveform.
    name : str
        What to call it in error messages (a file name, ``wavs[2]``...).
    allow_silence : bool
        Do not reject an all-silent waveform.

    Returns
    -------
    torch.Tensor
        The waveform (float32).

    Raises
    ------
    ValueError
        If it is empty, shorter than ``MIN_SECONDS``, has NaN/infinite
        samples or (unless allowed) its peak amplitude is below
        ``SILENCE_PEAK``.

    Example
    -------
    >>> check_waveform(torch.ones(1600)).shape
    torch.Size([1600])
    >>> check_waveform(torch.zeros(1600), "x.wav")
    Traceback (most recent call last):
    ...
    ValueError: x.wav: the audio is silent (peak amplitude 0.0e+00)
    >>> check_waveform(torch.ones(8), "cut.wav")
    Traceback (most recent call last):
    ...
    ValueError: cut.wav: the audio is too short: 0.0005 s (8 samples ...)...s
    """
    wav = torch.as_tensor(wav)
    if wav.dim() != 1:
        raise ValueError(
            f"{name}: expected a 1-D (mono) waveform, got shape "
            f"{tuple(wav.shape)}"
        )
    if wav.numel() == 0:
        raise ValueError(f"{name}: the audio is empty (0 samples)")
    if wav.numel() < MIN_SECONDS * SAMPLE_RATE:
        raise ValueError(
            f"{name}: the audio is too short: "
            f"{wav.numel() / SAMPLE_RATE:.4f} s ({wav.numel()} samples at "
            f"16 kHz), the minimum is {MIN_SECONDS} s"
        )
    wav = wav.float()
    if not bool(torch.isfinite(wav).all()):
        raise ValueError(f"{name}: the audio has NaN or infinite samples")
    peak = float(wav.abs().max())
    if peak < SILENCE_PEAK and not allow_silence:
        raise ValueError(
            f"{name}: the audio is silent (peak amplitude {peak:.1e})"
        )
    return wav


def silero_vad():
    """silero-vad's ``(get_speech_timestamps, load_silero_vad)``, imported
    without its side effect.

    Importing ``silero_vad`` calls ``torch.set_num_threads(1)``, which would
    silently make every later forward of the process single-threaded (the
    DPM steps of ``classify_long_audio`` included): the caller's setting is
    put back.

    Example
    -------
    >>> threads = torch.get_num_threads()
    >>> get_speech_timestamps, load_silero_vad = silero_vad()
    >>> torch.get_num_threads() == threads
    True
    """
    threads = torch.get_num_threads()
    try:
        from silero_vad import get_speech_timestamps, load_silero_vad
    finally:
        torch.set_num_threads(threads)
    return get_speech_timestamps, load_silero_vad


def read_audio_16k(path, allow_silence=False):
    """Reads an audio file as a checked mono 16 kHz waveform.

    Multi-channel audio is averaged to mono; other rates are resampled
    (``torchaudio.functional.resample``).

    Arguments
    ---------
    path : str or path-like
        An audio file soundfile can read (wav, flac, ogg, mp3).
    allow_silence : bool
        Do not reject an all-silent recording.

    Returns
    -------
    torch.Tensor
        1-D float32 waveform at 16 kHz (CPU).

    Raises
    ------
    FileNotFoundError
        If the file does not exist.
    ValueError
        If it cannot be decoded, is empty, has NaN samples or is silent.

    Example
    -------
    >>> read_audio_16k("missing.wav")
    Traceback (most recent call last):
    ...
    FileNotFoundError: audio file not found: missing.wav
    """
    import soundfile as sf

    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"audio file not found: {path}")
    try:
        data, rate = sf.read(path, dtype="float32", always_2d=True)
    except Exception as err:  # soundfile raises several types
        raise ValueError(
            f"cannot read audio file {path}: {err} (formats: wav, flac, ogg, "
            "mp3; convert others with ffmpeg -i IN -ac 1 -ar 16000 OUT.wav)"
        ) from err
    wav = torch.from_numpy(data).mean(dim=1)
    if wav.numel() and rate != SAMPLE_RATE and bool(torch.isfinite(wav).all()):
        import torchaudio.functional as AF

        wav = AF.resample(wav, int(rate), SAMPLE_RATE)
    return check_waveform(wav, path, allow_silence=allow_silence)


# ---------------------------------------------------------------------------
# Interface
# ---------------------------------------------------------------------------


@dataclass
class EmotionPrediction:
    """The emotion of one utterance or segment.

    Unpacks as ``label, probs = prediction``.

    Arguments
    ---------
    label : str
        The most likely class.
    probs : torch.Tensor
        [C] class probabilities (softmax over the emotion tokens).
    index : int
        Index of ``label``.
    score : float
        Probability of ``label``.
    error : str, optional
        Why the input was left out (``on_error="skip"``); then ``label``
        is None, ``probs`` NaN, ``index`` -1 and ``score`` NaN.

    Example
    -------
    >>> pred = EmotionPrediction("hap", torch.tensor([0.2, 0.8]), 1, 0.8)
    >>> label, probs = pred
    >>> label, probs.tolist()
    ('hap', [0.20000000298023224, 0.800000011920929])
    """

    label: str
    probs: torch.Tensor
    index: int
    score: float
    error: str = None

    def __iter__(self):
        return iter((self.label, self.probs))


@dataclass
class Segment:
    """A speech segment of a long recording and its emotion.

    Unpacks as ``start, end, label, probs = segment``.

    Arguments
    ---------
    start : float
        Start time in seconds.
    end : float
        End time in seconds.
    label : str
        The most likely class (None for a skipped segment).
    probs : torch.Tensor
        [C] class probabilities (NaN for a skipped segment).
    error : str, optional
        Why the segment was left out of the conversation
        (``on_error="skip"``).

    Example
    -------
    >>> seg = Segment(1.0, 2.5, "neu", torch.tensor([1.0, 0.0]))
    >>> start, end, label, probs = seg
    >>> end - start
    1.5
    """

    start: float
    end: float
    label: str
    probs: torch.Tensor
    error: str = None

    def __iter__(self):
        return iter((self.start, self.end, self.label, self.probs))


class DPMEmotionRecognizer(Pretrained):
    """Emotion recognition for utterances, conversations and long audio.

    Built from a folder written by :func:`export_model_folder`. Single
    utterances are read alone (utterance-only context); conversations,
    streams and long recordings go through the folder's context strategy
    (``strategy`` / ``strategy_opts`` in ``hyperparams.yaml``; Dynamic
    Parameter Memory by default), whose memory is reset at the start and
    end of each conversation.

    Many conversations at once: each conversation (a dialogue, a long
    recording, a :meth:`stream` session) has its own memory slot, so
    sessions can be open side by side, :meth:`classify_dialogues` reads
    several dialogues as one batch, and :meth:`push_streams` serves the
    pushes of several sessions in one step. ``batch_size`` (default
    ``BATCH_SIZE``) bounds how many conversations are read at once; the
    precision is SpeechBrain's ``run_opts={"precision": "bf16"}``.

    Arguments
    ---------
    *args : tuple
        ``Pretrained`` arguments (``modules``, ``hparams``).
    **kwargs : dict
        ``Pretrained`` keyword arguments (``run_opts``, ``freeze_params``).

    Example
    -------
    >>> model = DPMEmotionRecognizer.from_hparams(
    ...     source="results/IEMOCAP/dpm/1986/model",
    ...     run_opts={"device": "cpu"},
    ... )  # doctest: +SKIP
    >>> out_prob, score, index, text_lab = model.classify_file(
    ...     "a.wav"
    ... )  # doctest: +SKIP
    >>> preds = model.classify_dialogue(["a.wav", "b.wav"])  # doctest: +SKIP
    >>> [p.label for p in preds]  # doctest: +SKIP
    ['neu', 'ang']
    """

    HPARAMS_NEEDED = [
        "emotions",
        "label_encoder",
        "strategy",
        "strategy_opts",
        "sample_rate",
    ]
    MODULES_NEEDED = ["frame_encoder", "codebook", "sllm"]
    #: Conversations read at once by default (benchmarks/README.md).
    BATCH_SIZE = 8

    def __init__(self, *args, **kwargs):
        modules = kwargs.get("modules", args[0] if args else None)
        hparams = kwargs.get("hparams", args[1] if len(args) > 1 else None)
        if hparams is None:
            raise ValueError(
                "DPMEmotionRecognizer needs hparams (load it with "
                "from_hparams(source=<exported folder>))"
            )
        missing = [k for k in self.HPARAMS_NEEDED if k not in hparams]
        if missing:
            raise ValueError(
                f"hyperparams lack {missing}: is this a folder written by "
                "speechbrain_dpm.inference.export_model_folder?"
            )
        missing = [m for m in self.MODULES_NEEDED if m not in (modules or {})]
        if missing:
            raise ValueError(
                f"modules lack {missing} (needed: {self.MODULES_NEEDED})"
            )
        super().__init__(*args, **kwargs)
        from speechbrain_dpm.context import build_strategy

        self.emotions = [str(e) for e in self.hparams.emotions]
        self.label_encoder = self.hparams.label_encoder
        self.label_encoder.expect_len(len(self.emotions))
        self._check_consistency()
        opts = dict(self.hparams.strategy_opts or {})
        opts.setdefault("precision", self.precision)
        self.strategy = build_strategy(
            self.hparams.strategy, self.mods.sllm, **opts
        )
        self.utterance_strategy = build_strategy(
            "utterance",
            self.mods.sllm,
            n_limit=opts.get("n_limit"),
            precision=opts["precision"],
        )
        # Not an attribute: a Module there would become a submodule.
        self._vad_cache = {}

    def _check_consistency(self):
        """Fails clearly when the loaded pieces do not fit together."""
        sllm, codebook = self.mods.sllm, self.mods.codebook
        order = [
            self.label_encoder.ind2lab[i]
            for i in range(len(self.label_encoder))
        ]
        if order != self.emotions:
            raise ValueError(
                f"label encoder classes {order} differ from hparams "
                f"emotions {self.emotions}"
            )
        if len(self.emotions) != sllm.space.n_emotions:
            raise ValueError(
                f"{len(self.emotions)} emotions for a model with "
                f"{sllm.space.n_emotions} emotion tokens"
            )
        if not codebook.fitted or codebook.n_units != sllm.space.n_units:
            raise ValueError(
                f"codebook ({codebook.n_units} units, fitted: "
                f"{codebook.fitted}) does not match the model "
                f"({sllm.space.n_units} units)"
            )
        dim = self.mods.frame_encoder.dim
        if codebook.centroids.shape[1] != dim:
            raise ValueError(
                f"codebook centroids are {codebook.centroids.shape[1]}-d but "
                f"the encoder gives {dim}-d features"
            )
        if int(self.hparams.sample_rate) != SAMPLE_RATE:
            raise ValueError(f"sample_rate must be {SAMPLE_RATE}")

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file=HPARAMS_FILE,
        savedir=None,
        overrides=None,
        fetch_config=None,
        local_strategy=LocalStrategy.SYMLINK,
        **kwargs,
    ):
        """Loads an exported model folder, without network access.

        Network fetching is disabled (``FetchConfig(allow_network=False)``);
        the encoder and LLM are resolved from local folders or the offline
        asset cache. With ``savedir=None`` (default) the files are read in
        place and no link or copy is made anywhere (in particular not in
        the working directory). For a local folder, ``pretrained_path`` is
        set to that folder, so a moved or copied folder loads its own files.

        Arguments
        ---------
        source : str or path-like
            The exported folder (or a hub id already in the local HF cache).
        hparams_file : str
            Name of the hparams file in ``source``.
        savedir : str, optional
            Folder to collect the model files in (symlinks by default).
        overrides : dict, optional
            HyperPyYAML overrides.
        fetch_config : speechbrain.utils.fetching.FetchConfig, optional
            Defaults to ``FetchConfig(allow_network=False)``, plus
            ``overwrite=True`` for a local folder (so a reused ``savedir``
            never keeps stale files).
        local_strategy : speechbrain.utils.fetching.LocalStrategy
            How files are put into ``savedir``.
        **kwargs : dict
            Passed on (e.g. ``run_opts={"device": "cuda:0"}``).

        Returns
        -------
        DPMEmotionRecognizer
            The model, in eval mode.

        Raises
        ------
        FileNotFoundError
            If ``source`` is a folder without ``hparams_file``.

        Example
        -------
        >>> model = DPMEmotionRecognizer.from_hparams(
        ...     "model", run_opts={"device": "cuda:0"})  # doctest: +SKIP
        """
        source = os.fspath(source) if not isinstance(source, str) else source
        overrides = dict(overrides or {})
        local = os.path.isdir(source)
        if local:
            source = os.path.abspath(source)
            if not os.path.isfile(os.path.join(source, hparams_file)):
                raise FileNotFoundError(
                    f"{source} has no {hparams_file}: not a model folder "
                    "written by speechbrain_dpm.inference.export_model_folder"
                )
            overrides.setdefault("pretrained_path", source)
        if fetch_config is None:
            fetch_config = FetchConfig(allow_network=False, overwrite=local)
        return super().from_hparams(
            source=source,
            hparams_file=hparams_file,
            savedir=savedir,
            overrides=overrides,
            fetch_config=fetch_config,
            local_strategy=local_strategy,
            **kwargs,
        )

    # -- audio -------------------------------------------------------------

    def load_audio(self, path, savedir=None):
        """Reads a local audio file as a checked mono 16 kHz waveform.

        Unlike ``Pretrained.load_audio`` nothing is fetched, linked or
        copied (no symlink in the working directory).

        Arguments
        ---------
        path : str or path-like
            The audio file.
        savedir : None
            Unused (``Pretrained`` signature).

        Returns
        -------
        torch.Tensor
            1-D float32 waveform at 16 kHz (CPU).
        """
        del savedir
        return read_audio_16k(path)

    def _as_waveform(self, item, name):
        """A path or a 16 kHz mono tensor as a checked 1-D waveform."""
        if isinstance(item, (str, os.PathLike)):
            return read_audio_16k(item)
        wav = torch.as_tensor(item)
        if wav.dim() == 2 and wav.shape[0] == 1:
            wav = wav[0]
        return check_waveform(wav.detach().cpu(), name)

    def _skipped(self, error):
        """The prediction that marks an input left out (``on_error``)."""
        nan = torch.full((len(self.emotions),), float("nan"))
        return EmotionPrediction(None, nan, -1, float("nan"), error=error)

    def _checked_turns(self, items, on_error):
        """Checked waveforms of a conversation's turns.

        Arguments
        ---------
        items : list of str or torch.Tensor
            The turns (paths or 16 kHz mono tensors).
        on_error : str
            ``raise``: the first bad turn raises. ``skip``: bad turns
            (missing, unreadable, empty, too short, NaN, silent) are left
            out, with a logged count.

        Returns
        -------
        list
            Per turn, a waveform, or the error message of a skipped turn.
        """
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}")
        out = []
        for i, item in enumerate(items):
            try:
                out.append(self._as_waveform(item, f"utterance {i}"))
            except (OSError, ValueError) as err:
                if on_error == "raise":
                    raise
                is_path = isinstance(item, (str, os.PathLike))
                out.append(f"utterance {i}: {err}" if is_path else str(err))
        bad = [x for x in out if isinstance(x, str)]
        if bad:
            logger.warning(
                "left %d of %d turns out of the conversation "
                "(on_error='skip'): %s",
                len(bad),
                len(out),
                "; ".join(bad),
            )
        return out

    @torch.no_grad()
    def encode_utterances(self, wavs, speakers=None, slots=None):
        """Waveforms to utterances of the SLLM's token space.

        Arguments
        ---------
        wavs : list of torch.Tensor
            Checked 1-D waveforms at 16 kHz.
        speakers : list of str, optional
            Speaker of each waveform (kept on the utterances, and the
            source of their speaker tokens if the model has speaker slots).
        slots : list of int, optional
            Speaker slots, if already known (a stream assigns them over
            the whole conversation).

        Returns
        -------
        list of speechbrain_dpm.sequence.Utterance
            Units (and continuous features) + ``<audio_end>`` each.
        """
        from speechbrain_dpm.sequence import make_utterance, speaker_slots

        sllm, codebook = self.mods.sllm, self.mods.codebook
        if not sllm.space.n_speakers:
            slots = [None] * len(wavs)
        elif slots is None:
            names = [str(s) for s in speakers] if speakers else [""] * len(wavs)
            slots = speaker_slots(names, sllm.space.n_speakers)
        feats_list = self.mods.frame_encoder.encode_list(
            [w.to(self.device) for w in wavs]
        )
        with_feats = sllm.feat_proj is not None
        utts = []
        for i, feats in enumerate(feats_list):
            # Training read the features from an fp16 cache: same rounding.
            feats = feats.half().float()
            units = codebook.assign(feats.to(self.device)).cpu()
            speaker = speakers[i] if speakers is not None else ""
            utts.append(
                make_utterance(
                    units,
                    feats if with_feats else None,
                    sllm.space,
                    utt_id=str(i),
                    speaker=str(speaker),
                    speaker_slot=slots[i],
                )
            )
        return utts

    # -- outputs -----------------------------------------------------------

    def _prediction(self, logits):
        """An EmotionPrediction from [C] logits."""
        probs = torch.softmax(logits.float(), dim=-1)
        index = int(probs.argmax())
        return EmotionPrediction(
            self.emotions[index], probs, index, float(probs[index])
        )

    # -- single utterances -------------------------------------------------

    def classify_batch(self, wavs, wav_lens=None):
        """Emotions of single utterances (utterance-only context).

        Arguments
        ---------
        wavs : torch.Tensor
            [B, T] or [T] waveforms at 16 kHz, mono, padded on the right.
        wav_lens : torch.Tensor, optional
            [B] relative lengths in (0, 1] (SpeechBrain convention).

        Returns
        -------
        out_prob : torch.Tensor
            [B, C] class probabilities.
        score : torch.Tensor
            [B] probability of the best class.
        index : torch.Tensor
            [B] index of the best class.
        text_lab : list of str
            [B] best class names.

        Raises
        ------
        ValueError
            If a row is empty, silent or has NaN samples.
        """
        wavs = torch.as_tensor(wavs).detach().cpu()
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wavs.dim() != 2:
            raise ValueError(
                f"wavs must be [B, T] or [T] (16 kHz mono), got shape "
                f"{tuple(wavs.shape)}"
            )
        total = wavs.shape[1]
        if wav_lens is None:
            lengths = [total] * wavs.shape[0]
        else:
            lengths = [int(round(float(r) * total)) for r in wav_lens]
        rows = [
            check_waveform(w[:n], f"wavs[{i}]")
            for i, (w, n) in enumerate(zip(wavs, lengths))
        ]
        logits = self._utterance_logits(self.encode_utterances(rows))
        out_prob = torch.softmax(logits, dim=-1)
        score, index = out_prob.max(dim=-1)
        text_lab = [self.emotions[i] for i in index.tolist()]
        return out_prob, score, index, text_lab

    def _utterance_logits(self, utts):
        """[N, C] logits of utterances read alone (no memory)."""
        return self.utterance_strategy.read_utterances(utts, self.BATCH_SIZE)

    def classify_file(self, path):
        """Emotion of one audio file (utterance-only context).

        Arguments
        ---------
        path : str or path-like
            The audio file (any rate, mono or multi-channel).

        Returns
        -------
        tuple
            ``(out_prob [1, C], score [1], index [1], text_lab [1])``, as
            :meth:`classify_batch`.
        """
        return self.classify_batch(self.load_audio(path).unsqueeze(0))

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`classify_batch`."""
        return self.classify_batch(wavs, wav_lens)

    # -- conversations -----------------------------------------------------

    def classify_dialogue(self, wavs_or_paths, speakers=None, on_error="raise"):
        """Emotions of the utterances of one conversation, in order.

        The utterances go through the configured strategy as one
        conversation; its memory starts empty and is discarded at the end.

        Arguments
        ---------
        wavs_or_paths : list of str or torch.Tensor
            The utterances in order: file paths or 1-D 16 kHz tensors.
        speakers : list of str, optional
            Speaker of each utterance (kept with it; the model does not
            use speaker identities).
        on_error : str
            ``raise`` (default): a bad utterance (missing, unreadable,
            empty, shorter than ``MIN_SECONDS``, NaN, silent) raises.
            ``skip``: it is left out of the conversation (a warning counts
            them) and its prediction is marked (``error``, label None).

        Returns
        -------
        list of EmotionPrediction
            One per utterance (``label, probs = prediction``).
        """
        return self.classify_dialogues(
            [wavs_or_paths], [speakers], on_error=on_error
        )[0]

    def classify_dialogues(
        self, dialogues, speakers=None, batch_size=None, on_error="raise"
    ):
        """Emotions of many conversations, read side by side.

        Each dialogue is one conversation with its own memory; up to
        ``batch_size`` are read at once (continuous batching), and each gets
        the labels it would get alone.

        Arguments
        ---------
        dialogues : list of list of (str or torch.Tensor)
            The conversations, each a list of utterances in order.
        speakers : list of (list of str or None), optional
            Speakers of each dialogue's utterances.
        batch_size : int, optional
            Conversations read at once (default ``BATCH_SIZE``).
        on_error : str
            ``raise`` or ``skip`` (see ``classify_dialogue``).

        Returns
        -------
        list of list of EmotionPrediction
            One list per dialogue.
        """
        if speakers is None:
            speakers = [None] * len(dialogues)
        if len(speakers) != len(dialogues):
            raise ValueError(
                f"{len(speakers)} speaker lists for {len(dialogues)} dialogues"
            )
        turns, encoded = [], []
        for d, (items, names) in enumerate(zip(dialogues, speakers)):
            items = list(items)
            if names is not None and len(names) != len(items):
                raise ValueError(
                    f"dialogue {d}: {len(names)} speakers for {len(items)} "
                    "utterances"
                )
            checked = self._checked_turns(items, on_error)
            good = [i for i, x in enumerate(checked) if not isinstance(x, str)]
            if names is not None:
                names = [names[i] for i in good]
            wavs = [checked[i] for i in good]
            turns.append(checked)
            encoded.append(self.encode_utterances(wavs, names) if wavs else [])
        logits = self._read_conversations(encoded, batch_size)
        return [self._with_skipped(t, rows) for t, rows in zip(turns, logits)]

    def _with_skipped(self, turns, logits):
        """Predictions of the read turns, in place; skipped ones marked."""
        rows = iter(logits)
        return [
            self._skipped(turn)
            if isinstance(turn, str)
            else self._prediction(next(rows))
            for turn in turns
        ]

    def _read_conversations(self, dialogues, batch_size=None):
        """[N_i, C] logits of encoded conversations, read side by side."""
        try:
            return self.strategy.predict_dialogues(
                dialogues, batch_size or self.BATCH_SIZE
            )
        finally:
            self.strategy.clear_records()

    def stream(self):
        """Opens a live conversation: push utterances one at a time.

        Returns
        -------
        StreamSession
            Use as a context manager, or call ``close()`` at the end.

        Example
        -------
        >>> with model.stream() as session:  # doctest: +SKIP
        ...     for wav in utterances:
        ...         label, probs = session.push(wav)
        """
        return StreamSession(self)

    def push_streams(self, pushes):
        """Serves the next utterance of several open sessions in one step.

        Arguments
        ---------
        pushes : list of (StreamSession, wav) or (StreamSession, wav,
            speaker)
            At most one utterance per session.

        Returns
        -------
        list of EmotionPrediction
            In the order of ``pushes``; the same labels as pushing each
            session alone.
        """
        sessions = [p[0] for p in pushes]
        utts = []
        for session, wav, *speaker in pushes:
            if session.recognizer is not self:
                raise ValueError("a session of another recognizer")
            name = f"utterance {session.n_pushed}"
            wav = self._as_waveform(wav, name)
            utts.append(session.encode(wav, speaker[0] if speaker else None))
        return [
            self._prediction(row)
            for row in StreamSession.push_many(sessions, utts)
        ]

    # -- long recordings ---------------------------------------------------

    def _speech_segments(
        self, wav, min_speech, max_segment, min_silence, threshold
    ):
        """silero-vad speech spans, in samples, each ≤ max_segment."""
        get_speech_timestamps, load_silero_vad = silero_vad()
        if "model" not in self._vad_cache:
            self._vad_cache["model"] = load_silero_vad()
        spans = get_speech_timestamps(
            wav,
            self._vad_cache["model"],
            threshold=threshold,
            sampling_rate=SAMPLE_RATE,
            min_speech_duration_ms=int(min_speech * 1000),
            max_speech_duration_s=max_segment,
            min_silence_duration_ms=int(min_silence * 1000),
        )
        limit = int(max_segment * SAMPLE_RATE)
        out = []
        for span in spans:
            start = max(0, int(span["start"]))
            end = min(int(span["end"]), wav.shape[0])
            if end - start < SAMPLE_RATE * max(MIN_SECONDS, min_speech):
                continue
            n_pieces = -(-(end - start) // limit)
            size = -(-(end - start) // n_pieces)
            for lo in range(start, end, size):
                out.append((lo, min(lo + size, end)))
        return out

    def classify_long_audio(
        self,
        path,
        csv_path=None,
        min_speech=0.5,
        max_segment=20.0,
        min_silence=0.3,
        vad_threshold=0.5,
        progressbar=False,
        batch_size=None,
        on_error="raise",
    ):
        """Emotions along long recordings (each a whole conversation).

        silero-vad (bundled weights, offline) finds the speech segments;
        segments longer than ``max_segment`` are cut into equal pieces; the
        segments of a recording are then labelled in order as one
        conversation through the configured strategy. Several recordings
        are read side by side, each with its own memory.

        Arguments
        ---------
        path : str or path-like, or list of them
            The recording(s) (any rate, mono or multi-channel).
        csv_path : str or list of str, optional
            Also write ``start,end,label,score,p_<class>...`` rows there
            (one path per recording).
        min_speech : float
            Shortest kept segment, in seconds.
        max_segment : float
            Longest segment, in seconds (longer speech is split).
        min_silence : float
            Shortest pause that separates two segments, in seconds.
        vad_threshold : float
            silero-vad speech probability threshold.
        progressbar : bool
            Show a tqdm bar over the segments' encoding.
        batch_size : int, optional
            Recordings read at once (default ``BATCH_SIZE``).
        on_error : str
            ``raise`` (default): a bad segment (shorter than
            ``MIN_SECONDS``, silent, NaN) raises. ``skip``: it is left out
            of the conversation (a warning counts them) and kept in the
            output marked with its ``error`` (the CSV's ``error`` column).
            A recording that cannot be read raises either way.

        Returns
        -------
        list of Segment, or a list of them per recording
            In time order; empty (with a warning, and a CSV with the header
            only) when a recording is silent or has no speech.

        Raises
        ------
        FileNotFoundError
            If a file does not exist.
        ValueError
            If it cannot be read, is empty or has NaN samples, or on bad
            arguments.
        """
        if on_error not in ON_ERROR:
            raise ValueError(f"on_error must be one of {ON_ERROR}")
        if max_segment <= 0 or min_speech < 0 or min_speech > max_segment:
            raise ValueError(
                "need 0 <= min_speech <= max_segment and max_segment > 0, "
                f"got min_speech={min_speech}, max_segment={max_segment}"
            )
        single = isinstance(path, (str, os.PathLike))
        paths = [path] if single else list(path)
        csv_paths = [csv_path] if single else csv_path
        if csv_paths is not None and len(csv_paths) != len(paths):
            raise ValueError(
                f"{len(csv_paths)} CSV paths for {len(paths)} recordings"
            )
        spans, turns, dialogues = [], [], []
        vad = (min_speech, max_segment, min_silence, vad_threshold)
        for item in paths:
            found, checked, utts = self._long_audio_utterances(
                item, progressbar, on_error, *vad
            )
            spans.append(found)
            turns.append(checked)
            dialogues.append(utts)
        results = []
        logits = self._read_conversations(dialogues, batch_size)
        for d, (found, rows) in enumerate(zip(spans, logits)):
            segments = []
            preds = self._with_skipped(turns[d], rows)
            for (lo, hi), pred in zip(found, preds):
                segments.append(
                    Segment(
                        lo / SAMPLE_RATE,
                        hi / SAMPLE_RATE,
                        pred.label,
                        pred.probs,
                        pred.error,
                    )
                )
            if csv_paths is not None and csv_paths[d] is not None:
                write_segments_csv(csv_paths[d], segments, self.emotions)
            results.append(segments)
        return results[0] if single else results

    def _long_audio_utterances(
        self,
        path,
        progressbar,
        on_error,
        min_speech,
        max_segment,
        min_silence,
        threshold,
    ):
        """A recording's speech spans (samples), each span's checked
        waveform or error message (``on_error="skip"``), and the
        utterances of the good ones."""
        from tqdm import tqdm

        wav = read_audio_16k(path, allow_silence=True)
        spans = []
        if float(wav.abs().max()) >= SILENCE_PEAK:
            spans = self._speech_segments(
                wav, min_speech, max_segment, min_silence, threshold
            )
        if not spans:
            logger.warning("%s: no speech found", os.fspath(path))
        checked = []
        for lo, hi in spans:
            try:
                checked.append(
                    check_waveform(
                        wav[lo:hi],
                        f"{os.fspath(path)} at {lo / SAMPLE_RATE:.2f} s",
                    )
                )
            except ValueError as err:
                if on_error == "raise":
                    raise
                checked.append(str(err))
        good = [x for x in checked if not isinstance(x, str)]
        if len(good) < len(checked):
            logger.warning(
                "%s: left %d of %d segments out of the conversation "
                "(on_error='skip'; marked in the output)",
                os.fspath(path),
                len(checked) - len(good),
                len(checked),
            )
        utts = []
        bar = tqdm(
            total=len(good),
            desc="Segments",
            unit="seg",
            disable=not progressbar,
        )
        # A few segments at a time: the encoder's memory stays bounded.
        for lo in range(0, len(good), self.BATCH_SIZE):
            part = good[lo : lo + self.BATCH_SIZE]
            utts += self.encode_utterances(part)
            bar.update(len(part))
        bar.close()
        return spans, checked, utts


def write_segments_csv(csv_path, segments, emotions):
    """Writes segments as ``start,end,label,score,p_<class>...,error`` rows
    (``error``: empty, or why the segment was left out).

    Arguments
    ---------
    csv_path : str
        Destination (parent folders are created).
    segments : list of Segment
        The segments.
    emotions : list of str
        Class names, in probability order.

    Example
    -------
    >>> path = getfixture("tmpdir") / "out.csv"
    >>> seg = Segment(0.5, 1.25, "sad", torch.tensor([0.25, 0.75]))
    >>> write_segments_csv(path, [seg], ["neu", "sad"])
    >>> print(path.read_text("utf-8").strip())
    start,end,label,score,p_neu,p_sad,error
    0.500,1.250,sad,0.7500,0.2500,0.7500,
    """
    csv_path = os.fspath(csv_path)
    parent = os.path.dirname(os.path.abspath(csv_path))
    os.makedirs(parent, exist_ok=True)
    with open(csv_path, "w", newline="", encoding="utf-8") as fout:
        writer = csv.writer(fout)
        writer.writerow(
            ["start", "end", "label", "score"]
            + [f"p_{e}" for e in emotions]
            + ["error"]
        )
        for seg in segments:
            times = [f"{seg.start:.3f}", f"{seg.end:.3f}"]
            if seg.error is not None:
                blank = [""] * (len(emotions) + 1)
                writer.writerow(times + [""] + blank + [seg.error])
                continue
            probs = [float(p) for p in seg.probs]
            writer.writerow(
                times
                + [seg.label, f"{max(probs):.4f}"]
                + [f"{p:.4f}" for p in probs]
                + [""]
            )


class StreamSession:
    """A live conversation with a DPMEmotionRecognizer.

    ``push`` labels the next utterance with everything heard so far in the
    session (the strategy's bounded sliding history and the session's own
    memory slot, so memory use does not grow with the conversation);
    ``close`` discards them. Sessions are context managers; any number can
    be open at once, and ``DPMEmotionRecognizer.push_streams`` serves
    several of them in one step.

    Arguments
    ---------
    recognizer : DPMEmotionRecognizer
        The model.

    Example
    -------
    >>> with model.stream() as session:  # doctest: +SKIP
    ...     pred = session.push("turn1.wav")
    ...     pred.label, pred.probs.shape
    ('neu', torch.Size([4]))
    """

    def __init__(self, recognizer):
        self.recognizer = recognizer
        self.n_pushed = 0
        self.speakers = {}  # distinct speakers, in order of appearance
        self.closed = False
        self.conversation = recognizer.strategy.open()

    def push(self, wav, speaker=None):
        """Labels the next utterance of the conversation.

        Arguments
        ---------
        wav : str or torch.Tensor
            An audio file, or a 1-D 16 kHz mono waveform.
        speaker : str, optional
            Who speaks (any name, consistent within the conversation);
            used by models with speaker slots.

        Returns
        -------
        EmotionPrediction
            ``label, probs = prediction``.
        """
        if self.closed:
            raise RuntimeError("push() on a closed stream session")
        name = f"utterance {self.n_pushed}"
        return self._push(self.recognizer._as_waveform(wav, name), speaker)

    def _push(self, wav, speaker=None):
        """Labels a checked 1-D 16 kHz waveform."""
        (logits,) = self.push_many([self], [self.encode(wav, speaker)])
        return self.recognizer._prediction(logits)

    def encode(self, wav, speaker=None):
        """A checked waveform as this conversation's next utterance."""
        from speechbrain_dpm.sequence import speaker_slots

        if self.closed:
            raise RuntimeError("push() on a closed stream session")
        rec = self.recognizer
        name = "" if speaker is None else str(speaker)
        slots = None
        n_slots = rec.mods.sllm.space.n_speakers
        if n_slots:
            # Slots by first appearance over the whole conversation; only
            # the distinct speakers are kept, so the state stays bounded.
            slots = speaker_slots([*self.speakers, name], n_slots)[-1:]
        if name:
            self.speakers.setdefault(name)
        return rec.encode_utterances([wav], [name], slots)[0]

    @staticmethod
    def push_many(sessions, utts):
        """[B, C] logits of the next utterance of several sessions."""
        if any(s.closed for s in sessions):
            raise RuntimeError("push() on a closed stream session")
        strategy = sessions[0].recognizer.strategy
        convs = [s.conversation for s in sessions]
        logits = strategy.push_many(convs, utts)
        for session in sessions:
            # Per-utterance diagnostics would grow with the call: drop them.
            session.conversation.records.clear()
            session.n_pushed += 1
        return logits

    def close(self):
        """Ends the conversation; its memory and history are discarded."""
        if self.closed:
            return
        self.closed = True
        self.recognizer.strategy.release(self.conversation)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False
