"""BERT data: mini shards from Python's documentation, in MLPerf's HDF5 format, read back."""

from __future__ import annotations

import h5py
import numpy as np
import pytest

from mlpace.benchmarks.bert import data as bert_data
from mlpace.errors import MlpaceError


@pytest.fixture(scope="module")
def shards(tmp_path_factory):
    root = tmp_path_factory.mktemp("bert")
    bert_data.generate_mini(root, vocab_size=512, seq_len=48, max_pred=8, dupe_factor=1, train_shards=2)
    return root


def test_shards_have_mlperfs_fields_and_types(shards):
    paths = bert_data.shard_paths(shards / "training")
    assert [p.name for p in paths] == ["part_00000_of_00002.hdf5", "part_00001_of_00002.hdf5"]
    with h5py.File(paths[0]) as f:
        assert sorted(f) == sorted(bert_data.FIELDS)
        assert f["input_ids"].dtype == np.int32 and f["input_mask"].dtype == np.int8
        assert f["input_ids"].shape[1] == 48 and f["masked_lm_ids"].shape[1] == 8


def test_examples_are_real_text_with_bert_structure(shards):
    vocab = bert_data.read_vocab(shards / "vocab.txt")
    words = {i: t for t, i in vocab.items()}
    train = bert_data.read_shards(bert_data.shard_paths(shards / "training"))
    assert len(train) > 1000 and {0, 1} == set(np.unique(train.next_sentence_labels))
    for i in (0, 5, len(train) - 1):
        ids, mask = train.input_ids[i], train.input_mask[i]
        n = int(mask.sum())
        assert ids[0] == vocab["[CLS]"] and ids[n - 1] == vocab["[SEP]"]
        assert (ids[:n] == vocab["[SEP]"]).sum() == 2 and (ids[n:] == 0).all()
        used = train.masked_lm_ids[i] != 0
        positions = train.masked_lm_positions[i][used]
        assert used.any() and (positions > 0).all() and (positions < n).all()
        # The labels are the original tokens: putting them back leaves no [MASK] behind.
        restored = ids.copy()
        restored[positions] = train.masked_lm_ids[i][used]
        assert vocab["[MASK]"] not in restored[:n]
        assert all(words[t] not in bert_data.SPECIAL for t in train.masked_lm_ids[i][used])
    assert {"the", "of", "is"} <= set(vocab)


def test_evaluation_topics_are_not_trained_on():
    topics = bert_data.python_topics()
    held_out = [n for n in topics if bert_data.is_eval_topic(n, 0.1)]
    assert 0 < len(held_out) < len(topics) // 4
    assert bert_data.is_eval_topic(held_out[0], 0.1)       # stable: a function of the name


def test_bad_shards_give_one_clear_error(tmp_path):
    with h5py.File(tmp_path / "x.hdf5", "w") as f:
        f.create_dataset("input_ids", data=np.zeros((2, 4), np.int32))
    with pytest.raises(MlpaceError, match="not an MLPerf BERT shard: no input_mask"):
        bert_data.read_shards([tmp_path / "x.hdf5"])
    (tmp_path / "y.hdf5").write_text("not hdf5")
    with pytest.raises(MlpaceError, match="cannot read HDF5 shard"):
        bert_data.read_shards([tmp_path / "y.hdf5"])
    with pytest.raises(MlpaceError, match="no .hdf5 shards"):
        bert_data.shard_paths(tmp_path / "empty")


def test_mini_data_is_the_same_in_every_process(tmp_path):
    """The default vocabulary ships with mlpace (the WordPiece trainer's ties fall in hash
    order, which changes between processes), so a fresh process writes identical shards."""
    import subprocess
    import sys
    script = ("import sys; from pathlib import Path; from mlpace.benchmarks.bert import data; "
              "data.generate_mini(Path(sys.argv[1]), dupe_factor=1, train_shards=1)")
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        subprocess.run([sys.executable, "-c", script, str(tmp_path / name)], check=True)
    a, b = tmp_path / "a", tmp_path / "b"
    assert (a / "vocab.txt").read_bytes() == (b / "vocab.txt").read_bytes()
    assert (a / "vocab.txt").read_bytes() == bert_data.SHIPPED_VOCAB.read_bytes()
    for part in ("training", "eval"):
        da = bert_data.read_shards(bert_data.shard_paths(a / part))
        db = bert_data.read_shards(bert_data.shard_paths(b / part))
        for field in bert_data.FIELDS:
            assert np.array_equal(getattr(da, field), getattr(db, field)), (part, field)
