"""Explicit schemas: the raw Segment message as parsed, and the bronze/quarantine tables."""
from __future__ import annotations

from pyspark.sql.types import DateType, StringType, StructField, StructType, TimestampType

# The seed model's customer entity columns, in its order (interface §3).
CUSTOMER_COLUMNS = (
    "customer_id", "customer_name", "email", "phone_number", "address", "customer_no", "site",
    "state", "county_name", "zip", "premise_code", "status", "license_classification",
    "license_type", "channel_code", "channel_name", "selling_division_name", "consent",
)

EVENT_TYPES = ("identify", "track", "group", "alias", "page", "screen")

# What ingest parses out of each JSON line. Nested objects are declared as strings so Spark keeps
# their JSON text (traits, properties, context), parsed later only where a stage needs them.
RAW_EVENT_SCHEMA = StructType([
    StructField("messageId", StringType()),
    StructField("type", StringType()),
    StructField("event", StringType()),
    StructField("userId", StringType()),
    StructField("anonymousId", StringType()),
    StructField("previousId", StringType()),
    StructField("groupId", StringType()),
    StructField("timestamp", StringType()),
    StructField("traits", StringType()),
    StructField("properties", StringType()),
    StructField("context", StringType()),
    StructField("_corrupt_record", StringType()),
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
    StructField("traits", StringType()),         # JSON text
    StructField("properties", StringType()),     # JSON text
    StructField("context", StringType()),        # JSON text
    StructField("raw", StringType(), False),     # the line as received
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
    StructField("raw", StringType()),
    StructField("reason", StringType(), False),
    StructField("source_file", StringType(), False),
    StructField("line_hash", StringType(), False),   # sha2(source_file, raw, copy number): quarantined once
    StructField("run_date", DateType(), False),
])
