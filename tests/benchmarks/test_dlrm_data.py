"""DLRM data: the Criteo day_N reader on generated click logs, and its errors."""

from __future__ import annotations

import numpy as np
import pytest

from mlpace.benchmarks.dlrm import data as click_data
from mlpace.errors import MlpaceError


@pytest.fixture(scope="module")
def tiny_logs(tmp_path_factory):
    root = tmp_path_factory.mktemp("criteo")
    click_data.generate_mini(root, train_days=2, rows_per_day=600, eval_rows=300, seed=7)
    return root


def _parse_line_by_hand(line: str):
    fields = line.rstrip("\n").split("\t")
    dense = [np.log1p(max(int(x), 0)) if x else 0.0 for x in fields[1:14]]
    cats = [int(x, 16) if x else 0 for x in fields[14:]]
    return float(fields[0]), dense, cats


def test_generated_days_are_criteo_tsv(tiny_logs):
    assert sorted(p.name for p in tiny_logs.iterdir()) == ["day_0", "day_1", "day_2"]
    lines = (tiny_logs / "day_2").read_text().splitlines()
    assert len(lines) == 300
    fields = [line.split("\t") for line in lines]
    assert all(len(f) == 40 for f in fields)
    assert {f[0] for f in fields} == {"0", "1"}
    hashes = [x for f in fields for x in f[14:] if x]
    assert all(len(x) == 8 and int(x, 16) >= 0 for x in hashes)
    assert any(x == "" for f in fields for x in f[1:])       # missing values occur, as in Criteo


def test_reader_matches_a_line_by_line_parse(tiny_logs):
    logs = click_data.read_day(tiny_logs / "day_0")
    lines = (tiny_logs / "day_0").read_text().splitlines()
    assert len(logs) == len(lines) == 600
    for i in (0, 1, 77, 599):
        label, dense, cats = _parse_line_by_hand(lines[i])
        assert logs.labels[i] == label
        np.testing.assert_allclose(logs.dense[i], dense, rtol=1e-6)
        assert logs.categorical[i].tolist() == cats


def test_hex_parser_handles_case_short_and_missing_values():
    text = np.array([["0000000a", "FFFFFFFF", "", "1f", "deadBEEF"]], dtype="<U8")
    assert click_data._hex_values(text).tolist() == [[10, 0xFFFFFFFF, 0, 0x1F, 0xDEADBEEF]]
    with pytest.raises(ValueError):
        click_data._hex_values(np.array([["12g4"]], dtype="<U8"))


def test_modulo_and_renumbering_give_dense_table_ids(tiny_logs):
    train = click_data.read_days(click_data.day_files(tiny_logs, (0, 1)), max_ind_range=1000)
    val = click_data.read_day(tiny_logs / "day_2", max_ind_range=1000, fraction=0.5)
    assert len(train) == 1200 and len(val) == 150
    assert train.categorical.max() < 1000
    sizes = click_data.encode_categorical(train, val)
    for j, size in enumerate(sizes):
        used = np.union1d(train.categorical[:, j], val.categorical[:, j])
        assert used.tolist() == list(range(size))       # every row of the table is used


def test_malformed_logs_give_one_clear_error(tmp_path):
    bad = tmp_path / "day_0"
    bad.write_text("1\t2\t3\n")
    with pytest.raises(MlpaceError, match="day_0:1: expected 40 tab-separated fields"):
        click_data.read_day(bad)
    bad.write_text("x" + "\t1" * 13 + "\tzzzzzzzz" * 26 + "\n")
    with pytest.raises(MlpaceError, match="not a Criteo click log"):
        click_data.read_day(bad)
    with pytest.raises(MlpaceError, match="missing in .*day_5"):
        click_data.day_files(tmp_path, (0, 5))


def test_generator_is_deterministic(tmp_path):
    for name in ("a", "b"):
        (tmp_path / name).mkdir()
        click_data.generate_mini(tmp_path / name, train_days=1, rows_per_day=50, eval_rows=20, seed=3)
    for day in ("day_0", "day_1"):
        assert (tmp_path / "a" / day).read_bytes() == (tmp_path / "b" / day).read_bytes()
