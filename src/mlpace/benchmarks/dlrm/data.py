"""Criteo click logs: the day_N TSV reader and a generator of mini logs in the same format.

The Criteo 1TB click logs are 24 files `day_0` ... `day_23`, one impression per line:

    <label> \t <13 integer features> \t <26 categorical features as 8-digit hex hashes>

Any feature may be empty (missing). MLPerf's DLRM reference prepares them as its
`data_utils.py` does: missing values become 0, negative integers are clipped to 0 and the
integer features are log(x + 1); a categorical hash is taken modulo `max_ind_range` (40M for
the reference) and then renumbered 0..n-1 per feature over all the days used, so that each
feature's embedding table has exactly one row per value that occurs.

The mini data set is written in that format by `generate_mini` from a hidden click model
(`HiddenClickModel`): a click's log-odds are a sum of pairwise dot products between hidden
vectors of categorical values (and of a projection of the integer features), plus smaller
per-value and integer-feature terms. Most of the signal is in the interactions, which is what
DLRM's dot-product interaction layer learns; a model of first-order effects alone stays well
below the mini target (see docs/benchmarks/dlrm.md for the figures).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlpace.errors import MlpaceError

NUM_DENSE = 13
NUM_CATEGORICAL = 26
MINI_VERSION = 1

# Value counts of the 26 mini categorical features: a few large ones, many small ones,
# in the positions where Criteo has them (features 0, 9, 19, 20 and 21 are the large ones).
MINI_CARDINALITIES = (3000, 50, 800, 20, 400, 3, 150, 60, 12, 2000, 1000, 300, 4,
                      100, 500, 30, 2, 80, 8, 1500, 1200, 1800, 250, 200, 25, 10)


@dataclass
class ClickLogs:
    """Parsed click logs: labels (n,), log-transformed integer features (n, 13), hashes (n, 26)."""
    labels: np.ndarray      # float32, 0 or 1
    dense: np.ndarray       # float32, log(x + 1)
    categorical: np.ndarray  # int64, hash modulo max_ind_range; renumbered by encode_categorical

    def __len__(self) -> int:
        return len(self.labels)


def day_files(root: Path, days: tuple[int, ...]) -> list[Path]:
    paths = [Path(root) / f"day_{d}" for d in days]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        raise MlpaceError(f"Criteo click logs missing in {root}: {', '.join(missing)}")
    return paths


def read_day(path: Path, max_ind_range: int = 0, fraction: float = 1.0) -> ClickLogs:
    """Parse one day_N file (or its first `fraction` of lines, as MLPerf's eval half of day 23)."""
    try:
        text = Path(path).read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as err:
        raise MlpaceError(f"cannot read Criteo click log {path}: {err}") from None
    n_fields = 1 + NUM_DENSE + NUM_CATEGORICAL
    lines = text.count("\n")
    if fraction < 1.0:
        lines = int(lines * fraction)
        text = "".join(text.splitlines(keepends=True)[:lines])
    # One split of the whole file is much faster than a split per line.
    fields = text.replace("\n", "\t").split("\t")[:lines * n_fields]
    if len(fields) != lines * n_fields or (lines and text.count("\t") != lines * (n_fields - 1)):
        bad = next(i for i, line in enumerate(text.splitlines()) if line.count("\t") != n_fields - 1)
        raise MlpaceError(f"{path}:{bad + 1}: expected {n_fields} tab-separated fields "
                          f"(label, {NUM_DENSE} integers, {NUM_CATEGORICAL} hex hashes)")
    table = np.array(fields, dtype="<U8").reshape(lines, n_fields)
    try:
        labels = table[:, 0].astype(np.float32)
        dense = _integers(table[:, 1:1 + NUM_DENSE])
        cats = _hex_values(table[:, 1 + NUM_DENSE:])
    except ValueError as err:
        raise MlpaceError(f"{path}: not a Criteo click log ({err})") from None
    if max_ind_range > 0:
        cats %= max_ind_range
    dense = np.log1p(np.maximum(dense, 0)).astype(np.float32)
    return ClickLogs(labels, dense, cats)


def _integers(text: np.ndarray) -> np.ndarray:
    """Integer features; a missing (empty) value is 0."""
    return np.where(text == "", "0", text).astype(np.int64)


_HEX_DIGIT = np.full(128, -1, np.int64)
_HEX_DIGIT[48:58] = np.arange(10)          # 0-9
_HEX_DIGIT[97:103] = np.arange(10, 16)     # a-f
_HEX_DIGIT[65:71] = np.arange(10, 16)      # A-F


def _hex_values(text: np.ndarray) -> np.ndarray:
    """Vectorised int(x, 16) of hex strings of up to 8 digits; a missing (empty) value is 0."""
    codes = np.minimum(text.view(np.uint32).reshape(*text.shape, 8), 127)
    digits = _HEX_DIGIT[codes]                 # code 0 (past the string's end) maps to -1
    value = np.zeros(text.shape, np.int64)
    ended = np.zeros(text.shape, bool)
    for position in range(8):                  # Horner's rule, digit by digit
        d = digits[..., position]
        ended |= codes[..., position] == 0
        if ((d < 0) & ~ended).any():
            raise ValueError("a categorical feature is not a hex hash")
        value = np.where(ended, value, value * 16 + d)
    return value


def read_days(paths: list[Path], max_ind_range: int = 0) -> ClickLogs:
    parts = [read_day(p, max_ind_range) for p in paths]
    return ClickLogs(*(np.concatenate([getattr(p, f) for p in parts])
                       for f in ("labels", "dense", "categorical")))


def encode_categorical(*logs: ClickLogs) -> list[int]:
    """Renumber each feature's values 0..n-1 over all `logs` (in place); returns the n's."""
    sizes = []
    for j in range(NUM_CATEGORICAL):
        values, inverse = np.unique(np.concatenate([log.categorical[:, j] for log in logs]),
                                    return_inverse=True)
        start = 0
        for log in logs:
            log.categorical[:, j] = inverse[start:start + len(log)]
            start += len(log)
        sizes.append(max(1, len(values)))
    return sizes


# ------------------------------------------------------------------------------------------
# Mini data: a hidden click model, written as day_N files
# ------------------------------------------------------------------------------------------

class HiddenClickModel:
    """The ground truth behind the mini click logs (fixed by its seed)."""

    LATENT = 4             # size of the hidden vectors
    PAIRS = 14             # interacting pairs of categorical features
    INFORMATIVE = 18       # categorical features that matter at all; the rest are noise

    def __init__(self, seed: int, cardinalities=MINI_CARDINALITIES):
        rng = np.random.default_rng(seed)
        self.cardinalities = cardinalities
        k = self.LATENT
        # Zipf-like popularity of each feature's values, and their hashes as Criteo writes them.
        self.popularity = [(1.0 / np.arange(1, n + 1) ** 1.05) for n in cardinalities]
        self.popularity = [p / p.sum() for p in self.popularity]
        self.hashes = [rng.choice(2 ** 32, size=n, replace=False) for n in cardinalities]
        self.missing_rate = rng.uniform(0.0, 0.3, NUM_CATEGORICAL) * (rng.random(NUM_CATEGORICAL) < 0.4)
        self.vectors = [rng.normal(0, 1, (n, k)) for n in cardinalities]
        self.bias = [rng.normal(0, 0.25, n) for n in cardinalities]
        informative = rng.choice(NUM_CATEGORICAL, self.INFORMATIVE, replace=False)
        pairs = set()
        while len(pairs) < self.PAIRS:
            i, j = sorted(rng.choice(informative, 2, replace=False))
            pairs.add((int(i), int(j)))
        self.pairs = sorted(pairs)
        self.informative = informative
        self.dense_partners = rng.choice(informative, 3, replace=False)  # interact with dense
        self.dense_mu = rng.uniform(0.5, 4.0, NUM_DENSE)
        self.dense_sigma = rng.uniform(0.5, 1.5, NUM_DENSE)
        self.dense_projection = rng.normal(0, 1 / np.sqrt(NUM_DENSE), (NUM_DENSE, k))
        self.dense_weights = rng.normal(0, 0.15, NUM_DENSE)
        self.offset = -1.6

    def sample(self, rng: np.random.Generator, n: int):
        """n impressions: (labels, integer features with -1 = missing, value ranks with -1 = missing)."""
        ranks = np.stack([rng.choice(len(p), size=n, p=p) for p in self.popularity], axis=1)
        missing = rng.random((n, NUM_CATEGORICAL)) < self.missing_rate
        z = rng.normal(self.dense_mu, self.dense_sigma, (n, NUM_DENSE))
        dense = np.floor(np.expm1(np.maximum(z, 0))).astype(np.int64)
        dense_missing = rng.random((n, NUM_DENSE)) < 0.1
        logit = self.logit(ranks, missing, z)
        labels = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
        return labels, np.where(dense_missing, -1, dense), np.where(missing, -1, ranks)

    def logit(self, ranks: np.ndarray, missing: np.ndarray, z: np.ndarray) -> np.ndarray:
        k = self.LATENT
        vec = [np.where(missing[:, [j]], 0.0, self.vectors[j][ranks[:, j]]) for j in range(NUM_CATEGORICAL)]
        logit = np.full(len(ranks), self.offset)
        for j in self.informative:
            logit += np.where(missing[:, j], 0.0, self.bias[j][ranks[:, j]])
        for i, j in self.pairs:
            logit += 0.55 * (vec[i] * vec[j]).sum(1) / np.sqrt(k)
        zs = (z - self.dense_mu) / self.dense_sigma
        dense_vec = zs @ self.dense_projection
        for j in self.dense_partners:
            logit += 0.5 * (dense_vec * vec[j]).sum(1)
        logit += zs @ self.dense_weights
        return logit


def write_day(path: Path, model: HiddenClickModel, labels, dense, ranks) -> None:
    hexes = [np.array([f"{h:08x}" for h in hashes] + [""]) for hashes in model.hashes]
    dense_text = np.where(dense < 0, "", dense.astype(str))
    cat_text = [hexes[j][ranks[:, j]] for j in range(NUM_CATEGORICAL)]  # -1 picks the "" entry
    with open(path, "w", encoding="ascii", newline="\n") as f:
        for i in range(len(labels)):
            f.write("\t".join([str(labels[i]), *dense_text[i], *(c[i] for c in cat_text)]) + "\n")


def generate_mini(root: Path, train_days: int = 2, rows_per_day: int = 100_000,
                  eval_rows: int = 50_000, seed: int = 2021) -> None:
    """day_0 .. day_{train_days-1} for training and day_{train_days} for evaluation."""
    model = HiddenClickModel(seed)
    for day in range(train_days + 1):
        rng = np.random.default_rng([seed, day])
        n = rows_per_day if day < train_days else eval_rows
        write_day(Path(root) / f"day_{day}", model, *model.sample(rng, n))


def tiny_config(scale: str, root: Path) -> dict:
    """`mlpace validate`'s few steps: small generated click logs; for the reference scale, in
    the Criteo day_N layout (days 0 and 1 standing in for day_0..22 and day_23)."""
    if scale == "mini":
        return {"mini_rows_per_day": 2000, "mini_eval_rows": 500}
    folder = Path(root) / "criteo"
    folder.mkdir(parents=True, exist_ok=True)
    generate_mini(folder, train_days=1, rows_per_day=600, eval_rows=200, seed=5)
    return {"data_path": str(folder), "train_days": "0", "eval_day": 1, "batch_size": 128}
