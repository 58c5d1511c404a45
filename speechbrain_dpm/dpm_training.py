"""DPM-aware training and the placement of the temporary LoRA.

Plain training (``DPMBrain``) never sees the memory: the fixed LoRA, the new
token rows and the feature projection are trained on packed windows, and
the temporary LoRA is only written at inference. ``DPMAwareBrain`` trains
them *through* the memory. A training item is a run of consecutive
utterances of a dialogue: the *inner loop* writes the first ``inner_utts``
utterances into a fresh temporary LoRA (the self-supervised audio loss of
each utterance given its ``n_context`` tokens of context, ``inner_steps``
steps each, exactly as ``LoRAMemory.write`` does at inference), then the
*outer* loss (emotion, and optionally audio) of the next ``outer_utts``
utterances is computed with the adapted temporary weights and
back-propagated into the fixed parameters. Labels never reach a write.

The temporary LoRA here is functional (``FunctionalLoRA``): its tensors are
plain tensors, not modules or peft adapters, and are added by forward hooks
(``delta = scale · x Aᵀ Bᵀ``, one set of weights per batch row, optionally
masked per position). So an item's adapted weights are just tensors of the
autograd graph: ``meta_order="first"`` treats them as constants in the
outer loss (FOMAML-like: cheap, the fixed parameters learn a read-out that
works with, and is not drifted by, what a write stores), ``"second"``
differentiates through the inner steps (``torch.autograd.grad`` with
``create_graph=True``), so the fixed parameters also learn features whose
write stores what persists in a conversation. Every item starts from the
same fresh weights (seeded A, B = 0, as ``LoRAMemory.reset``) and its inner
state (weights and optimizer moments) lives only inside one
``compute_forward``: nothing leaks between items or dialogues.

The same functional LoRA gives the inference memory more placements than
the peft adapter of ``LoRAMemory``: ``PlacedLoRAMemory`` and the strategy
``dpm_placed`` (``PlacedDPMStrategy``) put it on all linears, attention or
MLP only, the ``k`` lowest layers and/or the audio input projection
(``EmotionSLLM.feat_proj``), and can *shield* the emotion read-out: the
read of utterance t applies the memory only to the positions before t.

Authors
 * speechbrain_dpm developers 2026
"""

import contextlib
import math

import speechbrain as sb
import torch
from speechbrain.utils.logger import get_logger
from torch import nn

from speechbrain_dpm.brain import DPMBrain
from speechbrain_dpm.context import register
from speechbrain_dpm.memory import DPMStrategy, LoRAMemory
from speechbrain_dpm.sequence import (
    Utterance,
    Window,
    collate_windows,
    context_window,
)
from speechbrain_dpm.sllm import ALL_LINEAR

logger = get_logger(__name__)

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
MODULE_PRESETS = {"all-linear": ALL_LINEAR, "attention": ATTENTION, "mlp": MLP}
INPUT_PROJ = "input-proj"
TRAINING_MODES = ("plain", "dpm_aware")
META_ORDERS = ("first", "second")
INNER_OPTIMIZERS = ("adamw", "sgd")


def parse_placement(placement, n_layers, layers=None, input_proj=False):
    """Resolves a placement of the temporary LoRA.

    Arguments
    ---------
    placement : str or list of str
        ``+``-joined tokens: ``all-linear``, ``attention``, ``mlp`` (which
        linears of a decoder layer), ``lower-<k>`` (only the k lowest
        layers), ``input-proj`` (the audio input projection); e.g.
        ``attention+lower-2`` or ``input-proj``. Without a module token the
        trunk gets ``all-linear``, unless the only token is ``input-proj``.
        A list gives the linears' leaf names explicitly.
    n_layers : int
        Number of decoder layers of the model.
    layers : list of int, optional
        Only these layers (cannot be combined with ``lower-<k>``).
    input_proj : bool
        Also adapt the audio input projection.

    Returns
    -------
    tuple
        (leaf names of the adapted linears, layer indices, input_proj).

    Example
    -------
    >>> parse_placement("attention+lower-1", n_layers=4)
    (('q_proj', 'k_proj', 'v_proj', 'o_proj'), [0], False)
    >>> parse_placement("input-proj", n_layers=4)
    ((), [], True)
    """
    if not isinstance(placement, str):
        targets, tokens = tuple(placement), []
    else:
        tokens = [t.strip() for t in placement.split("+") if t.strip()]
        targets = ()
    lower = None
    for token in tokens:
        if token in MODULE_PRESETS:
            targets += tuple(
                n for n in MODULE_PRESETS[token] if n not in targets
            )
        elif token == INPUT_PROJ:
            input_proj = True
        elif token.startswith("lower-"):
            lower = int(token[len("lower-") :])
            if not 1 <= lower <= n_layers:
                raise ValueError(
                    f"{token}: k must be in 1..{n_layers} (layers of the model)"
                )
        else:
            raise ValueError(
                f"unknown placement token {token!r}; known: "
                f"{sorted(MODULE_PRESETS)}, lower-<k>, {INPUT_PROJ}"
            )
    if not targets and tokens and tokens != [INPUT_PROJ]:
        targets = ALL_LINEAR
    if lower is not None and layers is not None:
        raise ValueError("give either lower-<k> or layers, not both")
    if lower is not None:
        layers = list(range(lower))
    elif layers is None:
        layers = list(range(n_layers))
    layers = [int(i) for i in layers]
    if any(not 0 <= i < n_layers for i in layers):
        raise ValueError(f"layers {layers} outside 0..{n_layers - 1}")
    if not targets:
        layers = []
    return targets, layers, bool(input_proj)


def _safe_sqrt(values):
    """sqrt whose derivative at 0 is 0, not inf (no NaN in 2nd order)."""
    positive = values > 0
    root = torch.where(positive, values, torch.ones_like(values)).sqrt()
    return torch.where(positive, root, torch.zeros_like(values))


class FunctionalLoRA:
    """A module-free temporary LoRA, applied by forward hooks.

    Each adapted linear (a "site") gets ``out += scale · (x Aᵀ) Bᵀ`` with
    weights passed in by the caller: A [R, r, in] and B [R, out, r] with one
    set per batch row (R = batch size, or 1 for all rows). Nothing is stored
    in the model: hooks exist only inside ``applied()``, so a model without
    them computes bit-exactly what it computed before. An optional
    per-position ``mask`` [B, T] scales the delta (0: no memory there).

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model (never modified).
    rank : int
        LoRA rank.
    alpha : float
        LoRA alpha (scale = alpha / rank).
    placement : str or list of str
        Where it sits (see ``parse_placement``).
    layers : list of int, optional
        Only these decoder layers.
    input_proj : bool
        Also adapt the audio input projection (``sllm.feat_proj``).

    Example
    -------
    >>> from speechbrain_dpm.sllm import EmotionSLLM, tiny_llm
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, feat_dim=4)
    >>> lora = FunctionalLoRA(sllm, rank=2, placement="mlp+input-proj")
    >>> len(lora.sites), lora.site_names[-1]
    (7, 'feat_proj')
    >>> weights = lora.init_weights()
    >>> with lora.applied(weights):
    ...     len(lora.hooked_modules())
    7
    >>> len(lora.hooked_modules())
    0
    """

    def __init__(
        self,
        sllm,
        rank=8,
        alpha=16,
        placement="all-linear",
        layers=None,
        input_proj=False,
    ):
        self.sllm = sllm
        self.rank = rank
        self.scale = alpha / rank
        blocks = sllm.llm.get_decoder().layers
        targets, layer_ids, input_proj = parse_placement(
            placement, len(blocks), layers, input_proj
        )
        self.sites = []
        for index in layer_ids:
            for name, module in blocks[index].named_modules():
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
            raise ValueError(f"placement {placement!r} adapts no layer")
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
        self.mask = None
        self._weights = None
        self._handles = []

    def init_weights(self, batch=1, seed=0, device=None):
        """Fresh weights: A seeded Kaiming-uniform (peft's), B = 0.

        Arguments
        ---------
        batch : int
            Number of rows (each its own memory, all starting equal).
        seed : int
            Seed of A (the same A for every row and every call).
        device : torch.device, optional
            Where the tensors go (default: the model's).

        Returns
        -------
        list of torch.Tensor
            [A_0, B_0, A_1, B_1, ...] in site order, float32.
        """
        if device is None:
            device = self.sllm.token_out.device
        generator = torch.Generator().manual_seed(seed)
        weights = []
        for n_in, n_out in self.shapes:
            lora_a = torch.empty(self.rank, n_in)
            nn.init.kaiming_uniform_(
                lora_a, a=math.sqrt(5), generator=generator
            )
            weights.append(lora_a.to(device).repeat(batch, 1, 1))
            weights.append(torch.zeros(batch, n_out, self.rank, device=device))
        return weights

    @torch.no_grad()
    def reinit_(self, weights, seed=0):
        """Re-initialises weights in place (as ``init_weights``)."""
        fresh = self.init_weights(weights[0].shape[0], seed, weights[0].device)
        for old, new in zip(weights, fresh):
            old.copy_(new)

    def _hook(self, index):
        def hook(module, args, output):
            del module
            lora_a = self._weights[2 * index]
            lora_b = self._weights[2 * index + 1]
            x = args[0].to(lora_a.dtype)
            delta = (x @ lora_a.transpose(-1, -2)) @ lora_b.transpose(-1, -2)
            delta = delta * self.scale
            if self.mask is not None:
                delta = delta * self.mask[..., None].to(delta.dtype)
            return output + delta.to(output.dtype)

        return hook

    def attach(self, weights, mask=None):
        """Adds the hooks (until ``detach``); see ``applied``."""
        if self._handles:
            raise RuntimeError("FunctionalLoRA is already attached")
        if len(weights) != 2 * len(self.sites):
            raise ValueError(
                f"expected {2 * len(self.sites)} tensors, got {len(weights)}"
            )
        self._weights = list(weights)
        self.mask = mask
        self._handles = [
            module.register_forward_hook(self._hook(i))
            for i, (_, module) in enumerate(self.sites)
        ]

    def detach(self):
        """Removes the hooks: the model is back to exactly itself."""
        for handle in self._handles:
            handle.remove()
        self._handles = []
        self._weights = None
        self.mask = None

    @property
    def attached(self):
        """Whether the hooks are in place."""
        return bool(self._handles)

    @contextlib.contextmanager
    def applied(self, weights, mask=None):
        """Context in which the model runs with the temporary LoRA.

        Arguments
        ---------
        weights : list of torch.Tensor
            From ``init_weights`` (or adapted from it); may carry autograd
            history, which then flows through every forward run inside.
        mask : torch.Tensor, optional
            [B, T] per-position factor of the delta (1: memory, 0: none).

        Yields
        ------
        FunctionalLoRA
            Itself.
        """
        self.attach(weights, mask)
        try:
            yield self
        finally:
            self.detach()

    def hooked_modules(self):
        """Modules of the model that carry a forward hook of this LoRA."""
        return [m for m in self.sllm.modules() if m._forward_hooks]


def row_audio_loss(sllm, hidden, tokens, targets):
    """Audio next-token loss per batch row (mean over each row's targets).

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    hidden : torch.Tensor
        [B, T, H] hidden states.
    tokens : torch.LongTensor
        [B, T] tokens.
    targets : torch.BoolTensor
        [B, T] target positions (position 0 never counts).

    Returns
    -------
    torch.Tensor
        [B] losses (0 for a row without targets).
    """
    mask = sllm.predicted_targets(tokens, targets)
    batch = hidden.shape[0]
    counts = mask.sum(1)
    if not bool(counts.any()):
        return hidden.sum((1, 2)) * 0.0
    nll = -sllm.audio_log_probs(hidden[:, :-1][mask], tokens[:, 1:][mask])
    rows = torch.arange(batch, device=hidden.device)[:, None].expand_as(mask)
    sums = torch.zeros(batch, dtype=nll.dtype, device=nll.device)
    sums = sums.index_add(0, rows[mask], nll)
    return sums / counts.clamp(min=1).to(sums.dtype)


def functional_step(
    weights,
    grads,
    state,
    active,
    optimizer="adamw",
    lr=1e-3,
    betas=(0.9, 0.999),
    eps=1e-7,
    weight_decay=0.0,
):
    """One differentiable optimizer step per batch row (AdamW or SGD).

    The arithmetic is torch's ``AdamW`` / ``SGD`` (what ``LoRAMemory``
    uses at inference), out of place, so an inner step can be
    differentiated through. Rows where ``active`` is False are unchanged
    (weights, moments and step count).

    Arguments
    ---------
    weights : list of torch.Tensor
        [R, ...] per-row weights.
    grads : list of torch.Tensor
        Their gradients.
    state : dict
        ``step`` [R] and ``exp_avg`` / ``exp_avg_sq`` lists (AdamW); empty
        on the first call.
    active : torch.BoolTensor
        [R] rows that take the step.
    optimizer : str
        ``adamw`` or ``sgd``.
    lr : float
        Learning rate.
    betas : tuple of float
        AdamW betas.
    eps : float
        AdamW epsilon.
    weight_decay : float
        Weight decay (decoupled for AdamW, L2 for SGD as in torch).

    Returns
    -------
    tuple
        (new weights, new state).

    Example
    -------
    >>> w = [torch.ones(2, 3)]
    >>> g = [torch.ones(2, 3)]
    >>> new, state = functional_step(w, g, {}, torch.tensor([True, False]),
    ...                              lr=0.1)
    >>> new[0][:, 0].round(decimals=4).tolist(), state["step"].tolist()
    ([0.8999999761581421, 1.0], [1.0, 0.0])
    """
    rows = weights[0].shape[0]
    device = weights[0].device

    def per_row(flags, like):
        return flags.view(rows, *([1] * (like.dim() - 1)))

    if optimizer == "sgd":
        new = []
        for w, g in zip(weights, grads):
            if weight_decay:
                g = g + weight_decay * w
            on = per_row(active, w).to(w.dtype)
            new.append(w - lr * on * g)
        return new, state
    if optimizer != "adamw":
        raise ValueError(f"optimizer must be adamw or sgd: {optimizer!r}")
    beta1, beta2 = betas
    step = state.get("step", torch.zeros(rows, device=device))
    exp_avg = state.get("exp_avg", [torch.zeros_like(w) for w in weights])
    exp_avg_sq = state.get("exp_avg_sq", [torch.zeros_like(w) for w in weights])
    step = step + active.to(step.dtype)
    # Rows that never stepped would divide by zero in an unused branch.
    counted = step.clamp(min=1)
    correction1 = 1 - beta1**counted
    correction2_sqrt = (1 - beta2**counted).sqrt()
    new_w, new_m, new_v = [], [], []
    for w, g, m, v in zip(weights, grads, exp_avg, exp_avg_sq):
        on = per_row(active, w)
        m_next = torch.where(on, m + (g - m) * (1 - beta1), m)
        v_next = torch.where(on, v * beta2 + g * g * (1 - beta2), v)
        shape = [rows] + [1] * (w.dim() - 1)
        step_size = (lr / correction1).view(shape)
        denom = _safe_sqrt(v_next) / correction2_sqrt.view(shape) + eps
        decayed = w * (1 - lr * weight_decay) if weight_decay else w
        w_next = decayed - step_size * m_next / denom
        new_w.append(torch.where(on, w_next, w))
        new_m.append(m_next)
        new_v.append(v_next)
    return new_w, {"step": step, "exp_avg": new_m, "exp_avg_sq": new_v}


# --------------------------------------------------------------------------
# Training items: runs of consecutive utterances
# --------------------------------------------------------------------------


def _cut_left(window, n_limit):
    """Keeps the last ``n_limit`` tokens of a window (positions shift)."""
    size = window.tokens.shape[0]
    if n_limit is None or size <= n_limit:
        return window, 0
    cut = size - n_limit
    keep = [
        (p - cut, lab) for p, lab in zip(window.emo_positions, window.labels)
    ]
    keep = [(p, lab) for p, lab in keep if p >= 0]
    return (
        Window(
            window.tokens[cut:],
            None if window.feats is None else window.feats[cut:],
            window.audio_targets[cut:],
            [p for p, _ in keep],
            [lab for _, lab in keep],
        ),
        cut,
    )


def inner_window(history, utt, n_context, n_limit=None):
    """The write window of an inner utterance (as a DPM write at inference).

    Arguments
    ---------
    history : list of Utterance
        Earlier utterances of the dialogue.
    utt : Utterance
        The utterance written.
    n_context : int
        Context tokens before it.
    n_limit : int, optional
        Keep at most the last ``n_limit`` tokens.

    Returns
    -------
    Window
        Audio targets on ``utt``; no label (a write never sees one).
    """
    window = context_window(history, utt, n_context)
    window.labels = [-1]
    return _cut_left(window, n_limit)[0]


def outer_window(history, utts, n_context, n_limit=None):
    """The read window of the outer utterances: context, then all of them.

    Arguments
    ---------
    history : list of Utterance
        Utterances before the first outer one.
    utts : list of Utterance
        The outer utterances (emotion read at each ``<audio_end>``).
    n_context : int
        Context tokens before the first outer utterance.
    n_limit : int, optional
        Keep at most the last ``n_limit`` tokens.

    Returns
    -------
    tuple
        (Window with audio targets on the outer utterances, number of
        context tokens before the first outer utterance).

    Example
    -------
    >>> from speechbrain_dpm.sequence import TokenSpace, make_utterance
    >>> space = TokenSpace(8, 4)
    >>> a, b, c = [make_utterance(torch.tensor([i, i]), None, space, i)
    ...            for i in range(3)]
    >>> win, n_ctx = outer_window([a], [b, c], n_context=2)
    >>> win.tokens.tolist(), win.emo_positions, win.labels, n_ctx
    ([0, 8, 1, 1, 8, 2, 2, 8], [4, 7], [1, 2], 2)
    """
    merged = Utterance(
        torch.cat([u.tokens for u in utts]),
        None if utts[0].feats is None else torch.cat([u.feats for u in utts]),
    )
    window = context_window(history, merged, n_context)
    n_ctx = window.tokens.shape[0] - len(merged)
    ends = torch.cumsum(torch.tensor([len(u) for u in utts]), 0) - 1 + n_ctx
    window.emo_positions = ends.tolist()
    window.labels = [u.label for u in utts]
    window, cut = _cut_left(window, n_limit)
    return window, max(n_ctx - cut, 0)


class DialogueRunDataset(torch.utils.data.Dataset):
    """Training items of DPM-aware training: runs of consecutive utterances.

    Item starts are every ``stride`` utterances of each dialogue; the item
    at start s writes utterances ``s - inner_utts .. s - 1`` (fewer at the
    beginning of a dialogue) and reads utterances ``s .. s + outer_utts -
    1``. With ``stride = outer_utts`` (default) every utterance is read
    (trained on its label) exactly once per epoch, as in plain training.

    Arguments
    ---------
    dialogues : list of (str, list of Utterance)
        From ``speechbrain_dpm.brain.load_dialogues``.
    inner_utts : int
        Utterances written before the read (inner loop).
    outer_utts : int
        Utterances read with the written memory (outer loss).
    n_context : int
        Context tokens before each written utterance and before the read.
    n_limit : int, optional
        Bound of every window (keeps the last tokens).
    stride : int, optional
        Distance between item starts (default ``outer_utts``).
    min_inner : int
        Skip items with fewer written utterances.

    Example
    -------
    >>> from speechbrain_dpm.sequence import TokenSpace, make_utterance
    >>> space = TokenSpace(8, 4)
    >>> utts = [make_utterance(torch.tensor([1, 2]), None, space, 0)] * 5
    >>> data = DialogueRunDataset([("d", utts)], 2, 2, n_context=4)
    >>> [(s, n_in, n_out) for _, s, n_in, n_out in data.items]
    [(0, 0, 2), (2, 2, 2), (4, 2, 1)]
    >>> len(data[1]["inner"]), data[1]["outer"].labels
    (2, [0, 0])
    """

    def __init__(
        self,
        dialogues,
        inner_utts=4,
        outer_utts=2,
        n_context=256,
        n_limit=None,
        stride=None,
        min_inner=0,
    ):
        if inner_utts < 0 or outer_utts < 1:
            raise ValueError("need inner_utts >= 0 and outer_utts >= 1")
        self.dialogues = [utts for _, utts in dialogues]
        self.n_context = n_context
        self.n_limit = n_limit
        stride = stride or outer_utts
        self.items = []
        for d, utts in enumerate(self.dialogues):
            for start in range(0, len(utts), stride):
                n_in = min(inner_utts, start)
                n_out = min(outer_utts, len(utts) - start)
                if n_in >= min_inner:
                    self.items.append((d, start, n_in, n_out))

    def __len__(self):
        return len(self.items)

    def __getitem__(self, index):
        d, start, n_in, n_out = self.items[index]
        utts = self.dialogues[d]
        inner = [
            inner_window(utts[:i], utts[i], self.n_context, self.n_limit)
            for i in range(start - n_in, start)
        ]
        outer, n_ctx = outer_window(
            utts[:start],
            utts[start : start + n_out],
            self.n_context,
            self.n_limit,
        )
        return {"inner": inner, "outer": outer, "n_context": n_ctx}


def _probs(logits):
    return torch.softmax(logits.float(), -1).tolist()


def _dummy_window(like):
    feats = None
    if like.feats is not None:
        feats = like.feats.new_zeros(1, like.feats.shape[-1])
    return Window(
        like.tokens[-1:].clone(),
        feats,
        torch.zeros(1, dtype=torch.bool),
        [0],
        [-1],
    )


def collate_runs(items):
    """Collates DPM-aware items: one padded batch per inner write step.

    Items with fewer written utterances are aligned on the read (their
    missing early steps are inactive rows).

    Arguments
    ---------
    items : list of dict
        From ``DialogueRunDataset``.

    Returns
    -------
    dict
        ``inner``: list (one per write) of ``collate_windows`` batches with
        ``active`` [B]; ``outer``: the read windows' batch with
        ``n_context`` [B]; ``n_items``.

    Example
    -------
    >>> from speechbrain_dpm.sequence import TokenSpace, make_utterance
    >>> space = TokenSpace(8, 4)
    >>> utts = [make_utterance(torch.tensor([1, 2]), None, space, 0)] * 5
    >>> data = DialogueRunDataset([("d", utts)], 2, 2, n_context=4)
    >>> batch = collate_runs([data[0], data[1]])
    >>> len(batch["inner"]), batch["inner"][0]["active"].tolist()
    (2, [False, True])
    """
    n_steps = max(len(item["inner"]) for item in items)
    inner = []
    for j in range(n_steps):
        windows, active = [], []
        for item in items:
            k = j - (n_steps - len(item["inner"]))
            if k >= 0:
                windows.append(item["inner"][k])
            else:
                windows.append(_dummy_window(item["outer"]))
            active.append(k >= 0)
        batch = collate_windows(windows)
        batch["active"] = torch.tensor(active)
        inner.append(batch)
    outer = collate_windows([item["outer"] for item in items])
    outer["n_context"] = torch.tensor([item["n_context"] for item in items])
    return {"inner": inner, "outer": outer, "n_items": len(items)}


def _to_device(obj, device):
    if torch.is_tensor(obj):
        return obj.to(device)
    if isinstance(obj, dict):
        return {k: _to_device(v, device) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_to_device(v, device) for v in obj]
    return obj


# --------------------------------------------------------------------------
# The Brain
# --------------------------------------------------------------------------


class DPMAwareBrain(DPMBrain):
    """``DPMBrain`` that can train the fixed parameters through the memory.

    With ``training_mode: plain`` (default) it is exactly ``DPMBrain``. With
    ``dpm_aware`` the training loader (``make_window_loader`` at the TRAIN
    stage) yields runs of utterances (``DialogueRunDataset``); each item
    gets a fresh functional temporary LoRA, written on its inner
    utterances, then the outer loss
    ``outer_audio_weight · L_audio + emotion_loss_weight · L_emotion`` of
    the next utterances is computed with the adapted weights and
    back-propagated into the fixed parameters only (fixed LoRA, new rows,
    feature projection: the optimizer is ``DPMBrain``'s). Validation stays
    on packed windows.

    Hparams (all optional but the ``DPMBrain`` ones): ``training_mode``
    (plain | dpm_aware), ``inner_utts`` (4), ``outer_utts`` (2),
    ``run_stride`` (outer_utts), ``inner_lr`` (``memory_lr`` or 1e-3),
    ``inner_steps`` (1), ``inner_optimizer`` (adamw | sgd),
    ``inner_weight_decay`` (0), ``meta_order`` (first | second),
    ``memory_rank`` (8), ``memory_alpha`` (16), ``memory_placement``
    (all-linear), ``memory_layers`` (None), ``memory_input_proj`` (False),
    ``memory_shield`` (False), ``memory_seed`` (0), ``dpm_n_context``
    (``n_r`` or 256), ``dpm_n_limit`` (``n_limit`` or None),
    ``outer_audio_weight`` (``audio_loss_weight``).
    """

    _memory_lora = None

    def _opt(self, name, default=None):
        return getattr(self.hparams, name, default)

    @property
    def training_mode(self):
        """``plain`` or ``dpm_aware`` (hparam ``training_mode``)."""
        mode = self._opt("training_mode", "plain")
        if mode not in TRAINING_MODES:
            raise ValueError(
                f"training_mode must be one of {TRAINING_MODES}, got {mode!r}"
            )
        return mode

    @property
    def memory_lora(self):
        """The functional temporary LoRA used by the inner loop."""
        if self._memory_lora is None:
            self._memory_lora = FunctionalLoRA(
                self.sllm,
                rank=self._opt("memory_rank", 8),
                alpha=self._opt("memory_alpha", 16),
                placement=self._opt("memory_placement", "all-linear"),
                layers=self._opt("memory_layers"),
                input_proj=self._opt("memory_input_proj", False),
            )
        return self._memory_lora

    def make_run_loader(self, dialogues, stage=sb.Stage.TRAIN, **loader_kw):
        """A dataloader of DPM-aware items (SpeechBrain's samplers, DDP).

        Arguments
        ---------
        dialogues : list of (str, list of Utterance)
            From ``load_dialogues``.
        stage : speechbrain.Stage
            The stage.
        **loader_kw
            Options of ``make_dataloader`` (batch_size, shuffle ...).

        Returns
        -------
        torch.utils.data.DataLoader
            Batches from ``collate_runs``.
        """
        outer = self._opt("outer_utts", 2)
        dataset = DialogueRunDataset(
            dialogues,
            inner_utts=self._opt("inner_utts", 4),
            outer_utts=outer,
            n_context=self._opt("dpm_n_context", self._opt("n_r", 256)),
            n_limit=self._opt("dpm_n_limit", self._opt("n_limit")),
            stride=self._opt("run_stride", outer),
        )
        loader_kw.setdefault("collate_fn", collate_runs)
        return self.make_dataloader(dataset, stage, **loader_kw)

    def make_window_loader(self, dialogues, stage, **loader_kwargs):
        """Runs of utterances for DPM-aware training, else packed windows."""
        if stage == sb.Stage.TRAIN and self.training_mode == "dpm_aware":
            return self.make_run_loader(dialogues, stage, **loader_kwargs)
        return super().make_window_loader(dialogues, stage, **loader_kwargs)

    @contextlib.contextmanager
    def _write_mode(self):
        # Writes are inference: no dropout in the fixed LoRA (LoRAMemory).
        sllm = self.modules.sllm
        was_training = sllm.training
        sllm.eval()
        try:
            yield
        finally:
            sllm.train(was_training)

    def inner_loop(self, batch):
        """Writes each item's inner utterances into its fresh memory.

        Arguments
        ---------
        batch : dict
            From ``collate_runs`` (on the device).

        Returns
        -------
        tuple
            (adapted weights, one set per item row; per-row audio loss of
            each write before its first step, [n_writes, B], NaN where
            inactive). With ``meta_order="second"`` the weights carry the
            autograd history of the inner steps.
        """
        order = self._opt("meta_order", "first")
        if order not in META_ORDERS:
            raise ValueError(f"meta_order must be one of {META_ORDERS}")
        second = order == "second"
        lora = self.memory_lora
        weights = lora.init_weights(
            batch["n_items"], self._opt("memory_seed", 0), self.device
        )
        for w in weights:
            w.requires_grad_(True)
        state = {}
        step_kw = {
            "optimizer": self._opt("inner_optimizer", "adamw"),
            "lr": self._opt("inner_lr", self._opt("memory_lr", 1e-3)),
            "betas": tuple(self._opt("inner_betas", (0.9, 0.999))),
            "eps": self._opt("inner_eps", 1e-7),
            "weight_decay": self._opt("inner_weight_decay", 0.0),
        }
        n_steps = self._opt("inner_steps", 1)
        # Flash / efficient attention kernels have no double backward.
        kernel = contextlib.nullcontext()
        if second:
            from torch.nn.attention import SDPBackend, sdpa_kernel

            kernel = sdpa_kernel(SDPBackend.MATH)
        losses = []
        with torch.enable_grad(), self._write_mode(), kernel:
            for write in batch["inner"]:
                steps = torch.arange(
                    write["tokens"].shape[1], device=self.device
                )
                in_window = steps[None] < write["lengths"][:, None]
                targets = write["audio_targets"] & in_window
                active = write["active"] & targets[:, 1:].any(1)
                first = None
                for _ in range(n_steps):
                    if not bool(active.any()):
                        break
                    with lora.applied(weights):
                        hidden = self.modules.sllm(
                            write["tokens"],
                            write["feats"],
                            write["lengths"],
                            outputs="audio",
                        )
                    per_row = row_audio_loss(
                        self.sllm, hidden, write["tokens"], targets
                    )
                    if first is None:
                        first = per_row.detach()
                    loss = (per_row * active.to(per_row.dtype)).sum()
                    # (a memory on the input projection gets no gradient
                    # when the audio loss sees the units only)
                    grads = torch.autograd.grad(
                        loss, weights, create_graph=second, allow_unused=True
                    )
                    grads = [
                        torch.zeros_like(w) if g is None else g
                        for g, w in zip(grads, weights)
                    ]
                    weights, state = functional_step(
                        weights, grads, state, active, **step_kw
                    )
                    if not second:
                        weights = [
                            w.detach().requires_grad_(True) for w in weights
                        ]
                if first is not None:
                    nan = torch.full_like(first, float("nan"))
                    losses.append(torch.where(active, first, nan))
        if not second:
            weights = [w.detach() for w in weights]
        losses = torch.stack(losses) if losses else torch.empty(0)
        return weights, losses

    def compute_forward(self, batch, stage):
        """Packed windows as ``DPMBrain``; DPM-aware items: inner loop, then
        the outer read with the adapted memory."""
        if not (isinstance(batch, dict) and "inner" in batch):
            return super().compute_forward(batch, stage)
        batch = _to_device(batch, self.device)
        weights, inner_losses = self.inner_loop(batch)
        outer = batch["outer"]
        mask = None
        if self._opt("memory_shield", False):
            steps = torch.arange(outer["tokens"].shape[1], device=self.device)
            mask = (steps[None] < outer["n_context"][:, None]).float()
        w_audio = self._opt(
            "outer_audio_weight", self.hparams.audio_loss_weight
        )
        args = outer["tokens"], outer["feats"], outer["lengths"]
        # Two calls, not one 2B batch: the memory's weights are per item.
        with self.memory_lora.applied(weights, mask):
            hidden = audio_hidden = self.modules.sllm(*args)
            if w_audio and not self.sllm.audio_forward_is_read:
                audio_hidden = self.modules.sllm(*args, outputs="audio")
        return {
            "hidden": hidden,
            "audio_hidden": audio_hidden,
            "inner_losses": inner_losses,
        }

    def compute_objectives(self, predictions, batch, stage):
        """``DPMBrain``'s loss; DPM-aware items: the outer loss."""
        if not (isinstance(batch, dict) and "inner" in batch):
            return super().compute_objectives(predictions, batch, stage)
        outer = _to_device(batch["outer"], self.device)
        hidden = predictions["hidden"]
        steps = torch.arange(hidden.shape[1], device=self.device)
        in_window = steps[None] < outer["lengths"][:, None]
        targets = outer["audio_targets"] & in_window
        l_audio = self.sllm.audio_loss(
            predictions["audio_hidden"], outer["tokens"], targets
        )
        l_emo = self.sllm.emotion_loss(
            hidden, outer["emo_positions"], outer["labels"]
        )
        w_audio = self._opt(
            "outer_audio_weight", self.hparams.audio_loss_weight
        )
        loss = w_audio * l_audio + self.hparams.emotion_loss_weight * l_emo
        self.loss_parts["audio"] += l_audio.item()
        self.loss_parts["emotion"] += l_emo.item()
        self.loss_parts["batches"] += 1
        inner = predictions["inner_losses"]
        inner = inner[~torch.isnan(inner)]
        if inner.numel():
            self.loss_parts["inner"] += inner.mean().item()
            self.loss_parts["inner_batches"] += 1
        return loss

    def on_stage_start(self, stage, epoch=None):
        """Resets the accumulators (and the inner-loop loss)."""
        super().on_stage_start(stage, epoch)
        self.loss_parts.update(inner=0.0, inner_batches=0)

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """As ``DPMBrain``; training stats add the mean inner audio loss."""
        if stage == sb.Stage.TRAIN and self.loss_parts["inner_batches"]:
            inner = self.loss_parts["inner"] / self.loss_parts["inner_batches"]
        else:
            inner = None
        super().on_stage_end(stage, stage_loss, epoch)
        if inner is not None:
            self.train_stats["inner_audio_loss"] = inner


# --------------------------------------------------------------------------
# Inference: placed / shielded memory
# --------------------------------------------------------------------------


class PlacedLoRAMemory(LoRAMemory):
    """``LoRAMemory`` on a ``FunctionalLoRA``: any placement, shielded read.

    Same writes, optimizer, reset and diagnostics as ``LoRAMemory``, but
    the temporary LoRA is a ``FunctionalLoRA`` (hooks, no peft adapter), so
    it can sit on the audio input projection, on attention / MLP only or on
    the lower layers, and the read can be *shielded*: the memory applied
    only to the positions before the current utterance, whose length the
    strategy sets in ``current_len`` before each read. Its initial weights
    are those of ``DPMAwareBrain``'s inner loop for the same rank,
    placement and seed, so a model trained DPM-aware is read as trained.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model; never modified.
    placement : str or list of str
        See ``parse_placement``.
    layers : list of int, optional
        Only these decoder layers.
    input_proj : bool
        Also adapt the audio input projection.
    shield : bool
        Shielded read-out.
    **kwargs
        Options of ``LoRAMemory`` (rank, alpha, lr, steps, optimizer ...);
        ``target_modules`` is not one (use ``placement``).

    Example
    -------
    >>> from speechbrain_dpm.sllm import EmotionSLLM, tiny_llm
    >>> from speechbrain_dpm.sequence import context_window, make_utterance
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
    >>> utt = make_utterance(torch.tensor([1, 2, 3]), None, sllm.space)
    >>> memory = PlacedLoRAMemory(sllm, placement="attention", rank=2)
    >>> len(memory.lora.sites)
    8
    >>> out = memory.write(context_window([], utt, n_context=4))
    >>> memory.active, memory.n_steps
    (True, 1)
    """

    def __init__(
        self,
        sllm,
        placement="all-linear",
        layers=None,
        input_proj=False,
        shield=False,
        **kwargs,
    ):
        if "target_modules" in kwargs:
            raise ValueError("PlacedLoRAMemory takes placement=, not targets")
        self._placement = (placement, layers, input_proj)
        self.shield = shield
        self.current_len = None
        self.lora = None
        kwargs.setdefault("adapter_name", "placed_memory")
        super().__init__(sllm, **kwargs)

    def _adapter(self, rank, alpha, target_modules, layers):
        placement, layers, input_proj = self._placement
        self.lora = FunctionalLoRA(
            self.sllm, rank, alpha, placement, layers, input_proj
        )
        return self.lora.init_weights(1, self.seed)

    def _set_active(self, active):
        if self.lora is None or active == self.lora.attached:
            self.active = active
            return
        if active:
            self.lora.attach(self.params)
        else:
            self.lora.detach()
        self.active = active

    @torch.no_grad()
    def reset(self):
        """Re-initialises the memory in place; drops optimizer state, grads."""
        self.lora.reinit_(self.params, self.seed)
        for param in self.params:
            param.grad = None
        self.optimizer.state.clear()
        self._set_active(False)

    @torch.no_grad()
    def read(self, window):
        """Emotion logits at the window's last position; shielded if asked.

        Arguments
        ---------
        window : speechbrain_dpm.sequence.Window
            The read window; with ``shield`` its last ``current_len``
            tokens are the current utterance, read without the memory.

        Returns
        -------
        torch.Tensor
            [C] logits (float, on the CPU).
        """
        if not (self.shield and self.active):
            return super().read(window)
        if self.current_len is None:
            raise RuntimeError("a shielded read needs current_len")
        size = window.tokens.shape[0]
        device = self.sllm.token_out.device
        steps = torch.arange(size, device=device)
        self.lora.mask = (steps < size - self.current_len).float()[None]
        try:
            return super().read(window)
        finally:
            self.lora.mask = None


@register("dpm_placed")
class PlacedDPMStrategy(DPMStrategy):
    """``DPMStrategy`` with a ``PlacedLoRAMemory``: placement, shielding.

    Options are ``DPMStrategy``'s plus ``placement``, ``layers``,
    ``input_proj`` and ``shield``. With ``every=0`` it is exactly the
    sliding window; with ``shield`` every read of utterance t (with or
    without a write before it) applies the memory only to the positions
    before t, and the read-out is never taken from a write's forward.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    memory : PlacedLoRAMemory, optional
        A ready memory (then no memory options may be given).
    **kwargs
        ``DPMStrategy`` and ``PlacedLoRAMemory`` options.

    Example
    -------
    >>> from speechbrain_dpm.context import build_strategy
    >>> from speechbrain_dpm.sllm import EmotionSLLM, tiny_llm
    >>> from speechbrain_dpm.sequence import make_utterance
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, feat_dim=2,
    ...                    audio_loss_input="units+continuous")
    >>> utts = [make_utterance(torch.tensor([1, 2, i]), torch.randn(3, 2),
    ...                        sllm.space) for i in range(3)]
    >>> dpm = build_strategy("dpm_placed", sllm, n_context=4, rank=2,
    ...                      placement="input-proj", shield=True)
    >>> dpm.predict_dialogue(utts).shape
    torch.Size([3, 4])
    """

    STRATEGY_KEYS = (
        "n_context",
        "n_limit",
        "every",
        "diagnostics",
        "max_tokens",
    )

    def __init__(self, sllm, memory=None, **kwargs):
        strategy_kw = {
            k: kwargs.pop(k) for k in self.STRATEGY_KEYS if k in kwargs
        }
        if memory is not None and kwargs:
            raise ValueError("give either memory= or memory options")
        if memory is None:
            memory = PlacedLoRAMemory(sllm, **kwargs)
        super().__init__(sllm, memory=memory, **strategy_kw)

    def push(self, utt):
        """Writes (every ``every`` utterances) and reads ``utt``."""
        self.memory.current_len = len(utt)
        return super().push(utt)

    def read(self, window):
        """Reads through the memory (shielded if asked) once written."""
        if self.memory.shield and self.memory.active:
            return self.memory.read(window)
        return super().read(window)

    def _write_and_read(self, read_window, record):
        if not self.memory.shield:
            return super()._write_and_read(read_window, record)
        # A write's forward applies the memory everywhere: its free
        # read-out is not a shielded one, so every read is its own forward.
        memory = self.memory
        windows = self.write_windows()
        self.n_writes += 1
        self.n_pieces += len(windows)
        if len(windows) > 1:
            self.n_split += 1
            self._dialogue_split += 1
        before = None
        if memory.read_order == "before_write" or self.diagnostics:
            before = memory.read(read_window)
            record["p_before"] = _probs(before)
        if self.diagnostics:
            record["loss_without"] = memory.audio_loss(windows[0], False)
        outs = [memory.write(window) for window in windows]
        record["wrote"] = True
        record["loss_with"] = outs[0].loss
        if memory.read_order == "before_write":
            if self.diagnostics:
                record["p_after"] = _probs(memory.read(read_window))
            return before
        logits = memory.read(read_window)
        record["p_after"] = _probs(logits)
        return logits
