"""generator.events: the event window, orders and their outcomes, pre-login orders."""
from __future__ import annotations

import collections
import datetime as dt

from tests.generator.readers import DAYS, ORDER_EVENTS, RUN_DATE, parse_instant, read_events


def test_all_valid_timestamps_lie_in_the_window(dataset):
    out, _ = dataset
    start = dt.datetime.combine(RUN_DATE - dt.timedelta(days=DAYS - 1), dt.time(), dt.timezone.utc)
    end = dt.datetime.combine(RUN_DATE + dt.timedelta(days=1), dt.time(), dt.timezone.utc)
    instants = [parse_instant(m["timestamp"]) for m in read_events(out).messages]
    assert all(start <= t < end for t in instants)
    assert min(instants) < start + dt.timedelta(days=1) and max(instants) >= end - dt.timedelta(days=1)


def test_order_lines_reference_existing_placed_lines(dataset):
    out, manifest = dataset
    messages = read_events(out).messages
    placed = {}
    outcomes = collections.Counter()
    for m in messages:
        if m["type"] == "track" and m["event"] == "Order Placed":
            order_id = m["properties"]["order_id"]
            assert order_id not in placed
            placed[order_id] = m
    for m in messages:
        if m["type"] == "track" and m["event"] in ORDER_EVENTS[1:]:
            props = m["properties"]
            ref = placed[props["order_id"]]
            outcomes[props["order_id"]] += 1
            delay = parse_instant(m["timestamp"]) - parse_instant(ref["timestamp"])
            assert dt.timedelta(0) <= delay <= dt.timedelta(days=10)
            assert (m.get("userId"), m.get("anonymousId")) == (ref.get("userId"), ref.get("anonymousId"))
            assert props["product_id"] == ref["properties"]["product_id"]
            if m["event"] == "Order Rejected":
                assert props["order_reject_code"] and props["order_status_code"] and props["order_delivery_status"]
    assert max(outcomes.values()) == 1                   # a line is rejected or invoiced, not both
    # Lines of one order: numbered 1..n, one identity and one timestamp; order numbers never reused.
    orders = collections.defaultdict(list)
    for order_id, m in placed.items():
        number, line = order_id.split("-")
        orders[number].append((int(line), m.get("userId"), m.get("anonymousId"), parse_instant(m["timestamp"])))
    for lines in orders.values():
        assert sorted(n for n, *_ in lines) == list(range(1, len(lines) + 1))
        assert len({tuple(rest) for _, *rest in lines}) == 1
    o = manifest["orders"]
    assert (o["orders"], o["placed_lines"]) == (len(orders), len(placed))
    rejected = sum(1 for m in messages if m["type"] == "track" and m["event"] == "Order Rejected")
    invoiced = sum(1 for m in messages if m["type"] == "track" and m["event"] == "Order Invoiced")
    assert (o["rejected_lines"], o["invoiced_lines"]) == (rejected, invoiced)
    assert 0.10 < rejected / len(placed) < 0.20 and 0.62 < invoiced / len(placed) < 0.78
    sample = next(iter(placed.values()))["properties"]
    assert isinstance(sample["order_value"], float) and dt.date.fromisoformat(sample["request_delivery_date"])


def test_pre_login_orders_are_linked_later_by_an_identify_or_an_alias_on_the_same_device(dataset):
    out, manifest = dataset
    messages = read_events(out).messages
    identified_devices = {m["anonymousId"] for m in messages
                          if m["type"] == "identify" and m.get("userId") and m.get("anonymousId")}
    aliased_devices = {m["previousId"] for m in messages if m["type"] == "alias"} - {
        m["userId"] for m in messages if m.get("userId")}

    def pre_login(devices):
        return {m["properties"]["order_id"].split("-")[0] for m in messages
                if m["type"] == "track" and m["event"] == "Order Placed" and not m.get("userId")
                and m["anonymousId"] in devices}

    # Login-alias devices are linked by the alias alone: never in an identify with the userId.
    assert not aliased_devices & identified_devices
    assert len(aliased_devices) == manifest["persons"]["with_login_alias"] > 0
    assert len(pre_login(identified_devices | aliased_devices)) == manifest["orders"]["pre_login_orders"]
    assert pre_login(identified_devices) and pre_login(aliased_devices)
