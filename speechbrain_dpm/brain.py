"""``DPMBrain``: trains the emotion SLLM and evaluates it per dialogue through
a context strategy.

Training sees dialogues packed into windows of whole utterances (at most
``n_ctx`` tokens): the loss is L = w_a · L_audio + w_e · L_emotion (the
paper: ½ and ½), L_audio being next-unit prediction of every utterance from
what precedes it in the window, L_emotion the cross-entropy of the emotion
at every ``<audio_end>`` (logits restricted to the emotion tokens). The
dialogues and windows come from ``speechbrain_dpm.training_data``.

Evaluation is per dialogue, utterances in order, through a strategy of
``speechbrain_dpm.context`` (utterance / one_pass / sliding / dpm): the
``label_dialogues`` and ``evaluate_strategies`` methods of
``speechbrain_dpm.evaluation.DialogueEvaluation``.

Authors
 * speechbrain_dpm developers 2026
"""

import speechbrain as sb
import torch
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    register_checkpoint_hooks,
)
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.evaluation import DialogueEvaluation
from speechbrain_dpm.metrics import classification_metrics
from speechbrain_dpm.sequence import collate_windows
from speechbrain_dpm.training_data import WindowDataset, balanced_class_weights

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


class DPMBrain(DialogueEvaluation, sb.Brain):
    """Trains the emotion SLLM (fixed LoRA + new rows) and evaluates it per
    dialogue through context strategies.

    Expected ``modules``: ``sllm`` (an ``EmotionSLLM``). Expected hparams:
    ``audio_loss_weight``, ``emotion_loss_weight``, ``emotion_class_weights``,
    ``emotions``, ``n_ctx``, ``utterance_windows``, ``train_logger`` (or
    None); with an audio loss also ``audio_loss_at_reads``; with emotion
    feedback also ``feedback_source``, ``feedback_noise``, ``n_r`` and
    ``n_limit`` (the validation read).
    """

    @property
    def sllm(self):
        """The EmotionSLLM, unwrapped from DDP if needed."""
        module = self.modules.sllm
        if isinstance(module, torch.nn.parallel.DistributedDataParallel):
            return module.module
        return module

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
            and self.hparams.feedback_source == "own"
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
        if self.sllm.emotion_feedback and self.valid_dialogues is not None:
            metrics = self.feedback_valid_metrics()
            stats.update(UA=metrics["UA"], WA=metrics["WA"])
        elif y_true:
            metrics = classification_metrics(
                y_true, y_pred, list(self.hparams.emotions)
            )
            stats.update(UA=metrics["UA"], WA=metrics["WA"])
        if stage == sb.Stage.VALID:
            logger_ = self.hparams.train_logger
            if logger_ is not None:
                logger_.log_stats(
                    stats_meta={"epoch": epoch},
                    train_stats=self.train_stats,
                    valid_stats=stats,
                )
            if self.checkpointer is not None:
                self.checkpointer.save_and_keep_only(
                    meta={"UA": stats.get("UA", 0.0), "epoch": epoch},
                    max_keys=["UA"],
                )

    class_weights = None  # [C] emotion-loss weights, set with the train loader
    #: The validation split of an emotion-feedback model (read turn by
    #: turn at the end of each validation stage); set with its loader.
    valid_dialogues = None
    train_stats = None  # the last training stage's losses

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
        alone = stage == sb.Stage.TRAIN and self.hparams.utterance_windows
        feedback = {}
        if self.sllm.emotion_feedback:
            feedback["feedback_space"] = self.sllm.space
            if stage == sb.Stage.TRAIN:
                source = self.hparams.feedback_source
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
        opts = {"n_context": self.hparams.n_r}
        if self.hparams.n_limit:
            opts["n_limit"] = self.hparams.n_limit
        rows = self.label_dialogues(
            self.valid_dialogues, "sliding", progressbar=False, **opts
        )
        return classification_metrics(
            [r["label"] for r in rows],
            [r["pred"] for r in rows],
            list(self.hparams.emotions),
        )
