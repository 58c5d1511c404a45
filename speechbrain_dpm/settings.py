"""Settings as data: typed, validated option objects.

A group of options is one dataclass (``Settings``): its fields are the
options, with their types and defaults, so adding an option is one field
there plus its YAML key. A recipe YAML fills the object with ``!new:``
(``key: !ref <key>`` per field, so every key stays a top-level option that
the command line can override); values are checked against the field types
when the object is made, and unknown keys are refused, both with errors that
name the key.

``SLLMSettings`` are the settings of the emotion SLLM: the YAML fills them,
``EmotionSLLM`` stores them (``sllm.settings``), the export writes them to
the model folder's ``hyperparams.yaml`` and
``DPMEmotionRecognizer.from_hparams`` builds the model back from them.

Authors
 * speechbrain_dpm developers 2026
"""

import dataclasses
import typing
from typing import Optional, Union

#: The precisions a frozen LLM trunk may be loaded in (``llm_dtype``).
DTYPE_NAMES = ("float32", "bfloat16", "float16")
#: What the read-out and the audio loss may see (``audio_input``,
#: ``audio_loss_input``).
AUDIO_INPUTS = ("units", "units+continuous")
#: What the audio loss normalises over (``audio_head``).
AUDIO_HEADS = ("units", "full")


def _type_name(kind):
    """A readable name of a field type (``int``, ``int or None``...)."""
    args = typing.get_args(kind)
    if typing.get_origin(kind) is Union:
        return " or ".join(_type_name(a) for a in args)
    return "None" if kind is type(None) else kind.__name__


def _has_type(value, kind):
    """Whether ``value`` fits the field type ``kind`` (an int is a float; a
    bool is not an int; a tuple is a list)."""
    if typing.get_origin(kind) is Union:
        return any(_has_type(value, a) for a in typing.get_args(kind))
    if kind is type(None):
        return value is None
    if kind is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if kind is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if kind is list:
        return isinstance(value, (list, tuple))
    return isinstance(value, kind)


def check_choice(name, value, choices):
    """Raises a ``ValueError`` naming ``name`` if ``value`` is not one of
    ``choices``.

    Example
    -------
    >>> check_choice("audio_head", "all", AUDIO_HEADS)
    Traceback (most recent call last):
    ...
    ValueError: audio_head must be one of ('units', 'full'), got 'all'
    """
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices}, got {value!r}")


@dataclasses.dataclass
class Settings:
    """Base of the option groups: type checks, ``to_dict``, ``from_dict``.

    A subclass declares its options as dataclass fields with types and
    defaults; ``check`` (called at construction) may add checks of
    values.

    Example
    -------
    >>> @dataclasses.dataclass
    ... class Demo(Settings):
    ...     rank: int = 8
    ...     lr: float = 1e-3
    >>> Demo.from_dict({"rank": 4}).to_dict()
    {'rank': 4, 'lr': 0.001}
    >>> Demo.from_dict({"rnak": 4})
    Traceback (most recent call last):
    ...
    ValueError: Demo: unknown option(s) ['rnak']; known: ['rank', 'lr']
    >>> Demo(rank="4")
    Traceback (most recent call last):
    ...
    TypeError: Demo: rank must be int, got '4'
    """

    def __post_init__(self):
        hints = typing.get_type_hints(type(self))
        for field in dataclasses.fields(self):
            value = vars(self)[field.name]
            kind = hints[field.name]
            if not _has_type(value, kind):
                raise TypeError(
                    f"{type(self).__name__}: {field.name} must be "
                    f"{_type_name(kind)}, got {value!r}"
                )
            if isinstance(value, tuple):  # YAML writes lists
                setattr(self, field.name, list(value))
        self.check()

    def check(self):
        """Checks of values beyond their types (none here)."""

    @classmethod
    def names(cls):
        """The option names, in declaration order."""
        return [field.name for field in dataclasses.fields(cls)]

    @classmethod
    def from_dict(cls, values):
        """Makes the object from a dict, refusing unknown keys.

        Arguments
        ---------
        values : dict
            Option name → value; missing options take their defaults.

        Returns
        -------
        Settings
            The checked object.
        """
        unknown = sorted(set(values) - set(cls.names()))
        if unknown:
            raise ValueError(
                f"{cls.__name__}: unknown option(s) {unknown}; known: "
                f"{cls.names()}"
            )
        missing = [
            field.name
            for field in dataclasses.fields(cls)
            if field.name not in values
            and field.default is dataclasses.MISSING
            and field.default_factory is dataclasses.MISSING
        ]
        if missing:
            raise ValueError(f"{cls.__name__}: missing option(s) {missing}")
        return cls(**values)

    def to_dict(self):
        """Option name → value, in declaration order (plain types)."""
        return {name: vars(self)[name] for name in self.names()}

    def replace(self, **changes):
        """A checked copy with some options changed."""
        return type(self).from_dict({**self.to_dict(), **changes})


@dataclasses.dataclass
class SLLMSettings(Settings):
    """The settings of an emotion SLLM: what rebuilds it for inference.

    Arguments
    ---------
    n_units : int
        Unit tokens (the k-means codebook's size).
    n_emotions : int
        Emotion classes (their tokens follow ``<audio_end>``).
    feat_dim : int
        Dimension of the continuous features (ignored for ``units``).
    audio_input : str
        ``units+continuous`` (default) or ``units`` (the paper's setting).
    audio_head : str
        ``units``: the audio loss normalises over the K unit tokens and
        ``<audio_end>`` only; ``full``: over the LLM's whole vocabulary plus
        the new tokens (as in the paper).
    audio_loss_input : str
        What the forward of the audio (next-unit) loss sees, for
        ``units+continuous`` models: ``units`` (default) feeds the unit
        tokens only; ``units+continuous`` the same input as the emotion
        read-out. The continuous features come from a bidirectional
        encoder, so each frame's features already encode the next frames:
        with them, next-unit prediction is mostly read off the input and
        the self-supervised signal (training's L_audio, the memory's
        writes) carries little about the conversation.
    lora_rank : int
        Rank of the fixed LoRA (0: no fixed LoRA).
    lora_alpha : float
        Alpha of the fixed LoRA.
    lora_dropout : float
        Dropout of the fixed LoRA.
    lora_targets : str or list of str
        Linears that carry the fixed LoRA.
    speaker_slots : int
        Speaker tokens: each turn starts with a token naming its speaker
        relative to the dialogue (first, second, ... speaker; see
        ``speechbrain_dpm.sequence.speaker_slots``), so that the context
        tells whose earlier turns are whose. 0: none (the paper's layout).
    emotion_feedback : bool
        Each turn of the context is followed by its emotion token: the gold
        label (with training noise) in training, the model's own prediction
        in evaluation (``speechbrain_dpm.context``), never a gold label.
        Later turns can then read an earlier turn's emotion instead of
        inferring it again from its audio. False: the paper's layout.
    llm_source : str, optional
        The frozen LLM: asset key, local HF folder or hub id (needed to
        export the model).
    llm_layers : int, optional
        Decoder blocks kept (None: read from the given trunk).
    llm_dtype : str, optional
        Precision of the frozen trunk (None: read from the given trunk).
    encoder_source : str, optional
        The Whisper encoder of the units (needed to export the model).
    encoder_layer : int, optional
        Its layer whose frames are the units (needed to export the model).

    Example
    -------
    >>> settings = SLLMSettings(n_units=8, n_emotions=4, lora_rank=2)
    >>> settings.lora_rank, settings.emotion_feedback
    (2, False)
    >>> SLLMSettings(n_units=8, n_emotions=4, emotion_feedback="yes")
    Traceback (most recent call last):
    ...
    TypeError: SLLMSettings: emotion_feedback must be bool, got 'yes'
    """

    n_units: int
    n_emotions: int
    feat_dim: int = 384
    audio_input: str = "units+continuous"
    audio_head: str = "units"
    audio_loss_input: str = "units"
    lora_rank: int = 16
    lora_alpha: float = 16
    lora_dropout: float = 0.05
    lora_targets: Union[str, list] = "all-linear"
    speaker_slots: int = 0
    emotion_feedback: bool = False
    llm_source: Optional[str] = None
    llm_layers: Optional[int] = None
    llm_dtype: Optional[str] = None
    encoder_source: Optional[str] = None
    encoder_layer: Optional[int] = None

    def check(self):
        """Choices of ``audio_input``, ``audio_head``, ``audio_loss_input``
        and ``llm_dtype``; with ``units`` input the audio loss sees units
        too."""
        check_choice("audio_loss_input", self.audio_loss_input, AUDIO_INPUTS)
        check_choice("audio_input", self.audio_input, AUDIO_INPUTS)
        check_choice("audio_head", self.audio_head, AUDIO_HEADS)
        if self.llm_dtype is not None:
            check_choice("llm_dtype", self.llm_dtype, DTYPE_NAMES)
        if self.audio_input == "units":
            self.audio_loss_input = "units"


#: How the outer loss sees the inner steps (``meta_order``).
META_ORDERS = ("first", "second")
#: The optimizers of a memory write (``inner_optimizer``).
INNER_OPTIMIZERS = ("adamw", "sgd")


@dataclasses.dataclass
class DPMAwareOptions(Settings):
    """The options of DPM-aware training (``DPMAwareBrain``; the recipes'
    ``hparams/dpm_aware.yaml`` fills them as ``dpm_aware_training``).

    Arguments
    ---------
    inner_utts : int
        Utterances written into the fresh temporary LoRA of a run.
    outer_utts : int
        Utterances read after them (the outer loss).
    run_stride : int, optional
        Turns between the starts of two runs (None: ``outer_utts``).
    meta_order : str
        ``first``: the adapted weights are constants of the outer loss;
        ``second``: it is differentiated through the inner steps.
    inner_steps : int
        Write steps per inner utterance.
    inner_lr : float
        Learning rate of a write.
    inner_optimizer : str
        ``adamw`` or ``sgd``.
    inner_betas : list of float
        AdamW's betas of a write.
    inner_eps : float
        AdamW's eps of a write.
    inner_weight_decay : float
        Weight decay of a write.
    memory_rank : int
        Rank of the temporary LoRA.
    memory_alpha : float
        Its alpha.
    memory_placement : str or list of str
        The linears (or a preset) that carry it.
    memory_layers : list of int, optional
        Only these decoder blocks (None: all).
    memory_input_proj : bool
        Also on the feature projection.
    memory_shield : bool
        The outer read sees the memory on the context only.
    memory_seed : int
        Seed of the fresh temporary factors.
    dpm_n_context : int
        Context tokens before a written or read utterance.
    dpm_n_limit : int, optional
        Hard bound of a run's windows (None: none).
    outer_audio_weight : float
        Weight of the outer audio loss.

    Example
    -------
    >>> DPMAwareOptions(meta_order="second").stride
    2
    >>> DPMAwareOptions(meta_order="third")
    Traceback (most recent call last):
    ...
    ValueError: meta_order must be one of ('first', 'second'), got 'third'
    """

    inner_utts: int = 4
    outer_utts: int = 2
    run_stride: Optional[int] = None
    meta_order: str = "first"
    inner_steps: int = 1
    inner_lr: float = 1e-3
    inner_optimizer: str = "adamw"
    inner_betas: list = (0.9, 0.999)
    inner_eps: float = 1e-7
    inner_weight_decay: float = 0.0
    memory_rank: int = 8
    memory_alpha: float = 16
    memory_placement: Union[str, list] = "all-linear"
    memory_layers: Optional[list] = None
    memory_input_proj: bool = False
    memory_shield: bool = False
    memory_seed: int = 0
    dpm_n_context: int = 256
    dpm_n_limit: Optional[int] = None
    outer_audio_weight: float = 0.5

    def check(self):
        """Choices of ``meta_order`` and ``inner_optimizer``."""
        check_choice("meta_order", self.meta_order, META_ORDERS)
        check_choice("inner_optimizer", self.inner_optimizer, INNER_OPTIMIZERS)

    @property
    def stride(self):
        """Turns between the starts of two runs."""
        return self.outer_utts if self.run_stride is None else self.run_stride
