"""Fast tests of the CTranslate2 reader and the CTranslate2 Whisper → HF
converter (speechbrain_dpm.assets.ct2_reader, .whisper_ct2), no real weights.

A tiny random Whisper is written in CTranslate2 format by a small writer
below (the inverse of the converter's mapping), then read and converted back.

Authors
 * speechbrain_dpm contributors 2026
"""

import json
import struct

import numpy as np
import pytest
import torch

from speechbrain_dpm import assets

# ---------------------------------------------------------------------------
# A minimal CTranslate2 model.bin writer (format version 6)
# ---------------------------------------------------------------------------

_CODES = {np.float32: 0, np.int8: 1, np.int16: 2, np.int32: 3, np.float16: 4}


def _string(s):
    raw = s.encode() + b"\0"
    return struct.pack("<H", len(raw)) + raw


def write_ct2(path, variables, aliases=(), spec="WhisperSpec"):
    """Writes {name: np.ndarray | ("bf16", float32 array)} as model.bin."""
    out = [struct.pack("<I", 6), _string(spec), struct.pack("<I", 3)]
    out.append(struct.pack("<I", len(variables)))
    for name, array in variables.items():
        if isinstance(array, tuple):  # bfloat16: upper 16 bits of float32
            array = np.asarray(array[1], np.float32)
            raw = (array.view(np.uint32) >> 16).astype(np.uint16).tobytes()
            code = 5
        else:
            raw, code = array.tobytes(), _CODES[array.dtype.type]
        out.append(_string(name) + struct.pack("<B", array.ndim))
        out.append(struct.pack(f"<{array.ndim}I", *array.shape))
        out.append(struct.pack("<BI", code, len(raw)) + raw)
    out.append(struct.pack("<I", len(aliases)))
    for alias, target in aliases:
        out.append(_string(alias) + _string(target))
    path.write_bytes(b"".join(out))


def hf_to_ct2(model):
    """Maps an HF Whisper state dict to CT2 variable names (fp16 weights)."""
    sd = {k: v.detach().numpy() for k, v in model.state_dict().items()}
    cfg = model.config
    v = {}

    def f16(x):
        return np.ascontiguousarray(x, dtype=np.float16)

    def lin(ct2, hf, bias=True):
        v[f"{ct2}/weight"] = f16(sd[f"{hf}.weight"])
        if bias:
            v[f"{ct2}/bias"] = f16(sd[f"{hf}.bias"])

    def norm(ct2, hf):
        v[f"{ct2}/gamma"] = f16(sd[f"{hf}.weight"])
        v[f"{ct2}/beta"] = f16(sd[f"{hf}.bias"])

    def fused(ct2, hf, names):
        v[f"{ct2}/weight"] = f16(
            np.concatenate([sd[f"{hf}.{n}.weight"] for n in names])
        )
        biases = [
            sd.get(f"{hf}.{n}.bias", np.zeros(cfg.d_model, np.float32))
            for n in names
        ]
        v[f"{ct2}/bias"] = f16(np.concatenate(biases))

    def block(ct2, hf):
        fused(
            f"{ct2}/self_attention/linear_0",
            f"{hf}.self_attn",
            ["q_proj", "k_proj", "v_proj"],
        )
        lin(f"{ct2}/self_attention/linear_1", f"{hf}.self_attn.out_proj")
        norm(f"{ct2}/self_attention/layer_norm", f"{hf}.self_attn_layer_norm")
        lin(f"{ct2}/ffn/linear_0", f"{hf}.fc1")
        lin(f"{ct2}/ffn/linear_1", f"{hf}.fc2")
        norm(f"{ct2}/ffn/layer_norm", f"{hf}.final_layer_norm")

    i8, i16 = np.int8, np.int16
    v["decoder/activation"] = np.array(3, i8)
    v["decoder/num_heads"] = np.array(cfg.decoder_attention_heads, i16)
    v["decoder/pre_norm"] = np.array(1, i8)
    v["decoder/scale_embeddings"] = np.array(0, i8)
    v["decoder/embeddings/weight"] = f16(
        sd["model.decoder.embed_tokens.weight"]
    )
    v["decoder/position_encodings/encodings"] = f16(
        sd["model.decoder.embed_positions.weight"]
    )
    norm("decoder/layer_norm", "model.decoder.layer_norm")
    for i in range(cfg.decoder_layers):
        ct2, hf = f"decoder/layer_{i}", f"model.decoder.layers.{i}"
        block(ct2, hf)
        lin(f"{ct2}/attention/linear_0", f"{hf}.encoder_attn.q_proj")
        fused(
            f"{ct2}/attention/linear_1",
            f"{hf}.encoder_attn",
            ["k_proj", "v_proj"],
        )
        lin(f"{ct2}/attention/linear_2", f"{hf}.encoder_attn.out_proj")
        norm(f"{ct2}/attention/layer_norm", f"{hf}.encoder_attn_layer_norm")
    lin("encoder/conv1", "model.encoder.conv1")
    lin("encoder/conv2", "model.encoder.conv2")
    v["encoder/num_heads"] = np.array(cfg.encoder_attention_heads, i16)
    v["encoder/position_encodings/encodings"] = f16(
        sd["model.encoder.embed_positions.weight"]
    )
    norm("encoder/layer_norm", "model.encoder.layer_norm")
    for i in range(cfg.encoder_layers):
        block(f"encoder/layer_{i}", f"model.encoder.layers.{i}")
    return v


_SPECIAL = [
    "<|endoftext|>",
    "<|startoftranscript|>",
    "<|en|>",
    "<|translate|>",
    "<|transcribe|>",
    "<|startoflm|>",
    "<|startofprev|>",
    "<|nocaptions|>",
    "<|notimestamps|>",
]


@pytest.fixture(scope="module")
def tiny_ct2(tmp_path_factory):
    """A random tiny Whisper (fp16-exact weights) and its CT2 folder."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import WhisperConfig, WhisperForConditionalGeneration

    # A small byte-level BPE with the special tokens after the vocabulary,
    # laid out like Whisper's tokenizer.
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=300,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(["hello world", "the cat sat"] * 5, trainer)
    tok.add_special_tokens(_SPECIAL)
    vocab = tok.get_vocab_size()
    eos = tok.token_to_id("<|endoftext|>")
    sot = tok.token_to_id("<|startoftranscript|>")
    torch.manual_seed(0)
    config = WhisperConfig(
        vocab_size=vocab,
        num_mel_bins=16,
        d_model=24,
        encoder_layers=2,
        decoder_layers=2,
        encoder_attention_heads=4,
        decoder_attention_heads=4,
        encoder_ffn_dim=40,
        decoder_ffn_dim=48,
        max_source_positions=30,
        max_target_positions=12,
        decoder_start_token_id=sot,
        pad_token_id=eos,
        bos_token_id=eos,
        eos_token_id=eos,
    )
    model = WhisperForConditionalGeneration(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            # Random (not init-default) values, exactly representable in
            # fp16 so the round trip through the fp16 file is lossless.
            p.copy_(torch.randn_like(p).mul(0.3).half().float())
    folder = tmp_path_factory.mktemp("ct2")
    write_ct2(
        folder / "model.bin",
        hf_to_ct2(model),
        aliases=[("decoder/projection/weight", "decoder/embeddings/weight")],
    )
    tok.save(str(folder / "tokenizer.json"))
    (folder / "config.json").write_text(
        json.dumps(
            {
                "alignment_heads": [[1, 0]],
                "suppress_ids": [2],
                "suppress_ids_begin": [eos],
                "lang_ids": [sot + 1],
            }
        )
    )
    return model, folder


def _compare_outputs(ref, new, n_mels):
    torch.manual_seed(1)
    feats = torch.randn(2, n_mels, 60)
    dec = torch.tensor([[7, 0, 1, 2], [7, 3, 4, 5]])
    with torch.no_grad():
        a = ref(input_features=feats, decoder_input_ids=dec)
        b = new(input_features=feats, decoder_input_ids=dec)
    assert torch.equal(a.logits, b.logits)
    assert torch.equal(a.encoder_last_hidden_state, b.encoder_last_hidden_state)


def test_read_ct2_model_types_and_aliases(tmp_path):
    bf = np.array([1.5, -2.25, 2.0**18 + 2.0**12], np.float32)  # bf16-exact
    f16 = np.arange(6, dtype=np.float16).reshape(2, 3) / 4
    write_ct2(
        tmp_path / "model.bin",
        {
            "a/f32": np.ones((2, 2), np.float32),
            "a/f16": f16,
            "a/bf16": ("bf16", bf),
            "a/i8": np.array(3, np.int8),
            "a/i16": np.array(-1, np.int16),
            "a/i32": np.array([7, 8], np.int32),
        },
        aliases=[("b/alias", "a/f16")],
        spec="TestSpec",
    )
    spec, v = assets.read_ct2_model(tmp_path / "model.bin")
    assert spec == "TestSpec"
    assert v["a/f16"].dtype == np.float32
    np.testing.assert_array_equal(v["a/f16"], f16.astype(np.float32))
    np.testing.assert_array_equal(v["a/bf16"], bf)
    assert v["a/i8"].shape == () and int(v["a/i8"]) == 3
    assert int(v["a/i16"]) == -1
    np.testing.assert_array_equal(v["a/i32"], [7, 8])
    np.testing.assert_array_equal(v["b/alias"], v["a/f16"])

    # Split files (as whisper-base ships) read as their concatenation.
    raw = (tmp_path / "model.bin").read_bytes()
    (tmp_path / "p1").write_bytes(raw[:50])
    (tmp_path / "p2").write_bytes(raw[50:])
    _, parts = assets.read_ct2_model([tmp_path / "p1", tmp_path / "p2"])
    assert parts.keys() == v.keys()
    np.testing.assert_array_equal(parts["a/bf16"], bf)

    # A wrong version and a truncated file are clear errors.
    (tmp_path / "bad").write_bytes(struct.pack("<I", 5) + raw[4:])
    with pytest.raises(assets.AssetError, match="version 5"):
        assets.read_ct2_model(tmp_path / "bad")
    (tmp_path / "short").write_bytes(raw[:-10])
    with pytest.raises(assets.AssetError, match="Truncated"):
        assets.read_ct2_model(tmp_path / "short")


def test_ct2_whisper_to_hf_round_trip(tiny_ct2):
    model, folder = tiny_ct2
    spec, variables = assets.read_ct2_model(folder / "model.bin")
    assert spec == "WhisperSpec"
    cfg = model.config
    new = assets.ct2_whisper_to_hf(
        variables,
        decoder_start_token_id=cfg.decoder_start_token_id,
        eos_token_id=cfg.eos_token_id,
    )
    new_cfg = new.config
    for name in (
        "vocab_size",
        "num_mel_bins",
        "d_model",
        "encoder_layers",
        "decoder_layers",
        "encoder_attention_heads",
        "decoder_attention_heads",
        "encoder_ffn_dim",
        "decoder_ffn_dim",
        "max_source_positions",
        "max_target_positions",
    ):
        assert getattr(new_cfg, name) == getattr(cfg, name), name
    ref_sd, new_sd = model.state_dict(), new.state_dict()
    assert ref_sd.keys() == new_sd.keys()
    for key, value in ref_sd.items():
        assert torch.equal(value, new_sd[key]), key
    assert all(p.dtype == torch.float32 for p in new.parameters())
    _compare_outputs(model, new, cfg.num_mel_bins)


def test_ct2_whisper_rejects_unknown_variants(tiny_ct2):
    _, folder = tiny_ct2
    _, variables = assets.read_ct2_model(folder / "model.bin")
    relu = dict(variables, **{"decoder/activation": np.array(0, np.int8)})
    with pytest.raises(assets.AssetError, match="activation=0"):
        assets.ct2_whisper_to_hf(relu)
    extra = dict(variables, **{"encoder/extra/weight": np.zeros(3)})
    with pytest.raises(assets.AssetError, match="Unexpected"):
        assets.ct2_whisper_to_hf(extra)


def test_convert_ct2_whisper_folder(tiny_ct2, tmp_path):
    from transformers import (
        AutoFeatureExtractor,
        AutoTokenizer,
        GenerationConfig,
        WhisperForConditionalGeneration,
    )

    model, folder = tiny_ct2
    out = tmp_path / "hf"
    assets.convert_ct2_whisper(
        folder / "model.bin",
        folder / "tokenizer.json",
        folder / "config.json",
        out,
    )
    loaded = WhisperForConditionalGeneration.from_pretrained(out)
    _compare_outputs(model, loaded, model.config.num_mel_bins)
    assert AutoFeatureExtractor.from_pretrained(out).feature_size == 16
    tok = AutoTokenizer.from_pretrained(out)
    ids = tok("hello world").input_ids
    assert tok.convert_ids_to_tokens(ids[:2]) == [
        "<|startoftranscript|>",
        "<|notimestamps|>",
    ]
    assert tok.decode(ids, skip_special_tokens=True) == "hello world"
    gen = GenerationConfig.from_pretrained(out)
    sot = tok.convert_tokens_to_ids("<|startoftranscript|>")
    assert (
        gen.decoder_start_token_id
        == sot
        == loaded.config.decoder_start_token_id
    )
    assert gen.eos_token_id == tok.convert_tokens_to_ids("<|endoftext|>")
    assert gen.no_timestamps_token_id == tok.convert_tokens_to_ids(
        "<|notimestamps|>"
    )
    assert gen.suppress_tokens == [2] and gen.alignment_heads == [[1, 0]]
    assert gen.is_multilingual is False
