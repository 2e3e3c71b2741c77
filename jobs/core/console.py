"""Keep the JVM's console noise (log lines, stack traces) off the user's terminal.

The driver JVM is a child process that inherits file descriptors 1 and 2. We point those at a log
file and give Python's own sys.stdout/sys.stderr private copies of the terminal, so c360's messages
reach the user and everything the JVM prints lands in the log.
"""
from __future__ import annotations

import io
import os
import sys
from pathlib import Path


def divert_jvm_output(log_file: Path) -> Path:
    log_file.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    term_out = os.dup(1)
    term_err = os.dup(2)
    log_fd = os.open(log_file, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    sys.stdout = io.TextIOWrapper(os.fdopen(term_out, "wb", buffering=0), write_through=True)
    sys.stderr = io.TextIOWrapper(os.fdopen(term_err, "wb", buffering=0), write_through=True)
    return log_file
