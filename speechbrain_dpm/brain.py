"""``DPMBrain``: trains the emotion SLLM and evaluates it per dialogue through
a context strategy.

Training sees dialogues packed into windows of whole utterances (at most
``n_ctx`` tokens): the loss is L = w_a · L_audio + w_e · L_emotion (the
paper: ½ and ½), L_audio being next-unit prediction of every utterance from
what precedes it in the window, L_emotion the cross-entropy of the emotion
at every ``<audio_end>`` (logits restricted to the emotion tokens).

Evaluation is per dialogue, utterances in order, through a strategy of
``speechbrain_dpm.context`` (utterance / one_pass / sliding / dpm). Under DDP
each rank labels a shard of the dialogues and rank 0 gathers them.

Authors
 * speechbrain_dpm developers 2026
"""

import dataclasses
import json
import os

import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.context import build_strategy
from speechbrain_dpm.dpm_strategy import summarize_diagnostics
from speechbrain_dpm.metrics import (
    accuracy_by_position,
    classification_metrics,
    write_results,
)
from speechbrain_dpm.sequence import (
    collate_windows,
    group_dialogues,
    make_utterance,
    pack_dialogue,
    speaker_slots,
    with_emotion,
)

logger = get_logger(__name__)


@register_checkpoint_hooks
class RNGState:
    """Checkpoints torch's global RNG, so a resumed run draws the same
    dropout masks as an uninterrupted one."""

    @mark_as_saver
    def save(self, path):
        """Saves the CPU RNG state."""
        torch.save(torch.get_rng_state(), path)

    @mark_as_loader
    def load(self, path, end_of_epoch):
        """Restores the CPU RNG state."""
        del end_of_epoch
        torch.set_rng_state(torch.load(path))


def return_freed_memory(device):
    """On CPU with glibc, makes freed tensors' memory go back to the OS.

    glibc raises its mmap threshold (up to 32 MiB) whenever a large block is
    freed; from then on a training step's activations (a few MiB each) come
    from the heap, and once freed they stay resident, fragmented. Fixing the
    threshold at glibc's initial 128 KiB keeps the resident memory at what
    is live: the SmolLM2 demo step with gradient checkpointing peaks at
    1.7 GB resident instead of 6.8 GB (``benchmarks/footprint.py``). The
    same as ``MALLOC_MMAP_THRESHOLD_=131072``; nothing elsewhere (CUDA has
    its own allocator).

    Arguments
    ---------
    device : str or torch.device
        The training device.

    Returns
    -------
    bool
        Whether the threshold was set.

    Example
    -------
    >>> return_freed_memory("cuda:0")
    False
    """
    import ctypes
    import ctypes.util
    import platform

    if torch.device(device).type != "cpu" or platform.system() != "Linux":
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        m_mmap_threshold = -3  # <malloc.h>
        return bool(libc.mallopt(m_mmap_threshold, 128 * 1024))
    except (OSError, AttributeError):  # not glibc (e.g. musl)
        return False


def load_dialogues(manifest, emotions, space, with_feats=True):
    """Loads a units manifest as dialogues of ``Utterance``.

    Arguments
    ---------
    manifest : str or dict
        Manifest (path or dict) whose entries have a ``units`` cache path
        (see ``speechbrain_dpm.units.extract_units``) and an ``emo`` label.
    emotions : list of str
        Class names; the label index is the position in this list.
    space : speechbrain_dpm.sequence.TokenSpace
        The token space.
    with_feats : bool
        Keep the continuous features (for ``units+continuous``).

    Returns
    -------
    list of (str, list of Utterance)
        (dialogue id, utterances in turn order).

    Raises
    ------
    ValueError
        If an utterance's label is not one of ``emotions``, or an entry has
        no ``units``; the message names the utterance.
    """
    index = {name: i for i, name in enumerate(emotions)}
    dialogues = []
    for dia_id, turns in group_dialogues(manifest).items():
        utts = []
        slots = [None] * len(turns)
        if space.n_speakers:
            speakers = [entry.get("speaker", "") for _, entry in turns]
            slots = speaker_slots(speakers, space.n_speakers)
        for (utt_id, entry), slot in zip(turns, slots):
            if entry.get("emo") not in index:
                raise ValueError(
                    f"utterance {utt_id}: label {entry.get('emo')!r} is not "
                    f"one of {emotions}"
                )
            if "units" not in entry:
                raise ValueError(
                    f"utterance {utt_id} has no 'units' entry: run the units "
                    "stage (speechbrain_dpm.units.extract_units) first"
                )
            cached = torch.load(entry["units"], map_location="cpu")
            feats = cached["feats"] if with_feats else None
            utts.append(
                make_utterance(
                    cached["units"],
                    feats,
                    space,
                    label=index[entry["emo"]],
                    utt_id=utt_id,
                    speaker=entry.get("speaker", ""),
                    speaker_slot=slot,
                )
            )
        dialogues.append((dia_id, utts))
    return dialogues


def balanced_class_weights(labels, n_classes):
    """Class weights n / (C · n_c) of the labels (scikit-learn's
    ``balanced``); a class absent from ``labels`` gets weight 0.

    Arguments
    ---------
    labels : list of int
        Class indices.
    n_classes : int
        Number of classes C.

    Returns
    -------
    torch.Tensor
        [C] weights (mean 1 over the classes present, when all are).

    Example
    -------
    >>> [round(w, 3) for w in balanced_class_weights([0, 0, 0, 1], 2).tolist()]
    [0.667, 2.0]
    """
    counts = torch.bincount(
        torch.tensor(labels, dtype=torch.long), minlength=n_classes
    )
    counts = counts[:n_classes].float()
    present = counts > 0
    weights = torch.zeros(n_classes)
    weights[present] = counts.sum() / (int(present.sum()) * counts[present])
    return weights


class WindowDataset(torch.utils.data.Dataset):
    """Training windows: dialogues packed into windows of whole utterances.

    Arguments
    ---------
    dialogues : list of (str, list of Utterance)
        From ``load_dialogues``.
    n_ctx : int
        Maximum tokens per window (0: one utterance per window, the
        classifier's training).
    utterance_windows : bool
        With ``n_ctx > 0``, also one window per utterance alone: the model
        learns to read an utterance with and without its context.
    feedback_space : speechbrain_dpm.sequence.TokenSpace, optional
        For a model with emotion feedback: each utterance is followed by
        its gold emotion token (see ``sequence.with_emotion``).
    feedback_noise : float
        Share of the fed-back tokens replaced, each time a window is drawn,
        by a uniformly random class: at evaluation the fed-back tokens are
        the model's own, imperfect predictions, so it must not learn to
        trust them blindly.

    Example
    -------
    >>> from speechbrain_dpm.sequence import TokenSpace
    >>> space = TokenSpace(8, 4)
    >>> utt = make_utterance(torch.tensor([1, 2]), None, space, 0)
    >>> len(WindowDataset([("d", [utt] * 4)], n_ctx=6))
    2
    >>> len(WindowDataset([("d", [utt] * 4)], 6, utterance_windows=True))
    6
    >>> data = WindowDataset([("d", [utt] * 2)], 8, feedback_space=space)
    >>> data[0].tokens.tolist(), data[0].emo_positions
    ([1, 2, 8, 9, 1, 2, 8, 9], [2, 6])
    """

    def __init__(
        self,
        dialogues,
        n_ctx,
        utterance_windows=False,
        feedback_space=None,
        feedback_noise=0.0,
    ):
        if not 0.0 <= feedback_noise <= 1.0:
            raise ValueError(
                f"feedback_noise must be in [0, 1], got {feedback_noise}"
            )
        self.space = feedback_space
        self.noise = feedback_noise
        self.windows = []
        for _, utts in dialogues:
            if feedback_space is not None:
                utts = [
                    with_emotion(u, u.label, feedback_space)
                    if u.label >= 0
                    else u
                    for u in utts
                ]
            if n_ctx > 0:
                self.windows += pack_dialogue(utts, n_ctx)
            if n_ctx <= 0 or utterance_windows:
                self.windows += [pack_dialogue([u], len(u))[0] for u in utts]

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, index):
        window = self.windows[index]
        if self.space is None or not self.noise:
            return window
        # Fresh corruption per draw (torch's RNG: checkpointed, so a
        # resumed run draws the same windows).
        tokens = window.tokens.clone()
        flip = self.space.is_emotion(tokens)
        flip &= torch.rand(tokens.shape) < self.noise
        random = torch.randint(self.space.n_emotions, tokens.shape)
        tokens[flip] = self.space.emotion(0) + random[flip]
        return dataclasses.replace(window, tokens=tokens)


class DPMBrain(sb.Brain):
    """Trains the emotion SLLM (fixed LoRA + new rows) and evaluates it per
    dialogue through context strategies.

    Expected ``modules``: ``sllm`` (an ``EmotionSLLM``). Expected hparams:
    ``audio_loss_weight``, ``emotion_loss_weight``, ``emotions``, ``n_ctx``,
    and with an audio loss ``audio_loss_at_reads``; optional
    ``train_logger`` and ``utterance_windows``.
    """

    @property
    def sllm(self):
        """The EmotionSLLM, unwrapped from DDP if needed."""
        module = self.modules.sllm
        return getattr(module, "module", module)

    def on_fit_start(self):
        """SpeechBrain's start of fit; on CPU, lean host memory
        (``return_freed_memory``)."""
        super().on_fit_start()
        return_freed_memory(self.device)

    def init_optimizers(self):
        """Optimises only the SLLM's trainable parameters."""
        if self.opt_class is None:
            return
        self.optimizer = self.opt_class(self.sllm.trainable_parameters())
        self.optimizers_dict = {"optimizer": self.optimizer}
        if self.checkpointer is not None:
            self.checkpointer.add_recoverable("optimizer", self.optimizer)
            self.checkpointer.add_recoverable("rng", RNGState())

    def _to_device(self, batch):
        return {
            key: val.to(self.device) if torch.is_tensor(val) else val
            for key, val in batch.items()
        }

    def own_feedback(self, batch):
        """The batch with its fed-back emotion tokens replaced by the
        model's own reads of the same windows (one pass without gradient).

        Training with ``feedback_source: own``: the tokens later turns see
        are then as good as the model's reads, as they will be at
        evaluation, not the gold labels (parallel scheduled sampling).

        Arguments
        ---------
        batch : dict
            From ``collate_windows``, on the Brain's device, windows built
            with emotion feedback.

        Returns
        -------
        dict
            The batch with new ``tokens``.
        """
        space = self.sllm.space
        with torch.no_grad():
            hidden = self.modules.sllm(
                batch["tokens"], batch["feats"], batch["lengths"]
            )
            rows, reads, logits = self.labelled_reads(hidden, batch)
            preds = logits.argmax(-1)
        fed = reads + 1  # the emotion token right after each <audio_end>
        inside = fed < batch["lengths"][rows]
        rows, fed, preds = rows[inside], fed[inside], preds[inside]
        tokens = batch["tokens"].clone()
        is_emotion = space.is_emotion(tokens[rows, fed])
        tokens[rows[is_emotion], fed[is_emotion]] = (
            space.emotion(0) + preds[is_emotion]
        )
        return {**batch, "tokens": tokens}

    def compute_forward(self, batch, stage):
        """Hidden states of the batch's windows: ``(hidden, audio_hidden)``
        for the read-out and the audio loss (see ``audio_loss_input``)."""
        batch = self._to_device(batch)
        if (
            stage == sb.Stage.TRAIN
            and self.sllm.emotion_feedback
            and getattr(self.hparams, "feedback_source", "gold") == "own"
        ):
            batch = self.own_feedback(batch)
        args = batch["tokens"], batch["feats"], batch["lengths"]
        if self.hparams.audio_loss_weight:
            return self.modules.sllm(*args, outputs="both")
        hidden = self.modules.sllm(*args)
        return hidden, hidden  # (no audio loss to learn from)

    def compute_objectives(self, predictions, batch, stage):
        """L = w_a · L_audio + w_e · L_emotion."""
        batch = self._to_device(batch)
        hidden, audio_hidden = predictions
        steps = torch.arange(hidden.shape[1], device=self.device)
        in_window = steps[None] < batch["lengths"][:, None]
        targets = batch["audio_targets"] & in_window
        if self.hparams.audio_loss_weight and not (
            self.hparams.audio_loss_at_reads
        ):
            targets = self.without_read_targets(targets, batch)
        l_audio = self.sllm.audio_loss(audio_hidden, batch["tokens"], targets)
        l_emo = self.sllm.emotion_loss(
            hidden,
            batch["emo_positions"],
            batch["labels"],
            self.class_weights if stage == sb.Stage.TRAIN else None,
        )
        loss = (
            self.hparams.audio_loss_weight * l_audio
            + self.hparams.emotion_loss_weight * l_emo
        )
        self.loss_parts["audio"] += l_audio.item()
        self.loss_parts["emotion"] += l_emo.item()
        self.loss_parts["batches"] += 1
        if stage != sb.Stage.TRAIN:
            _, _, logits = self.labelled_reads(hidden, batch)
            self.valid_true += batch["labels"][batch["labels"] >= 0].tolist()
            self.valid_pred += logits.argmax(-1).tolist()
        return loss

    @staticmethod
    def without_read_targets(targets, batch):
        """The audio targets less the token right after each emotion read.

        In a packed window without emotion feedback, the token after an
        utterance's ``<audio_end>`` is the next utterance's first unit, so
        the read position would also be asked to predict it. In the
        paper's layout the emotion token sits there instead, and no read
        predicts audio (``audio_loss_at_reads: False`` keeps it so).

        Arguments
        ---------
        targets : torch.BoolTensor
            [B, T] audio targets of the batch.
        batch : dict
            From ``collate_windows`` (``emo_positions``, ``labels``).

        Returns
        -------
        torch.BoolTensor
            [B, T] a copy without the targets at read position + 1.

        Example
        -------
        >>> targets = torch.ones(1, 6, dtype=torch.bool)
        >>> batch = {"emo_positions": torch.tensor([[2, 5]]),
        ...          "labels": torch.tensor([[0, 1]])}
        >>> DPMBrain.without_read_targets(targets, batch).int().tolist()
        [[1, 1, 1, 0, 1, 1]]
        """
        keep = batch["labels"] >= 0
        rows = torch.arange(keep.shape[0], device=targets.device)
        rows = rows[:, None].expand_as(keep)[keep]
        after = batch["emo_positions"][keep].to(targets.device) + 1
        inside = after < targets.shape[1]
        targets = targets.clone()
        targets[rows[inside], after[inside]] = False
        return targets

    def labelled_reads(self, hidden, batch):
        """Rows, positions and emotion logits of a batch's labelled reads
        (padding skipped), in the order of ``batch["labels"][labels >= 0]``.
        """
        keep = batch["labels"] >= 0
        rows = torch.arange(keep.shape[0], device=hidden.device)
        rows = rows[:, None].expand_as(keep)[keep]
        reads = batch["emo_positions"][keep]
        return rows, reads, self.sllm.emotion_logits(hidden[rows, reads])

    def on_stage_start(self, stage, epoch=None):
        """Resets the per-stage accumulators."""
        self.loss_parts = {"audio": 0.0, "emotion": 0.0, "batches": 0}
        self.valid_true, self.valid_pred = [], []

    def on_stage_end(self, stage, stage_loss, epoch=None):
        """Logs losses; on validation, UA and a checkpoint kept by UA."""
        n = max(self.loss_parts["batches"], 1)
        stats = {
            "loss": stage_loss,
            "audio_loss": self.loss_parts["audio"] / n,
            "emotion_loss": self.loss_parts["emotion"] / n,
        }
        if stage == sb.Stage.TRAIN:
            self.train_stats = stats
            return
        y_true, y_pred = self.valid_true, self.valid_pred
        if torch.distributed.is_initialized():
            # Each rank saw its share: score the whole split on every rank
            # (if the loader is not sharded, the copies leave WA/UA as is).
            parts = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, (y_true, y_pred))
            y_true = [y for part in parts for y in part[0]]
            y_pred = [y for part in parts for y in part[1]]
        if self.sllm.emotion_feedback and hasattr(self, "valid_dialogues"):
            metrics = self.feedback_valid_metrics()
            stats.update(UA=metrics["UA"], WA=metrics["WA"])
        elif y_true:
            metrics = classification_metrics(
                y_true, y_pred, list(self.hparams.emotions)
            )
            stats.update(UA=metrics["UA"], WA=metrics["WA"])
        if stage == sb.Stage.VALID:
            logger_ = getattr(self.hparams, "train_logger", None)
            if logger_ is not None:
                logger_.log_stats(
                    stats_meta={"epoch": epoch},
                    train_stats=getattr(self, "train_stats", None),
                    valid_stats=stats,
                )
            if self.checkpointer is not None:
                self.checkpointer.save_and_keep_only(
                    meta={"UA": stats.get("UA", 0.0), "epoch": epoch},
                    max_keys=["UA"],
                )

    class_weights = None  # [C] emotion-loss weights, set with the train loader

    def set_class_weights(self, dialogues):
        """Sets the training emotion loss's class weights from the training
        split, as ``hparams.emotion_class_weights`` says: ``balanced``
        weighs each class by n / (C · n_class), so every class counts
        alike in the loss as in UA; ``null``: plain cross-entropy.

        Arguments
        ---------
        dialogues : list of (str, list of Utterance)
            The training split.

        Returns
        -------
        torch.Tensor or None
            The weights (also ``self.class_weights``).
        """
        mode = self.hparams.emotion_class_weights
        if mode is None:
            self.class_weights = None
            return None
        if mode != "balanced":
            raise ValueError(
                "emotion_class_weights must be 'balanced' or null, "
                f"got {mode!r}"
            )
        self.class_weights = balanced_class_weights(
            [u.label for _, utts in dialogues for u in utts if u.label >= 0],
            len(self.hparams.emotions),
        ).to(self.device)
        logger.info(
            "Emotion loss class weights (balanced): %s",
            dict(zip(self.hparams.emotions, self.class_weights.tolist())),
        )
        return self.class_weights

    def make_window_loader(self, dialogues, stage, **loader_kwargs):
        """A dataloader of packed windows (SpeechBrain's samplers, DDP)."""
        loader_kwargs.setdefault("collate_fn", collate_windows)
        if stage == sb.Stage.TRAIN:
            self.set_class_weights(dialogues)
        # Validation (checkpoint selection) reads the dialogue windows only.
        alone = stage == sb.Stage.TRAIN and getattr(
            self.hparams, "utterance_windows", False
        )
        feedback = {}
        if self.sllm.emotion_feedback:
            feedback["feedback_space"] = self.sllm.space
            if stage == sb.Stage.TRAIN:
                source = getattr(self.hparams, "feedback_source", "gold")
                if source not in ("gold", "own"):
                    raise ValueError(
                        "feedback_source must be 'gold' or 'own', "
                        f"got {source!r}"
                    )
                feedback["feedback_noise"] = self.hparams.feedback_noise
            else:
                # These windows carry gold feedback: validation UA is read
                # with the model's own predictions instead (on_stage_end).
                self.valid_dialogues = dialogues
        dataset = WindowDataset(
            dialogues, self.hparams.n_ctx, alone, **feedback
        )
        return self.make_dataloader(dataset, stage, **loader_kwargs)

    def feedback_valid_metrics(self):
        """Validation WA/UA of an emotion-feedback model, read turn by turn
        with the sliding window and its own predictions fed back (the
        packed validation windows carry gold emotion tokens)."""
        opts = {
            "n_context": getattr(self.hparams, "n_r", self.hparams.n_ctx // 2)
        }
        if getattr(self.hparams, "n_limit", None):
            opts["n_limit"] = self.hparams.n_limit
        rows = self.label_dialogues(
            self.valid_dialogues, "sliding", progressbar=False, **opts
        )
        return classification_metrics(
            [r["label"] for r in rows],
            [r["pred"] for r in rows],
            list(self.hparams.emotions),
        )

    def label_dialogues(
        self, dialogues, strategy, progressbar=None, batch_size=1, **opts
    ):
        """Labels every utterance of every dialogue with a strategy.

        The dialogues are read ``batch_size`` at a time side by side
        (continuous batching, ``ContextStrategy.predict_dialogues``) in the
        Brain's evaluation precision (``--eval_precision``) unless the
        options name one. Under DDP each rank takes every world-size-th
        dialogue and rank 0 receives all; the order of the result does not
        depend on the number of ranks or the batch size.

        Arguments
        ---------
        dialogues : list of (str, list of Utterance)
            From ``load_dialogues``.
        strategy : str
            ``utterance``, ``one_pass``, ``sliding`` or ``dpm``.
        progressbar : bool, optional
            Show a progress bar (default: as the Brain's ``noprogressbar``).
        batch_size : int
            Conversations read at once.
        **opts
            Options of the strategy.

        Returns
        -------
        list of dict
            Per utterance: ``utt_id``, ``dialogue_id``, ``position``,
            ``label``, ``pred``, ``probs``, and ``diagnostics`` (memory
            records) when the strategy keeps them.
        """
        from tqdm import tqdm

        self.modules.eval()
        rank, world = 0, 1
        if torch.distributed.is_initialized():
            rank = torch.distributed.get_rank()
            world = torch.distributed.get_world_size()
        opts.setdefault("precision", self.eval_precision)
        shard = list(enumerate(dialogues))[rank::world]
        runner = build_strategy(strategy, self.sllm, **opts)
        rows = []
        show = not self.noprogressbar if progressbar is None else progressbar
        with tqdm(
            total=len(shard), desc=strategy, disable=not show or rank != 0
        ) as bar:
            runner.clear_records()
            outs = runner.predict_dialogues(
                [utts for _, (_, utts) in shard],
                batch_size,
                on_done=lambda index: bar.update(1),
            )
        records = iter(runner.records)
        for (order, (dia_id, utts)), logits in zip(shard, outs):
            probs = logits.softmax(-1)
            for pos, (utt, p) in enumerate(zip(utts, probs)):
                row = {
                    "order": order,
                    "utt_id": utt.utt_id,
                    "dialogue_id": dia_id,
                    "position": pos,
                    "label": utt.label,
                    "pred": int(p.argmax()),
                    "probs": p.tolist(),
                }
                if runner.records:
                    # the runner counts the dialogues of this rank only
                    row["diagnostics"] = {
                        **next(records),
                        "dialogue": order + 1,
                    }
                rows.append(row)
        if world > 1:
            gathered = [None] * world
            torch.distributed.all_gather_object(gathered, rows)
            rows = [row for part in gathered for row in part]
        rows.sort(key=lambda r: (r["order"], r["position"]))
        return rows

    def evaluate_strategies(
        self,
        dialogues,
        strategies,
        out_dir,
        max_key="UA",
        title="test",
        batch_size=1,
    ):
        """Evaluates the best checkpoint with several context strategies.

        Arguments
        ---------
        dialogues : list of (str, list of Utterance)
            From ``load_dialogues``.
        strategies : dict
            Name (a row of the table) → options; the option ``strategy``
            names the strategy if it differs from the row name.
        out_dir : str
            Where results (JSON, CSV, Markdown, PNG, predictions) go.
        max_key : str
            Checkpoint selection key.
        title : str
            File-name prefix.
        batch_size : int
            Dialogues read side by side (see ``label_dialogues``).

        Returns
        -------
        dict
            Row name → metrics (on rank 0; empty on other ranks).
        """
        if self.checkpointer is not None:
            self.checkpointer.recover_if_possible(max_key=max_key)
        labels = list(self.hparams.emotions)
        results = {}
        for name, opts in strategies.items():
            opts = dict(opts or {})
            strategy = opts.pop("strategy", name)
            rows = self.label_dialogues(
                dialogues, strategy, batch_size=batch_size, **opts
            )
            if not sb.utils.distributed.if_main_process():
                continue
            y_true = [r["label"] for r in rows]
            y_pred = [r["pred"] for r in rows]
            metrics = classification_metrics(y_true, y_pred, labels)
            metrics["by_position"] = accuracy_by_position(
                y_true, y_pred, [r["position"] for r in rows]
            )
            diag = [r for r in rows if "diagnostics" in r]
            if diag:
                metrics["diagnostics"] = summarize_diagnostics(
                    [r["diagnostics"] for r in diag], [r["label"] for r in diag]
                )
            results[name] = metrics
            os.makedirs(out_dir, exist_ok=True)
            path = os.path.join(out_dir, f"{title}_predictions_{name}.jsonl")
            with open(path, "w", encoding="utf-8") as f:
                for row in rows:
                    f.write(json.dumps(row) + "\n")
            logger.info(
                "%s %s: WA %.2f UA %.2f WF1 %.2f (n=%d)",
                title,
                name,
                metrics["WA"],
                metrics["UA"],
                metrics["WF1"],
                metrics["n"],
            )
        if results:
            write_results(results, out_dir, labels, title=title)
        # log_stats is @main_process_only, i.e. a collective (it ends in
        # ddp_broadcast): every rank must call it, not only rank 0.
        train_logger = getattr(self.hparams, "train_logger", None)
        if train_logger is not None:
            for name in strategies:
                m = results.get(name, {})
                stats = {
                    k: round(m[k], 2)
                    for k in ("WA", "UA", "WF1", "macro_F1")
                    if k in m
                }
                # The logger knows train/valid/test: name the split read.
                split = "valid_stats" if title == "valid" else "test_stats"
                train_logger.log_stats(
                    stats_meta={"strategy": name}, **{split: stats}
                )
        return results
