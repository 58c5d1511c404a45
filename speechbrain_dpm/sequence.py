"""Dialogue → token windows in the SLLM's new-token space.

Every utterance becomes ``[u_1 … u_n, <audio_end>]``; the emotion of the
utterance is read at its ``<audio_end>`` position. Gold emotion labels are
kept *beside* the tokens (for the losses and the metrics).

With *emotion feedback* (``with_emotion``) an utterance of the context is
followed by an emotion token: the gold one (possibly corrupted) when
training, the model's own prediction when evaluating (see
``speechbrain_dpm.context``), so no evaluation can leak a gold label into
the model's input.

Authors
 * speechbrain_dpm developers 2026
"""

import json
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Optional

import torch


class TokenSpace:
    """Ids of the new tokens: K units, ``<audio_end>``, C emotions, S speakers.

    Arguments
    ---------
    n_units : int
        Size of the unit codebook (K).
    n_emotions : int
        Number of emotion classes (C).
    n_speakers : int
        Number of speaker slots (S, see ``speaker_slots``); 0: turns carry
        no speaker token.

    Example
    -------
    >>> space = TokenSpace(512, 4)
    >>> space.audio_end, space.emotion(0), space.size
    (512, 513, 517)
    >>> TokenSpace(512, 4, n_speakers=3).speaker(0)
    517
    """

    def __init__(self, n_units, n_emotions, n_speakers=0):
        self.n_units = n_units
        self.n_emotions = n_emotions
        self.n_speakers = n_speakers
        self.audio_end = n_units
        self.size = n_units + 1 + n_emotions + n_speakers
        self.audio_slice = slice(0, n_units + 1)
        self.emotion_slice = slice(n_units + 1, n_units + 1 + n_emotions)

    def emotion(self, index):
        """Token id of emotion class ``index``."""
        return self.n_units + 1 + index

    def speaker(self, slot):
        """Token id of speaker slot ``slot``."""
        if not 0 <= slot < self.n_speakers:
            raise ValueError(
                f"speaker slot {slot} out of range: the model has "
                f"{self.n_speakers} speaker slots"
            )
        return self.n_units + 1 + self.n_emotions + slot

    def is_unit(self, tokens):
        """Boolean mask of the unit positions of a token tensor."""
        return tokens < self.n_units

    def is_audio(self, tokens):
        """Boolean mask of the audio-loss vocabulary: units, ``<audio_end>``."""
        return tokens <= self.audio_end

    def is_emotion(self, tokens):
        """Boolean mask of the emotion tokens of a token tensor."""
        first = self.emotion(0)
        return (tokens >= first) & (tokens < first + self.n_emotions)


def speaker_slots(speakers, n_slots):
    """Speaker slot of each turn: who speaks, relative to the dialogue.

    The first speaker of a dialogue takes slot 0, the next new one slot 1,
    and so on; the last slot is shared by any further speaker and by turns
    whose speaker is unknown (empty). Slots are relative so that a model
    never learns speaker identities, only "the same speaker as turn j".

    Arguments
    ---------
    speakers : list of str
        Speaker of each turn, in order ("" if unknown).
    n_slots : int
        Number of slots (at least 2).

    Returns
    -------
    list of int
        Slot of each turn.

    Example
    -------
    >>> speaker_slots(["F", "M", "F", "", "X"], 3)
    [0, 1, 0, 2, 2]
    """
    if n_slots < 2:
        raise ValueError(f"n_slots must be at least 2, got {n_slots}")
    order = {}
    slots = []
    for spk in speakers:
        if spk and spk not in order:
            order[spk] = min(len(order), n_slots - 1)
        slots.append(order[spk] if spk else n_slots - 1)
    return slots


@dataclass
class Utterance:
    """One utterance of a dialogue, as the SLLM sees it.

    Arguments
    ---------
    tokens : torch.LongTensor
        [n + 1] unit ids followed by ``<audio_end>`` (after the speaker
        token, if the token space has speaker slots).
    feats : torch.Tensor, optional
        Continuous features aligned with ``tokens`` (zeros at the
        ``<audio_end>`` and speaker tokens).
    label : int
        Gold class index (-1 if unknown); never put into a window.
    utt_id : str
        Utterance id.
    speaker : str
        Speaker id.
    tail : int
        Tokens after ``<audio_end>`` (1 with a fed-back emotion token, see
        ``with_emotion``); the read-out position is ``read_index``.
    """

    tokens: torch.Tensor
    feats: Optional[torch.Tensor] = None
    label: int = -1
    utt_id: str = ""
    speaker: str = ""
    tail: int = 0

    def __len__(self):
        return self.tokens.shape[0]

    @property
    def read_index(self):
        """Position of the utterance's ``<audio_end>`` (its read-out)."""
        return len(self) - 1 - self.tail


def with_emotion(utt, index, space):
    """``utt`` followed by the token of emotion class ``index``.

    This is emotion feedback: later turns see the emotion of this one as a
    token. Training feeds the gold class (see ``WindowDataset``); the
    context strategies feed the model's own prediction, never a gold label.
    The emotion token is input only: it is never an audio target.

    Arguments
    ---------
    utt : Utterance
        An utterance without a fed-back token.
    index : int
        Emotion class index.
    space : TokenSpace
        The token space.

    Returns
    -------
    Utterance
        A new utterance; ``read_index`` still points at ``<audio_end>``.

    Example
    -------
    >>> space = TokenSpace(8, 4)
    >>> utt = make_utterance(torch.tensor([3]), None, space)
    >>> utt = with_emotion(utt, 2, space)
    >>> utt.tokens.tolist(), utt.read_index
    ([3, 8, 11], 1)
    """
    if utt.tail:
        raise ValueError(
            f"utterance {utt.utt_id!r} already has an emotion token"
        )
    if not 0 <= index < space.n_emotions:
        raise ValueError(
            f"emotion index {index} out of range for {space.n_emotions} classes"
        )
    tokens = torch.cat(
        [utt.tokens, utt.tokens.new_tensor([space.emotion(index)])]
    )
    feats = utt.feats
    if feats is not None:
        feats = torch.cat([feats, feats.new_zeros(1, feats.shape[1])])
    return Utterance(tokens, feats, utt.label, utt.utt_id, utt.speaker, tail=1)


def make_utterance(
    units, feats, space, label=-1, utt_id="", speaker="", speaker_slot=None
):
    """Appends ``<audio_end>`` to an utterance's units (and zero features).

    Arguments
    ---------
    units : torch.LongTensor
        [n] unit ids.
    feats : torch.Tensor or None
        [n, D] continuous features.
    space : TokenSpace
        The token space.
    label : int
        Gold class index, -1 if unknown.
    utt_id : str
        Utterance id.
    speaker : str
        Speaker id.
    speaker_slot : int, optional
        With a token space that has speaker slots: the turn's slot (see
        ``speaker_slots``); its token is put before the units.

    Returns
    -------
    Utterance
        The utterance.

    Example
    -------
    >>> utt = make_utterance(torch.tensor([3, 4]), None, TokenSpace(8, 4))
    >>> utt.tokens.tolist()
    [3, 4, 8]
    >>> space = TokenSpace(8, 4, n_speakers=2)
    >>> make_utterance(torch.tensor([3]), None, space, speaker_slot=1).tokens
    tensor([14,  3,  8])
    """
    if (speaker_slot is None) != (space.n_speakers == 0):
        raise ValueError(
            f"utterance {utt_id!r}: the token space has {space.n_speakers} "
            f"speaker slots but speaker_slot is {speaker_slot}"
        )
    units = units.long()
    tokens = [units, units.new_tensor([space.audio_end])]
    if speaker_slot is not None:
        tokens.insert(0, units.new_tensor([space.speaker(speaker_slot)]))
    if feats is not None:
        # Zero features at every position that is not a unit.
        pad = feats.new_zeros(1, feats.shape[1])
        feats = torch.cat([pad] * (len(tokens) - 2) + [feats, pad])
    return Utterance(torch.cat(tokens), feats, label, utt_id, speaker)


@dataclass
class Window:
    """A token window (one row of a batch) and where its labels sit.

    Arguments
    ---------
    tokens : torch.LongTensor
        [T] ids.
    feats : torch.Tensor or None
        [T, D] features.
    audio_targets : torch.BoolTensor
        [T] which tokens are audio-loss targets.
    emo_positions : list of int
        ``<audio_end>`` positions whose emotion is read or trained.
    labels : list of int
        Gold labels of those positions (for losses and metrics only).
    """

    tokens: torch.Tensor
    feats: Optional[torch.Tensor]
    audio_targets: torch.Tensor
    emo_positions: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)


def _cat_feats(utts):
    if utts[0].feats is None:
        return None
    return torch.cat([u.feats for u in utts])


def context_window(history, utt, n_context):
    """The last ``n_context`` tokens before ``utt``, then ``utt`` itself.

    Arguments
    ---------
    history : list of Utterance
        Earlier utterances of the dialogue, oldest first.
    utt : Utterance
        The current utterance.
    n_context : int
        Number of context tokens kept (0: the utterance alone).

    Returns
    -------
    Window
        Tokens, features, the current utterance's units as audio targets,
        and its ``<audio_end>`` as the emotion position.

    Example
    -------
    >>> space = TokenSpace(8, 4)
    >>> a = make_utterance(torch.tensor([1, 2, 3]), None, space)
    >>> b = make_utterance(torch.tensor([4]), None, space)
    >>> context_window([a], b, 2).tokens.tolist()
    [3, 8, 4, 8]
    """
    picked, total = [], 0
    for prev in reversed(history):
        if total >= n_context:
            break
        picked.append(prev)
        total += len(prev)
    picked.reverse()
    parts = picked + [utt]
    tokens = torch.cat([u.tokens for u in parts])
    feats = _cat_feats(parts)
    start = max(total - n_context, 0)
    tokens = tokens[start:]
    feats = feats[start:] if feats is not None else None
    targets = torch.zeros(tokens.shape[0], dtype=torch.bool)
    targets[-len(utt) :] = True
    if targets.shape[0] == len(utt):
        # With no context the first unit has no predictor.
        targets[0] = False
    read = tokens.shape[0] - 1 - utt.tail
    return Window(tokens, feats, targets, [read], [utt.label])


def pack_dialogue(utts, max_tokens):
    """Splits a dialogue into consecutive windows of whole utterances.

    Used for training (every utterance's units are audio targets and every
    ``<audio_end>`` an emotion position) and by the one-pass strategy.
    An utterance longer than ``max_tokens`` gets a window of its own, cut to
    its last ``max_tokens`` tokens.

    Arguments
    ---------
    utts : list of Utterance
        The dialogue, in order.
    max_tokens : int
        Maximum window length.

    Returns
    -------
    list of Window
        The windows, in order; together they hold every utterance once.

    Example
    -------
    >>> space = TokenSpace(8, 4)
    >>> utts = [make_utterance(torch.tensor([1, 2]), None, space, 0)] * 3
    >>> [w.emo_positions for w in pack_dialogue(utts, 6)]
    [[2, 5], [2]]
    """
    windows, group, size = [], [], 0
    for utt in utts:
        if group and size + len(utt) > max_tokens:
            windows.append(_window_of(group, max_tokens))
            group, size = [], 0
        group.append(utt)
        size += len(utt)
    if group:
        windows.append(_window_of(group, max_tokens))
    return windows


def _window_of(group, max_tokens):
    tokens = torch.cat([u.tokens for u in group])
    feats = _cat_feats(group)
    cut = max(tokens.shape[0] - max_tokens, 0)
    tokens = tokens[cut:]
    feats = feats[cut:] if feats is not None else None
    targets = torch.ones(tokens.shape[0], dtype=torch.bool)
    targets[0] = False
    ends = torch.cumsum(torch.tensor([len(u) for u in group]), 0) - cut
    reads = ends - 1 - torch.tensor([u.tail for u in group])
    return Window(
        tokens, feats, targets, reads.tolist(), [u.label for u in group]
    )


def collate_windows(windows):
    """Pads windows (on the right) into a batch.

    Arguments
    ---------
    windows : list of Window
        The rows.

    Returns
    -------
    dict
        ``tokens`` [B, T], ``feats`` [B, T, D] or None, ``lengths`` [B],
        ``audio_targets`` [B, T], ``emo_positions`` [B, M] and ``labels``
        [B, M] (-100 where padded).

    Example
    -------
    >>> space = TokenSpace(8, 4)
    >>> utts = [make_utterance(torch.tensor([1, 2]), None, space, 1)] * 3
    >>> batch = collate_windows(pack_dialogue(utts, 6))
    >>> batch["tokens"].shape, batch["labels"].tolist()
    (torch.Size([2, 6]), [[1, 1], [1, -100]])
    """
    size = max(w.tokens.shape[0] for w in windows)
    n_emo = max(len(w.labels) for w in windows)
    batch = len(windows)
    tokens = torch.zeros(batch, size, dtype=torch.long)
    targets = torch.zeros(batch, size, dtype=torch.bool)
    positions = torch.zeros(batch, n_emo, dtype=torch.long)
    labels = torch.full((batch, n_emo), -100, dtype=torch.long)
    feats = None
    if windows[0].feats is not None:
        feats = torch.zeros(batch, size, windows[0].feats.shape[-1])
    for i, win in enumerate(windows):
        n = win.tokens.shape[0]
        tokens[i, :n] = win.tokens
        targets[i, :n] = win.audio_targets
        if feats is not None:
            feats[i, :n] = win.feats
        m = len(win.labels)
        positions[i, :m] = torch.tensor(win.emo_positions)
        labels[i, :m] = torch.tensor(win.labels)
    lengths = torch.tensor([w.tokens.shape[0] for w in windows])
    return {
        "tokens": tokens,
        "feats": feats,
        "lengths": lengths,
        "audio_targets": targets,
        "emo_positions": positions,
        "labels": labels,
    }


def batch_on(windows, device):
    """Right-padded tensors of windows on a device, for one forward.

    No attention mask is needed: attention is causal, so no real position
    ever sees the padding after it (and positions count from 0 in every
    row); the padding's own outputs are never used.

    Returns
    -------
    tuple
        ``(tokens [B, T], feats [B, T, D] or None, audio_targets [B, T],
        lengths [B])``.

    Example
    -------
    >>> space = TokenSpace(8, 4)
    >>> a = make_utterance(torch.tensor([1, 2, 3]), None, space)
    >>> b = make_utterance(torch.tensor([4]), None, space)
    >>> tokens, feats, _, lengths = batch_on(
    ...     [context_window([], a, 0), context_window([], b, 0)], "cpu")
    >>> tokens.tolist(), feats, lengths.tolist()
    ([[1, 2, 3, 8], [4, 8, 0, 0]], None, [4, 2])
    """
    batch = collate_windows(windows)
    feats = batch["feats"]
    return (
        batch["tokens"].to(device),
        None if feats is None else feats.to(device),
        batch["audio_targets"].to(device),
        batch["lengths"].to(device),
    )


def group_dialogues(manifest):
    """Groups a manifest's utterances by dialogue, in turn order.

    Arguments
    ---------
    manifest : dict or str
        A manifest dict (utt id → entry) or the path of its JSON file.

    Returns
    -------
    dict
        dialogue id → list of (utt id, entry), sorted by ``turn_index``.

    Example
    -------
    >>> m = {"b": {"dialogue_id": "d", "turn_index": 1},
    ...      "a": {"dialogue_id": "d", "turn_index": 0}}
    >>> [u for u, _ in group_dialogues(m)["d"]]
    ['a', 'b']
    """
    if isinstance(manifest, str):
        with open(manifest, encoding="utf-8") as f:
            manifest = json.load(f)
    dialogues = defaultdict(list)
    for utt_id, entry in manifest.items():
        dialogues[entry["dialogue_id"]].append((utt_id, entry))
    for turns in dialogues.values():
        turns.sort(key=lambda item: item[1]["turn_index"])
    return dict(sorted(dialogues.items()))
