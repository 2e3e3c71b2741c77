"""The reference itself, on small hand-written inputs whose answers are worked out by hand (no Spark)."""
from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from fractions import Fraction

import pytest

from tests.reference import c360_reference as R

UTC = dt.timezone.utc
D = dt.date(2026, 3, 31)

RULES = R.IdentityRules(
    blocked_values=frozenset({"null", "unknown", "test@test.com", "0", "-1"}),
    blocked_patterns={
        "email": (r"^(noemail|no-email|no\.email|noreply|no-reply|donotreply|do-not-reply)@.*",),
        "phone": (r"^\+?(\d)\1*$", r"^\+?1?234567890$"),
    },
    max_linked_user_ids=20,
    person_limit=1,
)


def U(v):
    return ("user_id", v)


def A(v):
    return ("anonymous_id", v)


def E(v):
    return ("email", v)


def P(v):
    return ("phone", v)


def ts(day: int, hour: int = 0, month: int = 3) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=UTC)


# ---------------------------------------------------------------------------------------------
# values


@pytest.mark.parametrize("raw, expected", [
    ("2026-03-02T23:30:00-05:00", dt.datetime(2026, 3, 3, 4, 30, tzinfo=UTC)),
    ("2026-02-14T19:17:35.032-05:00", dt.datetime(2026, 2, 15, 0, 17, 35, 32000, tzinfo=UTC)),
    ("2026-03-01T10:00:00Z", dt.datetime(2026, 3, 1, 10, tzinfo=UTC)),
    ("2026-03-01T10:00:00.1234567+0530", dt.datetime(2026, 3, 1, 4, 30, 0, 123456, tzinfo=UTC)),
    ("2026-03-01T10:00Z", dt.datetime(2026, 3, 1, 10, tzinfo=UTC)),
    ("2026/02/15 10:00", None),
    ("2026-02-15T10:00:00", None),          # no Z, no offset
    ("2026-02-30T10:00:00Z", None),         # no such day
    ("yesterday", None),
    (1767225600, None),
])
def test_parse_timestamp(raw, expected):
    assert R.parse_timestamp(raw) == expected


@pytest.mark.parametrize("raw, expected", [
    ("312.130.5838", "+13121305838"),
    ("(312) 130-5838", "+13121305838"),
    ("13051282081", "+13051282081"),
    ("+44 20 7946 0958", "+442079460958"),
    ("0000000000", "+10000000000"),   # a possible number: blocked later, not dropped here
    (3121305838, "+13121305838"),
    ("12", None),                     # not a possible number
    ("call me", None),                # does not parse
    ("  ", None),
    (None, None),
])
def test_normalize_phone(raw, expected):
    assert R.normalize_phone(raw) == expected


def test_normalize_email_and_snake_case():
    assert R.normalize_email("  Ann.Lee@Mail.Example ") == "ann.lee@mail.example"
    assert R.normalize_email("   ") is None
    assert R.normalize_email(42) is None
    assert R.snake_case("Order Placed") == "order_placed"
    assert R.snake_case("checkoutStarted") == "checkout_started"
    assert R.snake_case("Email -- Opened!") == "email_opened"
    assert R.snake_case("!!!") == "unnamed_event"


@pytest.mark.parametrize("identifier, blocked", [
    (E("test@test.com"), True),
    (E("noreply@shop.example"), True),
    (E("reply@shop.example"), False),
    (A("Unknown"), True),            # blocked values are compared lower-cased, any type
    (U("NULL"), True),
    (U("0"), True),
    (P("+11111111111"), True),       # national number all one digit (and the configured pattern)
    (P("+10000000000"), True),       # national 0000000000
    (P("+11234567890"), True),       # national 1234567890
    (P("+447777777777"), True),      # national all 7s in another country
    (P("+13121305838"), False),
    (U("C0000001"), False),
])
def test_blocked(identifier, blocked):
    assert RULES.is_blocked(identifier) is blocked


def effective_identity_config() -> dict:
    """The `identity:` settings conf/local.yml stands for: its overrides on the settings' defaults.
    (Reading the configuration is plumbing; the reference computes nothing with our code.)"""
    import dataclasses

    from jobs.core.config import REPO_ROOT, load_config

    return dataclasses.asdict(load_config(REPO_ROOT / "conf" / "local.yml").identity)


def test_rules_from_config():
    rules = R.IdentityRules.from_config(effective_identity_config())
    assert rules.max_linked_user_ids == 20 and rules.person_limit == 1
    assert rules.priority == ("user_id", "email", "phone", "anonymous_id")
    assert "n/a" in rules.blocked_values and "test@example.com" in rules.blocked_values
    assert rules.is_blocked(E("no-reply@x.example")) and rules.is_blocked(P("+10000000000"))


# ---------------------------------------------------------------------------------------------
# identity graph on observations


def obs(t: dt.datetime, *ids) -> R.Observation:
    return R.Observation(frozenset(ids), t)


def test_components_and_blocked_identifiers():
    result = R.resolve_identities([
        obs(ts(1), U("u1"), A("a1"), E("ann@x.example")),
        obs(ts(2), A("a1"), P("+13121305838")),
        obs(ts(3), U("u2"), E("test@test.com")),      # blocked: removed with its edges
        obs(ts(4), U("u3"), E("test@test.com"), A("a3")),
        obs(ts(5), A("lonely")),
    ], RULES)
    assert result.partition == {
        frozenset({U("u1"), A("a1"), E("ann@x.example"), P("+13121305838")}),
        frozenset({U("u2")}),
        frozenset({U("u3"), A("a3")}),
        frozenset({A("lonely")}),
    }
    assert result.removed == {E("test@test.com"): "blocked"}
    assert result.reclustered_components == 0


def test_hub_cap_counts_persons_not_user_ids():
    # 21 user ids share one email: a hub, removed with its edges
    hub = [obs(ts(1, h % 24, 3 if h < 24 else 2), U(f"u{h:02d}"), E("shared@x.example")) for h in range(21)]
    result = R.resolve_identities(hub, RULES)
    assert result.removed == {E("shared@x.example"): "hub"}
    assert result.partition == {frozenset({U(f"u{h:02d}")}) for h in range(21)}

    # ...but two of them are one person (an alias): 20 persons, not a hub
    alias = obs(ts(9), U("u19"), U("u20"))
    result = R.resolve_identities(hub + [alias], RULES)
    assert result.removed == {}
    # over the limit: re-clustered; the email goes to the earliest-seen link (u00 at 1 Mar 00:00)
    assert result.reclustered_components == 1
    assert frozenset({U("u00"), E("shared@x.example")}) in result.partition
    assert frozenset({U("u19"), U("u20")}) in result.partition
    assert len(result.partition) == 20


def test_constrained_kruskal_orders_by_rank_then_first_seen():
    # E links u2 (day 1) and u1 (day 2); A links E (day 0, the oldest edge) and u1 (day 4).
    # Order: (2,1,day1) E-u2 accept; (2,1,day2) E-u1 reject; (4,1,day4) A-u1 accept;
    # (4,2,day0) A-E would join u1 and u2: reject. The strength of the stronger end beats age.
    result = R.resolve_identities([
        obs(ts(1), U("u2"), E("e@x.example")),
        obs(ts(2), U("u1"), E("e@x.example")),
        obs(dt.datetime(2026, 2, 20, tzinfo=UTC), A("a"), E("e@x.example")),
        obs(ts(4), A("a"), U("u1")),
    ], RULES)
    assert result.partition == {
        frozenset({U("u1"), A("a")}),
        frozenset({U("u2"), E("e@x.example")}),
    }
    assert result.reclustered_components == 1
    assert len(result.rejected_edges) == 2


def test_kruskal_ties_break_on_labels():
    # the same time everywhere: phone p links u1 and u2; "user_id:u1" < "user_id:u2" -> u1 first
    result = R.resolve_identities([
        obs(ts(1), U("u2"), P("+13125550100")),
        obs(ts(1), U("u1"), P("+13125550100")),
    ], RULES)
    assert result.partition == {frozenset({U("u1"), P("+13125550100")}), frozenset({U("u2")})}
    # equal ranks: the lexicographically larger label is the weaker end
    key = R.edge_order_key(A("b"), A("a"), ts(1), RULES)
    assert key == (4, 4, ts(1), "anonymous_id:b", "anonymous_id:a")


def test_alias_edges_are_accepted_first_and_make_one_person():
    # u_old and u_new are one person (alias); a device seen with both and with u_other (earlier):
    # alias edges first, so the person is whole before the device picks a side
    result = R.resolve_identities([
        obs(ts(1), A("dev"), U("u_other")),
        obs(ts(2), A("dev"), U("u_new")),
        obs(ts(3), A("dev"), U("u_old")),
        obs(ts(9), U("u_new"), U("u_old")),
    ], RULES)
    assert result.partition == {frozenset({A("dev"), U("u_other")}), frozenset({U("u_new"), U("u_old")})}


# ---------------------------------------------------------------------------------------------
# the whole chain on a small raw input folder

GOOD = [
    # 1 identify: u1 with device a1, email and phone
    {"messageId": "m01", "type": "identify", "timestamp": "2026-03-01T10:00:00Z", "userId": " U1 ",
     "anonymousId": "a1", "traits": {"email": " Ann@X.example ", "phone": "(312) 130-5838"}},
    # 2 an order line placed anonymously, in New York time: 3 Mar 04:30 UTC
    {"messageId": "m02", "type": "track", "timestamp": "2026-03-02T23:30:00-05:00", "anonymousId": "a1",
     "event": "Order Placed", "properties": {"order_id": "O1-1", "order_value": 10.10, "product_category": "Beer"}},
    {"messageId": "m04", "type": "track", "timestamp": "2026-03-03T05:00:00Z", "userId": "U1",
     "event": "Order Placed", "properties": {"order_id": "O1-2", "order_value": 5.05, "product_category": "Wine"}},
    {"messageId": "m05", "type": "track", "timestamp": "2026-03-05T00:00:00Z", "userId": "U1",
     "event": "Order Invoiced", "properties": {"order_id": "O1-1", "product_category": "Beer"}},
    {"messageId": "m06", "type": "track", "timestamp": "2026-03-10T00:00:00Z", "userId": "U1",
     "event": "Order Rejected", "properties": {"order_id": "O1-2"}},
    # after the run date: in the stream, not in anything "as of D"
    {"messageId": "m07", "type": "track", "timestamp": "2026-04-02T00:00:00Z", "userId": "U1",
     "event": "Order Placed", "properties": {"order_id": "O9-1", "order_value": 1000}},
    # a junk email shared by U2 and U3: blocked, so they stay apart
    {"messageId": "m08", "type": "identify", "timestamp": "2026-02-01T00:00:00Z", "userId": "U2",
     "traits": {"email": "test@test.com"}},
    {"messageId": "m09", "type": "identify", "timestamp": "2026-02-02T00:00:00Z", "userId": "U3",
     "traits": {"email": "TEST@test.com"}},
    {"messageId": "m10", "type": "track", "timestamp": "2026-02-10T12:00:00Z", "userId": "U2",
     "event": "Order Placed", "properties": {"order_id": "O2-1", "order_value": "100", "product_category": "Wine"}},
    {"messageId": "m11", "type": "track", "timestamp": "2026-02-12T12:00:00Z", "userId": "U2",
     "event": "Order Rejected", "properties": {"order_id": "O2-1"}},
    # a legacy user id L1, then alias(previousId=L1, userId=U1): L1 was seen as a userId -> user_id
    {"messageId": "m12", "type": "track", "timestamp": "2026-03-30T08:00:00Z", "userId": "L1",
     "event": "Order Placed", "properties": {"order_id": "O3-1", "order_value": 1, "product_category": "Beer"}},
    {"messageId": "m13", "type": "alias", "timestamp": "2026-03-30T09:00:00Z", "userId": "U1", "previousId": "L1"},
    # household hh1: U3 by a group call (its traits are the group's, not U3's), U2 by identify+context.groupId
    {"messageId": "m14", "type": "group", "timestamp": "2026-03-01T00:00:00Z", "userId": "U3", "groupId": "hh1",
     "traits": {"email": "family@x.example", "name": "The Family"}},
    {"messageId": "m15", "type": "identify", "timestamp": "2026-03-01T01:00:00Z", "userId": "U2",
     "context": {"groupId": "hh1"}},
    # a group order with no user: reaches every member
    {"messageId": "m16", "type": "track", "timestamp": "2026-03-20T00:00:00Z", "groupId": "hh1",
     "event": "Order Placed", "properties": {"order_id": "G1-1", "order_value": 50, "product_category": "Cider"}},
    # alias from a value seen nowhere: an anonymous_id
    {"messageId": "m17", "type": "alias", "timestamp": "2026-03-02T00:00:00Z", "userId": "U3", "previousId": "a9"},
    # an anonymous-only shopper ordering at the last second of the run date
    {"messageId": "m18", "type": "track", "timestamp": "2026-03-31T23:59:59Z", "anonymousId": "a2",
     "event": "Order Placed", "properties": {"order_id": "O4-1", "order_value": 7}},
    # context.traits of a page view are the sender's
    {"messageId": "m19", "type": "page", "timestamp": "2026-03-04T00:00:00Z", "anonymousId": "a5",
     "context": {"traits": {"email": "ann@x.example"}}},
]
REPLAY = dict(GOOD[1])  # same messageId again
BAD = [
    "not json at all",
    "[1, 2]",
    json.dumps({"type": "track", "timestamp": "2026-03-01T00:00:00Z", "userId": "U1", "event": "X"}),
    json.dumps({"messageId": "b1", "type": "pageview", "timestamp": "2026-03-01T00:00:00Z", "userId": "U1"}),
    json.dumps({"messageId": "b2", "timestamp": "2026-03-01T00:00:00Z", "userId": "U1"}),
    json.dumps({"messageId": "b3", "type": "track", "userId": "U1", "event": "X"}),
    json.dumps({"messageId": "b4", "type": "track", "timestamp": "2026/02/15 10:00", "userId": "U1", "event": "X"}),
    json.dumps({"messageId": "b5", "type": "track", "timestamp": "2026-03-01T00:00:00Z", "event": "X"}),
    json.dumps({"messageId": "b6", "type": "track", "timestamp": "2026-03-01T00:00:00Z", "userId": "U1"}),
    json.dumps({"messageId": "b7", "type": "group", "timestamp": "2026-03-01T00:00:00Z", "userId": "U1"}),
    json.dumps({"messageId": "b8", "type": "alias", "timestamp": "2026-03-01T00:00:00Z", "userId": "U1"}),
    json.dumps({"messageId": "b9", "type": "alias", "timestamp": "2026-03-01T00:00:00Z", "previousId": "x"}),
    # only a track may be a group event without a user
    json.dumps({"messageId": "b10", "type": "page", "timestamp": "2026-03-01T00:00:00Z", "groupId": "hh1"}),
    # a bad line's messageId does not make the good line with it a duplicate
    json.dumps({"messageId": "m19", "type": "track", "timestamp": "nope", "userId": "U1", "event": "X"}),
]
CUSTOMERS_CSV = (
    ",".join(R.CUSTOMER_COLUMNS) + "\n"
    + "U1 ,Ann Lee,ANN@x.example,312-130-5838,1 Main St,001,1,IL,Cook,60601,on prem,active,A,L,BAR,Bar,Central,yes\n"
    + ",No Id,x@y.example,,,,,,,,,,,,,,,\n"
    + "U4,Zed,,0000000000,,,,CA,,,,,,,,,,no\n"
)


@pytest.fixture
def raw_dir(tmp_path):
    events = tmp_path / "raw" / "events" / "2026"
    events.mkdir(parents=True)
    lines = [json.dumps(m) for m in GOOD[:10]] + BAD
    (events / "part-0.jsonl").write_text("\n".join(lines) + "\n")
    (events / "part-1.jsonl").write_text("\n".join([json.dumps(REPLAY)] + [json.dumps(m) for m in GOOD[10:]]) + "\n")
    (events / "ignored.json").write_text("{}\n")
    customers = tmp_path / "raw" / "customers"
    customers.mkdir()
    (customers / "c.csv").write_text(CUSTOMERS_CSV)
    return tmp_path / "raw"


C_U1 = frozenset({U("U1"), A("a1"), E("ann@x.example"), P("+13121305838"), U("L1"), A("a5")})
C_U2 = frozenset({U("U2")})
C_U3 = frozenset({U("U3"), A("a9")})
C_A2 = frozenset({A("a2")})
C_U4 = frozenset({U("U4")})


@pytest.fixture
def ref(raw_dir):
    return R.Reference.compute(raw_dir, D, RULES)


def test_ingest_counts(ref):
    ingest = ref.ingest
    assert (ingest.lines_read, ingest.accepted, ingest.duplicates, ingest.quarantined) == (33, 18, 1, 14)
    assert ingest.quarantine_reasons == {
        "invalid_json": 1, "not_an_object": 1, "missing_message_id": 1, "unknown_type": 1,
        "missing_type": 1, "missing_timestamp": 1, "bad_timestamp": 2, "missing_identity": 3,
        "missing_event": 1, "missing_group_id": 1, "missing_previous_id": 1,
    }
    assert (ingest.customer_rows_read, ingest.customer_rows_quarantined) == (3, 1)
    assert [e.message_id for e in ingest.events][:3] == ["m01", "m02", "m04"]
    assert {e.message_id for e in ingest.events} == {m["messageId"] for m in GOOD}


def test_partition(ref):
    assert ref.partition == {C_U1, C_U2, C_U3, C_A2, C_U4}
    assert ref.identity.removed == {E("test@test.com"): "blocked", P("+10000000000"): "blocked"}


def test_alias_previous_id_resolution(raw_dir):
    ingest = R.read_input(raw_dir)
    extra = [
        R.parse_event_line(json.dumps(m))[0] for m in [
            {"messageId": "x1", "type": "track", "timestamp": "2026-03-01T00:00:00Z", "userId": "both",
             "event": "A"},
            {"messageId": "x2", "type": "track", "timestamp": "2026-03-01T00:00:00Z", "anonymousId": "both",
             "event": "A"},
            {"messageId": "x3", "type": "alias", "timestamp": "2026-03-02T00:00:00Z", "userId": "U9",
             "previousId": "both", "anonymousId": "dev9"},
            {"messageId": "x4", "type": "alias", "timestamp": "2026-03-02T00:00:00Z", "userId": "U8",
             "previousId": "a1"},
            {"messageId": "x5", "type": "alias", "timestamp": "2026-03-02T00:00:00Z", "userId": "U7",
             "previousId": "U4"},   # seen only as a customer_id
        ]
    ]
    ingest.events.extend(extra)
    by_id = {o.source: o.identifiers for o in R.build_observations(ingest, D)}
    assert by_id["x3"] == {U("U9"), U("both"), A("both"), A("dev9")}
    assert by_id["x4"] == {U("U8"), A("a1")}
    assert by_id["x5"] == {U("U7"), U("U4")}
    assert by_id["m17"] == {U("U3"), A("a9")}
    assert by_id["m13"] == {U("U1"), U("L1")}
    assert by_id["m14"] == {U("U3")}  # group traits are not the caller's


def test_groups_and_attribution(ref):
    assert ref.members == {"hh1": frozenset({C_U2, C_U3})}
    assert ref.order_placed_lines() == {
        C_U1: (4, frozenset({"O1-1", "O1-2", "O9-1", "O3-1"})),
        C_U2: (2, frozenset({"O2-1", "G1-1"})),
        C_U3: (1, frozenset({"G1-1"})),
        C_A2: (1, frozenset({"O4-1"})),
    }


def test_group_traits(ref):
    # hh1 (U2, U3) as of 31 Mar: its group order G1 (20 Mar, 50, one event reaching both members) and
    # U2's own order O2 (10 Feb, 100; no groupId); U2's rejection and the group's page view are no
    # orders. Last order 20 Mar; orders G1 and O2 -> 2; spend 150; in the 30 days from 2 Mar both
    # members had G1 -> 2 (O2 is older).
    assert ref.group_traits(lambda entity: tuple(sorted(entity))) == {
        "hh1": R.GroupTraits(dt.datetime(2026, 3, 20, tzinfo=dt.timezone.utc), 2, Decimal("150"), 2)}


def test_group_traits_of_events_that_reached_nobody():
    # acct has no member: its order A1 (two lines, sent by nobody) is its own, named by the group ->
    # one order, 30 + 20; hh's order G2 from a sender not stitched yet reached its member U2 as well
    # as its unresolved row: one order, named by U2
    U2 = frozenset({"U2"})

    def order(message_id, entity, order_id, value, group):
        return R.Activity(message_id, entity, "order_placed", dt.datetime(2026, 3, 5, tzinfo=dt.timezone.utc),
                          {"order_id": order_id, "order_value": value}, group)

    rows = [order("a1", None, "A1-1", "30", "acct"), order("a2", None, "A1-2", "20", "acct"),
            order("g2", None, "G2-1", "10", "hh"), order("g2", U2, "G2-1", "10", "hh")]
    day = dt.datetime(2026, 3, 5, tzinfo=dt.timezone.utc)
    assert R.group_traits(rows, {"hh": frozenset({U2})}, dt.date(2026, 3, 31), lambda e: tuple(sorted(e))) == {
        "acct": R.GroupTraits(day, 1, Decimal("50"), 0), "hh": R.GroupTraits(day, 1, Decimal("10"), 1)}


def test_rfm(ref):
    # recency / frequency / monetary worked out by hand (as of 31 Mar, 4 customers):
    #   U1: last order 30 Mar -> 1; orders O1, O3 -> 2; 10.10 + 5.05 + 1 = 16.15
    #   U2: group order 20 Mar -> 11; O2, G1 -> 2; 100 + 50
    #   U3: group order 20 Mar -> 11; G1 -> 1; 50
    #   a2: 31 Mar 23:59:59 -> 0; 1; 7
    # scores = 1 + 5*worse div 3: r: a2 5, U1 4, U2/U3 1; f: 2 -> 4, 1 -> 1; m: 7 1, 16.15 2, 50 4, 150 5
    assert ref.rfm() == {
        C_U1: R.RfmRow(1, 2, Decimal("16.15"), 4, 4, 2, "Potential Loyalists"),
        C_U2: R.RfmRow(11, 2, Decimal("150"), 1, 4, 5, "At Risk"),
        C_U3: R.RfmRow(11, 1, Decimal("50"), 1, 1, 4, "Lost"),
        C_A2: R.RfmRow(0, 1, Decimal("7"), 5, 1, 1, "New Customers"),
    }
    assert ref.lens_rfm() == {
        C_U1: (1, 2, Decimal("16.15")), C_U2: (11, 2, Decimal("150")),
        C_U3: (11, 1, Decimal("50")), C_A2: (0, 1, Decimal("7")),
    }


def test_quintile_scores_and_segments():
    eight = {k: k for k in range(8)}
    assert [R.quintile_scores(eight, True)[k] for k in range(8)] == [1, 1, 2, 3, 3, 4, 5, 5]
    assert [R.quintile_scores(eight, False)[k] for k in range(8)] == [5, 5, 4, 3, 3, 2, 1, 1]
    ties = {"a": 1, "b": 1, "c": 1, "d": 2, "e": 3}
    assert R.quintile_scores(ties, True) == {"a": 1, "b": 1, "c": 1, "d": 4, "e": 5}
    # more than a fifth share the best value: nobody gets 5
    assert R.quintile_scores({"a": 1, "b": 2, "c": 2}, True) == {"a": 1, "b": 3, "c": 3}
    assert R.quintile_scores({"solo": 9}, True) == {"solo": 1}
    assert R.rfm_segment(5, 4, 5) == "Champions"
    assert R.rfm_segment(3, 5, 4) == "Loyal Customers"
    assert R.rfm_segment(3, 3, 3) == "Need Attention"
    assert R.rfm_segment(4, 1, 1) == "Promising"
    assert R.rfm_segment(2, 5, 5) == "Can't Lose Them"
    assert R.rfm_segment(2, 2, 1) == "Hibernating"
    assert R.rfm_segment(1, 1, 2) == "Lost"


def test_order_outcomes(ref):
    # placed order_no: U1-O1, U1-O3, U2-O2, U2-G1, U3-G1, a2-O4; rejected U1-O1, U2-O2; invoiced U1-O1
    assert ref.order_outcomes() == {(): R.OrderOutcome(6, 2, 1, Fraction(100, 3), Fraction(50, 3))}
    states = ref.customer_states()
    assert states == {C_U1: {"IL"}, C_U4: {"CA"}}
    by_state = ref.order_outcomes("state", lambda c: next(iter(states.get(c, {None}))))
    assert by_state == {
        "IL": R.OrderOutcome(2, 1, 1, Fraction(50), Fraction(50)),
        None: R.OrderOutcome(4, 1, 0, Fraction(25), Fraction(0)),
    }
    # categories: O1-1 Beer, O1-2 Wine, O3-1 Beer, O2-1 Wine, G1-1 Cider, O4-1 none;
    # rejections and invoices reach the placed line's category by order_id
    assert ref.order_outcomes("product_category") == {
        "Beer": R.OrderOutcome(2, 0, 1, Fraction(0), Fraction(50)),
        "Wine": R.OrderOutcome(2, 2, 0, Fraction(100), Fraction(0)),
        "Cider": R.OrderOutcome(2, 0, 0, Fraction(0), Fraction(0)),
        None: R.OrderOutcome(1, 0, 0, Fraction(0), Fraction(0)),
    }


def test_days_to_invoice(ref):
    # O1-1 placed 3 Mar (UTC date of 2 Mar 23:30 -05:00), invoiced 5 Mar
    assert ref.days_to_invoice() == {(): Fraction(2)}
    assert ref.days_to_invoice(by_product_category=True) == {"Beer": Fraction(2)}


def test_days_to_invoice_counts_fanned_out_rows():
    members = {"g": frozenset({C_U2, C_U3})}
    events = [
        R.Event("p", "track", ts(1), None, None, None, "g", "Order Placed", {"order_id": "G-1"}, (), ()),
        R.Event("i", "track", ts(4), None, None, None, "g", "Order Invoiced", {"order_id": "G-1"}, (), ()),
        R.Event("p2", "track", ts(1), "U2", None, None, None, "Order Placed", {"order_id": "X-1"}, (), ()),
        R.Event("i2", "track", ts(2), "U2", None, None, None, "Order Invoiced", {"order_id": "X-1"}, (), ()),
    ]
    rows = R.activity_stream(events, R.customer_index([C_U2, C_U3]), members)
    # group order: 2 placed rows x 2 invoice rows of 3 days; the customer order: 1 row of 1 day
    assert R.lens_days_to_invoice(rows, D) == {(): Fraction(3 * 4 + 1, 5)}


def test_rejections_above_average(ref):
    # last month = February: U2 rejected O2 on 12 Feb (1 > 1/12); U1's rejection is in March
    assert ref.rejections_above_average() == {C_U2: (1, Fraction(1, 12))}


def test_rejections_above_average_window():
    cust = frozenset({U("c")})

    def rejected(day: dt.date, order: str) -> R.Activity:
        return R.Activity(order, cust, "order_rejected", dt.datetime(day.year, day.month, day.day, tzinfo=UTC),
                          {"order_id": f"{order}-1"}, None)

    # 12 months before March 2026 = March 2025 .. February 2026
    months = [dt.date(2025, 3, 5), dt.date(2025, 6, 5), dt.date(2025, 9, 5), dt.date(2025, 12, 5),
              dt.date(2026, 2, 1), dt.date(2026, 3, 1), dt.date(2025, 2, 28)]
    rows = [rejected(d, f"O{i}") for i, d in enumerate(months)]
    # last month 1, last 12 months 5 -> 1 > 5/12
    assert R.lens_rejections_above_average(rows, D) == {cust: (1, Fraction(5, 12))}
    # add 8 more in the year but not in February: 1 < 13/12 -> nobody
    rows += [rejected(dt.date(2025, 4, 1 + i), f"P{i}") for i in range(8)]
    assert R.lens_rejections_above_average(rows, D) == {}


def test_cohort_retention_migration_and_repurchase_rate():
    """The hand case of tests/jobs/test_rfm_retention.py, worked out again here: as of 2026-03-10,
    c1 orders in January (twice) and March, c2 on 31 January 23:00 and 1 February 00:30 (UTC), c3 in
    February and on the run date; c4 only after it, c5 only has a rejection."""
    def order(customer, ts, kind="order_placed"):
        when = dt.datetime.fromisoformat(ts).replace(tzinfo=UTC)
        number = ts.replace("-", "").replace(" ", "T")  # an order id without '-': one order per line
        return R.Activity(f"{customer}-{ts}", frozenset({U(customer)}), kind, when, {"order_id": number}, None)

    rows = [order("c1", "2026-01-05 09:00"), order("c1", "2026-01-20 09:00"), order("c1", "2026-03-02 09:00"),
            order("c2", "2026-01-31 23:00"), order("c2", "2026-02-01 00:30"), order("c3", "2026-02-14 12:00"),
            order("c3", "2026-03-10 23:59"), order("c4", "2026-03-11 00:00"),
            order("c5", "2026-02-03 10:00", "order_rejected")]
    jan, feb = dt.date(2026, 1, 1), dt.date(2026, 2, 1)
    assert R.cohort_retention(rows, dt.date(2026, 3, 10)) == {
        (jan, 0): (2, 2), (jan, 1): (2, 1), (jan, 2): (2, 1), (feb, 0): (1, 1), (feb, 1): (1, 1)}
    assert R.rfm_migration({"a": "Champions", "b": "Lost", "c": "At Risk"},
                           {"a": "Champions", "b": "Champions", "e": "New Customers"}) == {
        ("Champions", "Champions"): 1, ("Lost", "Champions"): 1, ("At Risk", "(not scored)"): 1,
        ("(not scored)", "New Customers"): 1}
    table = R.rfm_table(rows, dt.date(2026, 3, 10))
    # c1 3 orders, c2 2, c3 2 (each line its own order id): all three are repeat customers
    assert R.repurchase_rate(table) == Fraction(3, 3)
    assert R.repurchase_rate({}) is None


def test_not_followed_by_on_the_hand_case():
    """The sequence hand case of tests/jobs/test_traits.py, worked out by hand: carts (product_added)
    not followed by an order within 4 hours, in the 7 days ending on 2026-03-15."""
    def row(message, who, kind, at):
        return R.Activity(message, who, kind, dt.datetime.fromisoformat(at).replace(tzinfo=UTC), {}, None)

    rows = [row("m1", "c1", "product_added", "2026-03-10 10:00"), row("o1", "c1", "order_placed", "2026-03-10 13:00"),
            row("m2", "c1", "product_added", "2026-03-12 09:00"), row("o2", "c1", "order_placed", "2026-03-12 13:00:01"),
            row("m3", "c1", "product_added", "2026-03-13 10:00"), row("o3", "c1", "order_placed", "2026-03-13 14:00"),
            row("m4", "c2", "product_added", "2026-03-15 19:59"), row("m5", "c2", "product_added", "2026-03-15 20:00"),
            row("m6", "c2", "product_added", "2026-03-01 10:00"), row("m60", "c2", "product_added", "2026-03-16 10:00"),
            row("o4", "c3", "order_placed", "2026-03-11 09:00"), row("m7", "c3", "product_added", "2026-03-11 10:00"),
            row("m8", "c3", "product_added", "2026-03-14 11:00"), row("m8", "c3", "product_added", "2026-03-14 11:00"),
            row("m9", "c4", "product_added", "2026-03-14 08:00"), row("o5", "c4", "order_placed", "2026-03-14 08:00"),
            row("m10", "c5", "product_added", "2026-03-12 12:00"), row("m11", None, "product_added", "2026-03-12 12:00")]
    run_date = dt.date(2026, 3, 15)
    assert R.not_followed_by(rows, "product_added", "order_placed", dt.timedelta(hours=4), run_date,
                             first_day=dt.date(2026, 3, 9)) == {"c1": 1, "c2": 1, "c3": 2, "c5": 1}
    assert R.not_followed_by(rows, "product_added", "order_placed", dt.timedelta(minutes=30),
                             run_date) == {"c1": 3, "c2": 3, "c3": 2, "c5": 1}
