"""Connected components against a plain union-find, on every path; vertex ids and collisions."""
from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyspark.sql import functions as F

from jobs.core.session import persistent_rdd_ids
from jobs.identity.graph import (
    ComponentsStats,
    assign_vertex_ids,
    bucket_count,
    connected_components,
    local_components,
    stable_vertex_id,
    vertex_ids_unsalted,
)

DISTRIBUTED = 0
LOCAL = 10**9
# Distributed rounds with tiny buckets: many buckets, several rounds, even on a few edges.
SMALL_BUCKETS = 8
PATHS = [pytest.param(DISTRIBUTED, id="distributed"), pytest.param(LOCAL, id="local")]


def union_find_components(edges, extra_vertices=()):
    """Reference: {vertex: minimum vertex of its component}."""
    parent: dict[int, int] = {}

    def find(x: int) -> int:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:
            parent[x], x = root, parent[x]
        return root

    for vertex in [v for edge in edges for v in edge] + list(extra_vertices):
        parent.setdefault(vertex, vertex)
    for a, b in edges:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    return {vertex: find(vertex) for vertex in parent}


def run_components(spark, tmp_path, edges, vertices=None, *, threshold, mode="local",
                   partition_edges=SMALL_BUCKETS) -> tuple[dict, ComponentsStats]:
    """({vertex: component}, the call's stats)."""
    edge_df = spark.createDataFrame(edges, "src long, dst long")
    vertex_df = None if vertices is None else spark.createDataFrame([(v,) for v in vertices], "id long")
    cached_before = persistent_rdd_ids(spark)
    result, stats = connected_components(
        edge_df, vertex_df, checkpoint_dir=str(tmp_path), local_threshold=threshold, checkpoint_mode=mode,
        partition_edges=partition_edges,
    )
    # the call's own RDDs: earlier tests' checkpoints may be released by Spark's cleaner meanwhile
    assert persistent_rdd_ids(spark) - cached_before == set(), "local checkpoints released"
    assert result.columns == ["id", "component"]
    rows = result.collect()
    labels = {row.id: row.component for row in rows}
    assert len(labels) == len(rows), "one row per vertex"
    return labels, stats


def chain(rng: random.Random, length: int, offset: int = 0) -> list[tuple[int, int]]:
    """A path of `length` hops over shuffled ids, so ids do not follow the path order."""
    ids = [offset + i for i in range(length + 1)]
    rng.shuffle(ids)
    return [(ids[i], ids[i + 1]) for i in range(length)]


@pytest.mark.parametrize("threshold", PATHS)
def test_long_chain_and_random_graph(spark, tmp_path, threshold):
    rng = random.Random(11)
    edges = chain(rng, 10_000)
    # Sparse random graph: many small components plus a few larger ones.
    edges += [(rng.randrange(20_000, 23_000), rng.randrange(20_000, 23_000)) for _ in range(2_000)]
    labels, stats = run_components(spark, tmp_path, edges, threshold=threshold, partition_edges=2_000)
    assert labels == union_find_components(edges)
    if threshold == DISTRIBUTED:
        assert stats.path == "distributed"
        # A bucket collapses whole stretches of the chain: 12,000 edges in 2,000-edge buckets
        # (6 buckets in the first round) need a handful of rounds, not thousands of hops.
        assert stats.buckets[0] == bucket_count(len(edges), 2_000) == 6
        assert 1 < stats.rounds <= 6 and len(stats.active_edges) == len(stats.buckets) == stats.rounds
        assert stats.active_edges[-1] == 0 and stats.buckets[-1] < stats.buckets[0]
    else:
        assert (stats.path, stats.rounds, stats.local_edges) == ("local", 0, len(edges))


@pytest.mark.parametrize("threshold", PATHS)
def test_stars_duplicates_self_loops_and_isolated_vertices(spark, tmp_path, threshold):
    rng = random.Random(5)
    hub_a, hub_b = 500, 7
    edges = [(hub_a, leaf) for leaf in range(1_000, 1_300)]  # star centred above its minimum
    edges += [(leaf, hub_b) for leaf in range(2_000, 2_100)]  # star centred on its minimum
    edges += [(1_000, 2_000)]  # joins the two stars
    edges += [edges[i] for i in range(0, len(edges), 7)]  # duplicates
    edges += [(b, a) for a, b in edges[:40]]  # reversed duplicates
    edges += [(9_999, 9_999), (1_000, 1_000), (-5, -5)]  # self loops, two of them isolated vertices
    edges += [(-(2**62), 2**62), (2**63 - 1, -(2**63))]  # extreme ids
    isolated = [rng.randrange(50_000, 60_000) for _ in range(300)] + [1_000, hub_b]
    rng.shuffle(edges)
    expected = union_find_components(edges, isolated)
    with_nulls = edges + [(None, 1_000), (3, None)]  # a missing endpoint links nothing
    assert run_components(spark, tmp_path, with_nulls, isolated, threshold=threshold)[0] == expected
    assert expected[9_999] == 9_999 and expected[1_299] == hub_b


@pytest.mark.parametrize(("seed", "mode"), [(1, "local"), (2, "local"), (3, "parquet")])
def test_random_sparse_graphs_distributed(spark, tmp_path, seed, mode):
    rng = random.Random(seed)
    vertices = rng.randrange(200, 3_000)
    edges = [(rng.randrange(vertices), rng.randrange(vertices)) for _ in range(rng.randrange(100, 3_000))]
    extra = [rng.randrange(vertices, 2 * vertices) for _ in range(50)]
    expected = union_find_components(edges, extra)
    labels, stats = run_components(spark, tmp_path, edges, extra, threshold=DISTRIBUTED, mode=mode, partition_edges=256)
    assert labels == expected and stats.buckets[0] > 1


def test_hybrid_finishes_on_the_driver_after_distributed_rounds(spark, tmp_path):
    rng = random.Random(8)
    edges = chain(rng, 3_000) + [(rng.randrange(10_000, 12_000), rng.randrange(10_000, 12_000)) for _ in range(500)]
    # Below the input size, above what is left after the first round.
    labels, stats = run_components(spark, tmp_path, edges, threshold=3_200, partition_edges=500)
    assert labels == union_find_components(edges)
    assert stats.path == "distributed" and stats.rounds == 1
    assert 0 < stats.local_edges == stats.active_edges[0] <= 3_200


def test_each_call_reports_its_own_stats(spark, tmp_path):
    edges = chain(random.Random(2), 50)
    _, distributed = run_components(spark, tmp_path / "a", edges, threshold=DISTRIBUTED)
    _, local = run_components(spark, tmp_path / "b", edges, threshold=LOCAL)
    assert distributed.path == "distributed" and distributed.rounds > 0
    assert (local.path, local.rounds, local.local_edges) == ("local", 0, 50)
    assert distributed.path == "distributed", "a later call does not change an earlier call's stats"


def test_one_bucket_finishes_in_one_round(spark, tmp_path):
    rng = random.Random(3)
    edges = chain(rng, 2_000) + [(rng.randrange(5_000, 6_000), rng.randrange(5_000, 6_000)) for _ in range(800)]
    labels, stats = run_components(spark, tmp_path, edges, threshold=DISTRIBUTED, partition_edges=len(edges))
    assert labels == union_find_components(edges)
    assert (stats.rounds, stats.buckets, stats.active_edges, stats.local_edges) == (1, [1], [0], 0)


def test_bucket_count():
    assert [bucket_count(n, 100) for n in (0, 1, 100, 101, 150, 1_000)] == [1, 1, 1, 2, 2, 10]


@st.composite
def identity_like_graphs(draw):
    """(edges, extra vertices): chains, stars, cliques, random trees and hubs over a shared pool of
    ids (so pieces overlap and merge), plus duplicate and reversed edges, self loops and isolated
    vertices; ids anywhere in the 64-bit range."""
    pool = draw(st.lists(st.integers(-(2**63), 2**63 - 1), min_size=2, max_size=80, unique=True))
    edges: list[tuple[int, int]] = []
    for kind in draw(st.lists(st.sampled_from(["chain", "star", "clique", "tree", "hub"]), min_size=1, max_size=8)):
        members = draw(st.lists(st.sampled_from(pool), min_size=2, max_size=25, unique=True))
        if kind == "chain":
            edges += list(zip(members, members[1:]))
        elif kind == "star":
            edges += [(members[0], m) for m in members[1:]]
        elif kind == "clique":
            edges += [(a, b) for i, a in enumerate(members[:8]) for b in members[i + 1:8]]
        elif kind == "tree":
            edges += [(m, members[draw(st.integers(0, i))]) for i, m in enumerate(members[1:])]
        else:  # a hub linking members of the whole pool
            hub = draw(st.sampled_from(pool))
            edges += [(hub, m) for m in draw(st.lists(st.sampled_from(pool), max_size=40))]
    if edges:
        repeated = draw(st.lists(st.sampled_from(edges), max_size=10))
        edges += repeated + [(b, a) for a, b in draw(st.lists(st.sampled_from(edges), max_size=10))]
    edges += [(v, v) for v in draw(st.lists(st.sampled_from(pool), max_size=3))]
    extra = draw(st.lists(st.sampled_from(pool), max_size=5))
    return draw(st.permutations(edges)), extra


# (local_threshold, partition_edges): every path the graph can take.
PROPERTY_PATHS = [
    pytest.param(DISTRIBUTED, 4, id="distributed-tiny-buckets"),
    pytest.param(DISTRIBUTED, 10**9, id="distributed-one-bucket"),
    pytest.param(25, 6, id="mixed-distributed-then-driver"),
    pytest.param(LOCAL, 4, id="driver"),
]


@pytest.mark.parametrize(("threshold", "partition_edges"), PROPERTY_PATHS)
@settings(max_examples=12, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(graph=identity_like_graphs())
def test_every_path_equals_union_find_on_random_graphs(spark, tmp_path_factory, threshold, partition_edges, graph):
    edges, extra = graph
    labels, stats = run_components(spark, tmp_path_factory.mktemp("cc"), edges, extra, threshold=threshold,
                                   partition_edges=partition_edges)
    assert labels == union_find_components(edges, extra)
    if threshold == LOCAL:
        assert stats.path == "local"
    elif threshold == DISTRIBUTED:
        assert stats.path == "distributed" and stats.local_edges == 0
        # self loops count: they are labelled in the first round
        assert stats.rounds == len(stats.buckets) and (stats.rounds == 0) == (not edges)


def test_empty_graph_keeps_vertices(spark, tmp_path):
    for threshold in (DISTRIBUTED, LOCAL):
        assert run_components(spark, tmp_path, [], [3, 1], threshold=threshold)[0] == {1: 1, 3: 3}


def test_local_components_matches_union_find():
    rng = random.Random(4)
    edges = [(rng.randrange(-50, 500), rng.randrange(-50, 500)) for _ in range(400)]
    src, dst = (np.array(side, dtype=np.int64) for side in zip(*edges))
    ids, component = local_components(src, dst)
    assert dict(zip(ids.tolist(), component.tolist())) == union_find_components(edges)


# ----------------------------------------------------------------------------------------------
# Vertex ids
# ----------------------------------------------------------------------------------------------


def identifier_rows(n: int) -> list[tuple[str, str]]:
    return [("email", f"user{i}@example.com") for i in range(n)] + [("phone", f"+1555{i:07d}") for i in range(n)]


def test_stable_vertex_id_is_deterministic_and_type_sensitive(spark):
    df = spark.createDataFrame([("email", "a@b.c"), ("user_id", "a@b.c")], "identifier_type string, identifier_value string")
    key = F.concat_ws(":", "identifier_type", "identifier_value")
    first = [r.id for r in df.select(stable_vertex_id(key).alias("id")).collect()]
    again = [r.id for r in df.select(stable_vertex_id(key).alias("id")).collect()]
    assert first == again and first[0] != first[1]
    assert df.select(stable_vertex_id(key)).schema[0].dataType.simpleString() == "bigint"


def test_assign_vertex_ids_without_collisions_uses_the_plain_hash(spark):
    df = spark.createDataFrame(identifier_rows(50) * 2, "identifier_type string, identifier_value string")
    got = assign_vertex_ids(df)
    expected = df.distinct().select(
        "identifier_type", "identifier_value",
        stable_vertex_id(F.concat_ws(":", "identifier_type", "identifier_value")).alias("vertex_id"),
    )
    assert sorted(got.collect()) == sorted(expected.collect())


def test_vertex_ids_unsalted_tells_plain_hashes_from_a_resolved_collision(spark):
    df = spark.createDataFrame(identifier_rows(20), "identifier_type string, identifier_value string")
    plain = assign_vertex_ids(df)
    assert vertex_ids_unsalted(plain)
    key = F.concat_ws(":", "identifier_type", "identifier_value")
    one_salted = plain.withColumn("vertex_id", F.when(F.col("identifier_value") == "+15550000003",
                                                      stable_vertex_id(key, 1)).otherwise(F.col("vertex_id")))
    assert not vertex_ids_unsalted(one_salted)


def tiny_hash(key, salt):
    """Only 64 possible ids: forces many collisions, and collisions with already settled ids."""
    return F.pmod(F.xxhash64(F.lit(salt), key), F.lit(64))


def test_assign_vertex_ids_resolves_forced_collisions_deterministically(spark):
    rows = identifier_rows(20)  # 40 identifiers into 64 slots
    df = spark.createDataFrame(rows, "identifier_type string, identifier_value string")
    first = {(r.identifier_type, r.identifier_value): r.vertex_id for r in assign_vertex_ids(df, hash_fn=tiny_hash).collect()}
    assert set(first) == set(rows)
    assert len(set(first.values())) == len(rows), "ids are unique"
    assert all(0 <= v < 64 for v in first.values())
    shuffled = list(rows)
    random.Random(3).shuffle(shuffled)
    df2 = spark.createDataFrame(shuffled, "identifier_type string, identifier_value string").repartition(3)
    again = {(r.identifier_type, r.identifier_value): r.vertex_id for r in assign_vertex_ids(df2, hash_fn=tiny_hash).collect()}
    assert again == first
    # Per colliding hash, the smallest identifier keeps the unsalted id.
    by_hash: dict[int, list[tuple[str, str]]] = {}
    for row in df.select("identifier_type", "identifier_value", tiny_hash(F.concat_ws(":", "identifier_type", "identifier_value"), 0).alias("h")).collect():
        by_hash.setdefault(row.h, []).append((row.identifier_type, row.identifier_value))
    assert any(len(group) > 1 for group in by_hash.values()), "the test must force collisions"
    for h, group in by_hash.items():
        assert first[min(group)] == h
