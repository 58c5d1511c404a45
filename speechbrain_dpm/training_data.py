"""What ``DPMBrain`` trains and evaluates on: dialogues of utterances read
from a units manifest, the training windows packed from them and the class
weights of the emotion loss.

Authors
 * speechbrain_dpm developers 2026
"""

import dataclasses

import torch

from speechbrain_dpm.sequence import (
    group_dialogues,
    make_utterance,
    pack_dialogue,
    speaker_slots,
    with_emotion,
)


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
