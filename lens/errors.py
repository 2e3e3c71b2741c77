"""The lens's one user-facing error: a model, query or catalog mistake a person can fix."""
from __future__ import annotations

from jobs.errors import C360Error


class LensError(C360Error):
    """A bad model, query or catalog entry. The message names the file, entity and member."""
