"""A hard bound on one LoadGen test: past it, one error line and the process ends.

LoadGen runs in-process, in C++: while it builds a schedule or waits for answers, Python code
cannot interrupt it. The runner already has a soft watchdog (past its deadline the SUT answers
every outstanding query empty, so LoadGen can finish and write its logs). This is the bound
behind it, for when LoadGen itself does not come back: a timer thread (LoadGen releases the
GIL while it runs) prints one `error:` line and calls `os._exit`, the only exit that does not
wait for the C++ thread. Files written before are intact: every mlpace file is written
atomically.
"""

from __future__ import annotations

import math
import os
import sys
import threading

from mlpace.errors import MlpaceError

# Seconds the hard bound waits past the soft deadline: the soft watchdog's own 60 s for
# LoadGen to finish after the abort, plus margin.
GRACE_S = 120.0
MAX_TIMEOUT_S = 7 * 24 * 3600.0
EXIT_CODE = MlpaceError.exit_code


def check_timeout(seconds) -> float:
    """A --timeout as seconds, if it is a finite positive number up to a week."""
    try:
        value = float(seconds)
    except (TypeError, ValueError):
        raise MlpaceError(f"--timeout {seconds!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0 or value > MAX_TIMEOUT_S:
        raise MlpaceError(f"--timeout must be a number of seconds above 0 and at most "
                          f"{MAX_TIMEOUT_S:.0f} (a week), not {seconds!r}")
    return value


class Watchdog:
    """Armed on creation (or by `arm()`); `cancel()` when the bounded work is over. If it fires
    first, it prints `error: <what> ...` on stderr and ends the process with EXIT_CODE."""

    def __init__(self, seconds: float, what: str, armed: bool = True):
        self.seconds, self.what = seconds, what
        self._timer = threading.Timer(seconds, self._fire)
        self._timer.daemon = True
        if armed:
            self.arm()

    def arm(self) -> None:
        """Start the clock. `cancel()` works before, during and after, so a caller can create
        the object first and cancel it whenever a Ctrl-C comes; one inside leaves no timer."""
        try:
            self._timer.start()
        except BaseException:
            self._timer.cancel()
            raise

    def _fire(self) -> None:
        try:
            sys.stdout.flush()
        except Exception:  # noqa: BLE001 - nothing may stop the exit below
            pass
        os.write(2, (f"error: {self.what} did not end within {self.seconds:.0f} s; the watchdog "
                     "stopped mlpace (files written so far are intact)\n").encode())
        os._exit(EXIT_CODE)

    def cancel(self) -> None:
        self._timer.cancel()

    def __enter__(self) -> "Watchdog":
        return self

    def __exit__(self, *exc) -> None:
        self.cancel()
