"""VQA v2 accuracy, reproducing the official evaluation (GT-Vision-Lab/VQA ``vqaEval.py``).

For one question with ten human answers the accuracy is ``min(#humans that gave the answer / 3,
1)`` averaged over the ten leave-one-out subsets of nine answers: for each human answer ``i``,
count the *other* nine that equal the prediction. Normalisation follows the official code
exactly, quirks included:

- every answer, predicted and human: newlines/tabs -> spaces, surrounding spaces stripped;
- only when the human answers are not all identical, both sides are normalised further:
  punctuation handling, then lower-case, number words -> digits (``"two" -> "2"``), articles
  dropped, contractions restored (``"dont" -> "don't"``). A unanimous question is scored by
  exact, case-sensitive comparison (``"Orange"`` against ten ``"orange"`` scores 0).

The punctuation list has ``-`` and ``!`` but not ``:`` or ``'`` (so ``"x-ray"`` matches
``"x ray"`` and ``"3:00"`` does not match ``"3 00"``). The period regex of the official code is
``(?!<=\\d)(\\.)(?!\\d)`` passed ``re.UNICODE`` (32) as the *count* argument; both are kept so that
scores match the official numbers.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

CONTRACTIONS = {
    "aint": "ain't", "arent": "aren't", "cant": "can't", "couldve": "could've",
    "couldnt": "couldn't", "couldn'tve": "couldn't've", "couldnt've": "couldn't've",
    "didnt": "didn't", "doesnt": "doesn't", "dont": "don't", "hadnt": "hadn't",
    "hadnt've": "hadn't've", "hadn'tve": "hadn't've", "hasnt": "hasn't", "havent": "haven't",
    "hed": "he'd", "hed've": "he'd've", "he'dve": "he'd've", "hes": "he's", "howd": "how'd",
    "howll": "how'll", "hows": "how's", "Id've": "I'd've", "I'dve": "I'd've", "Im": "I'm",
    "Ive": "I've", "isnt": "isn't", "itd": "it'd", "itd've": "it'd've", "it'dve": "it'd've",
    "itll": "it'll", "let's": "let's", "maam": "ma'am", "mightnt": "mightn't",
    "mightnt've": "mightn't've", "mightn'tve": "mightn't've", "mightve": "might've",
    "mustnt": "mustn't", "mustve": "must've", "neednt": "needn't", "notve": "not've",
    "oclock": "o'clock", "oughtnt": "oughtn't", "ow's'at": "'ow's'at", "'ows'at": "'ow's'at",
    "'ow'sat": "'ow's'at", "shant": "shan't", "shed've": "she'd've", "she'dve": "she'd've",
    "she's": "she's", "shouldve": "should've", "shouldnt": "shouldn't",
    "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've", "somebody'd": "somebodyd",
    "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've",
    "somebodyll": "somebody'll", "somebodys": "somebody's", "someoned": "someone'd",
    "someoned've": "someone'd've", "someone'dve": "someone'd've", "someonell": "someone'll",
    "someones": "someone's", "somethingd": "something'd", "somethingd've": "something'd've",
    "something'dve": "something'd've", "somethingll": "something'll", "thats": "that's",
    "thered": "there'd", "thered've": "there'd've", "there'dve": "there'd've",
    "therere": "there're", "theres": "there's", "theyd": "they'd", "theyd've": "they'd've",
    "they'dve": "they'd've", "theyll": "they'll", "theyre": "they're", "theyve": "they've",
    "twas": "'twas", "wasnt": "wasn't", "wed've": "we'd've", "we'dve": "we'd've",
    "weve": "we've", "werent": "weren't", "whatll": "what'll", "whatre": "what're",
    "whats": "what's", "whatve": "what've", "whens": "when's", "whered": "where'd",
    "wheres": "where's", "whereve": "where've", "whod": "who'd", "whod've": "who'd've",
    "who'dve": "who'd've", "wholl": "who'll", "whos": "who's", "whove": "who've",
    "whyll": "why'll", "whyre": "why're", "whys": "why's", "wont": "won't",
    "wouldve": "would've", "wouldnt": "wouldn't", "wouldnt've": "wouldn't've",
    "wouldn'tve": "wouldn't've", "yall": "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll",
    "yall'd've": "y'all'd've", "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've",
    "youd": "you'd", "youd've": "you'd've", "you'dve": "you'd've", "youll": "you'll",
    "youre": "you're", "youve": "you've",
}
NUMBER_WORDS = {"none": "0", "zero": "0", "one": "1", "two": "2", "three": "3", "four": "4",
                "five": "5", "six": "6", "seven": "7", "eight": "8", "nine": "9", "ten": "10"}
ARTICLES = {"a", "an", "the"}
PUNCTUATION = [";", "/", "[", "]", '"', "{", "}", "(", ")", "=", "+", "\\", "_", "-", ">", "<",
               "@", "`", ",", "?", "!"]
_PERIOD_STRIP = re.compile(r"(?!<=\d)(\.)(?!\d)")
_COMMA_STRIP = re.compile(r"(\d)(,)(\d)")


def process_punctuation(text: str) -> str:
    """The official ``processPunctuation``: drop or space out punctuation, strip periods."""
    out = text
    for p in PUNCTUATION:
        if (p + " " in text or " " + p in text) or _COMMA_STRIP.search(text) is not None:
            out = out.replace(p, "")
        else:
            out = out.replace(p, " ")
    return _PERIOD_STRIP.sub("", out, count=re.UNICODE)


def process_digit_article(text: str) -> str:
    """The official ``processDigitArticle``: lower-case, number words -> digits, no articles."""
    words = [NUMBER_WORDS.get(w, w) for w in text.lower().split()]
    words = [CONTRACTIONS.get(w, w) for w in words if w not in ARTICLES]
    return " ".join(words)


def clean_whitespace(answer: str) -> str:
    """Newlines and tabs to spaces, surrounding spaces stripped (applied to every answer)."""
    return answer.replace("\n", " ").replace("\t", " ").strip()


def normalize_answer(answer: str) -> str:
    """The full official normalisation (used when the human answers of a question differ)."""
    return process_digit_article(process_punctuation(clean_whitespace(answer)))


def vqa_score(pred: str, answers: Sequence[str]) -> float:
    """VQA accuracy of one prediction against the (usually ten) human answers.

    Args:
        pred: the predicted answer (raw model output).
        answers: the human answers of the question.

    Returns:
        Mean over leave-one-out subsets of ``min(#matching others / 3, 1)``, in ``[0, 1]``.
    """
    gts = [clean_whitespace(a) for a in answers]
    pred = clean_whitespace(pred)
    if len(set(gts)) > 1:
        gts = [normalize_answer(a) for a in gts]
        pred = normalize_answer(pred)
    matches = np.array([a == pred for a in gts], dtype=np.float64)
    others = matches.sum() - matches  # matching answers among the other nine, per subset
    return float(np.minimum(others / 3.0, 1.0).mean())


def vqa_accuracy(pred: Sequence[str], answers: Sequence[Sequence[str]]) -> float:
    """Mean VQA accuracy over questions (official VQA v2 metric, as a fraction).

    Args:
        pred: one predicted answer per question.
        answers: the human answers of each question.
    """
    if len(pred) != len(answers):
        raise ValueError(f"{len(pred)} predictions for {len(answers)} questions")
    if not pred:
        return float("nan")
    return float(np.mean([vqa_score(p, a) for p, a in zip(pred, answers)]))
