"""c360 lens: a YAML semantic layer (model loading, validation, query planning, SQL generation)."""
