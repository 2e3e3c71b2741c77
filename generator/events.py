"""Each person's messages: identifies and aliases, pages/screens, browsing, email opens, orders.

Event window: UTC days run_date-days+1 .. run_date. Timestamps are ISO-8601 with milliseconds,
mostly `Z`, a share (`Rates.offset_timestamp`) written in a local offset such as `+05:30`; the
instant is the same either way (Chunk.format_ts).

Orders: `Order Placed` one message per line, order_id `O<chunk:4><seq:6>-<line>`; `Rates.reject`
of lines get an `Order Rejected`, `Rates.invoice` an `Order Invoiced`, 0..10 days later (never past
the window's end), with the same identity as the placed line; the rest stay pending.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from generator.values import (
    BRANDS,
    DAY_MS,
    DELIVERY_STATUSES,
    PAGES,
    PLANS,
    REJECT_CODES,
    count_about,
    epoch_day_to_date,
)
from jobs.core.errors import InputError

if TYPE_CHECKING:
    from generator.chunk import Chunk
    from generator.people import Person

MAX_REF_DELAY_MS = 10 * DAY_MS          # rejected / invoiced lines follow the placed line by 0..10 days


def person_events(chunk: Chunk, person: Person) -> None:
    rng, m = chunk.rng, person.mult
    if person.chain:
        chain_events(chunk, person)
    elif person.user_id is not None:
        identify_events(chunk, person)
    for _ in range(max(1, count_about(rng, 5.5 * m))):   # everyone is seen at least once
        view_event(chunk, person)
    for name, mean in (("Product Viewed", 2.5), ("Cart Viewed", 1.0), ("Products Searched", 1.0)):
        for _ in range(count_about(rng, mean * m)):
            browse_event(chunk, person, name)
    if person.user_id is not None and person.emails:
        for _ in range(count_about(rng, 1.5 * m)):
            email_opened(chunk, person)
    for _ in range(count_about(rng, 1.0 * m)):
        order(chunk, person)


def identify_events(chunk: Chunk, person: Person) -> None:
    rng = chunk.rng
    traits_base = {"firstName": person.first.title(), "lastName": person.last.title()}
    for n, device in enumerate(person.devices):
        ts = device[2]
        traits = {"email": chunk.fmt_email(person.emails[n % len(person.emails)]), **traits_base}
        if person.phones and rng.random() < 0.5:
            traits["phone"] = chunk.fmt_phone(person.phones[0])
        chunk.emit(ts, "identify", person, person.ident(device, ts), {"traits": traits},
                   {"library": {"name": device[1]}})
    # Server-side identifies so that every email and phone is tied to the userId at least once.
    for email in person.emails:
        ts = chunk.rand_ts()
        chunk.emit(ts, "identify", person, (person.uid_at(ts), None),
                   {"traits": {"email": chunk.fmt_email(email), **traits_base}})
    for phone in person.phones:
        ts = chunk.rand_ts()
        chunk.emit(ts, "identify", person, (person.uid_at(ts), None),
                   {"traits": {"phone": chunk.fmt_phone(phone), **traits_base}})
    for _ in range(count_about(rng, 0.5)):
        device = rng.choice(person.devices)
        ts = device[2] + int(rng.random() * (chunk.end - device[2]))
        traits = {"email": chunk.fmt_email(rng.choice(person.emails)), "plan": rng.choice(PLANS)}
        chunk.emit(ts, "identify", person, person.ident(device, ts), {"traits": traits},
                   {"library": {"name": device[1]}})
    if person.legacy_id is not None:
        chunk.emit(person.alias_ms, "alias", person, (person.user_id, None), {"previousId": person.legacy_id})
    if person.alias_device is not None:
        login = person.devices[0][2]
        chunk.emit(login, "alias", person, (person.uid_at(login), None), {"previousId": person.alias_device})


def chain_events(chunk: Chunk, person: Person) -> None:
    """identify(anon_j, email_j) and identify(anon_j+1, email_j): each link in its own message."""
    devices, emails = person.devices, person.emails
    for j, email in enumerate(emails):
        for device in (devices[j], devices[j + 1]) if j + 1 < len(devices) else (devices[j],):
            ts = chunk.rand_ts()
            chunk.emit(ts, "identify", person, (None, device[0]), {"traits": {"email": chunk.fmt_email(email)}},
                       {"library": {"name": device[1]}})
    ts = chunk.rand_ts()
    chunk.emit(ts, "identify", person, (person.user_id, None),
               {"traits": {"email": chunk.fmt_email(emails[-1]), "firstName": person.first.title()}})
    # Orders and views come from the far end of the chain.
    person.devices = devices[:1]
    chunk.counts.chains.append({"person_id": person.pid, "first_anonymous_id": devices[0][0],
                                "user_id": person.user_id, "hops": 2 * len(emails)})


def view_event(chunk: Chunk, person: Person) -> None:
    device = chunk.rng.choice(person.devices)
    ts = chunk.rand_ts()
    ident = person.ident(device, ts)
    page = chunk.rng.choice(PAGES)
    if device[1] == "analytics.js":
        body = {"name": page, "properties": {"path": "/" + page.lower().replace(" ", "-"), "title": page}}
        chunk.emit(ts, "page", person, ident, body, chunk.device_context(person, device, ident))
    else:
        body = {"name": page, "properties": {"name": page}}
        chunk.emit(ts, "screen", person, ident, body, chunk.device_context(person, device, ident))


def browse_event(chunk: Chunk, person: Person, name: str) -> None:
    rng = chunk.rng
    device = rng.choice(person.devices)
    ts = chunk.rand_ts()
    ident = person.ident(device, ts)
    if name == "Product Viewed":
        product = rng.choice(chunk.catalog)
        props: dict[str, Any] = {"product_id": product[0], "brand_name": product[1], "product_category": product[3]}
    elif name == "Cart Viewed":
        props = {"item_count": rng.randint(1, 12)}
    else:
        props = {"query": rng.choice(BRANDS).lower()}
    chunk.emit(ts, "track", person, ident, {"event": name, "properties": props},
               chunk.device_context(person, device, ident))


def email_opened(chunk: Chunk, person: Person) -> None:
    rng = chunk.rng
    email = rng.choice(person.emails)
    hour = person.pref_hour[email]
    if rng.random() < 0.2:
        hour = (hour + rng.choice((-1, 1))) % 24
    day = rng.randrange(chunk.p.days)
    ts = chunk.start + day * DAY_MS + hour * 3_600_000 + rng.randrange(3_600_000)
    props = {"email_address": email, "campaign_id": f"cmp-{rng.randrange(1, 40):03d}"}
    chunk.emit(ts, "track", person, (person.uid_at(ts), None), {"event": "Email Opened", "properties": props})


def order(chunk: Chunk, person: Person) -> None:
    rng, r = chunk.rng, chunk.r
    device = rng.choice(person.devices)
    ts = chunk.rand_ts()
    ident = person.ident(device, ts)
    chunk.order_seq += 1
    if chunk.order_seq >= 1_000_000:
        raise InputError("--chunk-size too large: more than 999,999 orders in one chunk")
    order_no = f"O{chunk.index:04d}{chunk.order_seq:06d}"
    delivery = epoch_day_to_date((ts // DAY_MS) + rng.randint(1, 7))
    chunk.counts.bump("orders")
    # Placed before this device identified; a later identify on the same anonymousId links it.
    pre_login = ident[0] is None and person.user_id is not None and not person.chain
    for line in range(1, rng.choices((1, 2, 3, 4), (30, 30, 25, 15))[0] + 1):
        product = rng.choice(chunk.catalog)
        cases, bottles = rng.randint(0, 10), rng.randint(0, 24)
        if cases == 0 and bottles == 0:
            cases = 1
        cents = cases * product[5] + bottles * product[6]
        props = {
            "order_id": f"{order_no}-{line}", "product_id": product[0], "brand_name": product[1],
            "supplier_name": product[2], "product_category": product[3], "product_classification": product[4],
            "cases": cases, "bottles": bottles, "order_value": cents / 100, "request_delivery_date": delivery,
        }
        chunk.emit(ts, "track", person, ident, {"event": "Order Placed", "properties": props},
                   chunk.device_context(person, device, ident))
        chunk.counts.bump("placed_lines")
        if pre_login:
            chunk.counts.bump("pre_login_placed_lines")
        roll = rng.random()
        # 0..10 days later, but inside the window so the planted shares hold near its end too.
        later = ts + rng.randint(0, min(MAX_REF_DELAY_MS, chunk.end - 1 - ts))
        if roll < r.reject + r.invoice:
            server = {"library": {"name": "analytics-python"}}
            if roll < r.reject:
                rejected = {**props, "order_reject_code": rng.choice(REJECT_CODES),
                            "order_status_code": "RJ", "order_delivery_status": rng.choice(DELIVERY_STATUSES)}
                chunk.emit(later, "track", person, ident, {"event": "Order Rejected", "properties": rejected}, server)
                chunk.counts.bump("rejected_lines")
            else:
                chunk.emit(later, "track", person, ident, {"event": "Order Invoiced", "properties": props}, server)
                chunk.counts.bump("invoiced_lines")
    if pre_login:
        chunk.counts.bump("pre_login_orders")
