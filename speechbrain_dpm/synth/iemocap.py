"""The IEMOCAP layout writer: a planned corpus as ``IEMOCAP_full_release``.

Layout::

    Session{1..5}/dialog/EmoEvaluation/<dialog>.txt
    Session{1..5}/dialog/transcriptions/<dialog>.txt
    Session{1..5}/dialog/wav/<dialog>.wav
    Session{1..5}/sentences/wav/<dialog>/<turn>.wav

The EmoEvaluation files carry simulated annotators (categories and
valence / activation / dominance), written in the real files' format so that
the real data-preparation script reads them unchanged.

Authors
 * speechbrain_dpm developers 2026
"""

from pathlib import Path

import numpy as np
import soundfile as sf
from speechbrain.utils.logger import get_logger

from speechbrain_dpm.synth.config import IemocapConfig
from speechbrain_dpm.synth.corpora import IEMOCAP_CATEGORY
from speechbrain_dpm.synth.planning import plan_iemocap
from speechbrain_dpm.synth.provenance import (
    GENERATOR_VERSION,
    META_FILE,
    prepare_root,
    write_synthetic_files,
)
from speechbrain_dpm.synth.render import (
    SAMPLE_RATE,
    check_espeak,
    place_times,
    render_plan,
)

logger = get_logger(__name__)

# The category a dissenting annotator picks instead.
_CONFUSION = {
    "neu": "fru",
    "hap": "exc",
    "exc": "hap",
    "sad": "neu",
    "ang": "fru",
    "fru": "ang",
    "sur": "exc",
    "fea": "sur",
    "dis": "ang",
    "oth": "neu",
}
# Mean valence, activation, dominance (1..5) per category.
_VAD = {
    "neu": (3.0, 2.5, 2.5),
    "hap": (4.0, 3.0, 3.0),
    "exc": (4.0, 3.8, 3.5),
    "sad": (2.0, 2.0, 2.0),
    "ang": (1.8, 4.0, 4.0),
    "fru": (2.0, 3.2, 3.2),
    "sur": (3.5, 3.8, 3.0),
    "fea": (2.0, 3.5, 2.0),
    "dis": (1.8, 3.0, 3.5),
    "oth": (3.0, 3.0, 3.0),
}


def _annotations(label, emotion, gender, rng):
    """Annotator lines of one turn and the mean V/A/D."""
    true = emotion if emotion in IEMOCAP_CATEGORY else "oth"
    evaluators = sorted(rng.choice(6, size=3, replace=False) + 1)
    if label == "xxx":
        alt = _CONFUSION[true]
        third = "neu" if "neu" not in (true, alt) else "oth"
        cats = [true, alt, third]
        cats = [cats[k] for k in rng.permutation(3)]
    else:
        cats = [true] * 3
        if rng.random() < 0.5:
            cats[int(rng.integers(3))] = _CONFUSION[true]
    lines, vads = [], []
    for e, c in zip(evaluators, cats):
        lines.append(f"C-E{e}:\t{IEMOCAP_CATEGORY[c]};\t()")
    lines.append(f"C-{gender}1:\t{IEMOCAP_CATEGORY[true]};\t()")
    raters = [f"E{e}" for e in evaluators] + [f"{gender}1"]
    for k, r in enumerate(raters):
        v, a, d = (
            int(np.clip(round(m + rng.normal(0, 0.6)), 1, 5))
            for m in _VAD[true]
        )
        lines.append(f"A-{r}:\tval {v}; act {a}; dom  {d};\t()")
        if k < 3:
            vads.append((v, a, d))
    return lines, np.mean(vads, axis=0)


def _write_iemocap_dialogue(root, dialogue, speakers, seed):
    """Writes EmoEvaluation, transcription and the whole-dialogue wav."""
    name = dialogue.dialogue_id
    ses = root / dialogue.group / "dialog"
    rng = np.random.default_rng([seed, 3, int(name[3:5]), sum(map(ord, name))])
    total = place_times(dialogue)
    blocks = ["% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]", ""]
    trans = []
    for u in dialogue.utterances:
        g = speakers[u.speaker].gender
        ann, vad = _annotations(u.label, u.emotion, g, rng)
        blocks.append(
            f"[{u.start:.4f} - {u.end:.4f}]\t{u.utt_id}\t{u.label}\t"
            f"[{vad[0]:.4f}, {vad[1]:.4f}, {vad[2]:.4f}]"
        )
        blocks.extend(ann)
        blocks.append("")
        trans.append(f"{u.utt_id} [{u.start:08.4f}-{u.end:08.4f}]: {u.text}")
    for sub in ("EmoEvaluation", "transcriptions", "wav"):
        (ses / sub).mkdir(parents=True, exist_ok=True)
    (ses / "EmoEvaluation" / f"{name}.txt").write_text("\n".join(blocks) + "\n")
    (ses / "transcriptions" / f"{name}.txt").write_text("\n".join(trans) + "\n")
    # Room tone in the pauses; the turns are pasted in unchanged, so a cut
    # at a turn's times equals its sentence wav.
    tail = int(round(float(rng.uniform(0.5, 2.0)) * SAMPLE_RATE))
    audio = np.round(rng.normal(0, 3.0, size=total + tail)).astype(np.int16)
    sent_dir = root / dialogue.group / "sentences" / "wav" / name
    for u in dialogue.utterances:
        x, _ = sf.read(sent_dir / f"{u.utt_id}.wav", dtype="int16")
        a = int(round(u.start * SAMPLE_RATE))
        audio[a : a + len(x)] = x
    sf.write(ses / "wav" / f"{name}.wav", audio, SAMPLE_RATE, subtype="PCM_16")


def generate_iemocap(out_dir, config=None, n_jobs=2, overwrite=False):
    """Generates a synthetic corpus in IEMOCAP's ``IEMOCAP_full_release``
    layout.

    Each session has one female (``Ses0kF``) and one male (``Ses0kM``)
    speaker; turns are named ``<dialog>_{F|M}{nnn}`` after the speaking
    actor. Labels are mostly neu/hap/exc/sad/ang plus some fru/sur, and
    ``xxx`` where the simulated annotators disagree. Skips all work when
    ``out_dir`` already holds a complete corpus with the same parameters.

    Arguments
    ---------
    out_dir : str or Path
        Corpus root (the folder holding ``Session1`` .. ``Session5``).
    config : IemocapConfig, optional
        What to generate (default: ``IemocapConfig()``).
    n_jobs : int
        Worker processes for speech synthesis (the files are the same
        whatever the number).
    overwrite : bool
        Replace a synthetic corpus generated with other parameters.

    Returns
    -------
    Path
        The corpus root.

    Example
    -------
    >>> import tempfile
    >>> config = IemocapConfig(n_dialogues=1, turns=(2, 2))
    >>> root = generate_iemocap(Path(tempfile.mkdtemp()) / "iemo", config)
    >>> sorted(p.name for p in root.glob("Session*"))
    ['Session1']
    >>> len(list(root.glob("Session1/sentences/wav/*/*.wav")))
    2
    """
    config = IemocapConfig() if config is None else config
    root = Path(out_dir)
    params = {
        "generator": "speechbrain_dpm.synth.generate_iemocap",
        "version": GENERATOR_VERSION,
        **config.record(),
    }
    generated = [f"Session{k}" for k in range(1, 6)] + [META_FILE]
    if prepare_root(root, params, overwrite, generated, "IEMOCAP"):
        return root
    check_espeak()
    speakers, dialogues = plan_iemocap(config)
    logger.info(
        "Synthesising %d IEMOCAP-style utterances in %d dialogues into %s",
        sum(len(d.utterances) for d in dialogues),
        len(dialogues),
        root,
    )

    def sentence_wav(dialogue, utterance):
        """Where a turn's wav goes."""
        return (
            root
            / dialogue.group
            / "sentences"
            / "wav"
            / dialogue.dialogue_id
            / f"{utterance.utt_id}.wav"
        )

    render_plan(dialogues, speakers, sentence_wav, n_jobs)
    for d in dialogues:
        _write_iemocap_dialogue(root, d, speakers, config.seed)
    write_synthetic_files(
        root,
        "IEMOCAP",
        params,
        speakers,
        dialogues,
        ["Layout: IEMOCAP_full_release (Session1..5, 16 kHz mono wav)."],
    )
    return root
