"""Errors a person can act on. The CLI prints them as one paragraph and exits with status 2."""


class C360Error(Exception):
    """Base for user-facing errors: bad input, bad configuration, bad query."""

    exit_status = 2


class ConfigError(C360Error):
    """A configuration file is missing, unreadable or invalid; the message names file and key."""


class InputError(C360Error):
    """Raw input is missing or unreadable; the message names the file or folder."""


class StageFailed(Exception):
    """A nightly stage failed for a reason that is not bad input (Spark, the JVM, a bug); the cause is
    `__cause__`. Carries the stage's name so the CLI can say where the night stopped."""

    def __init__(self, stage: str):
        super().__init__(f"stage {stage} failed")
        self.stage = stage
