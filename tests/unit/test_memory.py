"""Tests of the temporary-LoRA memory and the DPM strategy (tiny models).

Authors
 * speechbrain_dpm developers 2026
"""

import pytest
import torch

from speechbrain_dpm.context import SlidingWindow, build_strategy
from speechbrain_dpm.dpm_strategy import DPMStrategy, summarize_diagnostics
from speechbrain_dpm.memory import LoRAMemory
from speechbrain_dpm.sequence import context_window, make_utterance
from speechbrain_dpm.sllm import EmotionSLLM
from speechbrain_dpm.testing import tiny_llm

N_UNITS, N_EMO, FEAT = 16, 4, 8
MEM = {"rank": 4, "alpha": 8, "lr": 1e-2}


def make_sllm(seed=0):
    """A tiny SLLM whose fixed LoRA and output rows are non-zero (as if
    trained: with the zero rows of a fresh model a write has no gradient)."""
    torch.manual_seed(seed)
    sllm = EmotionSLLM(
        tiny_llm(), N_UNITS, N_EMO, feat_dim=FEAT, lora_rank=4, lora_alpha=4
    )
    with torch.no_grad():
        for param in sllm.fixed_lora:
            param.add_(0.2 * torch.randn_like(param))
        sllm.token_out.normal_(std=0.2)
    return sllm.eval()


def make_dialogue(space, n=8, seed=1, lengths=(3, 9)):
    gen = torch.Generator().manual_seed(seed)
    utts = []
    for i in range(n):
        size = int(torch.randint(*lengths, (1,), generator=gen))
        units = torch.randint(0, N_UNITS, (size,), generator=gen)
        feats = torch.randn(size, FEAT, generator=gen)
        utts.append(make_utterance(units, feats, space, label=i % N_EMO))
    return utts


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest (and steadiest on a busy machine) on one
    thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def snapshot(sllm):
    """Every parameter of the SLLM, and its flags."""
    return {
        name: (param.detach().clone(), param.requires_grad)
        for name, param in sllm.named_parameters()
    }


@pytest.mark.parametrize("read_order", ["after_write", "before_write"])
def test_streaming_equals_per_sample(read_order):
    sllm = make_sllm()
    utts = make_dialogue(sllm.space, n=7)
    n_r = 10
    dpm = DPMStrategy(sllm, n_context=n_r, read_order=read_order, **MEM)
    streamed = dpm.predict_dialogue(utts)

    # Per sample: a fresh memory replays the writes up to t, then reads t.
    memory = LoRAMemory(sllm, read_order=read_order, **MEM)
    for t in range(len(utts)):
        memory.reset()
        window_t = context_window(utts[:t], utts[t], n_r)
        for i in range(t):
            memory.write(context_window(utts[:i], utts[i], n_r))
        if read_order == "after_write":
            memory.write(window_t)
        logits = memory.read(window_t)
        assert logits.argmax() == streamed[t].argmax()
        assert torch.allclose(logits, streamed[t], atol=1e-5)
    memory.reset()


def test_never_is_sliding_window_and_every_k_counts_writes():
    sllm = make_sllm()
    utts = make_dialogue(sllm.space, n=8)
    baseline = SlidingWindow(sllm, n_context=12).predict_dialogue(utts)
    for every in (0, "never"):
        dpm = build_strategy("dpm", sllm, n_context=12, every=every, **MEM)
        assert torch.equal(dpm.predict_dialogue(utts), baseline)
        assert dpm.n_writes == 0 and dpm.memory.n_steps == 0
    # A memory that was built on the model changes nothing once reset.
    after = SlidingWindow(sllm, n_context=12).predict_dialogue(utts)
    assert torch.equal(after, baseline)

    dpm = build_strategy("dpm", sllm, n_context=12, every=2, **MEM)
    logits = dpm.predict_dialogue(utts)
    assert dpm.n_writes == len(utts) // 2 == dpm.memory.n_steps
    assert [r["wrote"] for r in dpm.records] == [False, True] * 4
    assert not torch.equal(logits, baseline)


def test_isolation_between_conversations():
    sllm = make_sllm()
    before = snapshot(sllm)
    dia_a = make_dialogue(sllm.space, n=6, seed=2)
    dia_b = make_dialogue(sllm.space, n=6, seed=3)
    dpm = DPMStrategy(sllm, n_context=10, **MEM)
    memory = dpm.memory
    init = [w.clone() for w in memory.weights]
    b_alone = dpm.predict_dialogue(dia_b)

    # Not vacuous: within a conversation the memory and read-out change.
    base = SlidingWindow(sllm, n_context=10).predict_dialogue(dia_a)
    dpm.start()
    logits = torch.stack([dpm.push(utt) for utt in dia_a])
    assert any(not torch.equal(p, q) for p, q in zip(memory.weights, init))
    assert not torch.allclose(logits, base, atol=1e-3)
    assert memory.state["step"].tolist() == [len(dia_a)]
    # While it is open, a memory-less read of the model is unchanged.
    assert torch.equal(
        SlidingWindow(sllm, n_context=10).predict_dialogue(dia_a), base
    )
    dpm.close()

    assert all(torch.equal(p, q) for p, q in zip(memory.weights, init))
    assert memory.state["step"].tolist() == [0]
    assert all(not v.any() for v in memory.state["exp_avg_sq"])
    assert not memory.written.any() and not memory.hooked_modules()
    for _ in range(2):
        dpm.predict_dialogue(dia_a)
    with torch.no_grad():  # as in an evaluation loop: writes still work
        b_after = dpm.predict_dialogue(dia_b)
    assert torch.equal(b_alone, b_after)

    after = snapshot(sllm)
    assert after.keys() == before.keys()
    for name, (value, flag) in before.items():
        assert torch.equal(after[name][0], value), name
        assert after[name][1] == flag, name
    for name, param in sllm.named_parameters():
        assert param.grad is None, name


def test_bounded_context_splits_long_utterances(monkeypatch):
    sllm = make_sllm()
    utts = make_dialogue(sllm.space, n=5)
    space = sllm.space
    gen = torch.Generator().manual_seed(4)
    long_units = torch.randint(0, N_UNITS, (40,), generator=gen)
    long_utt = make_utterance(long_units, torch.randn(40, FEAT), space)
    utts.insert(2, long_utt)

    seen = []
    original = sllm.hidden_states

    def hidden_states(tokens, feats=None, lengths=None, **kwargs):
        seen.append(tokens.shape[1])
        return original(tokens, feats, lengths, **kwargs)

    monkeypatch.setattr(sllm, "hidden_states", hidden_states)
    n_context, n_limit = 8, 20
    dpm = DPMStrategy(sllm, n_context=n_context, n_limit=n_limit, **MEM)
    written = []
    write = dpm.memory.write
    monkeypatch.setattr(
        dpm.memory,
        "write",
        lambda ws, slots: written.extend(ws) or write(ws, slots),
    )
    dpm.predict_dialogue(utts)

    assert max(seen) == n_limit
    assert dpm.n_split == 1
    # 41 tokens in pieces of 12 (aligned on the end): 5 + 12 + 12 + 12.
    sizes = [int(w.audio_targets.sum()) for w in written]
    assert dpm.n_pieces == len(written) == len(utts) - 1 + 4
    assert sizes[2:6] == [5, 12, 12, 12]
    assert all(w.tokens.shape[0] <= n_limit for w in written)
    assert dpm.n_truncated == 1  # the read keeps the last n_limit tokens
    # Every piece has its n_context prefix.
    assert all(
        w.tokens.shape[0] - t == n_context
        for w, t in zip(written[2:6], sizes[2:6])
    )


# A soak test (1000 turns, about 10 s): the integration tier runs it.
@pytest.mark.integration
def test_thousand_utterances_flat_memory():
    import psutil

    process = psutil.Process()
    torch.manual_seed(0)
    sllm = EmotionSLLM(
        tiny_llm(hidden_size=16, layers=1),
        N_UNITS,
        N_EMO,
        feat_dim=FEAT,
        lora_rank=2,
    ).eval()
    with torch.no_grad():
        sllm.token_out.normal_(std=0.2)  # so that writes really step
    dpm = DPMStrategy(sllm, n_context=16, n_limit=32, rank=2, lr=1e-2)
    gen = torch.Generator().manual_seed(0)
    peak = {}
    dpm.start()
    for i in range(1000):
        units = torch.randint(0, N_UNITS, (4 + i % 5,), generator=gen)
        feats = torch.randn(len(units), FEAT, generator=gen)
        dpm.push(make_utterance(units, feats, sllm.space))
        # Peak of the resident set, sampled after every utterance.
        rss = process.memory_info().rss
        for n in (50, 1000):
            if i < n:
                peak[n] = max(peak.get(n, 0), rss)
    dpm.close()
    assert peak[1000] <= 1.1 * peak[50], peak
    assert dpm.n_writes == 1000


def test_writes_ignore_labels():
    sllm = make_sllm()
    utts = make_dialogue(sllm.space, n=6)
    dpm = DPMStrategy(sllm, n_context=10, **MEM)
    first = dpm.predict_dialogue(utts)
    for i, utt in enumerate(utts):
        utt.label = (utt.label + 1 + i) % N_EMO
    assert torch.equal(dpm.predict_dialogue(utts), first)


def test_diagnostics_zero_lr_and_transfer():
    sllm = make_sllm()
    utts = make_dialogue(sllm.space, n=5)
    zero = {**MEM, "lr": 0.0}
    dpm = DPMStrategy(sllm, n_context=10, diagnostics=True, **zero)
    dpm.predict_dialogue(utts)
    for rec in dpm.records:
        assert rec["wrote"]
        assert rec["loss_with"] == rec["loss_without"]
        assert rec["p_before"] == rec["p_after"]
    summary = summarize_diagnostics(dpm.records)
    assert summary["transfer"]["all"]["ratio"] == 1.0
    assert summary["drift"]["all"] == 0.0
    assert summary["flips"]["changed"] == 0

    # The same utterance said again: what was written must transfer.
    utt = make_dialogue(sllm.space, n=1, lengths=(12, 13))[0]
    for order in ("after_write", "before_write"):
        dpm = DPMStrategy(
            sllm,
            n_context=0,
            diagnostics=True,
            read_order=order,
            steps=2,
            **MEM,
        )
        dpm.predict_dialogue([utt] * 4)
        recs = dpm.records
        assert recs[0]["loss_with"] == recs[0]["loss_without"]
        for rec in recs[1:]:
            assert rec["loss_with"] < 0.9 * rec["loss_without"]
        summary = summarize_diagnostics(recs, labels=[0] * 4)
        assert summary["transfer"]["1"]["ratio"] < 0.9
        assert summary["drift"]["all"] > 1e-3
        assert summary["flips"]["n"] == 4


def _one_write(sllm, window, **opts):
    """Loss and memory parameters after one write from the fresh state."""
    memory = LoRAMemory(sllm, **{**MEM, **opts})
    memory.reset()
    loss = memory.write(window).loss
    after = [w.clone() for w in memory.weights]
    memory.reset()
    return loss, after


@pytest.mark.parametrize("audio_loss_input", ["units", "units+continuous"])
def test_context_without_grad(audio_loss_input):
    """``context_grad=False`` runs the context as a KV cache: same loss
    before the step; the same update when the memory cannot change the
    context's keys and values (last layer's MLP only); a different one when
    it can (every linear)."""
    sllm = make_sllm()
    sllm.settings = sllm.settings.replace(audio_loss_input=audio_loss_input)
    utts = make_dialogue(sllm.space, n=4)
    window = context_window(utts[:3], utts[3], n_context=12)
    assert not window.audio_targets[0]
    last_mlp = {"target_modules": ["down_proj"], "layers": [1]}
    loss_full, full = _one_write(sllm, window, **last_mlp)
    loss_cut, cut = _one_write(sllm, window, context_grad=False, **last_mlp)
    assert loss_cut == pytest.approx(loss_full, rel=1e-5)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(full, cut))
    _, full = _one_write(sllm, window)
    _, cut = _one_write(sllm, window, context_grad=False)
    changed = [not torch.allclose(a, b, atol=1e-6) for a, b in zip(full, cut)]
    assert any(changed)


def test_one_pass_streams_the_same_logits():
    """Pushing turns one by one gives the whole-dialogue pass's logits,
    window cuts included."""
    sllm = make_sllm()
    utts = make_dialogue(sllm.space, n=9)
    strategy = build_strategy("one_pass", sllm, max_tokens=20)
    whole = strategy.predict_dialogue(utts)
    strategy.start()
    pushed = torch.stack([strategy.push(u) for u in utts])
    strategy.close()
    assert sum(len(u) for u in utts) > 2 * 20  # at least two cuts
    assert torch.allclose(whole, pushed, atol=1e-5)


def test_memories_of_different_shapes_share_a_model():
    """Rows of one evaluation may differ in rank or targets: memories of
    several shapes on one model never see each other, and the model carries
    nothing of them between calls."""
    sllm = make_sllm()
    utts = make_dialogue(sllm.space, n=3)
    params = snapshot(sllm)
    outs = {}
    for rank, targets in (
        (2, "all-linear"),
        (4, "all-linear"),
        (2, ["q_proj"]),
    ):
        dpm = DPMStrategy(sllm, n_context=12, rank=rank, target_modules=targets)
        outs[(rank, str(targets))] = dpm.predict_dialogue(utts)
        assert dpm.n_writes == len(utts)
        assert not dpm.memory.hooked_modules()
    again = DPMStrategy(sllm, n_context=12, rank=2, target_modules="all-linear")
    assert torch.equal(again.predict_dialogue(utts), outs[(2, "all-linear")])
    assert not torch.allclose(outs[(2, "all-linear")], outs[(4, "all-linear")])
    assert snapshot(sllm).keys() == params.keys()
