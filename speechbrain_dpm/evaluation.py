"""Dialogue-level evaluation of a trained model: every utterance of every
dialogue labelled in order through a context strategy of
``speechbrain_dpm.context`` (utterance / one_pass / sliding / dpm), scored
and written per strategy. Under DDP each rank labels a shard of the
dialogues and rank 0 gathers them.

Authors
 * speechbrain_dpm developers 2026
"""

import json
import os

import speechbrain as sb
import torch
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.context import build_strategy
from speechbrain_dpm.dpm_strategy import summarize_diagnostics
from speechbrain_dpm.metrics import (
    accuracy_by_position,
    classification_metrics,
    write_results,
)

logger = get_logger(__name__)


class DialogueEvaluation:
    """The evaluation methods of ``speechbrain_dpm.brain.DPMBrain``: a mixin
    of a SpeechBrain ``Brain`` whose ``sllm`` is an ``EmotionSLLM`` and
    whose hparams have ``emotions`` and ``train_logger`` (or None).
    """

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
        train_logger = self.hparams.train_logger
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
