"""Identity rules (the `identity:` config section, jobs.identity.settings) and how they prune the identity graph.

Rules run in this order on a graph of identifiers (vertices) and evidence edges:

0. **Alias edges are merge instructions.** A Segment/RudderStack `alias` call links its previousId
   to every anonymous_id and user_id with that value (jobs.identity.evidence). When previousId was
   a former userId, the call says "these two user ids are one person" (an explicit merge, audited
   as rule `alias_merge`). An edge between two user ids can only come from such a call (an event
   or customer master row carries one user id), so every user_id-user_id edge is an alias edge. The user ids linked by alias edges (between
   non-blocked user ids, transitively) form one *person*: the hub cap and the per-customer limit
   on user_id count persons, not user ids, and an alias edge is never cut by a limit.

1. **Blocked values** — an identifier whose normalized value is in `blocked_values` (any type,
   compared lower-cased) or matches a Java regex in `blocked_patterns[type]` is not identity at all
   (`null`, `anonymous`, `test@test.com`, `+0000000000`, ...). It is removed with all its edges.
   Rule names: `blocked_value`, `blocked_pattern`.
2. **Hub cap** — an identifier other than a user_id that is linked by direct evidence to more than
   `max_linked_user_ids` distinct (non-blocked) user ids - persons: an alias-linked set of user
   ids counts once - is shared (a family tablet, a shop's phone, a support mailbox), not
   identity: removed with all its edges. Rule name: `hub_cap`. The count only grows as evidence
   arrives, so a hub stays a hub.
3. **Per-customer limits** — `limits[type]` caps how many identifiers of that type one customer
   may hold (default: one user_id; the user ids of one person count once). Connected components
   of what survives 1–2 that respect every limit are customers as they are. A component that
   breaks a limit is re-clustered by a deterministic constrained Kruskal pass over its edges:

   - alias edges are taken first and always accepted (at that point clusters hold only the user
     ids of one person, so no limit can be broken);
   - then edges are taken strongest first: an edge is as strong as its weaker identifier, so the
     key is (priority of the weaker end, priority of the stronger end, first seen, the two
     identifiers) with priorities from `priority` (user_id > email > phone > anonymous_id by default);
   - an edge joining two partial clusters is accepted unless the union would hold more identifiers
     of some limited type than allowed; a rejected edge is cut, and its weaker identifier is the
     one "left out of the merge" (audited as rule `limit:<type>` with both ends).

   So identifiers first attach to the strongest identity they have direct evidence for (a browser's
   anonymous id to the user id that logged in on it first), and a chain anon–email–anon that would
   bring two user ids together is cut at the weakest, newest link. A rejected edge can never become
   internal later (the same two clusters would have to merge by another edge, which the same limit
   forbids), so every final cluster is connected by accepted edges and respects every limit. The
   result depends only on the component's edges and their first-seen times, not on processing
   order, which is what makes incremental runs equal to a full rebuild.

   This pass runs in Python per violating component (an RDD group-by): such components are rare
   and small once blocked values and hubs are gone, so it is off the hot path.
"""
from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import LongType, StringType, StructField, StructType

from jobs.identity.identifiers import USER_ID
from jobs.identity.evidence import edges_both_ways
from jobs.identity.settings import IdentitySettings

# Rule names as written to gold/identity_audit.
RULE_BLOCKED_VALUE = "blocked_value"
RULE_BLOCKED_PATTERN = "blocked_pattern"
RULE_HUB_CAP = "hub_cap"
RULE_LIMIT_PREFIX = "limit:"
# Audit-only rule names: a phone value that is no number (never an identifier, jobs.identity.phones), and an
# alias call that merged two user ids (rule 0).
RULE_UNPARSEABLE_PHONE = "unparseable_phone"
RULE_ALIAS_MERGE = "alias_merge"


def rank_column(settings: IdentitySettings, type_col: Column) -> Column:
    """settings.rank of the identifier type in `type_col` (1 = highest priority), as a column."""
    expr = F.lit(None).cast("int")
    for name in reversed(settings.priority):
        expr = F.when(type_col == name, F.lit(settings.rank(name))).otherwise(expr)
    return expr


# ----------------------------------------------------------------------------------------------
# Rule 0: alias edges and persons
# ----------------------------------------------------------------------------------------------

PERSONS_SCHEMA = "identifier_value string, person string"


def is_alias_edge(a_type: Column, b_type: Column) -> Column:
    """True for an edge between two user ids: only an alias call produces one (module docstring)."""
    return (a_type == USER_ID) & (b_type == USER_ID)


def alias_edges(edges: DataFrame, settings: IdentitySettings) -> DataFrame:
    """The alias edges (a_value, b_value: two user ids) between non-blocked user ids."""
    a_blocked = blocked_rule(settings, F.col("a_type"), F.col("a_value"))
    b_blocked = blocked_rule(settings, F.col("b_type"), F.col("b_value"))
    kept = is_alias_edge(F.col("a_type"), F.col("b_type")) & a_blocked.isNull() & b_blocked.isNull()
    return edges.where(kept).select("a_value", "b_value")


def person_unit(type_col: Column, value_col: Column, person_col: Column) -> Column:
    """What a limit counts: the person of a user id with alias partners, else the identifier itself."""
    return F.when(type_col == USER_ID, F.coalesce(person_col, value_col)).otherwise(value_col)


# ----------------------------------------------------------------------------------------------
# Rules 1 and 2: identifiers that are not identity
# ----------------------------------------------------------------------------------------------


def blocked_rule(settings: IdentitySettings, kind: Column | None = None, value: Column | None = None) -> Column:
    """Rule name that blocks the identifier (default columns identifier_type/_value), or null."""
    kind = F.col("identifier_type") if kind is None else kind
    value = F.col("identifier_value") if value is None else value
    lowered = [v.lower() for v in settings.blocked_values]
    by_value = F.lower(value).isin(lowered) if lowered else F.lit(False)
    by_pattern = F.lit(False)
    for name, patterns in settings.blocked_patterns.items():
        for pattern in patterns:
            by_pattern = by_pattern | ((kind == name) & value.rlike(pattern))
    return F.when(by_value, F.lit(RULE_BLOCKED_VALUE)).when(by_pattern, F.lit(RULE_BLOCKED_PATTERN))


def removed_identifiers(
    identifiers: DataFrame, edges: DataFrame, settings: IdentitySettings, persons: DataFrame | None = None,
    *, every_end_judged: bool = False,
) -> DataFrame:
    """`identifier_type, identifier_value, rule, detail` for every identifier rules 1–2 remove.

    Only identifiers in `identifiers` are judged; `edges` (a_type, a_value, b_type, b_value: one
    row per pair) must hold every edge of each of them. `persons` (PERSONS_SCHEMA) names the person
    of every user id with alias partners, so the hub cap counts alias-linked user ids once.
    `every_end_judged`: every end of `edges` is in `identifiers` (a full build), so the edges need
    no filtering by them.
    """
    keys = identifiers.select("identifier_type", "identifier_value")
    blocked = (
        keys.withColumn("rule", blocked_rule(settings))
        .where(F.col("rule").isNotNull())
        .withColumn("detail", F.lit(None).cast("string"))
    )
    both_ways = edges_both_ways(edges)
    if persons is None:
        persons = identifiers.sparkSession.createDataFrame([], PERSONS_SCHEMA)
    user_persons = persons.select(F.col("identifier_value").alias("other_value"), "person")
    links = both_ways.where(
        (F.col("other_type") == USER_ID) & (F.col("identifier_type") != USER_ID)
        & blocked_rule(settings, F.col("identifier_type"), F.col("identifier_value")).isNull()
        & blocked_rule(settings, F.col("other_type"), F.col("other_value")).isNull()
    )
    if not every_end_judged:
        links = links.join(keys, ["identifier_type", "identifier_value"], "left_semi")
    # An identifier links to at most as many persons as user ids, and to each user id by one edge:
    # only identifiers with more links than the cap can be hubs, so only their links are counted
    # distinct by person. (Bench scale M: a hash count of 1M links instead of a distinct count.)
    many_links = (
        links.groupBy("identifier_type", "identifier_value").count()
        .where(F.col("count") > settings.max_linked_user_ids)
        .select("identifier_type", "identifier_value")
    )
    user_links = (
        links.join(many_links, ["identifier_type", "identifier_value"], "left_semi")
        .join(user_persons, "other_value", "left")
        .groupBy("identifier_type", "identifier_value")
        .agg(F.countDistinct(F.coalesce("person", "other_value")).alias("user_ids"))
        .where(F.col("user_ids") > settings.max_linked_user_ids)
    )
    hubs = user_links.select(
        "identifier_type", "identifier_value", F.lit(RULE_HUB_CAP).alias("rule"),
        F.format_string(f"linked to %d user ids (cap {settings.max_linked_user_ids})", "user_ids").alias("detail"),
    )
    return blocked.unionByName(hubs)


# ----------------------------------------------------------------------------------------------
# Rule 3: per-customer limits
# ----------------------------------------------------------------------------------------------

CLUSTER_SCHEMA = StructType([
    StructField("vertex_id", LongType(), False),
    StructField("cluster", LongType(), False),
])
CUT_SCHEMA = StructType([
    StructField("identifier_type", StringType(), False),
    StructField("identifier_value", StringType(), False),
    StructField("other_type", StringType(), False),
    StructField("other_value", StringType(), False),
    StructField("rule", StringType(), False),
    StructField("detail", StringType(), False),
])


def violating_components(labels: DataFrame, settings: IdentitySettings) -> DataFrame:
    """`component` of every component holding more identifiers of a limited type than allowed.

    labels: component, identifier_type, unit (person_unit: user ids of one person count once)."""
    if not settings.limits:
        return labels.select("component").limit(0)
    # A component holds no more units of a type than identifiers of it: only components with more
    # identifiers of a limited type than its limit can break it, and only theirs are counted
    # distinct. (A count per component is a hash aggregate; distinct counts of several columns expand
    # every row once per column and sort them: bench scale M, 0.9 million identifiers.)
    crowded, over = F.lit(False), F.lit(False)
    for name, limit in settings.limits.items():
        of_type = F.col("identifier_type") == name
        crowded = crowded | (F.count(F.when(of_type, F.lit(1))) > limit)
        over = over | (F.countDistinct(F.when(of_type, F.col("unit"))) > limit)
    candidates = labels.groupBy("component").agg(crowded.alias("crowded")).where("crowded").select("component")
    return (labels.join(candidates, "component", "left_semi")
            .groupBy("component").agg(over.alias("over")).where("over").select("component"))


def constrained_clusters(
    edges: list[tuple], vertex_types: dict[int, str], limits: dict[str, int], names: dict[int, str]
) -> tuple[dict[int, int], list[tuple]]:
    """The constrained Kruskal pass of one component (module docstring, rules 0 and 3).

    `edges`: (sort_key, a_id, b_id) with a_id the weaker end; `vertex_types`: id -> type;
    `names`: id -> "type:value" for audit details. Edges between two user ids are alias edges:
    merged first, never cut, and the user ids they join count once against the limits.
    Returns ({vertex id: cluster id = min vertex id of its cluster}, [(weaker, stronger, type)]).
    """
    parent = {v: v for v in vertex_types}

    def find(v: int) -> int:
        while parent[v] != v:
            parent[v] = parent[parent[v]]
            v = parent[v]
        return v

    def union(ra: int, rb: int) -> int:
        root, child = (ra, rb) if ra < rb else (rb, ra)
        parent[child] = root
        return child

    alias = [(weak, strong) for _key, weak, strong in edges
             if vertex_types[weak] == USER_ID and vertex_types[strong] == USER_ID]
    for weak, strong in alias:
        ra, rb = find(weak), find(strong)
        if ra != rb:
            union(ra, rb)
    # What a limit counts per vertex: its person (alias root) for a user id, else the vertex.
    unit = {v: find(v) if vertex_types[v] == USER_ID else v for v in vertex_types}
    # Per root: the identifiers of limited types it holds (small: bounded by the limits).
    held: dict[int, dict[str, list[int]]] = {}
    for v, t in vertex_types.items():
        if t in limits:
            held.setdefault(find(v), {}).setdefault(t, []).append(v)

    def units(ra: int, rb: int, t: str) -> int:
        return len({unit[v] for v in held.get(ra, {}).get(t, []) + held.get(rb, {}).get(t, [])})

    cuts = []
    for _key, weak, strong in sorted(edges):
        ra, rb = find(weak), find(strong)
        if ra == rb:
            continue
        broken = next((t for t in limits if units(ra, rb, t) > limits[t]), None)
        if broken is not None:
            between = sorted(names[v] for v in held.get(ra, {}).get(broken, []) + held.get(rb, {}).get(broken, []))
            cuts.append((weak, strong, broken, between))
            continue
        child = union(ra, rb)
        for t, members in held.pop(child, {}).items():
            held.setdefault(find(child), {}).setdefault(t, []).extend(members)
    smallest: dict[int, int] = {}
    for v in vertex_types:
        root = find(v)
        smallest[root] = min(smallest.get(root, v), v)
    return {v: smallest[find(v)] for v in vertex_types}, cuts


def enforce_limits(
    vertices: DataFrame, edges: DataFrame, components: DataFrame, settings: IdentitySettings,
    persons: DataFrame | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Split components that break a per-customer limit.

    vertices: identifier_type, identifier_value, vertex_id; edges: a_vertex, b_vertex, a_type,
    a_value, b_type, b_value, first_seen; components: vertex_id, component; persons
    (PERSONS_SCHEMA): the person of every user id with alias partners.
    Returns (vertex_id, component, cluster) for every vertex, and the cut edges in CUT_SCHEMA.
    """
    spark = vertices.sparkSession
    if persons is None:
        persons = spark.createDataFrame([], PERSONS_SCHEMA)
    user_persons = persons.select(F.lit(USER_ID).alias("identifier_type"), "identifier_value", "person")
    labelled = (
        vertices.join(components, "vertex_id", "inner")
        .join(user_persons, ["identifier_type", "identifier_value"], "left")
        .withColumn("unit", person_unit(F.col("identifier_type"), F.col("identifier_value"), F.col("person")))
    )
    bad = violating_components(labelled, settings)
    bad_vertices = labelled.join(bad, "component", "left_semi")
    rank_a = rank_column(settings, F.col("a_type"))
    rank_b = rank_column(settings, F.col("b_type"))
    # Orient each edge weaker end first; the strength key is (weaker rank, stronger rank, time, ids).
    a_weaker = (rank_a > rank_b) | ((rank_a == rank_b) & (F.col("a_vertex") > F.col("b_vertex")))
    bad_edges = (
        edges.join(bad_vertices.select(F.col("vertex_id").alias("a_vertex"), "component"), "a_vertex", "inner")
        .select(
            "component",
            F.when(a_weaker, F.col("a_vertex")).otherwise(F.col("b_vertex")).alias("weak"),
            F.when(a_weaker, F.col("b_vertex")).otherwise(F.col("a_vertex")).alias("strong"),
            F.greatest(rank_a, rank_b).alias("weak_rank"),
            F.least(rank_a, rank_b).alias("strong_rank"),
            F.unix_micros("first_seen").alias("first_micros"),
            F.when(a_weaker, F.concat_ws(":", "a_type", "a_value")).otherwise(F.concat_ws(":", "b_type", "b_value")).alias("weak_name"),
            F.when(a_weaker, F.concat_ws(":", "b_type", "b_value")).otherwise(F.concat_ws(":", "a_type", "a_value")).alias("strong_name"),
        )
    )
    no_long, no_text = F.lit(None).cast("long"), F.lit(None).cast("string")
    payload = bad_edges.unionByName(
        # Every vertex with its type, so the pass knows each member (rows without `strong`).
        bad_vertices.select(
            "component", F.col("vertex_id").alias("weak"), no_long.alias("strong"),
            F.lit(None).cast("int").alias("weak_rank"), F.lit(None).cast("int").alias("strong_rank"),
            no_long.alias("first_micros"),
            F.concat_ws(":", "identifier_type", "identifier_value").alias("weak_name"), no_text.alias("strong_name"),
        )
    )
    limits = dict(settings.limits)

    def resolve(rows) -> list[tuple]:
        rows = list(rows)
        names = {r["weak"]: r["weak_name"] for r in rows if r["strong"] is None}
        types = {v: n.split(":", 1)[0] for v, n in names.items()}
        edge_list = [
            ((r["weak_rank"], r["strong_rank"], r["first_micros"], r["weak_name"], r["strong_name"]), r["weak"], r["strong"])
            for r in rows if r["strong"] is not None
        ]
        clusters, cuts = constrained_clusters(edge_list, types, limits, names)
        out = [("cluster", v, c, None) for v, c in clusters.items()]
        out += [("cut", weak, strong, (broken, between)) for weak, strong, broken, between in cuts]
        return out

    resolved = (
        payload.rdd.map(lambda r: (r["component"], r.asDict()))
        .groupByKey()
        .flatMap(lambda kv: resolve(kv[1]))
        .cache()
    )
    split = spark.createDataFrame(
        resolved.filter(lambda r: r[0] == "cluster").map(lambda r: (r[1], r[2])), CLUSTER_SCHEMA
    )
    names_by_id = vertices.select("vertex_id", "identifier_type", "identifier_value")
    cut_rows = spark.createDataFrame(
        resolved.filter(lambda r: r[0] == "cut").map(
            lambda r: (r[1], r[2], RULE_LIMIT_PREFIX + r[3][0], f"would join {' and '.join(r[3][1])}")
        ),
        "weak long, strong long, rule string, detail string",
    )
    cuts = (
        cut_rows.join(names_by_id.withColumnRenamed("vertex_id", "weak"), "weak", "inner")
        .join(names_by_id.select(F.col("vertex_id").alias("strong"), F.col("identifier_type").alias("other_type"),
                                 F.col("identifier_value").alias("other_value")), "strong", "inner")
        .select(*CUT_SCHEMA.fieldNames())
    )
    clusters = (
        components.join(split, "vertex_id", "left")
        .select("vertex_id", "component", F.coalesce("cluster", "component").alias("cluster"))
    )
    return clusters, cuts
