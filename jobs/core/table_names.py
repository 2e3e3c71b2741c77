"""The public table names: each table's path under the warehouse root (interface §4).

Downstream users depend on exactly these paths. Plain strings with no imports, so configuration
loading (lens.catalog defaults) and the settings modules can read them without pyspark; code that
reads or writes tables uses them as `jobs.core.tables.<NAME>`. What each table holds, and which
stage writes it, is jobs.core.catalog.
"""
from __future__ import annotations

BRONZE_EVENTS = "bronze/events"
BRONZE_CUSTOMERS = "bronze/customers"
QUARANTINE_EVENTS = "quarantine/events"
IDENTITY_MAP = "gold/identity_map"
IDENTITY_AUDIT = "gold/identity_audit"
IDENTITY_LINEAGE = "gold/identity_lineage"
# Identity graph state (jobs.identity.stitch): evidence per identifier and per identifier pair.
IDENTITY_IDENTIFIERS = "silver/identity_identifiers"
IDENTITY_EDGES = "silver/identity_edges"
# Alias calls (jobs.identity.evidence): the claims as evidence, and the edges they resolve to now.
IDENTITY_ALIASES = "silver/identity_aliases"
IDENTITY_ALIAS_EDGES = "silver/identity_alias_edges"
# Identify and group calls without their raw JSON: what survivorship and groups read (jobs.identity.profile_calls).
PROFILE_CALLS = "silver/profile_calls"
SILVER_CUSTOMERS = "silver/customers"
ACTIVITY_STREAM = "silver/activity_stream"
# One row per customer, day and activity: the small aggregates rfm and traits read (jobs.activities.daily).
ACTIVITY_DAILY = "silver/activity_daily"
GROUPS = "gold/groups"
GROUP_MEMBERS = "gold/group_members"
GROUP_MEMBERSHIP_HISTORY = "gold/group_membership_history"
RFM = "gold/rfm"
# Retention outputs of the rfm stage (jobs.rfm.retention): gold/rfm per run, segment moves between
# runs, monthly order cohorts.
RFM_HISTORY = "gold/rfm_history"
RFM_MIGRATION = "gold/rfm_migration"
COHORT_RETENTION = "gold/cohort_retention"
TRAITS = "gold/traits"
GROUP_TRAITS = "gold/group_traits"
SEGMENT_MEMBERSHIP = "gold/segment_membership"
SEGMENT_CHANGES = "gold/segment_changes"
# Segments stage state (jobs.segments): one row per run × segment (marks a run date applied), and
# the log of what each export added and removed; export files go to <warehouse>/exports/<segment>/.
SEGMENT_RUNS = "gold/segment_runs"
SEGMENT_EXPORTS = "gold/segment_exports"
EXPORTS = "exports"
# Materialized lens queries (jobs.lens_stage.materialize): gold/lens_<name>.
LENS_PREFIX = "gold/lens_"

# The seed model's customer entity columns, in its order (interface §3): the customer master CSV
# columns ingest reads into bronze/customers, and silver/customers' columns.
CUSTOMER_COLUMNS = (
    "customer_id", "customer_name", "email", "phone_number", "address", "customer_no", "site",
    "state", "county_name", "zip", "premise_code", "status", "license_classification",
    "license_type", "channel_code", "channel_name", "selling_division_name", "consent",
)


def lens_table(name: str) -> str:
    return f"{LENS_PREFIX}{name}"
