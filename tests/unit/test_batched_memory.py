"""Many conversations at once: batched strategies, memory slots, precision.

Tiny random models on the CPU. Each conversation read in a batch must get
the logits it gets alone (float32 rounding of the padded batch aside).

Authors
 * speechbrain_dpm developers 2026
"""

import pytest
import torch

from speechbrain_dpm.context import build_strategy
from speechbrain_dpm.memory import LoRAMemory
from speechbrain_dpm.sequence import context_window, make_utterance
from speechbrain_dpm.sllm import EmotionSLLM
from speechbrain_dpm.testing import tiny_llm

K, C, D = 16, 4, 8
N_R, N_LIMIT = 12, 24
MEM = {"rank": 4, "alpha": 8, "lr": 1e-2}
#: 1 to 40 utterances, so conversations end at very different times.
LENGTHS = (1, 40, 7, 3, 18)


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models run fastest (and steadiest) on one thread."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def make_sllm(feedback=False):
    torch.manual_seed(0)
    sllm = EmotionSLLM(
        tiny_llm(),
        K,
        C,
        feat_dim=D,
        lora_rank=4,
        lora_alpha=4,
        emotion_feedback=feedback,
    )
    with torch.no_grad():  # as if trained: writes have a gradient
        for param in sllm.fixed_lora:
            param.add_(0.2 * torch.randn_like(param))
        sllm.token_out.normal_(std=0.3)
    return sllm.eval()


def dialogue(space, n, seed):
    """n utterances; every fifth is longer than N_LIMIT - N_R (written in
    pieces, read from its last tokens)."""
    gen = torch.Generator().manual_seed(seed)
    utts = []
    for i in range(n):
        size = (
            30 if i % 5 == 2 else int(torch.randint(2, 9, (1,), generator=gen))
        )
        units = torch.randint(0, K, (size,), generator=gen)
        feats = torch.randn(size, D, generator=gen)
        utts.append(make_utterance(units, feats, space, label=i % C))
    return utts


def dialogues(space, lengths=LENGTHS, seed=10):
    return [dialogue(space, n, seed + i) for i, n in enumerate(lengths)]


STRATEGIES = {
    "utterance": {"n_limit": N_LIMIT},
    "one_pass": {"max_tokens": N_LIMIT},
    "sliding": {"n_context": N_R, "n_limit": N_LIMIT},
    "dpm": {"n_context": N_R, "n_limit": N_LIMIT, **MEM},
    "dpm_every3": {
        "strategy": "dpm",
        "n_context": N_R,
        "n_limit": N_LIMIT,
        "every": 3,
        **MEM,
    },
}


def strategy(name, sllm, **extra):
    opts = {**STRATEGIES[name], **extra}
    return build_strategy(opts.pop("strategy", name), sllm, **opts)


@pytest.mark.parametrize("feedback", [False, True])
@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_batched_equals_alone(name, feedback):
    sllm = make_sllm(feedback)
    dias = dialogues(sllm.space)
    alone = [strategy(name, sllm).predict_dialogue(d) for d in dias]
    runner = strategy(name, sllm)
    for batch_size in (5, 2):  # 2: conversations wait and reuse slots
        got = runner.predict_dialogues(dias, batch_size)
        for a, b in zip(alone, got):
            assert a.shape == b.shape
            assert torch.allclose(a, b, atol=1e-5), (name, batch_size)
    if name.startswith("dpm"):
        # Long utterances were written in pieces; slots were reused.
        assert runner.n_split > 0
        assert runner.memory.slots <= 5
        assert runner.memory.free == list(range(runner.memory.slots))


def test_dpm_records_follow_their_dialogue():
    sllm = make_sllm()
    dias = dialogues(sllm.space)
    alone = []
    for d in dias:
        runner = strategy("dpm", sllm, diagnostics=True)
        runner.predict_dialogue(d)
        alone += runner.records
    runner = strategy("dpm", sllm, diagnostics=True)
    runner.predict_dialogues(dias, 3)
    assert [(r["position"], r["label"]) for r in runner.records] == [
        (r["position"], r["label"]) for r in alone
    ]
    for got, ref in zip(runner.records, alone):
        for key in ("loss_with", "loss_without"):
            if ref[key] is None:
                assert got[key] is None
            else:
                assert got[key] == pytest.approx(ref[key], abs=1e-5)
        assert got["p_after"] == pytest.approx(ref["p_after"], abs=1e-5)


def test_conversation_does_not_depend_on_its_company_or_slot():
    sllm = make_sllm()
    before = {n: p.detach().clone() for n, p in sllm.named_parameters()}
    dias = dialogues(sllm.space)
    target = dias[2]
    others = dialogues(sllm.space, lengths=(9, 4, 30), seed=50)
    runner = strategy("dpm", sllm)
    first = runner.predict_dialogues([target] + dias[:2], 3)[0]
    # Other neighbours, another slot (it is read third), continued batching.
    second = runner.predict_dialogues(others[:2] + [target] + others[2:], 4)
    assert torch.allclose(first, second[2], atol=1e-5)
    assert not torch.allclose(second[2][:4], second[0][:4], atol=1e-3)
    # Frozen weights and fixed LoRA are bit-identical after all of it.
    for name, param in sllm.named_parameters():
        assert torch.equal(param, before[name]), name
        assert param.grad is None
    assert not runner.memory.hooked_modules()


def test_reset_of_one_slot_leaves_the_others_bit_identical():
    sllm = make_sllm()
    utts = dialogue(sllm.space, 4, seed=3)
    memory = LoRAMemory(sllm, slots=3, **MEM)
    windows = [context_window(utts[:i], utts[i], N_R) for i in (1, 2, 3)]
    memory.write(windows, slots=[0, 1, 2])
    memory.write(windows[:2], slots=[2, 0])
    assert memory.state["step"].tolist() == [2, 1, 2]
    weights = [w.clone() for w in memory.weights]
    state = {
        k: v.clone() if torch.is_tensor(v) else [t.clone() for t in v]
        for k, v in memory.state.items()
    }
    fresh = memory.fresh_weights(1)
    memory.reset(1)
    for w, old, new in zip(memory.weights, weights, fresh):
        assert torch.equal(w[[0, 2]], old[[0, 2]])
        assert torch.equal(w[1], new[0])
    assert memory.state["step"].tolist() == [2, 0, 2]
    for key in ("exp_avg", "exp_avg_sq"):
        for now, old in zip(memory.state[key], state[key]):
            assert torch.equal(now[[0, 2]], old[[0, 2]])
            assert not now[1].any()
    assert memory.written.tolist() == [True, False, True]
    # A pristine slot computes what the model computes without memory.
    read = memory.read(windows, slots=[0, 1, 2])
    plain = memory.read(windows, slots=[0, 1, 2], use_memory=False)
    assert torch.equal(read[1], plain[1])
    assert not torch.allclose(read[0], plain[0], atol=1e-4)


def test_slot_steps_as_if_alone_with_clipping_and_late_join():
    """A slot that joins after others have stepped gets its own bias
    correction and its own gradient clipping."""
    sllm = make_sllm()
    utts = dialogue(sllm.space, 4, seed=4)
    windows = [context_window(utts[:i], utts[i], N_R) for i in range(4)]
    opts = {**MEM, "max_grad_norm": 0.05}
    alone = LoRAMemory(sllm, **opts)
    alone.write(windows[3])
    together = LoRAMemory(sllm, slots=2, **opts)
    together.write(windows[1], slots=[0])
    together.write(windows[2], slots=[0])
    together.write([windows[1], windows[3]], slots=[0, 1])
    for a, b in zip(alone.weights, together.weights):
        assert torch.allclose(a[0], b[1], atol=1e-6)
    assert together.state["step"].tolist() == [3, 1]


def test_slots_grow_and_are_reused():
    sllm = make_sllm()
    runner = strategy("dpm", sllm)
    convs = [runner.open() for _ in range(3)]
    assert runner.memory.slots >= 3
    assert len({c.slot for c in convs}) == 3
    runner.release(convs[1])
    again = runner.open()
    assert again.slot == convs[1].slot
    with pytest.raises(ValueError, match="at most once"):
        runner.push_many([again, again], [None, None])


def test_bf16_reads_and_writes_agree_with_fp32():
    sllm = make_sllm()
    dias = dialogues(sllm.space, lengths=(12, 8))
    for utt in (u for d in dias for u in d):
        utt.feats = utt.feats.half()  # as the units cache stores them
    # At the recipes' memory lr. (AdamW's first steps move every factor by
    # about lr whatever its gradient's size: on a 32-wide random model at
    # lr 1e-2, bf16 noise in near-zero gradients flips enough of them to
    # move the read-out by more than the class margins.)
    reads = {}
    for precision in ("fp32", "bf16"):
        runner = strategy("dpm", sllm, precision=precision, lr=1e-3)
        reads[precision] = runner.predict_dialogues(dias, 2)
    agree, total = 0, 0
    for full, half in zip(reads["fp32"], reads["bf16"]):
        top2 = full.topk(2, dim=-1).values
        clear = (top2[:, 0] - top2[:, 1]) > 0.05
        agree += int((full.argmax(-1) == half.argmax(-1))[clear].sum())
        total += int(clear.sum())
    assert total > 0 and agree == total
    # A write lowers the utterance's loss by about as much in bf16.
    utts = dialogue(sllm.space, 3, seed=9)
    window = context_window(utts[:2], utts[2], N_R)
    saved = {}
    for precision in ("fp32", "bf16"):
        runner = strategy("dpm", sllm, precision=precision)
        memory = runner.memory
        with runner.autocast():
            before = memory.audio_loss(window)
            for _ in range(3):
                memory.write(window)
            saved[precision] = before - memory.audio_loss(window)
        # Factors and optimizer state stay float32.
        assert all(w.dtype == torch.float32 for w in memory.weights)
        assert memory.state["exp_avg"][0].dtype == torch.float32
    assert saved["fp32"] > 0.05
    assert saved["bf16"] == pytest.approx(saved["fp32"], rel=0.1)


def test_inference_never_imports_training():
    """The recognizer and every strategy load without the Brain or the
    DPM-aware training module (a fresh interpreter)."""
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from speechbrain_dpm.inference import DPMEmotionRecognizer\n"
        "from speechbrain_dpm.context import strategy_class\n"
        "for name in ('utterance', 'one_pass', 'sliding', 'dpm'):\n"
        "    strategy_class(name)\n"
        "print(sorted(m for m in sys.modules if m.startswith('speech')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert "speechbrain_dpm.dpm_strategy" in out
    assert "speechbrain_dpm.brain" not in out
    assert "speechbrain_dpm.evaluation" not in out
    assert "speechbrain_dpm.training_data" not in out
    assert "speechbrain_dpm.dpm_training" not in out
