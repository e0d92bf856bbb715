"""The query sample library (QSL) and the system under test (SUT) that LoadGen drives.

`SampleLibrary` keeps the samples LoadGen asks for in memory (load/unload callbacks).
`BatchingSUT` answers LoadGen's queries with a pool of worker threads fed by one queue:
a worker takes the first waiting sample, then gathers more for up to `batch_timeout_s` or
until `max_batch` (dynamic batching; Offline fills batches at once, SingleStream uses a batch
of one and no wait). Threads suit PyTorch and ONNX Runtime, which release the GIL inside ops.

Faults never hang LoadGen: when the backend raises, or `abort()` is called (by the watchdog),
every outstanding and every later sample is completed at once with an empty response, so
LoadGen finishes and writes its logs; the first error is kept for the caller to report.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

# A backend turns a list of loaded samples into one numpy array (the response) per sample.
Predict = Callable[[Sequence[object]], Sequence[np.ndarray]]


class SampleLibrary:
    """LoadGen's QSL over `load(index) -> sample`; keeps loaded samples in a dict."""

    def __init__(self, total: int, performance_count: int, load: Callable[[int], object]):
        self.total = int(total)
        self.performance_count = int(min(performance_count, total))
        self._load = load
        self.loaded: dict[int, object] = {}

    def load_samples(self, indices: list[int]) -> None:
        for index in indices:
            if index not in self.loaded:
                self.loaded[index] = self._load(index)

    def unload_samples(self, indices: list[int]) -> None:
        for index in indices:
            self.loaded.pop(index, None)

    def get(self, index: int) -> object:
        try:
            return self.loaded[index]
        except KeyError:   # LoadGen only issues loaded samples; load on a miss rather than fail
            sample = self.loaded[index] = self._load(index)
            return sample

    def construct(self):
        import mlperf_loadgen as lg
        return lg.ConstructQSL(self.total, self.performance_count, self.load_samples, self.unload_samples)


def default_workers() -> int:
    """Worker threads for this machine: one per two cores, at least one, at most four."""
    return max(1, min(4, (os.cpu_count() or 1) // 2))


@dataclass
class BatchPolicy:
    max_batch: int = 1
    batch_timeout_s: float = 0.0
    workers: int = 1
    answer_thread: bool = True     # answer LoadGen from a thread of its own (not SingleStream)


def policy_for(scenario: str, max_batch: int, workers: int | None = None,
               server_timeout_s: float = 0.002) -> BatchPolicy:
    """Batching by scenario: none for SingleStream, up to max_batch elsewhere."""
    workers = workers or default_workers()
    if scenario == "SingleStream":     # one sample at a time: a hand-over would only add latency
        return BatchPolicy(1, 0.0, 1, answer_thread=False)
    if scenario == "Server":
        return BatchPolicy(max_batch, server_timeout_s, workers)
    return BatchPolicy(max_batch, 0.0, workers)   # Offline, MultiStream: all samples arrive at once


class BatchingSUT:
    """A LoadGen SUT: queue + dynamic batching + worker pool over a `predict` function.

    The per-sample path is kept to a few plain-Python operations, because a small model
    answers thousands of samples a second and LoadGen would see every microsecond: one
    deque (not a `queue.Queue`, whose lock and condition per item cost more than a dlrm
    sample's share of the model), whole queries queued at once, each batch's responses
    copied into one buffer whose address is taken once (not a ctypes object per sample), and
    the answers handed to LoadGen by a thread of their own while the model runs on."""

    def __init__(self, qsl: SampleLibrary, predict: Predict, policy: BatchPolicy):
        self.qsl = qsl
        self.predict = predict
        self.policy = policy
        self.error: str | None = None
        self.completed = 0
        self._pending: deque[tuple[int, int]] = deque()   # (LoadGen response id, sample index)
        self._ready = threading.Condition()                 # guards _pending
        self._outstanding: dict[int, int] = {}   # LoadGen response id -> sample index
        self._lock = threading.Lock()
        self._aborted = threading.Event()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, name=f"mlpace-sut-{i}", daemon=True)
                         for i in range(policy.workers)]
        # Answering LoadGen costs a Python object per sample (~2 us): a thread of its own does
        # it while the workers run the model on the next batch (the model releases the GIL).
        self._answers: deque[tuple[list[int], Sequence[np.ndarray]]] = deque()
        self._answered = threading.Condition()
        if policy.answer_thread:
            self._workers.append(threading.Thread(target=self._answer, name="mlpace-sut-answers",
                                                  daemon=True))

    # --- LoadGen callbacks -------------------------------------------------------------
    def issue_queries(self, response_ids: list[int], indices: list[int]) -> None:
        # LoadGen's "fast" SUT hands over two lists of ints, not one object per sample.
        pairs = list(zip(response_ids, indices))
        with self._lock:
            self._outstanding.update(pairs)
        if self._aborted.is_set():
            self._complete_empty([response_id for response_id, _ in pairs])
            return
        with self._ready:
            self._pending.extend(pairs)
            self._ready.notify(len(pairs))

    def flush_queries(self) -> None:
        pass   # workers never hold samples back longer than batch_timeout_s

    # --- life cycle ----------------------------------------------------------------------
    def start(self):
        """Start the workers; return LoadGen's handle (free it with `destroy`)."""
        import mlperf_loadgen as lg
        for worker in self._workers:
            worker.start()
        return lg.ConstructFastSUT(self.issue_queries, self.flush_queries)

    @staticmethod
    def destroy(handle) -> None:
        import mlperf_loadgen as lg
        lg.DestroyFastSUT(handle)

    def stop(self) -> None:
        self._stop.set()
        with self._ready:
            self._ready.notify_all()
        with self._answered:
            self._answered.notify_all()
        for worker in self._workers:
            worker.join(timeout=1.0)

    def abort(self, reason: str) -> None:
        """Answer everything outstanding (and everything later) with an empty response."""
        if self.error is None:
            self.error = reason
        self._aborted.set()
        with self._ready:
            self._pending.clear()
            self._ready.notify_all()
        with self._lock:
            ids = list(self._outstanding)
        self._complete_empty(ids)

    # --- workers -------------------------------------------------------------------------
    def _take(self, count: int) -> list[tuple[int, int]]:
        pending = self._pending
        return [pending.popleft() for _ in range(min(count, len(pending)))]

    def _next_batch(self) -> list[tuple[int, int]]:
        """Up to max_batch waiting samples; waits up to batch_timeout_s for more to arrive."""
        limit = self.policy.max_batch
        with self._ready:
            if not self._pending:
                self._ready.wait(0.05)
            batch = self._take(limit)
            if batch and len(batch) < limit and self.policy.batch_timeout_s > 0:
                deadline = time.monotonic() + self.policy.batch_timeout_s
                while len(batch) < limit and not self._stop.is_set():
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        break
                    if not self._pending:
                        self._ready.wait(wait)
                    batch += self._take(limit - len(batch))
            return batch

    def _work(self) -> None:
        get = self.qsl.get
        while not self._stop.is_set():
            batch = self._next_batch()
            if not batch or self._aborted.is_set():
                continue
            try:
                outputs = self.predict([get(index) for _, index in batch])
                if len(outputs) != len(batch):
                    raise RuntimeError(f"backend returned {len(outputs)} outputs for {len(batch)} samples")
            except Exception as err:  # noqa: BLE001 - any backend failure ends the run cleanly
                self.abort(f"SUT raised {type(err).__name__}: {err}")
                continue
            ids = [response_id for response_id, _ in batch]
            if not self.policy.answer_thread:
                self._complete(ids, outputs)
                continue
            with self._answered:
                self._answers.append((ids, outputs))
                self._answered.notify()

    def _answer(self) -> None:
        """Hand finished batches to LoadGen, in the order they finished."""
        while True:
            with self._answered:
                while not self._answers and not self._stop.is_set():
                    self._answered.wait(0.05)
                if not self._answers:
                    return                       # stopped, and nothing left to answer
                ids, outputs = self._answers.popleft()
            self._complete(ids, outputs)

    def _claim(self, ids: list[int]) -> list[int]:
        """Remove ids from the outstanding set; only the first completion of an id counts."""
        with self._lock:
            return [i for i in ids if self._outstanding.pop(i, None) is not None]

    def _complete(self, ids: list[int], outputs: Sequence[np.ndarray]) -> None:
        import mlperf_loadgen as lg
        claimed = set(self._claim(ids))
        if not claimed:
            return
        # One buffer for the batch (C order, whatever the arrays' layout); LoadGen copies the
        # bytes it logs before QuerySamplesComplete returns, so `buffer` may go after it.
        chunks = [np.asarray(out).tobytes() for out in outputs]
        buffer = np.frombuffer(b"".join(chunks), dtype=np.uint8)
        address = buffer.__array_interface__["data"][0]
        responses = []
        for response_id, chunk in zip(ids, chunks):
            if response_id in claimed:
                responses.append(lg.QuerySampleResponse(response_id, address, len(chunk)))
            address += len(chunk)
        lg.QuerySamplesComplete(responses)
        with self._lock:
            self.completed += len(responses)

    def _complete_empty(self, ids: list[int]) -> None:
        import mlperf_loadgen as lg
        claimed = self._claim(ids)
        if claimed:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(i, 0, 0) for i in claimed])
