"""DPM-aware training and placed / shielded temporary LoRA (tiny models).

Authors
 * speechbrain_dpm developers 2026
"""

import pytest
import speechbrain as sb
import torch

from speechbrain_dpm.context import build_strategy
from speechbrain_dpm.dpm_training import (
    DialogueRunDataset,
    DPMAwareBrain,
    collate_runs,
    inner_window,
)
from speechbrain_dpm.memory import LoRAMemory
from speechbrain_dpm.sequence import context_window, make_utterance
from speechbrain_dpm.settings import DPMAwareOptions
from speechbrain_dpm.sllm import EmotionSLLM
from speechbrain_dpm.testing import tiny_llm
from speechbrain_dpm.training_data import load_dialogues

K, D = 16, 8
EMOTIONS = ["neu", "hap", "sad", "ang"]


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest (and steadiest on a busy machine) on one
    thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_sllm(lora_dropout=0.0, audio_loss_input="units"):
    torch.manual_seed(0)
    sllm = EmotionSLLM(
        tiny_llm(),
        K,
        4,
        feat_dim=D,
        lora_rank=4,
        lora_dropout=lora_dropout,
        audio_loss_input=audio_loss_input,
    )
    with torch.no_grad():  # as if trained: fixed LoRA and rows non-zero
        for param in sllm.fixed_lora:
            param.add_(0.2 * torch.randn_like(param))
        sllm.token_out.add_(0.2 * torch.randn_like(sllm.token_out))
    return sllm


def make_brain(save_dir=None, sllm=None, **hparams):
    sllm = sllm or make_sllm()
    counter = sb.utils.epoch_loop.EpochCounter(1)
    hp = {
        "audio_loss_weight": 0.5,
        "emotion_loss_weight": 0.5,
        "audio_loss_at_reads": True,
        "emotion_class_weights": None,
        "emotions": EMOTIONS,
        "n_ctx": 24,
        "utterance_windows": False,
        "train_logger": None,
        "epoch_counter": counter,
    }
    options = {
        "inner_utts": 2,
        "outer_utts": 2,
        "dpm_n_context": 10,
        "inner_lr": 1e-2,
        "memory_rank": 2,
        "memory_alpha": 4,
    }
    for name, value in hparams.items():
        if name in DPMAwareOptions.names():
            options[name] = value
        else:
            hp[name] = value
    hp["dpm_aware_training"] = DPMAwareOptions.from_dict(options)
    checkpointer = None
    if save_dir is not None:
        checkpointer = sb.utils.checkpoints.Checkpointer(
            save_dir, recoverables={"sllm": sllm, "counter": counter}
        )
    brain = DPMAwareBrain(
        modules={"sllm": sllm},
        opt_class=lambda params: torch.optim.AdamW(params, lr=1e-2),
        hparams=hp,
        run_opts={"device": "cpu", "noprogressbar": True},
        checkpointer=checkpointer,
    )
    return brain, sllm


@pytest.fixture(scope="module")
def data(tmp_path_factory, fake_manifest):
    path = fake_manifest(str(tmp_path_factory.mktemp("units")))
    return load_dialogues(path, EMOTIONS, EmotionSLLM(tiny_llm(), K, 4).space)


def items_of(brain, data):
    loader = brain.make_window_loader(data, sb.Stage.TRAIN, batch_size=1)
    return loader.dataset


def loss_and_grads(brain, sllm, items):
    """Outer loss of a batch and the gradients of the trained parameters."""
    brain.on_stage_start(sb.Stage.TRAIN)
    batch = collate_runs(items)
    out = brain.compute_forward(batch, sb.Stage.TRAIN)
    loss = brain.compute_objectives(out, batch, sb.Stage.TRAIN)
    params = sllm.trainable_parameters()
    grads = torch.autograd.grad(loss, params, allow_unused=True)
    grads = [
        torch.zeros_like(p) if g is None else g for p, g in zip(params, grads)
    ]
    return loss.detach(), grads


@pytest.mark.parametrize("order", ["first", "second"])
def test_one_epoch_changes_only_fixed_parameters(tmp_path, data, order):
    brain, sllm = make_brain(
        str(tmp_path / "save"), meta_order=order, memory_input_proj=True
    )
    before = {n: p.detach().clone() for n, p in sllm.named_parameters()}
    trained = {id(p) for p in sllm.trainable_parameters()}
    train = brain.make_window_loader(
        data, sb.Stage.TRAIN, batch_size=2, shuffle=True
    )
    assert isinstance(train.dataset, DialogueRunDataset)
    valid = brain.make_window_loader(
        data, sb.Stage.VALID, ckpt_prefix=None, batch_size=2
    )
    brain.fit(brain.hparams.epoch_counter, train, valid)
    assert brain.train_stats["inner_audio_loss"] > 0
    # The optimizer holds exactly the fixed parameters; no memory tensor.
    optimized = {
        id(p) for g in brain.optimizer.param_groups for p in g["params"]
    }
    assert optimized == trained
    assert not any("memory" in n for n, _ in sllm.named_parameters())
    for name, param in sllm.named_parameters():
        if id(param) in trained:
            continue
        assert torch.equal(before[name], param), name  # base: bit-identical
    changed = [
        n for n, p in sllm.named_parameters() if not torch.equal(before[n], p)
    ]
    assert any(".fixed." in n for n in changed)
    assert "feat_proj.1.weight" in changed
    # No hook of the temporary LoRA is left on the model.
    assert not brain.memory_lora.hooked_modules()


def test_inner_state_never_leaks_between_items(data):
    brain, sllm = make_brain()
    dataset = items_of(brain, data)
    a, b = dataset[1], dataset[4]  # both with 2 written utterances
    assert len(a["inner"]) == len(b["inner"]) == 2
    loss_b, grads_b = loss_and_grads(brain, sllm, [b])
    loss_a, _ = loss_and_grads(brain, sllm, [a])
    loss_b2, grads_b2 = loss_and_grads(brain, sllm, [b])
    assert not torch.equal(loss_a, loss_b)
    assert torch.equal(loss_b, loss_b2)
    for g1, g2 in zip(grads_b, grads_b2):
        assert torch.equal(g1, g2)
    # In one batch, each row writes its own memory: row B as B alone
    # (up to rounding, which AdamW's first step amplifies where |g| ~ eps).
    alone, _ = brain.inner_loop(collate_runs([b]))
    together, _ = brain.inner_loop(collate_runs([a, b]))
    for w1, w2 in zip(alone, together):
        assert torch.allclose(w1[0], w2[1], atol=1e-4)
    assert not torch.allclose(together[-1][0], together[-1][1])


@pytest.mark.parametrize("optimizer", ["sgd", "adamw"])
def test_gradients_reach_fixed_lora_through_the_inner_step(data, optimizer):
    grads = {}
    for order in ("first", "second"):
        brain, sllm = make_brain(
            meta_order=order, inner_optimizer=optimizer, inner_lr=0.5
        )
        item = items_of(brain, data)[1]
        _, all_grads = loss_and_grads(brain, sllm, [item])
        fixed = {id(p) for p in sllm.fixed_lora}
        grads[order] = [
            g
            for p, g in zip(sllm.trainable_parameters(), all_grads)
            if id(p) in fixed
        ]
    for order, gs in grads.items():
        assert sum(g.abs().sum() for g in gs) > 0, order
    # Second order adds the path through the written memory.
    diff = sum(
        (a - b).abs().sum() for a, b in zip(grads["first"], grads["second"])
    )
    assert diff > 0


def test_second_order_gradient_is_the_unrolled_derivative(data):
    """Second order: the outer loss's gradient w.r.t. the fixed LoRA is
    the derivative of the whole computation (inner SGD steps included), as
    a central finite difference along a random direction measures it;
    first order drops the inner path and misses it."""
    torch.manual_seed(3)
    measured = {}
    for order in ("first", "second"):
        brain, sllm = make_brain(
            meta_order=order, inner_optimizer="sgd", inner_lr=0.1
        )
        sllm.eval()  # no dropout: the loss is a function of the weights
        item = items_of(brain, data)[1]
        _, all_grads = loss_and_grads(brain, sllm, [item])
        fixed = {id(p) for p in sllm.fixed_lora}
        params = [p for p in sllm.trainable_parameters() if id(p) in fixed]
        grads = [
            g
            for p, g in zip(sllm.trainable_parameters(), all_grads)
            if id(p) in fixed
        ]
        gen = torch.Generator().manual_seed(0)
        direction = [torch.randn(p.shape, generator=gen) for p in params]
        measured[order] = sum(
            (g * v).sum() for g, v in zip(grads, direction)
        ).item()
    eps = 1e-4  # (float32: converged between 3e-4 and 3e-5)
    losses = []
    for sign in (1, -1):
        with torch.no_grad():
            for p, v in zip(params, direction):
                p.add_(sign * eps * v)
        losses.append(loss_and_grads(brain, sllm, [item])[0].item())
        with torch.no_grad():
            for p, v in zip(params, direction):
                p.sub_(sign * eps * v)
    numeric = (losses[0] - losses[1]) / (2 * eps)
    assert measured["second"] == pytest.approx(numeric, rel=0.01)
    assert abs(measured["first"] - numeric) > 0.1 * abs(numeric)


def test_inner_loop_is_the_inference_write(data):
    """First-order AdamW inner loop == the inference memory's writes."""
    brain, sllm = make_brain(inner_lr=1e-2, memory_placement="attention")
    dataset = items_of(brain, data)
    item_index = 1
    weights, losses = brain.inner_loop(collate_runs([dataset[item_index]]))
    d, start, n_in, _ = dataset.items[item_index]
    utts = dataset.dialogues[d]
    memory = LoRAMemory(
        sllm, target_modules="attention", rank=2, alpha=4, lr=1e-2
    )
    outs = [
        memory.write(inner_window(utts[:i], utts[i], 10))
        for i in range(start - n_in, start)
    ]
    for w_train, w_inf in zip(weights, memory.weights):
        assert torch.allclose(w_train, w_inf, atol=1e-4)
    assert torch.allclose(
        losses[:, 0], torch.tensor([o.loss for o in outs]), atol=1e-5
    )


@pytest.mark.parametrize(
    "placement, layers, input_proj, expected",
    [
        ("all-linear", None, False, 14),
        ("attention", None, False, 8),
        ("mlp", None, False, 6),
        ("lower-1", None, False, 7),
        ("attention+lower-1", None, False, 4),
        ("mlp", [1], False, 3),
        ("input-proj", None, False, 1),
        ("attention", None, True, 9),
    ],
)
def test_placement_presets(placement, layers, input_proj, expected):
    # (the input projection learns only if the audio loss sees features)
    sllm = make_sllm(audio_loss_input="units+continuous")
    lora = LoRAMemory(
        sllm,
        rank=2,
        alpha=4,
        target_modules=placement,
        layers=layers,
        input_proj=input_proj,
        lr=1e-2,
    )
    with lora.applied(lora.fresh_weights()):
        hooked = lora.hooked_modules()
    assert len(hooked) == len(lora.sites) == expected
    assert not lora.hooked_modules()
    names = lora.site_names
    if placement.startswith("attention"):
        assert all("self_attn" in n or n == "feat_proj" for n in names)
    if placement == "mlp":
        assert all(".mlp." in n for n in names)
    if layers == [1]:
        assert all(n.startswith("layers.1.") for n in names)
    if "lower-1" in placement:
        assert all(n.startswith("layers.0.") for n in names)
    assert ("feat_proj" in names) == (input_proj or placement == "input-proj")
    # A written slot sits exactly there, and nowhere after a reset.
    utts = dialogue(sllm.space, 2)
    lora.write(context_window(utts[:1], utts[1], 8))
    with lora.slot_context([0]):
        assert len(lora.hooked_modules()) == expected
    lora.reset()
    with lora.slot_context([0]):
        assert not lora.hooked_modules()


def test_input_proj_alone_needs_features_in_the_audio_loss():
    with pytest.raises(ValueError, match="never gets a gradient"):
        LoRAMemory(make_sllm(), target_modules="input-proj")
    # Next to decoder layers it is allowed (and simply gets no gradient).
    memory = LoRAMemory(
        make_sllm(), target_modules="attention", input_proj=True, rank=2
    )
    utts = dialogue(memory.sllm.space, 2)
    memory.write(context_window(utts[:1], utts[1], 8))
    assert memory.n_steps == 1


def test_bad_placements():
    sllm = make_sllm()
    for bad in ("lower-9", "heads", "lower-0"):
        with pytest.raises(ValueError):
            LoRAMemory(sllm, target_modules=bad)
    units_only = EmotionSLLM(tiny_llm(), K, 4, audio_input="units")
    with pytest.raises(ValueError):
        LoRAMemory(units_only, target_modules="input-proj")


def dialogue(space, n, seed=1, zero_feats=False):
    gen = torch.Generator().manual_seed(seed)
    utts = []
    for i in range(n):
        size = int(torch.randint(3, 8, (1,), generator=gen))
        units = torch.randint(0, K, (size,), generator=gen)
        feats = torch.randn(size, D, generator=gen)
        if zero_feats:
            feats = torch.zeros_like(feats)
        utts.append(make_utterance(units, feats, space, label=i % 4))
    return utts


def written_memory(sllm, utts, **kwargs):
    memory = LoRAMemory(sllm, rank=2, alpha=4, lr=0.05, **kwargs)
    for i, utt in enumerate(utts):
        memory.write(context_window(utts[:i], utt, 8))
    return memory


def test_position_mask_of_the_functional_lora():
    sllm = make_sllm().eval()
    lora = LoRAMemory(sllm, rank=2, alpha=4)
    weights = [w + 0.3 for w in lora.fresh_weights()]
    proj = sllm.llm.get_decoder().layers[0].self_attn.q_proj
    x = torch.randn(1, 5, 32)
    base = proj(x)
    mask = torch.tensor([[1.0, 1.0, 0.0, 0.0, 1.0]])
    with lora.applied(weights, mask):
        out = proj(x)
    assert torch.equal(out[:, 2:4], base[:, 2:4])
    assert not torch.allclose(out[:, :2], base[:, :2])


def test_shielded_read_ignores_memory_on_the_current_utterance():
    """Memory that can only act on the current utterance's positions
    (input projection; the context's features are zero, so its delta there
    is zero): a shielded read equals the memory-less read exactly, an
    unshielded one does not. Broken shielding fails the first check."""
    sllm = make_sllm(audio_loss_input="units+continuous").eval()
    ctx = dialogue(sllm.space, 3, zero_feats=True)
    utt = dialogue(sllm.space, 1, seed=5)[0]
    memory = written_memory(
        sllm, dialogue(sllm.space, 3, seed=7), target_modules="input-proj"
    )
    window = context_window(ctx, utt, n_context=12)
    plain = memory.read(window, use_memory=False)
    unshielded = memory.read(window)
    memory.shield = True
    shielded = memory.read(window, current_lens=[len(utt)])
    assert not torch.allclose(unshielded, plain)
    assert torch.equal(shielded, plain)


def test_shielded_read_uses_memory_on_the_context_only():
    sllm = make_sllm().eval()
    utts = dialogue(sllm.space, 4)
    memory = written_memory(sllm, utts[:3], shield=True)
    cur = [len(utts[3])]
    alone = context_window([], utts[3], n_context=0)
    with_ctx = context_window(utts[:3], utts[3], n_context=12)
    reads = {}
    for name, window in (("alone", alone), ("ctx", with_ctx)):
        reads[name, "off"] = memory.read(window, use_memory=False)
        reads[name, "shield"] = memory.read(window, current_lens=cur)
        memory.shield = False
        reads[name, "full"] = memory.read(window)
        memory.shield = True
    # No context: nothing before t, so the shielded read is memory-free.
    assert torch.equal(reads["alone", "shield"], reads["alone", "off"])
    assert not torch.allclose(reads["alone", "full"], reads["alone", "off"])
    # With context the memory acts there only.
    assert not torch.allclose(reads["ctx", "shield"], reads["ctx", "off"])
    assert not torch.allclose(reads["ctx", "shield"], reads["ctx", "full"])


@pytest.mark.parametrize("shield", [False, True])
def test_every_zero_equals_sliding(shield):
    sllm = make_sllm().eval()
    utts = dialogue(sllm.space, 5)
    sliding = build_strategy("sliding", sllm, n_context=10)
    placed = build_strategy(
        "dpm",
        sllm,
        n_context=10,
        every=0,
        rank=2,
        lr=0.05,
        target_modules="attention",
        input_proj=True,
        shield=shield,
    )
    assert torch.equal(
        placed.predict_dialogue(utts), sliding.predict_dialogue(utts)
    )


def test_shielded_strategy_reads_every_utterance_shielded():
    sllm = make_sllm().eval()
    utts = dialogue(sllm.space, 4)
    strategy = build_strategy(
        "dpm",
        sllm,
        n_context=10,
        rank=2,
        alpha=4,
        lr=0.05,
        shield=True,
        diagnostics=True,
    )
    got = strategy.predict_dialogue(utts)
    # Replay: write 0..t, then a shielded read of t.
    memory = LoRAMemory(sllm, rank=2, alpha=4, lr=0.05, shield=True)
    for t, utt in enumerate(utts):
        memory.write(context_window(utts[:t], utt, 10))
        read = memory.read(
            context_window(utts[:t], utt, 10), current_lens=[len(utt)]
        )
        assert torch.allclose(got[t], read, atol=1e-6), t
    assert all(r["p_before"] is not None for r in strategy.records)
