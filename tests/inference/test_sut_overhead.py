"""What keeps the SUT cheap, checked without timing it: full batches, one LoadGen call per
batch, responses pointing at the right bytes, every sample answered exactly once (speed goals
live in bench/bench_infer.py and BENCHMARKS.md)."""

import json
import sys
import threading
import time
from pathlib import Path

import mlperf_loadgen as lg
import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from toy_task import toy_task  # noqa: E402

from mlpace.inference.runner import RunOptions, run_test  # noqa: E402
from mlpace.inference.sut import BatchingSUT, BatchPolicy, responses  # noqa: E402

pytestmark = pytest.mark.timeout(120)


def options(tmp_path, **kw):
    kw.setdefault("user_settings", {"target_qps": 400, "target_latency": 0.5})
    return RunOptions(out=tmp_path, quick=True, system="testsys", **kw)


def recording_predict(task, sizes):
    inner = task.predict

    def predict(samples):
        sizes.append(len(samples))
        return inner(samples)
    task.predict = predict
    return task


def loadgen_calls(monkeypatch):
    """LoadGen's QuerySamplesComplete, still called, with each call's response ids recorded."""
    calls = []
    real = lg.QuerySamplesComplete

    def complete(answers, *rest):
        calls.append([answer.id for answer in answers])
        return real(answers, *rest)
    monkeypatch.setattr(lg, "QuerySamplesComplete", complete)
    return calls


def test_offline_batches_are_full_and_answered_in_one_loadgen_call_each(tmp_path, monkeypatch):
    sizes, calls = [], loadgen_calls(monkeypatch)
    task = recording_predict(toy_task(total=64), sizes)
    record = run_test(task, "Offline", "performance", options(tmp_path, workers=1, max_batch=8))
    assert record["error"] is None and sum(sizes) >= 64
    assert all(size == 8 for size in sizes[:-1]) and 0 < sizes[-1] <= 8    # the last may be short
    assert [len(ids) for ids in calls] == sizes                            # one call per batch
    ids = [i for batch in calls for i in batch]
    assert len(ids) == len(set(ids))                                       # each answered once


def test_server_batches_gather_samples_across_queries(tmp_path):
    # Server queries carry one sample each; while a slow batch runs, later queries wait and the
    # next batch takes several of them (never more than max_batch).
    sizes = []
    task = recording_predict(toy_task(total=64, delay_s=0.01, model="bert"), sizes)
    run_test(task, "Server", "performance", options(tmp_path, workers=1, max_batch=4))
    assert max(sizes) > 1 and max(sizes) <= 4


def test_each_response_points_at_its_own_bytes(tmp_path):
    # Outputs of different lengths (as detections are), some not C-contiguous: the one buffer
    # per batch must give every sample exactly its own output, in C order.
    task = toy_task(total=40)

    def predict(samples):
        outs = []
        for sample in samples:
            index = int(sample[0])
            grid = np.arange(index * 100, index * 100 + 2 * (1 + index % 3), dtype=np.int32)
            outs.append(grid.reshape(2, -1).T if index % 2 else grid)   # a transposed view
        return outs
    task.predict = predict
    record = run_test(task, "Offline", "accuracy", options(tmp_path, workers=1, max_batch=8))
    entries = json.loads((Path(record["folder"]) / "mlperf_log_accuracy.json").read_text())
    assert sorted(e["qsl_idx"] for e in entries) == list(range(40))
    for entry in entries:
        index = entry["qsl_idx"]
        grid = np.arange(index * 100, index * 100 + 2 * (1 + index % 3), dtype=np.int32)
        expected = grid.reshape(2, -1).T.copy() if index % 2 else grid
        assert np.frombuffer(bytes.fromhex(entry["data"]), np.int32).tolist() == expected.ravel().tolist()


def test_responses_of_a_batch_are_consecutive_slices_of_one_buffer():
    outs = [np.array([1, 2], np.int32), np.zeros(0, np.int32), np.array([3.0], np.float64)]
    built, buffer = responses([7, 8, 9], outs)
    assert [r.id for r in built] == [7, 8, 9]
    assert [r.size for r in built] == [8, 0, 8]
    assert built[1].data == built[0].data + 8 and built[2].data == built[1].data
    # the responses point into the returned buffer, which the caller keeps alive
    assert built[0].data == np.frombuffer(buffer, np.uint8).__array_interface__["data"][0]
    assert bytes(buffer) == outs[0].tobytes() + outs[2].tobytes()


def test_abort_answers_every_outstanding_sample_exactly_once(tmp_path, monkeypatch):
    # A slow SUT aborted mid-run: queued samples, batches in flight and later queries are each
    # answered once (LoadGen only returns when every issued sample was answered).
    calls = loadgen_calls(monkeypatch)
    issued = []
    real_issue = BatchingSUT.issue_queries

    def issue(self, ids, indices):
        issued.extend(ids)
        return real_issue(self, ids, indices)
    monkeypatch.setattr(BatchingSUT, "issue_queries", issue)
    real_start = BatchingSUT.start

    def start(self):
        threading.Timer(0.5, self.abort, ("test abort",)).start()
        return real_start(self)
    monkeypatch.setattr(BatchingSUT, "start", start)
    task = toy_task(total=64, delay_s=0.05, model="bert")
    started = time.monotonic()
    record = run_test(task, "Server", "performance", options(tmp_path, workers=1, max_batch=2))
    assert record["error"] == "test abort" and time.monotonic() - started < 60
    answered = [i for batch in calls for i in batch]
    assert len(answered) == len(set(answered))
    assert sorted(answered) == sorted(issued) and len(issued) > 10


def test_stop_before_start_is_harmless():
    # A run that fails before LoadGen starts the SUT still stops it; joining a thread that was
    # never started raises RuntimeError.
    sut = BatchingSUT(None, lambda samples: [], BatchPolicy(max_batch=4, workers=2))
    sut.stop()


THREADS_SCRIPT = """
import os, threading, numpy as np, torch
from mlpace.inference.backends import ModelBundle, make_predict
torch.set_num_threads(1)
model = torch.nn.Sequential(torch.nn.Conv2d(8, 16, 3), torch.nn.Flatten())
bundle = ModelBundle(model, lambda samples: (np.stack(samples),), lambda outs, _: list(outs[0]))
predict = make_predict(bundle)
before = len(os.listdir("/proc/self/task"))
seen = []
def worker():
    predict([np.ones((8, 32, 32), np.float32)] * 16)
    seen.append(len(os.listdir("/proc/self/task")) - before)
thread = threading.Thread(target=worker)
thread.start()
thread.join()
print(seen[0])
"""


def test_a_sut_worker_thread_runs_the_model_on_the_threads_asked_for():
    # OpenMP's thread count is per thread: a worker thread that did not set it would run the
    # model on OMP_NUM_THREADS threads (here 4), not the one thread the bare model ran on.
    import os
    import subprocess
    env = {**os.environ, "OMP_NUM_THREADS": "4"}
    out = subprocess.run([sys.executable, "-c", THREADS_SCRIPT], env=env, capture_output=True,
                         text=True, timeout=60, check=True).stdout
    assert int(out.split()[-1]) == 1          # the worker thread itself, no OpenMP pool


FAULTS_SCRIPT = """
import resource, threading, numpy as np
from mlpace.inference.sut import BatchingSUT, BatchPolicy
sut = BatchingSUT(None, lambda samples: [], BatchPolicy(max_batch=4, workers=1))
BatchingSUT.destroy(sut.start())
sut.stop()
faults = []
def batches():
    for _ in range(20):
        before = resource.getrusage(resource.RUSAGE_THREAD).ru_minflt
        activations = [np.ones(1 << 20, np.float32) for _ in range(4)]   # 4 x 4 MiB, freed together
        del activations
        faults.append(resource.getrusage(resource.RUSAGE_THREAD).ru_minflt - before)
thread = threading.Thread(target=batches)
thread.start()
thread.join()
print(max(faults[5:]))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc and RUSAGE_THREAD")
def test_a_served_batch_reuses_the_memory_the_last_batch_freed():
    # glibc trimmed a worker thread's heap once a batch's activations were freed, so the next
    # batch faulted in 16 MiB of fresh pages (1,500 faults a batch here; resnet50-mini spent a
    # fifth of its CPU in the kernel). A started SUT keeps freed memory for the next batch.
    import subprocess
    out = subprocess.run([sys.executable, "-c", FAULTS_SCRIPT], capture_output=True, text=True,
                         timeout=60, check=True).stdout
    assert int(out.split()[-1]) < 100         # a few stray pages at most, not 4,096
