"""The DPM context strategy: a sliding window plus a temporary LoRA written
after each utterance, for many conversations at once.

Each conversation holds a slot of one ``LoRAMemory``. At every step of
``push_many`` (or ``predict_dialogues``, which keeps the batch full by
continuous batching) the conversations that write this turn are written
together, one forward/backward per step over their padded windows, and
every conversation is then read in one forward.

Diagnostics (``DPMStrategy.records`` and ``summarize_diagnostics``): the
audio loss of each utterance *before* its own write with vs without the
memory (does what was written transfer to new speech?) and the drift of
the emotion read-out caused by each write (right→wrong / wrong→right
flips), by position in the dialogue.

Authors
 * speechbrain_dpm developers 2026
"""

import torch
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.context import SlidingWindow, register
from speechbrain_dpm.memory import LoRAMemory
from speechbrain_dpm.sequence import Window

logger = get_logger(__name__)


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
    by default (``read_order``). A conversation's memory slot is fresh when
    it opens and discarded when it ends. With ``every=k`` the memory is
    written after every k-th utterance, on all the utterances heard since
    the last write (so no speech is skipped); ``every=0`` never writes and
    is exactly the sliding-window baseline.

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
    precision : str
        Autocast precision of reads and writes (see ``ContextStrategy``).
    max_tokens : int, optional
        Ignored (so every strategy takes the same options).
    **memory_kwargs
        Options of ``LoRAMemory`` (rank, alpha, lr, steps, slots,
        target_modules, shield, read_order …).

    Example
    -------
    >>> from speechbrain_dpm.context import build_strategy
    >>> from speechbrain_dpm.sllm import EmotionSLLM
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> from speechbrain_dpm.sequence import make_utterance
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
    >>> utts = [make_utterance(torch.tensor([1, 2, i]), None, sllm.space)
    ...         for i in range(3)]
    >>> dpm = build_strategy("dpm", sllm, n_context=4, rank=2, lr=1e-2)
    >>> dpm.predict_dialogue(utts).shape
    torch.Size([3, 4])
    >>> dpm.n_writes, len(dpm.records)
    (3, 3)
    >>> [o.shape[0] for o in dpm.predict_dialogues([utts, utts[:1]], 2)]
    [3, 1]
    """

    def __init__(
        self,
        sllm,
        n_context=256,
        n_limit=None,
        every=1,
        memory=None,
        diagnostics=False,
        precision="fp32",
        max_tokens=None,
        **memory_kwargs,
    ):
        super().__init__(sllm, n_context, n_limit, precision)
        if n_limit is not None and n_limit <= n_context:
            raise ValueError(
                f"n_limit ({n_limit}) must exceed n_context ({n_context})"
            )
        if memory is not None and memory_kwargs:
            raise ValueError("give either memory= or memory options")
        self.every = _parse_every(every)
        self.memory = memory or LoRAMemory(sllm, **memory_kwargs)
        self.diagnostics = diagnostics
        self.n_writes = 0
        self.n_split = 0
        self.n_pieces = 0

    def open(self):
        """Begins a conversation: empty history, a fresh memory slot."""
        conv = super().open()
        conv.slot = self.memory.acquire()
        conv.ctx_tokens = conv.ctx_feats = None
        conv.pending = []
        conv.n_split = 0
        return conv

    def release(self, conv):
        """Ends a conversation: its memory slot is discarded."""
        if conv.closed:
            return
        if conv.n_split:
            logger.info(
                "DPM: %d write(s) longer than n_limit - n_context = %d "
                "tokens were written in pieces in this conversation",
                conv.n_split,
                self.n_limit - self.n_context,
            )
        super().release(conv)
        self.memory.release(conv.slot)
        conv.pending = []
        conv.ctx_tokens = conv.ctx_feats = None

    def write_windows(self, conv):
        """Windows of a conversation's pending utterances, ≤ ``n_limit``.

        Returns
        -------
        list of speechbrain_dpm.sequence.Window
            Each: up to ``n_context`` tokens before its piece (context),
            then the piece (audio targets); pieces are aligned on the end.
        """
        utts = conv.pending
        tokens = _cat([conv.ctx_tokens] + [u.tokens for u in utts])
        feats = None
        if utts[0].feats is not None:
            feats = _cat([conv.ctx_feats] + [u.feats for u in utts])
        n_ctx = 0 if conv.ctx_tokens is None else len(conv.ctx_tokens)
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
        conv.ctx_tokens = tokens[max(keep, 0) :] if self.n_context else None
        if feats is not None and self.n_context:
            conv.ctx_feats = feats[max(keep, 0) :]
        conv.pending = []
        return windows

    def _push_many(self, convs, utts):
        """Writes (every ``every`` utterances) and reads each utterance."""
        memory = self.memory
        reads = [self.window(c, u) for c, u in zip(convs, utts)]
        lens = [len(u) for u in utts]
        records, writers = [], []
        for i, (conv, utt) in enumerate(zip(convs, utts)):
            conv.pending.append(utt)
            records.append(
                {
                    "dialogue": conv.number,
                    "position": conv.position,
                    "label": utt.label,  # gold, for the summary only
                    "wrote": False,
                    "loss_with": None,
                    "loss_without": None,
                    "p_before": None,
                    "p_after": None,
                }
            )
            if self.every and (conv.position + 1) % self.every == 0:
                writers.append(i)
        before = self._write(convs, reads, lens, writers, records)
        after_too = memory.read_order == "after_write" or self.diagnostics
        rows = [i for i in range(len(convs)) if i not in writers or after_too]
        after = {}
        if rows:
            with self.autocast():
                logits = memory.read(
                    [reads[i] for i in rows],
                    [convs[i].slot for i in rows],
                    [lens[i] for i in rows],
                )
            after = dict(zip(rows, logits))
        logits = []
        for i, record in enumerate(records):
            if i not in writers:
                record["p_before"] = record["p_after"] = _probs(after[i])
                logits.append(after[i])
                continue
            if i in before:
                record["p_before"] = _probs(before[i])
            if i in after:
                record["p_after"] = _probs(after[i])
            early = memory.read_order == "before_write"
            logits.append(before[i] if early else after[i])
        logits = torch.stack(logits)
        for conv, utt, row, record in zip(convs, utts, logits, records):
            conv.records.append(record)
            # Writes memorise what was heard (the pending audio); a fed-back
            # emotion token joins the read windows' history only.
            self.remember(conv, self.feed_back(utt, row))
            if self.every == 0:
                conv.pending = []  # nothing will ever be written
        return logits

    def _write(self, convs, reads, lens, writers, records):
        """Writes the writers' pending audio, all slots side by side.

        Returns
        -------
        dict
            Row → [C] read-out before the write, where it was free (the
            write's first forward) or asked for (``before_write``,
            diagnostics).
        """
        memory = self.memory
        if not writers:
            return {}
        pieces = {i: self.write_windows(convs[i]) for i in writers}
        for i in writers:
            self.n_writes += 1
            self.n_pieces += len(pieces[i])
            records[i]["wrote"] = True
            if len(pieces[i]) > 1:
                self.n_split += 1
                convs[i].n_split += 1
        # A write whose window is the read window gives the read-out before
        # the write for free from its first forward (never a shielded one).
        shared = {
            i
            for i in writers
            if len(pieces[i]) == 1
            and self.sllm.audio_forward_is_read
            and not memory.shield
            and torch.equal(pieces[i][0].tokens, reads[i].tokens)
        }
        before = {}
        others = [i for i in writers if i not in shared]
        if others and (memory.read_order == "before_write" or self.diagnostics):
            with self.autocast():
                rows = memory.read(
                    [reads[i] for i in others],
                    [convs[i].slot for i in others],
                    [lens[i] for i in others],
                )
            before.update(zip(others, rows))
        if self.diagnostics:
            with self.autocast():
                losses = memory.audio_loss(
                    [pieces[i][0] for i in writers],
                    [convs[i].slot for i in writers],
                    use_memory=False,
                )
            for i, loss in zip(writers, losses):
                records[i]["loss_without"] = loss
        for k in range(max(len(pieces[i]) for i in writers)):
            rows = [i for i in writers if len(pieces[i]) > k]
            with self.autocast():
                outs = memory.write(
                    [pieces[i][k] for i in rows], [convs[i].slot for i in rows]
                )
            for i, out in zip(rows, outs):
                if k == 0:
                    records[i]["loss_with"] = out.loss
                if k == 0 and i in shared:
                    before[i] = out.logits
        return before


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
        """Mean, or None for no values."""
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
