"""Names of the order metrics (no imports, so config loading can use them without pyspark); their
definitions are jobs.metrics."""
ORDER_PLACED = "order_placed"
ORDER_REJECTED = "order_rejected"
ORDER_INVOICED = "order_invoiced"
ORDER_NO = "order_no"
ORDER_ID = "order_id"
DERIVED_VALUE_NAMES = (ORDER_NO, ORDER_ID)
