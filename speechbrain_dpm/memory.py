"""Dynamic Parameter Memory (DPM): a temporary LoRA written while listening.

A second peft adapter (``"memory_..."``) sits on top of the frozen LLM and its
trained fixed LoRA. During one conversation it is *written* by gradient
steps on the self-supervised audio next-token loss of each utterance (given
the ``n_r`` tokens before it) and *read* through the usual emotion read-out;
at the end of the conversation it is reset in place, optimizer state and
gradients included, so no conversation leaks into another. Gold emotion
labels never reach a write.

The memory adapter is created once per model and switched off whenever it
is pristine (just reset, B = 0), so a model carrying it computes exactly
what it computed without it, at the same cost.

Diagnostics (``DPMStrategy.records`` and ``summarize_diagnostics``): the
audio loss of each utterance *before* its own write with vs without the
memory (does what was written transfer to new speech?) and the drift of
the emotion read-out caused by each write (right→wrong / wrong→right
flips), by position in the dialogue.

Authors
 * speechbrain_dpm developers 2026
"""

import contextlib
import math
from dataclasses import dataclass
from typing import Optional

import torch
from speechbrain.utils.logger import get_logger
from torch import nn

from speechbrain_dpm.context import SlidingWindow, register
from speechbrain_dpm.sequence import Window
from speechbrain_dpm.sllm import ALL_LINEAR, add_lora_adapter, tuner_layers

logger = get_logger(__name__)

MEMORY_ADAPTER = "memory"
READ_ORDERS = ("after_write", "before_write")


@dataclass
class WriteOutput:
    """What the first forward of a write gives for free.

    Arguments
    ---------
    loss : float or None
        Audio loss of the window's targets before the write's first step
        (None when the window has no target).
    logits : torch.Tensor or None
        [C] emotion logits at the window's last position before the step
        (None when the audio forward is no read-out: see
        ``EmotionSLLM.audio_forward_is_read``).
    """

    loss: Optional[float]
    logits: Optional[torch.Tensor]


def memory_adapter_name(rank, alpha, target_modules, layers=None):
    """The default adapter name of a memory configuration.

    Example
    -------
    >>> memory_adapter_name(8, 16, "all-linear")
    'memory_r8_a16_all'
    >>> memory_adapter_name(4, 0.5, ["v_proj", "q_proj"], layers=[0, 1])
    'memory_r4_a0p5_q_proj-v_proj_l0-1'
    """
    if isinstance(target_modules, str):
        targets = "all" if target_modules == "all-linear" else target_modules
    else:
        targets = "-".join(sorted(target_modules))
    name = f"{MEMORY_ADAPTER}_r{rank}_a{alpha:g}_{targets}"
    if layers is not None:
        name += "_l" + "-".join(str(i) for i in layers)
    # peft keeps adapters in ModuleDicts, whose keys may not hold dots.
    return name.replace(".", "p")


class LoRAMemory:
    """A temporary LoRA over an EmotionSLLM, written by audio-loss steps.

    The adapter is added once (or reused if the model already carries one
    of the same name and rank); ``reset()`` re-initialises it in place (A
    from a generator seeded by ``seed``, B = 0) and empties the optimizer
    state, so every conversation starts from the same state.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model; its own parameters are never modified.
    rank : int
        Rank of the temporary LoRA.
    alpha : float
        LoRA alpha (scale = alpha / rank).
    target_modules : str or list of str
        Linears that carry it (``"all-linear"``: every projection).
    layers : list of int, optional
        Only these decoder layers.
    optimizer : str
        ``adamw`` (Temp-LoRA: betas (0.9, 0.999), eps 1e-7) or ``sgd``.
    lr : float
        Learning rate of the writes. The paper's 5e-5 is for a 7B model;
        small models need larger (tune on validation).
    steps : int
        Gradient steps per written window.
    weight_decay : float
        Weight decay of the optimizer.
    seed : int
        Seed of the initialisation of A.
    read_order : str
        ``after_write`` (paper, default): the utterance is read once the
        memory has been written with it; costs one more forward.
        ``before_write``: the read comes from the first forward of the
        write (one forward serves both), so the read-out only reflects the
        earlier utterances. Used by ``DPMStrategy``.
    betas : tuple of float
        AdamW betas.
    eps : float
        AdamW epsilon.
    max_grad_norm : float, optional
        Clip the memory's gradient norm before each step.
    context_grad : bool
        True (default): a write back-propagates through the whole window.
        False: the context before the written utterance runs once without
        a graph and serves as a key/value cache, so the backward pass
        covers the utterance only (cheaper at large ``n_r``; the gradient
        through the context's keys and values is dropped).
    adapter_name : str, optional
        Name of the peft adapter. Default: one name per configuration
        (``memory_r<rank>_a<alpha>_<targets>[_l<layers>]``), so memories of
        different shapes can share a model, e.g. the rows of one evaluation.

    Example
    -------
    >>> from speechbrain_dpm.sllm import EmotionSLLM, tiny_llm
    >>> from speechbrain_dpm.sequence import context_window, make_utterance
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
    >>> utt = make_utterance(torch.tensor([1, 2, 3]), None, sllm.space)
    >>> window = context_window([], utt, n_context=4)
    >>> with LoRAMemory(sllm, rank=2, lr=1e-2) as memory:
    ...     out = memory.write(window)
    ...     memory.read(window).shape
    torch.Size([4])
    >>> memory.optimizer.state
    defaultdict(<class 'dict'>, {})
    """

    def __init__(
        self,
        sllm,
        rank=8,
        alpha=16,
        target_modules="all-linear",
        layers=None,
        optimizer="adamw",
        lr=1e-3,
        steps=1,
        weight_decay=0.0,
        seed=0,
        read_order="after_write",
        betas=(0.9, 0.999),
        eps=1e-7,
        max_grad_norm=None,
        context_grad=True,
        adapter_name=None,
    ):
        if read_order not in READ_ORDERS:
            raise ValueError(
                f"read_order must be one of {READ_ORDERS}, got {read_order!r}"
            )
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        self.sllm = sllm
        self.name = adapter_name or memory_adapter_name(
            rank, alpha, target_modules, layers
        )
        self.rank = rank
        self.steps = steps
        self.seed = seed
        self.read_order = read_order
        self.max_grad_norm = max_grad_norm
        self.context_grad = context_grad
        self.params = self._adapter(rank, alpha, target_modules, layers)
        # (A, B) per adapted linear, in module order: the seeded
        # re-initialisation must visit them in a fixed order.
        self.layers = [
            layer
            for layer in tuner_layers(sllm.llm)
            if self.name in layer.lora_A
        ]
        self.pairs = [
            (layer.lora_A[self.name].weight, layer.lora_B[self.name].weight)
            for layer in self.layers
        ]
        if optimizer == "adamw":
            self.optimizer = torch.optim.AdamW(
                self.params,
                lr=lr,
                betas=tuple(betas),
                eps=eps,
                weight_decay=weight_decay,
            )
        elif optimizer == "sgd":
            self.optimizer = torch.optim.SGD(
                self.params, lr=lr, weight_decay=weight_decay
            )
        else:
            raise ValueError(f"optimizer must be adamw or sgd: {optimizer!r}")
        self.n_steps = 0
        self.active = True
        self.reset()

    def _adapter(self, rank, alpha, target_modules, layers):
        """Adds the adapter once; reuses one of the same name and rank."""
        llm = self.sllm.llm
        config = getattr(llm, "peft_config", {}).get(self.name)
        if config is not None:
            # A second memory on the same model (e.g. a new strategy per
            # validation): reuse the tensors instead of re-wrapping.
            if target_modules == "all-linear":
                target_modules = ALL_LINEAR
            have = (
                config.r,
                config.lora_alpha,
                sorted(config.target_modules),
                config.layers_to_transform,
            )
            want = (
                rank,
                alpha,
                sorted(target_modules),
                list(layers) if layers is not None else None,
            )
            if have != want:
                raise ValueError(
                    f"the model already has an adapter {self.name!r} with "
                    f"(rank, alpha, targets, layers) = {have}, not {want}: "
                    "use another adapter_name"
                )
            params = [
                p for n, p in llm.named_parameters() if f".{self.name}." in n
            ]
        else:
            # add_lora_adapter freezes the whole LLM, including a fixed
            # LoRA that may be training: put every flag back.
            flags = {p: p.requires_grad for p in self.sllm.parameters()}
            params = add_lora_adapter(
                llm, self.name, rank, alpha, 0.0, target_modules, layers
            )
            for param, flag in flags.items():
                param.requires_grad_(flag)
        for param in params:
            param.requires_grad_(False)
        if not params:
            raise ValueError("the memory adapter adapts no layer")
        return params

    def _set_active(self, active):
        """Switches the memory adapter on or off in every tuner layer."""
        if active == self.active:
            return
        # set_adapter also flips requires_grad of the adapters: keep ours.
        params = list(self.sllm.parameters())
        flags = [p.requires_grad for p in params]
        for layer in self.layers:
            names = [n for n in layer.active_adapters if n != self.name]
            if active:
                names = sorted(names + [self.name])
            layer.set_adapter(names)
        for param, flag in zip(params, flags):
            param.requires_grad_(flag)
        self.active = active

    @contextlib.contextmanager
    def disabled(self):
        """Context in which the model runs without the memory.

        Example
        -------
        >>> from speechbrain_dpm.sllm import EmotionSLLM, tiny_llm
        >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
        >>> memory = LoRAMemory(sllm, rank=2)
        >>> with memory.disabled():
        ...     memory.active
        False
        """
        was_active = self.active
        self._set_active(False)
        try:
            yield self
        finally:
            self._set_active(was_active)

    @torch.no_grad()
    def reset(self):
        """Re-initialises the memory in place; drops optimizer state, grads.

        A is drawn from a generator seeded by ``seed`` (peft's Kaiming
        uniform), B is zero, so the memory starts as an exact no-op and is
        switched off until its first write.
        """
        generator = torch.Generator().manual_seed(self.seed)
        for lora_a, lora_b in self.pairs:
            init = torch.empty(lora_a.shape, dtype=torch.float32)
            nn.init.kaiming_uniform_(init, a=math.sqrt(5), generator=generator)
            lora_a.copy_(init)
            lora_b.zero_()
        for param in self.params:
            param.grad = None
        self.optimizer.state.clear()
        # B = 0: the adapter adds exact zeros; skipping it is free and
        # leaves the model bit-identical to one without a memory.
        self._set_active(False)

    def discard(self):
        """Ends a conversation: the memory is reset (nothing survives)."""
        self.reset()

    def __enter__(self):
        self.reset()
        return self

    def __exit__(self, *exc):
        self.discard()
        return False

    def _inputs(self, window):
        device = self.sllm.token_out.device
        tokens = window.tokens[None].to(device)
        feats = window.feats
        if feats is not None:
            feats = feats[None].to(device)
        return tokens, feats, window.audio_targets[None].to(device)

    @contextlib.contextmanager
    def _eval_mode(self):
        # Writes and reads are inference: no dropout in the fixed LoRA.
        if not self.sllm.training:
            yield
            return
        self.sllm.eval()
        try:
            yield
        finally:
            self.sllm.train()

    def write(self, window):
        """Writes a window into the memory: ``steps`` audio-loss steps.

        The loss is the audio next-token loss of the window's targets
        (``window.audio_targets``); labels are never used. Only the memory
        gets gradients: every other parameter of the SLLM has
        ``requires_grad`` False during the write (restored after) and its
        ``.grad`` is never touched.

        Arguments
        ---------
        window : speechbrain_dpm.sequence.Window
            Context tokens then target tokens.

        Returns
        -------
        WriteOutput
            The loss and the emotion logits at the last position, both
            from the first forward (before any step).

        Example
        -------
        >>> from speechbrain_dpm.sllm import EmotionSLLM, tiny_llm
        >>> from speechbrain_dpm.sequence import context_window
        >>> from speechbrain_dpm.sequence import make_utterance
        >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
        >>> utt = make_utterance(torch.tensor([1, 2, 3]), None, sllm.space)
        >>> memory = LoRAMemory(sllm, rank=2, lr=1e-2)
        >>> out = memory.write(context_window([], utt, 4))
        >>> out.loss > 0, memory.n_steps
        (True, 1)
        """
        if torch.is_inference_mode_enabled():
            raise RuntimeError("LoRAMemory.write cannot run in inference_mode")
        tokens, feats, targets = self._inputs(window)
        has_targets = bool(targets[:, 1:].any())
        grad_from = 0
        if not self.context_grad and has_targets:
            # The last context position predicts the first target: keep it.
            grad_from = max(int(targets[0].nonzero()[0]) - 1, 0)
        sllm_params = list(self.sllm.parameters())
        flags = [p.requires_grad for p in sllm_params]
        first = loss_before = None
        try:
            for param in sllm_params:
                param.requires_grad_(False)
            for param in self.params:
                param.requires_grad_(True)
            self._set_active(True)
            with torch.enable_grad(), self._eval_mode():
                for step in range(self.steps):
                    hidden = self.sllm.audio_hidden_states(
                        tokens, feats, grad_from=grad_from
                    )
                    if step == 0 and self.sllm.audio_forward_is_read:
                        # The pre-step read-out is free here: one row.
                        logits = self.sllm.emotion_logits(hidden[0, -1])
                        first = logits.detach().float().cpu()
                    if not has_targets:
                        break
                    loss = self.sllm.audio_loss(
                        hidden, tokens[:, grad_from:], targets[:, grad_from:]
                    )
                    if step == 0:
                        loss_before = loss.item()
                    loss.backward()
                    if self.max_grad_norm is not None:
                        nn.utils.clip_grad_norm_(
                            self.params, self.max_grad_norm
                        )
                    self.optimizer.step()
                    self.optimizer.zero_grad(set_to_none=True)
                    self.n_steps += 1
        finally:
            for param in self.params:
                param.grad = None
            for param, flag in zip(sllm_params, flags):
                param.requires_grad_(flag)
        return WriteOutput(loss_before, first)

    @torch.no_grad()
    def read(self, window):
        """Emotion logits at the last position of a window.

        Arguments
        ---------
        window : speechbrain_dpm.sequence.Window
            The window; its last token is the ``<audio_end>`` read.

        Returns
        -------
        torch.Tensor
            [C] logits (float, on the CPU).
        """
        tokens, feats, _ = self._inputs(window)
        with self._eval_mode():
            hidden = self.sllm.hidden_states(tokens, feats)
            # Emotion tokens at one position only.
            return self.sllm.emotion_logits(hidden[0, -1]).float().cpu()

    @torch.no_grad()
    def audio_loss(self, window, use_memory=True):
        """Audio loss of a window's targets, with or without the memory.

        Arguments
        ---------
        window : speechbrain_dpm.sequence.Window
            The window.
        use_memory : bool
            False: the memory adapter is switched off for this forward.

        Returns
        -------
        float or None
            Mean nats per target token (None without targets).
        """
        tokens, feats, targets = self._inputs(window)
        if not bool(targets[:, 1:].any()):
            return None
        ctx = contextlib.nullcontext() if use_memory else self.disabled()
        with ctx, self._eval_mode():
            hidden = self.sllm.audio_hidden_states(tokens, feats)
            return self.sllm.audio_loss(hidden, tokens, targets).item()


def _parse_every(every):
    if every is None or every in ("never", "none", 0, "0"):
        return 0
    every = int(every)
    if every < 0:
        raise ValueError(f"every must be >= 0 or 'never', got {every}")
    return every


def _cat(parts):
    parts = [p for p in parts if p is not None]
    return torch.cat(parts) if parts else None


@register("dpm")
class DPMStrategy(SlidingWindow):
    """Sliding window plus a temporary-LoRA memory written per utterance.

    Streaming, O(N) in the conversation: for utterance t, the *write* takes
    ``memory.steps`` steps on the audio loss of t's tokens given the
    ``n_context`` tokens before them, and the *read* is the emotion of t
    in the sliding window (last ``n_context`` tokens + t), after the write
    by default (``read_order``). ``start()`` and ``close()`` reset the
    memory. With ``every=k`` the memory is written after every k-th
    utterance, on all the utterances heard since the last write (so no
    speech is skipped); ``every=0`` never writes and is exactly the
    sliding-window baseline.

    Windows never exceed ``n_limit`` tokens: the tokens to write are cut
    into pieces of at most ``n_limit - n_context`` (aligned on the end, so
    the last piece's window is the read window), each written with its own
    ``n_context`` prefix; the read keeps the last ``n_limit`` tokens.
    ``n_split`` counts the writes that needed several pieces.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    n_context : int
        Context tokens before the utterance (the paper's n_r).
    n_limit : int, optional
        Hard bound of every window (≥ n_max + n_r in the paper); None:
        unbounded, like ``SlidingWindow``.
    every : int or str
        Write after every k-th utterance; 0 or ``"never"``: never.
    memory : LoRAMemory, optional
        A ready memory (then no memory options may be given).
    diagnostics : bool
        Also compute what is not free: the loss without memory, and the
        read-out after the write with ``read_order="before_write"``.
    max_tokens : int, optional
        Ignored (so every strategy takes the same options).
    **memory_kwargs
        Options of ``LoRAMemory`` (rank, alpha, lr, steps, read_order …).

    Example
    -------
    >>> from speechbrain_dpm.context import build_strategy
    >>> from speechbrain_dpm.sllm import EmotionSLLM, tiny_llm
    >>> from speechbrain_dpm.sequence import make_utterance
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
    >>> utts = [make_utterance(torch.tensor([1, 2, i]), None, sllm.space)
    ...         for i in range(3)]
    >>> dpm = build_strategy("dpm", sllm, n_context=4, rank=2, lr=1e-2)
    >>> dpm.predict_dialogue(utts).shape
    torch.Size([3, 4])
    >>> dpm.n_writes, len(dpm.records)
    (3, 3)
    """

    def __init__(
        self,
        sllm,
        n_context=256,
        n_limit=None,
        every=1,
        memory=None,
        diagnostics=False,
        max_tokens=None,
        **memory_kwargs,
    ):
        super().__init__(sllm, n_context=n_context, n_limit=n_limit)
        if n_limit is not None and n_limit <= n_context:
            raise ValueError(
                f"n_limit ({n_limit}) must exceed n_context ({n_context})"
            )
        if memory is not None and memory_kwargs:
            raise ValueError("give either memory= or memory options")
        self.every = _parse_every(every)
        self.memory = memory or LoRAMemory(sllm, **memory_kwargs)
        self.diagnostics = diagnostics
        self.records = []
        self.n_writes = 0
        self.n_split = 0
        self.n_pieces = 0
        self.n_dialogues = 0
        self._start_state()

    def _start_state(self):
        self._ctx_tokens = None
        self._ctx_feats = None
        self._pending = []
        self._position = 0
        self._dialogue_split = 0

    def start(self):
        """Begins a conversation: empty history, fresh memory."""
        super().start()
        self.memory.reset()
        self._start_state()
        self.n_dialogues += 1

    def close(self):
        """Ends the conversation: the memory is discarded."""
        if self._dialogue_split:
            logger.info(
                "DPM: %d write(s) longer than n_limit - n_context = %d "
                "tokens were written in pieces in this conversation",
                self._dialogue_split,
                self.n_limit - self.n_context,
            )
        super().close()
        self.memory.discard()
        self._start_state()

    def clear_records(self):
        """Drops the diagnostics records gathered so far."""
        self.records = []

    def write_windows(self):
        """Windows of the pending utterances, ≤ ``n_limit`` tokens each.

        Returns
        -------
        list of speechbrain_dpm.sequence.Window
            Each: up to ``n_context`` tokens before its piece (context),
            then the piece (audio targets); pieces are aligned on the end.
        """
        utts = self._pending
        tokens = _cat([self._ctx_tokens] + [u.tokens for u in utts])
        feats = None
        if utts[0].feats is not None:
            feats = _cat([self._ctx_feats] + [u.feats for u in utts])
        n_ctx = 0 if self._ctx_tokens is None else len(self._ctx_tokens)
        size = len(tokens) - n_ctx
        piece = size
        if self.n_limit is not None:
            piece = self.n_limit - self.n_context
        windows = []
        for end in range(size, 0, -piece):
            begin = max(end - piece, 0)
            lo = max(n_ctx + begin - self.n_context, 0)
            hi = n_ctx + end
            targets = torch.zeros(hi - lo, dtype=torch.bool)
            targets[n_ctx + begin - lo :] = True
            # The first token of a conversation has no predictor.
            targets[0] = False
            windows.append(
                Window(
                    tokens[lo:hi],
                    None if feats is None else feats[lo:hi],
                    targets,
                    [hi - lo - 1],
                    [-1],  # writes never see a label
                )
            )
        windows.reverse()
        # Context of the next write: the last n_context tokens heard.
        keep = len(tokens) - self.n_context
        self._ctx_tokens = tokens[max(keep, 0) :] if self.n_context else None
        if feats is not None and self.n_context:
            self._ctx_feats = feats[max(keep, 0) :]
        self._pending = []
        return windows

    def push(self, utt):
        """Writes (every ``every`` utterances) and reads ``utt``.

        Arguments
        ---------
        utt : speechbrain_dpm.sequence.Utterance
            The next utterance.

        Returns
        -------
        torch.Tensor
            [C] emotion logits.
        """
        read_window = self.window(utt)
        self._pending.append(utt)
        position = self._position
        self._position += 1
        record = {
            "dialogue": self.n_dialogues,
            "position": position,
            "label": utt.label,  # gold, for the summary only
            "wrote": False,
            "loss_with": None,
            "loss_without": None,
            "p_before": None,
            "p_after": None,
        }
        if self.every == 0 or (position + 1) % self.every:
            # No write: exactly the sliding window.
            logits = self.read(read_window)
            record["p_before"] = record["p_after"] = _probs(logits)
        else:
            logits = self._write_and_read(read_window, record)
        self.records.append(record)
        # Writes memorise what was heard (the pending audio); a fed-back
        # emotion token joins the read windows' history only.
        self.remember(self.feed_back(utt, logits))
        if self.every == 0:
            # Nothing will ever be written: keep no pending tokens.
            self._pending = []
        return logits

    def _write_and_read(self, read_window, record):
        memory = self.memory
        windows = self.write_windows()
        self.n_writes += 1
        self.n_pieces += len(windows)
        if len(windows) > 1:
            self.n_split += 1
            self._dialogue_split += 1
        # One window that is the read window: its first forward gives the
        # read-out before the write for free (if it sees the read's input).
        shared = (
            len(windows) == 1
            and self.sllm.audio_forward_is_read
            and torch.equal(windows[0].tokens, read_window.tokens)
        )
        before = None
        if not shared and (
            memory.read_order == "before_write" or self.diagnostics
        ):
            before = memory.read(read_window)
        if self.diagnostics:
            record["loss_without"] = memory.audio_loss(windows[0], False)
        outs = [memory.write(window) for window in windows]
        record["wrote"] = True
        record["loss_with"] = outs[0].loss
        if shared:
            before = outs[0].logits
        if memory.read_order == "before_write":
            logits = before
            if self.diagnostics:
                record["p_after"] = _probs(memory.read(read_window))
        else:
            logits = memory.read(read_window)
            record["p_after"] = _probs(logits)
        if before is not None:
            record["p_before"] = _probs(before)
        return logits


def _probs(logits):
    return torch.softmax(logits.float(), -1).tolist()


def _bucket(position, edges):
    lower = 0
    for edge in edges:
        if position < edge:
            return f"{lower}" if edge - lower == 1 else f"{lower}-{edge - 1}"
        lower = edge
    return f"{lower}+"


def summarize_diagnostics(records, labels=None, buckets=(1, 2, 4, 8, 16, 32)):
    """Aggregates DPM diagnostics: memory transfer, read-out drift, flips.

    Arguments
    ---------
    records : list of dict
        ``DPMStrategy.records``.
    labels : list of int, optional
        Gold labels aligned with ``records`` (default: their ``label``).
    buckets : tuple of int
        Upper edges of the position buckets (positions counted from 0).

    Returns
    -------
    dict
        ``transfer``: per position bucket, mean ``loss_with`` and
        ``loss_without`` and their ``ratio`` (< 1: what was written helps
        on new speech), plus ``all``; ``drift``: mean total variation
        between the emotion distributions before and after each write, per
        bucket and ``all``; ``flips``: ``right_to_wrong``,
        ``wrong_to_right`` and ``changed`` predictions caused by writes.

    Example
    -------
    >>> recs = [dict(position=0, loss_with=1.0, loss_without=2.0,
    ...              p_before=[0.6, 0.4], p_after=[0.4, 0.6]),
    ...         dict(position=1, loss_with=3.0, loss_without=2.0,
    ...              p_before=[0.9, 0.1], p_after=[0.8, 0.2])]
    >>> out = summarize_diagnostics(recs, labels=[1, 1])
    >>> out["transfer"]["all"]["ratio"], out["flips"]["wrong_to_right"]
    (1.0, 1)
    >>> round(out["drift"]["all"], 3)
    0.15
    """
    if labels is None:
        labels = [r.get("label", -1) for r in records]
    groups = {}
    flips = {"right_to_wrong": 0, "wrong_to_right": 0, "changed": 0, "n": 0}
    for rec, label in zip(records, labels):
        for key in (_bucket(rec["position"], buckets), "all"):
            group = groups.setdefault(
                key, {"with": [], "without": [], "tv": []}
            )
            if rec["loss_with"] is not None and rec["loss_without"] is not None:
                group["with"].append(rec["loss_with"])
                group["without"].append(rec["loss_without"])
            if rec["p_before"] is not None and rec["p_after"] is not None:
                before = torch.tensor(rec["p_before"])
                after = torch.tensor(rec["p_after"])
                tv = 0.5 * (before - after).abs().sum().item()
                group["tv"].append(tv)
        if rec["p_before"] is None or rec["p_after"] is None:
            continue
        old = max(range(len(rec["p_before"])), key=rec["p_before"].__getitem__)
        new = max(range(len(rec["p_after"])), key=rec["p_after"].__getitem__)
        flips["n"] += 1
        flips["changed"] += int(old != new)
        if label is not None and label >= 0:
            flips["right_to_wrong"] += int(old == label != new)
            flips["wrong_to_right"] += int(old != label == new)

    def mean(values):
        return sum(values) / len(values) if values else None

    transfer, drift = {}, {}
    for key, group in groups.items():
        with_, without = mean(group["with"]), mean(group["without"])
        transfer[key] = {
            "n": len(group["with"]),
            "loss_with": with_,
            "loss_without": without,
            "ratio": with_ / without if with_ is not None and without else None,
        }
        drift[key] = mean(group["tv"])
    return {"transfer": transfer, "drift": drift, "flips": flips}
