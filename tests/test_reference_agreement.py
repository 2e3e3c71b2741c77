"""The whole nightly on generated data agrees exactly with the independent reference
(tests/reference/c360_reference.py, written from the contract, not from jobs/ or lens/).

Customers are compared by their identifiers, never by ids: a pipeline customer is the frozenset of
its `gold/identity_map` identifiers, a reference customer the frozenset the reference stitched.
Every comparison runs even when an earlier one fails; the assertion lists each failing one with
counts and a few concrete examples. Downstream comparisons are also re-run with the pipeline's own
partition fed to the reference ("with the pipeline's partition: ..."), which tells an identity
difference from a metric bug.
"""
from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import Counter, defaultdict
from decimal import Decimal
from fractions import Fraction
from pathlib import Path

import pytest

from jobs.core.config import load_config
from jobs.core.context import RunParams

from tests.reference import c360_reference as R

REPO = Path(__file__).resolve().parents[1]
RUN_DATE = "2026-03-31"
D = dt.date.fromisoformat(RUN_DATE)
# Small, but with every hard case planted: legacy-userId and anonymousId aliases, a long chain,
# junk emails / phones shared by many users, households and group events, context traits,
# offset timestamps, replays, late and malformed lines.
GENERATE = ["--profiles", "300", "--days", "45", "--seed", "23", "--run-date", RUN_DATE,
            "--rate", "alias=0.15", "--rate", "junk_email=0.05", "--rate", "junk_phone=0.08",
            "--rate", "household_member=0.2", "--rate", "context_traits=0.3", "--rate", "chain_hops=24",
            "--rate", "late=0.03", "--rate", "reject=0.3", "--rate", "offset_timestamp=0.3"]
TOLERANCE = Fraction(1, 10**9)
# saved-query variants the brief asks about that conf/local.yml may not materialize
UNMATERIALIZED = {
    "gold/lens_days_to_invoice_by_product_category": (
        "lens/customer_360.yml",
        {"measures": ["invoice_lag.average_days_to_invoice"], "dimensions": ["invoice_lag.product_category"]}),
}  # doubles computed from integer ratios


def identity_rules() -> R.IdentityRules:
    # conf/local.yml holds overrides only; the effective values are the loaded config's
    return R.IdentityRules.from_config(dataclasses.asdict(load_config(REPO / "conf" / "local.yml").identity))


# ---------------------------------------------------------------------------------------------
# pipeline tables -> plain Python, keyed by identifier sets


class Pipeline:
    """The warehouse's tables, read through `read(relative_path) -> list[dict]`."""

    def __init__(self, read, root: Path):
        self.read = read
        self.root = root
        self.identity_rows = read("gold/identity_map")
        members = defaultdict(set)
        for row in self.identity_rows:
            if row["customer_id"] is not None:
                members[row["customer_id"]].add((row["identifier_type"], row["identifier_value"]))
        self.customers = {cid: frozenset(ids) for cid, ids in members.items()}
        self.partition = set(self.customers.values())

    def customer(self, customer_id):
        """entity_id -> frozenset of identifiers (an id the identity map lacks stays visible as such)."""
        if customer_id is None:
            return None
        return self.customers.get(customer_id, frozenset({("pipeline customer_id not in identity_map", customer_id)}))

    def report(self) -> dict:
        return json.loads((self.root / "_runs" / RUN_DATE / "report.json").read_text())


def label(customer) -> str:
    if customer is None:
        return "<nobody>"
    if not isinstance(customer, frozenset):
        return repr(customer)
    ids = sorted(customer, key=lambda i: (R.IDENTIFIER_TYPES.index(i[0]) if i[0] in R.IDENTIFIER_TYPES else 9, i[1]))
    shown = ", ".join(f"{t}:{v}" for t, v in ids[:3])
    return "{" + shown + (f", +{len(ids) - 3}" if len(ids) > 3 else "") + "}"


def money(value, scale: int) -> Decimal | None:
    if value is None:
        return None
    return Decimal(repr(value) if isinstance(value, float) else str(value)).quantize(Decimal(1).scaleb(-scale))


def close(pipe, ref) -> bool:
    if pipe is None or ref is None:
        return pipe is None and ref is None
    return abs(Fraction(pipe) - Fraction(ref)) <= TOLERANCE


def diff_maps(pipe: dict, ref: dict, equal=lambda a, b: a == b, show=label, limit: int = 4) -> tuple[bool, str]:
    """Compare two dicts; a summary with counts and a few examples."""
    only_pipe = [k for k in pipe if k not in ref]
    only_ref = [k for k in ref if k not in pipe]
    differ = [k for k in pipe if k in ref and not equal(pipe[k], ref[k])]
    if not (only_pipe or only_ref or differ):
        return True, f"{len(ref)} keys agree"
    parts = [f"{len(ref)} reference keys, {len(pipe)} pipeline keys: {len(differ)} differ, "
             f"{len(only_ref)} only in reference, {len(only_pipe)} only in pipeline"]
    for k in sorted(differ, key=show)[:limit]:
        parts.append(f"  differ {show(k)}: pipeline {pipe[k]!r} vs reference {ref[k]!r}")
    for k in sorted(only_ref, key=show)[:limit]:
        parts.append(f"  only in reference {show(k)}: {ref[k]!r}")
    for k in sorted(only_pipe, key=show)[:limit]:
        parts.append(f"  only in pipeline {show(k)}: {pipe[k]!r}")
    return False, "\n".join(parts)


# ---------------------------------------------------------------------------------------------
# the comparisons


def compare_ingest(pipe: Pipeline, ref: R.Reference):
    metrics = pipe.report()["stages"]["ingest"]["metrics"]
    ing = ref.ingest
    got = {k: metrics.get(k) for k in ("lines_read", "accepted", "duplicates", "quarantined",
                                       "customer_rows_read", "customer_rows_quarantined")}
    want = {"lines_read": ing.lines_read, "accepted": ing.accepted, "duplicates": ing.duplicates,
            "quarantined": ing.quarantined, "customer_rows_read": ing.customer_rows_read,
            "customer_rows_quarantined": ing.customer_rows_quarantined}
    ok, text = diff_maps(got, want, show=str)
    # which messages: accepted by one side only
    accepted = {e.message_id: e for e in ref.ingest.events}
    bronze = {r["message_id"] for r in pipe.read("bronze/events") or ()}
    quarantined = {}
    for r in pipe.read("quarantine/events") or ():
        try:
            message_id = str(json.loads(r["raw"]).get("messageId", "")).strip()
        except (ValueError, TypeError, AttributeError):
            continue
        if message_id in accepted and message_id not in bronze:
            quarantined[message_id] = r["reason"]
    only_ref = sorted(set(accepted) - bronze)
    only_pipe = sorted(bronze - set(accepted))
    if only_ref or only_pipe:
        ok = False
        text += (f"\n  messages the reference accepts but bronze/events lacks: {len(only_ref)}, "
                 f"in bronze/events but not accepted by the reference: {len(only_pipe)}")
        for m in only_ref[:4]:
            e = accepted[m]
            text += (f"\n    {m} ({e.type} {e.event or ''}, userId={e.user_id}, anonymousId={e.anonymous_id}, "
                     f"groupId={e.group_id}): pipeline quarantine reason {quarantined.get(m)!r}")
        for m in only_pipe[:4]:
            text += f"\n    {m}: accepted by the pipeline only"
    return ok, text


def compare_identity(pipe: Pipeline, ref: R.Reference):
    pipe_of = R.customer_index(pipe.partition)
    ref_of = ref.customer_of
    types = Counter()
    for row in pipe.identity_rows:
        types[(row["identifier_type"], row["identifier_value"])] += 1
    repeated = [i for i, n in types.items() if n > 1]
    unmapped = [(r["identifier_type"], r["identifier_value"]) for r in pipe.identity_rows if r["customer_id"] is None]
    missing = sorted(set(ref_of) - set(pipe_of))
    extra = sorted(set(pipe_of) - set(ref_of))
    split = [c for c in ref.partition if len({pipe_of.get(i) for i in c if i in pipe_of}) > 1]
    over = [c for c in pipe.partition if len({ref_of.get(i) for i in c if i in ref_of}) > 1]
    exact = len(ref.partition & pipe.partition)
    if not (missing or extra or split or over or repeated or unmapped):
        return True, f"{len(ref.partition)} customers, {len(ref_of)} identifiers agree"
    parts = [f"reference {len(ref.partition)} customers / {len(ref_of)} identifiers, pipeline "
             f"{len(pipe.partition)} / {len(pipe_of)}; identical customers {exact}; "
             f"split (one reference customer over several pipeline customers) {len(split)}, "
             f"over-merged (one pipeline customer holding several reference customers) {len(over)}; "
             f"identifiers missing from the pipeline {len(missing)}, extra in the pipeline {len(extra)}, "
             f"listed twice {len(repeated)}, without customer_id {len(unmapped)}"]
    removed = ref.identity.removed if ref.identity else {}
    for i in missing[:4]:
        parts.append(f"  missing {i}")
    for i in extra[:4]:
        parts.append(f"  extra {i}" + (f" (reference: removed, {removed[i]})" if i in removed else ""))
    cid_of = {i: cid for cid, m in pipe.customers.items() for i in m}
    for c in sorted(split, key=label)[:3]:
        pieces = defaultdict(list)
        for i in sorted(c):
            pieces[cid_of.get(i)].append(i)
        parts.append(f"  split {label(c)} -> " + "; ".join(
            f"{cid}: {sorted(ids)[:4]}" for cid, ids in sorted(pieces.items(), key=lambda kv: str(kv[0]))))
    for c in sorted(over, key=label)[:3]:
        refs = Counter(label(ref_of[i]) for i in c if i in ref_of)
        parts.append(f"  over-merged pipeline customer {label(c)} holds reference customers {dict(refs)}")
    return False, "\n".join(parts)


def pipeline_order_lines(pipe: Pipeline, stream):
    lines = defaultdict(lambda: [0, set()])
    unattributed = 0
    for row in stream:
        if row["activity"] != "order_placed":
            continue
        if row["entity_id"] is None:
            unattributed += 1
            continue
        entry = lines[pipe.customer(row["entity_id"])]
        entry[0] += 1
        entry[1].add(R._trim(row["feature1"]))
    return {c: (n, frozenset(ids)) for c, (n, ids) in lines.items()}, unattributed


def compare_order_lines(pipe: Pipeline, ref: R.Reference, stream):
    got, unattributed = pipeline_order_lines(pipe, stream)
    want = ref.order_placed_lines()
    ref_unattributed = sum(1 for a in ref.activities if a.activity == "order_placed" and a.entity is None)
    ok, text = diff_maps(got, want)
    if unattributed != ref_unattributed:
        ok, text = False, text + f"\n  unattributed order_placed rows: pipeline {unattributed}, reference {ref_unattributed}"
    return ok, text


def order_value_scale(ref: R.Reference) -> int:
    scale = 2
    for e in ref.ingest.events:
        value = R._number(e.properties.get("order_value"))
        if value is not None:
            scale = max(scale, -value.as_tuple().exponent)
    return scale


def compare_rfm(pipe: Pipeline, ref: R.Reference, scale: int):
    got = {pipe.customer(r["customer_id"]): (r["recency_days"], r["frequency"], money(r["monetary"], scale),
                                             r["r_score"], r["f_score"], r["m_score"], r["rfm_segment"])
           for r in pipe.read("gold/rfm")}
    want = {c: (r.recency_days, r.frequency, money(r.monetary, scale), r.r_score, r.f_score, r.m_score,
                r.rfm_segment) for c, r in ref.rfm().items()}
    ok, text = diff_maps(got, want)
    if not ok:  # which columns
        cols = ("recency_days", "frequency", "monetary", "r_score", "f_score", "m_score", "rfm_segment")
        bad = Counter(cols[i] for k in got if k in want for i in range(7) if got[k][i] != want[k][i])
        text += f"\n  differing columns: {dict(bad)}"
    return ok, text


def compare_retention(pipe: Pipeline, ref: R.Reference):
    """gold/cohort_retention, this run's gold/rfm_migration (the first run: everyone from "(not
    scored)") and the rfm stage's repeat customers, against the reference."""
    got = {(r["cohort_month"], r["months_since"]): (r["cohort_customers"], r["active_customers"])
           for r in pipe.read("gold/cohort_retention")}
    want = ref.cohort_retention()
    ok, text = diff_maps(got, want)
    rates = [r for r in pipe.read("gold/cohort_retention")
             if not close(r["retention_rate"], float(Fraction(r["active_customers"], r["cohort_customers"])))]
    moves = Counter()
    for r in pipe.read("gold/rfm_migration"):
        moves[(r["from_segment"], r["to_segment"])] += r["customers"] if r["run_date"] == D else 0
    want_moves = R.rfm_migration({}, {c: row.rfm_segment for c, row in ref.rfm().items()})
    repeat = pipe.report()["stages"]["rfm"]["metrics"]
    want_rate = R.repurchase_rate(ref.rfm())
    problems = ([f"retention_rate is not active / cohort customers in {len(rates)} rows"] if rates else []) + (
        [f"migration {dict(moves)} != {want_moves}"] if dict(+moves) != want_moves else []) + (
        [f"repeat customers {repeat} != {want_rate}"]
        if Fraction(repeat["repeat_customers"], repeat["customers"]) != want_rate else [])
    return ok and not problems, "; ".join([text, *problems])


def compare_group_traits(pipe: Pipeline, ref: R.Reference, scale: int):
    """gold/group_traits' default household measures against the reference's; an event's naming
    customer (whose order number it carries) is the reference customer first by pipeline id."""
    pipeline_id = {members: cid for cid, members in pipe.customers.items()}
    want = {g: (t.last_order, t.orders, money(t.spend, scale), t.members_ordered_30_days)
            for g, t in ref.group_traits(lambda entity: pipeline_id.get(entity, label(entity))).items()}
    got = {r["group_id"]: (r["household_last_order_date"].replace(tzinfo=dt.timezone.utc)
                           if r["household_last_order_date"] else None,
                           r["household_orders"], money(r["household_lifetime_value"], scale),
                           r["members_ordered_last_30_days"])
           for r in pipe.read("gold/group_traits")}
    # a group with nothing to measure (no order, no member who ordered) is a row of zeros in the
    # pipeline (every group of gold/groups) and may be absent from the reference: compared as absent
    got, want = ({g: v for g, v in side.items() if v[0] is not None or any(v[1:])} for side in (got, want))
    if got == want:
        return True, f"{len(got)} groups agree ({sum(1 for v in got.values() if v[1])} with orders)"
    diff = [f"{g}: pipeline {got.get(g)} reference {want.get(g)}" for g in sorted(set(got) | set(want))
            if got.get(g) != want.get(g)]
    return False, f"{len(diff)} groups differ:\n  " + "\n  ".join(diff[:10])


def compare_group_members(pipe: Pipeline, ref: R.Reference):
    got = defaultdict(set)
    for r in pipe.read("gold/group_members"):
        got[r["group_id"]].add(pipe.customer(r["customer_id"]))
    got = {g: frozenset(m) for g, m in got.items()}
    if got == ref.members:
        return True, f"{len(got)} groups, {sum(map(len, got.values()))} memberships agree"
    return False, _members_diff(got, ref.members)


def _members_diff(got, want):
    lines = [f"{len(want)} reference groups, {len(got)} pipeline groups"]
    for g in sorted(set(got) | set(want)):
        a, b = got.get(g, frozenset()), want.get(g, frozenset())
        if a != b:
            lines.append(f"  {g}: pipeline {len(a)} members, reference {len(b)}; only pipeline "
                         f"{[label(c) for c in a - b][:3]}, only reference {[label(c) for c in b - a][:3]}")
    return "\n".join(lines[:8])


def compare_lens_rfm(pipe: Pipeline, ref: R.Reference, scale: int):
    got = {pipe.customer(r["order_placed.entity_id"]): (r["order_placed.recency_days"], r["order_placed.frequency"],
                                                        money(r["order_placed.monetary"], scale))
           for r in pipe.read("gold/lens_rfm")}
    want = {c: (rec, freq, money(m, scale)) for c, (rec, freq, m) in ref.lens_rfm().items()}
    return diff_maps(got, want)


def _outcome(r: dict):
    return (r["order_placed.frequency"], r["order_rejected.frequency"], r["order_invoiced.frequency"],
            r["order_placed.percentage_rejected"], r["order_placed.percentage_invoiced"])


def _outcome_equal(a, b) -> bool:
    return a[:3] == b[:3] and close(a[3], b[3]) and close(a[4], b[4])


def _ref_outcome(o: R.OrderOutcome):
    pct = (lambda f: None if f is None else float(f))
    return (o.placed, o.rejected, o.invoiced, pct(o.percentage_rejected), pct(o.percentage_invoiced))


def state_lookup(pipe: Pipeline, ref: R.Reference):
    """customer.state for a reference customer: the one state its master rows carry; none -> None; several
    (survivorship) -> silver/customers.state of the pipeline customer holding its user ids."""
    silver = {r["customer_id"]: r["state"] for r in pipe.read("silver/customers")}
    pipe_of = R.customer_index(pipe.partition)
    pipe_id = {frozenset(m): cid for cid, m in pipe.customers.items()}
    candidates = ref.customer_states()
    fallback = []

    def state_of(customer):
        states = candidates.get(customer, set())
        if len(states) <= 1:
            return next(iter(states), None)
        holders = {pipe_id[pipe_of[i]] for i in customer if i[0] == R.USER_ID and i in pipe_of}
        fallback.append(customer)
        found = {silver.get(h) for h in holders}
        return found.pop() if len(found) == 1 else ("<ambiguous>", tuple(sorted(map(str, found))))

    return state_of, silver, candidates, fallback


def compare_silver_state(pipe: Pipeline, ref: R.Reference, silver, candidates):
    """Sanity check of the one column the by_state question reads: a pipeline customer identical to a
    reference customer carries a state from that customer's master rows (none when it has none)."""
    bad = []
    for cid, members in pipe.customers.items():
        if members in ref.partition:
            states = candidates.get(members, set())
            got = silver.get(cid)
            if (got is None and states) or (got is not None and got not in states):
                bad.append(f"  {cid} {label(members)}: silver/customers.state {got!r}, master rows {sorted(states)}")
    if bad:
        return False, f"{len(bad)} customers with a state not from their master rows\n" + "\n".join(bad[:4])
    return True, "states agree with master rows"


def compare_outcomes(pipe: Pipeline, ref: R.Reference, table: str, by: str | None, column: str | None, state_of=None):
    rows = pipe.read(table)
    got = {(r[column] if column else ()): _outcome(r) for r in rows}
    want = {k: _ref_outcome(o) for k, o in ref.order_outcomes(by, state_of).items()}
    return diff_maps(got, want, equal=_outcome_equal, show=repr)


def compare_days_to_invoice(pipe: Pipeline, ref: R.Reference, table: str, by_category: bool):
    rows = pipe.read(table)
    if rows is None:
        return False, f"{table} was not written by the nightly (no lens.materialize entry)"
    if by_category:
        got = {r["invoice_lag.product_category"]: r["invoice_lag.average_days_to_invoice"] for r in rows}
    else:
        got = {(): r["invoice_lag.average_days_to_invoice"] for r in rows}
    want = {k: (None if v is None else float(v)) for k, v in ref.days_to_invoice(by_category).items()}
    return diff_maps(got, want, equal=close, show=repr)


def compare_rejections(pipe: Pipeline, ref: R.Reference):
    got = {pipe.customer(r["order_rejected.entity_id"]): (r["order_rejected.rejected_orders_last_month"],
                                                          r["order_rejected.monthly_average_rejected_orders"])
           for r in pipe.read("gold/lens_rejections_above_average")}
    want = {c: (n, float(avg)) for c, (n, avg) in ref.rejections_above_average().items()}
    return diff_maps(got, want, equal=lambda a, b: a[0] == b[0] and close(a[1], b[1]))


def run_comparisons(pipe: Pipeline, raw: Path, rules: R.IdentityRules) -> dict[str, tuple[bool, str]]:
    ref = R.Reference.compute(raw, D, rules)
    ingest = ref.ingest
    # the same downstream computations on the pipeline's own customers: separates identity from metrics
    alt = R.Reference.compute(raw, D, rules, partition=pipe.partition, ingest=ingest)
    stream = pipe.read("silver/activity_stream")
    scale = order_value_scale(ref)
    state_of, silver, candidates, fallback = state_lookup(pipe, ref)
    alt_state_of, _, _, _ = state_lookup(pipe, alt)

    results = {"ingest counts": compare_ingest(pipe, ref),
               "identity partition (gold/identity_map)": compare_identity(pipe, ref)}
    downstream = {
        "order_placed lines per customer (silver/activity_stream)":
            lambda r, s: compare_order_lines(pipe, r, stream),
        "gold/rfm": lambda r, s: compare_rfm(pipe, r, scale),
        "gold/cohort_retention, gold/rfm_migration, repurchase rate": lambda r, s: compare_retention(pipe, r),
        "gold/group_members": lambda r, s: compare_group_members(pipe, r),
        "gold/group_traits": lambda r, s: compare_group_traits(pipe, r, scale),
        "gold/lens_rfm": lambda r, s: compare_lens_rfm(pipe, r, scale),
        "gold/lens_order_outcomes": lambda r, s: compare_outcomes(pipe, r, "gold/lens_order_outcomes", None, None),
        "gold/lens_order_outcomes_by_state": lambda r, s: compare_outcomes(
            pipe, r, "gold/lens_order_outcomes_by_state", "state", "customer.state", s),
        "gold/lens_order_outcomes_by_product_category": lambda r, s: compare_outcomes(
            pipe, r, "gold/lens_order_outcomes_by_product_category", "product_category",
            "order_placed.product_category"),
        "gold/lens_days_to_invoice": lambda r, s: compare_days_to_invoice(pipe, r, "gold/lens_days_to_invoice", False),
        "gold/lens_days_to_invoice_by_product_category": lambda r, s: compare_days_to_invoice(
            pipe, r, "gold/lens_days_to_invoice_by_product_category", True),
        "gold/lens_rejections_above_average": lambda r, s: compare_rejections(pipe, r),
    }
    for name, check in downstream.items():
        ok, text = check(ref, state_of)
        if not ok:
            alt_ok, alt_text = check(alt, alt_state_of)
            text += "\n  with the pipeline's own partition fed to the reference: " + (
                "agrees (so the difference comes from identity)" if alt_ok
                else "the same differences (so not from identity)" if alt_text == text
                else alt_text.replace("\n", "\n    "))
        results[name] = (ok, text)
    results["silver/customers.state from master rows"] = compare_silver_state(pipe, ref, silver, candidates)
    if fallback:
        results["gold/lens_order_outcomes_by_state"] = (
            results["gold/lens_order_outcomes_by_state"][0],
            results["gold/lens_order_outcomes_by_state"][1]
            + f" ({len(fallback)} customers with conflicting master-row states took silver/customers.state)")
    return results


def summary(results: dict[str, tuple[bool, str]]) -> str:
    failed = [n for n, (ok, _) in results.items() if not ok]
    lines = [f"{len(failed)} of {len(results)} comparisons with the reference failed: {failed}"]
    for name, (ok, text) in results.items():
        lines.append(f"[{'ok' if ok else 'FAIL'}] {name}: {text}")
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------


def plant_hard_cases(out: Path) -> None:
    """Add hand-made lines (events/zz_hard_cases.jsonl, customers/zz_hard_cases.csv) for the cases the
    generator does not plant, tied to generated users, devices and households."""
    generated = R.read_input(out).events
    users = sorted({e.user_id for e in generated if e.user_id and e.user_id.startswith("C")})
    devices = sorted({(e.anonymous_id, e.user_id) for e in generated
                      if e.type == "identify" and e.anonymous_id and e.user_id})
    households = sorted({e.group_id for e in generated if e.type == "group" and e.user_id})
    assert len(users) > 60 and devices and len(households) >= 2
    n = [0]

    def msg(kind: str, ts: str, **fields) -> dict:
        n[0] += 1
        return {"messageId": f"hard-case-{n[0]:04d}", "type": kind, "timestamp": ts, **fields}

    def order(event: str, ts: str, order_id: str, value, category="Spirits", **fields) -> dict:
        props = {"order_id": order_id, "product_id": "SKU-HC", "product_category": category, "order_value": value}
        return msg("track", ts, event=event, properties=props, **fields)

    lines = []
    # 1. a hub: one email in context.traits of 22 different customers (hub cap 20): removed
    for i, user in enumerate(users[:22]):
        lines.append(msg("track", f"2026-03-0{1 + i % 9}T08:{i:02d}:00Z", userId=user, event="Cart Viewed",
                         context={"traits": {"email": "Front.Desk@Hub.example "}}))
    # 2. one phone shared by three customers (a desk phone), one device shared by two: re-clustered
    for i, user in enumerate(users[30:33]):
        lines.append(msg("identify", f"2026-03-1{i}T10:00:00+02:00", userId=user, traits={"phone": "(415) 555-0199"}))
    lines.append(msg("identify", "2026-03-05T09:00:00Z", userId=users[40], anonymousId="hc-shared-device"))
    lines.append(msg("identify", "2026-03-04T09:00:00Z", userId=users[41], anonymousId="hc-shared-device"))
    lines.append(order("Order Placed", "2026-03-06T09:00:00Z", "HC100-1", 12.34, anonymousId="hc-shared-device"))
    # 3. a generated device aliased to a new user id (anonymous alias onto someone else's device)
    device, owner = devices[len(devices) // 2]
    lines.append(msg("alias", "2026-03-20T12:00:00Z", previousId=device, userId="HC-NEW-USER"))
    lines.append(order("Order Placed", "2026-03-21T12:00:00Z", "HC101-1", 20, userId="HC-NEW-USER"))
    # 4. anonymous browsing and an order, then alias(previousId=anonymousId, userId)
    lines.append(msg("page", "2026-03-01T10:00:00Z", anonymousId="hc-anon-1", properties={"path": "/"}))
    lines.append(order("Order Placed", "2026-03-01T10:05:00Z", "HC102-1", "99.99", anonymousId="hc-anon-1"))
    lines.append(order("Order Placed", "2026-03-01T10:05:00Z", "HC102-2", 0.01, "Beer", anonymousId="hc-anon-1"))
    lines.append(msg("alias", "2026-03-02T10:00:00Z", previousId=" hc-anon-1 ", userId="HC-ALIASED"))
    lines.append(msg("identify", "2026-03-02T10:01:00Z", userId="HC-ALIASED", traits={"email": " HC.Aliased@Mail.Example"}))
    # 5. a previousId seen both as a userId and as an anonymousId; one seen nowhere; a chain of aliases
    lines.append(msg("track", "2026-03-03T10:00:00Z", userId="hc-dual", event="Product Viewed"))
    lines.append(msg("track", "2026-03-03T11:00:00Z", anonymousId="hc-dual", event="Product Viewed"))
    lines.append(msg("alias", "2026-03-04T10:00:00Z", previousId="hc-dual", userId="HC-DUAL"))
    lines.append(msg("alias", "2026-03-04T10:00:00Z", previousId="hc-never-seen", userId="HC-DUAL"))
    lines.append(msg("alias", "2026-03-05T10:00:00Z", previousId="HC-DUAL", userId="HC-DUAL-2"))
    lines.append(order("Order Placed", "2026-03-06T10:00:00Z", "HC103-1", 5, userId="hc-dual"))
    # 6. group orders with no user: a household's (every member), and one of a group without members
    hh = households[0]
    lines.append(order("Order Placed", "2026-03-10T10:00:00Z", "HC104-1", 300, groupId=hh))
    lines.append(order("Order Placed", "2026-03-10T10:00:00Z", "HC104-2", 30, "Wine", context={"groupId": hh}))
    lines.append(order("Order Invoiced", "2026-03-13T10:00:00Z", "HC104-1", 300, groupId=hh))
    lines.append(order("Order Rejected", "2026-03-12T10:00:00Z", "HC104-2", 30, "Wine", groupId=hh))
    lines.append(order("Order Placed", "2026-02-20T10:00:00Z", "HC105-1", 40, groupId="hc-group-without-members"))
    lines.append(order("Order Placed", "2026-02-21T10:00:00Z", "HC106-1", 41, userId=users[50], groupId=households[1]))
    lines.append(order("Order Rejected", "2026-02-22T10:00:00Z", "HC106-1", 41, userId=users[50], groupId=households[1]))
    # a group call whose traits carry another customer's email: the group's, not the caller's
    lines.append(msg("group", "2026-03-01T00:00:00Z", userId=users[51], groupId="hc-club",
                     traits={"email": "HC.Aliased@mail.example", "name": "Club"}))
    # 7. around the run date: the last instant of D, an offset time that is already the next day in UTC
    lines.append(order("Order Placed", "2026-03-31T23:59:59.999Z", "HC107-1", 1, userId=users[52]))
    lines.append(order("Order Placed", "2026-03-31T20:00:00-05:00", "HC108-1", 1000, userId=users[52]))
    lines.append(order("Order Invoiced", "2026-04-01T10:00:00Z", "HC107-1", 1, userId=users[52]))
    # 8. phones: formats that meet in E.164, junk numbers, an impossible number
    lines.append(msg("identify", "2026-03-07T10:00:00Z", userId="HC-PHONE", traits={"phone": "+1 (415) 555-0142"}))
    for i, junk in enumerate(["222-222-2222", "+1 123 456 7890", "+44 7777 777777", "12"]):
        lines.append(msg("identify", "2026-03-08T10:00:00Z", userId=users[53 + i], traits={"phone": junk}))
    # 9. blocked identifiers on otherwise good messages
    lines.append(msg("identify", "2026-03-09T10:00:00Z", userId=users[57], anonymousId="undefined"))
    lines.append(order("Order Placed", "2026-03-09T11:00:00Z", "HC109-1", 7, userId="null", anonymousId="hc-anon-9"))
    lines.append(msg("identify", "2026-03-09T12:00:00Z", userId="HC-NINE", anonymousId="hc-anon-9",
                     traits={"email": "noreply@shop.example"}))
    # 10. a replay of a hard-case line
    lines.append(dict(lines[-1]))
    (out / "events" / "zz_hard_cases.jsonl").write_text("".join(json.dumps(m) + "\n" for m in lines))

    header = "customer_id,customer_name,email,phone_number,address,customer_no,site,state,county_name,zip," \
             "premise_code,status,license_classification,license_type,channel_code,channel_name," \
             "selling_division_name,consent"
    rows = [
        "HC-PHONE,Hc Phone,,415.555.0142,1 Hc St,HC1,1,WA,King,98101,on prem,active,A,X,BAR,Bar,West,yes",
        " HC-ALIASED ,Hc Aliased,hc.aliased@mail.example,,2 Hc St,HC2,1,OR,Multnomah,97201,off prem,active,B,X,GRO,"
        "Grocery,West,no",
        "HC-STATES,Hc One,,,3 Hc St,HC3,1,TX,Travis,73301,on prem,active,A,X,BAR,Bar,South,yes",
        "HC-STATES,Hc One,,,3 Hc St,HC3,1,NM,Bernalillo,87101,on prem,active,A,X,BAR,Bar,South,yes",
    ]
    (out / "customers" / "zz_hard_cases.csv").write_text(header + "\n" + "\n".join(rows) + "\n")


@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    from jobs.cli import main as cli_main

    out = tmp_path_factory.mktemp("raw") / "sample"
    assert cli_main(["generate", "--out", str(out), *GENERATE]) == 0
    plant_hard_cases(out)
    return out


@pytest.mark.slow
def test_pipeline_agrees_with_reference(make_ctx, spark, generated):
    from jobs import pipeline
    from jobs.core.config import load_config

    conf = load_config(REPO / "conf" / "local.yml")
    ctx = make_ctx(RUN_DATE, ingest=conf.ingest, identity=conf.identity, activities=conf.activities,
                   lens=conf.lens, traits=conf.traits, segments=conf.segments)
    pipeline.run_nightly(ctx, RunParams(input_dir=Path(generated), rebuild=False, rewind=False))
    root = Path(ctx.warehouse.root)

    notes = []

    def read(rel: str) -> list[dict] | None:
        if (root / rel).exists():
            return [r.asDict() for r in spark.read.format("delta").load(str(root / rel)).collect()]
        if rel in UNMATERIALIZED:  # a saved variant the nightly does not write: ask the lens directly
            import lens
            from lens.execute import warehouse_catalog

            model, query = UNMATERIALIZED[rel]
            notes.append(f"{rel} is not in lens.materialize: answered with lens.query instead")
            frame = lens.query(spark, str(REPO / model), query, D, warehouse_catalog(conf.lens.catalog, root))
            return [r.asDict() for r in frame.collect()]
        return None

    results = run_comparisons(Pipeline(read, root), generated, identity_rules())
    for note in notes:
        print("note:", note)
    print(summary(results))
    assert all(ok for ok, _ in results.values()), summary(results)
