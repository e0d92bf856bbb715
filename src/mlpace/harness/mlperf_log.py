"""MLPerf log files written with the official `mlperf_logging.mllog`.

Each run gets its own `mllog.MLLogger` bound to its own file (the package's shared default
logger is a process-wide singleton, which would mix the runs of `--runs 5`). The file handler
flushes every line, so a run killed at any point leaves a readable log, and a log ended by
`close()` after `run_stop` is complete. Only rank 0 of a distributed run writes (`enabled`).
"""

from __future__ import annotations

import logging
import itertools
from pathlib import Path
from typing import Any

from mlperf_logging.mllog import mllog
from mlperf_logging.mllog import constants

_ids = itertools.count()


class MLPerfLog:
    def __init__(self, path: Path | None, enabled: bool = True, echo: bool = False):
        self.enabled = enabled and path is not None
        self._logger = logging.getLogger(f"mlpace.mllog.{next(_ids)}")
        self._logger.propagate = False
        self._logger.setLevel(logging.INFO)
        self._handlers: list[logging.Handler] = []
        if self.enabled:
            handler = logging.FileHandler(path, mode="w", encoding="utf-8")
            self._handlers.append(handler)
            if echo:
                self._handlers.append(logging.StreamHandler())
            for h in self._handlers:
                self._logger.addHandler(h)
        # stack offset 2: report the caller of event()/start()/end(), not this wrapper.
        self._mllog = mllog.MLLogger(logger=self._logger, default_stack_offset=2)

    # `time_ms` lets the harness log the very timestamp it measures with.
    def event(self, key: str, value: Any = None, time_ms: int | None = None, **metadata: Any) -> None:
        if self.enabled:
            self._mllog.event(key=key, value=value, metadata=metadata or None, time_ms=time_ms)

    def start(self, key: str, value: Any = None, time_ms: int | None = None, **metadata: Any) -> None:
        if self.enabled:
            self._mllog.start(key=key, value=value, metadata=metadata or None, time_ms=time_ms)

    def end(self, key: str, value: Any = None, time_ms: int | None = None, **metadata: Any) -> None:
        if self.enabled:
            self._mllog.end(key=key, value=value, metadata=metadata or None, time_ms=time_ms)

    def close(self) -> None:
        for h in self._handlers:
            self._logger.removeHandler(h)
            h.close()
        self._handlers.clear()


__all__ = ["MLPerfLog", "constants"]
