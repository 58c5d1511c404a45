"""25 Hz speech units from a frozen Whisper encoder.

The DPM paper tokenises speech with the CosyVoice2 tokenizer (25 Hz, one
codebook), which is not available here. This package builds the closest
offline equivalent, one module per job:

1. :mod:`~speechbrain_dpm.units.frames`: the 25 Hz frame grid (one frame per
   40 ms) and the pooling of 50 Hz encoder frames onto it.
2. :mod:`~speechbrain_dpm.units.encoder`: :class:`WhisperFrameEncoder`, a
   frozen Whisper encoder (SpeechBrain's HF wrapper) whose *middle* layer
   gives continuous 25 Hz features.
3. :mod:`~speechbrain_dpm.units.codebook`: :class:`UnitCodebook`, k-means
   (scikit-learn ``MiniBatchKMeans``) fitted on training-split frames only,
   mapping each frame to a unit id; :class:`UnitExtractor` applies encoder
   and codebook to waveforms at inference.
4. :mod:`~speechbrain_dpm.units.cache`: :func:`extract_units`, the recipe
   stage that caches the pooled features and the units of every utterance
   and adds a ``"units"`` entry to the manifests.

Why a middle layer, and why the continuous features are kept next to the
unit ids: in a linear probe on synthetic speech, the middle layer of Whisper
tiny.en kept more emotion than the last one, and 512 k-means units kept only
about half of the above-chance emotion signal of the continuous features
(``recipes/IEMOCAP/README.md``, "Choices we made where the paper is silent").

The public names are importable from this package, e.g.
``speechbrain_dpm.units.WhisperFrameEncoder`` in a YAML file.

Authors
 * speechbrain_dpm contributors 2026
"""

from speechbrain_dpm.units.cache import (
    extract_units,
    units_manifest_path,
)
from speechbrain_dpm.units.codebook import UnitCodebook, UnitExtractor
from speechbrain_dpm.units.encoder import WhisperFrameEncoder
from speechbrain_dpm.units.frames import (
    CHUNK_SAMPLES,
    FEATURE_VERSION,
    HOP_25HZ,
    HOP_50HZ,
    SAMPLE_RATE,
    n_frames_25hz,
    pool_to_25hz,
    prosody_features,
)

__all__ = [
    "CHUNK_SAMPLES",
    "FEATURE_VERSION",
    "HOP_25HZ",
    "HOP_50HZ",
    "SAMPLE_RATE",
    "UnitCodebook",
    "UnitExtractor",
    "WhisperFrameEncoder",
    "extract_units",
    "n_frames_25hz",
    "pool_to_25hz",
    "prosody_features",
    "units_manifest_path",
]
