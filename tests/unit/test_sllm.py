"""The emotion SLLM: restricted heads, frozen trunk, small checkpoints."""

import pytest
import torch

from speechbrain_dpm.llm import FIXED_ADAPTER
from speechbrain_dpm.sequence import (
    TokenSpace,
    collate_windows,
    make_utterance,
    pack_dialogue,
)
from speechbrain_dpm.sllm import EmotionSLLM
from speechbrain_dpm.testing import tiny_llm

K, C, D = 16, 4, 8


def make_sllm(**kwargs):
    torch.manual_seed(0)
    return EmotionSLLM(tiny_llm(), K, C, feat_dim=D, **kwargs)


def batch_of(space, n_utts=3, seed=0):
    gen = torch.Generator().manual_seed(seed)
    utts = [
        make_utterance(
            torch.randint(0, K, (6,), generator=gen),
            torch.randn(6, D, generator=gen),
            space,
            label=i % C,
        )
        for i in range(n_utts)
    ]
    return collate_windows(pack_dialogue(utts, 64))


def test_emotion_loss_touches_only_emotion_rows():
    sllm = make_sllm()
    batch = batch_of(sllm.space)
    hidden = sllm(batch["tokens"], batch["feats"], batch["lengths"])
    loss = sllm.emotion_loss(hidden, batch["emo_positions"], batch["labels"])
    loss.backward()
    grad = sllm.token_out.grad
    assert grad[sllm.space.emotion_slice].abs().sum() > 0
    assert grad[sllm.space.audio_slice].abs().sum() == 0


@pytest.mark.parametrize("head", ["units", "full"])
def test_audio_head_normalisation(head):
    sllm = make_sllm(audio_head=head)
    hidden = torch.randn(5, sllm.llm.config.hidden_size)
    every = torch.arange(K + 1)
    logp = torch.stack(
        [sllm.audio_log_probs(hidden, every.new_full((5,), t)) for t in every]
    )
    total = logp.exp().sum(0)
    if head == "units":
        # Normalised over the units and <audio_end> only.
        assert torch.allclose(total, torch.ones(5), atol=1e-5)
    else:
        # The text vocabulary and emotion tokens take part of the mass.
        assert (total < 0.999).all()


def test_audio_loss_only_at_targets():
    sllm = make_sllm()
    batch = batch_of(sllm.space)
    hidden = sllm(batch["tokens"], batch["feats"], batch["lengths"])
    mask = batch["audio_targets"].clone()
    full = sllm.audio_loss(hidden, batch["tokens"], mask, reduction="sum")
    mask[:, 5:] = False
    part = sllm.audio_loss(hidden, batch["tokens"], mask, reduction="sum")
    assert part < full


def test_trunk_frozen_and_only_new_parts_train():
    sllm = make_sllm()
    trainable = {id(p) for p in sllm.trainable_parameters()}
    for name, param in sllm.llm.named_parameters():
        is_fixed_lora = f".{FIXED_ADAPTER}." in name
        assert param.requires_grad == is_fixed_lora, name
        assert (id(param) in trainable) == is_fixed_lora, name


def test_units_only_ignores_features():
    sllm = make_sllm(audio_input="units")
    batch = batch_of(sllm.space)
    a = sllm(batch["tokens"], batch["feats"], batch["lengths"])
    b = sllm(batch["tokens"], batch["feats"] * 10, batch["lengths"])
    assert torch.equal(a, b)
    both = make_sllm()
    with pytest.raises(ValueError, match="feats"):
        both(batch["tokens"], None, batch["lengths"])


def test_checkpoint_roundtrip_is_small_and_exact(tmp_path):
    sllm = make_sllm()
    with torch.no_grad():
        for p in sllm.trainable_parameters():
            p.add_(torch.randn_like(p))
    path = tmp_path / "sllm.ckpt"
    sllm.save(path)
    state = torch.load(path)
    n_saved = sum(t.numel() for t in state.values())
    n_total = sum(p.numel() for p in sllm.parameters())
    assert n_saved < n_total
    other = make_sllm()
    other.load(path, end_of_epoch=True)
    for a, b in zip(sllm.parameters(), other.parameters()):
        assert torch.equal(a, b)


def test_checkpoint_mismatch_is_a_clear_error(tmp_path):
    path = tmp_path / "sllm.ckpt"
    make_sllm().save(path)
    other = make_sllm(lora_rank=8, lora_alpha=8, audio_input="units")
    with pytest.raises(RuntimeError, match="does not match"):
        other.load(path, end_of_epoch=True)


def test_padding_does_not_change_real_positions():
    sllm = make_sllm()
    space = TokenSpace(K, C)
    short = batch_of(space, n_utts=1)
    long = batch_of(space, n_utts=3)
    pad = long["tokens"].shape[1]
    tokens = torch.zeros(2, pad, dtype=torch.long)
    feats = torch.zeros(2, pad, D)
    n = short["tokens"].shape[1]
    tokens[0, :n], feats[0, :n] = short["tokens"][0], short["feats"][0]
    tokens[1], feats[1] = long["tokens"][0], long["feats"][0]
    lengths = torch.tensor([n, pad])
    both = sllm(tokens, feats, lengths)
    alone = sllm(short["tokens"], short["feats"], short["lengths"])
    assert torch.allclose(both[0, :n], alone[0], atol=1e-5)


@pytest.mark.parametrize("loss_input", ["units", "units+continuous"])
def test_audio_loss_input_decides_what_the_audio_loss_sees(loss_input):
    sllm = make_sllm(audio_loss_input=loss_input, lora_rank=0)
    batch = batch_of(sllm.space)
    tokens, lengths = batch["tokens"], batch["lengths"]
    other = torch.randn_like(batch["feats"])

    def audio_hidden(feats):
        # (the loss itself starts flat: the output rows start at zero)
        return sllm(tokens, feats, lengths, outputs="audio")

    same = torch.allclose(audio_hidden(batch["feats"]), audio_hidden(other))
    assert same == (loss_input == "units")
    # The read-out always sees the features.
    read = sllm(tokens, batch["feats"], lengths)
    assert not torch.allclose(read, sllm(tokens, other, lengths))
    assert sllm.audio_forward_is_read == (loss_input != "units")


def test_both_outputs_in_one_call_match_separate_calls():
    sllm = make_sllm(audio_loss_input="units")
    batch = batch_of(sllm.space, n_utts=4)
    args = batch["tokens"], batch["feats"], batch["lengths"]
    read, audio = sllm(*args, outputs="both")
    torch.testing.assert_close(read, sllm(*args), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(
        audio, sllm(*args, outputs="audio"), atol=1e-5, rtol=1e-5
    )
    with pytest.raises(ValueError, match="outputs"):
        sllm(*args, outputs="emotion")


def test_units_model_has_one_audio_input():
    sllm = EmotionSLLM(tiny_llm(), K, C, audio_input="units")
    assert sllm.audio_loss_input == "units" and sllm.audio_forward_is_read


# ---------------------------------------------------------------------------
# Speaker tokens
# ---------------------------------------------------------------------------


def speaker_dialogue(space, speakers, seed=0):
    from speechbrain_dpm.sequence import speaker_slots

    gen = torch.Generator().manual_seed(seed)
    slots = speaker_slots(speakers, space.n_speakers)
    return [
        make_utterance(
            torch.randint(0, K, (5,), generator=gen),
            torch.randn(5, D, generator=gen),
            space,
            label=i % C,
            speaker=spk,
            speaker_slot=slot,
        )
        for i, (spk, slot) in enumerate(zip(speakers, slots))
    ]


def test_speaker_tokens_are_input_only():
    sllm = make_sllm(speaker_slots=3)
    utts = speaker_dialogue(sllm.space, ["F", "M", "F", "M"])
    # Each turn is [speaker, 5 units, <audio_end>].
    assert [len(u) for u in utts] == [7] * 4
    assert utts[0].tokens[0] == sllm.space.speaker(0)
    assert utts[1].tokens[0] == sllm.space.speaker(1)
    assert (utts[0].feats[0] == 0).all()
    batch = collate_windows(pack_dialogue(utts, 64))
    hidden = sllm(batch["tokens"], batch["feats"], batch["lengths"])
    # A speaker token as target would index past the unit head; counted
    # targets are the 4 x 6 audio tokens (the first unit is predicted from
    # the first speaker token).
    nll = sllm.audio_loss(
        hidden, batch["tokens"], batch["audio_targets"], reduction="sum"
    )
    mean = sllm.audio_loss(hidden, batch["tokens"], batch["audio_targets"])
    assert torch.isclose(nll / mean, torch.tensor(4 * 6.0))
    # The emotion read sees who speaks: another slot, another read-out.
    swapped = speaker_dialogue(sllm.space, ["M", "F", "F", "M"])
    other = collate_windows(pack_dialogue(swapped, 64))
    assert other["tokens"][0, 7] == sllm.space.speaker(1)
    hidden_other = sllm(other["tokens"], other["feats"], other["lengths"])
    end = batch["emo_positions"][0, 2]
    assert not torch.allclose(hidden[0, end], hidden_other[0, end])


def test_speaker_slots_are_relative_to_the_dialogue():
    space = TokenSpace(K, C, n_speakers=3)
    a = speaker_dialogue(space, ["Ses01F", "Ses01M", "Ses01F"])
    b = speaker_dialogue(space, ["Ses05M", "Ses05F", "Ses05M"])
    for x, y in zip(a, b):
        assert torch.equal(x.tokens, y.tokens)


def test_speaker_slot_must_match_the_token_space():
    with pytest.raises(ValueError, match="speaker slots"):
        make_utterance(torch.tensor([1]), None, TokenSpace(K, C, 2))
    with pytest.raises(ValueError, match="speaker slots"):
        make_utterance(
            torch.tensor([1]), None, TokenSpace(K, C), speaker_slot=0
        )
    with pytest.raises(ValueError, match="out of range"):
        TokenSpace(K, C, 2).speaker(2)


def test_speaker_model_checkpoint_needs_the_same_slots(tmp_path):
    path = tmp_path / "sllm.ckpt"
    make_sllm(speaker_slots=3).save(path)
    with pytest.raises(RuntimeError, match="does not match"):
        make_sllm().load(path)
    make_sllm(speaker_slots=3).load(path)


def test_fed_back_emotion_keeps_the_read_at_audio_end():
    from speechbrain_dpm.sequence import context_window, with_emotion

    space = TokenSpace(8, 4)
    a = make_utterance(torch.tensor([1, 2]), torch.ones(2, 3), space, 3)
    b = make_utterance(torch.tensor([4]), torch.ones(1, 3), space, 1)
    fed = with_emotion(a, 2, space)
    assert fed.tokens.tolist() == [1, 2, 8, space.emotion(2)]
    assert fed.read_index == 2 and fed.label == 3
    assert fed.feats.shape == (4, 3) and fed.feats[-1].abs().sum() == 0
    (win,) = pack_dialogue([fed, with_emotion(b, 0, space)], 20)
    assert win.emo_positions == [2, 5] and win.labels == [3, 1]
    assert [win.tokens[p] for p in win.emo_positions] == [8, 8]
    read = context_window([fed], b, 10)
    assert read.tokens.tolist() == [1, 2, 8, space.emotion(2), 4, 8]
    assert read.emo_positions == [5]
    with pytest.raises(ValueError, match="already"):
        with_emotion(fed, 1, space)
    with pytest.raises(ValueError, match="out of range"):
        with_emotion(a, 4, space)


# -- dtype, checkpointing, context bound, LLM families (issue 16) -----------


def family_llm(family, seed=0):
    """A tiny random causal LM of an HF family (vocab 64, width 32)."""
    import transformers

    common = {
        "vocab_size": 64,
        "hidden_size": 32,
        "intermediate_size": 64,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "max_position_embeddings": 256,
    }
    if family == "llama":
        config = transformers.LlamaConfig(**common, tie_word_embeddings=False)
        cls = transformers.LlamaForCausalLM
    elif family == "qwen2":
        config = transformers.Qwen2Config(**common, tie_word_embeddings=False)
        cls = transformers.Qwen2ForCausalLM
    else:  # gemma: tied embeddings, inputs scaled by sqrt(hidden)
        config = transformers.GemmaConfig(
            **common, head_dim=8, tie_word_embeddings=True
        )
        cls = transformers.GemmaForCausalLM
    torch.manual_seed(seed)
    return cls(config).eval()


def perturb(sllm, seed=2):
    """Moves the trained tensors off their zero init (zero output rows and
    LoRA B give zero gradients elsewhere), the same way for every model."""
    torch.manual_seed(seed)
    with torch.no_grad():
        for param in sllm.trainable_parameters():
            param.add_(0.05 * torch.randn_like(param))


def test_gradient_checkpointing_gives_the_same_gradients():
    """Checkpointing recomputes the blocks' activations: the loss and the
    gradients of every trained tensor are those of a plain backward (LoRA
    dropout on: the recomputation replays the same masks)."""
    from speechbrain_dpm.llm import enable_checkpointing

    grads, losses = [], []
    for checkpointing in (False, True):
        llm = tiny_llm(layers=3)
        if checkpointing:
            enable_checkpointing(llm)
        torch.manual_seed(0)
        sllm = EmotionSLLM(llm, K, C, feat_dim=D, lora_dropout=0.1).train()
        perturb(sllm)
        batch = batch_of(sllm.space, n_utts=4)
        torch.manual_seed(1)
        hidden, audio = sllm(
            batch["tokens"], batch["feats"], batch["lengths"], outputs="both"
        )
        loss = sllm.audio_loss(
            audio, batch["tokens"], batch["audio_targets"]
        ) + sllm.emotion_loss(hidden, batch["emo_positions"], batch["labels"])
        loss.backward()
        losses.append(loss.item())
        grads.append([p.grad.clone() for p in sllm.trainable_parameters()])
    assert losses[0] == pytest.approx(losses[1], abs=1e-6)
    assert len(grads[0]) == len(grads[1])
    for plain, ckpt in zip(*grads):
        assert plain.abs().sum() > 0
        assert torch.allclose(plain, ckpt, atol=1e-6, rtol=1e-5)


def test_bfloat16_trunk_keeps_float32_trained_tensors():
    """On a bfloat16 trunk the new rows, projection and every LoRA
    (fixed and temporary) stay float32, the trunk stays bfloat16, the
    hidden states come back float32 and every trained tensor gets a
    float32 gradient; the result is close to the float32 model's."""
    torch.manual_seed(0)
    ref = EmotionSLLM(tiny_llm(), K, C, feat_dim=D, lora_dropout=0.0)
    torch.manual_seed(0)
    sllm = EmotionSLLM(
        tiny_llm().to(torch.bfloat16), K, C, feat_dim=D, lora_dropout=0.0
    )
    for param in sllm.trainable_parameters():
        assert param.dtype == torch.float32
    perturb(ref)
    perturb(sllm)
    frozen = {
        p.dtype for n, p in sllm.llm.named_parameters() if "lora_" not in n
    }
    assert frozen == {torch.bfloat16}
    batch = batch_of(sllm.space)
    hidden = sllm(batch["tokens"], batch["feats"], batch["lengths"])
    assert hidden.dtype == torch.float32
    want = ref(batch["tokens"], batch["feats"], batch["lengths"])
    assert torch.allclose(hidden, want, atol=0.1 * want.abs().max().item())
    loss = sllm.emotion_loss(hidden, batch["emo_positions"], batch["labels"])
    loss.backward()
    for param in sllm.trainable_parameters():
        assert param.grad is not None and param.grad.dtype == torch.float32
    assert all(p.grad.abs().sum() > 0 for p in sllm.fixed_lora)
    assert {p.dtype for p in sllm.fixed_lora} == {torch.float32}
    # The temporary LoRA too: float32 factors and state, on a bf16 trunk
    # with and without autocast; a write lowers its window's loss.
    from speechbrain_dpm.memory import LoRAMemory
    from speechbrain_dpm.sequence import context_window, make_utterance

    sllm.eval()
    gen = torch.Generator().manual_seed(1)
    utt = make_utterance(
        torch.randint(0, K, (12,), generator=gen),
        torch.randn(12, D, generator=gen),
        sllm.space,
    )
    window = context_window([], utt, 8)
    for autocast in (False, True):
        memory = LoRAMemory(sllm, rank=2, alpha=4, lr=1e-2)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            before = memory.audio_loss(window)
            memory.write(window)
            memory.write(window)
            assert memory.audio_loss(window) < before
            assert memory.read(window).dtype == torch.float32
        assert {w.dtype for w in memory.weights} == {torch.float32}


@pytest.mark.parametrize("family", ["llama", "qwen2", "gemma"])
@pytest.mark.parametrize("audio_head", ["units", "full"])
def test_vocabulary_extension_across_families(family, audio_head, tmp_path):
    """The new token rows, the fixed LoRA on all seven projections and the
    full-vocabulary head work on Llama, Qwen2 and Gemma (tied embeddings,
    scaled inputs), loaded from a bfloat16 folder: the loss trains the new
    rows and the LoRA, the LLM's own vocabulary stays frozen and intact."""
    from speechbrain_dpm.llm import ALL_LINEAR, load_llm

    family_llm(family).to(torch.bfloat16).save_pretrained(tmp_path)
    llm = load_llm(str(tmp_path), dtype="bfloat16")
    before = llm.get_input_embeddings().weight.clone()
    torch.manual_seed(0)
    sllm = EmotionSLLM(llm, K, C, feat_dim=D, audio_head=audio_head).train()
    # the new input rows start at the scale of the LLM's own rows
    ratio = sllm.token_embed.weight.std() / before.float().std()
    assert 0.5 < ratio.item() < 2.0
    perturb(sllm)
    wrapped = {n.split(".")[-1] for n, _ in sllm.llm.named_modules()}
    assert set(ALL_LINEAR) <= wrapped
    assert len(sllm.fixed_lora) == 2 * 7 * 2  # A and B, 7 linears, 2 blocks
    batch = batch_of(sllm.space)
    hidden, audio = sllm(
        batch["tokens"], batch["feats"], batch["lengths"], outputs="both"
    )
    loss = sllm.audio_loss(
        audio, batch["tokens"], batch["audio_targets"]
    ) + sllm.emotion_loss(hidden, batch["emo_positions"], batch["labels"])
    assert torch.isfinite(loss)
    loss.backward()
    assert sllm.token_embed.weight.grad.abs().sum() > 0
    assert sllm.token_out.grad.abs().sum() > 0
    assert all(p.grad is not None for p in sllm.fixed_lora)
    emb = llm.get_input_embeddings().weight
    assert not emb.requires_grad and emb.grad is None
    assert torch.equal(emb, before)


def test_recipe_refuses_windows_beyond_the_context_at_start_up():
    """``check_hparams`` (the recipe's first step) names the setting."""
    from speechbrain_dpm.recipe import check_hparams

    hparams = {
        "emotions": ["neu", "hap", "sad", "ang"],
        "n_classes": 4,
        "sllm": make_sllm(),
        "n_ctx": 512,
        "test_strategies": {"one_pass": {"max_tokens": 4096}, "dpm": False},
    }
    check_hparams(hparams)
    hparams["test_strategies"]["one_pass"]["max_tokens"] = 32768
    with pytest.raises(ValueError, match="one_pass.max_tokens = 32768"):
        check_hparams(hparams)
    hparams["test_strategies"]["one_pass"]["max_tokens"] = 4096
    hparams["n_ctx"] = 8192
    with pytest.raises(ValueError, match="n_ctx = 8192"):
        check_hparams(hparams)


def test_settings_refuse_unknown_keys_and_wrong_types():
    """The model's settings name the key that is wrong."""
    with pytest.raises(ValueError, match="lora_rnak"):
        EmotionSLLM(tiny_llm(), 8, 4, lora_rnak=2)
    with pytest.raises(TypeError, match="emotion_feedback must be bool"):
        EmotionSLLM(tiny_llm(), 8, 4, emotion_feedback="yes")
    with pytest.raises(ValueError, match="audio_head"):
        EmotionSLLM(tiny_llm(), 8, 4, audio_head="all")
    with pytest.raises(ValueError, match="llm_layers=3 contradicts"):
        EmotionSLLM(tiny_llm(layers=2), 8, 4, llm_layers=3)
    sllm = EmotionSLLM(tiny_llm(), 8, 4, lora_rank=2, emotion_feedback=True)
    assert sllm.settings.lora_rank == 2 and sllm.emotion_feedback
    assert (sllm.settings.llm_layers, sllm.settings.llm_dtype) == (2, "float32")
