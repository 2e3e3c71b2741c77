"""Persons (one per profile, the ground truth), their identifiers and devices.

- known profile: userId `C0000042` (= customer_id in the master), 1-4 devices (anonymousIds, uuid
  form); each device first sends events with only its anonymousId (including pre-login orders),
  then identifies (userId + anonymousId + traits) and sends both ids from then on. Every email and
  phone of a person appears in at least one identify with the person's userId.
- anonymous-only profile (`Rates.anonymous_only`): one device, never identifies, may order.
- alias profile (`Rates.alias`): userId was a legacy id `L0000042` before a random moment; an
  alias call {previousId: legacy, userId} links them (previousId a former userId).
- login-alias profile (`Rates.login_alias`, the most common Segment pattern): the first device
  browses (and may order) under its anonymousId only; at login an alias call {previousId:
  anonymousId, userId} is the only message linking them, and from then on that device sends the
  userId alone. So the anonymous history reaches the customer only through the alias.
- chain profile (`Rates.chains_per_chunk`): anonymous devices linked only through `chain_hops`
  hops: identify(anon1, email1), identify(anon2, email1), identify(anon2, email2), ..., finally
  identify(userId, email_k). Its orders come from anon1, the far end of the chain.
- junk identifiers (`Rates.junk_email`, `Rates.junk_phone`): `test@test.com`, `none@none.com` and
  phone `0000000000` each appear in an identify of many unrelated persons. They are not in _truth.
  Every alias previousId is in _truth with the type it was seen under (user_id for a legacy id,
  anonymous_id for a device).
- emails are written with random case / surrounding spaces, phones as `+1 555 123 4567`,
  `(555) 123-4567`, `555-123-4567`, `15551234567`, ... (US numbers, with or without the country
  code; _truth lists each in E.164, `+1` and the 10 national digits).

The messages themselves are written by generator.events (identifies, aliases, chains) and by
junk_identifiers below; Chunk.fmt_email / fmt_phone write the identifiers inconsistently.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.values import (
    ACTIVITY_LEVELS,
    ACTIVITY_WEIGHTS,
    AREA_CODES,
    EMAIL_DOMAINS,
    FIRST_NAMES,
    JUNK_EMAILS,
    JUNK_PHONE,
    LAST_NAMES,
    uuid_from,
)

if TYPE_CHECKING:
    from generator.chunk import Chunk


class Person:
    __slots__ = ("idx", "pid", "user_id", "legacy_id", "alias_ms", "devices", "emails", "phones", "first",
                 "last", "mult", "chain", "group", "pref_hour", "alias_device")

    def __init__(self, idx: int):
        self.idx = idx
        self.pid = f"P{idx:07d}"
        self.user_id: str | None = None
        self.legacy_id: str | None = None
        self.alias_ms = 0
        self.devices: list[list[Any]] = []     # [anonymousId, library, login_ms or None]
        self.emails: list[str] = []            # canonical (normalized) form
        self.phones: list[str] = []            # 10 national digits
        self.first = ""
        self.last = ""
        self.mult = 1.0
        self.chain = False
        self.group: str | None = None
        self.pref_hour: dict[str, int] = {}
        # The device linked to the user only by alias(previousId=its anonymousId) at its login.
        self.alias_device: str | None = None

    def uid_at(self, ts: int) -> str | None:
        if self.legacy_id is not None and ts < self.alias_ms:
            return self.legacy_id
        return self.user_id

    def ident(self, device: list[Any], ts: int) -> tuple[str | None, str | None]:
        login = device[2]
        if login is not None and ts >= login:
            return self.uid_at(ts), (None if device[0] == self.alias_device else device[0])
        return None, device[0]


def make_persons(chunk: Chunk) -> list[Person]:
    """The chunk's persons with their devices and, for known ones, userId, emails, phones and logins."""
    rng, r = chunk.rng, chunk.r
    first_idx = chunk.index * chunk.p.chunk_size
    count = min(chunk.p.chunk_size, chunk.p.profiles - first_idx)
    persons = []
    for k in range(count):
        person = Person(first_idx + k)
        person.first, person.last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        person.mult = rng.choices(ACTIVITY_LEVELS, ACTIVITY_WEIGHTS)[0]
        person.chain = k < r.chains_per_chunk and count > r.chains_per_chunk
        known = person.chain or rng.random() >= r.anonymous_only
        libraries = ("analytics.js", "analytics-ios", "analytics-android")
        n_devices = 1 if not known or person.chain else rng.choices((1, 2, 3, 4), (50, 30, 15, 5))[0]
        for d in range(n_devices):
            anon = uuid_from(rng.getrandbits(128))
            person.devices.append([anon, rng.choice(libraries), None])
        if known:
            person.user_id = f"C{person.idx:07d}"
            if person.chain:
                make_chain_identity(chunk, person)
            else:
                n_emails = rng.choices((1, 2, 3), (70, 25, 5))[0]
                person.emails = [email_for(person, e) for e in range(n_emails)]
                n_phones = rng.choices((0, 1, 2), (30, 55, 15))[0]
                person.phones = [phone_for(person.idx, f) for f in range(n_phones)]
                for d, device in enumerate(person.devices):
                    # The first device logs in early; later devices at any time in the window.
                    reach = chunk.span * 3 // 10 if d == 0 else chunk.span
                    device[2] = chunk.start + int(rng.random() * reach)
                if rng.random() < r.alias:
                    person.legacy_id = f"L{person.idx:07d}"
                    person.alias_ms = chunk.rand_ts()
                    chunk.counts.bump("alias")
                if rng.random() < r.login_alias:
                    person.alias_device = person.devices[0][0]
                    chunk.counts.bump("login_alias")
            chunk.counts.bump("known")
        else:
            chunk.counts.bump("anonymous_only")
        for email in person.emails:
            person.pref_hour[email] = rng.randrange(24)
        chunk.counts.bump("devices", len(person.devices))
        persons.append(person)
    return persons


def make_chain_identity(chunk: Chunk, person: Person) -> None:
    pairs = chunk.r.chain_hops // 2
    person.devices = [[uuid_from(chunk.rng.getrandbits(128)), "analytics.js", None] for _ in range(pairs)]
    person.emails = [f"{person.first}.{person.last}.c{j}.{person.idx}@chainmail.example".lower()
                     for j in range(pairs)]


def email_for(person: Person, n: int) -> str:
    # The person's index ends the local part and names hold no digits, so emails never collide.
    stem = (f"{person.first}.{person.last}", f"{person.first[0]}{person.last}", f"{person.last}.{person.first}")[n]
    return f"{stem}{person.idx}@{EMAIL_DOMAINS[(person.idx + n) % len(EMAIL_DOMAINS)]}"


def phone_for(idx: int, n: int) -> str:
    """10 national digits, unique per (person, n) for up to 3.3M persons: a bijection on 0..10^7-1."""
    subscriber = ((idx * 3 + n) * 7919 + 1_234_567) % 10_000_000
    return f"{AREA_CODES[(idx + n) % len(AREA_CODES)]}{subscriber:07d}"


def junk_identifiers(chunk: Chunk, persons: list[Person]) -> None:
    """Planted identity case: each junk email / phone in an identify of many unrelated known persons."""
    rng = chunk.rng
    eligible = [p for p in persons if p.user_id is not None and not p.chain]
    plans = [(email, chunk.r.junk_email) for email in JUNK_EMAILS] + [(JUNK_PHONE, chunk.r.junk_phone)]
    for junk, rate in plans:
        n = min(len(eligible), max(1, round(rate * len(persons)))) if rate > 0 else 0
        for person in rng.sample(eligible, n):
            ts = chunk.rand_ts()
            if junk == JUNK_PHONE:
                traits = {"phone": rng.choice((JUNK_PHONE, "000-000-0000", "(000) 000-0000"))}
            else:
                traits = {"email": rng.choice((junk, junk.upper(), f" {junk}"))}
            device = rng.choice(person.devices)
            ident = person.ident(device, ts)
            if ident[0] is None:
                ident = (person.uid_at(ts), None)
            chunk.emit(ts, "identify", person, ident, {"traits": traits}, {"library": {"name": device[1]}})
            chunk.counts.junk[junk] = chunk.counts.junk.get(junk, 0) + 1
