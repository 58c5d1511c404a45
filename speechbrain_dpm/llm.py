"""The frozen LLM trunk: loading it (first layers, dtype), activation
checkpointing, its trained context window and LoRA adapters injected into
its linears.

``speechbrain_dpm.sllm`` builds the emotion speech-LLM on top of it.

Authors
 * speechbrain_dpm developers 2026
"""

from collections.abc import Sequence
from typing import Optional, Union

import torch

from speechbrain_dpm.settings import DTYPE_NAMES, check_choice

FIXED_ADAPTER = "fixed"
ALL_LINEAR = (
    "q_proj",
    "k_proj",
    "v_proj",
    "o_proj",
    "gate_proj",
    "up_proj",
    "down_proj",
)


DTYPES = dict(zip(DTYPE_NAMES, (torch.float32, torch.bfloat16, torch.float16)))


def resolve_dtype(dtype):
    """The torch dtype named by ``dtype`` (a name of ``DTYPES`` or a dtype).

    Example
    -------
    >>> resolve_dtype("bfloat16")
    torch.bfloat16
    """
    if isinstance(dtype, torch.dtype):
        return dtype
    check_choice("llm_dtype", dtype, sorted(DTYPES))
    return DTYPES[dtype]


def load_llm(
    source, num_layers=None, dtype="float32", gradient_checkpointing=False
):
    """Loads a causal LM from a cache key, a local folder or a hub id.

    Arguments
    ---------
    source : str
        A key of ``speechbrain_dpm.assets`` (e.g. ``smollm2-135m``), a local
        HF folder, or (if the user has hub access) a hub id.
    num_layers : int, optional
        Keep only the first ``num_layers`` decoder blocks (the rest are
        not loaded). A cheaper trunk for CPU-sized experiments; ``None``
        keeps the whole model.
    dtype : str or torch.dtype
        The dtype of the frozen weights: ``float32``, ``bfloat16`` or
        ``float16``. The weights are loaded straight into it (a bfloat16
        checkpoint loaded as bfloat16 never exists in float32). The
        trained parts of ``EmotionSLLM`` and the LoRA adapters stay
        float32 whatever this is.
    gradient_checkpointing : bool
        Recompute each decoder block's activations in the backward pass
        instead of keeping them (HF's non-reentrant checkpointing): only
        the blocks' inputs stay in memory while a training window is
        back-propagated. Active only in train mode; the gradients are the
        same.

    Returns
    -------
    transformers.PreTrainedModel
        The model, in eval mode.

    Example
    -------
    >>> llm = load_llm("smollm2-135m", dtype="bfloat16")
    >>> llm.config.num_hidden_layers, next(llm.parameters()).dtype
    (30, torch.bfloat16)
    >>> load_llm("smollm2-135m", num_layers=2).config.num_hidden_layers
    2
    """
    from transformers import AutoConfig, AutoModelForCausalLM
    from transformers.utils import logging as hf_logging

    from speechbrain_dpm.assets import resolve_model

    path = resolve_model(source)
    config = AutoConfig.from_pretrained(path)
    if num_layers is not None:
        num_layers = int(num_layers)
        if not 1 <= num_layers <= config.num_hidden_layers:
            raise ValueError(
                f"num_layers={num_layers}: {source} has "
                f"{config.num_hidden_layers} decoder layers"
            )
        config.num_hidden_layers = num_layers
        if getattr(config, "layer_types", None):
            config.layer_types = config.layer_types[:num_layers]
    verbosity = hf_logging.get_verbosity()
    if num_layers is not None:
        # The dropped blocks' weights are "unexpected" to the cut model, and
        # transformers would print every one of them as a warning.
        hf_logging.set_verbosity_error()
    try:
        llm = AutoModelForCausalLM.from_pretrained(
            path, config=config, dtype=resolve_dtype(dtype)
        )
    finally:
        hf_logging.set_verbosity(verbosity)
    if gradient_checkpointing:
        enable_checkpointing(llm)
    return llm.eval()


def enable_checkpointing(llm):
    """Turns on HF's (non-reentrant) checkpointing of the decoder blocks.

    Example
    -------
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> llm = enable_checkpointing(tiny_llm())
    >>> llm.model.layers[0].gradient_checkpointing
    True
    """
    kwargs = {"use_reentrant": False}
    if hasattr(llm, "activation_checkpointing_enable"):  # transformers >= 5.x
        llm.activation_checkpointing_enable(
            activation_checkpointing_kwargs=kwargs
        )
    else:
        llm.gradient_checkpointing_enable(gradient_checkpointing_kwargs=kwargs)
    return llm


def disable_checkpointing(llm):
    """Turns HF's checkpointing of the decoder blocks off.

    Returns
    -------
    bool
        Whether it was on.

    Example
    -------
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> disable_checkpointing(enable_checkpointing(tiny_llm()))
    True
    """
    was_on = any(
        getattr(m, "gradient_checkpointing", False) for m in llm.modules()
    )
    if was_on:
        if hasattr(llm, "activation_checkpointing_disable"):
            llm.activation_checkpointing_disable()
        else:
            llm.gradient_checkpointing_disable()
    return was_on


def context_length(llm):
    """The longest window the LLM was trained on (positions), or None.

    Example
    -------
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> context_length(tiny_llm())
    4096
    """
    config = getattr(llm, "config", None)
    return getattr(config, "max_position_embeddings", None)


def check_window(llm, n_tokens, what):
    """Refuses a window longer than the LLM's trained context.

    Arguments
    ---------
    llm : transformers.PreTrainedModel
        The LLM.
    n_tokens : int
        The longest window a setting makes.
    what : str
        The setting, named in the error.

    Raises
    ------
    ValueError
        If ``n_tokens`` exceeds ``max_position_embeddings``.

    Example
    -------
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> check_window(tiny_llm(), 4096, "n_ctx")
    >>> check_window(tiny_llm(), 8192, "n_ctx")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
      ...
    ValueError: n_ctx = 8192 tokens exceeds the LLM's trained context ...
    """
    limit = context_length(llm)
    if limit is not None and n_tokens is not None and n_tokens > limit:
        raise ValueError(
            f"{what} = {n_tokens} tokens exceeds the LLM's trained context "
            f"(max_position_embeddings = {limit}): lower it, or use an LLM "
            "with a longer window"
        )


def tuner_layers(module):
    """Yields the peft tuner layers (LoRA-wrapped linears) of a module.

    Arguments
    ---------
    module : torch.nn.Module
        Any module.

    Yields
    ------
    peft.tuners.tuners_utils.BaseTunerLayer
        Each LoRA-wrapped layer.
    """
    from peft.tuners.tuners_utils import BaseTunerLayer

    for sub in module.modules():
        if isinstance(sub, BaseTunerLayer):
            yield sub


def add_lora_adapter(
    llm,
    name,
    rank,
    alpha,
    dropout=0.0,
    target_modules: Union[str, Sequence[str]] = ALL_LINEAR,
    layers: Optional[Sequence[int]] = None,
):
    """Adds a named LoRA adapter to the linears of an LLM, in place.

    Every adapter already present stays active: peft activates only the
    newest adapter after an injection, which would silently switch the fixed
    LoRA off when the temporary one is added.

    The adapter's weights are float32 whatever the LLM's dtype (peft would
    give them the base layer's): a bfloat16 trunk keeps float32 master
    weights for what is trained, peft casts the LoRA input to float32 and
    the LoRA output back to the trunk's dtype.

    Arguments
    ---------
    llm : transformers.PreTrainedModel
        The model (modified in place).
    name : str
        Adapter name.
    rank : int
        LoRA rank.
    alpha : float
        LoRA alpha (scale = alpha / rank).
    dropout : float
        Dropout on the LoRA input.
    target_modules : str or list of str
        Leaf names of the linears to adapt (``"all-linear"`` for all of the
        attention and MLP projections).
    layers : list of int, optional
        Only adapt these decoder layers.

    Returns
    -------
    list of torch.nn.Parameter
        The parameters of the new adapter.

    Example
    -------
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> llm = tiny_llm()
    >>> params = add_lora_adapter(llm, "fixed", rank=4, alpha=4)
    >>> sum(p.numel() for p in params)
    4352
    """
    import peft

    if target_modules == "all-linear":
        target_modules = ALL_LINEAR
    config = peft.LoraConfig(
        r=rank,
        lora_alpha=alpha,
        lora_dropout=dropout,
        target_modules=list(target_modules),
        layers_to_transform=list(layers) if layers is not None else None,
    )
    # peft warns about several adapters on one model: that is the design here.
    previous = getattr(llm, "peft_config", None)
    if previous is not None:
        del llm.peft_config
    peft.inject_adapter_in_model(config, llm, adapter_name=name)
    if previous is not None:
        llm.peft_config = {**previous, name: config}
    names = sorted(llm.peft_config)
    for layer in tuner_layers(llm):
        layer.set_adapter(names)
    for param in llm.parameters():
        param.requires_grad_(False)
    params = [p for n, p in llm.named_parameters() if f".{name}." in n]
    for param in params:
        if param.dtype != torch.float32:
            param.data = param.data.float()
    return params
