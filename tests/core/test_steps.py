"""StepClock: each step's seconds are the time since the previous mark, summed when a step repeats."""
from __future__ import annotations

from jobs.core import steps


def test_steps_split_the_time_between_marks_in_order():
    ticks = iter([10.0, 11.5, 11.75, 14.0, 14.5])
    clock = steps.StepClock(lambda: next(ticks))  # 10.0
    clock.done("evidence")             # 11.5: 1.5
    clock.done("scope")                # 11.75: 0.25
    clock.done("evidence")             # 14.0: +2.25
    clock.done("customers")            # 14.5: 0.5
    assert clock.seconds == {"evidence": 3.75, "scope": 0.25, "customers": 0.5}
    assert clock.note() == "seconds: evidence 3.8, scope 0.2, customers 0.5"
