"""The temporary LoRAs' tensors: one set of factors per conversation slot.

``LoRASlots`` holds, per adapted linear of the model, the factors of a
temporary LoRA stacked along a leading slot axis, A [S, r, in] and
B [S, out, r], with their optimizer state; it takes, frees, resets and grows
slots, and runs the model with per-row factors: a batch whose row i belongs
to slot s(i) gets ``W x + fixed(x) + scale · B_s A_s x`` (batched matmuls in
a forward hook, added in float32). A pristine slot (A seeded, B = 0) adds
exact zeros, and a batch of pristine slots runs without the hooks at all.
How the slots are written and read is ``speechbrain_dpm.memory.LoRAMemory``.

Authors
 * speechbrain_dpm developers 2026
"""

import contextlib
import math

import torch
from torch import nn

from speechbrain_dpm.memory_ops import OPTIMIZERS, parse_placement


class LoRASlots:
    """Temporary LoRA factors and optimizer state, one set per slot.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model; its own parameters are never modified.
    slots : int
        Conversations held at once (grows when ``acquire`` needs more).
    rank : int
        Rank of the temporary LoRA.
    alpha : float
        LoRA alpha (scale = alpha / rank).
    target_modules : str or list of str
        Where it sits (``parse_placement``): ``all-linear``, ``attention``,
        ``mlp``, ``lower-<k>``, ``input-proj``, ``+``-joined, or leaf names.
    layers : list of int, optional
        Only these decoder layers.
    input_proj : bool
        Also adapt the audio input projection (``sllm.feat_proj``).
    optimizer : str
        ``adamw`` (the slots keep its moments and step count) or ``sgd``
        (no state).
    seed : int
        Seed of the initialisation of A (the same for every slot).

    Example
    -------
    >>> from speechbrain_dpm.sllm import EmotionSLLM
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
    >>> slots = LoRASlots(sllm, slots=1, rank=2, target_modules="attention")
    >>> slots.acquire(), slots.acquire(), slots.slots
    (0, 1, 2)
    >>> len(slots.sites), slots.weights[0].shape
    (8, torch.Size([2, 2, 32]))
    >>> with slots.applied(slots.fresh_weights()):
    ...     len(slots.hooked_modules())
    8
    >>> slots.hooked_modules()
    []
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
        optimizer="adamw",
        seed=0,
    ):
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be adamw or sgd: {optimizer!r}")
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.sllm = sllm
        self.rank = rank
        self.scale = alpha / rank
        self.seed = seed
        self.optimizer = optimizer
        self._find_sites(target_modules, layers, input_proj)
        self._handles = []
        self._applied = None
        self.weights = self.fresh_weights(slots)
        self.state = self._fresh_state(slots)
        self.written = torch.zeros(slots, dtype=torch.bool)
        self.free = list(range(slots))

    def _find_sites(self, target_modules, layers, input_proj):
        sllm = self.sllm
        blocks = sllm.llm.get_decoder().layers
        targets, layer_ids, input_proj = parse_placement(
            target_modules, len(blocks), layers, input_proj
        )
        self.sites = []
        for index in layer_ids:
            for name, module in blocks[index].named_modules():
                # With a fixed LoRA this is peft's wrapper (frozen linear +
                # fixed LoRA); its inner base_layer has another leaf name.
                if name.rsplit(".", 1)[-1] in targets:
                    self.sites.append((f"layers.{index}.{name}", module))
        if input_proj:
            if sllm.feat_proj is None:
                raise ValueError(
                    "input-proj placement needs audio_input="
                    "'units+continuous' (the model has no feature projection)"
                )
            self.sites.append(("feat_proj", sllm.feat_proj[1]))
        if not self.sites:
            raise ValueError(f"placement {target_modules!r} adapts no layer")
        if len(self.sites) == 1 and input_proj and not sllm.audio_sees_feats:
            raise ValueError(
                "a temporary LoRA on the input projection alone never gets "
                "a gradient: the audio loss sees the units only "
                "(audio_loss_input='units'); use 'units+continuous' or a "
                "placement with decoder layers"
            )
        self.site_names = [name for name, _ in self.sites]
        self.shapes = [
            (module.in_features, module.out_features)
            for _, module in self.sites
        ]

    @property
    def slots(self):
        """Number of conversation slots."""
        return self.written.shape[0]

    @property
    def device(self):
        """Where the model (and the memory) lives."""
        return self.sllm.token_out.device

    # -- state -------------------------------------------------------------

    def fresh_weights(self, n=1, device=None):
        """Pristine factors for ``n`` rows: A seeded (peft's Kaiming
        uniform, the same for every row), B = 0.

        Returns
        -------
        list of torch.Tensor
            [A_0, B_0, A_1, B_1, ...] in site order, float32, [n, ...].
        """
        device = self.device if device is None else device
        generator = torch.Generator().manual_seed(self.seed)
        weights = []
        for n_in, n_out in self.shapes:
            lora_a = torch.empty(self.rank, n_in)
            nn.init.kaiming_uniform_(
                lora_a, a=math.sqrt(5), generator=generator
            )
            weights.append(lora_a.to(device).repeat(n, 1, 1))
            weights.append(torch.zeros(n, n_out, self.rank, device=device))
        return weights

    def _fresh_state(self, n):
        if self.optimizer != "adamw":
            return {}
        zeros = [torch.zeros_like(w) for w in self.fresh_weights(n)]
        return {
            "step": torch.zeros(n, device=self.device),
            "exp_avg": zeros,
            "exp_avg_sq": [z.clone() for z in zeros],
        }

    @torch.no_grad()
    def reset(self, slot=None):
        """Re-initialises one slot (or all): seeded A, B = 0, empty
        optimizer state and step count. Other slots are left bit-identical.
        """
        slots = range(self.slots) if slot is None else [slot]
        fresh = self.fresh_weights(1)
        state = self._fresh_state(1)
        for s in slots:
            for w, f in zip(self.weights, fresh):
                w[s] = f[0]
            for key, value in state.items():
                if key == "step":
                    self.state["step"][s] = 0
                else:
                    for old, new in zip(self.state[key], value):
                        old[s] = new[0]
            self.written[s] = False

    def acquire(self):
        """A pristine free slot for a new conversation (one more if none)."""
        if not self.free:
            self._grow(1)
        slot = self.free.pop(0)
        self.reset(slot)
        return slot

    def release(self, slot):
        """Ends a conversation: its slot is reset and freed."""
        self.reset(slot)
        if slot not in self.free:
            self.free.append(slot)
            self.free.sort()

    def _grow(self, extra):
        old = self.slots
        fresh = self.fresh_weights(extra)
        self.weights = [torch.cat([w, f]) for w, f in zip(self.weights, fresh)]
        for key, value in self._fresh_state(extra).items():
            if key == "step":
                self.state[key] = torch.cat([self.state[key], value])
            else:
                self.state[key] = [
                    torch.cat([o, n]) for o, n in zip(self.state[key], value)
                ]
        self.written = torch.cat(
            [self.written, torch.zeros(extra, dtype=torch.bool)]
        )
        self.free += list(range(old, old + extra))

    def __enter__(self):
        self.reset()
        return self

    def __exit__(self, *exc):
        self.reset()
        return False

    # -- the low-rank term ---------------------------------------------------

    def _hook(self, index):
        def hook(module, args, output):
            """Adds this linear's low-rank term to its output."""
            del module
            weights, mask = self._applied
            lora_a, lora_b = weights[2 * index], weights[2 * index + 1]
            x = args[0].to(lora_a.dtype)
            delta = (x @ lora_a.transpose(-1, -2)) @ lora_b.transpose(-1, -2)
            delta = delta * self.scale
            if mask is not None:
                delta = delta * mask[..., None].to(delta.dtype)
            if torch.is_autocast_enabled(output.device.type):
                # Added in float32 (autocast casts it for the next matmul):
                # in bf16 a small write would be rounded away against the
                # large frozen output.
                return output.to(delta.dtype) + delta
            # A trunk stored in bf16 / fp16 runs in its own dtype.
            return output + delta.to(output.dtype)

        return hook

    @contextlib.contextmanager
    def applied(self, weights, mask=None):
        """Context in which the model runs with per-row temporary LoRAs.

        Arguments
        ---------
        weights : list of torch.Tensor
            [R, ...] factors in site order (``fresh_weights`` or written),
            one set per batch row (or R = 1 for every row); they may carry
            autograd history, which then flows through every forward.
        mask : torch.Tensor, optional
            [B, T] per-position factor of the delta (0: no memory there).
        """
        if self._handles:
            raise RuntimeError("the memory is already applied")
        if len(weights) != 2 * len(self.sites):
            raise ValueError(
                f"expected {2 * len(self.sites)} tensors, got {len(weights)}"
            )
        self._applied = (list(weights), mask)
        self._handles = [
            module.register_forward_hook(self._hook(i))
            for i, (_, module) in enumerate(self.sites)
        ]
        try:
            yield self
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles = []
            self._applied = None

    def hooked_modules(self):
        """Modules of the model that carry a forward hook right now."""
        return [m for m in self.sllm.modules() if m._forward_hooks]

    def _slot_weights(self, slots):
        index = torch.as_tensor(slots, device=self.device)
        return [w[index] for w in self.weights]

    def slot_context(self, slots, mask=None):
        """Context in which the model runs with the memory of ``slots``
        (one per batch row); no hook at all while they are all pristine.

        Arguments
        ---------
        slots : list of int
            The slot of each batch row.
        mask : torch.Tensor, optional
            [B, T] per-position factor of the delta (see ``applied``).
        """
        if not bool(self.written[list(slots)].any()):
            return contextlib.nullcontext()
        return self.applied(self._slot_weights(slots), mask)
