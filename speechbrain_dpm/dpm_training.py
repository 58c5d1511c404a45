"""DPM-aware training: the fixed parameters trained through the memory.

Plain training (``DPMBrain``) never sees the memory: the fixed LoRA, the new
token rows and the feature projection are trained on packed windows, and
the temporary LoRA is only written at inference. ``DPMAwareBrain`` trains
them *through* the memory. A training item is a run of consecutive
utterances of a dialogue: the *inner loop* writes the first ``inner_utts``
utterances into a fresh temporary LoRA (the self-supervised audio loss of
each utterance given its ``n_context`` tokens of context, ``inner_steps``
steps each, with ``LoRAMemory.step``, the very step of an inference write),
then the *outer* loss (emotion, and optionally audio) of the next
``outer_utts`` utterances is computed with the adapted temporary weights
and back-propagated into the fixed parameters. Labels never reach a write.

Each item is one row of the memory's per-row weights, so an item's adapted
weights are just tensors of the autograd graph: ``meta_order="first"``
treats them as constants in the outer loss (FOMAML-like: cheap, the fixed
parameters learn a read-out that works with, and is not drifted by, what a
write stores), ``"second"`` differentiates through the inner steps
(``create_graph=True``), so the fixed parameters also learn features whose
write stores what persists in a conversation. Every item starts from the
same fresh weights (seeded A, B = 0, as a fresh memory slot) and its inner
state lives only inside one ``compute_forward``: nothing leaks between items
or dialogues.

Authors
 * speechbrain_dpm developers 2026
"""

import contextlib

import speechbrain as sb
import torch
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.brain import DPMBrain
from speechbrain_dpm.memory import LoRAMemory
from speechbrain_dpm.sequence import (
    Utterance,
    Window,
    collate_windows,
    context_window,
)
from speechbrain_dpm.settings import DPMAwareOptions

logger = get_logger(__name__)


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
        From ``speechbrain_dpm.training_data.load_dialogues``.
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
    """``DPMBrain`` that trains the fixed parameters through the memory.

    The training loader (``make_window_loader`` at the TRAIN stage) yields
    runs of utterances (``DialogueRunDataset``); each item gets a fresh
    functional temporary LoRA, written on its inner utterances, then the
    outer loss
    ``outer_audio_weight · L_audio + emotion_loss_weight · L_emotion`` of
    the next utterances is computed with the adapted weights and
    back-propagated into the fixed parameters only (fixed LoRA, new rows,
    feature projection: the optimizer is ``DPMBrain``'s). Validation stays
    on packed windows.

    Hparams: the ``DPMBrain`` ones and ``dpm_aware_training``, a
    ``speechbrain_dpm.settings.DPMAwareOptions`` (see
    ``recipes/IEMOCAP/hparams/dpm_aware.yaml``), read once here.
    """

    _memory_lora = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        options = self.hparams.dpm_aware_training
        if not isinstance(options, DPMAwareOptions):
            raise TypeError(
                "dpm_aware_training must be a DPMAwareOptions "
                "(!new:speechbrain_dpm.settings.DPMAwareOptions), got "
                f"{type(options).__name__}"
            )
        self.options = options

    @property
    def memory_lora(self):
        """The temporary LoRA of the inner loop (its per-row weights are
        passed explicitly, so its own slots stay unused)."""
        if self._memory_lora is None:
            opts = self.options
            self._memory_lora = LoRAMemory(
                self.sllm,
                rank=opts.memory_rank,
                alpha=opts.memory_alpha,
                target_modules=opts.memory_placement,
                layers=opts.memory_layers,
                input_proj=opts.memory_input_proj,
                optimizer=opts.inner_optimizer,
                lr=opts.inner_lr,
                betas=tuple(opts.inner_betas),
                eps=opts.inner_eps,
                weight_decay=opts.inner_weight_decay,
                seed=opts.memory_seed,
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
        opts = self.options
        dataset = DialogueRunDataset(
            dialogues,
            inner_utts=opts.inner_utts,
            outer_utts=opts.outer_utts,
            n_context=opts.dpm_n_context,
            n_limit=opts.dpm_n_limit,
            stride=opts.stride,
        )
        loader_kw.setdefault("collate_fn", collate_runs)
        return self.make_dataloader(dataset, stage, **loader_kw)

    def make_window_loader(self, dialogues, stage, **loader_kwargs):
        """Runs of utterances for training, packed windows otherwise."""
        if stage == sb.Stage.TRAIN:
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
        second = self.options.meta_order == "second"
        memory = self.memory_lora
        weights = memory.fresh_weights(batch["n_items"], self.device)
        state = {}
        n_steps = self.options.inner_steps
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
                rows = (write["tokens"], write["feats"], write["lengths"])
                first = None
                for _ in range(n_steps):
                    if not bool(active.any()):
                        break
                    if not second:
                        weights = [
                            w.detach().requires_grad_(True) for w in weights
                        ]
                    elif not weights[0].requires_grad:
                        weights = [w.requires_grad_(True) for w in weights]
                    # Through the (possibly DDP-wrapped) module.
                    weights, state, per_row, _ = memory.step(
                        weights,
                        state,
                        (*rows, targets),
                        active,
                        create_graph=second,
                        model=self.modules.sllm,
                    )
                    if first is None:
                        first = per_row
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
        if self.options.memory_shield:
            steps = torch.arange(outer["tokens"].shape[1], device=self.device)
            mask = (steps[None] < outer["n_context"][:, None]).float()
        w_audio = self.options.outer_audio_weight
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
        w_audio = self.options.outer_audio_weight
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
