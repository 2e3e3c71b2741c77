"""Small tables with the real schemas of what other stages produce: bronze/events, the identity map,
identity lineage, group members. Lets activity and group tests run without ingest or stitching."""
from __future__ import annotations

import datetime as dt
import json

from pyspark.sql import DataFrame, SparkSession

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.identity.identifiers import ANONYMOUS_ID, USER_ID

DEFAULT_RUN_DATE = "2026-01-31"


def utc(text: str) -> dt.datetime:
    """'2026-01-05 09:15' -> an aware UTC datetime (Spark stores it as that instant)."""
    return dt.datetime.fromisoformat(text).replace(tzinfo=dt.timezone.utc)


def event(
    message_id: str,
    kind: str,
    at: str,
    *,
    user: str | None = None,
    anon: str | None = None,
    name: str | None = None,
    group: str | None = None,
    traits: dict | None = None,
    properties: dict | None = None,
    run_date: str = DEFAULT_RUN_DATE,
) -> dict:
    """One bronze/events row as ingest writes it (email/phone left to stitching's tests)."""
    message = {"messageId": message_id, "type": kind, "timestamp": at.replace(" ", "T") + ":00Z"}
    for key, value in (("userId", user), ("anonymousId", anon), ("event", name), ("groupId", group),
                       ("traits", traits), ("properties", properties)):
        if value is not None:
            message[key] = value
    return {
        "message_id": message_id, "type": kind, "event": name, "user_id": user, "anonymous_id": anon,
        "previous_id": None, "group_id": group, "timestamp": utc(at), "email": None, "phone": None,
        "properties": json.dumps(properties) if properties is not None else None,
        "raw": json.dumps(message), "source_file": "events/test.jsonl",
        "run_date": dt.date.fromisoformat(run_date),
    }


def track(message_id: str, name: str, at: str, **kw) -> dict:
    return event(message_id, "track", at, name=name, **kw)


def bronze_events(spark: SparkSession, rows: list[dict]) -> DataFrame:
    return spark.createDataFrame(rows, SPECS[tables.BRONZE_EVENTS].schema)


def identity_map(spark: SparkSession, customers: dict[str, list[str]], *, anonymous: dict[str, list[str]] | None = None) -> DataFrame:
    """{customer_id: [user ids]} and {customer_id: [anonymous ids]} -> gold/identity_map rows."""
    rows = [(USER_ID, u, c) for c, users in customers.items() for u in users]
    rows += [(ANONYMOUS_ID, a, c) for c, anons in (anonymous or {}).items() for a in anons]
    return spark.createDataFrame(rows, "identifier_type string, identifier_value string, customer_id string")


def identity_lineage(spark: SparkSession, rows: list[tuple[str, str, str, str]]) -> DataFrame:
    """(run_date, old_id, new_id, change) rows of gold/identity_lineage."""
    typed = [(dt.date.fromisoformat(d), old, new, change) for d, old, new, change in rows]
    return spark.createDataFrame(typed, SPECS[tables.IDENTITY_LINEAGE].schema)


def group_members(spark: SparkSession, members: dict[str, list[str]]) -> DataFrame:
    """{group_id: [customer ids]} -> gold/group_members rows (joined_on/source not used by attribution)."""
    rows = [(g, c, None, "group") for g, cs in members.items() for c in cs]
    return spark.createDataFrame(rows, SPECS[tables.GROUP_MEMBERS].schema)
