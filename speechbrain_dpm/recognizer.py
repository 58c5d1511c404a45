"""The recognizer: :class:`DPMEmotionRecognizer`, the ``Pretrained``
interface of a model folder written by
:func:`speechbrain_dpm.export.export_model_folder`.

It labels single utterances (utterance-only context), whole conversations
and live streams (with the folder's context strategy, ``strategy`` in its
``hyperparams.yaml``), and long recordings cut into speech segments by
silero-vad (:mod:`speechbrain_dpm.long_audio`). Audio is read and checked
by :mod:`speechbrain_dpm.audio`. ``classify_dialogue`` and
``classify_long_audio`` take ``on_error="skip"`` to leave bad turns out of
the conversation instead of raising, counted in the log and marked in the
output.

Authors
 * speechbrain_dpm developers 2026
"""

import os
from dataclasses import dataclass

import torch
from speechbrain.inference.interfaces import Pretrained
from speechbrain.utils.fetching import FetchConfig, LocalStrategy
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.audio import (
    SAMPLE_RATE,
    check_waveform,
    checked_turns,
    read_audio_16k,
)
from speechbrain_dpm.export import HPARAMS_FILE
from speechbrain_dpm.long_audio import (
    classify_long_audio,
    silero_vad,
    speech_segments,
)
from speechbrain_dpm.streaming import StreamSession, push_streams

logger = get_logger(__name__)


@dataclass
class EmotionPrediction:
    """The emotion of one utterance or segment.

    Unpacks as ``label, probs = prediction``.

    Arguments
    ---------
    label : str
        The most likely class.
    probs : torch.Tensor
        [C] class probabilities (softmax over the emotion tokens).
    index : int
        Index of ``label``.
    score : float
        Probability of ``label``.
    error : str, optional
        Why the input was left out (``on_error="skip"``); then ``label``
        is None, ``probs`` NaN, ``index`` -1 and ``score`` NaN.

    Example
    -------
    >>> pred = EmotionPrediction("hap", torch.tensor([0.2, 0.8]), 1, 0.8)
    >>> label, probs = pred
    >>> label, probs.tolist()
    ('hap', [0.20000000298023224, 0.800000011920929])
    """

    label: str
    probs: torch.Tensor
    index: int
    score: float
    error: str = None

    def __iter__(self):
        return iter((self.label, self.probs))


class DPMEmotionRecognizer(Pretrained):
    """Emotion recognition for utterances, conversations and long audio.

    Built from a folder written by :func:`export_model_folder`. Single
    utterances are read alone (utterance-only context); conversations,
    streams and long recordings go through the folder's context strategy
    (``strategy`` / ``strategy_opts`` in ``hyperparams.yaml``: the one the
    recipe exported, its ``export_strategy``, e.g. ``one_pass`` for
    ``dpm.yaml``, ``dpm`` for ``dpm_paper.yaml``), whose memory is reset at
    the start and end of each conversation.

    Many conversations at once: each conversation (a dialogue, a long
    recording, a :meth:`stream` session) has its own memory slot, so
    sessions can be open side by side, :meth:`classify_dialogues` reads
    several dialogues as one batch, and :meth:`push_streams` serves the
    pushes of several sessions in one step. ``batch_size`` (default
    ``BATCH_SIZE``) bounds how many conversations are read at once; the
    precision is SpeechBrain's ``run_opts={"precision": "bf16"}``.

    Arguments
    ---------
    *args : tuple
        ``Pretrained`` arguments (``modules``, ``hparams``).
    **kwargs : dict
        ``Pretrained`` keyword arguments (``run_opts``, ``freeze_params``).

    Example
    -------
    A tiny random model folder stands in for a trained one (e.g.
    ``results/IEMOCAP/dpm/1986/model``):

    >>> from speechbrain_dpm.testing import (
    ...     tiny_model_folder, write_dialogue_wavs)
    >>> folder = tiny_model_folder(getfixture("tmp_path") / "model")
    >>> wavs = write_dialogue_wavs(getfixture("tmp_path"), n_turns=2)
    >>> model = DPMEmotionRecognizer.from_hparams(
    ...     source=folder, run_opts={"device": "cpu"}
    ... )
    >>> out_prob, score, index, text_lab = model.classify_file(wavs[0])
    >>> out_prob.shape, text_lab[0] in model.hparams.emotions
    (torch.Size([1, 4]), True)
    >>> preds = model.classify_dialogue(wavs)
    >>> [p.label in ["neu", "hap", "sad", "ang"] for p in preds]
    [True, True]
    """

    HPARAMS_NEEDED = [
        "emotions",
        "label_encoder",
        "strategy",
        "strategy_opts",
        "sample_rate",
    ]
    MODULES_NEEDED = ["frame_encoder", "codebook", "sllm"]
    #: Conversations read at once by default (benchmarks/README.md).
    BATCH_SIZE = 8

    def __init__(self, *args, **kwargs):
        modules = kwargs.get("modules", args[0] if args else None)
        hparams = kwargs.get("hparams", args[1] if len(args) > 1 else None)
        if hparams is None:
            raise ValueError(
                "DPMEmotionRecognizer needs hparams (load it with "
                "from_hparams(source=<exported folder>))"
            )
        missing = [k for k in self.HPARAMS_NEEDED if k not in hparams]
        if missing:
            raise ValueError(
                f"hyperparams lack {missing}: is this a folder written by "
                "speechbrain_dpm.export.export_model_folder?"
            )
        missing = [m for m in self.MODULES_NEEDED if m not in (modules or {})]
        if missing:
            raise ValueError(
                f"modules lack {missing} (needed: {self.MODULES_NEEDED})"
            )
        super().__init__(*args, **kwargs)
        from speechbrain_dpm.context import build_strategy

        self.emotions = [str(e) for e in self.hparams.emotions]
        self.label_encoder = self.hparams.label_encoder
        self.label_encoder.expect_len(len(self.emotions))
        self._check_consistency()
        opts = dict(self.hparams.strategy_opts or {})
        opts.setdefault("precision", self.precision)
        self.strategy = build_strategy(
            self.hparams.strategy, self.mods.sllm, **opts
        )
        self.utterance_strategy = build_strategy(
            "utterance",
            self.mods.sllm,
            n_limit=opts.get("n_limit"),
            precision=opts["precision"],
        )
        # Not an attribute: a Module there would become a submodule.
        self._vad_cache = {}

    def _check_consistency(self):
        """Fails clearly when the loaded pieces do not fit together."""
        sllm, codebook = self.mods.sllm, self.mods.codebook
        order = [
            self.label_encoder.ind2lab[i]
            for i in range(len(self.label_encoder))
        ]
        if order != self.emotions:
            raise ValueError(
                f"label encoder classes {order} differ from hparams "
                f"emotions {self.emotions}"
            )
        if len(self.emotions) != sllm.space.n_emotions:
            raise ValueError(
                f"{len(self.emotions)} emotions for a model with "
                f"{sllm.space.n_emotions} emotion tokens"
            )
        if not codebook.fitted or codebook.n_units != sllm.space.n_units:
            raise ValueError(
                f"codebook ({codebook.n_units} units, fitted: "
                f"{codebook.fitted}) does not match the model "
                f"({sllm.space.n_units} units)"
            )
        dim = self.mods.frame_encoder.dim
        if codebook.centroids.shape[1] != dim:
            raise ValueError(
                f"codebook centroids are {codebook.centroids.shape[1]}-d but "
                f"the encoder gives {dim}-d features"
            )
        if int(self.hparams.sample_rate) != SAMPLE_RATE:
            raise ValueError(f"sample_rate must be {SAMPLE_RATE}")

    @classmethod
    def from_hparams(
        cls,
        source,
        hparams_file=HPARAMS_FILE,
        savedir=None,
        overrides=None,
        fetch_config=None,
        local_strategy=LocalStrategy.SYMLINK,
        **kwargs,
    ):
        """Loads an exported model folder, without network access.

        Network fetching is disabled (``FetchConfig(allow_network=False)``);
        the encoder and LLM are resolved from local folders or the offline
        asset cache. With ``savedir=None`` (default) the files are read in
        place and no link or copy is made anywhere (in particular not in
        the working directory). For a local folder, ``pretrained_path`` is
        set to that folder, so a moved or copied folder loads its own files.

        Arguments
        ---------
        source : str or path-like
            The exported folder (or a hub id already in the local HF cache).
        hparams_file : str
            Name of the hparams file in ``source``.
        savedir : str, optional
            Folder to collect the model files in (symlinks by default).
        overrides : dict, optional
            HyperPyYAML overrides.
        fetch_config : speechbrain.utils.fetching.FetchConfig, optional
            Defaults to ``FetchConfig(allow_network=False)``, plus
            ``overwrite=True`` for a local folder (so a reused ``savedir``
            never keeps stale files).
        local_strategy : speechbrain.utils.fetching.LocalStrategy
            How files are put into ``savedir``.
        **kwargs : dict
            Passed on (e.g. ``run_opts={"device": "cuda:0"}``).

        Returns
        -------
        DPMEmotionRecognizer
            The model, in eval mode.

        Raises
        ------
        FileNotFoundError
            If ``source`` is a folder without ``hparams_file``.

        Example
        -------
        >>> from speechbrain_dpm.testing import tiny_model_folder
        >>> folder = tiny_model_folder(getfixture("tmp_path") / "model")
        >>> model = DPMEmotionRecognizer.from_hparams(
        ...     folder, run_opts={"device": "cpu"})
        >>> model.hparams.emotions
        ['neu', 'hap', 'sad', 'ang']
        """
        source = os.fspath(source) if not isinstance(source, str) else source
        overrides = dict(overrides or {})
        local = os.path.isdir(source)
        if local:
            source = os.path.abspath(source)
            if not os.path.isfile(os.path.join(source, hparams_file)):
                raise FileNotFoundError(
                    f"{source} has no {hparams_file}: not a model folder "
                    "written by speechbrain_dpm.export.export_model_folder"
                )
            overrides.setdefault("pretrained_path", source)
        if fetch_config is None:
            fetch_config = FetchConfig(allow_network=False, overwrite=local)
        return super().from_hparams(
            source=source,
            hparams_file=hparams_file,
            savedir=savedir,
            overrides=overrides,
            fetch_config=fetch_config,
            local_strategy=local_strategy,
            **kwargs,
        )

    # -- audio -------------------------------------------------------------

    def load_audio(self, path, savedir=None):
        """Reads a local audio file as a checked mono 16 kHz waveform.

        Unlike ``Pretrained.load_audio`` nothing is fetched, linked or
        copied (no symlink in the working directory).

        Arguments
        ---------
        path : str or path-like
            The audio file.
        savedir : None
            Unused (``Pretrained`` signature).

        Returns
        -------
        torch.Tensor
            1-D float32 waveform at 16 kHz (CPU).
        """
        del savedir
        return read_audio_16k(path)

    def _skipped(self, error):
        """The prediction that marks an input left out (``on_error``)."""
        nan = torch.full((len(self.emotions),), float("nan"))
        return EmotionPrediction(None, nan, -1, float("nan"), error=error)

    @torch.no_grad()
    def encode_utterances(self, wavs, speakers=None, slots=None):
        """Waveforms to utterances of the SLLM's token space.

        Arguments
        ---------
        wavs : list of torch.Tensor
            Checked 1-D waveforms at 16 kHz.
        speakers : list of str, optional
            Speaker of each waveform (kept on the utterances, and the
            source of their speaker tokens if the model has speaker slots).
        slots : list of int, optional
            Speaker slots, if already known (a stream assigns them over
            the whole conversation).

        Returns
        -------
        list of speechbrain_dpm.sequence.Utterance
            Units (and continuous features) + ``<audio_end>`` each.
        """
        from speechbrain_dpm.sequence import make_utterance, speaker_slots

        sllm, codebook = self.mods.sllm, self.mods.codebook
        if not sllm.space.n_speakers:
            slots = [None] * len(wavs)
        elif slots is None:
            names = [str(s) for s in speakers] if speakers else [""] * len(wavs)
            slots = speaker_slots(names, sllm.space.n_speakers)
        feats_list = self.mods.frame_encoder.encode_list(
            [w.to(self.device) for w in wavs]
        )
        with_feats = sllm.feat_proj is not None
        utts = []
        for i, feats in enumerate(feats_list):
            # Training read the features from an fp16 cache: same rounding.
            feats = feats.half().float()
            units = codebook.assign(feats.to(self.device)).cpu()
            speaker = speakers[i] if speakers is not None else ""
            utts.append(
                make_utterance(
                    units,
                    feats if with_feats else None,
                    sllm.space,
                    utt_id=str(i),
                    speaker=str(speaker),
                    speaker_slot=slots[i],
                )
            )
        return utts

    # -- outputs -----------------------------------------------------------

    def _prediction(self, logits):
        """An EmotionPrediction from [C] logits."""
        probs = torch.softmax(logits.float(), dim=-1)
        index = int(probs.argmax())
        return EmotionPrediction(
            self.emotions[index], probs, index, float(probs[index])
        )

    # -- single utterances -------------------------------------------------

    def classify_batch(self, wavs, wav_lens=None):
        """Emotions of single utterances (utterance-only context).

        Arguments
        ---------
        wavs : torch.Tensor
            [B, T] or [T] waveforms at 16 kHz, mono, padded on the right.
        wav_lens : torch.Tensor, optional
            [B] relative lengths in (0, 1] (SpeechBrain convention).

        Returns
        -------
        out_prob : torch.Tensor
            [B, C] class probabilities.
        score : torch.Tensor
            [B] probability of the best class.
        index : torch.Tensor
            [B] index of the best class.
        text_lab : list of str
            [B] best class names.

        Raises
        ------
        ValueError
            If a row is empty, silent or has NaN samples.
        """
        wavs = torch.as_tensor(wavs).detach().cpu()
        if wavs.dim() == 1:
            wavs = wavs.unsqueeze(0)
        if wavs.dim() != 2:
            raise ValueError(
                f"wavs must be [B, T] or [T] (16 kHz mono), got shape "
                f"{tuple(wavs.shape)}"
            )
        total = wavs.shape[1]
        if wav_lens is None:
            lengths = [total] * wavs.shape[0]
        else:
            lengths = [int(round(float(r) * total)) for r in wav_lens]
        rows = [
            check_waveform(w[:n], f"wavs[{i}]")
            for i, (w, n) in enumerate(zip(wavs, lengths))
        ]
        logits = self._utterance_logits(self.encode_utterances(rows))
        out_prob = torch.softmax(logits, dim=-1)
        score, index = out_prob.max(dim=-1)
        text_lab = [self.emotions[i] for i in index.tolist()]
        return out_prob, score, index, text_lab

    def _utterance_logits(self, utts):
        """[N, C] logits of utterances read alone (no memory)."""
        return self.utterance_strategy.read_utterances(utts, self.BATCH_SIZE)

    def classify_file(self, path):
        """Emotion of one audio file (utterance-only context).

        Arguments
        ---------
        path : str or path-like
            The audio file (any rate, mono or multi-channel).

        Returns
        -------
        tuple
            ``(out_prob [1, C], score [1], index [1], text_lab [1])``, as
            :meth:`classify_batch`.
        """
        return self.classify_batch(self.load_audio(path).unsqueeze(0))

    def forward(self, wavs, wav_lens=None):
        """Same as :meth:`classify_batch`."""
        return self.classify_batch(wavs, wav_lens)

    # -- conversations -----------------------------------------------------

    def classify_dialogue(self, wavs_or_paths, speakers=None, on_error="raise"):
        """Emotions of the utterances of one conversation, in order.

        The utterances go through the configured strategy as one
        conversation; its memory starts empty and is discarded at the end.

        Arguments
        ---------
        wavs_or_paths : list of str or torch.Tensor
            The utterances in order: file paths or 1-D 16 kHz tensors.
        speakers : list of str, optional
            Speaker of each utterance (kept with it; the model does not
            use speaker identities).
        on_error : str
            ``raise`` (default): a bad utterance (missing, unreadable,
            empty, shorter than ``MIN_SECONDS``, NaN, silent) raises.
            ``skip``: it is left out of the conversation (a warning counts
            them) and its prediction is marked (``error``, label None).

        Returns
        -------
        list of EmotionPrediction
            One per utterance (``label, probs = prediction``).
        """
        return self.classify_dialogues(
            [wavs_or_paths], [speakers], on_error=on_error
        )[0]

    def classify_dialogues(
        self, dialogues, speakers=None, batch_size=None, on_error="raise"
    ):
        """Emotions of many conversations, read side by side.

        Each dialogue is one conversation with its own memory; up to
        ``batch_size`` are read at once (continuous batching), and each gets
        the labels it would get alone.

        Arguments
        ---------
        dialogues : list of list of (str or torch.Tensor)
            The conversations, each a list of utterances in order.
        speakers : list of (list of str or None), optional
            Speakers of each dialogue's utterances.
        batch_size : int, optional
            Conversations read at once (default ``BATCH_SIZE``).
        on_error : str
            ``raise`` or ``skip`` (see ``classify_dialogue``).

        Returns
        -------
        list of list of EmotionPrediction
            One list per dialogue.
        """
        if speakers is None:
            speakers = [None] * len(dialogues)
        if len(speakers) != len(dialogues):
            raise ValueError(
                f"{len(speakers)} speaker lists for {len(dialogues)} dialogues"
            )
        turns, encoded = [], []
        for d, (items, names) in enumerate(zip(dialogues, speakers)):
            items = list(items)
            if names is not None and len(names) != len(items):
                raise ValueError(
                    f"dialogue {d}: {len(names)} speakers for {len(items)} "
                    "utterances"
                )
            checked = checked_turns(items, on_error)
            good = [i for i, x in enumerate(checked) if not isinstance(x, str)]
            if names is not None:
                names = [names[i] for i in good]
            wavs = [checked[i] for i in good]
            turns.append(checked)
            encoded.append(self.encode_utterances(wavs, names) if wavs else [])
        logits = self._read_conversations(encoded, batch_size)
        return [self._with_skipped(t, rows) for t, rows in zip(turns, logits)]

    def _with_skipped(self, turns, logits):
        """Predictions of the read turns, in place; skipped ones marked."""
        rows = iter(logits)
        return [
            self._skipped(turn)
            if isinstance(turn, str)
            else self._prediction(next(rows))
            for turn in turns
        ]

    def _read_conversations(self, dialogues, batch_size=None):
        """[N_i, C] logits of encoded conversations, read side by side."""
        try:
            return self.strategy.predict_dialogues(
                dialogues, batch_size or self.BATCH_SIZE
            )
        finally:
            self.strategy.clear_records()

    def stream(self):
        """Opens a live conversation: push utterances one at a time.

        Returns
        -------
        StreamSession
            Use as a context manager, or call ``close()`` at the end.

        Example
        -------
        >>> from speechbrain_dpm.testing import tiny_model_folder, tiny_dialogue
        >>> model = DPMEmotionRecognizer.from_hparams(
        ...     tiny_model_folder(getfixture("tmp_path") / "model"))
        >>> with model.stream() as session:
        ...     for wav in tiny_dialogue(n_turns=3):
        ...         label, probs = session.push(wav)
        >>> session.n_pushed, probs.shape
        (3, torch.Size([4]))
        """
        return StreamSession(self)

    def push_streams(self, pushes):
        """Serves the next utterance of several open sessions in one step
        (:func:`speechbrain_dpm.streaming.push_streams` on this model)."""
        return push_streams(self, pushes)

    # -- long recordings ---------------------------------------------------

    def _speech_segments(self, wav, *vad):
        """silero-vad speech spans, in samples (``long_audio.speech_segments``
        with this recognizer's VAD model, loaded once)."""
        if "model" not in self._vad_cache:
            _, load_silero_vad = silero_vad()
            self._vad_cache["model"] = load_silero_vad()
        return speech_segments(wav, self._vad_cache["model"], *vad)

    # The method is the function itself: ``self`` is its ``recognizer``.
    classify_long_audio = classify_long_audio
