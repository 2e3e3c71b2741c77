"""Customer master rows (header = GenerateParams.customer_columns = jobs.ingest.schemas.CUSTOMER_COLUMNS).

`Rates.master_row` of the known customers have a row, keyed by their userId. Bad input: rows
repeated identically or updated (same customer_id, newer status/address/consent) go to a later
file (the chunk's carry), and rows with an empty customer_id are inserted at random positions.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from generator.values import OFF_PREM_CHANNELS, ON_PREM_CHANNELS, SITES, street_address

if TYPE_CHECKING:
    from generator.chunk import Chunk
    from generator.people import Person


def customer_rows(chunk: Chunk, persons: list[Person]) -> tuple[list[list[str]], list[list[str]]]:
    """(rows of this chunk's file, rows carried to the next file)."""
    rng, r = chunk.rng, chunk.r
    columns = chunk.p.customer_columns
    own: list[list[str]] = []
    carry: list[list[str]] = []
    for person in persons:
        if person.user_id is None or rng.random() >= r.master_row:
            continue
        row = customer_record(chunk, person)
        own.append([row[c] for c in columns])
        chunk.counts.bump("master_customers")
        roll = rng.random()
        if roll < r.duplicate_row:
            carry.append([row[c] for c in columns])
            chunk.counts.bump("duplicate_rows")
        elif roll < r.duplicate_row + r.updated_row:
            newer = dict(row, status=rng.choice(("inactive", "suspended", "active")),
                         address=street_address(rng), consent="no" if row["consent"] == "yes" else "yes")
            carry.append([newer[c] for c in columns])
            chunk.counts.bump("updated_rows")
        if chunk.truth is not None:
            chunk.truth.add((person.pid, "user_id", person.user_id))
            chunk.add_contact_truth(person, row["email"], row["phone_number"])
    if r.missing_customer_id > 0 and own:
        for _ in range(max(1, round(r.missing_customer_id * len(own)))):
            broken = list(rng.choice(own))
            broken[columns.index("customer_id")] = ""
            own.insert(rng.randrange(len(own) + 1), broken)
            chunk.counts.bump("missing_customer_id")
    return own, carry


def customer_record(chunk: Chunk, person: Person) -> dict[str, str]:
    rng = chunk.rng
    site, state, county, zip3, division = rng.choice(SITES)
    premise = rng.choice(("on prem", "off prem"))
    channel_code, channel_name = rng.choice(ON_PREM_CHANNELS if premise == "on prem" else OFF_PREM_CHANNELS)
    kind = "On-Sale" if premise == "on prem" else "Off-Sale"
    email = person.emails[-1] if person.chain else (person.emails[0] if person.emails else "")
    return {
        "customer_id": person.user_id or "",
        "customer_name": f"{person.first.title()} {person.last.title()}",
        "email": chunk.fmt_email(email) if email else "",
        "phone_number": chunk.fmt_phone(person.phones[0]) if person.phones else "",
        "address": street_address(rng),
        "customer_no": f"{person.idx % 1_000_000:06d}",
        "site": site,
        "state": state,
        "county_name": county,
        "zip": f"{zip3}{rng.randrange(100):02d}",
        "premise_code": premise,
        "status": rng.choices(("active", "inactive", "suspended"), (80, 15, 5))[0],
        "license_classification": rng.choice(("A", "B", "C")),
        "license_type": f"{kind} {rng.choice(('General', 'Beer & Wine'))}",
        "channel_code": channel_code,
        "channel_name": channel_name,
        "selling_division_name": division,
        "consent": "yes" if rng.random() < 0.65 else "no",
    }
