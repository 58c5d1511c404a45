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

import importlib

import torch

from speechbrain_dpm.sequence import context_window, pack_dialogue, with_emotion

STRATEGIES = {}
# Strategies registered by modules that are imported only when needed
# (they pull in the memory machinery).
LAZY_STRATEGIES = {
    "dpm": "speechbrain_dpm.memory",
    "dpm_placed": "speechbrain_dpm.dpm_training",
}


def register(name):
    """Class decorator that makes a strategy buildable by name."""

    def wrap(cls):
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
    >>> from speechbrain_dpm.sllm import EmotionSLLM, tiny_llm
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


class ContextStrategy:
    """Base class: labels the utterances of a conversation in order.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    """

    name = "base"

    def __init__(self, sllm):
        self.sllm = sllm

    def start(self):
        """Begins a conversation."""

    def push(self, utt):
        """Labels the next utterance; returns its emotion logits [C]."""
        raise NotImplementedError

    def close(self):
        """Ends the conversation and drops its state."""

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
        if not getattr(self.sllm, "emotion_feedback", False):
            return utt
        return with_emotion(utt, int(logits.argmax()), self.sllm.space)

    def predict_dialogue(self, utts):
        """Emotion logits of every utterance of a conversation.

        Arguments
        ---------
        utts : list of speechbrain_dpm.sequence.Utterance
            The conversation, in order.

        Returns
        -------
        torch.Tensor
            [N, C] logits.
        """
        self.start()
        try:
            logits = [self.push(utt) for utt in utts]
        finally:
            self.close()
        return torch.stack(logits)

    @torch.no_grad()
    def read(self, window):
        """Emotion logits at the last position of a window (one forward).

        Arguments
        ---------
        window : speechbrain_dpm.sequence.Window
            The window; its last token is the ``<audio_end>`` read.

        Returns
        -------
        torch.Tensor
            [C] logits.
        """
        device = self.sllm.token_out.device
        feats = window.feats
        if feats is not None:
            feats = feats[None].to(device)
        hidden = self.sllm.hidden_states(window.tokens[None].to(device), feats)
        return self.sllm.emotion_logits(hidden[0, -1]).float().cpu()


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
    """

    def __init__(self, sllm, n_context=256, n_limit=None):
        super().__init__(sllm)
        self.n_context = n_context
        self.n_limit = n_limit
        self.history = []
        self.n_truncated = 0

    def start(self):
        """Begins a conversation with an empty history."""
        self.history = []

    def window(self, utt):
        """The read window of ``utt`` given the history."""
        window = context_window(self.history, utt, self.n_context)
        if self.n_limit is not None and len(window.tokens) > self.n_limit:
            self.n_truncated += 1
            window.tokens = window.tokens[-self.n_limit :]
            if window.feats is not None:
                window.feats = window.feats[-self.n_limit :]
            window.audio_targets = window.audio_targets[-self.n_limit :]
            window.emo_positions = [self.n_limit - 1]
        return window

    def remember(self, utt):
        """Appends ``utt`` to the history, keeping only what a window uses."""
        self.history.append(utt)
        total = sum(len(u) for u in self.history)
        while self.history and total - len(self.history[0]) >= self.n_context:
            total -= len(self.history.pop(0))

    def push(self, utt):
        """Reads ``utt`` in its window, then remembers it (with its
        predicted emotion under emotion feedback)."""
        logits = self.read(self.window(utt))
        self.remember(self.feed_back(utt, logits))
        return logits

    def close(self):
        """Drops the history."""
        self.history = []


@register("utterance")
class UtteranceOnly(SlidingWindow):
    """The utterance alone: the classifier baseline.

    Arguments
    ---------
    sllm : speechbrain_dpm.sllm.EmotionSLLM
        The model.
    n_limit : int, optional
        Hard bound of a window.
    **kwargs
        Ignored (so every strategy takes the same options).
    """

    def __init__(self, sllm, n_limit=None, **kwargs):
        super().__init__(sllm, n_context=0, n_limit=n_limit)


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
    **kwargs
        Ignored (so every strategy takes the same options).
    """

    def __init__(self, sllm, max_tokens=1024, **kwargs):
        super().__init__(sllm)
        self.max_tokens = max_tokens
        self._group, self._size = [], 0

    def start(self):
        """Begins a conversation: an empty window."""
        self._group, self._size = [], 0

    def push(self, utt):
        """Labels the next utterance (the same cut as ``pack_dialogue``)."""
        # Under emotion feedback the utterance will take one more token,
        # as it did in training's windows.
        size = len(utt) + int(getattr(self.sllm, "emotion_feedback", False))
        if self._group and self._size + size > self.max_tokens:
            self._group, self._size = [], 0
        (window,) = pack_dialogue(self._group + [utt], self.max_tokens)
        logits = self.read(window)
        self._group.append(self.feed_back(utt, logits))
        self._size += size
        return logits

    def close(self):
        """Ends the conversation."""
        self.start()

    @torch.no_grad()
    def predict_dialogue(self, utts):
        """Emotion logits of every utterance, one forward per window (per
        utterance under emotion feedback: each read needs the predictions
        of the turns before it)."""
        if getattr(self.sllm, "emotion_feedback", False):
            return super().predict_dialogue(utts)
        device = self.sllm.token_out.device
        logits = []
        for win in pack_dialogue(utts, self.max_tokens):
            feats = None if win.feats is None else win.feats[None].to(device)
            hidden = self.sllm.hidden_states(win.tokens[None].to(device), feats)
            pos = torch.tensor(win.emo_positions, device=device)
            logits.append(self.sllm.emotion_logits(hidden[0, pos]).cpu())
        return torch.cat(logits).float()
