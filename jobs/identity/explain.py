"""`c360 identity explain ID_A ID_B`: why two identifiers are (or are not) the same customer.

An ID is `type:value` (user_id, anonymous_id, email, phone) or a plain value, which matches every
type it normalizes to. When both belong to one customer, the shortest chain of evidence between
them is printed (breadth-first search over the edges inside that customer, collected to the driver
only up to `identity.explain_max_identifiers`). Otherwise "not linked", and what kept them apart:
a rule that removed one of them, the per-customer limit cuts between their customers, or a removed
(blocked / hub) identifier both are linked to. Unknown identifiers are an error (exit status 2).
"""
from __future__ import annotations

import re
from collections import deque

from pyspark.sql import DataFrame, SparkSession, Window
from pyspark.sql import functions as F

from jobs.core import tables
from jobs.core.context import JobContext
from jobs.core.errors import InputError
from jobs.identity.identifiers import IDENTIFIER_TYPES, PHONE, normalize_email, normalize_id
from jobs.identity.phones import e164
from jobs.identity.evidence import CUSTOMER_MASTER, IDENTIFIER_KEY, edges_both_ways, endpoints

# Phones are read in E.164 on the driver (jobs.identity.phones.e164) before these run; trimming keeps them.
NORMALIZERS = {"user_id": normalize_id, "anonymous_id": normalize_id, "email": normalize_email, "phone": normalize_id}
PHONE_LIKE = r"^\+?[0-9 ().-]*[0-9][0-9 ().-]*$"


# ----------------------------------------------------------------------------------------------


def candidates(spark: SparkSession, text: str, phone_region: str) -> DataFrame:
    """(identifier_type, identifier_value) keys `text` may denote, normalized like stitching does."""
    kind, sep, rest = text.partition(":")
    if sep and kind in IDENTIFIER_TYPES:
        pairs = [(kind, rest)]
    else:
        pairs = [(t, text) for t in IDENTIFIER_TYPES if t != PHONE]
        pairs += [(PHONE, text)] if re.match(PHONE_LIKE, text.strip()) else []
    pairs = [(t, e164(v, phone_region) if t == PHONE else v) for t, v in pairs]
    raw = spark.createDataFrame(pairs, "identifier_type string, raw string")
    value = F.lit(None).cast("string")
    for name, normalize in NORMALIZERS.items():
        value = F.when(F.col("identifier_type") == name, normalize(F.col("raw"))).otherwise(value)
    return raw.select("identifier_type", value.alias("identifier_value")).where(F.col("identifier_value").isNotNull())


def _name(identifier_type: str, identifier_value: str) -> str:
    return f"{identifier_type}:{identifier_value}"


def _evidence(row) -> str:
    when = row["first_seen"].strftime("%Y-%m-%d %H:%M:%S UTC") if row["first_seen"] else "?"
    if row["first_source_kind"] == CUSTOMER_MASTER:
        source = f"customer master row {row['first_source_id'][:12]} in {row['first_source_file']}, loaded {when}"
    else:
        source = f"{row['first_source_kind']} message {row['first_source_id']} at {when} ({row['first_source_file']})"
    if row["last_seen"] and row["last_seen"] != row["first_seen"]:
        source += f"; last seen {row['last_seen'].strftime('%Y-%m-%d %H:%M:%S UTC')}"
    return source


def shortest_chain(edges: list, starts: set, goals: set) -> list | None:
    """BFS over undirected evidence rows (a_type, a_value, b_type, b_value, ...): the rows on a
    shortest path from any start to any goal, or None. Neighbours are visited in sorted order."""
    adjacent: dict[tuple, list] = {}
    for row in edges:
        a, b = (row["a_type"], row["a_value"]), (row["b_type"], row["b_value"])
        adjacent.setdefault(a, []).append((b, row))
        adjacent.setdefault(b, []).append((a, row))
    for nbrs in adjacent.values():
        nbrs.sort(key=lambda pair: pair[0])
    previous: dict[tuple, tuple | None] = {s: None for s in sorted(starts)}
    queue = deque(sorted(starts))
    while queue:
        node = queue.popleft()
        if node in goals:
            chain = []
            while previous[node] is not None:
                node_before, row = previous[node]
                chain.append((node_before, row, node))
                node = node_before
            return list(reversed(chain))
        for nbr, row in adjacent.get(node, []):
            if nbr not in previous:
                previous[nbr] = (node, row)
                queue.append(nbr)
    return None


def explain(ctx: JobContext, first: str, second: str) -> list[str]:
    spark, wh = ctx.spark, ctx.warehouse
    settings = ctx.config.identity
    needed = (tables.IDENTITY_IDENTIFIERS, tables.IDENTITY_EDGES, tables.IDENTITY_MAP)
    if not all(wh.exists(spark, t) for t in needed):
        raise InputError(f"no identity graph under {wh.root}: run `c360 stitch` first")
    keys = list(IDENTIFIER_KEY)
    # previousIds seen only in alias calls exist only as ends of alias edges
    identifiers = wh.read(spark, tables.IDENTITY_IDENTIFIERS).select(*keys).unionByName(
        endpoints(wh.read(spark, tables.IDENTITY_ALIAS_EDGES, missing="empty")))
    identity_map = wh.read(spark, tables.IDENTITY_MAP)
    found = []
    for text in (first, second):
        rows = identifiers.join(candidates(spark, text, settings.default_phone_region), keys, "left_semi").select(*keys).collect()
        if not rows:
            raise InputError(f"unknown identifier {text!r}: no identifier of any type has that value")
        found.append({(r["identifier_type"], r["identifier_value"]) for r in rows})
    names = [" or ".join(_name(*k) for k in sorted(ids)) for ids in found]
    labels = {
        (r["identifier_type"], r["identifier_value"]): (r["customer_id"], r["component"])
        for r in identity_map.join(_keys_frame(spark, found[0] | found[1]), keys, "left_semi").collect()
    }
    customers = [{labels[k][0] for k in ids if k in labels} for ids in found]
    shared = sorted(customers[0] & customers[1])
    if shared:
        return _linked(spark, wh, settings, shared[0], found, names)
    return _not_linked(spark, wh, found, names, labels, customers)


def graph_edges(spark: SparkSession, wh) -> DataFrame:
    """Every edge of the identity graph: co-occurrence evidence and the resolved alias edges."""
    alias_edges = wh.read(spark, tables.IDENTITY_ALIAS_EDGES, missing="empty")
    return wh.read(spark, tables.IDENTITY_EDGES).unionByName(alias_edges)


def _keys_frame(spark: SparkSession, keys: set) -> DataFrame:
    return spark.createDataFrame(sorted(keys), "identifier_type string, identifier_value string")


def _linked(spark, wh, settings, customer_id: str, found, names) -> list[str]:
    members = wh.read(spark, tables.IDENTITY_MAP).where(F.col("customer_id") == customer_id).select(*IDENTIFIER_KEY)
    size = members.count()
    if size > settings.explain_max_identifiers:
        raise InputError(
            f"{names[0]} and {names[1]} are both customer {customer_id}, which has {size:,} identifiers: more than "
            f"identity.explain_max_identifiers ({settings.explain_max_identifiers:,}), so the chain is not collected"
        )
    member_keys = {(r[0], r[1]) for r in members.collect()}
    frame = _keys_frame(spark, member_keys)
    edges = (
        graph_edges(spark, wh)
        .join(F.broadcast(frame.toDF("a_type", "a_value")), ["a_type", "a_value"], "left_semi")
        .join(F.broadcast(frame.toDF("b_type", "b_value")), ["b_type", "b_value"], "left_semi")
        .collect()
    )
    starts, goals = found[0] & member_keys, found[1] & member_keys
    chain = shortest_chain(edges, starts, goals) or []
    lines = [f"linked: {names[0]} and {names[1]} are customer {customer_id} ({len(chain)} step{'s' if len(chain) != 1 else ''})"]
    if chain:
        lines.append(f"  {_name(*chain[0][0])}")
    for _before, row, after in chain:
        lines.append(f"    <- {_evidence(row)} ->")
        lines.append(f"  {_name(*after)}")
    return lines


def _not_linked(spark, wh, found, names, labels, customers) -> list[str]:
    lines = [f"not linked: {names[0]} and {names[1]} are not the same customer"]
    audit = _current_audit(spark, wh)
    for ids, name in zip(found, names):
        for key in sorted(ids):
            if key not in labels:
                for r in audit.where((F.col("identifier_type") == key[0]) & (F.col("identifier_value") == key[1])
                                     & F.col("other_type").isNull()).collect():
                    detail = f" ({r['detail']})" if r["detail"] else ""
                    lines.append(f"  {_name(*key)} is not used for stitching: rule {r['rule']}{detail}, recorded {r['run_date']}")
    if customers[0] and customers[1]:
        lines.append(f"  customers: {', '.join(sorted(customers[0]))} / {', '.join(sorted(customers[1]))}")
        members = wh.read(spark, tables.IDENTITY_MAP).where(F.col("customer_id").isin(sorted(customers[0] | customers[1])))
        side = members.select(*IDENTIFIER_KEY, F.col("customer_id").alias("side"))
        cuts = (
            audit.where(F.col("other_type").isNotNull())
            .join(side, list(IDENTIFIER_KEY), "inner")
            .join(side.toDF("other_type", "other_value", "other_side"), ["other_type", "other_value"], "inner")
            .where(F.col("side") != F.col("other_side"))
            .orderBy("rule", *IDENTIFIER_KEY, "other_type", "other_value")
            .collect()
        )
        for r in cuts:
            lines.append(
                f"  kept apart by rule {r['rule']}: the edge {_name(r['identifier_type'], r['identifier_value'])} - "
                f"{_name(r['other_type'], r['other_value'])} was cut ({r['detail']}), recorded {r['run_date']}"
            )
        for removed, rule in _shared_removed_neighbours(spark, wh, audit, members, customers):
            lines.append(f"  both are linked to {_name(*removed)}, which rule {rule} removed from stitching")
    if len(lines) == 1:
        lines.append("  no evidence links them")
    return lines


def _current_audit(spark, wh) -> DataFrame:
    """gold/identity_audit, latest record per identifier / edge and rule."""
    # A window, not a join: other_type/other_value are null for identifier rules.
    latest_first = Window.partitionBy("rule", *IDENTIFIER_KEY, "other_type", "other_value").orderBy(F.desc("run_date"))
    audit = wh.read(spark, tables.IDENTITY_AUDIT, missing="empty")
    return audit.withColumn("_rank", F.row_number().over(latest_first)).where(F.col("_rank") == 1).drop("_rank")


def _shared_removed_neighbours(spark, wh, audit, members, customers) -> list[tuple[tuple, str]]:
    """Removed identifiers with direct evidence to both customers."""
    removed = audit.where(F.col("other_type").isNull()).select(*IDENTIFIER_KEY, "rule")
    edges = graph_edges(spark, wh)
    both_ways = edges_both_ways(edges, other=("member_type", "member_value"))
    sides = members.select(F.col("identifier_type").alias("member_type"), F.col("identifier_value").alias("member_value"),
                           "customer_id")
    rows = (
        both_ways.join(sides, ["member_type", "member_value"], "inner")
        .join(removed, list(IDENTIFIER_KEY), "inner")
        .groupBy(*IDENTIFIER_KEY, "rule")
        .agg(F.collect_set("customer_id").alias("customers"))
        .collect()
    )
    a, b = customers
    return sorted(
        ((r["identifier_type"], r["identifier_value"]), r["rule"])
        for r in rows if set(r["customers"]) & a and set(r["customers"]) & b
    )
