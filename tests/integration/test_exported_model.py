"""Integration test of the exported model on the real packaged weights
(whisper-tiny.en, SmolLM2-135M): a 1-epoch demo run of the IEMOCAP DPM
recipe on a tiny generated corpus exports ``model/``, which
``DPMEmotionRecognizer`` loads offline and runs through all its interfaces.

Authors
 * speechbrain_dpm developers 2026
"""

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
DEMO_FLAGS = [
    "--n_units=16",
    "--number_of_epochs=1",
    "--n_ctx=256",
    "--n_r=64",
    "--n_limit=256",
]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Corpus root and output folder of a 1-epoch demo run."""
    from speechbrain_dpm import assets
    from speechbrain_dpm.synth import generate_iemocap

    assets.build("whisper-tiny.en")
    assets.build("smollm2-135m")
    root = tmp_path_factory.mktemp("exported")
    data = generate_iemocap(root / "corpus", n_dialogues=5, turns=(3, 4))
    out = root / "out"
    cmd = [
        sys.executable,
        "recipes/IEMOCAP/train.py",
        "recipes/IEMOCAP/hparams/dpm.yaml",
        f"--data_folder={data}",
        f"--output_folder={out}",
        *DEMO_FLAGS,
        "--device=cpu",
        "--noprogressbar",
    ]
    env = dict(os.environ, HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1")
    proc = subprocess.run(
        cmd,
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-5000:]
    return Path(data), out


@pytest.fixture(scope="module")
def model(demo_run, tmp_path_factory):
    """The exported folder, loaded offline (files collected in a savedir)."""
    from speechbrain_dpm.recognizer import DPMEmotionRecognizer

    _, out = demo_run
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    mp.setenv("TRANSFORMERS_OFFLINE", "1")
    try:
        yield DPMEmotionRecognizer.from_hparams(
            source=str(out / "model"),
            savedir=str(tmp_path_factory.mktemp("savedir")),
        )
    finally:
        mp.undo()


@pytest.fixture(scope="module")
def dialogue(demo_run):
    """The utterance files of one generated dialogue, in order, and the
    dialogue's whole recording."""
    data, _ = demo_run
    wav = sorted(data.glob("Session*/dialog/wav/*.wav"))[0]
    folder = wav.parents[2] / "sentences" / "wav" / wav.stem
    # Turn order: the number after F/M counts each actor's turns, so read
    # the order from the dialogue's transcription (utterance ids in time).
    script = wav.parents[1] / "transcriptions" / (wav.stem + ".txt")
    ids = [line.split()[0] for line in script.read_text().splitlines()]
    utts = [
        str(folder / f"{i}.wav") for i in ids if (folder / f"{i}.wav").exists()
    ]
    assert len(utts) >= 3
    return utts, str(wav)


def check_probs(probs, n_classes):
    """[..., C] probabilities, summing to 1."""
    assert probs.shape[-1] == n_classes
    assert torch.all(probs >= 0)
    assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)


def test_export_layout(demo_run):
    _, out = demo_run
    for name in ("hyperparams.yaml", "sllm.ckpt", "codebook.ckpt"):
        assert (out / "model" / name).exists(), name
    assert (out / "results" / "test.json").exists()


def test_classify_file_and_batch(model, dialogue):
    """SpeechBrain's (out_prob, score, index, text_lab) convention."""
    utts, _ = dialogue
    n = len(model.emotions)
    out_prob, score, index, text_lab = model.classify_file(utts[0])
    assert out_prob.shape == (1, n) and score.shape == index.shape == (1,)
    check_probs(out_prob, n)
    assert text_lab == [model.emotions[int(index[0])]]
    assert float(score[0]) == pytest.approx(float(out_prob.max()))
    wavs = [model.load_audio(u) for u in utts[:2]]
    longest = max(w.shape[0] for w in wavs)
    batch = torch.zeros(2, longest)
    for i, w in enumerate(wavs):
        batch[i, : w.shape[0]] = w
    lens = torch.tensor([w.shape[0] / longest for w in wavs])
    probs, score, index, text_lab = model.classify_batch(batch, lens)
    assert probs.shape == (2, n) and len(text_lab) == 2
    check_probs(probs, n)
    assert torch.allclose(probs[0], out_prob[0], atol=1e-4)
    assert text_lab == [model.emotions[i] for i in index.tolist()]


def test_dialogue_and_stream(model, dialogue):
    """One label per utterance; a stream gives the dialogue's labels."""
    utts = dialogue[0][:3]
    preds = model.classify_dialogue(utts)
    assert len(preds) == len(utts)
    for pred in preds:
        label, probs = pred
        assert label in model.emotions
        check_probs(probs, len(model.emotions))
    with model.stream() as session:
        pushed = [session.push(u) for u in utts]
    assert [p.label for p in pushed] == [p.label for p in preds]
    for p, q in zip(pushed, preds):
        assert torch.allclose(p.probs, q.probs, atol=1e-4)


def test_classify_long_audio(model, dialogue, tmp_path):
    """Segments of the dialogue's recording, in time order."""
    _, wav = dialogue
    csv_path = tmp_path / "segments.csv"
    segments = model.classify_long_audio(wav, csv_path=str(csv_path))
    assert segments
    duration = model.load_audio(wav).shape[0] / 16000
    starts = [s.start for s in segments]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    for prev, nxt in zip(segments, segments[1:]):
        assert prev.end <= nxt.start + 1e-6
    for seg in segments:
        start, end, label, probs = seg
        assert 0 <= start < end <= duration + 1e-3
        assert label in model.emotions
        check_probs(probs, len(model.emotions))
    with open(csv_path, newline="") as fin:
        rows = list(csv.DictReader(fin))
    assert [r["label"] for r in rows] == [s.label for s in segments]
