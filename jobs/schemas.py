"""Explicit schemas: the raw Segment message as parsed, and the bronze/quarantine tables."""
from __future__ import annotations

from pyspark.sql.types import BinaryType, DateType, StringType, StructField, StructType, TimestampType

# The seed model's customer entity columns, in its order (interface §3).
CUSTOMER_COLUMNS = (
    "customer_id", "customer_name", "email", "phone_number", "address", "customer_no", "site",
    "state", "county_name", "zip", "premise_code", "status", "license_classification",
    "license_type", "channel_code", "channel_name", "selling_division_name", "consent",
)

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

BRONZE_EVENTS_SCHEMA = StructType([
    StructField("message_id", StringType(), False),
    StructField("type", StringType(), False),
    StructField("event", StringType()),
    StructField("user_id", StringType()),
    StructField("anonymous_id", StringType()),
    StructField("previous_id", StringType()),
    # groupId of a group call, or of a track event (top level or context.groupId)
    StructField("group_id", StringType()),
    StructField("timestamp", TimestampType(), False),
    StructField("email", StringType()),          # normalized, from traits or context.traits
    StructField("phone", StringType()),          # normalized, from traits or context.traits
    StructField("properties", StringType()),     # JSON text, for the activity stream
    StructField("raw", StringType(), False),     # the line as received (traits, context: parse it)
    StructField("source_file", StringType(), False),
    StructField("run_date", DateType(), False),
])

BRONZE_CUSTOMERS_SCHEMA = StructType(
    [StructField(c, StringType(), c != "customer_id" or False) for c in CUSTOMER_COLUMNS]
    + [
        StructField("row_hash", StringType(), False),   # sha2 of the row's values: the same row is kept once
        StructField("source_file", StringType(), False),
        StructField("run_date", DateType(), False),
    ]
)

QUARANTINE_SCHEMA = StructType([
    StructField("kind", StringType(), False),        # event | customer
    StructField("raw", StringType()),                # the line as text; bytes that are not UTF-8 read U+FFFD
    StructField("raw_bytes", BinaryType()),          # the line exactly as received
    StructField("reason", StringType(), False),
    StructField("source_file", StringType(), False),
    StructField("line_hash", StringType(), False),   # sha2(source_file, raw as received, copy number): quarantined once
    StructField("run_date", DateType(), False),
])
