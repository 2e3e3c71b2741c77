"""generator.groups: households / accounts, their group calls, members and group events."""
from __future__ import annotations

import collections
import csv

from tests.generator.readers import read_events


def test_households_have_group_calls_members_and_group_events(dataset):
    out, manifest = dataset
    messages = read_events(out).messages
    with open(out / "_truth" / "group_members.csv", newline="") as fh:
        members = collections.Counter(row["group_id"] for row in csv.DictReader(fh))
    assert members and all(2 <= n <= 5 for n in members.values())
    joined = collections.defaultdict(set)
    for m in messages:
        if m["type"] == "group" or (m["type"] == "identify" and m.get("groupId")):
            joined[m["groupId"]].add(m["userId"])
    assert {g: len(u) for g, u in joined.items()} == dict(members)
    top_level = [m for m in messages if m["type"] == "track" and m.get("groupId")]
    in_context = [m for m in messages if m["type"] == "track" and m["context"].get("groupId")]
    assert top_level and in_context
    assert len(top_level) + len(in_context) == manifest["groups"]["group_events"]
    assert len(members) == manifest["groups"]["households"]
    holder_calls = [m for m in messages if m["type"] == "group" and "email" in m["traits"]]
    assert holder_calls and all({"name", "plan"} <= set(m["traits"]) for m in holder_calls)
