"""BERT pre-training data: MLPerf's HDF5 shards, and a generator of mini shards from real text.

MLPerf's BERT data (Wikipedia 2020/01/01, `create_pretraining_data.py` then its HDF5
conversion) is a folder of shards `part_XXXXX_of_YYYYY.hdf5` plus one evaluation file, each
holding equally long arrays, one row per pre-training example:

    input_ids            (n, seq_len)   int32  [CLS] A [SEP] B [SEP], padded with 0 ([PAD])
    input_mask           (n, seq_len)   int8   1 on real tokens
    segment_ids          (n, seq_len)   int8   0 for [CLS] A [SEP], 1 for B [SEP]
    masked_lm_positions  (n, max_pred)  int32  positions of masked tokens, padded with 0
    masked_lm_ids        (n, max_pred)  int32  their original ids, padded with 0
    next_sentence_labels (n,)           int8   0: B follows A, 1: B is random text

The mini data set is written in exactly that format from text that ships with Python itself:
the pydoc help topics (`pydoc_data.topics`, about 470 KB of English reference prose with code).
A WordPiece vocabulary is trained on it with the `tokenizers` library (`vocab.txt`, BERT's
format); examples are made as `create_pretraining_data.py` makes them (15 % of tokens masked:
80 % [MASK], 10 % random, 10 % kept; half of the B segments random; `dupe_factor` differently
masked copies). Topics are split by name into training and evaluation sets, so the
evaluation text is never trained on.
"""

from __future__ import annotations

import re
import shutil
import sys
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError

FIELDS = ("input_ids", "input_mask", "segment_ids", "masked_lm_positions", "masked_lm_ids",
          "next_sentence_labels")
DTYPES = {"input_ids": "i4", "input_mask": "i1", "segment_ids": "i1", "masked_lm_positions": "i4",
          "masked_lm_ids": "i4", "next_sentence_labels": "i1"}
SPECIAL = ("[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]")
MINI_VERSION = 2    # 2: the shipped vocabulary (reproducible data)
MINI_NAME = f"bert-mini-py{sys.version_info[0]}{sys.version_info[1]}"   # the text is Python's


@dataclass
class PretrainingData:
    """Every field of a set of shards, concatenated (numpy arrays)."""
    input_ids: np.ndarray
    input_mask: np.ndarray
    segment_ids: np.ndarray
    masked_lm_positions: np.ndarray
    masked_lm_ids: np.ndarray
    next_sentence_labels: np.ndarray

    def __len__(self) -> int:
        return len(self.input_ids)


def read_shards(paths: list[Path]) -> PretrainingData:
    """Read and concatenate MLPerf-format HDF5 shards."""
    import h5py
    if not paths:
        raise MlpaceError("no HDF5 shards given")
    parts: dict[str, list[np.ndarray]] = {f: [] for f in FIELDS}
    for path in paths:
        try:
            with h5py.File(path, "r") as f:
                missing = [k for k in FIELDS if k not in f]
                if missing:
                    raise MlpaceError(f"{path} is not an MLPerf BERT shard: no {', '.join(missing)}")
                rows = {k: f[k][()] for k in FIELDS}
        except OSError as err:
            raise MlpaceError(f"cannot read HDF5 shard {path}: {err}") from None
        if len({len(v) for v in rows.values()}) != 1:
            raise MlpaceError(f"{path}: its fields have different numbers of rows")
        for k in FIELDS:
            parts[k].append(rows[k])
    try:
        return PretrainingData(**{k: np.concatenate(v) for k, v in parts.items()})
    except ValueError:
        raise MlpaceError("the shards have different sequence lengths or prediction counts") from None


def shard_paths(folder: Path) -> list[Path]:
    paths = sorted(Path(folder).glob("*.hdf5"))
    if not paths:
        raise MlpaceError(f"no .hdf5 shards in {folder}")
    return paths


def write_shard(path: Path, data: dict[str, np.ndarray]) -> None:
    import h5py
    with h5py.File(path, "w") as f:
        for k in FIELDS:
            f.create_dataset(k, data=data[k], dtype=DTYPES[k], compression="gzip")


def read_vocab(path: Path) -> dict[str, int]:
    """BERT's vocab.txt: one token per line, the line number is its id."""
    try:
        tokens = Path(path).read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise MlpaceError(f"cannot read the vocabulary {path}: {err.strerror or err}") from None
    return {t: i for i, t in enumerate(tokens)}


# ------------------------------------------------------------------------------------------
# Mini data: WordPiece on Python's own documentation, written as MLPerf shards
# ------------------------------------------------------------------------------------------

def python_topics() -> dict[str, str]:
    import pydoc_data.topics
    return dict(pydoc_data.topics.topics)


def is_eval_topic(name: str, eval_share: float) -> bool:
    """A stable split by name (crc32), so the evaluation topics do not depend on the order."""
    return (zlib.crc32(name.encode()) % 1000) < eval_share * 1000


# The `tokenizers` WordPiece trainer breaks ties between equally frequent merges in hash order,
# which differs from process to process: two trainings on the same text give vocabularies a
# few tokens apart, and with them different shards and models. So the default mini vocabulary
# was trained once (on Python 3.11's topics) and ships with mlpace; other sizes are trained on
# the fly. Regenerate it with `python -m mlpace.benchmarks.bert.data`.
SHIPPED_VOCAB = Path(__file__).with_name("mini_vocab.txt")
SHIPPED_VOCAB_SIZE = 2048


def mini_training_texts(eval_share: float = 0.1) -> tuple[dict[str, str], list[str], list[str]]:
    """(topics, training topic names, evaluation topic names), both sorted."""
    topics = python_topics()
    train_names = sorted(n for n in topics if not is_eval_topic(n, eval_share))
    eval_names = sorted(n for n in topics if is_eval_topic(n, eval_share))
    return topics, train_names, eval_names


def train_wordpiece(texts: list[str], vocab_size: int, folder: Path) -> Path:
    from tokenizers import BertWordPieceTokenizer
    tokenizer = BertWordPieceTokenizer(lowercase=True)
    tokenizer.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2,
                                  special_tokens=list(SPECIAL), show_progress=False)
    tokenizer.save_model(str(folder))           # writes folder/vocab.txt
    return Path(folder) / "vocab.txt"


def _segments(text: str) -> list[str]:
    """Paragraphs of a topic: blank-line separated, whitespace collapsed; headings dropped."""
    out = []
    for para in re.split(r"\n\s*\n", text):
        para = " ".join(para.split())
        if len(para) > 20 and not set(para) <= set("*=-~ "):
            out.append(para)
    return out


def make_examples(documents: list[list[int]], vocab_size: int, seq_len: int, max_pred: int,
                  dupe_factor: int, rng: np.random.Generator, cls: int, sep: int, mask: int,
                  first_word: int) -> dict[str, np.ndarray]:
    """Pre-training examples from tokenised documents, as create_pretraining_data.py makes them."""
    rows: dict[str, list] = {k: [] for k in FIELDS}
    budget = seq_len - 3                                   # [CLS] A [SEP] B [SEP]
    for _ in range(dupe_factor):
        for d, doc in enumerate(documents):
            start = 0
            while start < len(doc) - 8:
                length = int(rng.integers(budget // 2, budget + 1))
                chunk = doc[start:start + length]
                start += length
                split = int(rng.integers(1, max(2, len(chunk) - 1)))
                a = chunk[:split]
                random_next = rng.random() < 0.5 or len(chunk) - split < 2
                if random_next:
                    other = documents[(d + int(rng.integers(1, len(documents)))) % len(documents)]
                    offset = int(rng.integers(0, max(1, len(other) - budget)))
                    b = other[offset:offset + budget - len(a)]
                else:
                    b = chunk[split:]
                _append_example(rows, a, b, random_next, seq_len, max_pred, vocab_size, rng,
                                cls, sep, mask, first_word)
    return {k: np.asarray(v) for k, v in rows.items()}


def _append_example(rows, a, b, random_next, seq_len, max_pred, vocab_size, rng,
                    cls, sep, mask, first_word) -> None:
    tokens = [cls, *a, sep, *b, sep]
    segments = [0] * (len(a) + 2) + [1] * (len(b) + 1)
    candidates = [i for i, t in enumerate(tokens) if t not in (cls, sep)]
    n_pred = min(max_pred, max(1, round(len(tokens) * 0.15)))
    positions = sorted(rng.choice(candidates, size=min(n_pred, len(candidates)), replace=False))
    labels = [tokens[p] for p in positions]
    for p in positions:
        r = rng.random()
        if r < 0.8:
            tokens[p] = mask
        elif r < 0.9:
            tokens[p] = int(rng.integers(first_word, vocab_size))
    pad = seq_len - len(tokens)
    rows["input_ids"].append(tokens + [0] * pad)
    rows["input_mask"].append([1] * len(tokens) + [0] * pad)
    rows["segment_ids"].append(segments + [0] * pad)
    rows["masked_lm_positions"].append(positions + [0] * (max_pred - len(positions)))
    rows["masked_lm_ids"].append(labels + [0] * (max_pred - len(labels)))
    rows["next_sentence_labels"].append(int(random_next))


def generate_mini(root: Path, vocab_size: int = 2048, seq_len: int = 64, max_pred: int = 10,
                  dupe_factor: int = 10, train_shards: int = 4, eval_share: float = 0.1,
                  seed: int = 2021) -> None:
    """root/vocab.txt, root/training/part_*_of_*.hdf5 and root/eval/eval.hdf5."""
    from tokenizers import BertWordPieceTokenizer
    root = Path(root)
    topics, train_names, eval_names = mini_training_texts(eval_share)
    if vocab_size == SHIPPED_VOCAB_SIZE:
        vocab_path = root / "vocab.txt"
        shutil.copyfile(SHIPPED_VOCAB, vocab_path)
    else:
        vocab_path = train_wordpiece([topics[n] for n in train_names], vocab_size, root)
    vocab = read_vocab(vocab_path)
    tokenizer = BertWordPieceTokenizer(str(vocab_path), lowercase=True)
    special = {t: vocab[t] for t in SPECIAL}
    first_word = max(special.values()) + 1

    def tokenised(names: list[str]) -> list[list[int]]:
        docs = []
        for name in names:
            ids = [i for seg in _segments(topics[name])
                   for i in tokenizer.encode(seg, add_special_tokens=False).ids]
            if len(ids) > 16:
                docs.append(ids)
        return docs

    rng = np.random.default_rng(seed)
    common = dict(vocab_size=len(vocab), seq_len=seq_len, max_pred=max_pred, rng=rng,
                  cls=special["[CLS]"], sep=special["[SEP]"], mask=special["[MASK]"],
                  first_word=first_word)
    train = make_examples(tokenised(train_names), dupe_factor=dupe_factor, **common)
    evaluation = make_examples(tokenised(eval_names), dupe_factor=2, **common)
    order = rng.permutation(len(train["input_ids"]))
    (root / "training").mkdir()
    (root / "eval").mkdir()
    for i, part in enumerate(np.array_split(order, train_shards)):
        write_shard(root / "training" / f"part_{i:05d}_of_{train_shards:05d}.hdf5",
                    {k: v[part] for k, v in train.items()})
    write_shard(root / "eval" / "eval.hdf5", evaluation)


if __name__ == "__main__":   # retrain the shipped mini vocabulary (see SHIPPED_VOCAB)
    import tempfile
    with tempfile.TemporaryDirectory() as tmp:
        topics, train_names, _ = mini_training_texts()
        trained = train_wordpiece([topics[n] for n in train_names], SHIPPED_VOCAB_SIZE, Path(tmp))
        shutil.copyfile(trained, SHIPPED_VOCAB)
    print(f"wrote {SHIPPED_VOCAB}")


def tiny_config(scale: str, root: Path) -> dict:
    """`mlpace validate`'s few steps: tiny HDF5 shards in MLPerf's layout, read as real data, by
    a narrow model (at reference scale, the reference recipe with BERT-large's 24 layers)."""
    folder = Path(root) / "bert-shards"
    folder.mkdir(parents=True, exist_ok=True)
    generate_mini(folder, vocab_size=512, seq_len=48, max_pred=8, dupe_factor=1, train_shards=2)
    narrow = {"data_path": str(folder), "hidden": 32, "intermediate": 64, "heads": 2, "batch_size": 16}
    if scale == "mini":
        return {**narrow, "layers": 1, "max_seq_len": 48}
    return {**narrow, "vocab_size": 512}
