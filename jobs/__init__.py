"""c360 batch jobs: one module per pipeline stage, shared plumbing in config/session/tables."""
