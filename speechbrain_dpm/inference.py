"""Inference: the public entry point of a trained speechbrain_dpm model.

A thin façade over the modules that do the work, kept so that
``from speechbrain_dpm.inference import DPMEmotionRecognizer`` (README,
scripts, and the ``custom_interface.py`` of every exported model folder)
keeps working:

* :mod:`speechbrain_dpm.export`: ``export_model_folder``, the offline
  model folder a recipe leaves behind;
* :mod:`speechbrain_dpm.audio`: reading and checking audio;
* :mod:`speechbrain_dpm.recognizer`: ``DPMEmotionRecognizer`` and
  ``EmotionPrediction``;
* :mod:`speechbrain_dpm.streaming`: ``StreamSession``, live conversations;
* :mod:`speechbrain_dpm.long_audio`: silero-vad segments of long
  recordings, ``Segment`` and ``write_segments_csv``.

Example
-------
>>> from speechbrain_dpm.inference import DPMEmotionRecognizer
>>> DPMEmotionRecognizer.__module__
'speechbrain_dpm.recognizer'

Authors
 * speechbrain_dpm developers 2026
"""

from speechbrain_dpm.audio import (
    MIN_SECONDS,
    ON_ERROR,
    SAMPLE_RATE,
    SILENCE_PEAK,
    check_waveform,
    read_audio_16k,
)
from speechbrain_dpm.export import (
    CODEBOOK_FILE,
    HPARAMS_FILE,
    INTERFACE_FILE,
    KNOWN_SETTINGS,
    LABEL_ENCODER_FILE,
    REQUIRED_SETTINGS,
    SLLM_FILE,
    complete_settings,
    export_model_folder,
)
from speechbrain_dpm.long_audio import Segment, silero_vad, write_segments_csv
from speechbrain_dpm.recognizer import DPMEmotionRecognizer, EmotionPrediction
from speechbrain_dpm.streaming import StreamSession

__all__ = [
    "CODEBOOK_FILE",
    "DPMEmotionRecognizer",
    "EmotionPrediction",
    "HPARAMS_FILE",
    "INTERFACE_FILE",
    "KNOWN_SETTINGS",
    "LABEL_ENCODER_FILE",
    "MIN_SECONDS",
    "ON_ERROR",
    "REQUIRED_SETTINGS",
    "SAMPLE_RATE",
    "SILENCE_PEAK",
    "SLLM_FILE",
    "Segment",
    "StreamSession",
    "check_waveform",
    "complete_settings",
    "export_model_folder",
    "read_audio_16k",
    "silero_vad",
    "write_segments_csv",
]
