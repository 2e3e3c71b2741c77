"""`c360 stitch`: identity graph -> rules -> connected components -> stable ids, identity map, customers.

Flow of one run for run date D:

1. New bronze rows (run_date after the last stitched bronze date, or = D; never after D; all of
   them with `--full`) become evidence (jobs.identity.evidence), phones read as E.164
   (jobs.identity.phones), merged into silver/identity_identifiers, silver/identity_edges and, for alias
   calls, silver/identity_aliases (min/max merges: re-runs change nothing); their identify and group
   calls are added to silver/profile_calls (jobs.identity.profile_calls), which survivorship reads. All alias claims are
   then resolved against every identifier seen (a previousId links to each anonymous_id and
   user_id of that value, else it is an anonymous_id) into silver/identity_alias_edges.
2. The *scope* to recompute: with `--full` (or on the first run) every identifier; otherwise the
   identifiers seen in the new rows and both ends of every alias edge that changed, plus every
   member of the previous graph components they belong to (the `component` column of gold/identity_map: components before per-customer limits,
   so a limit decision is always taken over a whole component). The scope is closed: an edge
   leaving it can only lead to an identifier a rule removed.
3. Rules (jobs.identity.rules): alias calls merge user ids into persons (the components of all
   stored alias edges, so the hub cap sees every alias partner even of an identifier outside the
   scope), blocked values and hubs are removed, connected components (jobs.identity.graph) of the rest,
   then per-customer limits (counting persons) split the components that break them.
4. Stable customer ids against the previous labels of the scope (jobs.identity.ids; a person
   merged by alias is named by the alias target, from the previousIds of all alias calls),
   lineage.
5. gold/identity_map is merged for the scope only (untouched customers are not rewritten),
   gold/identity_audit (removed identifiers, cut edges, unparseable phones, alias merges of two
   user ids) and gold/identity_lineage get this run's rows (insert-if-absent, so a
   re-run of D adds nothing). silver/customers (jobs.identity.survivorship) is written whole on a
   full run; an incremental run rebuilds the rows of the scope's customers (their ids before and
   after) and applies the rows that changed (Warehouse.apply_changes), since every bronze row
   naming one of a customer's identifiers put that identifier, and so its whole component, in
   the scope.

The summary's last note splits the stage's time into its steps (jobs.core.steps).

Because the scope is always whole components and every step is a deterministic function of the
component's evidence, an incremental run and `--full` give the same partition and the same ids.
"""
from __future__ import annotations

import datetime as dt
from collections.abc import Callable

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.catalog import SPECS, TableSpec
from jobs.core.context import JobContext, RunParams, StageResult
from jobs.core.errors import InputError
from jobs.core.session import broadcast_if_small, cached, cached_bytes, checkpointed, storage_memory_bytes
from jobs.core.steps import StepClock
from jobs.identity import graph
from jobs.identity.identifiers import PHONE, USER_ID
from jobs.identity.evidence import (
    ALIAS_CLAIM_KEY,
    EDGE_KEY,
    IDENTIFIER_KEY,
    aggregate_evidence,
    alias_claims,
    customer_observations,
    edge_evidence,
    endpoints,
    event_observations,
    identifier_evidence,
    identifier_sets,
    merge_evidence,
    resolve_alias_claims,
    set_phones,
    sets_in_e164,
    unparseable_phones,
)
from jobs.identity.ids import assign_customer_ids, kept_as_is
from jobs.identity.rules import (
    CUT_SCHEMA,
    PERSONS_SCHEMA,
    RULE_ALIAS_MERGE,
    RULE_UNPARSEABLE_PHONE,
    alias_edges,
    enforce_limits,
    removed_identifiers,
)
from jobs.identity.phones import parsed_phones
from jobs.identity.profile_calls import profile_calls, read_profile_calls
from jobs.identity.settings import IdentitySettings
from jobs.identity.survivorship import build_customers

# The tables stitch writes (schemas and keys: jobs.core.catalog).
IDENTITY_MAP_COLUMNS = SPECS[tables.IDENTITY_MAP].columns
AUDIT_SPEC = SPECS[tables.IDENTITY_AUDIT]
LINEAGE_SPEC = SPECS[tables.IDENTITY_LINEAGE]
PROFILE_CALLS_SPEC = SPECS[tables.PROFILE_CALLS]


# ----------------------------------------------------------------------------------------------
# Small I/O helpers
# ----------------------------------------------------------------------------------------------


# The share of Spark's storage memory (jobs.core.session.storage_memory_bytes) stitch's local checkpoints may fill, measured as
# Spark's cached size of each frame (compressed columns; the checkpoint's rows take more). The
# scratch frames stay until the stage ends, so at bench scale L (4 GB driver) keeping them all
# filled the block manager and spilled to disk: a full stitch's steps after the phones took 525 s
# so, against 405 s with the frames written as files (the same data, the same day).
LOCAL_SCRATCH_SHARE = 0.25


class Scratch:
    """Per-run scratch space: materialises intermediate results so each is computed once and lineage
    stays short. `mode` is identity.checkpoints: "parquet" writes them as Parquet files under
    `root`, deleted at the end of the run; "local" keeps them in executor storage as local
    checkpoints (jobs.core.session.checkpointed: released when the stage ends) while they fit in
    LOCAL_SCRATCH_SHARE of it. The first that does not is written as files, and so is every later
    one, straight from its plan: a night that big has more such frames coming, and caching a large
    frame to learn its size before writing it costs a second pass over it. A night's stitch keeps
    about 35 frames; on a small night each Parquet copy cost about 0.3 s to write and read back, a
    local one about 0.1 s."""

    def __init__(self, spark: SparkSession, root: str, mode: str):
        self.spark, self.root, self.mode = spark, root, mode
        self.local_budget = int(storage_memory_bytes(spark) * LOCAL_SCRATCH_SHARE) if mode == "local" else 0
        self.local_bytes = 0  # the cached size of the frames kept locally so far
        self.written: list[str] = []  # the frames kept as files

    def keep(self, df: DataFrame, name: str) -> DataFrame:
        if self.mode != "local" or self.written:
            return self._written(df, name)
        # cached before it is checkpointed, so later joins see its real size (and broadcast it)
        with cached(df) as rows:
            size = cached_bytes(rows)
            if self.local_bytes + size <= self.local_budget:
                self.local_bytes += size
                return checkpointed(rows)
            return self._written(rows, name)

    def _written(self, df: DataFrame, name: str) -> DataFrame:
        path = f"{self.root}/{name}"
        df.write.mode("overwrite").parquet(path)
        self.written.append(name)
        return self.spark.read.parquet(path)

    def delete(self) -> None:
        jvm = self.spark.sparkContext._jvm
        path = jvm.org.apache.hadoop.fs.Path(self.root)
        fs = path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())
        if fs.exists(path):
            fs.delete(path, True)


def insert_missing(spark: SparkSession, wh: tables.Warehouse, rows: DataFrame, spec: TableSpec) -> None:
    """Append the rows whose key (spec.keys) is not in the table yet (so re-running a date adds nothing)."""
    wh.create(spark, spec)
    stored = wh.read(spark, spec.name)
    source = rows.select(*spec.columns).dropDuplicates(list(spec.keys)).alias("s")
    on = [F.col(f"s.{k}").eqNullSafe(stored[k]) for k in spec.keys]
    wh.append(source.join(stored, on, "left_anti"), spec.name)


def upsert_evidence(spark: SparkSession, wh: tables.Warehouse, new: DataFrame, table: str, keys: tuple[str, ...]) -> None:
    """Merge new evidence rows into `table` (min/max per key; unchanged rows are not rewritten)."""
    stored = wh.read(spark, table).join(broadcast_if_small(new.select(*keys)), list(keys), "left_semi")
    merged = aggregate_evidence(stored.unionByName(new), keys)
    wh.apply_changes(spark, table, tables.change_set(stored, merged, table).localCheckpoint(eager=True))


def customers_changes(current: DataFrame, rows: DataFrame, changed_ids: DataFrame) -> DataFrame:
    """The change set (tables.change_set) that brings silver/customers' rows of `changed_ids`
    (`current`: the table's rows of those ids) to `rows` (theirs, rebuilt): updates of the ones
    that differ, new customers, deletes of ids no longer in use."""
    return tables.change_set(current.join(changed_ids, "customer_id", "left_semi"), rows, tables.SILVER_CUSTOMERS)


def read_bronze(spark: SparkSession, wh: tables.Warehouse, table: str, run_date: dt.date, since: dt.date | None):
    """Bronze rows up to the run date; with `since`, only those not stitched yet (or of run_date).
    A bronze table that does not exist yet reads as empty."""
    rows = wh.read(spark, table, missing="empty").where(F.col("run_date") <= F.lit(run_date))
    if since is not None:
        rows = rows.where((F.col("run_date") > F.lit(since)) | (F.col("run_date") == F.lit(run_date)))
    return rows


def observations(events: DataFrame, customers: DataFrame) -> DataFrame:
    return event_observations(events).unionByName(customer_observations(customers))


def changed_rows(now: DataFrame, before: DataFrame) -> DataFrame:
    """Rows in one of two same-schema frames and not the other (either way)."""
    return now.subtract(before).unionByName(before.subtract(now))


# ----------------------------------------------------------------------------------------------
# Labelling a closed scope of the graph (pure transformations + components)
# ----------------------------------------------------------------------------------------------


def scope_of(touched: DataFrame, identity_map: DataFrame,
             keep: Callable[[DataFrame, str], DataFrame] = kept_as_is) -> DataFrame:
    """Identifier keys to recompute: the touched ones plus all members of their components.
    `keep(df, name)` materialises the touched keys and their components (Scratch.keep), so each is
    counted and, when small (a night's), broadcast to the scan of the map instead of the map being
    shuffled to meet it, twice."""
    keys = list(IDENTIFIER_KEY)
    touched = keep(touched.select(*keys).distinct(), "touched")
    components = keep(identity_map.join(broadcast_if_small(touched), keys, "left_semi").select("component").distinct(),
                      "touched_components")
    members = identity_map.join(broadcast_if_small(components), "component", "left_semi").select(*keys)
    return touched.unionByName(members).distinct()


def edges_touching(edges: DataFrame, keys: DataFrame) -> DataFrame:
    """Edges with at least one end among `keys` (identifier_type, identifier_value; one row per
    key). One scan of the edges, each end looked up in the keys (broadcast when they are small, as
    an incremental scope's are), where two semi-joins scanned the edges twice and deduplicated
    their union by a shuffle."""
    def end_in_keys(end: str) -> DataFrame:
        return keys.select(F.col("identifier_type").alias(f"{end}_type"), F.col("identifier_value").alias(f"{end}_value"),
                           F.lit(True).alias(f"_{end}_in_keys"))

    return (
        edges.join(end_in_keys("a"), ["a_type", "a_value"], "left")
        .join(end_in_keys("b"), ["b_type", "b_value"], "left")
        .where(F.col("_a_in_keys") | F.col("_b_in_keys"))
        .select(*edges.columns)
    )


def with_vertex_ids(edges: DataFrame, vertices: DataFrame) -> DataFrame:
    """Edges between two kept vertices, with a_vertex / b_vertex ids (others are dropped)."""
    a = vertices.select(F.col("identifier_type").alias("a_type"), F.col("identifier_value").alias("a_value"),
                        F.col("vertex_id").alias("a_vertex"))
    b = vertices.select(F.col("identifier_type").alias("b_type"), F.col("identifier_value").alias("b_value"),
                        F.col("vertex_id").alias("b_vertex"))
    return edges.join(a, ["a_type", "a_value"], "inner").join(b, ["b_type", "b_value"], "inner").select(
        "a_vertex", "b_vertex", *EDGE_KEY, "first_seen"
    )


def with_hashed_vertex_ids(edges: DataFrame, removed: DataFrame) -> DataFrame:
    """with_vertex_ids for a full build whose vertex ids are all unsalted hashes
    (graph.vertex_ids_unsalted): every end of its edges is a vertex unless a rule removed it, so the
    edges of removed identifiers are dropped and the ends' ids computed, not joined. (Two shuffled
    joins of every edge with every vertex fewer: bench scale M, 1.2 million edges.)"""
    def gone(end: str) -> DataFrame:
        return broadcast_if_small(removed.select(F.col("identifier_type").alias(f"{end}_type"),
                                                 F.col("identifier_value").alias(f"{end}_value")))

    def vertex_id(end: str) -> Column:
        return graph.unsalted_vertex_id(f"{end}_type", f"{end}_value").alias(f"{end}_vertex")

    kept = edges.join(gone("a"), ["a_type", "a_value"], "left_anti").join(gone("b"), ["b_type", "b_value"], "left_anti")
    return kept.select(vertex_id("a"), vertex_id("b"), *EDGE_KEY, "first_seen")


def alias_persons(scratch: Scratch, edges: DataFrame, settings: IdentitySettings) -> DataFrame:
    """`identifier_value, person` for every user id joined to another by alias edges (among
    `edges`): person = the smallest user id of its alias-connected set, so it names no other set."""
    alias = scratch.keep(alias_edges(edges, settings), "alias_edges")
    if alias.isEmpty():
        return alias.sparkSession.createDataFrame([], PERSONS_SCHEMA)
    users = alias.select(F.col("a_value").alias("identifier_value")).unionByName(
        alias.select(F.col("b_value").alias("identifier_value"))
    ).withColumn("identifier_type", F.lit(USER_ID))
    vertices = scratch.keep(graph.assign_vertex_ids(users), "alias_vertices")
    a = vertices.select(F.col("identifier_value").alias("a_value"), F.col("vertex_id").alias("src"))
    b = vertices.select(F.col("identifier_value").alias("b_value"), F.col("vertex_id").alias("dst"))
    components, _ = graph.connected_components(
        alias.join(a, "a_value", "inner").join(b, "b_value", "inner").select("src", "dst"),
        checkpoint_dir=f"{scratch.root}/alias_components",
        local_threshold=settings.local_threshold,
        max_rounds=settings.max_rounds,
        partition_edges=settings.partition_edges,
        checkpoint_mode=settings.checkpoints,
    )
    labelled = vertices.join(components.withColumnRenamed("id", "vertex_id"), "vertex_id", "inner")
    persons = labelled.groupBy("component").agg(F.min("identifier_value").alias("person"))
    return scratch.keep(labelled.join(persons, "component", "inner").select("identifier_value", "person"), "persons")


def label_scope(ctx: JobContext, scratch: Scratch, scope: DataFrame, scope_edges: DataFrame, all_edges: DataFrame,
                *, whole_graph: bool = False):
    """(labels, removed, cuts, stats) for a closed scope; labels = identifier_type, identifier_value,
    first_seen, component, cluster; stats: the main connected components run (graph.ComponentsStats).
    `all_edges`: edges holding every alias edge (they make persons). `whole_graph`: the scope is
    every identifier and `scope_edges` every edge (a full build), so every edge's ends are in it."""
    settings: IdentitySettings = ctx.config.identity
    keys = list(IDENTIFIER_KEY)
    persons = alias_persons(scratch, all_edges, settings)
    removed = scratch.keep(
        removed_identifiers(scope, scope_edges, settings, persons, every_end_judged=whole_graph), "removed")
    active = scope.join(removed, keys, "left_anti")
    vertices = scratch.keep(graph.assign_vertex_ids(active), "vertices")
    if whole_graph and graph.vertex_ids_unsalted(vertices):
        kept_edges = scratch.keep(with_hashed_vertex_ids(scope_edges, removed), "kept_edges")
        # each identifier's vertex id computed, not joined; `active` holds one row per identifier
        # on a full build (identifier evidence and the alias-only ones, one row per key each)
        members = active.select(*keys, "first_seen", graph.unsalted_vertex_id(*keys).alias("vertex_id"))
    else:
        kept_edges = scratch.keep(with_vertex_ids(scope_edges, vertices), "kept_edges")
        members = vertices.join(scope.select(*keys, "first_seen"), keys, "inner")
    labelled, stats = graph.connected_components(
        kept_edges.select(F.col("a_vertex").alias("src"), F.col("b_vertex").alias("dst")),
        vertices.select(F.col("vertex_id").alias("id")),
        checkpoint_dir=f"{scratch.root}/components",
        local_threshold=settings.local_threshold,
        max_rounds=settings.max_rounds,
        partition_edges=settings.partition_edges,
        checkpoint_mode=settings.checkpoints,
    )
    components = labelled.select(F.col("id").alias("vertex_id"), "component")
    clusters, cuts = enforce_limits(vertices, kept_edges, components, settings, persons)
    cuts = scratch.keep(cuts, "cuts")
    labels = scratch.keep(
        members.join(clusters, "vertex_id", "inner").select(*keys, "first_seen", "component", "cluster"), "labels")
    return labels, removed, cuts, stats


# ----------------------------------------------------------------------------------------------
# The stage
# ----------------------------------------------------------------------------------------------


def run(ctx: JobContext, params: RunParams) -> StageResult:
    spark, wh, run_date = ctx.spark, ctx.warehouse, ctx.run_date
    if not wh.exists(spark, tables.BRONZE_EVENTS) and not wh.exists(spark, tables.BRONZE_CUSTOMERS):
        raise InputError(f"no bronze tables under {wh.root}: run `c360 ingest --input DIR` first")
    # A warehouse stitched before alias claims or profile calls were kept (no silver/identity_aliases,
    # silver/profile_calls) is rebuilt once.
    state = (tables.IDENTITY_MAP, tables.IDENTITY_IDENTIFIERS, tables.IDENTITY_EDGES, tables.IDENTITY_ALIASES,
             tables.PROFILE_CALLS)
    incremental = not params.rebuild and all(wh.exists(spark, t) for t in state)
    scratch = Scratch(spark, wh.path(f"_checkpoints/stitch-{run_date}"), ctx.config.identity.checkpoints)
    try:
        result = _stitch(ctx, scratch, incremental)
    finally:
        scratch.delete()
    result.metrics = {"mode": "incremental" if incremental else "full", **result.metrics}
    if scratch.mode == "local" and scratch.written:
        result.notes.append(f"scratch: {scratch.local_bytes / 2**20:,.0f} MB kept as local checkpoints, then "
                            f"'{scratch.written[0]}' outgrew their {scratch.local_budget / 2**20:,.0f} MB: it and "
                            f"{len(scratch.written) - 1} later intermediate results written as files")
    return result


def _stitch(ctx: JobContext, scratch: Scratch, incremental: bool) -> StageResult:
    spark, wh, run_date = ctx.spark, ctx.warehouse, ctx.run_date
    settings: IdentitySettings = ctx.config.identity
    keys = list(IDENTIFIER_KEY)
    clock = StepClock()
    since = None
    if incremental:
        since = wh.read(spark, tables.IDENTITY_IDENTIFIERS).agg(F.max("last_run_date")).first()[0]
    events = read_bronze(spark, wh, tables.BRONZE_EVENTS, run_date, since)
    customers = read_bronze(spark, wh, tables.BRONZE_CUSTOMERS, run_date, since)
    # one row per distinct identifier set, which identifier and edge evidence are aggregated from
    sets = scratch.keep(identifier_sets(observations(events, customers)), "observations")
    if incremental and sets.isEmpty():
        return StageResult(metrics={"new_observations": 0}, notes=["no new bronze rows: identity unchanged"])
    clock.done("observations")
    # Phones as received -> E.164, parsed once per distinct value (jobs.identity.phones).
    parsed = scratch.keep(parsed_phones(set_phones(sets), settings.default_phone_region), "phones")
    unparseable = unparseable_phones(parsed)
    # read by identifier evidence, edge evidence and the alias claims: joined to the phones once
    observed = scratch.keep(sets_in_e164(sets, parsed), "observed")
    clock.done("phones")

    # The tables as they were before this run rewrites them: their current Delta versions (time
    # travel reads the same files, no copy).
    map_version = wh.version(spark, tables.IDENTITY_MAP)
    previous_map = wh.read_version(spark, tables.IDENTITY_MAP, map_version) if map_version >= 0 else None
    alias_edges_version = wh.version(spark, tables.IDENTITY_ALIAS_EDGES) if incremental else -1
    previous_alias_edges = (wh.read_version(spark, tables.IDENTITY_ALIAS_EDGES, alias_edges_version)
                            if alias_edges_version >= 0 else None)
    evidence = (
        (identifier_evidence(observed), tables.IDENTITY_IDENTIFIERS, IDENTIFIER_KEY, "identifier_evidence"),
        (edge_evidence(observed), tables.IDENTITY_EDGES, EDGE_KEY, "edge_evidence"),
        (alias_claims(observed), tables.IDENTITY_ALIASES, ALIAS_CLAIM_KEY, "alias_claims"),
    )
    new_evidence = []
    for rows, table, keys_of, step in evidence:
        if incremental:
            new = scratch.keep(rows, table.replace("/", "_"))
            upsert_evidence(spark, wh, new, table, keys_of)
        else:
            # A full build writes the table straight from the plan and reads it back: no scratch copy.
            wh.overwrite(rows, table)
            new = wh.read(spark, table)
        new_evidence.append(new)
        clock.done(step)
    new_identifiers, new_edges, new_claims = new_evidence
    if incremental:
        insert_missing(spark, wh, profile_calls(events), PROFILE_CALLS_SPEC)
    else:
        wh.overwrite(profile_calls(events), tables.PROFILE_CALLS)
    clock.done("profile_calls")
    # Alias claims are resolved against every identifier seen so far, every run (a previousId
    # first seen as neither type may show up as a userId on a later night).
    resolved_edges, alias_only, user_merges = resolve_alias_claims(
        wh.read(spark, tables.IDENTITY_ALIASES), wh.read(spark, tables.IDENTITY_IDENTIFIERS), keep=scratch.keep)
    alias_graph = scratch.keep(resolved_edges, "alias_graph")
    alias_only = scratch.keep(alias_only, "alias_only")
    user_merges = scratch.keep(user_merges, "user_merges")
    wh.overwrite(alias_graph, tables.IDENTITY_ALIAS_EDGES)
    clock.done("aliases")

    if incremental:
        # Recompute the components of every identifier seen in the new rows, and of both ends of
        # every alias edge that appeared, disappeared or changed its evidence.
        before = previous_alias_edges if previous_alias_edges is not None else alias_graph.limit(0)
        touched = new_identifiers.select(*keys).unionByName(endpoints(changed_rows(alias_graph, before)))
        scope_keys = scratch.keep(scope_of(touched, previous_map, keep=scratch.keep), "scope_keys")
        identifiers = wh.read(spark, tables.IDENTITY_IDENTIFIERS).unionByName(alias_only)
        scope = scratch.keep(identifiers.join(scope_keys, keys, "inner"), "scope")
        # kept: merge_evidence reads it twice (the edges beside an alias edge, and the others)
        stored_edges = scratch.keep(edges_touching(wh.read(spark, tables.IDENTITY_EDGES), scope_keys), "stored_edges")
        # read from scratch: merge_evidence counts it (broadcast_if_small) and reads it twice more
        scope_alias_edges = scratch.keep(edges_touching(alias_graph, scope_keys), "scope_alias_edges")
        scope_edges = scratch.keep(merge_evidence(stored_edges, scope_alias_edges, EDGE_KEY), "scope_edges")
    else:
        scope_keys = None
        scope = scratch.keep(new_identifiers.unionByName(alias_only), "scope")
        scope_edges = scratch.keep(merge_evidence(new_edges, alias_graph, EDGE_KEY), "scope_edges")
    clock.done("scope")

    labels, removed, cuts, components = label_scope(ctx, scratch, scope, scope_edges, alias_graph,
                                                    whole_graph=not incremental)
    clock.done("rules_and_components")
    # The labels before this run (none on the first): the scope's previous ids, and every id ever used.
    map_before = previous_map if previous_map is not None else wh.read(spark, tables.IDENTITY_MAP, missing="empty")
    # read by the ids, the lineage and the customers step: computed once
    previous = scratch.keep(map_before.join(scope.select(*keys, "first_seen"), keys, "inner").select(
        *keys, "first_seen", "customer_id"), "previous")
    ids_in_use = map_before.select("customer_id").unionByName(
        wh.read(spark, tables.IDENTITY_LINEAGE, missing="empty").select(F.col("old_id").alias("customer_id")))
    retired = user_merges.select(F.col("previous_id").alias("identifier_value")).distinct()
    ids, lineage = assign_customer_ids(
        labels.select(*keys, "first_seen", "cluster"), previous, ids_in_use, run_date, retired, keep=scratch.keep
    )
    new_map = scratch.keep(
        labels.join(ids, "cluster", "inner").select(*keys, "customer_id", "component"), "new_map"
    )
    clock.done("customer_ids")

    if incremental:
        # the map's rows of scope_keys, not scope: an alias-only identifier that is no longer one is deleted
        current = wh.read(spark, tables.IDENTITY_MAP).join(broadcast_if_small(scope_keys), keys, "left_semi")
        changes = tables.change_set(current, new_map, tables.IDENTITY_MAP).localCheckpoint(eager=True)
        wh.apply_changes(spark, tables.IDENTITY_MAP, changes)
    else:
        wh.overwrite(new_map.select(*IDENTITY_MAP_COLUMNS), tables.IDENTITY_MAP)
    clock.done("identity_map")

    no_text = F.lit(None).cast("string")
    run_day = F.lit(run_date).cast("date").alias("run_date")
    merges_in_scope = user_merges.join(
        scope.where(F.col("identifier_type") == USER_ID).select(F.col("identifier_value").alias("previous_id")),
        "previous_id", "left_semi")
    audit = removed.select(
        run_day, "rule", *keys,
        no_text.alias("other_type"), no_text.alias("other_value"), "detail",
    ).unionByName(cuts.select(run_day, *CUT_SCHEMA.fieldNames())).unionByName(
        unparseable.select(
            run_day, F.lit(RULE_UNPARSEABLE_PHONE).alias("rule"), *keys,
            no_text.alias("other_type"), no_text.alias("other_value"),
            F.lit(f"not a phone number (read in region {settings.default_phone_region})").alias("detail"),
        )
    ).unionByName(
        merges_in_scope.select(
            run_day, F.lit(RULE_ALIAS_MERGE).alias("rule"),
            F.lit(USER_ID).alias("identifier_type"), F.col("previous_id").alias("identifier_value"),
            F.lit(USER_ID).alias("other_type"), F.col("user_id").alias("other_value"),
            F.lit("alias call: previousId (a former userId) and userId are one person, counted once by "
                  "identity.limits; the edge is never cut").alias("detail"),
        )
    )
    insert_missing(spark, wh, audit, AUDIT_SPEC)
    lineage = scratch.keep(lineage, "lineage")
    if lineage.isEmpty():  # most nights merge or split no id: no lookup, no empty commit
        wh.create(spark, LINEAGE_SPEC)
    else:
        insert_missing(spark, wh, lineage, LINEAGE_SPEC)
    clock.done("audit_and_lineage")

    identity_map = wh.read(spark, tables.IDENTITY_MAP)
    calls = read_profile_calls(spark, wh, run_date)
    all_customers = read_bronze(spark, wh, tables.BRONZE_CUSTOMERS, run_date, None)
    customers_version = wh.version(spark, tables.SILVER_CUSTOMERS)
    if incremental and customers_version >= 0:
        # Only the customers of the scope (as they were and as they are) can change: every bronze
        # row naming one of their identifiers made that identifier part of the scope.
        changed_ids = scratch.keep(
            previous.select("customer_id").unionByName(new_map.select("customer_id")).distinct(), "changed_customers")
        # Materialized, so the planner sees how small it is and broadcasts it to the scans of
        # bronze/customers and silver/profile_calls instead of shuffling them.
        changed_map = scratch.keep(identity_map.join(changed_ids, "customer_id", "left_semi"), "changed_map")
        rows = build_customers(changed_map, all_customers, calls, settings, known_phones=parsed, keep=scratch.keep)
        changes = customers_changes(wh.read(spark, tables.SILVER_CUSTOMERS), rows, changed_ids)
        wh.apply_changes(spark, tables.SILVER_CUSTOMERS, changes.localCheckpoint(eager=True))
    else:
        wh.overwrite(build_customers(identity_map, all_customers, calls, settings, known_phones=parsed,
                                     keep=scratch.keep), tables.SILVER_CUSTOMERS)
    clock.done("customers")

    result = StageResult(metrics={
        "new_observations": sets.agg(F.coalesce(F.sum("observations"), F.lit(0))).first()[0],
        "recomputed_identifiers": scope.count(),
        "removed_identifiers": removed.count(),
        "cut_edges": cuts.count(),
        "lineage_rows": lineage.count(),
        "identifiers_mapped": identity_map.count(),
        # silver/customers holds one row per customer of the identity map (build_customers)
        "customers": wh.row_count(spark, tables.SILVER_CUSTOMERS),
        "components_path": components.path,
        "components_rounds": components.rounds,
        # rows of silver/customers inserted, updated or deleted (a full build writes them all)
        "customer_rows_written": sum(
            wh.change_counts_since(spark, tables.SILVER_CUSTOMERS, customers_version).values()),
    })
    clock.done("counts")
    result.notes.append(clock.note())
    return result

