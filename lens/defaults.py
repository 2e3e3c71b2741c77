"""Defaults of the lens library that need no Spark (jobs' `lens:` config section starts from these)."""
from __future__ import annotations

# Tables whose rows happen at a time, and their time column: a query reads them as of its run date
# (interface §5: "as of D" ignores later activities). c360's activity stream, by activity_ts.
DEFAULT_AS_OF: dict[str, str] = {"silver/activity_stream": "activity_ts"}
