"""Small silver/activity_stream tables with the interface's columns (§4), for the stages that read it
(rfm, traits) without running ingest, stitching and activities."""
from __future__ import annotations

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.types import StructType

from jobs.activities.settings import FEATURE_SLOTS as FEATURES
from jobs.core import tables
from jobs.core.catalog import SPECS
from tests.jobs.event_builders import utc

# The interface's columns: silver/activity_stream's, activity_uuid … group_id (the rest is internal).
_STREAM = SPECS[tables.ACTIVITY_STREAM]
STREAM_SCHEMA = StructType(_STREAM.schema.fields[: _STREAM.columns.index("group_id") + 1])
ORDER_PLACED = "order_placed"


def activity(
    uuid: str,
    entity: str | None,
    kind: str,
    at: str,
    *,
    order: str | None = None,
    product: str | None = None,
    value: str | None = None,
    group: str | None = None,
) -> tuple:
    """One stream row: order_id in feature1, product_id in feature2, order_value in feature9; an
    order_placed row's revenue_impact is its order_value, as the activities stage maps it."""
    features = [None] * len(FEATURES)
    features[0], features[1], features[8] = order, product, value
    revenue = _number(value) if kind == ORDER_PLACED else None
    return (uuid, entity, None, kind, utc(at), *features, "{}", revenue, None, None, group)


def _number(text: str | None) -> float | None:
    """order_value as revenue_impact: null when it is not a number (the stage's try_cast)."""
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


def stream(spark: SparkSession, rows: list[tuple]) -> DataFrame:
    return spark.createDataFrame(rows, STREAM_SCHEMA)
