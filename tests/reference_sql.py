"""Hand-written Spark SQL for the four seed Lens questions (interface §5), independent of the planner.

Each answer reads the activity stream (and customers) directly, as the best Spark SQL we can write
by hand, as of the run date (activities before the next day; the rejections' 12 months end
earlier), and names its columns like the lens output (`entity.member`) so results compare as they
are. The tests check the saved lens queries against these; bench B2 times them side by side.
`REFERENCES` lists (name, saved query file, variant, builder); a builder takes the run date and the
names of the registered activity-stream and customers views.
"""
from __future__ import annotations

import datetime as dt
from typing import Callable, NamedTuple

ORDER_NO = "CONCAT(entity_id, '-', SPLIT_PART(TRIM(feature1), '-', 1))"
# order_value summed exactly, as the lens does (lens.planner.SUM_DECIMAL) and gold/rfm does
MONETARY = "CAST(SUM(CAST(CAST({0}feature9 AS DOUBLE) AS DECIMAL(38, 9))) AS DOUBLE)"


def _as_of(run_date: dt.date, alias: str = "") -> str:
    """As of D (interface §5): activities before the day after the run date."""
    return f"{alias}activity_ts < TIMESTAMP'{run_date + dt.timedelta(days=1)} 00:00:00'"


def _month_start(day: dt.date, months_back: int = 0) -> dt.date:
    index = day.year * 12 + day.month - 1 - months_back
    return dt.date(index // 12, index % 12 + 1, 1)


def rfm(run_date: dt.date, activity_stream: str, customers: str) -> str:
    """recency_days, frequency, monetary per customer (entity_id) with at least one order placed."""
    return f"""
        SELECT entity_id AS `order_placed.entity_id`,
               MIN(DATEDIFF(DATE'{run_date}', TO_DATE(activity_ts))) AS `order_placed.recency_days`,
               COUNT(DISTINCT {ORDER_NO}) AS `order_placed.frequency`,
               {MONETARY.format("")} AS `order_placed.monetary`
        FROM {activity_stream}
        WHERE activity = 'order_placed' AND entity_id IS NOT NULL AND {_as_of(run_date)}
        GROUP BY entity_id"""


def _outcome_columns(group: str = "") -> str:
    """Pivot per-activity distinct-order counts into the lens's five order-outcome columns."""
    count = "COALESCE(MAX(CASE WHEN activity = '{0}' THEN orders END), 0)"
    placed, rejected, invoiced = (count.format(a) for a in ("order_placed", "order_rejected", "order_invoiced"))
    return f"""{group}
               {placed} AS `order_placed.frequency`,
               {rejected} AS `order_rejected.frequency`,
               {invoiced} AS `order_invoiced.frequency`,
               100 * CAST({rejected} AS DOUBLE) / NULLIF({placed}, 0) AS `order_placed.percentage_rejected`,
               100 * CAST({invoiced} AS DOUBLE) / NULLIF({placed}, 0) AS `order_placed.percentage_invoiced`"""


OUTCOMES = "activity IN ('order_placed', 'order_rejected', 'order_invoiced')"


def order_outcomes(run_date: dt.date, activity_stream: str, customers: str) -> str:
    """% of distinct orders placed that have a rejected / an invoiced line, overall."""
    return f"""
        WITH counts AS (
          SELECT activity, COUNT(DISTINCT {ORDER_NO}) AS orders
          FROM {activity_stream} WHERE {OUTCOMES} AND {_as_of(run_date)} GROUP BY activity)
        SELECT {_outcome_columns()}
        FROM counts"""


def order_outcomes_by_state(run_date: dt.date, activity_stream: str, customers: str) -> str:
    """The same per customer state (each order line's customer: its entity_id)."""
    return f"""
        WITH counts AS (
          SELECT c.state, a.activity,
                 COUNT(DISTINCT CONCAT(a.entity_id, '-', SPLIT_PART(TRIM(a.feature1), '-', 1))) AS orders
          FROM {activity_stream} a LEFT JOIN {customers} c ON a.entity_id = c.customer_id
          WHERE a.{OUTCOMES} AND {_as_of(run_date, "a.")}
          GROUP BY c.state, a.activity)
        SELECT {_outcome_columns("state AS `customer.state`,")}
        FROM counts GROUP BY state ORDER BY state NULLS LAST"""


def order_outcomes_by_product_category(run_date: dt.date, activity_stream: str, customers: str) -> str:
    """The same per product category of the placed line (rejections/invoices reach it by order_id)."""
    return f"""
        WITH placed AS (
          SELECT TRIM(feature1) AS order_id, TRIM(feature5) AS category, {ORDER_NO} AS order_no
          FROM {activity_stream} WHERE activity = 'order_placed' AND {_as_of(run_date)}),
        outcomes AS (
          SELECT activity, TRIM(feature1) AS ref_order_id, {ORDER_NO} AS order_no
          FROM {activity_stream} WHERE activity IN ('order_rejected', 'order_invoiced') AND {_as_of(run_date)}),
        lines AS (
          SELECT 'order_placed' AS activity, category, order_no FROM placed
          UNION ALL
          SELECT o.activity, p.category, o.order_no FROM outcomes o LEFT JOIN placed p ON o.ref_order_id = p.order_id),
        counts AS (
          SELECT category, activity, COUNT(DISTINCT order_no) AS orders FROM lines GROUP BY category, activity)
        SELECT {_outcome_columns("category AS `order_placed.product_category`,")}
        FROM counts GROUP BY category ORDER BY category NULLS LAST"""


def days_to_invoice(run_date: dt.date, activity_stream: str, customers: str) -> str:
    """Mean of datediff(date(invoiced ts), date(placed ts)) over placed lines joined to their invoices."""
    return f"""
        SELECT AVG(DATEDIFF(TO_DATE(i.activity_ts), TO_DATE(p.activity_ts))) AS `invoice_lag.average_days_to_invoice`
        FROM {activity_stream} p
        JOIN {activity_stream} i ON TRIM(p.feature1) = TRIM(i.feature1)
        WHERE p.activity = 'order_placed' AND i.activity = 'order_invoiced'
          AND {_as_of(run_date, "p.")} AND {_as_of(run_date, "i.")}"""


def rejections_above_average(run_date: dt.date, activity_stream: str, customers: str) -> str:
    """Customers with more rejected orders last month than their monthly average of the 12 months before."""
    this_month, last_month, year_ago = _month_start(run_date), _month_start(run_date, 1), _month_start(run_date, 12)
    return f"""
        WITH per_order AS (
          SELECT entity_id, {ORDER_NO} AS order_no,
                 MAX(activity_ts >= TIMESTAMP'{last_month} 00:00:00') AS in_last_month
          FROM {activity_stream}
          WHERE activity = 'order_rejected' AND entity_id IS NOT NULL AND feature1 IS NOT NULL
            AND activity_ts >= TIMESTAMP'{year_ago} 00:00:00' AND activity_ts < TIMESTAMP'{this_month} 00:00:00'
          GROUP BY entity_id, {ORDER_NO}),
        per_customer AS (
          SELECT entity_id, COUNT_IF(in_last_month) AS last_month, COUNT(*) AS last_year
          FROM per_order GROUP BY entity_id)
        SELECT entity_id AS `order_rejected.entity_id`,
               last_month AS `order_rejected.rejected_orders_last_month`,
               CAST(last_year AS DOUBLE) / 12 AS `order_rejected.monthly_average_rejected_orders`
        FROM per_customer
        WHERE last_month * 12 > last_year
        ORDER BY entity_id"""


def seed_rfm(run_date: dt.date, activity_stream: str, customers: str) -> str:
    """The seed model's own RFM per customer.customer_id, with Trino's meaning of its recency:
    day(current_date - activity_ts) = whole days from ts to the run date's midnight, truncated."""
    return f"""
        SELECT c.customer_id AS `customer.customer_id`,
               MIN((UNIX_SECONDS(TIMESTAMP'{run_date} 00:00:00') - UNIX_SECONDS(a.activity_ts)) DIV 86400)
                 AS `order_placed.recency`,
               COUNT(DISTINCT CONCAT(a.entity_id, '-', SPLIT_PART(TRIM(a.feature1), '-', 1))) AS `order_placed.frequency`,
               {MONETARY.format("a.")} AS `order_placed.monetary`
        FROM {activity_stream} a LEFT JOIN {customers} c ON a.entity_id = c.customer_id
        WHERE a.activity = 'order_placed' AND {_as_of(run_date, "a.")}
        GROUP BY c.customer_id"""


class Reference(NamedTuple):
    name: str
    query_file: str          # relative to the repo root
    variant: str | None
    sql: Callable[[dt.date, str, str], str]


REFERENCES: tuple[Reference, ...] = (
    Reference("rfm", "lens/queries/rfm.yml", None, rfm),
    Reference("order_outcomes", "lens/queries/order_outcomes.yml", None, order_outcomes),
    Reference("order_outcomes_by_state", "lens/queries/order_outcomes.yml", "by_state", order_outcomes_by_state),
    Reference("order_outcomes_by_product_category", "lens/queries/order_outcomes.yml", "by_product_category",
              order_outcomes_by_product_category),
    Reference("days_to_invoice", "lens/queries/days_to_invoice.yml", None, days_to_invoice),
    Reference("rejections_above_average", "lens/queries/rejections_above_average.yml", None, rejections_above_average),
)
