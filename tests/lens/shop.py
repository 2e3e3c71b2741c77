"""A textbook model for fan-out and chasm traps: customers 1:N orders, customers 1:N returns.

Customer A has 3 orders and 2 returns, so a naive customers-orders-returns join repeats each of A's
orders twice and each return three times (revenue 120 instead of 60, refunds 30 instead of 10).
"""
from __future__ import annotations

from pathlib import Path

SHOP_MODEL = """
name: shop
entities:
  - name: customers
    sql:
      query: SELECT * FROM shop.customers
      columns: [{name: customer_id}, {name: region}, {name: credit_limit}]
    fields:
      - {name: customer_id, type: string, column: customer_id, primary: true}
      - {name: region, type: string, column: region}
      - {name: credit_limit, type: number, column: credit_limit}
    measures:
      - {name: count_customers, type: count}
      - {name: total_credit, type: sum, sql_snippet: "${customers.credit_limit}"}
      - {name: customers_per_order, type: number, sql_snippet: "${customers.count_customers} / nullif(${orders.order_count}, 0)"}
    relationships:
      - {type: 1:N, field: customer_id, target: {name: orders, field: customer_id}}
      - {type: 1:N, field: customer_id, target: {name: returns, field: customer_id}}
  - name: orders
    sql:
      query: SELECT * FROM shop.orders
      columns: [{name: order_id}, {name: customer_id}, {name: product}, {name: amount}, {name: ordered_at}]
    fields:
      - {name: order_id, type: string, column: order_id, primary: true}
      - {name: customer_id, type: string, column: customer_id}
      - {name: product, type: string, column: product}
      - {name: amount, type: number, column: amount}
      - {name: ordered_at, type: time, column: ordered_at}
    measures:
      - {name: order_count, type: count}
      - {name: revenue, type: sum, sql_snippet: "${orders.amount}"}
  - name: returns
    sql:
      query: SELECT * FROM shop.returns
      columns: [{name: return_id}, {name: customer_id}, {name: refund}]
    fields:
      - {name: return_id, type: string, column: return_id, primary: true}
      - {name: customer_id, type: string, column: customer_id}
      - {name: refund, type: number, column: refund}
    measures:
      - {name: refund_total, type: sum, sql_snippet: "${returns.refund}"}
"""

CUSTOMERS = [("A", "west", 100.0), ("B", "west", 50.0), ("C", "east", 70.0)]
ORDERS = [
    ("o1", "A", "p1", 10.0, "2026-01-05 10:00:00"),
    ("o2", "A", "p2", 20.0, "2026-01-20 23:30:00"),
    ("o3", "A", "p1", 30.0, "2026-02-02 08:00:00"),
    ("o4", "B", "p1", 5.0, "2026-02-10 12:00:00"),
]
RETURNS = [("r1", "A", 4.0), ("r2", "A", 6.0), ("r3", "C", 1.0)]
VIEWS = {"shop.customers": "shop_customers", "shop.orders": "shop_orders", "shop.returns": "shop_returns"}


def write_shop_model(folder: Path) -> Path:
    path = folder / "shop.yml"
    path.write_text(SHOP_MODEL)
    return path
