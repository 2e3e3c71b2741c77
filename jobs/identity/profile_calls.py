"""silver/profile_calls: bronze/events' identify and group calls, narrow, with their traits read.

Survivorship (silver/customers: identify traits, group ids) and the groups (gold/groups,
gold/group_members) need only these calls, a quarter of the events, and of `raw` only the name
trait of an identify and the traits of a group call. Reading them from bronze meant scanning every
event's raw JSON, every night, for the few customers that changed (20.9 of the 71 s of an
incremental stitch at bench scale M). Stitch keeps this table with its evidence: the new bronze
rows' calls are added (a row already there by message_id is not added again, so a re-run of a date
adds nothing); `--full` writes it again from all of bronze. Readers take the rows up to their run
date, as they did from bronze.
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType, StructField, StructType

from jobs.core import tables
from jobs.core.catalog import SPECS

GROUP_CALL = "group"
IDENTIFY_CALL = "identify"
PROFILE_CALL_TYPES = (IDENTIFY_CALL, GROUP_CALL)
# Trait keys that carry a customer's name, read from traits and then from context.traits.
NAME_TRAITS = ("customer_name", "name")
TRAITS_MAP = MapType(StringType(), StringType())
# One parse of `raw` per call: the traits as a map (a group call keeps them all; an identify's name
# is looked up in it) and context.traits' name keys. Four get_json_object calls parsed the line up to
# four times (bench scale M: 14.0 s -> 6.6 s for the 783,348 calls). A `traits` that is not an object
# reads as null without losing context.traits (the parser's partial results).
RAW_CALL_FIELDS = StructType([
    StructField("traits", TRAITS_MAP),
    StructField("context", StructType([
        StructField("traits", StructType([StructField(k, StringType()) for k in NAME_TRAITS])),
    ])),
])
PROFILE_CALL_COLUMNS = SPECS[tables.PROFILE_CALLS].columns


def profile_calls(bronze: DataFrame) -> DataFrame:
    """The identify and group calls among bronze/events rows, in silver/profile_calls' columns."""
    kind = F.col("type")
    parsed = F.col("_raw_fields")
    traits, context_traits = parsed["traits"], parsed["context"]["traits"]
    name = F.coalesce(*[traits[k] for k in NAME_TRAITS], *[context_traits[k] for k in NAME_TRAITS])
    return (
        bronze.filter(kind.isin(*PROFILE_CALL_TYPES))
        .withColumn("_raw_fields", F.from_json("raw", RAW_CALL_FIELDS))
        .select(
            "message_id", "type", "user_id", "anonymous_id", "group_id", "timestamp", "email", "phone",
            F.when(kind == IDENTIFY_CALL, F.trim(name)).alias("customer_name"),
            F.when(kind == GROUP_CALL, traits).alias("group_traits"),
            "run_date",
        )
    )


def read_profile_calls(spark: SparkSession, wh: tables.Warehouse, run_date: dt.date) -> DataFrame:
    """The calls of bronze rows up to the run date (an InputError naming `c360 stitch` when the
    table does not exist)."""
    return wh.read(spark, tables.PROFILE_CALLS).where(F.col("run_date") <= F.lit(run_date))
