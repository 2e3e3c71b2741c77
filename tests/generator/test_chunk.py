"""generator.chunk: message ids unique across data sets; identifiers written inconsistently."""
from __future__ import annotations

import collections
import datetime as dt

from generator.cli import generate
from tests.generator.readers import RUN_DATE, norm_email, read_events, small_params


def test_data_sets_for_other_arguments_never_reuse_message_ids(dataset, tmp_path):
    out, _ = dataset
    next_day = tmp_path / "next-day"
    generate(small_params(next_day, run_date=RUN_DATE + dt.timedelta(days=1)))
    ids = set(read_events(out).file_of)
    assert ids and ids.isdisjoint(read_events(next_day).file_of)


def test_identifiers_are_formatted_inconsistently(dataset):
    out, manifest = dataset
    raw_emails, raw_phones, devices = set(), set(), collections.defaultdict(set)
    for m in read_events(out).messages:
        traits = m.get("traits") or {}
        if traits.get("email"):
            raw_emails.add(traits["email"])
        if traits.get("phone"):
            raw_phones.add(traits["phone"])
        if m.get("userId") and m.get("anonymousId"):
            devices[m["userId"]].add(m["anonymousId"])
    assert any(e != e.strip() for e in raw_emails) and any(e.strip() != e.strip().lower() for e in raw_emails)
    assert any(p.startswith("(") for p in raw_phones) and any(p.startswith("+") for p in raw_phones)
    assert any("-" in p for p in raw_phones) and any(p.isdigit() for p in raw_phones)
    assert len({norm_email(e) for e in raw_emails}) < len(raw_emails)
    assert max(len(d) for d in devices.values()) >= 3        # several devices per customer
    assert manifest["persons"]["anonymous_only"] > 0
