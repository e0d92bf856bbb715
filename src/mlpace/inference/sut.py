"""The query sample library (QSL) and the system under test (SUT) that LoadGen drives.

`SampleLibrary` keeps the samples LoadGen asks for in memory (load/unload callbacks).
`BatchingSUT` answers LoadGen's queries with a pool of worker threads fed by one queue:
a worker takes every waiting sample up to `max_batch` (dynamic batching: the batch grows with
the backlog), optionally waiting up to `batch_timeout_s` for more (no scenario does by default;
SingleStream uses a batch of one). Threads suit PyTorch and ONNX Runtime, which release the GIL inside ops.

Faults never hang LoadGen: when the backend raises, or `abort()` is called (by the watchdog),
every outstanding and every later sample is completed at once with an empty response, so
LoadGen finishes and writes its logs; the first error is kept for the caller to report.
"""

from __future__ import annotations

import os
import threading
import time
from collections import deque
from itertools import accumulate
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


# glibc's malloc gives freed memory back to the kernel (trim, munmap) once the free top of a
# heap passes a threshold, and a batch's activations (megabytes) are freed and asked for again
# on every batch: from a worker thread's arena that meant thousands of fresh, zeroed pages a
# batch (a fifth of resnet50-mini's CPU in the kernel, predict 1.4x slower than in the main
# thread). Fixed thresholds keep that memory in the process for the next batch.
MALLOC_MMAP_THRESHOLD = 32 << 20    # glibc's ceiling for it on 64-bit (HEAP_MAX_SIZE / 2)
MALLOC_TRIM_THRESHOLD = 512 << 20


def keep_freed_memory() -> bool:
    """Stop glibc's malloc from trimming and re-faulting the model's per-batch memory (process
    wide, idempotent); False where the C library is not glibc."""
    import ctypes
    import ctypes.util
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold = -1, -3      # <malloc.h>
    return bool(mallopt(m_mmap_threshold, MALLOC_MMAP_THRESHOLD)) and \
        bool(mallopt(m_trim_threshold, MALLOC_TRIM_THRESHOLD))


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
               server_timeout_s: float = 0.0) -> BatchPolicy:
    """Batching by scenario: none for SingleStream, up to max_batch elsewhere.

    Server takes what is waiting and never waits for more (greedy): a worker that waits for a
    batch to fill idles while its samples age, and with one worker that idle time is capacity
    lost (resnet50-mini on 2 cores at 2,000 QPS: 1 of 6 runs with a 2 ms wait met the 15 ms
    p99, 5 of 6 without it, at half the median latency; BENCHMARKS.md). Samples that arrive
    while the model runs make the next batch bigger."""
    workers = workers or default_workers()
    if scenario == "SingleStream":     # one sample at a time: a hand-over would only add latency
        return BatchPolicy(1, 0.0, 1, answer_thread=False)
    if scenario == "Server":
        return BatchPolicy(max_batch, server_timeout_s, workers)
    return BatchPolicy(max_batch, 0.0, workers)   # Offline, MultiStream: all samples arrive at once


class BatchingSUT:
    """A LoadGen SUT: queue + dynamic batching + worker pool over a `predict` function.

    The per-sample path has no Python loop of mlpace's own, because a small model answers
    tens of thousands of samples a second and LoadGen would see every microsecond: queries
    are queued as LoadGen hands them over (two int lists, sliced into batches, never split
    into per-sample pairs), what is outstanding is tracked per batch (not per sample), each
    batch's responses are one buffer whose addresses are computed, not looked up, and the
    answers go to LoadGen from a thread of their own while the model runs on. What is left
    per sample is LoadGen's: one `QuerySampleResponse` object (about 1 us; its C entry points
    are not exported to Python) and its own bookkeeping."""

    def __init__(self, qsl: SampleLibrary, predict: Predict, policy: BatchPolicy):
        self.qsl = qsl
        self.predict = predict
        self.policy = policy
        self.error: str | None = None
        self.completed = 0
        # One lock (the condition's) guards the queue and the batches in flight, so that
        # `abort` sees every sample in exactly one of them.
        self._ready = threading.Condition()
        self._pending: deque[list] = deque()        # [response ids, sample indices, next position]
        self._in_flight: dict[int, list[int]] = {}  # id(response ids of a batch) -> those ids
        self._aborted = threading.Event()
        self._stop = threading.Event()
        self._workers = [threading.Thread(target=self._work, name=f"mlpace-sut-{i}", daemon=True)
                         for i in range(policy.workers)]
        # Answering LoadGen costs a Python object per sample: a thread of its own does it while
        # the workers run the model on the next batch (the model releases the GIL).
        self._answers: deque[tuple[list[int], Sequence[np.ndarray]]] = deque()
        self._answered = threading.Condition()
        if policy.answer_thread:
            self._workers.append(threading.Thread(target=self._answer, name="mlpace-sut-answers",
                                                  daemon=True))

    # --- LoadGen callbacks -------------------------------------------------------------
    def issue_queries(self, response_ids: list[int], indices: list[int]) -> None:
        # LoadGen's "fast" SUT hands over two lists of ints, not one object per sample.
        with self._ready:
            if not self._aborted.is_set():
                self._pending.append([response_ids, indices, 0])
                self._ready.notify(len(response_ids))
                return
        self._complete_empty(response_ids)

    def flush_queries(self) -> None:
        pass   # workers never hold samples back longer than batch_timeout_s

    # --- life cycle ----------------------------------------------------------------------
    def start(self):
        """Start the workers; return LoadGen's handle (free it with `destroy`)."""
        import mlperf_loadgen as lg
        keep_freed_memory()
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
            if worker.ident is not None:   # a worker never started (start() not called) has nothing to join
                worker.join(timeout=1.0)

    def abort(self, reason: str) -> None:
        """Answer everything outstanding (and everything later) with an empty response."""
        with self._ready:
            if self.error is None:
                self.error = reason
            self._aborted.set()
            ids = [i for chunk_ids, _, position in self._pending for i in chunk_ids[position:]]
            ids += [i for batch in self._in_flight.values() for i in batch]
            self._pending.clear()
            self._in_flight.clear()
            self._ready.notify_all()
        self._complete_empty(ids)

    # --- workers -------------------------------------------------------------------------
    def _take(self, count: int, ids: list[int], indices: list[int]) -> None:
        """Move up to `count` queued samples to the batch (`ids`, `indices`); hold _ready."""
        pending = self._pending
        while count > 0 and pending:
            chunk = pending[0]
            chunk_ids, chunk_indices, position = chunk
            end = min(position + count, len(chunk_ids))
            ids += chunk_ids[position:end]
            indices += chunk_indices[position:end]
            count -= end - position
            if end == len(chunk_ids):
                pending.popleft()
            else:
                chunk[2] = end

    def _next_batch(self) -> tuple[list[int], list[int]]:
        """Up to max_batch waiting samples; waits up to batch_timeout_s for more to arrive.
        The batch is in flight (seen by `abort`) from the moment it leaves the queue."""
        limit = self.policy.max_batch
        ids: list[int] = []
        indices: list[int] = []
        with self._ready:
            if not self._pending:
                self._ready.wait(0.05)
            self._take(limit, ids, indices)
            if ids and len(ids) < limit and self.policy.batch_timeout_s > 0:
                deadline = time.monotonic() + self.policy.batch_timeout_s
                while len(ids) < limit and not self._stop.is_set():
                    wait = deadline - time.monotonic()
                    if wait <= 0:
                        break
                    if not self._pending:
                        self._ready.wait(wait)
                    self._take(limit - len(ids), ids, indices)
            if ids:
                self._in_flight[id(ids)] = ids
        return ids, indices

    def _samples(self, indices: list[int]) -> list:
        try:
            return list(map(self.qsl.loaded.__getitem__, indices))
        except KeyError:      # not loaded (LoadGen only issues loaded samples): the slow path
            return [self.qsl.get(index) for index in indices]

    def _work(self) -> None:
        while not self._stop.is_set():
            ids, indices = self._next_batch()
            if not ids or self._aborted.is_set():
                continue
            try:
                outputs = self.predict(self._samples(indices))
                if len(outputs) != len(ids):
                    raise RuntimeError(f"backend returned {len(outputs)} outputs for {len(ids)} samples")
            except Exception as err:  # noqa: BLE001 - any backend failure ends the run cleanly
                self.abort(f"SUT raised {type(err).__name__}: {err}")
                continue
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

    def _complete(self, ids: list[int], outputs: Sequence[np.ndarray]) -> None:
        """Answer one batch (`ids` as `_next_batch` returned it), unless `abort` already did."""
        import mlperf_loadgen as lg
        with self._ready:
            if self._in_flight.pop(id(ids), None) is None:
                return
            self.completed += len(ids)
        answers, buffer = responses(ids, outputs)
        lg.QuerySamplesComplete(answers)   # LoadGen reads `buffer` during this call: keep it alive
        del buffer

    def _complete_empty(self, ids: list[int]) -> None:
        import mlperf_loadgen as lg
        if ids:
            lg.QuerySamplesComplete([lg.QuerySampleResponse(i, 0, 0) for i in ids])


def responses(ids: list[int], outputs: Sequence[np.ndarray]) -> tuple[list, bytes]:
    """LoadGen's responses for one batch: every output's bytes (C order, whatever the array's
    layout) in one buffer, and one response per sample pointing into it; returns both. The
    responses hold raw addresses, not references: the caller must keep the buffer alive until
    QuerySamplesComplete returns (LoadGen copies the bytes it logs during that call). Returning
    only the responses freed the buffer before LoadGen read it (garbage in the accuracy log
    once freed memory was reused)."""
    import mlperf_loadgen as lg
    chunks = list(map(_bytes_of, outputs))
    data = b"".join(chunks)
    base = np.frombuffer(data, dtype=np.uint8).__array_interface__["data"][0] if data else 0
    sizes = list(map(len, chunks))
    return list(map(lg.QuerySampleResponse, ids, accumulate(sizes, initial=base), sizes)), data


def _bytes_of(output) -> bytes:
    return output.tobytes() if isinstance(output, np.ndarray) else np.asarray(output).tobytes()
