"""What the synthetic speakers say: sentence pools and dialogue CSVs.

Texts are emotion-neutral by default, so the words do not give the label
away; a share of emotion-laden sentences can be asked for
(``laden_share``). A CSV with MELD's columns can supply real texts and
turn-taking instead (``text_csv``).

Authors
 * speechbrain_dpm developers 2026
"""

import csv

from speechbrain_dpm.synth.corpora import MELD_TO_IEMOCAP

_FIXED_SENTENCES = (
    "Excuse me.",
    "Can you hand me that?",
    "I left it on the counter.",
    "We should leave at six.",
    "The bus comes every twenty minutes.",
    "Did you see the note on the door?",
    "It is on the second shelf.",
    "I will call them tomorrow.",
    "The meeting moved to Thursday.",
    "She said it was in the car.",
    "Let me check the schedule.",
    "I think it was the other one.",
    "They closed the store early today.",
    "We need two more chairs.",
    "The printer is in the hallway.",
    "Is this the right address?",
    "I have not read it yet.",
    "The train was on time.",
    "You can park behind the building.",
    "It takes about an hour.",
    "We talked about it last week.",
    "Do you want the window open?",
    "My phone is charging.",
    "I wrote it down somewhere.",
    "What time is it now?",
    "It is the third door on the left.",
    "We can take the stairs.",
    "The package arrived on Monday.",
    "He is still on the phone.",
    "Turn left at the corner.",
    "You said the red one.",
    "It was raining in the morning.",
)
_SUBJECTS = ("I", "We", "She", "He", "They", "My sister", "The manager")
_VERBS = (
    ("moved", "move"),
    ("checked", "check"),
    ("painted", "paint"),
    ("counted", "count"),
    ("carried", "carry"),
    ("opened", "open"),
    ("cleaned", "clean"),
    ("measured", "measure"),
)
_OBJECTS = (
    "the boxes",
    "the chairs",
    "the windows",
    "the papers",
    "the blue folder",
    "the kitchen table",
    "the old car",
    "the garden fence",
)
_WHENS = (
    "this morning",
    "on Tuesday",
    "last week",
    "after lunch",
    "yesterday",
    "before dinner",
)
_PLACES = (
    "next to the door",
    "in the car",
    "on the second floor",
    "behind the desk",
    "in the hallway",
    "near the window",
)
# Only used for the optional share of emotion-laden texts.
EMOTION_SENTENCES = {
    "neu": ("Okay.", "I see.", "That makes sense."),
    "hap": (
        "That is wonderful news!",
        "I am so happy for you.",
        "I love it, thank you!",
    ),
    "exc": (
        "I cannot wait, this is amazing!",
        "We actually did it!",
        "Oh wow, that is fantastic!",
    ),
    "sad": (
        "I miss her so much.",
        "Nothing seems to work out anymore.",
        "I feel so alone lately.",
    ),
    "ang": (
        "This is completely unacceptable!",
        "Stop lying to me!",
        "I am sick of this!",
    ),
    "fru": (
        "Why does this keep happening?",
        "I have asked you three times already.",
        "This is going nowhere.",
    ),
    "sur": ("Wait, really?", "I did not expect that at all!"),
    "fea": ("I think someone is following us.", "What was that noise?"),
    "dis": ("That is absolutely disgusting.", "Ugh, it smells terrible."),
    "oth": ("Well, whatever.",),
}


def neutral_sentences():
    """The pool of emotion-neutral conversational sentences.

    A fixed list plus combinations of everyday subjects, actions, objects and
    times, all without emotional words, so that text alone carries no label.

    Returns
    -------
    list of str
        Sentences in a fixed order.

    Example
    -------
    >>> pool = neutral_sentences()
    >>> len(pool) > 300 and "Excuse me." in pool
    True
    """
    pool = list(_FIXED_SENTENCES)
    for subj in _SUBJECTS:
        for past, _ in _VERBS:
            for obj in _OBJECTS:
                for when in _WHENS:
                    pool.append(f"{subj} {past} {obj} {when}.")
    for _, base in _VERBS:
        for obj in _OBJECTS:
            for when in _WHENS:
                pool.append(f"Did you {base} {obj} {when}?")
    for obj in _OBJECTS:
        for place in _PLACES:
            pool.append(f"I left {obj} {place}.")
    return pool


def read_dialogue_csv(path):
    """Reads dialogues from a CSV with MELD's columns.

    Arguments
    ---------
    path : str or Path
        CSV with at least ``Utterance``, ``Speaker`` and ``Dialogue_ID``
        (``Utterance_ID`` orders the turns, ``Emotion`` is kept if present).

    Returns
    -------
    list of list of dict
        Dialogues in file order; each turn has ``text``, ``speaker`` and
        ``emotion`` (``None`` if the column is missing).

    Example
    -------
    >>> import tempfile
    >>> from pathlib import Path
    >>> p = Path(tempfile.mkdtemp()) / "d.csv"
    >>> _ = p.write_text(
    ...     "Utterance,Speaker,Emotion,Dialogue_ID,Utterance_ID\\n"
    ...     "Hi.,Ann,joy,0,0\\nHello.,Bob,neutral,0,1\\n"
    ... )
    >>> read_dialogue_csv(p)[0][1]["text"]
    'Hello.'
    """
    dialogues = {}
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        for i, row in enumerate(csv.DictReader(f)):
            text = " ".join(str(row.get("Utterance") or "").split())
            if not text:
                continue
            key = row.get("Dialogue_ID", "0")
            order = row.get("Utterance_ID")
            dialogues.setdefault(key, []).append(
                (
                    int(order) if order and order.isdigit() else i,
                    {
                        "text": text,
                        "speaker": row.get("Speaker") or "A",
                        "emotion": (row.get("Emotion") or None),
                    },
                )
            )
    return [
        [t for _, t in sorted(d, key=lambda x: x[0])]
        for d in dialogues.values()
    ]


def choose_texts(n, emotions, rng, pool, laden_share):
    """Draws one text per turn; a share is emotion-laden (matching it).

    Arguments
    ---------
    n : int
        Number of turns.
    emotions : list of str
        Emotion of each turn (IEMOCAP or MELD labels).
    rng : numpy.random.Generator
        Source of the draws.
    pool : list of str
        Emotion-neutral sentences (:func:`neutral_sentences`).
    laden_share : float
        Probability that a turn says one of its emotion's sentences.

    Returns
    -------
    list of str
        ``n`` texts.

    Example
    -------
    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> texts = choose_texts(2, ["ang", "neu"], rng, ["Excuse me."], 1.0)
    >>> texts[0] in EMOTION_SENTENCES["ang"]
    True
    >>> choose_texts(1, ["ang"], rng, ["Excuse me."], 0.0)
    ['Excuse me.']
    """
    texts = []
    for emo in emotions:
        laden = EMOTION_SENTENCES.get(MELD_TO_IEMOCAP.get(emo, emo))
        if laden and laden_share > 0 and rng.random() < laden_share:
            texts.append(laden[int(rng.integers(len(laden)))])
        else:
            texts.append(pool[int(rng.integers(len(pool)))])
    return texts[:n]


def csv_turns(csv_dialogues, index, n_turns):
    """The turns of one planned dialogue, taken from CSV dialogues.

    Arguments
    ---------
    csv_dialogues : list of list of dict
        Dialogues from :func:`read_dialogue_csv`.
    index : int
        Index of the planned dialogue (wraps around the CSV's dialogues).
    n_turns : int, optional
        ``None`` takes CSV dialogue ``index`` as it is; a number takes
        consecutive CSV dialogues from ``index`` on until there are
        ``n_turns`` turns (long dialogues).

    Returns
    -------
    list of dict
        The turns.

    Example
    -------
    >>> dialogues = [[{"text": "a"}, {"text": "b"}], [{"text": "c"}]]
    >>> [t["text"] for t in csv_turns(dialogues, 3, None)]
    ['c']
    >>> [t["text"] for t in csv_turns(dialogues, 1, 4)]
    ['c', 'a', 'b', 'c']
    """
    if n_turns is None:
        return csv_dialogues[index % len(csv_dialogues)]
    turns, k = [], index
    while len(turns) < n_turns:
        turns.extend(csv_dialogues[k % len(csv_dialogues)])
        k += 1
    return turns[:n_turns]


def map_csv_emotion(emotion, labels):
    """Maps a CSV's emotion onto a target label set.

    Arguments
    ---------
    emotion : str, optional
        The CSV's ``Emotion`` value (any case; MELD names map to IEMOCAP's).
    labels : collection of str
        The target labels.

    Returns
    -------
    str or None
        The label, or ``None`` if the emotion is missing or does not map.

    Example
    -------
    >>> map_csv_emotion(" Joy", ["neu", "hap"])
    'hap'
    >>> map_csv_emotion("contempt", ["neu", "hap"]) is None
    True
    """
    if emotion is None:
        return None
    emotion = emotion.strip().lower()
    if emotion in labels:
        return emotion
    if emotion in MELD_TO_IEMOCAP and MELD_TO_IEMOCAP[emotion] in labels:
        return MELD_TO_IEMOCAP[emotion]
    return None
