"""Defaults of the lens library that need no Spark (jobs' `lens:` config section starts from these)."""
from __future__ import annotations

# Tables whose rows happen at a time, and their time column: a query reads them as of its run date
# (interface §5: "as of D" ignores later activities). c360's activity stream, by activity_ts.
# The rfm stage's tables kept per run (gold/rfm_history, gold/rfm_migration), by run_date: a query as of
# D does not see the runs after D.
DEFAULT_AS_OF: dict[str, str] = {"silver/activity_stream": "activity_ts", "gold/rfm_history": "run_date",
                                 "gold/rfm_migration": "run_date"}
