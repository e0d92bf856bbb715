"""`mlpace suite`: every benchmark once, into one result tree, in turn or side by side.

The mini benchmarks are small models: a second torch thread speeds one of them up far less
than twice (on 2 cores, the mini suite took 883 CPU-s with 2 threads against about 440 with
one; see BENCHMARKS.md). So on CPU the suite runs them in `workers` processes of one torch
thread each (by default as many as there are cores, at most one per benchmark), the longest
first so that the last to finish is a short one; `workers=1` runs them in turn in this process
with every thread, as `mlpace train` does. Each benchmark's result, log and time-to-train are
its own either way (the time budget counts its process's CPU time per thread).

Ctrl-C or SIGTERM stops every running benchmark the way it stops `mlpace train` (the run in
progress is logged `aborted`, finished logs are kept) and starts no new one.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field
from typing import Callable

from mlpace.harness.timed_run import Progress, RunOutcome, StopRequest
from mlpace.training.runs import ResultSet, RunInterrupted, TrainRequest, train_result

# The mini benchmarks by time-to-train, longest first (measured on 2 cores, BENCHMARKS.md):
# started in this order, the long ones do not end up running alone at the end.
LONGEST_FIRST = ("maskrcnn", "minigo", "unet3d", "ssd", "bert", "resnet", "rnnt", "dlrm")


@dataclass
class SuiteRun:
    results: list[ResultSet] = field(default_factory=list)   # in the order of the requests
    interrupted: str | None = None                           # a benchmark the stop cut short
    not_run: list[str] = field(default_factory=list)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:   # not Linux
        return os.cpu_count() or 1


def default_workers(n_benchmarks: int, device: str) -> int:
    """One single-thread worker per core on CPU (at most one per benchmark); one on CUDA (one
    GPU: the benchmarks would only queue for it)."""
    if device != "cpu":
        return 1
    return max(1, min(usable_cpus(), n_benchmarks))


def run_suite(requests: list[TrainRequest], workers: int,
              progress_for: Callable[[str], Callable[[int], Progress] | None],
              announce_for: Callable[[str], Callable[[int, str], None]],
              say: Callable[[str], None]) -> SuiteRun:
    """Train every request's benchmark once (see module doc). In turn, `progress_for(name)` and
    `announce_for(name)` are what `train_result` takes; side by side, the workers show no
    progress bars and `say(line)` prints each benchmark's announcement and its end."""
    if workers <= 1 or len(requests) <= 1:
        return _in_turn(requests, progress_for, announce_for)
    return _side_by_side(requests, workers, say)


def _in_turn(requests, progress_for, announce_for) -> SuiteRun:
    suite = SuiteRun()
    for i, req in enumerate(requests):
        try:
            suite.results.append(train_result(req, progress_for(req.benchmark), announce_for(req.benchmark)))
        except RunInterrupted:
            suite.interrupted = req.benchmark
            suite.not_run = [r.benchmark for r in requests[i + 1:]]
            return suite
    return suite


# --- side by side ------------------------------------------------------------------------
_messages = None   # in a worker: its SimpleQueue to the parent (set by _start_worker)


def _start_worker(messages, threads: int) -> None:
    """In each worker process: its torch threads, its line home, and Ctrl-C left to the
    parent, which stops the runs in progress with SIGTERM (each ends `aborted`, cleanly)."""
    global _messages
    _messages = messages
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    import torch
    torch.set_num_threads(threads)


def _train_in_worker(req: TrainRequest) -> ResultSet:
    _messages.put(("pid", req.benchmark, os.getpid()))

    def announce(base_seed: int, command: str) -> None:
        _messages.put(("say", f"{req.benchmark}: base seed {base_seed}; reproduce: {command}"))
    return train_result(req, None, announce)


def _ending(name: str, outcome: RunOutcome) -> str:
    from mlpace.harness.progress import format_quality
    from mlpace.training.result_tables import minutes_seconds
    how = outcome.status if outcome.converged else f"{outcome.status} ({outcome.reason})"
    return (f"{name}: {how} after {outcome.epochs} epochs, quality {format_quality(outcome.quality)}, "
            f"time to train {minutes_seconds(outcome.seconds)}")


class _Mailbox(threading.Thread):
    """Reads the workers' messages: lines to print, and which process runs which benchmark."""

    def __init__(self, messages, say) -> None:
        super().__init__(daemon=True)
        self.messages, self.say, self.pids = messages, say, {}

    def run(self) -> None:
        while True:
            message = self.messages.get()
            if message is None:
                return
            if message[0] == "pid":
                self.pids[message[1]] = message[2]
            else:
                self.say(message[1])


def _side_by_side(requests, workers, say) -> SuiteRun:
    by_name = {r.benchmark: r for r in requests}
    order = sorted(by_name, key=lambda n: LONGEST_FIRST.index(n) if n in LONGEST_FIRST else -1)
    threads = max(1, usable_cpus() // workers)
    context = multiprocessing.get_context("spawn")   # never fork a process that runs torch threads
    # a SimpleQueue: a worker writes to the pipe itself, no feeder thread that could fail to
    # start (seen once on a machine at its thread limit: the lines were lost, and a benchmark)
    messages = context.SimpleQueue()
    mailbox = _Mailbox(messages, say)
    mailbox.start()
    done: dict[str, ResultSet] = {}
    stopped: list[str] = []
    error: BaseException | None = None
    with StopRequest() as stop, ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                                                    initargs=(messages, threads)) as pool:
        running = {pool.submit(_train_in_worker, by_name[n]): n for n in order}
        signalled: set[str] = set()
        while running:
            finished, _ = wait(running, timeout=0.2, return_when=FIRST_COMPLETED)
            for future in finished:
                name = running.pop(future)
                try:
                    done[name] = future.result()
                    say(_ending(name, done[name].outcomes[0]))
                except (RunInterrupted, BrokenProcessPool):   # stopped (or killed) by the stop
                    stopped.append(name)
                except BaseException as err:   # an MlpaceError: raised once the others stopped
                    error = error or err
            if stop.requested or error is not None:
                for future, name in running.items():
                    # not started: never will be; running: SIGTERM, once its process is known
                    if not future.cancel() and name in mailbox.pids and name not in signalled:
                        signalled.add(name)
                        os.kill(mailbox.pids[name], signal.SIGTERM)
                running = {f: n for f, n in running.items() if not f.cancelled()}
    messages.put(None)
    mailbox.join()
    if error is not None and not stop.requested:
        raise error
    if stopped and not stop.requested:
        raise RunInterrupted(f"stopped: {', '.join(stopped)} (a worker process was stopped from outside)")
    suite = SuiteRun(results=[done[r.benchmark] for r in requests if r.benchmark in done])
    if stop.requested:
        suite.interrupted = ", ".join(stopped) or None
        suite.not_run = [r.benchmark for r in requests if r.benchmark not in done and r.benchmark not in stopped]
    return suite
