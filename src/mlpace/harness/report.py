"""Terminal tables of training results (per run and the olympic score)."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

from mlpace.harness.progress import format_quality
from mlpace.harness.runs import ResultSet


def minutes_seconds(seconds: float) -> str:
    m, s = divmod(seconds, 60)
    return f"{int(m)}m {s:04.1f}s"


def print_result(console: Console, result: ResultSet) -> None:
    spec = result.spec
    table = Table(title=f"{spec.name} ({result.scale}): {spec.metric}, target "
                        f"{format_quality(spec.scale(result.scale).target)}")
    for col in ("run", "seed", "status", "epochs", "quality", "time to train"):
        table.add_column(col, justify="right" if col in ("run", "epochs", "time to train") else "left")
    for i, (seed, o) in enumerate(zip(result.seeds, result.outcomes)):
        table.add_row(str(i), str(seed), o.status if o.converged else f"{o.status} ({o.reason})",
                      str(o.epochs), format_quality(o.quality), minutes_seconds(o.seconds))
    console.print(table)
    if result.score and result.score.minutes is not None:
        console.print(f"score (olympic mean of {result.score.counted} runs): "
                      f"[bold]{result.score.minutes:.3f} minutes[/bold] "
                      f"({minutes_seconds(result.score.minutes * 60)})")
    elif result.score:
        console.print(f"no score: {result.score.reason}")
    else:
        console.print(f"{len(result.outcomes)} of {spec.runs} runs: a complete result needs "
                      f"--runs {spec.runs}")
    console.print(f"results: {result.result_dir}")


def print_suite(console: Console, results: list[ResultSet]) -> None:
    table = Table(title="mlpace suite")
    for col in ("benchmark", "scale", "status", "epochs", "quality", "target", "time to train"):
        table.add_column(col)
    for r in results:
        o = r.outcomes[0]
        table.add_row(r.spec.name, r.scale, o.status if o.converged else f"{o.status} ({o.reason})",
                      str(o.epochs), format_quality(o.quality),
                      format_quality(r.spec.scale(r.scale).target), minutes_seconds(o.seconds))
    console.print(table)
    if results:
        console.print(f"results: {results[0].result_dir.parent.parent}")


def _why(outcome) -> str:
    if outcome.reason == "time budget" and outcome.budget:
        return f"time budget: {outcome.budget}"
    return outcome.reason


def suite_verdict(results: list[ResultSet], wall_s: float, cpu_s: float,
                  interrupted: str | None = None, not_run: list[str] = ()) -> str:
    """One line: how many converged, what failed and why, the suite's wall and CPU time
    (`interrupted`: the benchmark the user stopped the suite in; `not_run`: those after it)."""
    failed = [(r.spec.name, r.outcomes[0]) for r in results if not r.outcomes[0].converged]
    head = f"{len(results) - len(failed)} of {len(results)} converged"
    if failed:
        head += "; not converged: " + ", ".join(f"{name} {o.status} ({_why(o)})" for name, o in failed)
    if interrupted:
        head += f"; interrupted in {interrupted}"
    if not_run:
        head += f"; not run: {', '.join(not_run)}"
    return f"suite: {head}; wall {minutes_seconds(wall_s)}, CPU {cpu_s:.0f} s"
