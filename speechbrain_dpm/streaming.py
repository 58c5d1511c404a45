"""Live conversations: a :class:`StreamSession` labels the utterances of one
conversation as they arrive, with the recognizer's context strategy and a
memory slot of its own.

Authors
 * speechbrain_dpm developers 2026
"""

from speechbrain_dpm.audio import as_waveform


class StreamSession:
    """A live conversation with a DPMEmotionRecognizer.

    ``push`` labels the next utterance with everything heard so far in the
    session (the strategy's bounded sliding history and the session's own
    memory slot, so memory use does not grow with the conversation);
    ``close`` discards them. Sessions are context managers; any number can
    be open at once, and ``DPMEmotionRecognizer.push_streams`` serves
    several of them in one step.

    Arguments
    ---------
    recognizer : DPMEmotionRecognizer
        The model.

    Example
    -------
    >>> from speechbrain_dpm.recognizer import DPMEmotionRecognizer
    >>> from speechbrain_dpm.testing import (
    ...     tiny_model_folder, write_dialogue_wavs)
    >>> model = DPMEmotionRecognizer.from_hparams(
    ...     tiny_model_folder(getfixture("tmp_path") / "model"))
    >>> wavs = write_dialogue_wavs(getfixture("tmp_path"), n_turns=2)
    >>> with model.stream() as session:
    ...     first = session.push(wavs[0], speaker="A")
    ...     second = session.push(wavs[1], speaker="B")
    >>> second.label in model.hparams.emotions, second.probs.shape
    (True, torch.Size([4]))
    >>> session.closed
    True
    """

    def __init__(self, recognizer):
        self.recognizer = recognizer
        self.n_pushed = 0
        self.speakers = {}  # distinct speakers, in order of appearance
        self.closed = False
        self.conversation = recognizer.strategy.open()

    def push(self, wav, speaker=None):
        """Labels the next utterance of the conversation.

        Arguments
        ---------
        wav : str or torch.Tensor
            An audio file, or a 1-D 16 kHz mono waveform.
        speaker : str, optional
            Who speaks (any name, consistent within the conversation);
            used by models with speaker slots.

        Returns
        -------
        EmotionPrediction
            ``label, probs = prediction``.
        """
        if self.closed:
            raise RuntimeError("push() on a closed stream session")
        name = f"utterance {self.n_pushed}"
        return self._push(as_waveform(wav, name), speaker)

    def _push(self, wav, speaker=None):
        """Labels a checked 1-D 16 kHz waveform."""
        (logits,) = self.push_many([self], [self.encode(wav, speaker)])
        return self.recognizer._prediction(logits)

    def encode(self, wav, speaker=None):
        """A checked waveform as this conversation's next utterance."""
        from speechbrain_dpm.sequence import speaker_slots

        if self.closed:
            raise RuntimeError("push() on a closed stream session")
        rec = self.recognizer
        name = "" if speaker is None else str(speaker)
        slots = None
        n_slots = rec.mods.sllm.space.n_speakers
        if n_slots:
            # Slots by first appearance over the whole conversation; only
            # the distinct speakers are kept, so the state stays bounded.
            slots = speaker_slots([*self.speakers, name], n_slots)[-1:]
        if name:
            self.speakers.setdefault(name)
        return rec.encode_utterances([wav], [name], slots)[0]

    @staticmethod
    def push_many(sessions, utts):
        """[B, C] logits of the next utterance of several sessions."""
        if any(s.closed for s in sessions):
            raise RuntimeError("push() on a closed stream session")
        strategy = sessions[0].recognizer.strategy
        convs = [s.conversation for s in sessions]
        logits = strategy.push_many(convs, utts)
        for session in sessions:
            # Per-utterance diagnostics would grow with the call: drop them.
            session.conversation.records.clear()
            session.n_pushed += 1
        return logits

    def close(self):
        """Ends the conversation; its memory and history are discarded."""
        if self.closed:
            return
        self.closed = True
        self.recognizer.strategy.release(self.conversation)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def push_streams(recognizer, pushes):
    """Serves the next utterance of several open sessions in one step.

    Arguments
    ---------
    recognizer : speechbrain_dpm.recognizer.DPMEmotionRecognizer
        The model the sessions were opened on.
    pushes : list of (StreamSession, wav) or (StreamSession, wav, speaker)
        At most one utterance per session.

    Returns
    -------
    list of EmotionPrediction
        In the order of ``pushes``; the same labels as pushing each
        session alone.
    """
    sessions = [p[0] for p in pushes]
    utts = []
    for session, wav, *speaker in pushes:
        if session.recognizer is not recognizer:
            raise ValueError("a session of another recognizer")
        name = f"utterance {session.n_pushed}"
        wav = as_waveform(wav, name)
        utts.append(session.encode(wav, speaker[0] if speaker else None))
    return [
        recognizer._prediction(row)
        for row in StreamSession.push_many(sessions, utts)
    ]
