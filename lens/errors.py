"""The lens's one user-facing error: a model, query or catalog mistake a person can fix.

The lens is a library and imports nothing from jobs/; the c360 command line treats a LensError like
its own errors (one paragraph, exit status 2)."""
from __future__ import annotations

EXIT_BAD_INPUT = 2


class LensError(Exception):
    """A bad model, query or catalog entry. The message names the file, entity and member."""

    exit_status = EXIT_BAD_INPUT
