"""`c360 traits`: gold/traits, one row per customer of silver/customers, one column per computed trait.

The traits are config (`traits.computed`, jobs/traits/settings.py, docs/traits.md), after the seed
recipe's computed traits (Last, Event Counter, Aggregation) and interface §5. Every trait sees the
customer's activities dated on or before the run date, group events included (the activity stream
already holds one row per member), optionally only one activity and only a window (lens.calendar):
- `{unit, start, end}` = the units start..end from the run date D's unit (0 = D's own, cut at D);
- `{days: N}` = the N calendar days ending on D (D included);
- `{calendar_months: N}` = the N whole calendar months before D's month (1 = "last month").

Every trait that the customer's day rows (silver/activity_daily, jobs.activities.daily) can answer
comes out of one aggregation over them; the others (a value at the last activity, averages,
distinct counts of other values) out of one aggregation over the stream, read only when needed.
A customer without matching activity gets 0 for count, count_distinct, sum and monthly averages,
and null for the others (percentage: null when the denominator is 0).

gold/group_traits (`traits.group`, docs/levels.md): the same kinds for each group of gold/groups over
the group's activities, its own events (those with its groupId) and every other activity of its
members (another group's event is that group's), each event once per group however many members it
reached (one row per message_id: the customer first by id, sender or member, so an order's lines all
count for one order number); plus `members`, how many members have a matching activity (the group's
event counts for each member it reached, as in their own traits).
"""
from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.context import JobContext, RunParams, StageResult
from jobs.core.session import concurrently
from jobs.metrics import (
    DERIVED_VALUES,
    ORDER_ACTIVITIES,
    ORDER_NO,
    ORDER_VALUE_SLOT,
    as_of,
    exact_avg,
    exact_sum,
    numeric,
)
from jobs.traits.settings import (
    MEMBERS_KIND,
    NUMERIC_KINDS,
    SEQUENCE_KIND,
    TraitDefinition,
    TraitSettings,
    TraitWindow,
)


PERCENT = 100.0
# kinds whose value for a customer without matching activity is 0 rather than null
ZERO_WHEN_NONE = ("count", "count_distinct", "sum", MEMBERS_KIND, SEQUENCE_KIND)
MICROS_PER_SECOND = 1_000_000
# the name a group event that reached nobody carries in its group's measures (its order number's first
# part): the group's id after this prefix; only a member whose user id is `group:<that group>` shares it
GROUP_NAMED = "group:"


def window_bounds(window: TraitWindow, run_date: dt.date) -> tuple[dt.date, dt.date]:
    """[first, last] activity dates (inclusive) of a window as of the run date."""
    return window.canonical.bounds(run_date)


def _matches(trait: TraitDefinition, run_date: dt.date) -> Column:
    condition = F.lit(True)
    if trait.activity is not None:
        condition = condition & (F.col("activity") == trait.activity)
    if trait.window is not None:
        first, last = window_bounds(trait.window, run_date)
        condition = condition & F.col("_date").between(F.lit(first), F.lit(last))
    return condition


def _source(name: str) -> Column:
    return DERIVED_VALUES[name]() if name in DERIVED_VALUES else F.col(name)


def aggregate(trait: TraitDefinition, run_date: dt.date) -> Column:
    """The trait's aggregate over one customer's activities, before ZERO_WHEN_NONE and averaging."""
    when = _matches(trait, run_date)
    kind = trait.kind
    if kind in ("last", "first"):
        pick = F.max if kind == "last" else F.min
        if trait.of is None:
            return pick(F.when(when, F.col("activity_ts")))
        # the value at the latest (earliest) matching activity; activity_uuid decides equal times
        at = F.struct(F.col("activity_ts"), F.col("activity_uuid"), _source(trait.of).alias("value"))
        return pick(F.when(when, at)).getField("value")
    if kind == "days_since_last":
        return F.datediff(F.lit(run_date), F.max(F.when(when, F.col("_date"))))
    if kind == "count":
        return F.count(F.when(when, F.lit(1)))
    if kind == "count_distinct":
        return F.count_distinct(F.when(when, _source(trait.of)))
    if kind in NUMERIC_KINDS:
        value = F.when(when, numeric(trait.of))
        return {"sum": exact_sum, "avg": exact_avg, "min": F.min, "max": F.max}[kind](value)
    raise ValueError(f"trait {trait.name!r}: kind {kind!r} is not an aggregate")


def finish(trait: TraitDefinition) -> Column:
    """The gold/traits column from the aggregated one (null when the customer had no activity)."""
    column = F.col(trait.name)
    if trait.kind == "percentage":
        numerator, denominator = F.col(trait.numerator), F.col(trait.denominator)
        return (F.lit(PERCENT) * numerator / F.when(denominator != 0, denominator)).alias(trait.name)
    if trait.kind in ZERO_WHEN_NONE:
        column = F.coalesce(column, F.lit(0.0 if trait.kind == "sum" else 0))
    if trait.monthly_average:
        column = column.cast("double") / F.lit(float(trait.window.canonical.calendar_months))
    return column.alias(trait.name)


# numeric trait sources with day aggregates in silver/activity_daily: column -> its columns' prefix
DAILY_VALUES = {"revenue_impact": "revenue", ORDER_VALUE_SLOT: "order_value"}


def daily_aggregate(trait: TraitDefinition, run_date: dt.date) -> Column | None:
    """The trait's aggregate over one customer's silver/activity_daily rows (columns `activity`,
    `activity_date`, ...), equal to `aggregate` over the stream; None when the day rows do not hold
    what it needs (a value at the last activity, an average, a distinct count of another value),
    and for the distinct order counts, which day_order_counts answers from them."""
    when = _matches(trait, run_date)
    kind = trait.kind
    if kind in ("last", "first") and trait.of is None:
        return F.max(F.when(when, F.col("last_ts"))) if kind == "last" else F.min(F.when(when, F.col("first_ts")))
    if kind == "days_since_last":
        return F.datediff(F.lit(run_date), F.max(F.when(when, F.col("_date"))))
    if kind == "count":
        return F.sum(F.when(when, F.col("activities")))
    if kind in ("sum", "min", "max") and trait.of in DAILY_VALUES:
        column = F.col(f"{DAILY_VALUES[trait.of]}_{kind}")
        return {"sum": lambda c: F.sum(c).cast("double"), "min": F.min, "max": F.max}[kind](F.when(when, column))
    return None


def counts_orders(trait: TraitDefinition) -> bool:
    """Whether the trait counts the distinct order numbers of one order activity, which
    silver/activity_daily holds per day (order_numbers): day_order_counts answers it."""
    return trait.kind == "count_distinct" and trait.of == ORDER_NO and trait.activity in ORDER_ACTIVITIES


def answered_by_days(trait: TraitDefinition, run_date: dt.date) -> bool:
    """Whether the customer's day rows answer the trait (daily_aggregate or day_order_counts)."""
    return counts_orders(trait) or daily_aggregate(trait, run_date) is not None


def day_order_counts(days: DataFrame, traits: list[TraitDefinition], run_date: dt.date) -> DataFrame:
    """customer_id + one column per trait of `traits` (each counts_orders), from day rows: how many
    distinct order numbers of its activity the customer has on days in its window.

    An order's lines may fall on several days, so a count is the size of the union of those days'
    lists. The union is taken by exploding the lists into one row per customer and order number,
    which records for every trait whether any of the number's days matched it; the matches are then
    counted per customer. Both steps are hash aggregations of plain columns. (A distinct count of
    collected lists, jobs.metrics.distinct_count_of_lists, is an object aggregation that Spark turns
    into a sort of every day row once a task sees more than 128 customers. At bench scale L the
    customer traits took 22.7 s warm with the six default order counts counted that way, 12.7 s
    this way, with equal rows.)"""
    numbers = (
        days.filter(F.col("activity").isin(*sorted({t.activity for t in traits})))
        .select("entity_id", "activity", F.col("activity_date").alias("_date"),
                F.explode("order_numbers").alias("_order_no"))
    )
    # keyed by customer_id from the start: a trait may be named entity_id, never customer_id
    matched = numbers.groupBy(F.col("entity_id").alias("customer_id"), "_order_no").agg(
        *[F.max(_matches(t, run_date)).alias(t.name) for t in traits])
    return matched.groupBy("customer_id").agg(*[F.count_if(F.col(t.name)).alias(t.name) for t in traits])


def _per_customer(rows: DataFrame, date: Column, aggregates: list[Column]) -> DataFrame:
    return (
        rows.withColumn("_date", date)
        .groupBy(F.col("entity_id").alias("customer_id"))
        .agg(*aggregates)
    )


def sequence_counts(activity_stream: DataFrame, traits: list[TraitDefinition], run_date: dt.date) -> DataFrame:
    """customer_id + one column per not_followed_by trait: how many of the customer's `activity`
    events (distinct message_id) dated in the trait's window had no `followed_by` activity of the
    customer at the same instant or within `within` after it (the end included). An event whose
    `within` reaches the day after the run date (its end at midnight included) is not counted yet:
    what would follow it may still come, and the stream holds nothing after the run date. One pass
    over the two activities' rows, a range window over each customer's timeline."""
    wanted = sorted({a for t in traits for a in (t.activity, t.followed_by)})
    # the day after D's first instant in the session's time zone, as `_date` (to_date) reads days
    end_of_run_date = F.unix_micros(F.to_timestamp(F.lit((run_date + dt.timedelta(days=1)).isoformat())))
    rows = (
        as_of(activity_stream, run_date)
        .filter(F.col("entity_id").isNotNull() & F.col("activity").isin(*wanted))
        .select("entity_id", "message_id", "activity", F.to_date("activity_ts").alias("_date"),
                F.unix_micros("activity_ts").alias("_us"))
    )
    counts = []
    for index, trait in enumerate(traits):
        span = int(trait.within.duration.total_seconds()) * MICROS_PER_SECOND
        ahead = Window.partitionBy("entity_id").orderBy("_us").rangeBetween(0, span)
        followed = F.max(F.col("activity") == F.lit(trait.followed_by)).over(ahead)
        # the window expressions are columns first: an aggregate may not hold a window function
        rows = rows.withColumn(f"_not_followed_{index}", _matches(trait, run_date) & ~followed
                               & (F.col("_us") + F.lit(span) < end_of_run_date))
        counts.append(F.count_distinct(F.when(F.col(f"_not_followed_{index}"), F.col("message_id"))).alias(trait.name))
    return rows.groupBy(F.col("entity_id").alias("customer_id")).agg(*counts)


def compute_traits(
    activity_stream: DataFrame, customers: DataFrame, settings: TraitSettings, run_date: dt.date,
    activity_daily: DataFrame | None = None,
) -> DataFrame:
    """customer_id + one column per trait, for every customer in `customers`.

    With `activity_daily` (silver/activity_daily), every trait its day rows can answer is computed
    from them and only the others read the stream (the default traits never do)."""
    aggregated = [t for t in settings.computed if t.kind != "percentage"]
    sequences = [t for t in aggregated if t.kind == SEQUENCE_KIND]
    order_counts = [t for t in aggregated if counts_orders(t)] if activity_daily is not None else []
    from_daily = {t.name: daily_aggregate(t, run_date) for t in aggregated} if activity_daily is not None else {}
    from_daily = {name: column for name, column in from_daily.items() if column is not None}
    from_stream = [t for t in aggregated if t.name not in from_daily and t not in sequences and t not in order_counts]
    people = customers.select("customer_id").distinct()
    days = activity_daily.filter(F.col("activity_date") <= F.lit(run_date)) if activity_daily is not None else None
    if from_daily:
        per_customer = _per_customer(days, F.col("activity_date"),
                                     [column.alias(name) for name, column in from_daily.items()])
        people = people.join(per_customer, on="customer_id", how="left")
    if order_counts:
        people = people.join(day_order_counts(days, order_counts, run_date), on="customer_id", how="left")
    if from_stream:
        per_customer = _per_customer(as_of(activity_stream, run_date), F.to_date("activity_ts"),
                                     [aggregate(t, run_date).alias(t.name) for t in from_stream])
        people = people.join(per_customer, on="customer_id", how="left")
    if sequences:
        people = people.join(sequence_counts(activity_stream, sequences, run_date), on="customer_id", how="left")
    counted = people.select("customer_id", *[finish(t) for t in aggregated])
    return counted.select("customer_id", *[finish(t) if t.kind == "percentage" else t.name for t in settings.computed])


def group_activities(activity_stream: DataFrame, group_members: DataFrame, run_date: dt.date) -> DataFrame:
    """(group_id, the stream's other columns, _member): each group's activity rows as of the run date,
    its own events and its members' other activities (`_member`: the member whose row it is, null for
    a sender who is not one); an event reaching several members is still several rows here. One pass
    over the stream: a group event's row goes to its group only (a company's order is not the
    household's of a member of both), any other row to every group of its customer. A group event
    that reached nobody yet (sent by nobody, or by someone not stitched, to a group without members)
    is its one unresolved row (entity_id null): still the group's."""
    dated = activity_stream.filter(F.to_date("activity_ts") <= F.lit(run_date))
    stream = dated.filter(F.col("entity_id").isNotNull() | F.col("group_id").isNotNull())
    others = [c for c in stream.columns if c != "group_id"]
    no_groups = F.array().cast("array<string>")
    member_of = group_members.groupBy(F.col("customer_id").alias("entity_id")).agg(
        F.collect_set("group_id").alias("_member_of"))
    rows = (stream.join(member_of, on="entity_id", how="left")
            .filter(F.col("group_id").isNotNull() | F.col("_member_of").isNotNull())
            .withColumn("_member_of", F.coalesce("_member_of", no_groups)))
    groups_of_row = F.when(F.col("group_id").isNotNull(), F.array("group_id")).otherwise(F.col("_member_of"))
    return (
        rows.select(*others, "_member_of", F.explode(groups_of_row).alias("group_id"))
        .select("group_id", *others,
                F.when(F.array_contains("_member_of", F.col("group_id")), F.col("entity_id")).alias("_member"))
    )


def compute_group_traits(activity_stream: DataFrame, groups: DataFrame, group_members: DataFrame,
                         traits: list[TraitDefinition], run_date: dt.date) -> DataFrame:
    """group_id + one column per group trait, for every group of `groups` (module docstring)."""
    rows = group_activities(activity_stream, group_members, run_date).withColumn("_date", F.to_date("activity_ts"))
    aggregated = [t for t in traits if t.kind != "percentage"]
    out = groups.select("group_id").distinct()
    per_event = [t for t in aggregated if t.kind != MEMBERS_KIND]
    if per_event:
        # one row per event and group: the customer first by id, sender or member (then the row id),
        # so every line of an order names the same customer in its order number
        first = Window.partitionBy("group_id", "message_id").orderBy(F.col("entity_id").asc_nulls_last(), "activity_uuid")
        events = (rows.withColumn("_pick", F.row_number().over(first)).filter(F.col("_pick") == 1)
                  # an event that reached nobody is named by its group (order number `group:<group_id>-<n>`)
                  .withColumn("entity_id", F.coalesce("entity_id", F.concat(F.lit(GROUP_NAMED), "group_id"))))
        out = out.join(events.groupBy("group_id").agg(*[aggregate(t, run_date).alias(t.name) for t in per_event]),
                       on="group_id", how="left")
    counted = [t for t in aggregated if t.kind == MEMBERS_KIND]
    if counted:
        members = rows.filter(F.col("_member").isNotNull()).groupBy("group_id").agg(
            *[F.count_distinct(F.when(_matches(t, run_date), F.col("_member"))).alias(t.name) for t in counted])
        out = out.join(members, on="group_id", how="left")
    finished = out.select("group_id", *[finish(t) for t in aggregated])
    return finished.select("group_id", *[finish(t) if t.kind == "percentage" else t.name for t in traits])


def run(ctx: JobContext, params: RunParams) -> StageResult:
    spark, wh, settings = ctx.spark, ctx.warehouse, ctx.config.traits
    stream = wh.read(spark, tables.ACTIVITY_STREAM)  # scanned only for traits the day rows cannot answer

    def customer_traits() -> int:
        daily = wh.read(spark, tables.ACTIVITY_DAILY)
        customers = wh.read(spark, tables.SILVER_CUSTOMERS)
        return wh.overwrite_counted(spark, compute_traits(stream, customers, settings, ctx.run_date, daily), tables.TRAITS)

    def group_traits() -> int:
        # written even with no group traits (group_id alone), so segments never read earlier runs' columns
        groups = wh.read(spark, tables.GROUPS, missing="empty")
        members = wh.read(spark, tables.GROUP_MEMBERS, missing="empty")
        return wh.overwrite_counted(spark, compute_group_traits(stream, groups, members, settings.group, ctx.run_date),
                                    tables.GROUP_TRAITS)

    # two tables, neither read by the other's write: both at once (spark.concurrent_jobs)
    rows, group_rows = concurrently(spark, [customer_traits, group_traits], ctx.config.spark.concurrent_jobs)
    metrics = {"customers": rows, "traits": len(settings.computed), "groups": group_rows,
               "group_traits": len(settings.group)}
    notes = [f"traits: {', '.join(t.name for t in settings.computed)}"]
    if settings.group:
        notes.append(f"group traits: {', '.join(t.name for t in settings.group)}")
    return StageResult(metrics=metrics, notes=notes)
