"""The progress display of training runs (rich), kept apart from the timed loop's logic."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, Progress as RichBar, TextColumn, TimeElapsedColumn

from mlpace.harness.timed_run import Progress, RunOutcome
from mlpace.harness.workload import Workload
from mlpace.rules.benchmarks import Quality


def format_quality(q: Quality | None) -> str:
    if q is None:
        return "-"
    if isinstance(q, dict):
        return " ".join(f"{k}={v:.4f}" for k, v in q.items())
    return f"{q:.4f}"


class RichProgress(Progress):
    """A bar over epochs; the description shows the step count and the last quality.

    When output is not a terminal, rich prints the bar once, as it stands when the run
    ends: so every change (a step, an evaluation, the end) updates the description, and the
    last line printed agrees with the result table.
    """

    def __init__(self, console: Console | None = None, label: str = ""):
        self.console = console or Console(stderr=True)
        self.label = label
        self.bar: RichBar | None = None

    def start(self, workload: Workload, seed: int, max_epochs: int) -> None:
        self.workload = workload
        self.seed = seed
        self.samples = 0
        self.last = "-"
        self.target = format_quality(workload.scale_spec.target)
        self.bar = RichBar(TextColumn("{task.description}"), BarColumn(), TextColumn("epoch {task.completed:.0f}/{task.total:.0f}"),
                           TimeElapsedColumn(), console=self.console, transient=False)
        self.bar.start()
        self.task = self.bar.add_task(self._describe(), total=max_epochs)

    def _describe(self) -> str:
        return (f"{self.label}{self.workload.spec.name} {self.workload.scale} | seed {self.seed} | {self.samples} samples"
                f" | quality {self.last}")

    def _show(self, epoch: int) -> None:
        if self.bar:
            self.bar.update(self.task, completed=epoch, description=self._describe())

    def step(self, epoch: int, samples: int) -> None:
        self.samples = samples
        self._show(epoch - 1)

    def evaluated(self, epoch: int, quality: Quality) -> None:
        self.last = f"{format_quality(quality)} (target {self.target})"
        self._show(epoch)

    def finish(self, outcome: RunOutcome) -> None:
        if not self.bar:
            return
        self.samples = outcome.samples
        if outcome.quality is not None:
            self.last = f"{format_quality(outcome.quality)} (target {self.target})"
        self._show(outcome.epochs)
        self.bar.stop()
        self.bar = None
