"""Explicit schemas of the raw input: the Segment message as parsed, and the customer master columns.

The tables ingest writes (bronze/events, bronze/customers, quarantine/events) are specified in
jobs.core.catalog.
"""
from __future__ import annotations

from pyspark.sql.types import StringType, StructField, StructType

# The seed model's customer entity columns, in its order (interface §3): the customer master CSV header.
from jobs.core.table_names import CUSTOMER_COLUMNS  # noqa: F401

EVENT_TYPES = ("identify", "track", "group", "alias", "page", "screen")

_TEXT = StringType()
# The message fields ingest keeps as text, whichever of the two schemas below parsed the line.
MESSAGE_TEXT_FIELDS = ("messageId", "type", "event", "userId", "anonymousId", "previousId", "groupId", "timestamp",
                       "properties")
_MESSAGE_FIELDS = [StructField(name, _TEXT) for name in MESSAGE_TEXT_FIELDS]
CORRUPT_RECORD = "_corrupt_record"
CONTACT_FIELDS = StructType([StructField("email", _TEXT), StructField("phone", _TEXT)])
CONTEXT_FIELDS = StructType([StructField("groupId", _TEXT), StructField("traits", CONTACT_FIELDS)])

# What ingest parses out of each JSON line, in one pass: the top-level fields as text (`properties`
# keeps its JSON text for the activity stream) and, from `traits` and `context`, only the fields
# ingest uses, so the parser skips the rest of those objects instead of re-serializing them.
RAW_EVENT_SCHEMA = StructType(_MESSAGE_FIELDS + [
    StructField("traits", CONTACT_FIELDS),
    StructField("context", CONTEXT_FIELDS),
    StructField(CORRUPT_RECORD, _TEXT),
])
# The same message with every field as text: a `traits` or `context` that is not an object fails
# RAW_EVENT_SCHEMA without the line being invalid JSON, so such lines are parsed again with this.
RAW_EVENT_TEXT_SCHEMA = StructType(_MESSAGE_FIELDS + [
    StructField("traits", _TEXT),
    StructField("context", _TEXT),
    StructField(CORRUPT_RECORD, _TEXT),
])
