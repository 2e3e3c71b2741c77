"""An independent plain-Python reference implementation of the c360 contract (no Spark)."""
