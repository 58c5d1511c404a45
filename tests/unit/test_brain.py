"""DPMBrain on a tiny random LLM and a fake units cache: training changes
only the trained parts, evaluation never sees gold labels, a killed run
resumes to the same state."""

import pytest
import speechbrain as sb
import torch

from speechbrain_dpm.brain import DPMBrain
from speechbrain_dpm.sllm import EmotionSLLM
from speechbrain_dpm.testing import tiny_llm
from speechbrain_dpm.training_data import load_dialogues

K, D = 16, 8
EMOTIONS = ["neu", "hap", "sad", "ang"]


def make_brain(
    save_dir, epochs, lora_dropout=0.1, speaker_slots=0, emotion_feedback=False
):
    torch.manual_seed(0)
    sllm = EmotionSLLM(
        tiny_llm(),
        K,
        4,
        feat_dim=D,
        lora_rank=4,
        lora_dropout=lora_dropout,
        speaker_slots=speaker_slots,
        emotion_feedback=emotion_feedback,
    )
    counter = sb.utils.epoch_loop.EpochCounter(epochs)
    checkpointer = sb.utils.checkpoints.Checkpointer(
        save_dir, recoverables={"sllm": sllm, "counter": counter}
    )
    hparams = {
        "audio_loss_weight": 0.5,
        "emotion_loss_weight": 0.5,
        "audio_loss_at_reads": True,
        "emotion_class_weights": None,
        "emotions": EMOTIONS,
        "n_ctx": 24,
        "n_r": 12,
        "n_limit": None,
        "utterance_windows": False,
        "feedback_source": "gold",
        "feedback_noise": 0.4,
        "train_logger": None,
        "epoch_counter": counter,
    }
    brain = DPMBrain(
        modules={"sllm": sllm},
        opt_class=lambda params: torch.optim.AdamW(params, lr=1e-2),
        hparams=hparams,
        run_opts={"device": "cpu", "noprogressbar": True},
        checkpointer=checkpointer,
    )
    return brain, sllm


def fit(brain, data):
    train = brain.make_window_loader(
        data, sb.Stage.TRAIN, batch_size=2, shuffle=True
    )
    valid = brain.make_window_loader(
        data, sb.Stage.VALID, ckpt_prefix=None, batch_size=2
    )
    brain.fit(brain.hparams.epoch_counter, train, valid)


@pytest.fixture
def data(tmp_path, fake_manifest):
    path = fake_manifest(str(tmp_path / "units"))
    return load_dialogues(path, EMOTIONS, EmotionSLLM(tiny_llm(), K, 4).space)


def test_fit_changes_only_trained_parameters(tmp_path, data):
    brain, sllm = make_brain(str(tmp_path / "save"), epochs=1)
    before = {n: p.clone() for n, p in sllm.named_parameters()}
    trained = {id(p) for p in sllm.trainable_parameters()}
    fit(brain, data)
    for name, param in sllm.named_parameters():
        changed = not torch.equal(before[name], param)
        if id(param) in trained:
            assert changed or "lora_B" in name or "lora_A" in name, name
        else:
            assert not changed, name
    assert any(
        not torch.equal(before[n], p)
        for n, p in sllm.named_parameters()
        if ".fixed." in n
    )


def test_training_learns_the_fake_task(tmp_path, data):
    brain, _ = make_brain(str(tmp_path / "save"), epochs=6)
    fit(brain, data)
    results = brain.evaluate_strategies(
        data, {"utterance": {}}, out_dir=str(tmp_path / "res")
    )
    # Units reveal the class here: chance is 25 %.
    assert results["utterance"]["WA"] > 50


@pytest.mark.parametrize("feedback", [False, True])
def test_evaluation_never_sees_gold_labels(tmp_path, data, feedback):
    brain, _ = make_brain(
        str(tmp_path / "save"), epochs=1, emotion_feedback=feedback
    )
    fit(brain, data)
    strategies = {
        "utterance": {},
        "one_pass": {"max_tokens": 30},
        "sliding": {"n_context": 12},
        "dpm": {"n_context": 12, "n_limit": 40, "lr": 1e-2, "rank": 2},
    }
    # Same dialogues, gold labels permuted: no prediction may change.
    shuffled = []
    gen = torch.Generator().manual_seed(1)
    for dia_id, utts in data:
        perm = torch.randperm(len(utts), generator=gen).tolist()
        labels = [utts[i].label for i in perm]
        new = [
            type(u)(**{**u.__dict__, "label": lab})
            for u, lab in zip(utts, labels)
        ]
        shuffled.append((dia_id, new))
    assert [u.label for _, us in shuffled for u in us] != [
        u.label for _, us in data for u in us
    ]
    for name, opts in strategies.items():
        a = brain.label_dialogues(data, name, **opts)
        b = brain.label_dialogues(shuffled, name, **opts)
        assert [r["probs"] for r in a] == [r["probs"] for r in b], name


def test_evaluate_writes_results(tmp_path, data):
    brain, _ = make_brain(str(tmp_path / "save"), epochs=1)
    fit(brain, data)
    out = tmp_path / "res"
    results = brain.evaluate_strategies(
        data, {"utterance": {}, "sliding": {"n_context": 12}}, str(out)
    )
    assert set(results) == {"utterance", "sliding"}
    for name in ("test.json", "test.csv", "test.md", "test_by_position.png"):
        assert (out / name).exists(), name
    rows = (out / "test_predictions_sliding.jsonl").read_text().splitlines()
    assert len(rows) == sum(len(u) for _, u in data)


def test_killed_run_resumes_to_the_same_state(tmp_path, data):
    straight, sllm_a = make_brain(str(tmp_path / "a"), epochs=2)
    fit(straight, data)
    # "Killed" after epoch 1: a fresh process resumes from its checkpoint.
    first, _ = make_brain(str(tmp_path / "b"), epochs=1)
    fit(first, data)
    resumed, sllm_b = make_brain(str(tmp_path / "b"), epochs=2)
    fit(resumed, data)
    assert resumed.hparams.epoch_counter.current == 2
    for (name, a), b in zip(
        sllm_a.trainable_state_dict().items(),
        sllm_b.trainable_state_dict().values(),
    ):
        assert torch.allclose(a, b, atol=1e-6), name


def test_train_log_names_the_split_read(tmp_path, data):
    brain, _ = make_brain(str(tmp_path / "save"), epochs=1)
    log = tmp_path / "train_log.txt"
    brain.hparams.train_logger = sb.utils.train_logger.FileTrainLogger(log)
    for split in ("valid", "test"):
        brain.evaluate_strategies(
            data, {"utterance": {}}, str(tmp_path / "res"), title=split
        )
    lines = log.read_text().splitlines()
    assert "valid UA" in lines[0] and "test" not in lines[0]
    assert "test UA" in lines[1]


def test_utterance_windows_add_each_utterance_alone_to_training(tmp_path, data):
    brain, _ = make_brain(str(tmp_path / "save"), epochs=1)
    n_utts = sum(len(utts) for _, utts in data)
    packed = brain.make_window_loader(data, sb.Stage.TRAIN, batch_size=1)
    brain.hparams.utterance_windows = True
    mixed = brain.make_window_loader(data, sb.Stage.TRAIN, batch_size=1)
    valid = brain.make_window_loader(
        data, sb.Stage.VALID, ckpt_prefix=None, batch_size=1
    )
    assert len(mixed) == len(packed) + n_utts
    assert len(valid) == len(packed)  # selection reads dialogue windows
    extra = [w for w in mixed.dataset.windows if len(w.labels) == 1]
    utts = [u for _, dialogue in data for u in dialogue]
    alone = {(tuple(u.tokens.tolist()), u.label) for u in utts}
    got = {(tuple(w.tokens.tolist()), w.labels[0]) for w in extra}
    assert alone <= got


def test_speaker_slots_from_the_manifest_train_and_evaluate(
    tmp_path, fake_manifest
):
    import json

    with open(fake_manifest(str(tmp_path / "units"))) as f:
        manifest = json.load(f)
    for entry in manifest.values():
        entry["speaker"] = f"{entry['dialogue_id']}_{entry['turn_index'] % 2}"
    brain, sllm = make_brain(str(tmp_path / "save"), 1, speaker_slots=3)
    data = load_dialogues(manifest, EMOTIONS, sllm.space)
    for _, utts in data:
        firsts = [int(u.tokens[0]) for u in utts]
        assert firsts == [sllm.space.speaker(i % 2) for i in range(len(utts))]
    fit(brain, data)
    for name, opts in {
        "one_pass": {"max_tokens": 30},
        "dpm": {"n_context": 12, "n_limit": 40, "lr": 1e-2, "rank": 2},
    }.items():
        rows = brain.label_dialogues(data, name, **opts)
        assert len(rows) == sum(len(u) for _, u in data), name


def test_feedback_training_windows_carry_noisy_gold_emotions(tmp_path, data):
    brain, sllm = make_brain(str(tmp_path / "save"), 1, emotion_feedback=True)
    space = sllm.space
    first = space.emotion(0)
    loader = brain.make_window_loader(data, sb.Stage.TRAIN, batch_size=1)
    dataset = loader.dataset
    torch.manual_seed(0)
    clean, flipped = 0, 0
    for index, win in enumerate(dataset.windows):
        drawn = dataset[index]
        for pos, label in zip(win.emo_positions, win.labels):
            # The read is at <audio_end>; the gold token right after it.
            assert win.tokens[pos] == space.audio_end
            assert win.tokens[pos + 1] == first + label
            fed = int(drawn.tokens[pos + 1])
            assert first <= fed < first + space.n_emotions
            clean += fed == first + label
            flipped += fed != first + label
        # Only the emotion tokens are corrupted, and none is an audio target.
        unit = win.tokens < first
        assert torch.equal(drawn.tokens[unit], win.tokens[unit])
        targets = sllm.predicted_targets(
            win.tokens[None], win.audio_targets[None]
        )[0]
        is_emotion = (win.tokens[1:] >= first) & (
            win.tokens[1:] < first + space.n_emotions
        )
        assert not (targets & is_emotion).any()
    # noise 0.4, of which 3/4 land on another class: ~30 % flipped.
    share = flipped / (clean + flipped)
    assert 0.15 < share < 0.45, share


def test_feedback_strategies_feed_back_their_own_predictions(tmp_path, data):
    from speechbrain_dpm.context import build_strategy

    brain, sllm = make_brain(str(tmp_path / "save"), 1, emotion_feedback=True)
    fit(brain, data)
    sllm.eval()
    space = sllm.space
    _, utts = data[0]
    sliding = build_strategy("sliding", sllm, n_context=10**6)
    conv = sliding.open()
    logits = []
    for utt in utts:
        logits.append(sliding.push_many([conv], [utt])[0])
        fed = conv.history[-1].tokens[-1]
        assert fed == space.emotion(int(logits[-1].argmax()))
    # A one pass with room for everything reads the same windows.
    one_pass = build_strategy("one_pass", sllm, max_tokens=10**6)
    whole = one_pass.predict_dialogue(utts)
    assert torch.allclose(whole, torch.stack(logits), atol=1e-5)
    one_pass.start()
    pushed = torch.stack([one_pass.push(u) for u in utts])
    assert torch.allclose(pushed, whole, atol=1e-5)
    # Without feedback the same tensors read other windows.
    sllm.emotion_feedback = False
    plain = build_strategy("one_pass", sllm, max_tokens=10**6)
    assert not torch.allclose(plain.predict_dialogue(utts)[1:], whole[1:])


def test_feedback_validation_reads_with_own_predictions(tmp_path, data):
    brain, sllm = make_brain(str(tmp_path / "save"), 1, emotion_feedback=True)
    fit(brain, data)
    # The checkpoint's UA is the turn-by-turn sliding read, not the packed
    # windows' (which carry gold emotion tokens).
    ckpt = brain.checkpointer.find_checkpoint(max_key="UA")
    rows = brain.label_dialogues(data, "sliding", n_context=12)
    from speechbrain_dpm.metrics import classification_metrics

    expected = classification_metrics(
        [r["label"] for r in rows], [r["pred"] for r in rows], EMOTIONS
    )
    assert ckpt.meta["UA"] == pytest.approx(expected["UA"])


def test_own_feedback_replaces_fed_tokens_by_the_models_reads(tmp_path, data):
    from speechbrain_dpm.sequence import collate_windows

    brain, sllm = make_brain(
        str(tmp_path / "save"), 1, lora_dropout=0.0, emotion_feedback=True
    )
    fit(brain, data)  # a model whose reads differ from the gold labels
    space = sllm.space
    first = space.emotion(0)
    windows = brain.make_window_loader(data, sb.Stage.VALID).dataset.windows
    batch = collate_windows(windows[:4])
    out = brain.own_feedback(batch)
    hidden = sllm(batch["tokens"], batch["feats"], batch["lengths"])
    changed = out["tokens"] != batch["tokens"]
    n_fed = n_differ = 0
    for i, win in enumerate(windows[:4]):
        for pos, label in zip(win.emo_positions, win.labels):
            pred = int(sllm.emotion_logits(hidden[i, pos]).argmax())
            assert out["tokens"][i, pos + 1] == first + pred
            changed[i, pos + 1] = False
            n_fed += 1
            n_differ += pred != label
    # Nothing else moves; and the reads are not just the gold labels.
    assert not changed.any()
    assert n_fed > 4 and 0 < n_differ


def test_feedback_source_is_checked(tmp_path, data):
    brain, _ = make_brain(str(tmp_path / "save"), 1, emotion_feedback=True)
    brain.hparams.feedback_source = "oracle"
    with pytest.raises(ValueError, match="feedback_source"):
        brain.make_window_loader(data, sb.Stage.TRAIN)


def test_reads_predict_no_audio_unless_asked(tmp_path, data):
    """audio_loss_at_reads: False drops, from the audio loss, the next
    turn's first unit that each read position would predict; True keeps it
    (the unit after the window's last read, if any, is dropped too)."""
    from speechbrain_dpm.brain import WindowDataset
    from speechbrain_dpm.sequence import collate_windows

    brain, sllm = make_brain(tmp_path / "s", 1, lora_dropout=0.0)
    sllm.eval()
    batch = collate_windows(list(WindowDataset(data, 24))[:2])
    with torch.no_grad():
        # rows of zeros give every target the same loss: make them differ
        sllm.token_out.normal_()
        preds = brain.compute_forward(batch, sb.Stage.VALID)
        losses = {}
        for keep in (True, False):
            brain.hparams.audio_loss_at_reads = keep
            brain.on_stage_start(sb.Stage.VALID)
            brain.compute_objectives(preds, batch, sb.Stage.VALID)
            losses[keep] = brain.loss_parts["audio"]
    steps = torch.arange(batch["tokens"].shape[1])
    targets = batch["audio_targets"] & (steps < batch["lengths"][:, None])
    masked = DPMBrain.without_read_targets(targets, batch)
    dropped = (targets & ~masked).nonzero().tolist()
    reads = [
        [row, pos + 1]
        for row in range(2)
        for pos, label in zip(
            batch["emo_positions"][row].tolist(),
            batch["labels"][row].tolist(),
        )
        if label >= 0 and pos + 1 < batch["lengths"][row]
    ]
    assert dropped == reads and reads
    want = sllm.audio_loss(preds[1], batch["tokens"], masked).item()
    assert losses[False] == pytest.approx(want)
    assert losses[True] != pytest.approx(want)
