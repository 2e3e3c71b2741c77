"""`c360 activities`: bronze events -> silver/activity_stream and its day rows silver/activity_daily
(jobs.activities.daily: rebuilt with the stream, else the changed customers' rows after each MERGE),
plus gold/groups and gold/group_members.

What becomes an activity (docs/activities.md):
- track -> snake_case of the event name ("Order Placed" -> order_placed); page -> `viewed_page`,
  screen -> `viewed_screen` (names in config). identify, alias and group calls are not activities:
  they are identity and group facts, read by stitching and by jobs.groups.stage.
- entity_id is the stitched customer of the userId, else of the anonymousId (jobs.identity.resolution), so a
  pre-login event belongs to whoever the anonymous id was stitched into.
- A track with a groupId is a group event: one row for every member of the group and one for the
  sender if not a member, each carrying group_id (Blueshift Fig 3); an event without groupId has one
  row, for its sender (Fig 4).
- activity_uuid = sha2(message_id | entity_id): stable across reruns, one per (event, entity).

Runs: the first run, or `--full`, rebuilds the table. Otherwise the run MERGEs only rows whose
attribution or occurrence numbers can change: rows of the entities with new events (bronze rows
ingested after the stream's latest `ingested_on`, or on the run date), of customer ids merged or
split today (gold/identity_lineage), of groups
whose member set changed, and rows still unresolved. Their events are re-attributed with today's
identity map and group members, occurrence numbers are recomputed for every entity involved, and
rows that differ are updated, inserted or deleted; other rows and their files are not rewritten.

The summary's last note splits the stage's time into its steps (jobs.core.steps): memberships, the
night's new events, the stream's changes and the day rows they bring (computed), then the writes of
the stream, the day rows and the group tables, and the count of unresolved rows.
"""
from __future__ import annotations

import functools
import operator
from collections.abc import Callable
from typing import NamedTuple

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F
from pyspark.sql.types import MapType, StringType

from jobs.core import tables
from jobs.core.catalog import SPECS
from jobs.groups import stage as groups
from jobs.activities import daily
from jobs.activities.settings import (
    CAMEL_BOUNDARY,
    EDGE_UNDERSCORES,
    FEATURE_SLOTS,
    NOT_WORD,
    ActivityMapping,
    ActivitySettings,
    TransactionKey,
    snake_case,
)
from jobs.core.context import JobContext, RunParams, StageResult
from jobs.core.session import broadcast_if_small, computed
from jobs.core.steps import StepClock
from jobs.identity.identifiers import ANONYMOUS_ID, EMAIL, PHONE, USER_ID, normalize_email, normalize_id
from jobs.identity.phones import DEFAULT_PHONE_REGION, with_e164
from jobs.identity.resolution import resolve_customer_id


ACTIVITY_CALLS = ("track", "page", "screen")
UNNAMED_ACTIVITY = "unnamed_event"
PROPERTIES_MAP = MapType(StringType(), StringType())
NORMALIZERS: dict[str, Callable[[Column], Column]] = {
    USER_ID: normalize_id, ANONYMOUS_ID: normalize_id, EMAIL: normalize_email,
    # trimmed here, then read as E.164 by jobs.identity.phones (to_activity_events)
    PHONE: normalize_id,
}

# silver/activity_stream's columns, in order (jobs.core.catalog).
STREAM_COLUMNS = SPECS[tables.ACTIVITY_STREAM].columns
# What describes the event itself, the same on every row the event fans out to.
EVENT_COLUMNS = tuple(
    c for c in STREAM_COLUMNS
    if c not in ("activity_uuid", "entity_id", "activity_occurence", "activity_repeated_at")
)
ATTRIBUTED_COLUMNS = ("activity_uuid", "entity_id", *EVENT_COLUMNS)



# ----------------------------------------------------------------------------------------------
# Events -> activities
# ----------------------------------------------------------------------------------------------


def activity_name(event: Column, renamed: dict[str, str] | None = None) -> Column:
    """snake_case of a track event name: "Order Placed" and "orderPlaced" -> order_placed; an event
    `renamed` names (activities.event_activities, matched by snake_case) gets its activity there."""
    words = F.regexp_replace(event, CAMEL_BOUNDARY, "$1_$2")
    snake = F.regexp_replace(F.regexp_replace(F.lower(words), NOT_WORD, "_"), EDGE_UNDERSCORES, "")
    name = F.when(snake != "", snake).otherwise(F.lit(UNNAMED_ACTIVITY))
    if not renamed:
        return name
    lookup = F.create_map(*[F.lit(v) for e, activity in renamed.items() for v in (snake_case(e), activity)])
    return F.coalesce(lookup[name], name)  # [] is null for a name not in the map


def _per_activity(mappings: dict[str, ActivityMapping], value_of: Callable[[ActivityMapping], Column | None]) -> Column:
    """CASE activity WHEN a THEN value_of(mapping of a) ... END over the mapped activities."""
    expr = None
    for activity, mapping in mappings.items():
        value = value_of(mapping)
        if value is None:
            continue
        is_activity = F.col("activity") == activity
        expr = F.when(is_activity, value) if expr is None else expr.when(is_activity, value)
    return expr if expr is not None else F.lit(None)


def to_activity_events(bronze: DataFrame, settings: ActivitySettings, phone_region: str = DEFAULT_PHONE_REGION) -> DataFrame:
    """One row per track/page/screen event with its features (EVENT_COLUMNS), not yet attributed.
    Identifiers read from a property as `phone` are read in E.164 (`phone_region`, jobs.identity.phones)."""
    props = F.col("_props")
    mappings = settings.mappings

    def feature(slot: str) -> Column:
        return _per_activity(mappings, lambda m: props[m.features[slot]] if slot in m.features else None)

    def mapped_identifier(m: ActivityMapping) -> Column | None:
        if m.identifier_type is None:
            return None
        return NORMALIZERS[m.identifier_type](props[m.identifier_property])

    identifier_from_property = _per_activity(mappings, mapped_identifier)
    type_from_property = _per_activity(
        mappings, lambda m: F.lit(m.identifier_type) if m.identifier_type is not None else None
    )
    kind = F.col("type")
    events = (
        bronze.filter(kind.isin(*ACTIVITY_CALLS))
        .select(
            "message_id", "group_id", "user_id", "properties",
            F.col("anonymous_id").alias("anonymous_entity_id"),
            F.col("run_date").alias("ingested_on"),
            F.col("timestamp").alias("activity_ts"),
            F.when(kind == "track", activity_name(F.col("event"), settings.event_activities))
            .when(kind == "page", F.lit(settings.page_activity))
            .otherwise(F.lit(settings.screen_activity))
            .alias("activity"),
            F.from_json("properties", PROPERTIES_MAP).alias("_props"),
        )
        .withColumn("_property_identifier", identifier_from_property.cast("string"))
        .select(
            "message_id", "activity", "activity_ts",
            *[feature(slot).cast("string").alias(slot) for slot in FEATURE_SLOTS],
            F.coalesce("properties", F.lit("{}")).alias("feature_json"),
            _per_activity(mappings, lambda m: props[m.revenue_property] if m.revenue_property else None)
            .try_cast("double").alias("revenue_impact"),
            "group_id", "user_id", "anonymous_entity_id", "ingested_on",
            F.coalesce(
                F.when(F.col("_property_identifier").isNotNull(), type_from_property),
                F.when(F.col("user_id").isNotNull(), F.lit(USER_ID)),
                F.when(F.col("anonymous_entity_id").isNotNull(), F.lit(ANONYMOUS_ID)),
            ).alias("identifier_type"),
            F.coalesce("_property_identifier", "user_id", "anonymous_entity_id").alias("identifier_value"),
        )
    )
    if not any(m.identifier_type == PHONE for m in mappings.values()):
        return events
    return with_e164(events, "identifier_value", phone_region, where=F.col("identifier_type") == PHONE)


def activity_uuid(entity: Column) -> Column:
    return F.sha2(F.concat_ws("|", F.col("message_id"), F.coalesce(entity, F.lit(""))), 256)


def attribute(events: DataFrame, identity_map: DataFrame, group_members: DataFrame) -> DataFrame:
    """Rows per (event, entity): the sender's customer, plus every member for a group event."""
    member_lists = group_members.groupBy("group_id").agg(F.collect_set("customer_id").alias("_members"))
    no_members = F.array().cast("array<string>")
    return (
        resolve_customer_id(
            events.select(*EVENT_COLUMNS), identity_map,
            user_col="user_id", anonymous_col="anonymous_entity_id", out="_sender",
        )
        # one pass: the sender (even unresolved, so the event is never lost) and every other member;
        # a group event without a sender (interface §3) is only its members' (or, with none yet,
        # one unresolved row)
        .join(member_lists, on="group_id", how="left")
        .withColumn("_members", F.coalesce("_members", no_members))
        .select(
            "*",
            F.explode(
                F.when(F.col("_sender").isNull() & (F.size("_members") > 0), F.col("_members"))
                .otherwise(F.array_distinct(F.concat(F.array("_sender"), F.col("_members"))))
            ).alias("entity_id"),
        )
        .withColumn("activity_uuid", activity_uuid(F.col("entity_id")))
        .select(*ATTRIBUTED_COLUMNS)
    )


TRANSACTION_ID = "_transaction_id"


def transaction_id(transactions: dict[str, TransactionKey]) -> Column:
    """The group transaction an event is a version of (activities.transactions): the array of its id
    properties' values, for an event of a configured activity with a groupId and every id property;
    null for any other event."""
    props = F.from_json("feature_json", PROPERTIES_MAP)
    named = F.lit(None).cast("array<string>")
    for activity, key in transactions.items():
        values = [props[name] for name in key.id_attributes]
        complete = functools.reduce(operator.and_, [v.isNotNull() for v in values])
        named = F.when((F.col("activity") == activity) & F.col("group_id").isNotNull() & complete,
                       F.array(*values)).otherwise(named)
    return named


def latest_transaction_versions(events: DataFrame, transactions: dict[str, TransactionKey]) -> DataFrame:
    """Events (EVENT_COLUMNS) with every group transaction reduced to its latest version (by time,
    then message_id): a re-sent transaction updates the earlier one in place. Other events pass."""
    if not transactions:
        return events
    keys = ["activity", "group_id", TRANSACTION_ID]
    keyed = events.select(*EVENT_COLUMNS).withColumn(TRANSACTION_ID, transaction_id(transactions))
    latest = (keyed.filter(F.col(TRANSACTION_ID).isNotNull()).groupBy(*keys)
              .agg(F.max_by("message_id", F.struct("activity_ts", "message_id")).alias("_latest")))
    return (keyed.join(latest, on=keys, how="left")  # null ids match nothing: every other event passes
            .filter(F.col("_latest").isNull() | (F.col("message_id") == F.col("_latest")))
            .select(*EVENT_COLUMNS))


def transaction_groups(events: DataFrame, transactions: dict[str, TransactionKey]) -> DataFrame:
    """(group_id) of the groups with a transaction version among `events`."""
    return (events.withColumn(TRANSACTION_ID, transaction_id(transactions))
            .filter(F.col(TRANSACTION_ID).isNotNull()).select("group_id").distinct())


def with_occurrence(rows: DataFrame) -> DataFrame:
    """activity_occurence (1-based by time) and activity_repeated_at per (entity, activity)."""
    per_entity = Window.partitionBy("entity_id", "activity").orderBy("activity_ts", "activity_uuid")
    resolved = F.col("entity_id").isNotNull()
    return (
        rows.withColumn("activity_occurence", F.when(resolved, F.row_number().over(per_entity)))
        .withColumn("activity_repeated_at", F.when(resolved, F.lead("activity_ts").over(per_entity)))
        .select(*STREAM_COLUMNS)
    )


def build_stream(
    bronze: DataFrame, identity_map: DataFrame, group_members: DataFrame, settings: ActivitySettings,
    phone_region: str = DEFAULT_PHONE_REGION,
) -> DataFrame:
    """The whole activity stream from bronze (first run and `--full`)."""
    return (
        to_activity_events(bronze, settings, phone_region)
        .transform(lambda events: latest_transaction_versions(events, settings.transactions))
        .transform(lambda events: attribute(events, identity_map, group_members))
        .transform(with_occurrence)
    )


# ----------------------------------------------------------------------------------------------
# Incremental runs: re-attribute only what can have changed
# ----------------------------------------------------------------------------------------------


def remapped_entities(lineage: DataFrame, run_date) -> DataFrame:
    """Customer ids merged or split on the run date (both sides of each change)."""
    today = lineage.filter(F.col("run_date") == F.lit(run_date))
    ids = today.select(F.col("old_id").alias("entity_id")).union(today.select(F.col("new_id").alias("entity_id")))
    return ids.filter(F.col("entity_id").isNotNull()).distinct()


def changed_groups(old_members: DataFrame, new_members: DataFrame) -> DataFrame:
    """Groups whose set of members differs between two versions of gold/group_members."""
    old = old_members.select("group_id", "customer_id")
    new = new_members.select("group_id", "customer_id")
    return old.subtract(new).union(new.subtract(old)).select("group_id").distinct()


def rows_in_scope(stream: DataFrame, entity_ids: DataFrame, group_ids: DataFrame) -> DataFrame:
    """Stream rows of these entities, of group events of these groups, and unresolved rows."""
    entities = entity_ids.select("entity_id").distinct().withColumn("_scope_entity", F.lit(True))
    groups_ = group_ids.select("group_id").distinct().withColumn("_scope_group", F.lit(True))
    return (
        stream.join(entities, on="entity_id", how="left")
        .join(groups_, on="group_id", how="left")
        .filter(F.col("_scope_entity") | F.col("_scope_group") | F.col("entity_id").isNull())
        .select(*STREAM_COLUMNS)
    )


def _as_is(df: DataFrame) -> DataFrame:
    return df


def unread_bronze(bronze: DataFrame, stream: DataFrame, run_date) -> DataFrame:
    """Bronze rows the stream has not read: ingested after its latest ingested_on, or on the run
    date itself (so a rerun of a date sees that date's rows again). `bronze` ends at the run date."""
    since = stream.agg(F.max("ingested_on")).first()[0]  # one date
    new = F.col("run_date") == F.lit(run_date)
    return bronze.filter(new if since is None else new | (F.col("run_date") > F.lit(since)))


class StreamChanges(NamedTuple):
    """What a night changes in the stream: `rows` are its change set (tables.change_set: inserts,
    updates, deletes); `after` holds every row, as it will be after the night, of every `involved`
    entity (so their day rows are rebuilt without reading the stream again)."""
    rows: DataFrame
    after: DataFrame
    involved: DataFrame


def incremental_changes(
    stream: DataFrame,
    new_events: DataFrame,
    identity_map: DataFrame,
    group_members: DataFrame,
    *,
    changed_group_ids: DataFrame,
    remapped_ids: DataFrame,
    reuse: Callable[[DataFrame], DataFrame] = _as_is,
    transactions: dict[str, TransactionKey] | None = None,
) -> StreamChanges:
    """Rows that differ from the stream (a tables.change_set: inserts, updates, deletes), with the
    involved entities and all their rows after the night (StreamChanges).

    Every entity whose rows may change is "involved" (`involved`: one row per customer, marked by
    broadcast_if_small); its rows are recomputed as a whole (its
    occurrence numbers depend on all of them) and only rows that come out different are returned.
    `reuse` is applied to results read several times below (the stage computes them once,
    jobs.core.session.computed; without it the plan repeats each of them, and the stream scans,
    once per use).
    """
    new_rows = reuse(attribute(new_events, identity_map, group_members))
    touched = remapped_ids.select("entity_id").union(new_rows.select("entity_id"))
    if transactions:
        # a new version of a group transaction replaces a version in the stream: its group's events are in scope
        changed_group_ids = changed_group_ids.select("group_id").union(transaction_groups(new_events, transactions))
    scope = reuse(rows_in_scope(stream, touched.filter(F.col("entity_id").isNotNull()), changed_group_ids))
    # events already in the stream whose attribution may change; today's bronze copy wins
    carried = (
        scope.select(*EVENT_COLUMNS)
        .join(new_rows.select("message_id"), on="message_id", how="left_anti")
        .dropDuplicates(["message_id"])
    )
    if transactions:
        # the latest version of each transaction among tonight's and the stream's wins (a late
        # earlier version changes nothing); the others' rows are deleted
        survivors = latest_transaction_versions(new_events.select(*EVENT_COLUMNS).unionByName(carried), transactions)
        desired = reuse(attribute(survivors, identity_map, group_members))
    else:
        desired = reuse(new_rows.unionByName(attribute(carried, identity_map, group_members)))
    involved = reuse(
        desired.select("entity_id").union(scope.select("entity_id"))
        .filter(F.col("entity_id").isNotNull()).distinct()
    ).transform(broadcast_if_small)
    current = reuse(
        stream.join(involved, on="entity_id", how="left_semi").unionByName(scope.filter(F.col("entity_id").isNull()))
    )
    replaced = scope.select("activity_uuid").union(desired.select("activity_uuid"))
    # the other rows of involved entities: unchanged events whose occurrence numbers may shift
    kept = current.join(replaced, on="activity_uuid", how="left_anti").select(*ATTRIBUTED_COLUMNS)
    upserts = reuse(with_occurrence(desired.unionByName(kept)))
    rows = tables.change_set(current, upserts, tables.ACTIVITY_STREAM)
    # every row of an involved entity is in `current` (its rows before) and, unless deleted, in
    # `upserts` (activity_uuid names the entity, so no row moves between entities)
    return StreamChanges(rows=rows, after=upserts, involved=involved)


# ----------------------------------------------------------------------------------------------
# Stage
# ----------------------------------------------------------------------------------------------

CHANGE_METRICS = {tables.INSERT: "rows_inserted", tables.UPDATE: "rows_updated", tables.DELETE: "rows_deleted"}
MERGE_METRICS = {
    "numTargetRowsCopied": "rows_copied",
    "numTargetFilesRemoved": "files_rewritten",
    # rows replaced in place: marked deleted in their file's deletion vector, the file kept
    "numTargetDeletionVectorsAdded": "deletion_vectors_added",
    "numTargetDeletionVectorsUpdated": "deletion_vectors_updated",
}


def _full_build(spark, wh, bronze, identity_map, members, settings, phone_region) -> dict:
    written = wh.overwrite_counted(spark, build_stream(bronze, identity_map, members, settings, phone_region),
                                   tables.ACTIVITY_STREAM)
    wh.ensure_properties(spark, tables.ACTIVITY_STREAM)  # deletion vectors, for the next night's MERGE
    return {"mode": "full", "activities": written}


def _merge(spark, wh, stream, new_events, identity_map, members, run_date, version, daily_in_step: bool,
           transactions: dict[str, TransactionKey], clock: StepClock) -> dict:
    # gold/group_members still holds the previous run's members here: it is rewritten after the
    # merge, so a run that fails in between finds the same difference when repeated.
    old_members = wh.read(spark, tables.GROUP_MEMBERS, missing="empty")
    lineage = wh.read(spark, tables.IDENTITY_LINEAGE, missing="empty")
    changes = incremental_changes(
        stream, new_events, identity_map, members,
        changed_group_ids=changed_groups(old_members, members),
        remapped_ids=remapped_entities(lineage, run_date),
        reuse=computed,
        transactions=transactions,
    )
    # Computed before the changes commit to the stream, which they read. (Not persisted: after a
    # commit Delta recomputes every cached plan that reads the table, Spark's recacheByPath, and
    # that cost more than the MERGE itself, 17 of 19 s at bench scale S.)
    rows = changes.rows.localCheckpoint(eager=True)
    clock.done("changes")
    # the involved customers' day rows, from their rows after the night (not the stream again)
    day_rows = (daily.refresh_source(spark, wh, changes.after, changes.involved).localCheckpoint(eager=True)
                if daily_in_step else None)
    clock.done("day_rows")
    wh.apply_changes(spark, tables.ACTIVITY_STREAM, rows)
    clock.done("stream_write")
    # a night that changes nothing commits nothing: then every count is 0
    counts = wh.change_counts_since(spark, tables.ACTIVITY_STREAM, version)
    merged = wh.operation_metrics_since(spark, tables.ACTIVITY_STREAM, version)
    metrics = {"mode": "merge", **{name: counts[change] for change, name in CHANGE_METRICS.items()},
               **{name: merged.get(key, 0) for key, name in MERGE_METRICS.items()}}
    metrics.update(daily.refresh_daily(spark, wh, day_rows) if day_rows is not None else daily.rebuild_daily(spark, wh))
    clock.done("daily_write")
    return metrics


def run(ctx: JobContext, params: RunParams) -> StageResult:
    spark, wh, settings = ctx.spark, ctx.warehouse, ctx.config.activities
    phone_region = ctx.config.identity.default_phone_region
    bronze = wh.read(spark, tables.BRONZE_EVENTS).filter(F.col("run_date") <= F.lit(ctx.run_date))
    calls, identity_map = groups.read_inputs(spark, wh, ctx.run_date)
    notes: list[str] = []
    version = wh.version(spark, tables.ACTIVITY_STREAM)
    # a stream written before its spec asked for deletion vectors gets them now (one commit, once),
    # before anything reading the stream is cached (a commit recomputes those caches)
    wh.ensure_properties(spark, tables.ACTIVITY_STREAM)
    # silver/activity_daily follows the stream's commits; one that missed any is rebuilt whole
    daily_in_step = daily.stream_version_built_from(spark, wh) == wh.version(spark, tables.ACTIVITY_STREAM)
    clock = StepClock()
    history = computed(groups.build_membership_history(calls, identity_map, ctx.run_date, ctx.config.groups))
    members = computed(groups.current_members(history))
    clock.done("memberships")
    full = params.rebuild or version < 0
    if not full:
        stream = wh.read(spark, tables.ACTIVITY_STREAM)
        new_events = computed(to_activity_events(unread_bronze(bronze, stream, ctx.run_date), settings, phone_region))
        new_count, stream_rows = new_events.count(), stream.count()
        clock.done("new_events")
        # a merge that recomputes most of the table costs more than writing it again
        if new_count > settings.rebuild_above_new_share * stream_rows:
            full = True
            notes.append(f"rebuilt: {new_count:,} new activities against {stream_rows:,} rows in the stream")
    if full:
        metrics = _full_build(spark, wh, bronze, identity_map, members, settings, phone_region)
        clock.done("stream_write")
        metrics.update(daily.rebuild_daily(spark, wh))
        clock.done("daily_write")
    else:
        metrics = _merge(spark, wh, stream, new_events, identity_map, members, ctx.run_date, version, daily_in_step,
                         settings.transactions, clock)
    metrics.update(groups.write_groups(spark, wh, groups.build_groups(calls, phone_region, ctx.config.groups), history))
    clock.done("groups_write")
    # files without nulls in entity_id are skipped by their statistics, so this reads little
    unresolved = wh.read(spark, tables.ACTIVITY_STREAM).filter(F.col("entity_id").isNull()).count()
    metrics["unresolved"] = unresolved
    if unresolved:
        notes.append(f"{unresolved:,} activities have no stitched customer yet (retried every run)")
    clock.done("unresolved")
    notes.append(clock.note())
    return StageResult(metrics=metrics, notes=notes)
