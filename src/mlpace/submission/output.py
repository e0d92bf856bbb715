"""Writing results for people and programs: atomic files, CSV and JSON of a summary.

Every file is written with `mlpace.io.write_atomic` (a temporary name in the same folder,
renamed into place), so an interrupted run never leaves half a CSV where a good one was.
"""

from __future__ import annotations

import os
from pathlib import Path

from mlpace.io import csv_text, json_text, write_atomic
from mlpace.submission.summarize import INFERENCE_COLUMNS, SYSTEM_COLUMNS, Summary


def training_csv(summary: Summary) -> str:
    """The training table with the official summarizer's columns (scores as full floats)."""
    return csv_text(SYSTEM_COLUMNS + summary.benchmark_columns(), summary.training_rows)


def inference_csv(summary: Summary) -> str:
    return csv_text(INFERENCE_COLUMNS, summary.inference_rows)


def write_summary_csv(summary: Summary, path: str | os.PathLike) -> list[Path]:
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


def write_summary_json(summary: Summary, path: str | os.PathLike) -> Path:
    return write_atomic(path, json_text(summary.to_json()))
