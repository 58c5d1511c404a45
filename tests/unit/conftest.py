"""Fixtures shared by the unit tests."""

import json
import os

import pytest
import torch

#: Units, feature width and classes of the fake units cache.
FAKE_K, FAKE_D = 16, 8
FAKE_EMOTIONS = ["neu", "hap", "sad", "ang"]


def write_fake_manifest(folder, n_dialogues=3, turns=5, seed=0):
    """A units manifest and cache whose units depend on the emotion (unit
    ids 4e..4e+3 for class e), so that there is something to learn."""
    gen = torch.Generator().manual_seed(seed)
    os.makedirs(folder, exist_ok=True)
    manifest = {}
    for d in range(n_dialogues):
        for t in range(turns):
            emo = int(torch.randint(0, 4, (1,), generator=gen))
            n = int(torch.randint(4, 9, (1,), generator=gen))
            units = torch.randint(0, 4, (n,), generator=gen) + 4 * emo
            feats = torch.randn(n, FAKE_D, generator=gen).half()
            utt_id = f"dia{d}_utt{t}"
            path = os.path.join(folder, f"{utt_id}.pt")
            torch.save({"units": units, "feats": feats}, path)
            manifest[utt_id] = {
                "wav": "unused.wav",
                "length": n / 25,
                "emo": FAKE_EMOTIONS[emo],
                "dialogue_id": f"dia{d}",
                "turn_index": t,
                "speaker": f"spk{d % 2}",
                "units": path,
            }
    path = os.path.join(folder, "manifest.json")
    with open(path, "w") as f:
        json.dump(manifest, f)
    return path


@pytest.fixture(scope="session")
def fake_manifest():
    """``fake_manifest(folder, n_dialogues=3, turns=5, seed=0)`` writes a
    fake units cache and returns its manifest path."""
    return write_fake_manifest
