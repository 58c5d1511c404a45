"""The LLM trunk: loading (layers, dtype), checkpointing, context window."""

import pytest
import torch

from speechbrain_dpm.testing import tiny_llm


def test_load_llm_keeps_the_first_layers(tmp_path):
    from speechbrain_dpm.llm import load_llm

    full = tiny_llm(layers=3)
    full.save_pretrained(tmp_path)
    cut = load_llm(str(tmp_path), num_layers=2)
    assert cut.config.num_hidden_layers == 2
    assert len(cut.model.layers) == 2
    for a, b in zip(cut.model.layers, full.model.layers[:2]):
        for (name, pa), (_, pb) in zip(
            a.named_parameters(), b.named_parameters()
        ):
            assert torch.equal(pa, pb), name
    assert load_llm(str(tmp_path)).config.num_hidden_layers == 3
    with pytest.raises(ValueError, match="3 decoder layers"):
        load_llm(str(tmp_path), num_layers=4)


def test_load_llm_dtype_and_checkpointing(tmp_path):
    """A bfloat16 folder loads as bfloat16 (no float32 weights at all),
    with checkpointing on when asked; unknown dtypes are refused."""
    from speechbrain_dpm.llm import load_llm

    tiny_llm().to(torch.bfloat16).save_pretrained(tmp_path)
    llm = load_llm(str(tmp_path), dtype="bfloat16", gradient_checkpointing=True)
    assert {p.dtype for p in llm.parameters()} == {torch.bfloat16}
    assert llm.model.layers[0].gradient_checkpointing
    assert not load_llm(str(tmp_path)).model.layers[0].gradient_checkpointing
    with pytest.raises(ValueError, match="llm_dtype"):
        load_llm(str(tmp_path), dtype="float8")


def test_windows_beyond_the_trained_context_are_refused():
    from speechbrain_dpm.llm import check_window, context_length

    llm = tiny_llm()
    assert context_length(llm) == 4096
    check_window(llm, 4096, "n_ctx")
    with pytest.raises(ValueError, match="n_limit = 5000 tokens exceeds"):
        check_window(llm, 5000, "n_limit")


def test_exported_folders_naming_sllm_load_llm_still_load():
    """Folders exported before the move name ``sllm.load_llm``."""
    from speechbrain_dpm import llm, sllm

    assert sllm.load_llm is llm.load_llm
