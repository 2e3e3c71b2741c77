"""generator.people: the ground truth is exactly what the evidence links; chains, junk identifiers, aliases."""
from __future__ import annotations

import collections
import csv

from generator.params import Rates
from tests.generator.readers import JUNK, UnionFind, identifiers_of, identity_edges, read_events


def test_truth_partition_equals_the_components_of_the_evidence(dataset):
    out, _ = dataset
    events = read_events(out)
    uf = UnionFind()
    for ids in identity_edges(out, events):
        if ids:
            uf.union(ids)
    with open(out / "_truth" / "people.csv", newline="") as fh:
        truth = list(csv.DictReader(fh))
    people = collections.defaultdict(set)
    for row in truth:
        people[row["person_id"]].add((row["identifier_type"], row["identifier_value"]))
    truth_partition = {frozenset(ids) for ids in people.values()}
    components = collections.defaultdict(set)
    for node in list(uf.parent):
        components[uf.find(node)].add(node)
    assert truth_partition == {frozenset(c) for c in components.values()}
    kinds = collections.Counter(row["identifier_type"] for row in truth)
    assert set(kinds) == {"user_id", "anonymous_id", "email", "phone"}


def test_long_chains_link_only_through_the_planted_number_of_hops(dataset):
    out, manifest = dataset
    events = read_events(out)
    neighbours = collections.defaultdict(set)
    for ids in identity_edges(out, events):
        for a in ids:
            neighbours[a].update(b for b in ids if b != a)
    chains = manifest["persons"]["chains"]
    assert len(chains) == 3 and all(c["hops"] == 20 for c in chains)
    for chain in chains:
        start, goal = ("anonymous_id", chain["first_anonymous_id"]), ("user_id", chain["user_id"])
        distance, frontier, seen = 0, {start}, {start}
        while goal not in frontier:
            frontier = {n for node in frontier for n in neighbours[node]} - seen
            seen |= frontier
            distance += 1
            assert frontier, "chain is broken"
        assert distance == chain["hops"]


def test_junk_identifiers_are_shared_by_many_persons(dataset):
    out, manifest = dataset
    users = collections.defaultdict(set)
    for m in read_events(out).messages:
        for kind, value in identifiers_of(m):
            if (kind, value) in JUNK and m.get("userId"):
                users[value].add(m["userId"])
    expected = manifest["persons"]["junk_identifier_users"]
    assert {v: len(u) for v, u in users.items()} == {
        "test@test.com": expected["test@test.com"], "none@none.com": expected["none@none.com"],
        "+10000000000": expected["0000000000"],
    }
    assert min(expected.values()) >= 3          # at least one per chunk


def test_junk_share_scales_to_at_least_50_users_at_s_scale():
    rates = Rates()
    per_chunk = max(1, round(rates.junk_email * 5_000))
    assert per_chunk * 2 >= 50 and max(1, round(rates.junk_phone * 5_000)) * 2 >= 50


def test_alias_calls_link_a_legacy_user_id_or_a_device_anonymous_id(dataset):
    out, manifest = dataset
    messages = read_events(out).messages
    aliases = [m for m in messages if m["type"] == "alias"]
    user_ids = {m["userId"] for m in messages if m.get("userId") and m["type"] != "alias"}
    anonymous_ids = {m["anonymousId"] for m in messages if m.get("anonymousId")}
    legacy = [m for m in aliases if m["previousId"] in user_ids]
    device = [m for m in aliases if m["previousId"] not in user_ids]
    assert len(legacy) == manifest["persons"]["with_alias"] > 0
    assert len(device) == manifest["persons"]["with_login_alias"] > 0
    # Most devices browsed before login; one that did not has its anonymousId only in the alias.
    browsed = [m for m in device if m["previousId"] in anonymous_ids]
    assert 0 < len(browsed) < len(device)
    assert all(m["previousId"] != m["userId"] and "anonymousId" not in m for m in aliases)
