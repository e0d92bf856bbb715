"""Writing results for people and programs: atomic files, CSV and JSON of a summary.

Every file is written to a temporary name in the same folder and renamed into place, so an
interrupted run never leaves half a CSV where a good one was.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from mlpace.errors import MlpaceError
from mlpace.submission.summarize import INFERENCE_COLUMNS, SYSTEM_COLUMNS, Summary


def write_atomic(path: str | os.PathLike, text: str) -> Path:
    """Write `text` to `path` via a temporary file and a rename: readers (and a crash) see the
    old file or the new one, never half of one. The one atomic writer of mlpace."""
    path = Path(path)
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as handle:
            handle.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; results are meant to be shared
        os.replace(tmp, path)
    except OSError as err:
        raise MlpaceError(f"cannot write {path}: {err.strerror or err}") from None
    finally:
        if tmp and os.path.exists(tmp):
            os.unlink(tmp)
    return path


def _csv_text(columns: list[str], rows: list[dict]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({c: ("" if row.get(c) is None else row.get(c)) for c in columns})
    return buffer.getvalue()


def training_csv(summary: Summary) -> str:
    """The training table with the official summarizer's columns (scores as full floats)."""
    return _csv_text(SYSTEM_COLUMNS + summary.benchmark_columns(), summary.training_rows)


def inference_csv(summary: Summary) -> str:
    return _csv_text(INFERENCE_COLUMNS, summary.inference_rows)


def write_csv(summary: Summary, path: str | os.PathLike) -> list[Path]:
    """Training table to `path`; inference to `path` too when there is no training, else to
    `<stem>_inference.csv` beside it."""
    path = Path(path)
    written = []
    if summary.training_rows or not summary.inference_rows:
        written.append(write_atomic(path, training_csv(summary)))
    if summary.inference_rows:
        target = path if not summary.training_rows else path.with_name(f"{path.stem}_inference{path.suffix or '.csv'}")
        written.append(write_atomic(target, inference_csv(summary)))
    return written


def write_json(summary: Summary, path: str | os.PathLike) -> Path:
    return write_atomic(path, json.dumps(summary.to_json(), indent=2, default=str) + "\n")
