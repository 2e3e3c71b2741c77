"""Quarantine reason names: the one definition, shared by ingest and the data generator.

Plain constants, no pyspark: `c360 generate` worker processes import these without Spark.
"""
from __future__ import annotations

# Quarantine reasons, in the order they are checked (the first failing check is the reason).
INVALID_JSON = "invalid_json"
NOT_AN_OBJECT = "not_an_object"
MISSING_MESSAGE_ID = "missing_message_id"
MISSING_TYPE = "missing_type"
UNKNOWN_TYPE = "unknown_type"
MISSING_TIMESTAMP = "missing_timestamp"
BAD_TIMESTAMP = "bad_timestamp"
MISSING_IDENTITY = "missing_identity"
MISSING_EVENT = "missing_event"
MISSING_GROUP_ID = "missing_group_id"
MISSING_PREVIOUS_ID = "missing_previous_id"
MISSING_CUSTOMER_ID = "missing_customer_id"
# Only with ingest.late_window_days set, after the first night: a valid event older than the window.
TOO_LATE = "too_late"
EVENT_REASONS = (
    INVALID_JSON, NOT_AN_OBJECT, MISSING_MESSAGE_ID, MISSING_TYPE, UNKNOWN_TYPE, MISSING_TIMESTAMP,
    BAD_TIMESTAMP, MISSING_IDENTITY, MISSING_EVENT, MISSING_GROUP_ID, MISSING_PREVIOUS_ID,
)
