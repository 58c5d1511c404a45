"""Dynamic Parameter Memory (DPM): temporary LoRAs written while listening.

``LoRAMemory`` holds one temporary LoRA per *slot* (a conversation) over the
frozen LLM and its trained fixed LoRA. Per adapted linear the factors are
stacked along a leading slot axis, A [S, r, in] and B [S, out, r]; a batch
whose row i belongs to slot s(i) gets ``W x + fixed(x) + scale · B_s A_s x``
(batched matmuls in a forward hook). A slot is *written* by gradient steps
on the self-supervised audio next-token loss of its utterance (given the
``n_r`` tokens before it) and *read* through the usual emotion read-out. The
factors, the slots and the hooks are ``memory_slots.LoRASlots``; this module
writes and reads them.

Why a batch is exact: the loss of a write is the **sum over slots of each
slot's own mean loss**, so the gradient that reaches slot s is the one it
would get alone; AdamW and SGD are elementwise, and what they share across
tensors is made per slot (the step count of the bias correction, gradient
clipping). Each slot thus behaves exactly as if it were alone.

A pristine slot (just reset: A seeded, B = 0) adds exact zeros, and a batch
of pristine slots runs without the hooks at all, so a model with a memory
computes exactly what it computes without one. Gold labels never reach a
write. The factors and optimizer state stay float32 whatever the autocast
precision, and the low-rank term is added to the frozen output in float32
(bfloat16 would round a small write away against a large frozen output).

The same class serves DPM-aware training (``speechbrain_dpm.dpm_training``):
``fresh_weights``, ``applied`` and ``step`` take weights that carry an
autograd history, so an inner step can be differentiated through.

Authors
 * speechbrain_dpm developers 2026
"""

import contextlib
from dataclasses import dataclass
from typing import Optional

import torch

from speechbrain_dpm.memory_ops import (
    clip_rows,
    functional_step,
    row_audio_loss,
)
from speechbrain_dpm.memory_slots import LoRASlots
from speechbrain_dpm.sequence import Window, batch_on

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


class LoRAMemory(LoRASlots):
    """Temporary LoRAs, one per conversation slot, written by audio steps.

    Arguments
    ---------
    sllm, slots, rank, alpha, target_modules, layers, input_proj, seed
        The model and where and how the factors sit: see
        ``speechbrain_dpm.memory_slots.LoRASlots``.
    shield : bool
        Shielded read: the memory acts only on the positions before the
        current utterance (``read(..., current_lens=...)``).
    optimizer : str
        ``adamw`` (Temp-LoRA: betas (0.9, 0.999), eps 1e-7) or ``sgd``.
    lr : float
        Learning rate of the writes. The paper's 5e-5 is for a 7B model;
        small models need larger (tune on validation).
    steps : int
        Gradient steps per written window.
    weight_decay : float
        Weight decay of the optimizer.
    read_order : str
        ``after_write`` (paper): the utterance is read once the memory has
        been written with it. ``before_write``: the read-out only reflects
        earlier utterances (its forward can be the write's first one).
    betas : tuple of float
        AdamW betas.
    eps : float
        AdamW epsilon.
    max_grad_norm : float, optional
        Clip each slot's gradient norm before each step.
    context_grad : bool
        True: a write back-propagates through its whole window. False: the
        context runs once without a graph and serves as a key/value cache,
        so the backward covers the utterance only (cheaper at large
        ``n_r``; such writes run one slot at a time).

    Example
    -------
    >>> from speechbrain_dpm.sllm import EmotionSLLM
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> from speechbrain_dpm.sequence import context_window, make_utterance
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
    >>> memory = LoRAMemory(sllm, slots=2, rank=2, lr=1e-2)
    >>> utt = make_utterance(torch.tensor([1, 2, 3]), None, sllm.space)
    >>> window = context_window([], utt, n_context=4)
    >>> outs = memory.write([window, window], slots=[0, 1])
    >>> memory.read([window, window], slots=[0, 1]).shape
    torch.Size([2, 4])
    >>> memory.reset(0); memory.written.tolist()
    [False, True]
    """

    def __init__(
        self,
        sllm,
        slots=1,
        rank=8,
        alpha=16,
        target_modules="all-linear",
        layers=None,
        input_proj=False,
        shield=False,
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
    ):
        if read_order not in READ_ORDERS:
            raise ValueError(
                f"read_order must be one of {READ_ORDERS}, got {read_order!r}"
            )
        if steps < 1:
            raise ValueError(f"steps must be >= 1, got {steps}")
        super().__init__(
            sllm,
            slots=slots,
            rank=rank,
            alpha=alpha,
            target_modules=target_modules,
            layers=layers,
            input_proj=input_proj,
            optimizer=optimizer,
            seed=seed,
        )
        self.shield = shield
        self.steps = steps
        self.read_order = read_order
        self.max_grad_norm = max_grad_norm
        self.context_grad = context_grad
        self.step_options = {
            "optimizer": optimizer,
            "lr": lr,
            "betas": tuple(betas),
            "eps": eps,
            "weight_decay": weight_decay,
        }
        self.n_steps = 0

    # -- one step ------------------------------------------------------------

    def step(
        self, weights, state, batch, active, create_graph=False, model=None
    ):
        """One optimizer step of per-row weights on each row's audio loss.

        Arguments
        ---------
        weights : list of torch.Tensor
            [R, ...] factors (leaves with ``requires_grad``, or carrying
            the history of earlier steps).
        state : dict
            Optimizer state of those rows (see ``functional_step``).
        batch : tuple
            ``(tokens, feats, lengths, targets)``; ``lengths`` None when
            unpadded. A fifth element ``grad_from`` (one unpadded row) runs
            the positions before it as a key/value cache without a graph.
        active : torch.BoolTensor
            [R] rows that step (others keep weights and state).
        create_graph : bool
            Keep the step differentiable (second-order meta-learning).
        model : torch.nn.Module, optional
            What runs the forward (e.g. the DDP-wrapped SLLM in training);
            default the SLLM itself.

        Returns
        -------
        tuple
            (new weights, new state, [R] loss per row before the step,
            hidden states of that forward).
        """
        tokens, feats, lengths, targets, *rest = batch
        grad_from = rest[0] if rest else 0
        with self.applied(weights):
            if grad_from:
                hidden = self.sllm.audio_hidden_states(
                    tokens, feats, grad_from=grad_from
                )
            else:
                model = self.sllm if model is None else model
                hidden = model(tokens, feats, lengths, outputs="audio")
        per_row = row_audio_loss(
            self.sllm, hidden, tokens[:, grad_from:], targets[:, grad_from:]
        )
        loss = (per_row * active.to(per_row.dtype)).sum()
        # (a memory on the input projection gets no gradient when the
        # audio loss sees the units only)
        grads = torch.autograd.grad(
            loss, weights, create_graph=create_graph, allow_unused=True
        )
        grads = [
            torch.zeros_like(w) if g is None else g
            for g, w in zip(grads, weights)
        ]
        if self.max_grad_norm is not None:
            grads = clip_rows(grads, self.max_grad_norm)
        new, state = functional_step(
            weights, grads, state, active, **self.step_options
        )
        return new, state, per_row.detach(), hidden

    def write(self, windows, slots=None):
        """Writes windows into their slots: ``steps`` audio-loss steps.

        The loss is the audio next-token loss of each window's targets
        (``window.audio_targets``); labels are never used. No parameter of
        the SLLM gets a gradient.

        Arguments
        ---------
        windows : Window or list of Window
            Context tokens then target tokens; one per slot.
        slots : list of int, optional
            The slot of each window (distinct); default ``[0]``.

        Returns
        -------
        WriteOutput or list of WriteOutput
            Per window, the loss and the emotion logits at its last
            position, both from the first forward (before any step).
        """
        if torch.is_inference_mode_enabled():
            raise RuntimeError("LoRAMemory.write cannot run in inference_mode")
        single = isinstance(windows, Window)
        windows = [windows] if single else list(windows)
        slots = [0] if slots is None else list(slots)
        if len(set(slots)) != len(slots) or len(slots) != len(windows):
            raise ValueError(f"one distinct slot per window, got {slots}")
        if self.context_grad or len(windows) == 1:
            outs = self._write_rows(windows, slots)
        else:
            # Each row its own key/value cache: one slot at a time.
            outs = [
                self._write_rows([w], [s])[0] for w, s in zip(windows, slots)
            ]
        return outs[0] if single else outs

    def _write_rows(self, windows, slots):
        tokens, feats, targets, ends = batch_on(windows, self.device)
        has_targets = targets[:, 1:].any(1)
        grad_from = 0
        if not self.context_grad and bool(has_targets[0]):
            # The last context position predicts the first target: keep it.
            grad_from = max(int(targets[0].nonzero()[0]) - 1, 0)
        batch = (tokens, feats, None, targets, grad_from)
        index = torch.as_tensor(slots, device=self.device)
        weights = [w[index] for w in self.weights]
        state = {
            k: v[index] if torch.is_tensor(v) else [t[index] for t in v]
            for k, v in self.state.items()
        }
        losses = logits = None
        with torch.enable_grad(), _eval_mode(self.sllm), _frozen(self.sllm):
            for n in range(self.steps):
                weights = [w.detach().requires_grad_(True) for w in weights]
                new, state, per_row, hidden = self.step(
                    weights, state, batch, has_targets
                )
                if n == 0:
                    losses = per_row
                    if self.sllm.audio_forward_is_read:
                        last = ends - 1 - grad_from
                        rows = torch.arange(len(windows), device=self.device)
                        logits = self.sllm.emotion_logits(
                            hidden[rows, last].detach()
                        )
                weights = new
                if not bool(has_targets.any()):
                    break
        with torch.no_grad():
            for stack, w in zip(self.weights, weights):
                stack[index] = w.detach()
            for key, value in state.items():
                if key == "step":
                    self.state[key][index] = value
                else:
                    for stack, v in zip(self.state[key], value):
                        stack[index] = v.detach()
            self.written[index.cpu()] |= has_targets.cpu()
        self.n_steps += self.steps * int(has_targets.sum())
        return [
            WriteOutput(
                float(losses[i]) if has_targets[i] else None,
                None if logits is None else logits[i].float().cpu(),
            )
            for i in range(len(windows))
        ]

    # -- reads ---------------------------------------------------------------

    @torch.no_grad()
    def read(self, windows, slots=None, current_lens=None, use_memory=True):
        """Emotion logits at the last position of each window.

        Arguments
        ---------
        windows : Window or list of Window
            One per slot; each ends with the ``<audio_end>`` read.
        slots : list of int, optional
            The slot of each window; default ``[0]``.
        current_lens : list of int, optional
            Length of the current utterance at the end of each window (for
            a shielded read: the memory then acts before it only).
        use_memory : bool
            False: read the model without the memory.

        Returns
        -------
        torch.Tensor
            [B, C] logits (float, on the CPU); [C] for a single Window.
        """
        single = isinstance(windows, Window)
        windows = [windows] if single else list(windows)
        slots = [0] if slots is None else list(slots)
        tokens, feats, _, ends = batch_on(windows, self.device)
        mask = None
        if self.shield and use_memory:
            if current_lens is None:
                raise RuntimeError("a shielded read needs current_lens")
            start = ends - torch.as_tensor(current_lens, device=self.device)
            steps = torch.arange(tokens.shape[1], device=self.device)
            mask = (steps[None] < start[:, None]).float()
        memory = self.slot_context(slots, mask)
        if not use_memory:
            memory = contextlib.nullcontext()
        with memory, _eval_mode(self.sllm):
            hidden = self.sllm.hidden_states(tokens, feats)
        rows = torch.arange(len(windows), device=self.device)
        logits = self.sllm.emotion_logits(hidden[rows, ends - 1])
        logits = logits.float().cpu()
        return logits[0] if single else logits

    @torch.no_grad()
    def audio_loss(self, windows, slots=None, use_memory=True):
        """Audio loss of each window's targets, with or without memory.

        Returns
        -------
        list of float or None
            Mean nats per target token (None without targets); a single
            value for a single Window.
        """
        single = isinstance(windows, Window)
        windows = [windows] if single else list(windows)
        slots = [0] if slots is None else list(slots)
        tokens, feats, targets, _ = batch_on(windows, self.device)
        memory = self.slot_context(slots)
        if not use_memory:
            memory = contextlib.nullcontext()
        with memory, _eval_mode(self.sllm):
            hidden = self.sllm.audio_hidden_states(tokens, feats)
        losses = row_audio_loss(self.sllm, hidden, tokens, targets)
        has = targets[:, 1:].any(1)
        out = [float(v) if h else None for v, h in zip(losses, has)]
        return out[0] if single else out


@contextlib.contextmanager
def _frozen(sllm):
    """No parameter of the SLLM requires a gradient (flags restored after):
    a write's graph then keeps only what the memory's gradient needs, not
    the inputs of every trained linear (fixed LoRA, new rows)."""
    params = list(sllm.parameters())
    flags = [p.requires_grad for p in params]
    for param in params:
        param.requires_grad_(False)
    try:
        yield
    finally:
        for param, flag in zip(params, flags):
            param.requires_grad_(flag)


@contextlib.contextmanager
def _eval_mode(sllm):
    """Writes and reads are inference: no dropout in the fixed LoRA."""
    if not sllm.training:
        yield
        return
    sllm.eval()
    try:
        yield
    finally:
        sllm.train()
