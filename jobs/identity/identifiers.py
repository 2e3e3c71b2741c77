"""Identifier types and their normalization (interface §3), as Spark column expressions.

`user_id` is one namespace for Segment userIds and customer master customer_ids. Phones are read
in E.164 by jobs.identity.phones (a Python parser, so not a column expression).
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

# The type names are defined with the identity config section, which must not import pyspark.
from jobs.identity.settings import ANONYMOUS_ID, EMAIL, IDENTIFIER_TYPES, PHONE, USER_ID  # noqa: F401


def normalize_email(col: Column) -> Column:
    """Trimmed and lower-cased; empty becomes null."""
    value = F.lower(F.trim(col))
    return F.when(value != "", value)


def normalize_id(col: Column) -> Column:
    """user_id / anonymous_id: trimmed; empty becomes null."""
    value = F.trim(col.cast("string"))
    return F.when(value != "", value)


def sha256_email(col: Column) -> Column:
    """HEMSHA2 export id: SHA-256 hex of the normalized email."""
    return F.sha2(normalize_email(col), 256)
