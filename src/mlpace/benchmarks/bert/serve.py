"""bert: extractive question answering on SQuAD v1.1, F1, 99 % and 99.9 % of FP32 (MLPerf v1.1).

MLPerf Inference's bert serves BERT-large fine-tuned on SQuAD v1.1 over the dev set's 10,570
questions in windows of 384 tokens that start every 128, questions cut to 64 tokens (10,833
features). A sample is one window (input_ids, input_mask, segment_ids); the SUT answers with
its start and end logits, float32 of shape (seq_len, 2). The windows and the accuracy script
(`accuracy-squad.py`'s span picking, then SQuAD's F1) are `mlpace.inference.squad_features`.

mini: the training benchmark's BERT-mini (pre-trained on Python's documentation, cached) with a
span head fine-tuned briefly on a generated SQuAD-format training set (`squad.generate`: facts
about made-up people), cached too; served on the generated dev set in SQuAD JSON, windows of
64 tokens (BERT-mini's length) starting every 24. The WordPiece vocabulary is the training
benchmark's (2,048 pieces learnt from Python's documentation), so the names split into many
pieces. `--set squad_*` keys change the fine-tuning recipe (`SquadConfig`); other keys go to
the pre-training config.
reference: a user checkpoint (`--checkpoint`, a `BertForQuestionAnswering` state_dict in
mlpace's layout; its sizes are read from it) with `dev-v1.1.json` and the checkpoint's WordPiece
`vocab.txt` (lower-cased, as MLPerf's uncased BERT-large) under `--data-dir`.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError
from mlpace.inference.models import BuildOptions
from mlpace.inference.squad_features import (Features, Tokenisation, f1_of, featurize,
                                             load_tokenizer, squad_scores)
from mlpace.inference.task import InferenceTask
from mlpace.training.squad_finetune import fine_tune

TRAINING_BENCHMARK = "bert"
FINETUNE_VERSION = 4       # bump when the fine-tuning code changes what it produces
INPUT_NAMES = ("input_ids", "input_mask", "segment_ids")
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


def _pretrained_cache(options: BuildOptions, overrides: dict):
    from mlpace.training.models import ModelCache
    return ModelCache("bert-mlm-mini", TRAINING_BENCHMARK, options.data_dir, overrides,
                      None, options.train_epochs)


def _squad_cache(options: BuildOptions, pretrained, config: SquadConfig, train_fn):
    """The fine-tuned weights' cache: keyed on the pre-trained model's key (its training config
    and epochs), the SQuAD data and fine-tuning recipe, and FINETUNE_VERSION."""
    from mlpace.training.models import ModelCache, _read_meta, models_root

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
    from mlpace.training.models import prepared_workload

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
        from mlpace.training.models import ModelCache
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
    from mlpace.training.models import ModelCache

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
    from mlpace.inference.task import serve_bundle, served_count, start_serving

    start_serving(options, "bert", "a BERT-large SQuAD state_dict in mlpace's BertForQuestionAnswering layout")
    if options.scale == "reference":
        cache, model, examples, features, max_batch = _build_reference(options)
    else:
        cache, model, examples, features, max_batch = _build_mini(options)
    total = served_count(options, len(features))

    def score(outputs: dict[int, np.ndarray]) -> float:
        return f1_of(examples, features, outputs)

    task = serve_bundle(options, cache, _bundle(model), name="bert",
                        total=total, load=features.sample, output_dtype="float32", score=score,
                        metric="f1", max_batch=max_batch,
                        extra_scores=lambda outputs: squad_scores(examples, features, outputs))
    task.notes = {**task.notes, "questions": len({int(e) for e in features.example[:total]}),
                  "windows": total}
    return task
