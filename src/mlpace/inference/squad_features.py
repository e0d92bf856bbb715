"""SQuAD v1.1 for BERT: run_squad.py's windows and accuracy-squad.py's span picking.

MLPerf Inference's bert tokenises the SQuAD dev set as Google's `run_squad.py` does:
`[CLS] question [SEP] context [SEP]`, questions cut to `max_query_length` tokens, contexts cut
into windows of `max_seq_length` tokens that start every `doc_stride`. A sample is one window
(input_ids, input_mask, segment_ids); the model answers with its start and end logits. The
accuracy script (`accuracy-squad.py`) takes, per question and over all of its windows, the 20
best start and the 20 best end positions, keeps the pairs inside the context with start <= end,
at most 30 tokens long and starting in the window where that token has its most context,
picks the highest start + end logit, maps it back to the context's characters and scores the
texts with SQuAD's F1 (`mlpace.inference.squad`).

The offsets `tokenizers` keeps map every WordPiece back to its characters. Both the bert
inference binding (`mlpace.benchmarks.bert.serve`) and the span head's fine-tuning
(`mlpace.training.squad_finetune`) read these features.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError

MAX_ANSWER_LENGTH = 30     # tokens (accuracy-squad.py's max_answer_length)
N_BEST = 20                # start and end candidates per window (n_best_size)


@dataclass(frozen=True)
class Tokenisation:
    max_seq_length: int
    doc_stride: int
    max_query_length: int



# ------------------------------------------------------------------------------------------
# Features: run_squad.py's windows, with the characters of every context token
# ------------------------------------------------------------------------------------------

@dataclass
class Features:
    """One row per window. `char_start`/`char_end` are the context characters of each token
    (-1 on [CLS], the question, [SEP] and padding); `max_context` marks the tokens for which
    this window holds the most context; `start`/`end` are the gold token positions (0, the
    [CLS], when the answer is not inside the window)."""
    example: np.ndarray        # (F,) index into the examples
    input_ids: np.ndarray      # (F, n) int32
    input_mask: np.ndarray     # (F, n) int32
    segment_ids: np.ndarray    # (F, n) int32
    char_start: np.ndarray     # (F, n) int32
    char_end: np.ndarray       # (F, n) int32
    max_context: np.ndarray    # (F, n) bool
    start: np.ndarray          # (F,) int32
    end: np.ndarray            # (F,) int32

    def __len__(self) -> int:
        return len(self.example)

    def sample(self, index: int) -> tuple:
        return self.input_ids[index], self.input_mask[index], self.segment_ids[index]


def load_tokenizer(vocab: Path):
    from tokenizers import BertWordPieceTokenizer
    if not Path(vocab).is_file():
        raise MlpaceError(f"WordPiece vocabulary not found at {vocab}")
    try:
        return BertWordPieceTokenizer(str(vocab), lowercase=True)
    except Exception as err:  # noqa: BLE001 - the tokenizers library's own error types
        raise MlpaceError(f"cannot read the WordPiece vocabulary {vocab}: {err}") from None


def _windows(length: int, room: int, stride: int) -> list[tuple[int, int]]:
    """(start, length) of the context windows, as run_squad.py makes them."""
    spans, start = [], 0
    while start < length:
        size = min(length - start, room)
        spans.append((start, size))
        if start + size == length:
            break
        start += min(size, stride)
    return spans or [(0, 0)]


def _max_context(spans: list[tuple[int, int]], current: int) -> np.ndarray:
    """run_squad.py's _check_is_max_context for every token of window `current`: True where
    this window gives the token its most context (min of left and right context, + 0.01 x the
    window's length; the first window wins a tie)."""
    starts = np.array([start for start, _ in spans])[:, None]
    sizes = np.array([size for _, size in spans])[:, None]
    first, size = spans[current]
    position = np.arange(first, first + size)[None, :]
    inside = (position >= starts) & (position <= starts + sizes - 1)
    score = np.minimum(position - starts, starts + sizes - 1 - position) + 0.01 * sizes
    return np.argmax(np.where(inside, score, -np.inf), axis=0) == current


def featurize(examples: list[dict], tokenizer, tokens: Tokenisation) -> Features:
    """Every example's windows, padded to max_seq_length (ids of [CLS], [SEP], [PAD] from the vocab)."""
    n = tokens.max_seq_length
    cls, sep, pad = (tokenizer.token_to_id(t) for t in ("[CLS]", "[SEP]", "[PAD]"))
    if None in (cls, sep, pad):
        raise MlpaceError("the WordPiece vocabulary lacks [CLS], [SEP] or [PAD]")
    contexts = sorted({ex["context"] for ex in examples})
    encoded = dict(zip(contexts, tokenizer.encode_batch(contexts, add_special_tokens=False)))
    questions = tokenizer.encode_batch([ex["question"] for ex in examples], add_special_tokens=False)
    rows: dict[str, list] = {f.name: [] for f in fields(Features)}
    for e, (ex, question) in enumerate(zip(examples, questions)):
        query = question.ids[:tokens.max_query_length]
        doc = encoded[ex["context"]]
        offsets = np.array(doc.offsets, np.int32).reshape(-1, 2)
        answer = (ex["starts"][0], ex["starts"][0] + len(ex["answers"][0])) if ex["answers"] else None
        room = n - len(query) - 3
        if room < 1:
            raise MlpaceError(f"max_seq_length {n} leaves no room for the context")
        spans = _windows(len(doc.ids), room, tokens.doc_stride)
        for w, (first, size) in enumerate(spans):
            ids = np.full(n, pad, np.int32)
            segment = np.zeros(n, np.int32)
            char_start = np.full(n, -1, np.int32)
            char_end = np.full(n, -1, np.int32)
            max_context = np.zeros(n, bool)
            body = [cls, *query, sep]
            at = len(body)
            ids[:at] = body
            ids[at:at + size] = doc.ids[first:first + size]
            ids[at + size] = sep
            segment[at:at + size + 1] = 1
            char_start[at:at + size] = offsets[first:first + size, 0]
            char_end[at:at + size] = offsets[first:first + size, 1]
            max_context[at:at + size] = _max_context(spans, w)
            mask = np.zeros(n, np.int32)
            mask[:at + size + 1] = 1
            start = end = 0
            if answer is not None and size:
                inside = np.flatnonzero((char_start[at:at + size] < answer[1]) & (char_end[at:at + size] > answer[0]))
                window_covers = offsets[first, 0] <= answer[0] and offsets[first + size - 1, 1] >= answer[1]
                if len(inside) and window_covers:
                    start, end = at + int(inside[0]), at + int(inside[-1])
            for name, value in (("example", e), ("input_ids", ids), ("input_mask", mask),
                                ("segment_ids", segment), ("char_start", char_start),
                                ("char_end", char_end), ("max_context", max_context),
                                ("start", start), ("end", end)):
                rows[name].append(value)
    return Features(**{name: np.asarray(value) for name, value in rows.items()})


# ------------------------------------------------------------------------------------------
# The accuracy script: best valid span per question, its text, SQuAD F1
# ------------------------------------------------------------------------------------------

def best_span(logits: np.ndarray, features: Features, index: int) -> tuple[float, int, int] | None:
    """(start + end logit, start, end) of the best valid span of one window, or None."""
    start_logits, end_logits = logits[:, 0], logits[:, 1]
    k = min(N_BEST, len(start_logits))
    starts = np.argsort(-start_logits, kind="stable")[:k]
    ends = np.argsort(-end_logits, kind="stable")[:k]
    s, e = starts[:, None], ends[None, :]
    context = features.char_start[index] >= 0
    valid = (context[s] & context[e] & features.max_context[index][s] & (e >= s)
             & (e - s + 1 <= MAX_ANSWER_LENGTH))
    if not valid.any():
        return None
    scores = np.where(valid, start_logits[s] + end_logits[e], -np.inf)
    i, j = np.unravel_index(int(np.argmax(scores)), scores.shape)
    return float(scores[i, j]), int(starts[i]), int(ends[j])


def predictions(examples: list[dict], features: Features, outputs: dict[int, np.ndarray]) -> dict[str, str]:
    """The answer text of every question with at least one window in `outputs`."""
    best: dict[int, tuple[float, int, int, int]] = {}
    seen: set[int] = set()
    for index, out in outputs.items():
        if index >= len(features):
            continue
        e = int(features.example[index])
        seen.add(e)
        if out.size != features.input_ids.shape[1] * 2:
            continue                      # an empty (aborted) answer
        found = best_span(np.asarray(out, np.float32).reshape(-1, 2), features, index)
        if found and (e not in best or found[0] > best[e][0]):
            best[e] = (*found, index)
    answers = {}
    for e in seen:
        ex = examples[e]
        if e in best:
            _, s, t, f = best[e]
            answers[ex["id"]] = ex["context"][features.char_start[f, s]:features.char_end[f, t]]
        else:
            answers[ex["id"]] = ""
    return answers


def squad_scores(examples: list[dict], features: Features, outputs: dict[int, np.ndarray]) -> dict:
    """SQuAD {"exact_match", "f1"} (fractions) over the questions that have windows in `outputs`."""
    from mlpace.inference import squad
    answers = predictions(examples, features, outputs)
    scored = [ex for ex in examples if ex["id"] in answers]
    if not scored:
        return {"exact_match": 0.0, "f1": 0.0}
    return {name: value / 100.0 for name, value in squad.evaluate(scored, answers).items()}


def f1_of(examples: list[dict], features: Features, outputs: dict[int, np.ndarray]) -> float:
    """SQuAD F1 (a fraction) over the questions that have windows in `outputs`."""
    return squad_scores(examples, features, outputs)["f1"]


def gold_outputs(features: Features) -> dict[int, np.ndarray]:
    """Logits that point at the gold span of every window holding it (tests, sanity checks)."""
    outputs = {}
    for i in range(len(features)):
        logits = np.full((features.input_ids.shape[1], 2), -10.0, np.float32)
        if features.start[i] > 0:
            logits[features.start[i], 0] = logits[features.end[i], 1] = 10.0
        outputs[i] = logits.ravel()
    return outputs
