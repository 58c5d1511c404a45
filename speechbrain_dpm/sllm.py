"""The emotion speech-LLM (SLLM): a frozen causal LM trunk that reads speech
units, with new token rows, a projection of continuous speech features and a
fixed LoRA.

The LLM never sees text tokens. Positions hold tokens of a small *new-token
space* (see ``speechbrain_dpm.sequence``): K unit tokens, ``<audio_end>`` and
C emotion tokens. Their input and output rows live here, outside the LLM's
own vocabulary, so the LLM's embedding matrix and output head stay frozen and
untouched; the output head is only needed when the audio loss is normalised
over the full vocabulary (``audio_head="full"``). The trunk itself is loaded
and given its LoRA adapters by ``speechbrain_dpm.llm``.

Authors
 * speechbrain_dpm developers 2026
"""

import torch
import torch.nn.functional as F
from speechbrain.utils.checkpoints import (
    mark_as_loader,
    mark_as_saver,
    mark_as_transfer,
    register_checkpoint_hooks,
)
from torch import nn

from speechbrain_dpm.llm import FIXED_ADAPTER, add_lora_adapter

# Model folders exported before the trunk code moved to ``llm.py`` name
# ``speechbrain_dpm.sllm.load_llm`` in their hyperparams.yaml.
from speechbrain_dpm.llm import load_llm as load_llm
from speechbrain_dpm.sequence import TokenSpace
from speechbrain_dpm.settings import SLLMSettings


@register_checkpoint_hooks
class EmotionSLLM(nn.Module):
    """Emotion speech-LLM over 25 Hz speech units.

    Input of each audio position = embedding of its unit token (+ a learned
    projection of the frame's continuous encoder features when
    ``audio_input="units+continuous"``). The LLM trunk is frozen; trainable
    are the new token rows (input and output), the feature projection and
    the fixed LoRA.

    Arguments
    ---------
    llm : transformers.PreTrainedModel
        A causal LM (Llama-like: ``get_decoder()`` gives the trunk).
    n_units : int
        Size of the unit codebook (K).
    n_emotions : int
        Number of emotion classes (C).
    **options
        The other fields of ``speechbrain_dpm.settings.SLLMSettings``
        (``feat_dim``, ``audio_input``, ``lora_rank``, ``emotion_feedback``
        ...). All are kept in ``self.settings``, with ``llm_layers`` and
        ``llm_dtype`` read from ``llm`` (checked against it when given).

    Example
    -------
    >>> from speechbrain_dpm.testing import tiny_llm
    >>> sllm = EmotionSLLM(tiny_llm(), n_units=16, n_emotions=4, feat_dim=8)
    >>> tokens = torch.tensor([[1, 2, 3, 16]])
    >>> feats = torch.randn(1, 4, 8)
    >>> hidden = sllm.hidden_states(tokens, feats)
    >>> sllm.emotion_logits(hidden[:, -1]).shape
    torch.Size([1, 4])
    """

    def __init__(self, llm, n_units, n_emotions, **options):
        super().__init__()
        settings = SLLMSettings.from_dict(
            {"n_units": n_units, "n_emotions": n_emotions, **options}
        )
        trunk = {
            "llm_layers": int(llm.config.num_hidden_layers),
            "llm_dtype": str(llm.get_input_embeddings().weight.dtype).split(
                "."
            )[-1],
        }
        for key, value in trunk.items():
            given = settings.to_dict()[key]
            if given is not None and given != value:
                raise ValueError(
                    f"{key}={given!r} contradicts the given LLM ({value!r})"
                )
        self.settings = settings.replace(**trunk)
        self.space = TokenSpace(n_units, n_emotions, settings.speaker_slots)
        self.llm = llm
        for param in llm.parameters():
            param.requires_grad_(False)
        self.fixed_lora = []
        if settings.lora_rank > 0:
            self.fixed_lora = add_lora_adapter(
                llm,
                FIXED_ADAPTER,
                settings.lora_rank,
                settings.lora_alpha,
                settings.lora_dropout,
                settings.lora_targets,
            )
            for param in self.fixed_lora:
                param.requires_grad_(True)
        hidden = llm.config.hidden_size
        # New rows start at the scale of the LLM's own embeddings, so the
        # frozen trunk sees inputs of the norm it was trained on.
        scale = llm.get_input_embeddings().weight.float().std().item()
        self.token_embed = nn.Embedding(self.space.size, hidden)
        nn.init.normal_(self.token_embed.weight, std=scale)
        # Output rows start at zero: training starts from uniform unit and
        # emotion distributions instead of random confident ones (the
        # trunk's hidden states have norms of ~50, so even small random
        # rows give large logits).
        self.token_out = nn.Parameter(torch.zeros(self.space.size, hidden))
        self.feat_proj = None
        if settings.audio_input == "units+continuous":
            dim = settings.feat_dim
            self.feat_proj = nn.Sequential(
                nn.LayerNorm(dim), nn.Linear(dim, hidden)
            )
            nn.init.normal_(self.feat_proj[1].weight, std=scale / 4)
            nn.init.zeros_(self.feat_proj[1].bias)

    @property
    def audio_input(self):
        """``units`` or ``units+continuous`` (``settings.audio_input``)."""
        return self.settings.audio_input

    @property
    def audio_head(self):
        """``units`` or ``full`` (``settings.audio_head``)."""
        return self.settings.audio_head

    @property
    def audio_loss_input(self):
        """What the audio loss sees (``settings.audio_loss_input``)."""
        return self.settings.audio_loss_input

    @property
    def emotion_feedback(self):
        """Whether earlier turns carry emotion tokens
        (``settings.emotion_feedback``)."""
        return self.settings.emotion_feedback

    @emotion_feedback.setter
    def emotion_feedback(self, on):
        """Turns the feedback layout on or off (e.g. for the classifier
        stage of a two-stage recipe, which reads utterances alone): the
        token layout changes, the trained tensors do not."""
        self.settings = self.settings.replace(emotion_feedback=bool(on))

    def trainable_parameters(self):
        """Returns the parameters trained with the SLLM (not the memory).

        Returns
        -------
        list of torch.nn.Parameter
            New token rows, feature projection and fixed LoRA.
        """
        params = [self.token_embed.weight, self.token_out]
        if self.feat_proj is not None:
            params += list(self.feat_proj.parameters())
        return params + list(self.fixed_lora)

    def trainable_state_dict(self):
        """The trained tensors only (not the frozen LLM), by name.

        Returns
        -------
        dict
            Parameter name → tensor (detached).
        """
        wanted = {id(p) for p in self.trainable_parameters()}
        return {
            name: param.detach()
            for name, param in self.named_parameters()
            if id(param) in wanted
        }

    @mark_as_saver
    def save(self, path):
        """Saves the trained tensors (checkpoints stay small)."""
        torch.save(self.trainable_state_dict(), path)

    @mark_as_transfer
    @mark_as_loader
    def load(self, path, end_of_epoch=False):
        """Loads trained tensors saved by ``save``.

        Raises
        ------
        RuntimeError
            If the file lacks a tensor this model trains or has one it
            does not know (e.g. another LoRA rank or audio input): loading
            it silently would leave random weights in place.
        """
        del end_of_epoch  # Same state mid-epoch and at the end.
        state = torch.load(path, map_location="cpu")
        expected = set(self.trainable_state_dict())
        missing = sorted(expected - set(state))
        unknown = sorted(set(state) - expected)
        params = dict(self.named_parameters())
        resized = sorted(
            name
            for name in set(state) & expected
            if state[name].shape != params[name].shape
        )
        if missing or unknown or resized:
            raise RuntimeError(
                f"{path}: does not match this model's trained tensors "
                f"(missing {missing[:3]}, unexpected {unknown[:3]}, other "
                f"shape {resized[:3]}); check n_units, emotions, "
                "speaker_slots, audio_input and the LoRA settings"
            )
        with torch.no_grad():
            for name, tensor in state.items():
                params[name].copy_(tensor)

    def forward(self, tokens, feats=None, lengths=None, outputs="read"):
        """Hidden states of a window batch (see ``hidden_states``).

        ``outputs``: ``read`` (the emotion read-out's input), ``audio``
        (the audio loss's input, per ``audio_loss_input``) or ``both``,
        a tuple ``(hidden, audio_hidden)``. When the two inputs differ,
        ``both`` runs them as one batch of 2B rows (one trunk call, so
        DDP sees one forward).
        """
        if outputs == "audio":
            return self.audio_hidden_states(tokens, feats, lengths)
        if outputs == "read":
            return self.hidden_states(tokens, feats, lengths)
        if outputs != "both":
            raise ValueError(f"outputs must be read|audio|both: {outputs!r}")
        if self.audio_forward_is_read:
            hidden = self.hidden_states(tokens, feats, lengths)
            return hidden, hidden
        embeds = torch.cat(
            [self.embed(tokens, feats), self.embed(tokens, use_feats=False)]
        )
        if lengths is not None:
            lengths = torch.cat([lengths, lengths])
        hidden = self._trunk(embeds, lengths)
        return hidden[: len(tokens)], hidden[len(tokens) :]

    @property
    def trunk_dtype(self):
        """The dtype of the frozen LLM's weights (its residual stream)."""
        return self.llm.get_input_embeddings().weight.dtype

    @property
    def audio_sees_feats(self):
        """Whether the audio-loss forward gets the continuous features."""
        return self.audio_loss_input == "units+continuous"

    @property
    def audio_forward_is_read(self):
        """Whether the audio-loss forward is also a valid emotion read-out
        (same input), so one forward can serve both."""
        return self.feat_proj is None or self.audio_sees_feats

    def audio_hidden_states(
        self, tokens, feats=None, lengths=None, grad_from=0
    ):
        """Hidden states for the audio loss (input per
        ``audio_loss_input``); the read-out uses ``hidden_states``.

        ``grad_from`` > 0 (one unpadded row): positions before it run
        without a graph and reach the later ones only as a key/value cache,
        so a backward pass costs the later positions only (a truncated
        gradient, like Temp-LoRA's cache reuse); the hidden states of
        positions ``grad_from:`` are returned.

        Example
        -------
        >>> from speechbrain_dpm.testing import tiny_llm
        >>> sllm = EmotionSLLM(tiny_llm(), 8, 4, audio_input="units").eval()
        >>> tokens = torch.tensor([[1, 2, 3, 4, 8]])
        >>> full = sllm.audio_hidden_states(tokens)
        >>> tail = sllm.audio_hidden_states(tokens, grad_from=3)
        >>> torch.allclose(full[:, 3:], tail, atol=1e-5)
        True
        """
        if grad_from <= 0:
            return self.hidden_states(
                tokens, feats, lengths, use_feats=self.audio_sees_feats
            )
        if tokens.shape[0] != 1 or lengths is not None:
            raise ValueError("grad_from needs a single unpadded window")
        embeds = self.embed(tokens, feats, use_feats=self.audio_sees_feats)
        embeds = embeds.to(self.trunk_dtype)
        decoder = self.llm.get_decoder()
        with torch.no_grad():
            cache = decoder(
                inputs_embeds=embeds[:, :grad_from], use_cache=True
            ).past_key_values
        out = decoder(
            inputs_embeds=embeds[:, grad_from:],
            past_key_values=cache,
            use_cache=True,
        )
        return out.last_hidden_state.float()

    def embed(self, tokens, feats=None, use_feats=True):
        """Builds the input embeddings of a token window.

        Arguments
        ---------
        tokens : torch.LongTensor
            [B, T] ids of the new-token space.
        feats : torch.Tensor, optional
            [B, T, D] continuous features aligned with ``tokens`` (zeros at
            non-unit positions). Required for ``units+continuous``.
        use_feats : bool
            False: the unit tokens only (the audio loss's input).

        Returns
        -------
        torch.Tensor
            [B, T, H] input embeddings.
        """
        embeds = self.token_embed(tokens)
        if self.feat_proj is not None and use_feats:
            if feats is None:
                raise ValueError(
                    "audio_input='units+continuous' needs the continuous "
                    "features of each unit position (feats)"
                )
            is_unit = self.space.is_unit(tokens).unsqueeze(-1)
            proj = self.feat_proj(feats.to(embeds.dtype))
            embeds = embeds + proj * is_unit
        return embeds

    def hidden_states(self, tokens, feats=None, lengths=None, use_feats=True):
        """Runs the trunk (with its active LoRA adapters) on a window.

        Arguments
        ---------
        tokens : torch.LongTensor
            [B, T] ids of the new-token space.
        feats : torch.Tensor, optional
            [B, T, D] continuous features.
        lengths : torch.LongTensor, optional
            [B] number of real (non-padding) tokens per row; padding is on
            the right.
        use_feats : bool
            False: ignore ``feats`` (unit tokens only).

        Returns
        -------
        torch.Tensor
            [B, T, H] last hidden states (after the final norm), float32
            whatever the trunk's dtype (the input runs in the trunk's
            dtype).
        """
        return self._trunk(self.embed(tokens, feats, use_feats), lengths)

    def _trunk(self, embeds, lengths=None):
        mask = None
        if lengths is not None:
            steps = torch.arange(embeds.shape[1], device=embeds.device)
            mask = (steps[None] < lengths[:, None]).long()
        out = self.llm.get_decoder()(
            inputs_embeds=embeds.to(self.trunk_dtype),
            attention_mask=mask,
            use_cache=False,
        )
        return out.last_hidden_state.float()

    def emotion_logits(self, hidden):
        """Emotion logits, restricted to the C emotion tokens.

        Arguments
        ---------
        hidden : torch.Tensor
            [..., H] hidden states at ``<audio_end>`` positions.

        Returns
        -------
        torch.Tensor
            [..., C] logits.
        """
        return hidden @ self.token_out[self.space.emotion_slice].T

    def audio_log_probs(self, hidden, targets):
        """Log-probabilities of target audio tokens.

        Only the rows of the targets' own softmax are computed: the K unit
        tokens and ``<audio_end>`` with ``audio_head="units"``, the whole
        vocabulary with ``audio_head="full"``.

        Arguments
        ---------
        hidden : torch.Tensor
            [N, H] hidden states that predict the targets.
        targets : torch.LongTensor
            [N] unit or ``<audio_end>`` ids.

        Returns
        -------
        torch.Tensor
            [N] log-probabilities of the targets.
        """
        logits = hidden @ self.token_out[self.space.audio_slice].T
        if self.audio_head == "full":
            head = self.llm.get_output_embeddings()
            text_logits = head(hidden.to(head.weight.dtype)).float()
            emo_logits = self.emotion_logits(hidden)
            norm = torch.logsumexp(
                torch.cat([text_logits, logits, emo_logits], dim=-1), dim=-1
            )
        else:
            norm = torch.logsumexp(logits, dim=-1)
        return logits.gather(-1, targets[:, None]).squeeze(-1) - norm

    def predicted_targets(self, tokens, target_mask):
        """Which positions t-1 predict an audio target at t: [B, T-1].

        Speaker tokens are input only: never audio targets, whatever the
        window's ``target_mask`` says.
        """
        return target_mask[:, 1:] & self.space.is_audio(tokens[:, 1:])

    def audio_loss(self, hidden, tokens, target_mask, reduction="mean"):
        """Next-token loss on the audio tokens selected by ``target_mask``.

        Position t-1 predicts token t; only positions where
        ``target_mask[:, t]`` is true count, and only their logits are
        computed.

        Arguments
        ---------
        hidden : torch.Tensor
            [B, T, H] hidden states of the window.
        tokens : torch.LongTensor
            [B, T] the window's tokens.
        target_mask : torch.BoolTensor
            [B, T] which tokens are targets (never position 0).
        reduction : str
            ``mean`` or ``sum``.

        Returns
        -------
        torch.Tensor
            The cross-entropy (nats per target token).
        """
        mask = self.predicted_targets(tokens, target_mask)
        pred = hidden[:, :-1][mask]
        targets = tokens[:, 1:][mask]
        if targets.numel() == 0:
            return hidden.sum() * 0.0
        nll = -self.audio_log_probs(pred, targets)
        return nll.mean() if reduction == "mean" else nll.sum()

    def emotion_loss(self, hidden, positions, labels, class_weights=None):
        """Cross-entropy of the emotion at given positions.

        Arguments
        ---------
        hidden : torch.Tensor
            [B, T, H] hidden states.
        positions : torch.LongTensor
            [B, M] positions of ``<audio_end>`` tokens (padding: any value
            with label -100).
        labels : torch.LongTensor
            [B, M] class indices, -100 to ignore.
        class_weights : torch.Tensor, optional
            [C] weight of each class (``F.cross_entropy``'s ``weight``:
            the mean is weighted too); None: every read counts alike.

        Returns
        -------
        torch.Tensor
            Mean cross-entropy over the labelled positions.
        """
        keep = labels >= 0
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        rows = rows[:, None].expand_as(positions)[keep]
        logits = self.emotion_logits(hidden[rows, positions[keep]])
        return F.cross_entropy(logits, labels[keep], weight=class_weights)
