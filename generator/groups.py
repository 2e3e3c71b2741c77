"""Households / accounts of 2-5 known members, their group calls and group events.

The holder sends a `group` call whose traits carry the holder's own email/phone (so group traits
never link two persons); other members join by a `group` call without contact traits or by an
identify with a top-level groupId. Members send group events: track events with `groupId` at the
top level or in `context.groupId`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.values import ACCOUNT_SUFFIXES, GROUP_EVENTS, PLANS, count_about

if TYPE_CHECKING:
    from generator.chunk import Chunk
    from generator.people import Person


def households(chunk: Chunk, persons: list[Person]) -> None:
    rng = chunk.rng
    eligible = [p for p in persons if p.user_id is not None and not p.chain]
    rng.shuffle(eligible)
    members_left = int(len(eligible) * chunk.r.household_member)
    pos, number = 0, 0
    while members_left >= 2 and pos + 2 <= len(eligible):
        size = min(rng.randint(2, 5), members_left, len(eligible) - pos)
        if size < 2:
            break
        members = eligible[pos:pos + size]
        pos += size
        members_left -= size
        number += 1
        kind = rng.choice(("hh", "acct"))
        group_id = f"{kind}_{chunk.index:05d}_{number:04d}"
        household(chunk, group_id, kind, members)


def household(chunk: Chunk, group_id: str, kind: str, members: list[Person]) -> None:
    rng = chunk.rng
    holder = members[0]
    name = f"{holder.last.title()} {'household' if kind == 'hh' else rng.choice(ACCOUNT_SUFFIXES)}"
    plan = rng.choice(PLANS)
    shared = {"name": name, "plan": plan}
    if kind == "hh":
        shared["household_income"] = rng.randrange(30, 250) * 1000
    chunk.counts.bump("households")
    chunk.counts.bump("household_members", len(members))
    for n, member in enumerate(members):
        member.group = group_id
        chunk.truth_groups.append((group_id, member.pid))
        ts = chunk.rand_ts()
        if n == 0:
            traits = {**shared, "firstName": holder.first.title(), "lastName": holder.last.title()}
            if holder.emails:
                traits["email"] = chunk.fmt_email(holder.emails[0])
            if holder.phones:
                traits["phone"] = chunk.fmt_phone(holder.phones[0])
            chunk.emit(ts, "group", member, (member.uid_at(ts), None), {"groupId": group_id, "traits": traits})
            chunk.counts.bump("group_calls")
        elif rng.random() < 0.7:
            chunk.emit(ts, "group", member, (member.uid_at(ts), None), {"groupId": group_id, "traits": dict(shared)})
            chunk.counts.bump("group_calls")
        else:
            traits = {"firstName": member.first.title(), "lastName": member.last.title()}
            chunk.emit(ts, "identify", member, (member.uid_at(ts), None), {"groupId": group_id, "traits": traits})
            chunk.counts.bump("identify_with_group_id")
    for _ in range(count_about(rng, 4.0)):
        member = rng.choice(members)
        ts = chunk.rand_ts()
        event = rng.choice(GROUP_EVENTS)
        props: dict[str, Any] = {"plan": plan}
        if event == "Invoice Paid":
            props["amount"] = rng.randrange(2000, 90000) / 100
        if rng.random() < 0.5:
            chunk.emit(ts, "track", member, (member.uid_at(ts), None),
                       {"event": event, "groupId": group_id, "properties": props})
        else:
            chunk.emit(ts, "track", member, (member.uid_at(ts), None), {"event": event, "properties": props},
                       {"library": {"name": "analytics-python"}, "groupId": group_id})
        chunk.counts.bump("group_events")
