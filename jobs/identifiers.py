"""Identifier types and their normalization (interface §3), as Spark column expressions.

`user_id` is one namespace for Segment userIds and customer master customer_ids. Phones are read
in E.164 by jobs.phones (a Python parser, so not a column expression).
"""
from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

USER_ID = "user_id"
ANONYMOUS_ID = "anonymous_id"
EMAIL = "email"
PHONE = "phone"
IDENTIFIER_TYPES = (USER_ID, ANONYMOUS_ID, EMAIL, PHONE)


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
