"""bert: extractive question answering on SQuAD v1.1, F1, 99 % and 99.9 % of FP32 (MLPerf v1.1).

MLPerf Inference's bert serves BERT-large fine-tuned on SQuAD v1.1 over the dev set's 10,570
questions, tokenised as Google's `run_squad.py` does: `[CLS] question [SEP] context [SEP]`,
questions cut to 64 tokens, contexts cut into windows of 384 tokens that start every 128
(10,833 features). A sample is one feature (input_ids, input_mask, segment_ids); the SUT
answers with its start and end logits, float32 of shape (seq_len, 2). The accuracy script
(`accuracy-squad.py`) takes, per question and over all of its windows, the 20 best start and
the 20 best end positions, keeps the pairs inside the context with start <= end, at most 30
tokens long and starting in the window where that token has its most context, picks the
highest start + end logit, maps it back to the context's characters and scores the texts with
SQuAD's F1 (`mlpace.inference.squad`).

mini: the training benchmark's BERT-mini (pre-trained on Python's documentation, cached) with a
span head fine-tuned briefly on a generated SQuAD-format training set (`squad.generate`: facts
about made-up people), cached too; served on the generated dev set in SQuAD JSON, windows of
64 tokens (BERT-mini's length) starting every 24. The WordPiece vocabulary is the training
benchmark's (2,048 pieces learnt from Python's documentation), so the names split into many
pieces; the offsets `tokenizers` keeps map every piece back to its characters. `--set squad_*`
keys change the fine-tuning recipe (`SquadConfig`); other keys go to the pre-training config.
reference: a user checkpoint (`--checkpoint`, a `BertForQuestionAnswering` state_dict in
mlpace's layout; its sizes are read from it) with `dev-v1.1.json` and the checkpoint's WordPiece
`vocab.txt` (lower-cased, as MLPerf's uncased BERT-large) under `--data-dir`.
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError
from mlpace.inference.models import BuildOptions
from mlpace.inference.task import InferenceTask

TRAINING_BENCHMARK = "bert"
FINETUNE_VERSION = 4       # bump when the fine-tuning code changes what it produces
MAX_ANSWER_LENGTH = 30     # tokens (accuracy-squad.py's max_answer_length)
N_BEST = 20                # start and end candidates per window (n_best_size)
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")


@dataclass(frozen=True)
class Tokenisation:
    max_seq_length: int
    doc_stride: int
    max_query_length: int


REFERENCE_TOKENS = Tokenisation(max_seq_length=384, doc_stride=128, max_query_length=64)


@dataclass(frozen=True)
class SquadConfig:
    """The mini SQuAD data and fine-tuning recipe (`--set squad_...=`)."""
    squad_train_articles: int = 1500    # four questions each
    squad_dev_articles: int = 100
    squad_max_seq_length: int = 64      # at most the pre-trained model's max_seq_len
    squad_doc_stride: int = 24
    squad_max_query_length: int = 24
    squad_steps: int = 1200
    squad_batch_size: int = 32
    squad_lr: float = 1e-3
    squad_warmup: float = 0.1           # share of the steps
    squad_weight_decay: float = 0.01
    squad_seed: int = 0

    @property
    def tokens(self) -> Tokenisation:
        return Tokenisation(self.squad_max_seq_length, self.squad_doc_stride, self.squad_max_query_length)


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


# ------------------------------------------------------------------------------------------
# Serving
# ------------------------------------------------------------------------------------------

def _bundle(model):
    from mlpace.inference.backends import ModelBundle

    def collate(samples):
        return tuple(np.stack([s[k] for s in samples]).astype(np.int64) for k in range(3))

    def postprocess(outputs, _samples):
        return [np.ascontiguousarray(o, dtype=np.float32) for o in outputs[0]]
    return ModelBundle(model=model, collate=collate, postprocess=postprocess, input_names=INPUT_NAMES)


def _logits(model, features: Features, indices, batch: int = 128) -> dict[int, np.ndarray]:
    """The FP32 model's outputs for some windows (the fine-tuning's own evaluation)."""
    import torch
    outputs = {}
    model.eval()
    with torch.inference_mode():
        for at in range(0, len(indices), batch):
            idx = np.asarray(indices[at:at + batch])
            inputs = [torch.from_numpy(a[idx].astype(np.int64)) for a in
                      (features.input_ids, features.input_mask, features.segment_ids)]
            for i, out in zip(idx, model(*inputs).numpy()):
                outputs[int(i)] = out.ravel()
    return outputs


def split_overrides(overrides: dict) -> tuple[dict, dict]:
    """(pre-training config keys, SquadConfig keys): `squad_*` keys are the fine-tuning's."""
    squad = {k: v for k, v in overrides.items() if k.startswith("squad_")}
    return {k: v for k, v in overrides.items() if k not in squad}, squad


def squad_files(data_dir: Path | None, config: SquadConfig) -> tuple[Path, Path]:
    """The generated train and dev sets (SQuAD v1.1 JSON) in the data cache."""
    from mlpace.harness.datasets import cached_dataset, data_root
    from mlpace.inference import squad

    def generate(folder: Path) -> None:
        squad.generate(folder / "train-v1.1.json", config.squad_train_articles, seed=11)
        squad.generate(folder / "dev-v1.1.json", config.squad_dev_articles, seed=12)
    name = f"squad-mini-{config.squad_train_articles}-{config.squad_dev_articles}"
    root = cached_dataset(data_root(data_dir), name, squad.SQUAD_VERSION, generate)
    return root / "train-v1.1.json", root / "dev-v1.1.json"


def fine_tune(model, train: Features, config: SquadConfig, log=None) -> dict:
    """Train the span head and the encoder on `train`: AdamW, linear warm-up and decay, the mean
    of the start and end cross-entropies (run_squad.py's loss). Returns what happened."""
    import torch

    from mlpace.harness.workload import weight_decay_groups
    torch.manual_seed(config.squad_seed)
    generator = torch.Generator().manual_seed(config.squad_seed)
    optimizer = torch.optim.AdamW(weight_decay_groups(model, config.squad_weight_decay), lr=config.squad_lr)
    warmup = max(1, int(config.squad_warmup * config.squad_steps))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
        (step + 1) / warmup, max(0.0, (config.squad_steps - step) / max(1, config.squad_steps - warmup))))
    tensors = [torch.from_numpy(a.astype(np.int64)) for a in
               (train.input_ids, train.input_mask, train.segment_ids, train.start, train.end)]
    threads = torch.get_num_threads()
    # One thread: the mini model is too small to gain from more, and the weights (so the
    # cached model and its F1) then do not depend on the serving run's --threads.
    torch.set_num_threads(1)
    try:
        return _fine_tune_steps(model, tensors, optimizer, schedule, generator, config, log)
    finally:
        torch.set_num_threads(threads)


def _fine_tune_steps(model, tensors, optimizer, schedule, generator, config: SquadConfig, log) -> dict:
    import torch
    import torch.nn.functional as F

    model.train()
    n = len(tensors[0])
    cpu, order, at, losses = time.process_time(), torch.randperm(n, generator=generator), 0, []
    for step in range(config.squad_steps):
        if at + config.squad_batch_size > len(order):
            order, at = torch.randperm(n, generator=generator), 0
        idx = order[at:at + config.squad_batch_size]
        at += config.squad_batch_size
        ids, mask, segments, start, end = (t[idx] for t in tensors)
        logits = model(ids, mask, segments)
        loss = (F.cross_entropy(logits[..., 0], start) + F.cross_entropy(logits[..., 1], end)) / 2
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        if log and (step + 1) % 200 == 0:
            log(f"fine-tune step {step + 1}/{config.squad_steps}: loss {np.mean(losses[-200:]):.3f}")
    model.eval()
    return {"steps": config.squad_steps, "cpu_seconds": round(time.process_time() - cpu, 1),
            "final_loss": round(float(np.mean(losses[-50:])), 4)}


def _pretrained_cache(options: BuildOptions, overrides: dict):
    from mlpace.inference.models.cache import ModelCache
    return ModelCache("bert-mlm-mini", TRAINING_BENCHMARK, options.data_dir, overrides,
                      None, options.train_epochs)


def _squad_cache(options: BuildOptions, pretrained, config: SquadConfig, train_fn):
    """The fine-tuned weights' cache: keyed on the pre-trained model's key (its training config
    and epochs), the SQuAD data and fine-tuning recipe, and FINETUNE_VERSION."""
    from mlpace.inference.models.cache import ModelCache, _read_meta, models_root

    class SquadCache(ModelCache):
        def _train(self):
            return train_fn(self)

    cache = SquadCache("bert-squad-mini", TRAINING_BENCHMARK, options.data_dir, pretrained.overrides,
                       None, options.train_epochs)
    text = f"{pretrained.key} {config!r} finetune-v{FINETUNE_VERSION}"
    cache.key = f"bert-squad-mini-{hashlib.sha1(text.encode()).hexdigest()[:10]}"
    root = models_root(options.data_dir)
    cache.weights, cache.meta_path = root / f"{cache.key}.pt", root / f"{cache.key}.json"
    cache.meta = _read_meta(cache.meta_path)
    return cache


def _build_mini(options: BuildOptions):
    import torch

    from mlpace.benchmarks.bert.model import BertForPreTraining, BertForQuestionAnswering
    from mlpace.harness.config import apply_overrides
    from mlpace.inference import squad
    from mlpace.inference.models.cache import prepared_workload

    pretrain_overrides, squad_overrides = split_overrides(options.train_overrides)
    config = apply_overrides(SquadConfig(), squad_overrides)
    workload = prepared_workload(TRAINING_BENCHMARK, "mini", options.data_dir, pretrain_overrides)
    cfg = workload.config
    if config.squad_max_seq_length > cfg.max_seq_len:
        raise MlpaceError(f"squad_max_seq_length={config.squad_max_seq_length} is longer than the "
                          f"pre-trained model's max_seq_len={cfg.max_seq_len}")
    tokenizer = load_tokenizer(workload.root / "vocab.txt")
    vocab = tokenizer.get_vocab_size()
    sizes = (vocab, cfg.hidden, cfg.layers, cfg.heads, cfg.intermediate, cfg.max_seq_len)
    train_path, dev_path = squad_files(options.data_dir, config)
    dev_examples = squad.read_examples(dev_path)
    dev = featurize(dev_examples, tokenizer, config.tokens)
    pretrained = _pretrained_cache(options, pretrain_overrides)

    def train(cache):
        encoder = pretrained.load_or_train(lambda: BertForPreTraining(*sizes))
        torch.manual_seed(config.squad_seed)      # the span head's initialisation
        model = BertForQuestionAnswering(*sizes)
        model.load_encoder(encoder.state_dict())
        untrained = f1_of(dev_examples, dev, _logits(model, dev, range(len(dev))))
        train_features = featurize(squad.read_examples(train_path), tokenizer, config.tokens)
        info = fine_tune(model, train_features, config)
        quality = f1_of(dev_examples, dev, _logits(model, dev, range(len(dev))))
        before = pretrained.meta.get("training", {})
        cache.meta["training"] = {
            "status": before.get("status", "success"),      # fine-tuning has no target; pre-training has
            "reason": (f"pre-training: {before.get('reason', 'cached')}; SQuAD fine-tune: {info['steps']} "
                       f"steps, dev F1 {quality:.3f} (untrained head {untrained:.3f})"),
            "quality": quality, "untrained_head_f1": untrained, "train_windows": len(train_features),
            **info, "pretraining": before}
        return model

    if options.checkpoint:     # fine-tuned weights of this size from elsewhere (a copied cache)
        from mlpace.inference.models.cache import ModelCache
        cache = ModelCache("bert-squad-mini", TRAINING_BENCHMARK, options.data_dir, checkpoint=options.checkpoint)
    else:
        cache = _squad_cache(options, pretrained, config, train)
    model = cache.load_or_train(lambda: BertForQuestionAnswering(*sizes))
    return cache, model, dev_examples, dev, 64


def _find(folder: Path, name: str, what: str) -> Path:
    candidates = [folder / name, *sorted(folder.glob(f"*/{name}"))]
    for path in candidates:
        if path.is_file():
            return path
    raise MlpaceError(f"reference bert needs {what} ({name}) in --data-dir {folder}")


def _build_reference(options: BuildOptions):
    import pickle

    import torch

    from mlpace.benchmarks.bert.model import BertForQuestionAnswering
    from mlpace.inference import squad
    from mlpace.inference.models.cache import ModelCache

    if not options.checkpoint:
        raise MlpaceError("reference bert needs --checkpoint (a BERT-large SQuAD state_dict in "
                          "mlpace's BertForQuestionAnswering layout)")
    if not options.data_dir or not Path(options.data_dir).is_dir():
        raise MlpaceError("reference bert needs --data-dir: a folder with SQuAD v1.1 dev-v1.1.json "
                          "and the model's WordPiece vocab.txt")
    data_dir = Path(options.data_dir)
    dev_path = _find(data_dir, "dev-v1.1.json", "the SQuAD v1.1 dev set")
    tokenizer = load_tokenizer(_find(data_dir, "vocab.txt", "the WordPiece vocabulary"))
    if not Path(options.checkpoint).is_file():
        raise MlpaceError(f"checkpoint {options.checkpoint} does not exist")
    try:
        state = torch.load(options.checkpoint, map_location="cpu", weights_only=True)
        state = state.get("model", state)
        vocab, hidden = state["embeddings.word_embeddings.weight"].shape
        max_len = state["embeddings.position_embeddings.weight"].shape[0]
        layers = len({k.split(".")[1] for k in state if k.startswith("layers.")})
        intermediate = state["layers.0.intermediate.weight"].shape[0]
        model = BertForQuestionAnswering(vocab, hidden, layers, max(1, hidden // 64), intermediate, max_len)
        model.load_state_dict(state)
    except (OSError, RuntimeError, KeyError, ValueError, AttributeError, IndexError, TypeError, EOFError,
            pickle.UnpicklingError) as err:
        raise MlpaceError(f"cannot load a BERT SQuAD model from {options.checkpoint}: "
                          f"{str(err).splitlines()[0] if str(err) else type(err).__name__}") from None
    if tokenizer.get_vocab_size() > vocab:
        raise MlpaceError(f"vocab.txt has {tokenizer.get_vocab_size()} tokens, the checkpoint {vocab}")
    if REFERENCE_TOKENS.max_seq_length > max_len:
        raise MlpaceError(f"the checkpoint has {max_len} positions; MLPerf's bert needs 384")
    examples = squad.read_examples(dev_path)
    features = featurize(examples, tokenizer, REFERENCE_TOKENS)
    cache = ModelCache("bert-reference", TRAINING_BENCHMARK, options.data_dir, checkpoint=options.checkpoint)
    return cache, model.eval(), examples, features, 16


def build(options: BuildOptions) -> InferenceTask:
    import torch

    from mlpace.inference.models.cache import serve_bundle

    torch.set_num_threads(max(1, options.threads))
    if options.scale == "reference":
        cache, model, examples, features, max_batch = _build_reference(options)
    else:
        cache, model, examples, features, max_batch = _build_mini(options)
    total = len(features) if options.limit is None else min(options.limit, len(features))

    def score(outputs: dict[int, np.ndarray]) -> float:
        return f1_of(examples, features, outputs)

    task = serve_bundle(options, cache, _bundle(model), name="bert",
                        total=total, load=features.sample, output_dtype="float32", score=score,
                        metric="f1", max_batch=max_batch,
                        extra_scores=lambda outputs: squad_scores(examples, features, outputs))
    task.notes = {**task.notes, "questions": len({int(e) for e in features.example[:total]}),
                  "windows": total}
    return task
