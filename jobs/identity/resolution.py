"""Which stitched customer an event belongs to, looked up in gold/identity_map.

An event is attributed by its userId when that is stitched, else by its anonymousId: so an event
sent before a login (anonymousId only) belongs to whichever customer the anonymous id was stitched
into, and moves with it when a later login merges the two (jobs.activities.stage rewrites those rows).
"""
from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from jobs.identity.identifiers import ANONYMOUS_ID, USER_ID


def _lookup(identity_map: DataFrame, identifier_type: str, value_col: str, customer_col: str) -> DataFrame:
    return identity_map.filter(F.col("identifier_type") == identifier_type).select(
        F.col("identifier_value").alias(value_col), F.col("customer_id").alias(customer_col)
    )


def resolve_customer_id(
    df: DataFrame,
    identity_map: DataFrame,
    *,
    user_col: str = "user_id",
    anonymous_col: str = "anonymous_id",
    out: str = "customer_id",
) -> DataFrame:
    """Add `out` = customer of `user_col` if mapped, else of `anonymous_col`, else null."""
    by_user = _lookup(identity_map, USER_ID, "_resolve_user_value", "_resolve_user_customer")
    by_anon = _lookup(identity_map, ANONYMOUS_ID, "_resolve_anon_value", "_resolve_anon_customer")
    return (
        df.join(by_user, F.col(user_col) == F.col("_resolve_user_value"), how="left")
        .join(by_anon, F.col(anonymous_col) == F.col("_resolve_anon_value"), how="left")
        .withColumn(out, F.coalesce("_resolve_user_customer", "_resolve_anon_customer"))
        .drop("_resolve_user_value", "_resolve_user_customer", "_resolve_anon_value", "_resolve_anon_customer")
    )
