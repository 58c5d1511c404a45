"""Context strategies: what the SLLM sees when it labels an utterance.

One interface for every way of using the conversation, so that one Brain
evaluates them side by side:

* ``utterance``: the utterance alone (the classifier baseline);
* ``one_pass``: one causal pass over the conversation, cut into consecutive
  windows of at most ``max_tokens`` (the context restarts at each cut);
* ``sliding``: the last ``n_context`` tokens before the utterance;
* ``dpm``: sliding, plus the temporary-LoRA memory
  (``speechbrain_dpm.memory.DPMStrategy``).

Strategies are streaming: ``start()``, then ``push(utt)`` per utterance in
order (returns its emotion logits), then ``close()``. Only a bounded history
is kept, so memory does not grow with the conversation.

A model trained with emotion feedback (``EmotionSLLM.emotion_feedback``)
sees each earlier turn followed by an emotion token: every strategy feeds
back the model's *own* prediction for that turn (``feed_back``), never the
gold label, so evaluation reads exactly what a deployed model would.

Authors
 * speechbrain_dpm developers 2026
"""

import contextlib
import importlib

import torch

from speechbrain_dpm.sequence import (
    batch_on,
    context_window,
    pack_dialogue,
    with_emotion,
)
from speechbrain_dpm.settings import check_choice

# Autocast dtypes of SpeechBrain's --precision / --eval_precision values.
PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}

STRATEGIES = {}
# Strategies registered by modules that are imported only when needed
# (they pull in the memory machinery).
LAZY_STRATEGIES = {"dpm": "speechbrain_dpm.dpm_strategy"}


def register(name):
    """Class decorator that makes a strategy buildable by name."""

    def wrap(cls):
        """Names the class and records it."""
        cls.name = name
        STRATEGIES[name] = cls
        return cls

    return wrap


def build_strategy(name, sllm, **kwargs):
    """Builds a registered strategy by name.

    Arguments
    ---------
    name : str
        ``utterance``, ``one_pass``, ``sliding`` or ``dpm``.
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    **kwargs
        Options of that strategy.

    Returns
    -------
    ContextStrategy
        The strategy.

    Example
    -------
    >>> from speechbrain_dpm.sllm import EmotionSLLM
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
    >>> build_strategy("sliding", sllm, n_context=16).name
    'sliding'
    """
    return strategy_class(name)(sllm, **kwargs)


def strategy_class(name):
    """The class of a strategy, importing its module if needed.

    Arguments
    ---------
    name : str
        A strategy name.

    Returns
    -------
    type
        The registered class.

    Raises
    ------
    ValueError
        If no strategy has that name.

    Example
    -------
    >>> strategy_class("dpm").__name__
    'DPMStrategy'
    """
    if name not in STRATEGIES and name in LAZY_STRATEGIES:
        importlib.import_module(LAZY_STRATEGIES[name])
    if name not in STRATEGIES:
        known = sorted(set(STRATEGIES) | set(LAZY_STRATEGIES))
        raise ValueError(f"unknown strategy {name!r}; known: {known}")
    return STRATEGIES[name]


class Conversation:
    """The state of one conversation inside a strategy.

    Strategies keep what they need here (history, memory slot, records), so
    one strategy object can follow many conversations at once.

    Arguments
    ---------
    number : int
        1-based count of the conversations the strategy has opened.
    """

    def __init__(self, number):
        self.number = number
        self.position = 0
        self.history = []
        self.records = []
        self.closed = False


class ContextStrategy:
    """Base class: labels the utterances of conversations in order.

    The core is batched: ``push_many`` labels the next utterance of several
    open conversations at once (one padded forward per step), and
    ``predict_dialogues`` reads many dialogues with continuous batching (a
    conversation that ends frees its row for the next waiting one). Each
    conversation's logits equal those it gets read alone (up to float
    rounding of the padded batch). ``start`` / ``push`` / ``close`` follow
    a single conversation.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    precision : str
        ``fp32``, ``bf16`` or ``fp16``: autocast of every forward (the
        memory's factors and optimizer state stay float32).
    """

    name = "base"

    def __init__(self, sllm, precision="fp32"):
        self.sllm = sllm
        self.precision = precision
        check_choice("precision", precision, sorted(PRECISIONS))
        self.dtype = PRECISIONS[precision]
        self.records = []
        self.n_dialogues = 0
        self._current = None

    # -- the batched core ----------------------------------------------------

    def open(self):
        """Begins a conversation; returns its state."""
        self.n_dialogues += 1
        return Conversation(self.n_dialogues)

    def release(self, conv):
        """Ends a conversation and drops its state (keeps its records)."""
        conv.closed = True
        conv.history = []

    def push_many(self, convs, utts):
        """Labels the next utterance of each conversation (distinct).

        Arguments
        ---------
        convs : list of Conversation
            Open conversations.
        utts : list of speechbrain_dpm.sequence.Utterance
            The next utterance of each.

        Returns
        -------
        torch.Tensor
            [B, C] emotion logits.
        """
        if len({id(c) for c in convs}) != len(convs):
            raise ValueError("push_many: each conversation at most once")
        if any(c.closed for c in convs):
            raise RuntimeError("push on a closed conversation")
        logits = self._push_many(convs, utts)
        for conv in convs:
            conv.position += 1
        return logits

    def _push_many(self, convs, utts):
        raise NotImplementedError

    def autocast(self):
        """Autocast context of this strategy's precision (none for fp32)."""
        if self.dtype is None:
            return contextlib.nullcontext()
        device = self.sllm.token_out.device.type
        return torch.autocast(device, dtype=self.dtype)

    def predict_dialogues(self, dialogues, batch_size=1, on_done=None):
        """Emotion logits of every utterance of many conversations.

        Continuous batching: up to ``batch_size`` conversations are read
        side by side, one utterance each per step; one that ends frees its
        row for the next waiting one. ``records`` (if the strategy keeps
        any) gets each dialogue's records, in dialogue order.

        Arguments
        ---------
        dialogues : list of list of Utterance
            The conversations, each in order.
        batch_size : int
            Conversations read at once.
        on_done : callable, optional
            Called with a dialogue's index when it has been read.

        Returns
        -------
        list of torch.Tensor
            [N_i, C] logits per conversation.

        Example
        -------
        >>> from speechbrain_dpm.sllm import EmotionSLLM
        >>> from speechbrain_dpm.testing import tiny_llm
        >>> from speechbrain_dpm.sequence import make_utterance
        >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units")
        >>> utt = make_utterance(torch.tensor([1, 2]), None, sllm.space)
        >>> out = build_strategy("sliding", sllm, n_context=8
        ...                      ).predict_dialogues([[utt] * 3, [utt]], 2)
        >>> [tuple(o.shape) for o in out]
        [(3, 4), (1, 4)]
        """
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        waiting = list(enumerate(dialogues))
        waiting.reverse()
        logits = [[] for _ in dialogues]
        records = {}
        active = []  # [conversation, dialogue index]
        try:
            while waiting or active:
                while waiting and len(active) < batch_size:
                    index, utts = waiting.pop()
                    if len(utts):
                        active.append([self.open(), index])
                    elif on_done is not None:
                        on_done(index)
                convs = [conv for conv, _ in active]
                if not convs:
                    break
                utts = [dialogues[i][c.position] for c, i in active]
                for (_, index), row in zip(active, self.push_many(convs, utts)):
                    logits[index].append(row)
                still = []
                for conv, index in active:
                    if conv.position == len(dialogues[index]):
                        self.release(conv)
                        records[index] = conv.records
                        if on_done is not None:
                            on_done(index)
                    else:
                        still.append([conv, index])
                active = still
        finally:
            for conv, _ in active:
                self.release(conv)
        for index in sorted(records):
            self.records.extend(records[index])
        n_classes = self.sllm.space.n_emotions
        return [
            torch.stack(rows) if rows else torch.empty(0, n_classes)
            for rows in logits
        ]

    # -- one conversation ------------------------------------------------------

    def start(self):
        """Begins the single followed conversation."""
        if self._current is not None:
            self.close()
        self._current = self.open()

    def push(self, utt):
        """Labels the next utterance of that conversation; [C] logits."""
        if self._current is None:
            self.start()
        return self.push_many([self._current], [utt])[0]

    def close(self):
        """Ends that conversation (its records join ``records``)."""
        if self._current is not None:
            conv, self._current = self._current, None
            self.release(conv)
            self.records.extend(conv.records)

    def clear_records(self):
        """Drops the records gathered so far."""
        self.records = []

    def feed_back(self, utt, logits):
        """``utt`` as later turns see it: followed by the token of its
        predicted emotion if the model was trained with emotion feedback.

        Arguments
        ---------
        utt : speechbrain_dpm.sequence.Utterance
            The utterance just read.
        logits : torch.Tensor
            [C] its emotion logits (the model's own read-out).

        Returns
        -------
        speechbrain_dpm.sequence.Utterance
            ``utt`` itself, or a copy with the predicted emotion token.
        """
        if not self.sllm.emotion_feedback:
            return utt
        return with_emotion(utt, int(logits.argmax()), self.sllm.space)

    def predict_dialogue(self, utts):
        """Emotion logits of every utterance of one conversation.

        Arguments
        ---------
        utts : list of speechbrain_dpm.sequence.Utterance
            The conversation, in order.

        Returns
        -------
        torch.Tensor
            [N, C] logits.
        """
        return self.predict_dialogues([utts], batch_size=1)[0]

    @torch.no_grad()
    def hidden_many(self, windows):
        """Hidden states of windows, right-padded into one forward of the
        model without memory (``sequence.batch_on``: no mask is needed,
        each row computes what it computes alone).

        Returns
        -------
        tuple
            ([B, T, H] hidden states, [B] lengths on the model's device).
        """
        tokens, feats, _, lengths = batch_on(
            windows, self.sllm.token_out.device
        )
        with self.autocast():
            hidden = self.sllm.hidden_states(tokens, feats)
        return hidden, lengths

    def read_many(self, windows):
        """Emotion logits at the last position of each window.

        Arguments
        ---------
        windows : list of speechbrain_dpm.sequence.Window
            Each ends with the ``<audio_end>`` read.

        Returns
        -------
        torch.Tensor
            [B, C] logits (float, on the CPU).
        """
        hidden, lengths = self.hidden_many(windows)
        rows = torch.arange(len(windows), device=hidden.device)
        logits = self.sllm.emotion_logits(hidden[rows, lengths - 1])
        return logits.float().cpu()

    def read(self, window):
        """Emotion logits at the last position of one window: [C]."""
        return self.read_many([window])[0]


@register("sliding")
class SlidingWindow(ContextStrategy):
    """The last ``n_context`` tokens before the utterance, then the utterance.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    n_context : int
        Context tokens kept before the current utterance (the paper's n_r).
    n_limit : int, optional
        Hard bound of a window; an utterance longer than
        ``n_limit - n_context`` is read from its last tokens only.
    precision : str
        Autocast precision (see ``ContextStrategy``).
    """

    def __init__(self, sllm, n_context=256, n_limit=None, precision="fp32"):
        super().__init__(sllm, precision)
        self.n_context = n_context
        self.n_limit = n_limit
        self.n_truncated = 0

    def window(self, conv, utt):
        """The read window of ``utt`` given the conversation's history."""
        window = context_window(conv.history, utt, self.n_context)
        if self.n_limit is not None and len(window.tokens) > self.n_limit:
            self.n_truncated += 1
            window.tokens = window.tokens[-self.n_limit :]
            if window.feats is not None:
                window.feats = window.feats[-self.n_limit :]
            window.audio_targets = window.audio_targets[-self.n_limit :]
            window.emo_positions = [self.n_limit - 1]
        return window

    def remember(self, conv, utt):
        """Appends ``utt`` to the history, keeping only what a window uses."""
        history = conv.history
        history.append(utt)
        total = sum(len(u) for u in history)
        while history and total - len(history[0]) >= self.n_context:
            total -= len(history.pop(0))

    def _push_many(self, convs, utts):
        """Reads each utterance in its window, then remembers it (with its
        predicted emotion under emotion feedback)."""
        windows = [self.window(c, u) for c, u in zip(convs, utts)]
        logits = self.read_many(windows)
        for conv, utt, row in zip(convs, utts, logits):
            self.remember(conv, self.feed_back(utt, row))
        return logits


@register("utterance")
class UtteranceOnly(SlidingWindow):
    """The utterance alone: the classifier baseline.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    n_limit : int, optional
        Hard bound of a window.
    precision : str
        Autocast precision (see ``ContextStrategy``).
    **kwargs
        Ignored (so every strategy takes the same options).
    """

    def __init__(self, sllm, n_limit=None, precision="fp32", **kwargs):
        super().__init__(sllm, 0, n_limit, precision)

    def read_utterances(self, utts, batch_size=16):
        """[N, C] logits of utterances read alone, ``batch_size`` at once."""
        conv = Conversation(0)
        windows = [self.window(conv, u) for u in utts]
        parts = [
            self.read_many(windows[i : i + batch_size])
            for i in range(0, len(windows), batch_size)
        ]
        return torch.cat(parts)


@register("one_pass")
class OnePass(ContextStrategy):
    """One causal pass over the conversation, truncated to the window.

    The conversation is cut into consecutive windows of whole utterances of
    at most ``max_tokens`` tokens; each window is one forward pass and the
    context restarts at each cut (the model without memory, whose context
    window is full). These are the windows the recipes train on.

    Streaming (``push``) gives the same logits: the window is causal, so an
    utterance's read-out does not depend on the utterances after it in its
    window; each push reads the current window up to the new utterance.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    max_tokens : int
        The context window.
    precision : str
        Autocast precision (see ``ContextStrategy``).
    **kwargs
        Ignored (so every strategy takes the same options).
    """

    def __init__(self, sllm, max_tokens=1024, precision="fp32", **kwargs):
        super().__init__(sllm, precision)
        self.max_tokens = max_tokens

    def open(self):
        """Begins a conversation: an empty window."""
        conv = super().open()
        conv.size = 0
        return conv

    def _push_many(self, convs, utts):
        """Labels the next utterances (the same cuts as ``pack_dialogue``)."""
        # Under emotion feedback the utterance will take one more token,
        # as it did in training's windows.
        extra = int(self.sllm.emotion_feedback)
        windows = []
        for conv, utt in zip(convs, utts):
            if conv.history and conv.size + len(utt) + extra > self.max_tokens:
                conv.history, conv.size = [], 0
            (window,) = pack_dialogue(conv.history + [utt], self.max_tokens)
            windows.append(window)
        logits = self.read_many(windows)
        for conv, utt, row in zip(convs, utts, logits):
            conv.history.append(self.feed_back(utt, row))
            conv.size += len(utt) + extra
        return logits

    @torch.no_grad()
    def predict_dialogues(self, dialogues, batch_size=1, on_done=None):
        """Emotion logits of every utterance, one forward per packed window
        (``batch_size`` windows at once); per utterance under emotion
        feedback, where each read needs the predictions before it."""
        if self.sllm.emotion_feedback:
            return super().predict_dialogues(dialogues, batch_size, on_done)
        windows_of = [
            pack_dialogue(utts, self.max_tokens) if len(utts) else []
            for utts in dialogues
        ]
        windows = [
            (index, win)
            for index, wins in enumerate(windows_of)
            for win in wins
        ]
        logits = [[] for _ in dialogues]
        for lo in range(0, len(windows), batch_size):
            part = windows[lo : lo + batch_size]
            hidden, _ = self.hidden_many([win for _, win in part])
            with self.autocast():
                for row, (index, win) in enumerate(part):
                    rows = self.sllm.emotion_logits(
                        hidden[row, win.emo_positions]
                    )
                    logits[index].append(rows.float().cpu())
                    if on_done is not None and win is windows_of[index][-1]:
                        on_done(index)
        n_classes = self.sllm.space.n_emotions
        return [
            torch.cat(rows) if rows else torch.empty(0, n_classes)
            for rows in logits
        ]
