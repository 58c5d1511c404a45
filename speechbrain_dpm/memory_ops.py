"""The stateless maths of the temporary LoRA: where it sits, one optimizer
step per row, per-row gradient clipping and per-row audio loss.

Every function works on tensors with a leading *row* axis (a conversation
slot at inference, a training item in DPM-aware training), so that rows
never mix: each behaves exactly as if it were alone. ``LoRAMemory``
(``speechbrain_dpm.memory``) builds on them.

Authors
 * speechbrain_dpm developers 2026
"""

import torch

from speechbrain_dpm.llm import ALL_LINEAR

ATTENTION = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP = ("gate_proj", "up_proj", "down_proj")
MODULE_PRESETS = {"all-linear": ALL_LINEAR, "attention": ATTENTION, "mlp": MLP}
INPUT_PROJ = "input-proj"
OPTIMIZERS = ("adamw", "sgd")


def parse_placement(placement, n_layers, layers=None, input_proj=False):
    """Resolves where the temporary LoRA sits.

    Arguments
    ---------
    placement : str or list of str
        ``+``-joined tokens: ``all-linear``, ``attention``, ``mlp`` (which
        linears of a decoder layer), ``lower-<k>`` (only the k lowest
        layers), ``input-proj`` (the audio input projection); e.g.
        ``attention+lower-2``. Without a module token the trunk gets
        ``all-linear``, unless the only token is ``input-proj``. A list
        gives the linears' leaf names explicitly.
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


def _rows(flags, like):
    """[R] flags or factors shaped to broadcast over [R, ...] tensors."""
    return flags.view(flags.shape[0], *([1] * (like.dim() - 1)))


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
    """One differentiable optimizer step per row (AdamW or SGD).

    The arithmetic of torch's ``AdamW`` / ``SGD``, out of place (so a step
    can be differentiated through) and with a step count per row, so a row
    that joined later gets its own bias correction. Rows where ``active`` is
    False are unchanged (weights, moments and step count).

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
    if optimizer == "sgd":
        new = []
        for w, g in zip(weights, grads):
            if weight_decay:
                g = g + weight_decay * w
            new.append(w - lr * _rows(active, w).to(w.dtype) * g)
        return new, state
    if optimizer != "adamw":
        raise ValueError(f"optimizer must be adamw or sgd: {optimizer!r}")
    beta1, beta2 = betas
    step = state.get("step", torch.zeros(rows, device=weights[0].device))
    exp_avg = state.get("exp_avg", [torch.zeros_like(w) for w in weights])
    exp_avg_sq = state.get("exp_avg_sq", [torch.zeros_like(w) for w in weights])
    step = step + active.to(step.dtype)
    # Rows that never stepped would divide by zero in an unused branch.
    counted = step.clamp(min=1)
    correction1 = 1 - beta1**counted
    correction2_sqrt = (1 - beta2**counted).sqrt()
    new_w, new_m, new_v = [], [], []
    for w, g, m, v in zip(weights, grads, exp_avg, exp_avg_sq):
        on = _rows(active, w)
        m_next = torch.where(on, m + (g - m) * (1 - beta1), m)
        v_next = torch.where(on, v * beta2 + g * g * (1 - beta2), v)
        step_size = _rows(lr / correction1, w)
        denom = _safe_sqrt(v_next) / _rows(correction2_sqrt, w) + eps
        decayed = w * (1 - lr * weight_decay) if weight_decay else w
        w_next = decayed - step_size * m_next / denom
        new_w.append(torch.where(on, w_next, w))
        new_m.append(m_next)
        new_v.append(v_next)
    return new_w, {"step": step, "exp_avg": new_m, "exp_avg_sq": new_v}


def clip_rows(grads, max_norm):
    """Clips each row's gradient norm (over all tensors) to ``max_norm``.

    The rule of ``torch.nn.utils.clip_grad_norm_``, applied per row, so a
    slot is clipped as it would be alone.

    Example
    -------
    >>> g = [torch.tensor([[3.0, 4.0], [0.3, 0.4]])]
    >>> clip_rows(g, 1.0)[0].norm(dim=1).round(decimals=3).tolist()
    [1.0, 0.5]
    """
    squares = sum(g.flatten(1).pow(2).sum(1) for g in grads)
    coef = (max_norm / (squares.sqrt() + 1e-6)).clamp(max=1.0)
    return [g * _rows(coef, g).to(g.dtype) for g in grads]


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
        [B] float32 losses (0 for a row without targets).
    """
    mask = sllm.predicted_targets(tokens, targets)
    counts = mask.sum(1)
    if not bool(counts.any()):
        return hidden.float().sum((1, 2)) * 0.0
    pred = hidden[:, :-1][mask].float()
    nll = -sllm.audio_log_probs(pred, tokens[:, 1:][mask]).float()
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    rows = rows[:, None].expand_as(mask)[mask]
    sums = torch.zeros(hidden.shape[0], device=nll.device).index_add(
        0, rows, nll
    )
    return sums / counts.clamp(min=1).to(sums.dtype)
