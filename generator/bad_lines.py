"""A chunk's events file in timestamp order, then the planted disorder of real input.

Bad input: replayed lines (identical bytes, same messageId; some in the next file), late events
(moved to the end of the next file, so they arrive after newer lines), and malformed lines
(`Rates.malformed`, at least one of every quarantine reason ingest checks, EVENT_REASONS, per
chunk; each line has exactly one defect) at random positions. (Repeated / updated customer rows and
rows without a customer_id: generator.customers.)
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.values import format_timestamp
from jobs.ingest.reasons import (
    BAD_TIMESTAMP,
    EVENT_REASONS,
    INVALID_JSON,
    MISSING_EVENT,
    MISSING_GROUP_ID,
    MISSING_IDENTITY,
    MISSING_MESSAGE_ID,
    MISSING_PREVIOUS_ID,
    MISSING_TIMESTAMP,
    MISSING_TYPE,
    NOT_AN_OBJECT,
    UNKNOWN_TYPE,
)

if TYPE_CHECKING:
    from generator.chunk import Chunk
    from generator.people import Person


def arrange_lines(chunk: Chunk, persons: list[Person]) -> tuple[list[str], list[str]]:
    """(this file's lines, lines carried to the next file): timestamp order, then the planted disorder."""
    rng, r = chunk.rng, chunk.r
    records = sorted(chunk.records)
    chunk.records = []
    valid = len(records)
    chunk.counts.bump("valid_messages", valid)

    # Late events leave this file for the end of the next one; replays are chosen among the rest.
    # Late ones come from the oldest 90%, so each is older than the newest line of the file it lands in.
    late_idx = set(rng.sample(range(valid * 9 // 10), min(valid * 9 // 10, round(r.late * valid))))
    stay = [rec for i, rec in enumerate(records) if i not in late_idx]
    late = [records[i] for i in sorted(late_idx)]
    replay_idx = sorted(rng.sample(range(len(stay)), round(r.replay * len(stay)))) if stay else []
    inserted_after: dict[int, list[str]] = {}
    carry = list(late)
    for i in replay_idx:
        if rng.random() < r.replay_next_file:
            carry.append(stay[i])
            chunk.counts.bump("replayed_next_file")
            chunk.counts.carry_replays[chunk.index] = chunk.counts.carry_replays.get(chunk.index, 0) + 1
        else:
            inserted_after.setdefault(rng.randrange(i, len(stay)), []).append(stay[i][2])
    chunk.counts.bump("replayed_lines", len(replay_idx))
    chunk.counts.bump("late_lines", len(late))

    bad_at: dict[int, list[str]] = {}
    for line in malformed_lines(chunk, persons, valid):
        bad_at.setdefault(rng.randrange(len(stay) + 1), []).append(line)
    lines: list[str] = []
    for i, rec in enumerate(stay):
        lines.extend(bad_at.get(i, ()))
        lines.append(rec[2])
        lines.extend(inserted_after.get(i, ()))
    lines.extend(bad_at.get(len(stay), ()))
    carry.sort()
    return lines, [rec[2] for rec in carry]


def malformed_lines(chunk: Chunk, persons: list[Person], valid: int) -> list[str]:
    """`Rates.malformed` per valid line, the reasons in turn (each at least once when the rate is > 0)."""
    rate = chunk.r.malformed
    if rate <= 0:
        return []
    known = [p for p in persons if p.user_id is not None] or persons
    n = max(len(EVENT_REASONS), round(rate * valid))
    out = []
    for k in range(n):
        reason = EVENT_REASONS[k % len(EVENT_REASONS)]
        ts = chunk.rand_ts()
        person = chunk.rng.choice(known)
        chunk.seq += 1
        out.append(malformed_line(chunk, reason, person, f"{chunk.mid_prefix}{chunk.seq:08d}", ts))
        chunk.counts.by_reason[reason] = chunk.counts.by_reason.get(reason, 0) + 1
    return out


def malformed_line(chunk: Chunk, reason: str, person: Person, message_id: str, ts: int) -> str:
    """One line whose only defect is `reason` (the first of ingest's checks it fails)."""
    rng = chunk.rng
    stamp = format_timestamp(ts, 0)
    uid = person.user_id or None
    base: dict[str, Any] = {"messageId": message_id, "type": "track", "timestamp": stamp}
    if uid:
        base["userId"] = uid
    else:
        base["anonymousId"] = person.devices[0][0]
    base["event"] = "Product Viewed"
    base["properties"] = {"product_id": rng.choice(chunk.catalog)[0]}
    if reason == INVALID_JSON:
        text = chunk.dumps(base)
        return rng.choice((text[: len(text) // 2], "{'messageId': '" + message_id + "'}",
                           text[:-1] + ",}", "not json at all"))
    if reason == NOT_AN_OBJECT:
        return rng.choice(("[1,2]", '"' + message_id + '"', "42", "null", "[]"))
    if reason == MISSING_MESSAGE_ID:
        del base["messageId"]
    elif reason == MISSING_TYPE:
        del base["type"]
    elif reason == UNKNOWN_TYPE:
        base["type"] = rng.choice(("purchase", "pageview", "event", "batch"))
    elif reason == MISSING_TIMESTAMP:
        del base["timestamp"]
    elif reason == BAD_TIMESTAMP:
        base["timestamp"] = rng.choice(("yesterday", stamp.replace("-", "/")[:10] + " 10:00",
                                        stamp[:5] + "13" + stamp[7:], "2026-02-30T10:00:00Z"))
    elif reason == MISSING_IDENTITY:
        base.pop("userId", None)
        base.pop("anonymousId", None)
    elif reason == MISSING_EVENT:
        del base["event"]
    elif reason == MISSING_GROUP_ID:
        base["type"] = "group"
        del base["event"], base["properties"]
        base["traits"] = {"name": f"{person.last.title()} household"}
    elif reason == MISSING_PREVIOUS_ID:
        base = {"messageId": message_id, "type": "alias", "timestamp": stamp,
                "userId": uid or person.devices[0][0]}
    else:
        # A reason ingest added without a defect here would otherwise be planted as a valid line.
        raise ValueError(f"no planted defect for quarantine reason {reason!r}")
    return chunk.dumps(base)
