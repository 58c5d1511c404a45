"""speechbrain_dpm: emotion recognition in long conversations with a speech
LLM and Dynamic Parameter Memory (DPM), as a SpeechBrain add-on."""

__version__ = "0.1.0"
