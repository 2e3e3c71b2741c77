"""identity rules: the `identity:` config section, blocked values, and the constrained Kruskal pass
that enforces per-customer limits (pure Python, no stitching run)."""
from __future__ import annotations

import pytest
from chispa import assert_df_equality

from jobs.core.config import build_section
from jobs.core.errors import ConfigError
from jobs.identity.rules import (
    RULE_BLOCKED_PATTERN,
    RULE_BLOCKED_VALUE,
    RULE_HUB_CAP,
    blocked_rule,
    constrained_clusters,
    rank_column,
    removed_identifiers,
)
from jobs.identity.settings import IdentitySettings


def _section(data: dict) -> IdentitySettings:
    return build_section(IdentitySettings, data, key="identity", file="conf/test.yml")


def test_a_partial_section_keeps_the_other_defaults():
    settings = _section({"limits": {"user_id": 2}, "max_linked_user_ids": 5})
    assert (settings.limits, settings.max_linked_user_ids) == ({"user_id": 2}, 5)
    assert settings.blocked_values == IdentitySettings().blocked_values
    assert settings.priority == ["user_id", "email", "phone", "anonymous_id"]


def test_rank_column_follows_the_priority(spark):
    settings = _section({"priority": ["email", "user_id", "anonymous_id", "phone"]})
    df = spark.createDataFrame([(t,) for t in ("user_id", "anonymous_id", "email", "phone", "cookie")], "t string")
    got = {r["t"]: r["rank"] for r in df.select("t", rank_column(settings, df["t"]).alias("rank")).collect()}
    assert got == {"email": 1, "user_id": 2, "anonymous_id": 3, "phone": 4, "cookie": None}


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"limits": {"user_id": 1}, "max_linked_userids": 3}, "unknown key 'identity.max_linked_userids'"),
        ({"priority": ["user_id", "email", "phone"]}, "'identity.priority' must list each of"),
        ({"limits": {"cookie": 2}}, "'identity.limits.cookie' is not an identifier type"),
        ({"limits": {"email": 0}}, "'identity.limits.email' must be at least 1"),
        ({"blocked_patterns": {"phone": ["^(0+$"]}}, "'identity.blocked_patterns.phone[0]' is not a valid regex"),
        ({"survivorship": {"zip": "newest"}}, "'identity.survivorship.zip' must be one of"),
        ({"survivorship": {"shoe_size": "oldest"}}, "'identity.survivorship.shoe_size' is not a customer column"),
        ({"default_phone_region": "XX"}, "'identity.default_phone_region' must be an ISO 3166 region code"),
        ({"alias_previous_type": "user_id"}, "unknown key 'identity.alias_previous_type'"),
        ({"checkpoints": "disk"}, "'identity.checkpoints' must be one of local, parquet, not 'disk'"),
    ],
)
def test_bad_identity_config_names_file_and_key(data, message):
    with pytest.raises(ConfigError) as err:
        _section(data)
    assert "conf/test.yml" in str(err.value) and message in str(err.value)


def test_blocked_values_and_patterns(spark):
    settings = IdentitySettings()
    rows = [
        ("user_id", "NULL"), ("anonymous_id", "anonymous"), ("email", "test@test.com"),
        ("email", "noreply@shop.com"), ("phone", "+10000000000"), ("phone", "+15555555555"),
        ("phone", "+11234567890"), ("phone", "+15551234567"), ("email", "ann@shop.com"), ("user_id", "u1"),
    ]
    df = spark.createDataFrame(rows, "identifier_type string, identifier_value string")
    expected = spark.createDataFrame(
        [(t, v, r) for (t, v), r in zip(rows, [
            RULE_BLOCKED_VALUE, RULE_BLOCKED_VALUE, RULE_BLOCKED_VALUE, RULE_BLOCKED_PATTERN, RULE_BLOCKED_PATTERN,
            RULE_BLOCKED_PATTERN, RULE_BLOCKED_PATTERN, None, None, None,
        ])],
        "identifier_type string, identifier_value string, rule string",
    )
    assert_df_equality(df.withColumn("rule", blocked_rule(settings)), expected, ignore_row_order=True,
                       ignore_nullable=True)


EDGE_SCHEMA = "a_type string, a_value string, b_type string, b_value string"
KEY_SCHEMA = "identifier_type string, identifier_value string"


def _hub_case(spark):
    """Identifiers, edges (one row per pair, either end first) and persons, cap 2: shared@x.com is
    linked to four user ids of three persons (u1 and u1old are one) - a hub; pair@x.com to three
    user ids of two persons - more links than the cap, yet no hub; a9 to two user ids; the blocked
    test@test.com to three."""
    edges = [("email", "shared@x.com", "user_id", u) for u in ("u1", "u2", "u3")]
    edges += [("email", "pair@x.com", "user_id", u) for u in ("u1", "u1old", "u2")]
    edges += [("user_id", "u1old", "email", "shared@x.com"), ("user_id", "u1", "user_id", "u1old")]
    edges += [("anonymous_id", "a9", "user_id", "u1"), ("anonymous_id", "a9", "user_id", "u2")]
    edges += [("email", "test@test.com", "user_id", u) for u in ("u1", "u2", "u3")]
    keys = sorted({(t, v) for a_t, a_v, b_t, b_v in edges for t, v in ((a_t, a_v), (b_t, b_v))})
    persons = [("u1", "u1"), ("u1old", "u1")]
    return (spark.createDataFrame(keys, KEY_SCHEMA), spark.createDataFrame(edges, EDGE_SCHEMA),
            spark.createDataFrame(persons, "identifier_value string, person string"))


@pytest.mark.parametrize("every_end_judged", [False, True])
def test_the_hub_cap_counts_persons_not_links(spark, every_end_judged):
    identifiers, edges, persons = _hub_case(spark)
    settings = IdentitySettings(max_linked_user_ids=2)
    got = removed_identifiers(identifiers, edges, settings, persons, every_end_judged=every_end_judged)
    expected = spark.createDataFrame([
        ("email", "shared@x.com", RULE_HUB_CAP, "linked to 3 user ids (cap 2)"),
        ("email", "test@test.com", RULE_BLOCKED_VALUE, None),
    ], "identifier_type string, identifier_value string, rule string, detail string")
    assert_df_equality(got, expected, ignore_row_order=True, ignore_nullable=True)


def test_the_hub_cap_judges_only_the_identifiers_given(spark):
    identifiers, edges, persons = _hub_case(spark)
    settings = IdentitySettings(max_linked_user_ids=2)
    some = identifiers.where("identifier_value != 'shared@x.com'")
    assert removed_identifiers(some, edges, settings, persons).where(f"rule = '{RULE_HUB_CAP}'").isEmpty()


# ----------------------------------------------------------------------------------------------
# The constrained Kruskal pass. Vertex ids: 1.. ; key = (weaker rank, stronger rank, time, names).
# ----------------------------------------------------------------------------------------------

RANK = {"user_id": 1, "email": 2, "phone": 3, "anonymous_id": 4}


def _run(vertices: dict[int, tuple[str, str]], edges: list[tuple[int, int, int]], limits=None):
    """vertices: id -> (type, value); edges: (a, b, time). Orients and keys edges like enforce_limits."""
    names = {v: f"{t}:{val}" for v, (t, val) in vertices.items()}
    keyed = []
    for a, b, time in edges:
        weak, strong = (a, b) if (RANK[vertices[a][0]], a) > (RANK[vertices[b][0]], b) else (b, a)
        key = (RANK[vertices[weak][0]], RANK[vertices[strong][0]], time, names[weak], names[strong])
        keyed.append((key, weak, strong))
    return constrained_clusters(keyed, {v: t for v, (t, _) in vertices.items()}, limits or {"user_id": 1}, names)


def test_shared_device_stays_with_the_user_seen_first():
    vertices = {1: ("user_id", "u1"), 2: ("user_id", "u2"), 3: ("anonymous_id", "dev")}
    clusters, cuts = _run(vertices, [(2, 3, 200), (1, 3, 100)])
    assert clusters == {1: 1, 3: 1, 2: 2}
    assert cuts == [(3, 2, "user_id", ["user_id:u1", "user_id:u2"])]


def test_chain_between_two_users_is_cut_at_the_weakest_newest_link():
    # u1 - a1 - e - a2 - u2: the anonymous ids attach to their users first, then e joins the
    # older side and the newer a2 - e link is cut.
    vertices = {1: ("user_id", "u1"), 2: ("anonymous_id", "a1"), 3: ("email", "e"), 4: ("anonymous_id", "a2"),
                5: ("user_id", "u2")}
    clusters, cuts = _run(vertices, [(1, 2, 10), (2, 3, 20), (3, 4, 30), (4, 5, 40)])
    assert clusters == {1: 1, 2: 1, 3: 1, 4: 4, 5: 4}
    assert cuts == [(4, 3, "user_id", ["user_id:u1", "user_id:u2"])]


def test_result_does_not_depend_on_edge_order_and_respects_limits():
    vertices = {i: ("user_id", f"u{i}") for i in range(1, 4)}
    vertices.update({i: ("email", f"e{i}") for i in range(4, 7)})
    edges = [(1, 4, 1), (2, 4, 2), (2, 5, 3), (3, 5, 4), (3, 6, 5), (1, 6, 6), (4, 5, 7)]
    first = _run(vertices, edges)
    assert first == _run(vertices, list(reversed(edges)))
    clusters = first[0]
    for root in set(clusters.values()):
        members = [v for v, c in clusters.items() if c == root]
        assert sum(vertices[v][0] == "user_id" for v in members) <= 1


def test_limit_on_another_type():
    vertices = {1: ("user_id", "u1"), 2: ("email", "a@x"), 3: ("email", "b@x"), 4: ("email", "c@x")}
    clusters, cuts = _run(vertices, [(1, 2, 1), (1, 3, 2), (1, 4, 3)], limits={"user_id": 1, "email": 2})
    assert clusters == {1: 1, 2: 1, 3: 1, 4: 4}
    assert [c[:3] for c in cuts] == [(4, 1, "email")]


def test_alias_edge_joins_two_user_ids_as_one_person_and_is_never_cut():
    # L1 - a (t10), w - a (t20), U1 - a (t30), alias L1 - U1 keyed to sort last: the alias is still
    # applied first, so U1's link to a is internal and only w (another person) is cut.
    vertices = {1: ("user_id", "L1"), 2: ("user_id", "U1"), 3: ("anonymous_id", "a"), 4: ("user_id", "w")}
    names = {v: f"{t}:{val}" for v, (t, val) in vertices.items()}
    keyed = [((4, 1, 10), 3, 1), ((4, 1, 20), 3, 4), ((4, 1, 30), 3, 2), ((9, 9, 99), 2, 1)]
    types = {v: t for v, (t, _) in vertices.items()}
    clusters, cuts = constrained_clusters(keyed, types, {"user_id": 1}, names)
    assert clusters == {1: 1, 2: 1, 3: 1, 4: 4}
    assert cuts == [(3, 4, "user_id", ["user_id:L1", "user_id:U1", "user_id:w"])]
    # Without the alias edge, U1 is a second person and its link is cut too.
    clusters, cuts = constrained_clusters(keyed[:3], types, {"user_id": 1}, names)
    assert clusters == {1: 1, 3: 1, 2: 2, 4: 4}
    assert [c[:2] for c in cuts] == [(3, 4), (3, 2)]


def test_persons_count_once_against_a_user_id_limit_above_one():
    # Limit 2: {L1, U1} (alias) and u2 fit together; a third person u3 does not.
    vertices = {1: ("user_id", "L1"), 2: ("user_id", "U1"), 3: ("email", "e"), 4: ("user_id", "u2"),
                5: ("user_id", "u3")}
    clusters, cuts = _run(vertices, [(1, 2, 1), (1, 3, 2), (4, 3, 3), (2, 3, 4), (5, 3, 5)], limits={"user_id": 2})
    assert clusters == {1: 1, 2: 1, 3: 1, 4: 1, 5: 5}
    assert [c[:3] for c in cuts] == [(3, 5, "user_id")]
