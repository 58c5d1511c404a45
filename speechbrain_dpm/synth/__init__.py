"""Synthetic conversational emotion corpora in the IEMOCAP and MELD layouts.

The real IEMOCAP and MELD corpora are licensed and absent, so demos, tests and
benchmarks run on corpora generated here, written in exactly the real on-disk
layouts so that the real data-preparation scripts run on them unchanged.

Speech comes from espeak-ng. Every speaker has their own voice and baseline
(pitch, pitch range, speaking rate, loudness); an emotion shifts the prosody
*relative to that baseline*, and each utterance gets prosody jitter and
additive noise. A single utterance is therefore ambiguous across speakers,
while the speaker's earlier turns disambiguate it: exactly what a
conversation-level memory can exploit. Emotions persist across a speaker's
turns through a per-speaker Markov chain (``stickiness``). Texts are
emotion-neutral by default, so the words do not give the label away.
With ``subdued_share`` > 0, that share of turns is delivered close to the
speaker's neutral baseline while keeping its label: such a turn can only be
read from the conversation around it (measured in the IEMOCAP recipe's
``RESULTS.md``).

Every corpus carries a ``SYNTHETIC.txt`` at its root (generator, parameters,
seed) and a ``SYNTHETIC_meta.json`` (speakers' baselines and the plan of every
utterance: true emotion, prosody, whether it is subdued). Generation is
deterministic: the same parameters and seed give byte-identical files,
whatever ``n_jobs``.

One module per job, in the order a corpus is made:

- ``config``: :class:`IemocapConfig` / :class:`MeldConfig`, what to generate;
- ``corpora``: the label sets, priors and names of the two corpora;
- ``voices``: speakers' voices and baselines, emotion prosody;
- ``texts``: sentence pools and dialogue CSVs;
- ``planning``: speakers, dialogues, turns, emotions, labels (no audio);
- ``render``: espeak-ng speech (and ffmpeg's mp4) in worker processes;
- ``iemocap`` / ``meld``: the two layout writers (``generate_*``);
- ``provenance``: ``SYNTHETIC.txt`` / ``SYNTHETIC_meta.json``, idempotency;
- ``cli``: ``python -m speechbrain_dpm.synth {iemocap,meld} --out DIR``.

Example
-------
>>> speakers, dialogues = plan_iemocap(IemocapConfig(n_dialogues=2, seed=0))
>>> len(speakers), [d.group for d in dialogues]
(10, ['Session1', 'Session2'])

Authors
 * speechbrain_dpm developers 2026
"""

from speechbrain_dpm.synth.cli import main
from speechbrain_dpm.synth.config import CorpusConfig, IemocapConfig, MeldConfig
from speechbrain_dpm.synth.corpora import (
    IEMOCAP_CATEGORY,
    IEMOCAP_LABELS,
    IEMOCAP_PRIOR,
    MELD_COLUMNS,
    MELD_LABELS,
    MELD_NAMES,
    MELD_PRIOR,
    MELD_SPLIT_DIRS,
    MELD_TO_IEMOCAP,
)
from speechbrain_dpm.synth.iemocap import generate_iemocap
from speechbrain_dpm.synth.meld import generate_meld
from speechbrain_dpm.synth.planning import (
    PlannedDialogue,
    PlannedUtterance,
    emotion_chain,
    plan_iemocap,
    plan_meld,
)
from speechbrain_dpm.synth.provenance import (
    GENERATOR_VERSION,
    META_FILE,
    SYNTH_FILE,
    read_synthetic_params,
)
from speechbrain_dpm.synth.render import SAMPLE_RATE, synthesize_utterance
from speechbrain_dpm.synth.texts import (
    EMOTION_SENTENCES,
    neutral_sentences,
    read_dialogue_csv,
)
from speechbrain_dpm.synth.voices import (
    EMOTION_PROSODY,
    FEMALE_VOICES,
    MALE_VOICES,
    SUBDUED_INTENSITY,
    EmotionProsody,
    SpeakerVoice,
    make_speaker,
)

__all__ = [
    "CorpusConfig",
    "EMOTION_PROSODY",
    "EMOTION_SENTENCES",
    "EmotionProsody",
    "FEMALE_VOICES",
    "GENERATOR_VERSION",
    "IEMOCAP_CATEGORY",
    "IEMOCAP_LABELS",
    "IEMOCAP_PRIOR",
    "IemocapConfig",
    "MALE_VOICES",
    "MELD_COLUMNS",
    "MELD_LABELS",
    "MELD_NAMES",
    "MELD_PRIOR",
    "MELD_SPLIT_DIRS",
    "MELD_TO_IEMOCAP",
    "META_FILE",
    "MeldConfig",
    "PlannedDialogue",
    "PlannedUtterance",
    "SAMPLE_RATE",
    "SUBDUED_INTENSITY",
    "SYNTH_FILE",
    "SpeakerVoice",
    "emotion_chain",
    "generate_iemocap",
    "generate_meld",
    "main",
    "make_speaker",
    "neutral_sentences",
    "plan_iemocap",
    "plan_meld",
    "read_dialogue_csv",
    "read_synthetic_params",
    "synthesize_utterance",
]
