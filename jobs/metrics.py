"""The order definitions and column expressions shared by the per-customer measures, as of a run date.

The one place c360's jobs define an order (jobs.rfm.stage, jobs.traits.settings and jobs.traits.stage
take every name, slot and type from here). The definitions are interface §5 and the seed Lens model's:
order_id = trim(feature1) of an order activity (a rejection or invoice carries the order_id of the
placed line it refers to), order_no = entity_id || '-' || split_part(order_id, '-', 1), so a
customer's order counts once however many lines it has, and order_value = feature9 as a number,
summed exactly (EXACT_DECIMAL).
"""
from __future__ import annotations

import datetime as dt
from typing import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

# The order activities (activity names of silver/activity_stream).
from jobs.metric_names import ORDER_ID, ORDER_INVOICED, ORDER_NO, ORDER_PLACED, ORDER_REJECTED  # noqa: F401
# The activities that carry an order_id (silver/activity_daily keeps their order numbers per day).
ORDER_ACTIVITIES = (ORDER_PLACED, ORDER_REJECTED, ORDER_INVOICED)
# Where an order activity carries its order_id and order_value (conf activities.mappings fills them).
ORDER_ID_SLOT = "feature1"
ORDER_VALUE_SLOT = "feature9"
ORDER_NUMBER_SEPARATOR = "-"
# Money is summed as a decimal: a sum of doubles depends on the order Spark adds the rows in (file
# layout, partitions), so two runs over the same data could differ in the last bits and break ties
# differently. Nine decimals keep any real currency amount exact. The lens sums in the same type, so
# gold/rfm's monetary and the lens's agree to the last digit: one definition, the lens's.
from lens.plan import SUM_DECIMAL as EXACT_DECIMAL  # noqa: E402


def as_of(activity_stream: DataFrame, run_date: dt.date) -> DataFrame:
    """Attributed activities on or before the run date (later ones do not exist yet for this run)."""
    return activity_stream.filter(
        F.col("entity_id").isNotNull() & (F.to_date("activity_ts") <= F.lit(run_date))
    )


def order_id() -> Column:
    value = F.trim(F.col(ORDER_ID_SLOT))
    return F.when(value != "", value)


def order_no() -> Column:
    """entity_id-<order number>; null when the activity carries no order_id."""
    number = F.split_part(order_id(), F.lit(ORDER_NUMBER_SEPARATOR), F.lit(1))
    return F.concat(F.col("entity_id"), F.lit(ORDER_NUMBER_SEPARATOR), number)


def numeric(column: str) -> Column:
    """A feature slot (text) or revenue_impact as a double; text that is not a number is null.

    (Spark's string-to-number cast ignores surrounding blanks, as the Lens model's trim would.)"""
    return F.col(column).try_cast("double")


def exact_decimal_sum(value: Column) -> Column:
    """sum(value) as an EXACT_DECIMAL: partial sums (silver/activity_daily) add up to the same total."""
    return F.sum(value.try_cast(EXACT_DECIMAL))


def exact_sum(value: Column) -> Column:
    """sum(value) computed exactly (see EXACT_DECIMAL), returned as a double."""
    return exact_decimal_sum(value).cast("double")


def distinct_count_of_lists(lists: Column) -> Column:
    """count(DISTINCT x) over the elements of every array aggregated (nulls skipped), as a long:
    the distinct order numbers of a customer's days (silver/activity_daily.order_numbers)."""
    return F.size(F.array_distinct(F.flatten(F.collect_list(lists)))).cast("long")


def exact_avg(value: Column) -> Column:
    return F.avg(value.try_cast(EXACT_DECIMAL)).cast("double")


# Values derived from an order activity's features, by the names traits' `of` uses for them.
DERIVED_VALUES: dict[str, Callable[[], Column]] = {ORDER_NO: order_no, ORDER_ID: order_id}
