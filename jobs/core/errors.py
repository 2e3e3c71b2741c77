"""Errors a person can act on. The CLI prints them as one paragraph and exits with status 2."""


class C360Error(Exception):
    """Base for user-facing errors: bad input, bad configuration, bad query."""

    exit_status = 2


class ConfigError(C360Error):
    """A configuration file is missing, unreadable or invalid; the message names file and key."""


class InputError(C360Error):
    """Raw input is missing or unreadable; the message names the file or folder."""
