"""What the two real corpora are made of: label sets, priors and names.

The generator imitates IEMOCAP and MELD; this module holds their fixed
vocabulary (emotion labels, how often the generator draws each, IEMOCAP's
category names, MELD's splits, CSV columns and a cast of speaker names), so
that planning and the two layout writers read one definition.

Example
-------
>>> MELD_TO_IEMOCAP["joy"] in IEMOCAP_LABELS
True
>>> abs(sum(MELD_PRIOR.values()) - 1.0) < 1e-9
True

Authors
 * speechbrain_dpm developers 2026
"""

IEMOCAP_LABELS = (
    "neu",
    "hap",
    "sad",
    "ang",
    "exc",
    "fru",
    "sur",
    "fea",
    "dis",
    "oth",
    "xxx",
)
# Mostly the five classes used in the literature, plus some fru / sur so
# that class mapping gets exercised; xxx comes from annotator disagreement.
IEMOCAP_PRIOR = {
    "neu": 0.28,
    "hap": 0.13,
    "exc": 0.13,
    "sad": 0.16,
    "ang": 0.16,
    "fru": 0.10,
    "sur": 0.04,
}
IEMOCAP_CATEGORY = {
    "neu": "Neutral state",
    "hap": "Happiness",
    "sad": "Sadness",
    "ang": "Anger",
    "exc": "Excited",
    "fru": "Frustration",
    "sur": "Surprise",
    "fea": "Fear",
    "dis": "Disgust",
    "oth": "Other",
}

MELD_LABELS = (
    "neutral",
    "joy",
    "sadness",
    "anger",
    "surprise",
    "fear",
    "disgust",
)
MELD_PRIOR = {
    "neutral": 0.40,
    "joy": 0.17,
    "sadness": 0.10,
    "anger": 0.12,
    "surprise": 0.13,
    "fear": 0.04,
    "disgust": 0.04,
}
MELD_TO_IEMOCAP = {
    "neutral": "neu",
    "joy": "hap",
    "sadness": "sad",
    "anger": "ang",
    "surprise": "sur",
    "fear": "fea",
    "disgust": "dis",
}
#: Split → media folder under ``MELD.Raw`` (the order is train, dev, test).
MELD_SPLIT_DIRS = {
    "train": "train/train_splits",
    "dev": "dev/dev_splits_complete",
    "test": "test/output_repeated_splits_test",
}
MELD_COLUMNS = (
    "Sr No.",
    "Utterance",
    "Speaker",
    "Emotion",
    "Sentiment",
    "Dialogue_ID",
    "Utterance_ID",
    "Season",
    "Episode",
    "StartTime",
    "EndTime",
)
#: The synthetic MELD cast: even positions female, odd positions male.
MELD_NAMES = (
    "Avery",
    "Blake",
    "Casey",
    "Drew",
    "Emery",
    "Finley",
    "Harper",
    "Jordan",
)
