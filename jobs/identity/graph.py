"""Exact connected components on Spark DataFrames, and deterministic 64-bit vertex ids.

`connected_components` labels every vertex with the minimum id of its component.

Distributed path: rounds of local contraction. A round sends every edge to one of P buckets (by a
hash of its first endpoint); P is chosen from the number of edges so a bucket holds about
`partition_edges` edges. Inside each bucket (`mapInArrow`, numpy + scipy) the connected components
of the bucket's edges are computed exactly, and every vertex the bucket saw gets its bucket's label:
the minimum of its local component. A vertex can appear in several buckets (its edges went to
different ones); one shuffle by vertex takes the least of its labels as the vertex's pointer and
turns every other label into an edge (label, least label). Those edges are the next round's graph:
it is connected exactly as the round's graph was (every local component and every vertex's labels
are tied to one label), and much smaller, because a bucket collapses whole pieces of a component
(long chains, hubs and their leaves) in one step where label propagation moves one hop. As the
graph shrinks P drops, and a round with one bucket finishes everything left: there every vertex
has one label, its pointer, and nothing is shuffled by vertex.

Each edge goes to one bucket, not to both its endpoints' buckets as before (which gave a bucket
every edge of its vertices, so a vertex whose neighbours all hashed to its bucket needed no
resolving: few of them once P > 1). On B1's 10M-edge graph with 4M edges a bucket, the first round
now shuffles 10M rows into 3 buckets and leaves 3.6M edges for a second, last round; sending each
edge to both ends shuffled about 18M rows into 6 buckets, left 6.7M edges and needed three rounds
(70 s against 20-29 s for the whole call, bench/results/b1.md).

At the end each round's pointers are resolved against the next round's labels, last round first
(a join per round, broadcast once the later round is small).

Nothing depends on Spark partition ids or `monotonically_increasing_id`: buckets are hashes of the
vertex ids and labels are minima, so the result is the same under AQE, retries and any placement.
Every round is materialised (CHECKPOINT_MODES), so lineage stays one round long.

When the working graph is small enough (`local_threshold` edges, at the start or after any round)
the rest is finished on the driver with scipy, in bounded memory.
"""
from __future__ import annotations

import math
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
from pyspark.sql import Column, DataFrame, Observation, SparkSession, Window
from pyspark.sql import functions as F

from jobs.core.session import persistent_rdd_ids, release_persisted_since, session_conf
from jobs.identity.settings import (
    CHECKPOINT_MODES,
    DEFAULT_LOCAL_THRESHOLD,
    DEFAULT_MAX_ROUNDS,
    DEFAULT_PARTITION_EDGES,
)


# Rows a Python worker hands back to Spark at a time (bounds the Arrow batches of a round).
ARROW_BATCH_ROWS = 1 << 20
# Spark's Arrow batches into the buckets' Python workers (spark.sql.execution.arrow.maxRecordsPerBatch,
# 10,000 by default) are made this big during the rounds: a bucket's task reads millions of rows.
ARROW_BATCH_CONF = "spark.sql.execution.arrow.maxRecordsPerBatch"
# A later round's labels are broadcast to the pointers that resolve against them up to this many
# rows (16 bytes a row): the first round's pointers, one per vertex, then stay where they are.
BROADCAST_LABELS_MAX = 4_000_000

# Hash salts tried for one identifier before assign_vertex_ids gives up (collisions of a 64-bit
# hash are astronomically rare; this only bounds a pathological hash function).
MAX_HASH_SALTS = 64
IDENTIFIER_SEPARATOR = ":"


@dataclass
class ComponentsStats:
    """What one `connected_components` call did (for benchmarks and run reports)."""

    path: str = ""  # "local" (finished on the driver from the start) or "distributed"
    rounds: int = 0  # distributed rounds run
    local_edges: int = 0  # edges finished on the driver (0: none)
    active_edges: list[int] = field(default_factory=list)  # edges left to contract after each round
    buckets: list[int] = field(default_factory=list)  # buckets (Python workers' shares) of each round
    round_seconds: list[float] = field(default_factory=list)


class Components(NamedTuple):
    """`connected_components`' result: the labels and how they were computed."""

    labels: DataFrame  # id long, component long
    stats: ComponentsStats


# ----------------------------------------------------------------------------------------------
# Connected components
# ----------------------------------------------------------------------------------------------


def connected_components(
    edges: DataFrame,
    vertices: DataFrame | None = None,
    *,
    checkpoint_dir: str,
    local_threshold: int = DEFAULT_LOCAL_THRESHOLD,
    max_rounds: int = DEFAULT_MAX_ROUNDS,
    checkpoint_mode: str = "local",
    partition_edges: int = DEFAULT_PARTITION_EDGES,
) -> Components:
    """Labels `id long, component long`: one row per vertex, component = the minimum id in its
    component; with the stats of this call (path taken, rounds, edges finished on the driver).

    `edges` (`src`, `dst`) is undirected and may hold duplicates, self loops and nulls (ignored); `vertices` (`id`)
    adds vertices, isolated ones included. Both are read more than once, so pass DataFrames that
    are cheap to recompute (Parquet/Delta-backed). `local_threshold=0` forces the distributed path,
    whose rounds give one Python worker at most about `partition_edges` edges at a time.
    The result is materialised as Parquet under `checkpoint_dir`, which must stay until it is used.
    `checkpoint_mode` is how each round is materialised (see CHECKPOINT_MODES).
    """
    if checkpoint_mode not in CHECKPOINT_MODES:
        raise ValueError(f"checkpoint_mode must be one of {CHECKPOINT_MODES}, got {checkpoint_mode!r}")
    if partition_edges < 1:
        raise ValueError(f"partition_edges must be at least 1, got {partition_edges}")
    spark = edges.sparkSession
    cached_before = persistent_rdd_ids(spark)
    run_dir = f"{checkpoint_dir.rstrip('/')}/cc-{uuid.uuid4().hex}"
    stats = ComponentsStats()
    # An edge with a missing endpoint links nothing.
    pairs = edges.select(F.col("src").cast("long").alias("src"), F.col("dst").cast("long").alias("dst")).where(
        F.col("src").isNotNull() & F.col("dst").isNotNull()
    )
    # Self loops stay in: they give their vertex a label on either path, so no vertex of `edges`
    # needs a second look.
    count = pairs.count()
    if 0 < local_threshold and count <= local_threshold:
        stats.path = "local"
        labels = _local_labels(spark, pairs.select(F.col("src").alias("a"), F.col("dst").alias("b")), run_dir)
        stats.local_edges = labels.num_edges
        labelled = labels.frame
    else:
        stats.path = "distributed"
        with session_conf(spark, ARROW_BATCH_CONF, str(ARROW_BATCH_ROWS)):
            labelled = _distributed_labels(spark, pairs, count, run_dir, stats, local_threshold,
                                           max_rounds, checkpoint_mode, partition_edges)
    result = labelled
    if vertices is not None:
        # Vertices without a label (no edge) are alone in their component.
        alone = vertices.select(F.col("id").cast("long").alias("id")).distinct().join(
            labelled.select("id"), on="id", how="left_anti")
        result = labelled.unionByName(alone.select("id", F.col("id").alias("component")))
    result_path = f"{run_dir}/result"
    result.write.mode("overwrite").parquet(result_path)
    _delete_rounds(spark, run_dir)
    release_persisted_since(spark, cached_before)  # the result is on disk
    return Components(spark.read.parquet(result_path), stats)


@dataclass
class _Round:
    """One contraction round's pointers: (v, L) for every vertex of the round's graph, L = the least
    label the round gave v (v itself when v is the least); `vertices` = how many rows."""

    pointers: DataFrame
    vertices: int


def _distributed_labels(
    spark: SparkSession,
    pairs: DataFrame,
    count: int,
    run_dir: str,
    stats: ComponentsStats,
    local_threshold: int,
    max_rounds: int,
    checkpoint_mode: str,
    partition_edges: int,
) -> DataFrame:
    """(id, component) for every vertex of `pairs` (see the module docstring); `count`: how many
    pairs. Self loops go into the first round like any edge (a vertex alone in its bucket's
    component is labelled by itself); later rounds have none."""
    work = pairs.select(F.col("src").alias("a"), F.col("dst").alias("b"))
    remaining = count
    rounds: list[_Round] = []
    finished: DataFrame | None = None  # (id, component) of the last graph, when the driver finished it
    while remaining:
        if 0 < local_threshold and remaining <= local_threshold:
            labels = _local_labels(spark, work, run_dir)
            stats.local_edges = labels.num_edges
            finished = labels.frame
            break
        if len(rounds) >= max_rounds:
            raise RuntimeError(f"connected components did not converge in {max_rounds} rounds")
        started = time.perf_counter()
        buckets = bucket_count(remaining, partition_edges)
        where = f"{run_dir}/round-{len(rounds):04d}"
        local = _local_minima(work, _bucket_keys(spark, buckets))
        if buckets == 1:  # every vertex has one label: its pointer; nothing is left
            seen = Observation(f"cc_vertices_{uuid.uuid4().hex}")
            pointers = _checkpoint(spark, local.select("v", F.col("label").alias("L")).observe(
                seen, F.count(F.lit(1)).alias("rows")), f"{where}/pointers", checkpoint_mode)
            rounds.append(_Round(pointers, int(seen.get["rows"])))
            remaining = 0
        else:
            counted = Observation(f"cc_resolved_{uuid.uuid4().hex}")
            resolved = _checkpoint(
                spark,
                _resolve_labels(local, int(spark.conf.get("spark.sql.shuffle.partitions"))).observe(
                    counted, F.count(F.when(F.col("edge"), 1)).alias("edges"),
                    F.count(F.when(~F.col("edge"), 1)).alias("pointers")),
                f"{where}/resolved", checkpoint_mode,
            )
            pointers = resolved.where(~F.col("edge")).select(F.col("x").alias("v"), F.col("y").alias("L"))
            rounds.append(_Round(pointers, int(counted.get["pointers"])))
            work = resolved.where(F.col("edge")).select(F.col("x").alias("a"), F.col("y").alias("b"))
            remaining = int(counted.get["edges"])
        stats.buckets.append(buckets)
        stats.active_edges.append(remaining)
        stats.round_seconds.append(round(time.perf_counter() - started, 2))
        stats.rounds = len(rounds)
    labels, size = (finished, BROADCAST_LABELS_MAX + 1) if finished is not None else (None, 0)
    # Last round first: a vertex's component is that of its pointer in the next round's graph, or
    # the pointer itself when the next round did not see it (its component was complete).
    for current in reversed(rounds):
        if labels is None:
            labels = current.pointers.select(F.col("v").alias("id"), F.col("L").alias("component"))
        else:
            later = labels.select(F.col("id").alias("L"), "component")
            later = F.broadcast(later) if size <= BROADCAST_LABELS_MAX else later
            labels = current.pointers.join(later, on="L", how="left").select(
                F.col("v").alias("id"), F.coalesce("component", "L").alias("component"))
        size = current.vertices
    if labels is None:  # no edge between two different vertices
        return spark.createDataFrame([], "id long, component long")
    return labels


def bucket_count(edges: int, partition_edges: int) -> int:
    """Buckets of a round over `edges` edges, each edge in one bucket: enough that a bucket holds
    about `partition_edges`. Not rounded up to a multiple of the cores: more buckets cut more edges."""
    return max(1, math.ceil(edges / partition_edges))


def _bucket_keys(spark: SparkSession, buckets: int) -> list[int]:
    """For each bucket b, an int key that Spark's hash partitioning into `buckets` partitions sends
    to partition b, so `repartition(buckets, key)` gives every bucket a task of its own (hashing the
    bucket numbers themselves would put two buckets in one task and leave another task idle).
    Placement only balances the work: the result does not depend on it."""
    if buckets == 1:
        return [0]
    probe = spark.range(buckets * 64).select(F.col("id").cast("int").alias("key")).select(
        "key", F.pmod(F.hash("key"), F.lit(buckets)).alias("bucket"))
    first = {row["bucket"]: row["key"] for row in probe.groupBy("bucket").agg(F.min("key").alias("key")).collect()}
    # a bucket no probe key reached (never seen) falls back to its own number
    return [first.get(bucket, bucket) for bucket in range(buckets)]


def _local_minima(work: DataFrame, keys: list[int]) -> DataFrame:
    """Edges (a, b) -> (v, label): every vertex of every bucket with the minimum of its local
    component there. An edge goes to the bucket of its `a`."""
    buckets = len(keys)
    key_of = F.array(*[F.lit(k) for k in keys])
    routed = work.select(F.element_at(key_of, (F.pmod(F.xxhash64("a"), F.lit(buckets)) + 1).cast("int"))
                         .alias("bucket"), "a", "b")
    # One bucket: no shuffle, the single task reads the edges where they are.
    routed = routed.coalesce(1) if buckets == 1 else routed.repartition(buckets, "bucket")
    return routed.mapInArrow(_bucket_components, "v long, label long")


def _bucket_components(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow: (bucket, a, b) rows -> (v, label) for every vertex of every bucket in the task."""
    bucket, a, b = _columns(batches, 3)
    if bucket.size == 0:
        return
    if bucket.min() != bucket.max():  # more than one bucket in this task: one at a time
        order = np.argsort(bucket, kind="stable")
        bucket, a, b = bucket[order], a[order], b[order]
    cuts = np.flatnonzero(np.diff(bucket)) + 1
    for start, end in zip(np.r_[0, cuts], np.r_[cuts, bucket.size]):
        ids, component, _ = _components(a[start:end], b[start:end])
        yield from _batches(["v", "label"], ids, component)


def _resolve_labels(rows: DataFrame, partitions: int) -> DataFrame:
    """(v, label) rows, one per bucket a vertex appeared in -> (x, y, edge): per vertex one pointer
    row (v, least label, edge false) and the next round's edges (other label, least label, edge true),
    deduplicated within a task."""
    return rows.repartition(partitions, "v").mapInArrow(_least_labels, "x long, y long, edge boolean")


def _least_labels(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
    """mapInArrow for _resolve_labels: all rows of a vertex are in the same task. The vertices are
    numbered by hashing (pandas' factorize), not sorted, and the least label found per number."""
    v, label = _columns(batches, 2)
    if v.size == 0:
        return
    codes, ids = pd.factorize(v, sort=False)
    least = np.full(ids.size, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(least, codes, label)
    yield from _batches(["x", "y", "edge"], np.asarray(ids, dtype=np.int64), least, np.zeros(ids.size, dtype=bool))
    mine = least[codes]
    other = label != mine
    if other.any():
        pairs = pd.DataFrame({"x": label[other], "y": mine[other]}).drop_duplicates()
        yield from _batches(["x", "y", "edge"], pairs["x"].to_numpy(), pairs["y"].to_numpy(),
                            np.ones(len(pairs), dtype=bool))


def _columns(batches: Iterator[pa.RecordBatch], count: int) -> list[np.ndarray]:
    """The first `count` columns of all `batches` as numpy arrays (empty int64 arrays: no rows)."""
    parts: list[list[np.ndarray]] = [[] for _ in range(count)]
    for batch in batches:
        for i in range(count):
            parts[i].append(batch.column(i).to_numpy(zero_copy_only=False))
    return [np.concatenate(p) if p else np.empty(0, dtype=np.int64) for p in parts]


def _batches(names: list[str], *columns: np.ndarray) -> Iterator[pa.RecordBatch]:
    for start in range(0, columns[0].size, ARROW_BATCH_ROWS):
        yield pa.record_batch([pa.array(c[start:start + ARROW_BATCH_ROWS]) for c in columns], names=names)


def _checkpoint(spark: SparkSession, df: DataFrame, path: str, mode: str) -> DataFrame:
    """Materialise one round and cut its lineage (see CHECKPOINT_MODES)."""
    if mode == "local":
        return df.localCheckpoint(eager=True)
    df.write.mode("overwrite").parquet(path)
    return spark.read.parquet(path)


@dataclass
class _LocalLabels:
    frame: DataFrame
    num_edges: int


def _local_labels(spark: SparkSession, work: DataFrame, run_dir: str) -> _LocalLabels:
    """Finish on the driver: collect edges (a, b) as Arrow, scipy; (id, component) for every vertex."""
    a, b = _columns(work.select("a", "b").toArrow().to_batches(), 2)
    ids, component = local_components(a, b)
    table = pa.table({"id": pa.array(ids, pa.int64()), "component": pa.array(component, pa.int64())})
    return _LocalLabels(frame=_arrow_frame(spark, table, f"{run_dir}/local"), num_edges=int(a.size))


def _arrow_frame(spark: SparkSession, table: pa.Table, path: str) -> DataFrame:
    """A driver-side Arrow table as a DataFrame. In local mode on a local path, pyarrow writes it as
    Parquet directly (much faster than shipping rows through the JVM gateway)."""
    local_master = (spark.sparkContext.master or "").startswith("local")
    local_path = "://" not in path or path.startswith("file:")
    if local_master and local_path:
        file = Path(path.removeprefix("file:")) / "part-0.parquet"
        file.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, file)
        return spark.read.parquet(str(file.parent))
    if table.num_rows == 0:
        return spark.createDataFrame([], "id long, component long")
    return spark.createDataFrame(table)


def local_components(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(ids, component) for every id in the edge arrays, ids in first-seen order; component =
    minimum id (scipy)."""
    ids, component, _ = _components(src, dst)
    return ids, component


def _components(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(distinct ids in first-seen order, component = minimum id, index in ids of every endpoint of
    src then dst). The ids are numbered by hashing (pandas' factorize), not by np.unique's sort:
    the numbering was half of the time of the whole function on 10M edges."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as scipy_components

    inverse, ids = pd.factorize(np.concatenate([src, dst]).astype(np.int64, copy=False), sort=False)
    ids = np.asarray(ids, dtype=np.int64)
    n = ids.size
    if n == 0:
        return ids, ids.copy(), inverse
    a, b = inverse[: src.size], inverse[src.size:]
    graph = coo_matrix((np.ones(a.size, dtype=np.int8), (a, b)), shape=(n, n)).tocsr()
    count, labels = scipy_components(graph, directed=False)
    least = np.full(count, np.iinfo(np.int64).max, dtype=np.int64)
    np.minimum.at(least, labels, ids)
    return ids, least[labels], inverse


def _delete_rounds(spark: SparkSession, run_dir: str) -> None:
    """Drop the per-round checkpoints and driver output (the result stays), on any Hadoop file system."""
    jvm = spark.sparkContext._jvm
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    root = jvm.org.apache.hadoop.fs.Path(run_dir)
    fs = root.getFileSystem(hadoop_conf)
    if not fs.exists(root):
        return
    for status in fs.listStatus(root):
        if status.getPath().getName() != "result":
            fs.delete(status.getPath(), True)


# ----------------------------------------------------------------------------------------------
# Vertex ids
# ----------------------------------------------------------------------------------------------


def identifier_key(identifier_type: Column | str, identifier_value: Column | str) -> Column:
    """`type:value`; types never contain ':', so distinct identifiers give distinct keys."""
    return F.concat_ws(IDENTIFIER_SEPARATOR, _column(identifier_type), _column(identifier_value))


def _column(value: Column | str) -> Column:
    return F.col(value) if isinstance(value, str) else value


def stable_vertex_id(key: Column, salt: int = 0) -> Column:
    """Deterministic 64-bit id of an identifier key; `salt` > 0 gives independent re-hashes."""
    return F.xxhash64(key) if salt == 0 else F.xxhash64(F.lit(salt), key)


def unsalted_vertex_id(identifier_type: Column | str, identifier_value: Column | str) -> Column:
    """The id assign_vertex_ids gives an identifier unless a hash collision made it salt it."""
    return stable_vertex_id(identifier_key(identifier_type, identifier_value))


def vertex_ids_unsalted(vertices: DataFrame) -> bool:
    """Whether every vertex id of assign_vertex_ids' result is its identifier's unsalted_vertex_id
    (no collision was resolved), so an identifier's id can be computed from its key instead of
    looked up."""
    return vertices.where(F.col("vertex_id") != unsalted_vertex_id("identifier_type", "identifier_value")).isEmpty()


def assign_vertex_ids(
    identifiers: DataFrame, *, hash_fn: Callable[[Column, int], Column] = stable_vertex_id
) -> DataFrame:
    """`identifier_type, identifier_value, vertex_id`, one row per distinct identifier, unique ids.

    Ids are `hash_fn(type:value, 0)`. When several identifiers share a hash, the smallest
    (type, value) keeps it and the others are re-hashed with salts 1, 2, ... until their id is
    unique among all ids: deterministic for a given set of identifiers.
    """
    keyed = (
        identifiers.select("identifier_type", "identifier_value").distinct()
        .withColumn("key", identifier_key("identifier_type", "identifier_value"))
        .withColumn("vertex_id", hash_fn(F.col("key"), 0))
        .localCheckpoint(eager=True)
    )
    # Computed once; a hash aggregate finds the shared ids (almost always none), and only their
    # identifiers are ranked (a window over every identifier sorted them all: 8.2 s -> 4.4 s for
    # the 879,408 identifiers of bench scale M).
    # Kept, so a collision's two joins below do not aggregate every identifier again.
    shared = (keyed.groupBy("vertex_id").count().where(F.col("count") > 1).select("vertex_id")
              .localCheckpoint(eager=True))
    if shared.isEmpty():
        return keyed.select("identifier_type", "identifier_value", "vertex_id")
    sharing = keyed.join(F.broadcast(shared), "vertex_id", "left_semi")
    winners, pending = _split_collisions(sharing)
    settled = keyed.join(F.broadcast(shared), "vertex_id", "left_anti").unionByName(winners)
    salt = 0
    while not pending.isEmpty():
        salt += 1
        if salt > MAX_HASH_SALTS:
            raise RuntimeError(f"vertex id hash collisions not resolved after {MAX_HASH_SALTS} salts")
        candidates = pending.withColumn("vertex_id", hash_fn(F.col("key"), salt))
        taken = candidates.join(settled.select("vertex_id"), on="vertex_id", how="left_semi")
        free = candidates.join(settled.select("vertex_id"), on="vertex_id", how="left_anti")
        newly_settled, still_pending = _split_collisions(free)
        settled = settled.unionByName(newly_settled).localCheckpoint()
        pending = (
            taken.select("identifier_type", "identifier_value", "key").unionByName(still_pending).localCheckpoint()
        )
    return settled.select("identifier_type", "identifier_value", "vertex_id")


def _split_collisions(keyed: DataFrame) -> tuple[DataFrame, DataFrame]:
    """(winners with a unique id, losers without an id): per id the smallest identifier wins."""
    by_id = Window.partitionBy("vertex_id").orderBy("identifier_type", "identifier_value")
    ranked = keyed.withColumn("rank", F.row_number().over(by_id))
    winners = ranked.where(F.col("rank") == 1).select("identifier_type", "identifier_value", "key", "vertex_id")
    losers = ranked.where(F.col("rank") > 1).select("identifier_type", "identifier_value", "key")
    return winners, losers
