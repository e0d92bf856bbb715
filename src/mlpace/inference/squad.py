"""SQuAD v1.1 for the bert inference benchmark: the file format, a generator, the F1 metric.

MLPerf Inference's bert is extractive question answering on SQuAD v1.1 (dev set), scored by
the official `evaluate-v1.1.py` (F1 over normalised answer tokens, max over the gold answers).
The metric below follows that script line by line (it is not published as a package).

The mini data set is written in SQuAD's own JSON format from a hidden table of facts about
made-up people (where and when they were born, what they worked as, where they lived), with
sentences in shuffled order and distractor sentences about other people, so that answering
needs reading the question and the context: the answer is a span of the context.
"""

from __future__ import annotations

import collections
import json
import re
import string
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError

SQUAD_VERSION = 1

_FIRST = ["Alice", "Bruno", "Chiara", "Dmitri", "Elena", "Farid", "Greta", "Hiro", "Ines", "Jonas",
          "Kaya", "Lars", "Mira", "Nikolai", "Olga", "Pavel", "Quinn", "Rosa", "Sven", "Tariq"]
_LAST = ["Abbott", "Berg", "Costa", "Dahl", "Engel", "Fischer", "Garcia", "Horvat", "Ivanova",
         "Jensen", "Keller", "Lund", "Moreau", "Novak", "Ortiz", "Petrov", "Quist", "Rossi"]
_CITIES = ["Paris", "Lima", "Oslo", "Cairo", "Lagos", "Quito", "Seoul", "Dublin", "Vienna", "Lisbon",
           "Nairobi", "Hanoi", "Prague", "Madrid", "Tunis", "Riga", "Bogota", "Manila"]
_JOBS = ["a baker", "a pilot", "a teacher", "a painter", "an engineer", "a nurse", "a sailor",
         "a farmer", "a lawyer", "a chemist", "a carpenter", "an architect"]

# (question template, sentence template, field)
_FACTS = [
    ("Where was {name} born?", "{name} was born in {city}.", "city"),
    ("In which year was {name} born?", "The year {name} was born was {year}.", "year"),
    ("What did {name} work as?", "{name} worked as {job} for many years.", "job"),
    ("Where did {name} live?", "Later {name} lived in {home}.", "home"),
]


def _person(rng: np.random.Generator) -> dict:
    return {"name": f"{rng.choice(_FIRST)} {rng.choice(_LAST)}", "city": str(rng.choice(_CITIES)), "home": str(rng.choice(_CITIES)),
            "year": str(int(rng.integers(1820, 2000))), "job": str(rng.choice(_JOBS))}


def generate(path: Path, articles: int, seed: int) -> Path:
    """Write a SQuAD v1.1 JSON file of `articles` paragraphs (four questions each)."""
    rng = np.random.default_rng(seed)
    data = []
    for a in range(articles):
        person, other = _person(rng), _person(rng)
        while other["name"] == person["name"]:   # the distractor must be someone else
            other = _person(rng)
        sentences = [(tmpl.format(**person), field) for _, tmpl, field in _FACTS]
        sentences += [(_FACTS[k][1].format(**other), None) for k in rng.permutation(len(_FACTS))[:2]]
        order = [sentences[k] for k in rng.permutation(len(sentences))]
        context = " ".join(sentence for sentence, _ in order)
        qas = []
        for q, (question, _, field) in enumerate(_FACTS):
            answer = person[field]
            sentence = next(s for s, f in order if f == field)
            start = context.index(sentence) + sentence.index(answer)
            qas.append({"id": f"mini-{seed}-{a}-{q}", "question": question.format(**person),
                        "answers": [{"text": answer, "answer_start": start}]})
        data.append({"title": person["name"], "paragraphs": [{"context": context, "qas": qas}]})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"version": "1.1", "data": data}))
    return path


def read_examples(path: Path) -> list[dict]:
    """Every question of a SQuAD v1.1 file: id, question, context, answers (texts and starts)."""
    try:
        dataset = json.loads(Path(path).read_text())["data"]
    except (OSError, ValueError, KeyError) as err:
        raise MlpaceError(f"{path} is not a SQuAD v1.1 JSON file: {err}") from None
    examples = []
    for article in dataset:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                examples.append({"id": qa["id"], "question": qa["question"], "context": paragraph["context"],
                                 "answers": [a["text"] for a in qa["answers"]],
                                 "starts": [a["answer_start"] for a in qa["answers"]]})
    if not examples:
        raise MlpaceError(f"{path} holds no questions")
    return examples


# --- the official SQuAD v1.1 metric (evaluate-v1.1.py) -----------------------------------
def normalize_answer(text: str) -> str:
    """Lower case, drop punctuation, articles and extra whitespace."""
    text = "".join(ch for ch in text.lower() if ch not in set(string.punctuation))
    text = re.sub(r"\b(a|an|the)\b", " ", text)
    return " ".join(text.split())


def f1_score(prediction: str, ground_truth: str) -> float:
    pred, gold = normalize_answer(prediction).split(), normalize_answer(ground_truth).split()
    common = collections.Counter(pred) & collections.Counter(gold)
    same = sum(common.values())
    if same == 0:
        return 0.0
    precision, recall = same / len(pred), same / len(gold)
    return 2 * precision * recall / (precision + recall)


def exact_match(prediction: str, ground_truth: str) -> float:
    return float(normalize_answer(prediction) == normalize_answer(ground_truth))


def evaluate(examples: list[dict], predictions: dict[str, str]) -> dict:
    """{"exact_match": %, "f1": %} over every question (a missing prediction scores 0)."""
    f1 = em = 0.0
    for ex in examples:
        if ex["id"] not in predictions:
            continue
        pred = predictions[ex["id"]]
        f1 += max(f1_score(pred, gold) for gold in ex["answers"])
        em += max(exact_match(pred, gold) for gold in ex["answers"])
    n = max(len(examples), 1)
    return {"exact_match": 100.0 * em / n, "f1": 100.0 * f1 / n}
