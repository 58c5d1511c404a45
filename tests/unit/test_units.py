"""Tests of speechbrain_dpm.units (25 Hz Whisper frames, k-means units,
units cache), on a tiny random Whisper saved to a temporary folder.

Authors
 * speechbrain_dpm contributors 2026
"""

import json
import os

import pytest
import soundfile as sf
import torch

from speechbrain_dpm import units as U
from speechbrain_dpm.audio import read_audio_16k
from speechbrain_dpm.testing import save_tiny_whisper
from speechbrain_dpm.units import (
    UnitCodebook,
    UnitExtractor,
    WhisperFrameEncoder,
    extract_units,
    n_frames_25hz,
    prosody_features,
)

SR = 16000


@pytest.fixture(scope="module")
def tiny_whisper(tmp_path_factory):
    """Absolute path of a tiny random HF Whisper (2 encoder blocks)."""
    return save_tiny_whisper(tmp_path_factory.mktemp("tiny_whisper"))


@pytest.fixture(scope="module")
def encoder(tiny_whisper):
    """Tiny encoder, layer 1 (a middle layer of 2 blocks)."""
    return WhisperFrameEncoder(tiny_whisper, layer=1, batch_size=4)


def signal(seconds, seed=0, f0=150.0):
    """A deterministic speech-like signal (harmonics + noise)."""
    gen = torch.Generator().manual_seed(seed)
    t = torch.arange(int(seconds * SR)) / SR
    wav = sum(torch.sin(2 * torch.pi * f0 * k * t + k) / k for k in range(1, 6))
    wav = wav * (0.5 + 0.5 * torch.sin(2 * torch.pi * 3 * t))
    noise = torch.randn(t.shape[0], generator=gen)
    return (0.1 * wav + 0.02 * noise).float()


def test_n_frames_25hz():
    assert n_frames_25hz(10 * SR) == 250
    assert n_frames_25hz(2 * SR) == 50
    assert n_frames_25hz(45 * SR) == 1125
    assert n_frames_25hz(0) == 0
    assert n_frames_25hz(1) == 1


def test_pool_to_25hz_reads_only_real_frames():
    hidden = torch.arange(1500.0).unsqueeze(1)
    # 51 real 50 Hz frames -> 26 frames; the last one is frame 50 alone.
    pooled = U.pool_to_25hz(hidden, 51 * 320)
    assert pooled.shape == (26, 1)
    assert pooled[0, 0] == 0.5 and pooled[-1, 0] == 50.0
    assert U.pool_to_25hz(hidden, 30 * SR).shape == (750, 1)


def test_last_frame_has_no_padding(encoder):
    # 1.02 s: 51 encoder frames hold audio, frame 52 only padding.
    wav = signal(1.02, seed=7)
    feats = encoder.encode_list([wav])[0]
    assert feats.shape[0] == 26
    mel = encoder.whisper._get_mel(wav.unsqueeze(0))
    with torch.no_grad():
        hidden = encoder.whisper.forward_encoder(mel)[1][0]
    torch.testing.assert_close(feats[-1], hidden[50])
    torch.testing.assert_close(feats[0], hidden[:2].mean(0))


def test_frame_counts_and_no_padding_leak(encoder):
    ten, two = signal(10, seed=1), signal(2, seed=2)
    feats = encoder.encode_list([ten, two])
    assert abs(feats[0].shape[0] - 250) <= 1
    assert abs(feats[1].shape[0] - 50) <= 1
    assert feats[0].shape[1] == 64
    # Padded batch with relative lengths: the 2 s item is followed by loud
    # garbage that must not change a single feature.
    garbage = 5.0 * torch.randn(8 * SR)
    batch = torch.stack([ten, torch.cat([two, garbage])])
    out, n = encoder(batch, torch.tensor([1.0, 0.2]))
    assert n.tolist() == [feats[0].shape[0], feats[1].shape[0]]
    assert out.shape == (2, n.max().item(), 64)
    torch.testing.assert_close(out[1, : n[1]], feats[1])
    assert torch.all(out[1, n[1] :] == 0)
    torch.testing.assert_close(out[0], feats[0])


def test_same_audio_same_units_batch_independent(encoder):
    wav = signal(3, seed=3)
    alone = encoder.encode_list([wav])[0]
    again = encoder.encode_list([wav])[0]
    # A loud batch mate must not change the features (per-item log-mel).
    mixed = encoder.encode_list([10 * signal(3, seed=4), wav])[1]
    assert torch.equal(alone, again)
    torch.testing.assert_close(mixed, alone)
    codebook = UnitCodebook(n_units=8, seed=0).fit(alone)
    assert torch.equal(codebook.assign(alone), codebook.assign(mixed))
    extractor = UnitExtractor(encoder, codebook)
    units, feats, n = extractor(wav.unsqueeze(0))
    assert torch.equal(units[0, : n[0]], codebook.assign(alone))


def test_long_audio_is_chunked_not_cropped(encoder):
    wav = signal(45, seed=5)
    long = encoder.encode_list([wav])[0]
    assert abs(long.shape[0] - 1125) <= 2
    first = encoder.encode_list([wav[: 30 * SR]])[0]
    rest = encoder.encode_list([wav[30 * SR :]])[0]
    assert first.shape[0] == 750
    torch.testing.assert_close(long[:750], first)
    torch.testing.assert_close(long[750:], rest)


def test_layer_selection_and_pruning(tiny_whisper, encoder):
    wav = signal(2, seed=6)
    full = WhisperFrameEncoder(tiny_whisper, layer=1, prune=False)
    # Dropping the blocks above the layer does not change its output.
    torch.testing.assert_close(
        encoder.encode_list([wav])[0], full.encode_list([wav])[0]
    )
    for layer in (0, 2):
        pruned = WhisperFrameEncoder(tiny_whisper, layer=layer)
        unpruned = WhisperFrameEncoder(tiny_whisper, layer=layer, prune=False)
        torch.testing.assert_close(
            pruned.encode_list([wav])[0], unpruned.encode_list([wav])[0]
        )
    last = WhisperFrameEncoder(tiny_whisper, layer=-1)
    other = WhisperFrameEncoder(tiny_whisper, layer=2)
    assert last.layer == other.layer == 2
    assert last.cache_key == other.cache_key != encoder.cache_key
    assert not torch.allclose(
        last.encode_list([wav])[0], encoder.encode_list([wav])[0]
    )
    with pytest.raises(ValueError):
        WhisperFrameEncoder(tiny_whisper, layer=3)
    # Frozen, and stays in eval when a Brain calls train().
    encoder.train()
    assert not encoder.whisper.model.training
    assert not any(p.requires_grad for p in encoder.parameters())


def test_codebook_reproducible_and_checkpointable(tmp_path):
    from speechbrain.utils.checkpoints import Checkpointer

    gen = torch.Generator().manual_seed(0)
    feats = torch.randn(600, 16, generator=gen)
    a = UnitCodebook(n_units=12, seed=7).fit(feats)
    b = UnitCodebook(n_units=12, seed=7).fit(feats)
    c = UnitCodebook(n_units=12, seed=8).fit(feats)
    assert torch.equal(a.centroids, b.centroids)
    assert torch.equal(a.assign(feats), b.assign(feats))
    assert not torch.equal(a.centroids, c.centroids)
    assert a.fingerprint == b.fingerprint != c.fingerprint
    # Assignment is the nearest centroid.
    dist = torch.cdist(feats, a.centroids)
    assert torch.equal(a.assign(feats), dist.argmin(dim=1))
    # A Checkpointer can save and recover it into a fresh object.
    ckpt = Checkpointer(tmp_path / "ckpt", {"codebook": a})
    ckpt.save_checkpoint()
    fresh = UnitCodebook(n_units=3)
    Checkpointer(tmp_path / "ckpt", {"codebook": fresh}).recover_if_possible()
    assert fresh.n_units == 12
    assert torch.equal(fresh.centroids, a.centroids)
    with pytest.raises(ValueError):
        UnitCodebook(n_units=1000).fit(feats)


def make_corpus(root):
    """Writes wavs + train/valid/test manifests; returns split -> path."""
    spec = {
        "train": [("tr0", 2.0, 150.0), ("tr1", 3.0, 220.0), ("tr2", 1.5, 120)],
        "valid": [("va0", 2.5, 180.0)],
        "test": [("te0", 2.0, 300.0), ("te/1", 1.0, 90.0)],
    }
    manifests = {}
    for split, utts in spec.items():
        entries = {}
        for i, (utt, seconds, f0) in enumerate(utts):
            path = root / f"{utt.replace('/', '_')}.wav"
            seed = 10 * len(manifests) + i
            sf.write(str(path), signal(seconds, seed, f0).numpy(), SR)
            entries[utt] = {
                "wav": str(path),
                "length": seconds,
                "emo": "neu",
                "dialogue_id": split,
                "turn_index": i,
            }
        manifests[split] = str(root / f"{split}.json")
        with open(manifests[split], "w") as fout:
            json.dump(entries, fout)
    return manifests


def load_json(path):
    with open(path) as fin:
        return json.load(fin)


def test_extract_units_cache_and_train_only_fit(
    tmp_path, tiny_whisper, encoder, monkeypatch
):
    manifests = make_corpus(tmp_path)
    cache = tmp_path / "cache"
    cb_path = str(tmp_path / "save" / "codebook.ckpt")

    fitted_on = []
    real_fit = UnitCodebook.fit

    def spy_fit(self, feats):
        fitted_on.append(feats.clone())
        return real_fit(self, feats)

    monkeypatch.setattr(UnitCodebook, "fit", spy_fit)
    out = extract_units(
        manifests, encoder, cb_path, str(cache), n_units=8, seed=3
    )
    assert set(out) == {"train", "valid", "test"}
    assert out["train"] == str(tmp_path / "train_units.json")

    # The codebook saw exactly the training frames, nothing else.
    train = load_json(out["train"])
    train_frames = torch.cat(
        [torch.load(e["units"])["feats"].float() for e in train.values()]
    )
    assert len(fitted_on) == 1
    assert fitted_on[0].shape == train_frames.shape
    assert torch.equal(
        fitted_on[0].sum(0).double().round(decimals=2),
        train_frames.sum(0).double().round(decimals=2),
    )

    first = {}
    for split, path in out.items():
        entries = load_json(path)
        assert set(entries) == set(load_json(manifests[split]))
        for utt, entry in entries.items():
            item = torch.load(entry["units"])
            n = item["units"].shape[0]
            assert abs(n - 25 * entry["length"]) <= 1
            assert item["units"].dtype == torch.long
            assert item["feats"].dtype == torch.float16
            assert item["feats"].shape == (n, 64)
            assert 0 <= int(item["units"].min())
            assert int(item["units"].max()) < 8
            first[utt] = (entry["units"], item["units"])
    # Units of a cached utterance are those of its audio, encoded anew.
    wav = read_audio_16k(load_json(manifests["valid"])["va0"]["wav"])
    codebook = UnitCodebook.from_file(cb_path)
    fresh = codebook.assign(encoder.encode_list([wav])[0].half().float())
    assert torch.equal(fresh, first["va0"][1])

    # Rerun: nothing is encoded or fitted again, same files.
    def boom(*args, **kwargs):
        raise AssertionError("cache not reused")

    monkeypatch.setattr(encoder, "encode_pieces", boom)
    monkeypatch.setattr(UnitCodebook, "fit", boom)
    mtimes = {u: os.path.getmtime(p) for u, (p, _) in first.items()}
    out2 = extract_units(
        manifests, encoder, cb_path, str(cache), n_units=8, seed=3
    )
    for path in out2.values():
        for utt, entry in load_json(path).items():
            assert entry["units"] == first[utt][0]
            assert os.path.getmtime(entry["units"]) == mtimes[utt]

    # New n_units: features reused (encoder still raises), codebook refit,
    # units written to new files.
    monkeypatch.setattr(UnitCodebook, "fit", real_fit)
    out3 = extract_units(
        manifests, encoder, cb_path, str(cache), n_units=4, seed=3
    )
    assert UnitCodebook.from_file(cb_path).n_units == 4
    for utt, entry in load_json(out3["train"]).items():
        assert entry["units"] != first[utt][0]
        assert int(torch.load(entry["units"])["units"].max()) < 4
    monkeypatch.undo()

    # New layer: everything is recomputed.
    calls = []
    other = WhisperFrameEncoder(tiny_whisper, layer=2, batch_size=4)
    real_pieces = other.encode_pieces

    def count_pieces(pieces):
        calls.append(len(pieces))
        return real_pieces(pieces)

    other.encode_pieces = count_pieces
    out4 = extract_units(
        manifests, other, cb_path, str(cache), n_units=8, seed=3
    )
    assert sum(calls) == 6
    assert UnitCodebook.from_file(cb_path).meta["encoder"] == other.cache_key
    for utt, entry in load_json(out4["test"]).items():
        assert entry["units"] != first[utt][0]


def test_codebook_refit_when_train_split_changes(tmp_path, encoder):
    manifests = make_corpus(tmp_path)
    cb_path = str(tmp_path / "codebook.ckpt")
    extract_units(manifests, encoder, cb_path, str(tmp_path / "c"), n_units=8)
    fp = UnitCodebook.from_file(cb_path).fingerprint
    # Another fold: the test utterances become training data -> refit.
    swapped = dict(manifests, train=manifests["test"], test=manifests["train"])
    extract_units(swapped, encoder, cb_path, str(tmp_path / "c"), n_units=4)
    assert UnitCodebook.from_file(cb_path).fingerprint != fp


def test_prosody_features_track_pitch_and_energy():
    t = torch.arange(2 * SR) / SR
    low = 0.1 * torch.sin(2 * torch.pi * 120 * t)
    high = 0.4 * torch.sin(2 * torch.pi * 240 * t)
    p_low, p_high = prosody_features(low), prosody_features(high)
    assert p_low.shape == p_high.shape == (50, 2)
    f0_ratio = (p_high[5:45, 0] - p_low[5:45, 0]).exp().median()
    assert 1.8 < float(f0_ratio) < 2.2
    assert float((p_high[:, 1] - p_low[:, 1]).mean()) > 1.0
    assert prosody_features(low, n_frames=7).shape == (7, 2)


@pytest.mark.integration
def test_real_whisper_tiny_en():
    encoder = WhisperFrameEncoder("whisper-tiny.en", layer=2)
    feats, n = encoder(signal(10, seed=9).unsqueeze(0))
    assert abs(int(n[0]) - 250) <= 1
    assert feats.shape[-1] == 384
    assert torch.isfinite(feats).all()
    assert feats[0, : n[0]].std() > 0
