"""Where a stage's time goes: named steps, timed on the driver, for the stage's summary notes.

`done("evidence")` closes the step that ran since the previous mark (or since the clock started).
Spark is lazy, so a step's seconds are those of the jobs its own actions ran (a scratch write, a
MERGE, a count); work it only planned shows in the step that first materializes it. Step names are
the stage's own words (`evidence`, `components`, ...), so the summary says where a night went.
"""
from __future__ import annotations

import time
from collections.abc import Callable

STEP_NOTE = "seconds: "


class StepClock:
    def __init__(self, clock: Callable[[], float] = time.perf_counter) -> None:
        self.seconds: dict[str, float] = {}
        self._clock = clock
        self._since = clock()

    def done(self, step: str) -> None:
        now = self._clock()
        self.seconds[step] = self.seconds.get(step, 0.0) + now - self._since
        self._since = now

    def note(self) -> str:
        """'seconds: evidence 3.1, aliases 0.8, ...' in the order the steps first ended."""
        return STEP_NOTE + ", ".join(f"{step} {s:.1f}" for step, s in self.seconds.items())
