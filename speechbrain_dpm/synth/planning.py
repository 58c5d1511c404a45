"""Planning a corpus: who speaks when, with which emotion, saying what.

A plan is everything but the audio: speakers and their baselines, dialogues,
turns, true emotions, written labels, prosody, noise. It is cheap, and it is
all that randomness decides: rendering and the layout writers only follow
it. Emotions persist across a speaker's turns through a per-speaker Markov
chain (``stickiness``); with ``subdued_share`` > 0, that share of turns is
delivered close to the speaker's neutral baseline while keeping its label.

Every dialogue draws from its own random stream (seeded by the corpus seed
and its index), so one option changes only what it is about.

Authors
 * speechbrain_dpm developers 2026
"""

from dataclasses import dataclass, field

import numpy as np

from speechbrain_dpm.synth.config import IemocapConfig, MeldConfig
from speechbrain_dpm.synth.corpora import (
    IEMOCAP_CATEGORY,
    IEMOCAP_PRIOR,
    MELD_NAMES,
    MELD_PRIOR,
    MELD_SPLIT_DIRS,
)
from speechbrain_dpm.synth.texts import (
    choose_texts,
    csv_turns,
    map_csv_emotion,
    neutral_sentences,
    read_dialogue_csv,
)
from speechbrain_dpm.synth.voices import (
    FEMALE_VOICES,
    MALE_VOICES,
    SUBDUED_INTENSITY,
    make_speaker,
    stratified_quantiles,
)


def emotion_chain(speakers, prior, stickiness, rng, contagion=0.2):
    """Samples emotions for a sequence of turns with per-speaker persistence.

    Each speaker keeps their previous emotion with probability
    ``stickiness``; otherwise, with probability ``contagion``, they take the
    emotion of the previous turn (someone else's), else they draw from
    ``prior``.

    Arguments
    ---------
    speakers : list of str
        Who speaks each turn.
    prior : dict
        Emotion → probability.
    stickiness : float
        Probability of keeping one's previous emotion.
    rng : numpy.random.Generator
        Source of randomness.
    contagion : float
        Probability of taking over the previous turn's emotion on a change.

    Returns
    -------
    list of str
        One emotion per turn.

    Example
    -------
    >>> rng = np.random.default_rng(0)
    >>> emos = emotion_chain(["A", "B"] * 20, {"neu": .5, "ang": .5}, 1.0, rng)
    >>> len(set(emos[0::2])) == 1 and len(set(emos[1::2])) == 1
    True
    """
    labels = list(prior)
    probs = np.asarray([prior[k] for k in labels], dtype=float)
    probs = probs / probs.sum()
    last, out = {}, []
    for spk in speakers:
        if spk in last and rng.random() < stickiness:
            emo = last[spk]
        elif out and rng.random() < contagion:
            emo = out[-1]
        else:
            emo = labels[int(rng.choice(len(labels), p=probs))]
        last[spk] = emo
        out.append(emo)
    return out


@dataclass
class PlannedUtterance:
    """One utterance of a planned corpus (everything but the audio).

    Arguments
    ---------
    utt_id : str
        Turn name (IEMOCAP) or ``dia{D}_utt{U}`` (MELD).
    dialogue_id : str
        Dialogue name.
    speaker : str
        Speaker id.
    text : str
        What is said.
    emotion : str
        The emotion rendered in the audio.
    label : str
        The written label (differs from ``emotion`` for IEMOCAP ``xxx``).
    prosody : dict
        ``pitch``, ``pitch_range``, ``rate``, ``level_db``.
    snr_db : float
        Signal-to-noise ratio of the added noise.
    noise_seed : int
        Seed of the noise.
    gap : float
        Pause before this turn (seconds).
    subdued : bool
        Delivered with little of its emotion's prosody (``subdued_share``).
    n_samples : int
        Length at 16 kHz, filled in after synthesis.
    start : float
        Start time in the dialogue, filled in after synthesis.
    end : float
        End time in the dialogue, filled in after synthesis.

    Example
    -------
    >>> _, dialogues = plan_iemocap(IemocapConfig(n_dialogues=1, seed=0))
    >>> u = dialogues[0].utterances[0]
    >>> u.speaker == u.utt_id[:5] + u.utt_id[-4], u.n_samples
    (True, 0)
    """

    utt_id: str
    dialogue_id: str
    speaker: str
    text: str
    emotion: str
    label: str
    prosody: dict
    snr_db: float
    noise_seed: int
    gap: float
    subdued: bool = False
    n_samples: int = 0
    start: float = 0.0
    end: float = 0.0


@dataclass
class PlannedDialogue:
    """A planned dialogue.

    Arguments
    ---------
    dialogue_id : str
        E.g. ``Ses01F_impro01`` or ``dia3``.
    group : str
        ``Session1`` .. ``Session5`` (IEMOCAP) or the split (MELD).
    utterances : list of PlannedUtterance
        The turns in order.
    offset : float
        Time of the first turn (seconds).
    info : dict
        Extra per-dialogue fields (MELD season and episode).

    Example
    -------
    >>> _, dialogues = plan_meld(MeldConfig(n_dialogues=(1, 0, 0), seed=0))
    >>> d = dialogues[0]
    >>> d.dialogue_id, d.group, sorted(d.info)
    ('dia0', 'train', ['episode', 'season'])
    """

    dialogue_id: str
    group: str
    utterances: list
    offset: float = 0.0
    info: dict = field(default_factory=dict)


def _iemocap_dialogue_names(session, count):
    """Real-style dialogue names of one session, in a realistic order."""
    names, impro, script = [], 0, 0
    while len(names) < count:
        if (len(names) // 2) % 2 == 0:
            impro += 1
            stem = f"impro{impro:02d}"
        else:
            script += 1
            stem = f"script{(script - 1) // 3 + 1:02d}_{(script - 1) % 3 + 1}"
        # The same scenario exists twice: marker on the F, then the M actor.
        names.extend(f"Ses{session:02d}{g}_{stem}" for g in "FM")
    return names[:count]


def _subdued_flags(seed, index, n, share):
    """Which of a dialogue's ``n`` turns are subdued (own random stream)."""
    if share <= 0:
        return [False] * n
    return list(np.random.default_rng([seed, 5, index]).random(n) < share)


def _csv_dialogues(text_csv):
    """The dialogues of ``text_csv`` (None without one); an empty CSV is
    an error rather than a corpus without texts."""
    if not text_csv:
        return None
    dialogues = read_dialogue_csv(text_csv)
    if not dialogues:
        raise ValueError(f"No dialogues in {text_csv}")
    return dialogues


def _iemocap_speakers(rng):
    """One female and one male actor per session, each with a voice of
    their own and a baseline from distinct strata."""
    female = list(rng.permutation(len(FEMALE_VOICES)))
    male = list(rng.permutation(len(MALE_VOICES)))
    quantiles = iter(stratified_quantiles(rng, 10))
    speakers = {}
    for k in range(1, 6):
        for g, voices, order in (
            ("F", FEMALE_VOICES, female),
            ("M", MALE_VOICES, male),
        ):
            sid = f"Ses{k:02d}{g}"
            speakers[sid] = make_speaker(
                sid, g, voices[order[k - 1]], rng, next(quantiles)
            )
    return speakers


def _meld_cast(rng):
    """The MELD cast (``MELD_NAMES``, alternately female and male), each
    with a voice of their own and a baseline from distinct strata."""
    quantiles = stratified_quantiles(rng, len(MELD_NAMES))
    f_order = rng.permutation(len(FEMALE_VOICES))
    m_order = rng.permutation(len(MALE_VOICES))
    cast = {}
    for i, name in enumerate(MELD_NAMES):
        g = "F" if i % 2 == 0 else "M"
        voices, order = (
            (FEMALE_VOICES, f_order) if g == "F" else (MALE_VOICES, m_order)
        )
        cast[name] = make_speaker(
            name, g, voices[order[i // 2]], rng, quantiles[i]
        )
    return cast


def plan_iemocap(config=None):
    """Plans an IEMOCAP-style corpus: speakers, dialogues, turns, labels.

    Cheap (no audio); :func:`~speechbrain_dpm.synth.iemocap.generate_iemocap`
    synthesises this plan.

    Arguments
    ---------
    config : IemocapConfig, optional
        What to generate (default: ``IemocapConfig()``).

    Returns
    -------
    tuple
        (dict speaker id → SpeakerVoice, list of PlannedDialogue).

    Example
    -------
    >>> speakers, dialogues = plan_iemocap(IemocapConfig(n_dialogues=5, seed=0))
    >>> sorted(speakers)[:2], dialogues[0].dialogue_id
    (['Ses01F', 'Ses01M'], 'Ses01F_impro01')
    >>> dialogues[0].utterances[0].utt_id[:-4]
    'Ses01F_impro01_'
    """
    config = IemocapConfig() if config is None else config
    rng = np.random.default_rng(config.seed)
    pool = neutral_sentences()
    csv_dialogues = _csv_dialogues(config.text_csv)
    speakers = _iemocap_speakers(rng)
    total = config.n_dialogues + config.long_dialogues
    if (
        config.long_session is not None
        and not 1 <= int(config.long_session) <= 5
    ):
        raise ValueError(
            f"long_session must be 1..5, got {config.long_session}"
        )
    sessions = [
        int(config.long_session)
        if i >= config.n_dialogues and config.long_session
        else i % 5 + 1
        for i in range(total)
    ]
    names = {
        s: _iemocap_dialogue_names(s, sessions.count(s)) for s in range(1, 6)
    }
    used = dict.fromkeys(names, 0)
    dialogues = []
    for i in range(total):
        session = sessions[i]
        name = names[session][used[session]]
        used[session] += 1
        is_long = i >= config.n_dialogues
        drng = np.random.default_rng([config.seed, 1, i])
        from_csv = None
        if csv_dialogues is not None:
            from_csv = csv_turns(
                csv_dialogues, i, config.long_turns if is_long else None
            )
            n = len(from_csv)
            first = {}
            for t in from_csv:
                first.setdefault(t["speaker"], len(first))
            start_g = "F" if drng.random() < 0.5 else "M"
            other_g = "M" if start_g == "F" else "F"
            genders = [
                start_g if first[t["speaker"]] % 2 == 0 else other_g
                for t in from_csv
            ]
        else:
            n = (
                config.long_turns
                if is_long
                else int(drng.integers(config.turns[0], config.turns[1] + 1))
            )
            g = "F" if drng.random() < 0.5 else "M"
            genders = []
            for _ in range(n):
                genders.append(g)
                # Mostly alternating, sometimes the same actor goes on.
                if drng.random() < 0.85:
                    g = "M" if g == "F" else "F"
        emotions = emotion_chain(
            genders, IEMOCAP_PRIOR, config.stickiness, drng, config.contagion
        )
        if from_csv is not None and config.csv_labels:
            for j, t in enumerate(from_csv):
                emotions[j] = (
                    map_csv_emotion(t["emotion"], IEMOCAP_CATEGORY)
                    or emotions[j]
                )
        if from_csv is not None:
            texts = [t["text"] for t in from_csv]
        else:
            texts = choose_texts(n, emotions, drng, pool, config.laden_share)
        counters = {"F": 0, "M": 0}
        subdued = _subdued_flags(config.seed, i, n, config.subdued_share)
        utts = []
        for j in range(n):
            g = genders[j]
            spk = speakers[f"Ses{session:02d}{g}"]
            disagree = drng.random() < config.p_disagree
            label = "xxx" if disagree else emotions[j]
            scale = config.intensity * (0.5 if disagree else 1.0)
            scale *= SUBDUED_INTENSITY if subdued[j] else 1.0
            utts.append(
                PlannedUtterance(
                    utt_id=f"{name}_{g}{counters[g]:03d}",
                    dialogue_id=name,
                    speaker=spk.speaker_id,
                    text=texts[j],
                    emotion=emotions[j],
                    label=label,
                    prosody=spk.prosody(
                        emotions[j], drng, scale, config.jitter
                    ),
                    snr_db=float(drng.uniform(*config.snr_db)),
                    noise_seed=int(drng.integers(2**31)),
                    gap=float(
                        drng.uniform(0.25, 1.2)
                        if j == 0 or genders[j - 1] != g
                        else drng.uniform(0.3, 0.8)
                    ),
                    subdued=bool(subdued[j]),
                )
            )
            counters[g] += 1
        dialogues.append(
            PlannedDialogue(
                name, f"Session{session}", utts, float(drng.uniform(1.5, 6.0))
            )
        )
    return speakers, dialogues


def plan_meld(config=None):
    """Plans a MELD-style corpus: a cast of speakers and multi-party scenes.

    Arguments
    ---------
    config : MeldConfig, optional
        What to generate (default: ``MeldConfig()``).

    Returns
    -------
    tuple
        (dict speaker name → SpeakerVoice, list of PlannedDialogue whose
        ``group`` is the split).

    Example
    -------
    >>> cast, dialogues = plan_meld(MeldConfig(n_dialogues=(2, 1, 1), seed=0))
    >>> [d.group for d in dialogues]
    ['train', 'train', 'dev', 'test']
    >>> dialogues[2].utterances[0].utt_id
    'dia0_utt0'
    """
    config = MeldConfig() if config is None else config
    rng = np.random.default_rng([config.seed, 7])
    pool = neutral_sentences()
    csv_dialogues = _csv_dialogues(config.text_csv)
    cast = _meld_cast(rng)
    names = list(cast)

    splits = (
        ["train"] * config.n_dialogues[0]
        + ["dev"] * config.n_dialogues[1]
        + ["test"] * (config.n_dialogues[2] + config.long_dialogues)
    )
    counters = dict.fromkeys(MELD_SPLIT_DIRS, 0)
    dialogues = []
    for i, split in enumerate(splits):
        is_long = split == "test" and counters["test"] >= config.n_dialogues[2]
        d = counters[split]
        counters[split] += 1
        drng = np.random.default_rng([config.seed, 2, i])
        from_csv = None
        if csv_dialogues is not None:
            from_csv = csv_turns(
                csv_dialogues, i, config.long_turns if is_long else None
            )
            n = len(from_csv)
            roles = {}
            for t in from_csv:
                roles.setdefault(t["speaker"], len(roles))
            perm = drng.permutation(len(names))
            who = [
                names[perm[roles[t["speaker"]] % len(names)]] for t in from_csv
            ]
        else:
            n = (
                config.long_turns
                if is_long
                else int(drng.integers(config.turns[0], config.turns[1] + 1))
            )
            k = int(
                drng.integers(
                    config.participants[0], config.participants[1] + 1
                )
            )
            present = [names[j] for j in drng.permutation(len(names))[:k]]
            who, cur = [], present[0]
            for _ in range(n):
                who.append(cur)
                if drng.random() < 0.85:
                    others = [p for p in present if p != cur]
                    cur = others[int(drng.integers(len(others)))]
        emotions = emotion_chain(
            who, MELD_PRIOR, config.stickiness, drng, config.contagion
        )
        if from_csv is not None and config.csv_labels:
            for j, t in enumerate(from_csv):
                emotions[j] = (
                    map_csv_emotion(t["emotion"], MELD_PRIOR) or emotions[j]
                )
        if from_csv is not None:
            texts = [t["text"] for t in from_csv]
        else:
            texts = choose_texts(n, emotions, drng, pool, config.laden_share)
        subdued = _subdued_flags(config.seed, i, n, config.subdued_share)
        utts = []
        for j in range(n):
            spk = cast[who[j]]
            scale = config.intensity * (
                SUBDUED_INTENSITY if subdued[j] else 1.0
            )
            utts.append(
                PlannedUtterance(
                    utt_id=f"dia{d}_utt{j}",
                    dialogue_id=f"dia{d}",
                    speaker=spk.speaker_id,
                    text=texts[j],
                    emotion=emotions[j],
                    label=emotions[j],
                    prosody=spk.prosody(
                        emotions[j], drng, scale, config.jitter
                    ),
                    snr_db=float(drng.uniform(*config.snr_db)),
                    noise_seed=int(drng.integers(2**31)),
                    gap=float(drng.uniform(0.2, 1.5)),
                    subdued=bool(subdued[j]),
                )
            )
        info = {
            "season": int(drng.integers(1, 11)),
            "episode": int(drng.integers(1, 25)),
        }
        dialogues.append(
            PlannedDialogue(
                f"dia{d}", split, utts, float(drng.uniform(30, 1200)), info
            )
        )
    return cast, dialogues
