"""The `lens:` config section: catalog mapping (model table -> Delta table), dialect, materializations.

Validated at load by `jobs.core.config.build_section` (an unknown key or bad value is a ConfigError naming
the file and dotted key). This module must not import jobs.core.config (which imports it).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

# Repo root: relative model/query paths in the config are the repo's own files (lens/...).
LENS_ROOT = Path(__file__).resolve().parents[2]
TABLE_NAME = re.compile(r"^[a-z_][a-z0-9_]*(\.[a-z_][a-z0-9_]*){0,2}$")
SNAKE_CASE = re.compile(r"^[a-z][a-z0-9_]*$")
COLUMN_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def default_catalog() -> dict[str, str]:
    """The seed DataOS model's tables, mapped onto our warehouse so it runs unmodified."""
    from jobs.core import table_names as tables

    return {
        "icebase.audience.activity_streams_large_data": tables.ACTIVITY_STREAM,
        "icebase.audience.customers_large_data": tables.SILVER_CUSTOMERS,
        # the rfm stage's tables (lens/customer_360.yml's rfm entities)
        "c360.gold.rfm": tables.RFM,
        "c360.gold.rfm_history": tables.RFM_HISTORY,
        "c360.gold.rfm_migration": tables.RFM_MIGRATION,
        "c360.gold.cohort_retention": tables.COHORT_RETENTION,
    }


def default_as_of() -> dict[str, str]:
    """Warehouse tables whose rows happen at a time: the activity stream, by activity_ts (the lens
    library's own default, so `lens.query` and the nightly cut the same table)."""
    from lens.defaults import DEFAULT_AS_OF

    return dict(DEFAULT_AS_OF)


@dataclass(frozen=True)
class LensMaterialization:
    """One saved query the nightly writes to gold/lens_<name>."""

    name: str
    query: str
    model: str = "lens/customer_360.yml"
    variant: str | None = None

    def validate(self, key: str) -> None:
        if not SNAKE_CASE.match(self.name):
            raise ValueError(f"'{key}.name' must be a snake_case name (it names gold/lens_<name>), got {self.name!r}")

    def model_path(self) -> Path:
        return resolve_repo_path(self.model)

    def query_path(self) -> Path:
        return resolve_repo_path(self.query)


@dataclass(frozen=True)
class LensSettings:
    # model table name (as written in entity sql.query, lower case) -> warehouse table
    # (a path under the warehouse root such as silver/customers, or an absolute path / URI)
    catalog: dict[str, str] = field(default_factory=default_catalog)
    # dialect of models that do not say `dialect:` (DataOS Lens models are written for Trino)
    dialect: str = "trino"
    materialize: list[LensMaterialization] = field(default_factory=list)
    # warehouse table (as in `catalog`) -> its time column: every lens query reads only the rows
    # with time < the day after the run date (interface §5: "as of D" ignores later activities)
    as_of: dict[str, str] = field(default_factory=default_as_of)

    def validate(self, key: str) -> None:
        for table, column in self.as_of.items():
            if not isinstance(column, str) or not COLUMN_NAME.match(column):
                raise ValueError(f"'{key}.as_of.{table}' must be a column name (e.g. activity_ts), got {column!r}")
        for table, target in self.catalog.items():
            if not TABLE_NAME.match(table):
                raise ValueError(f"'{key}.catalog.{table}' must be a lower-case table name like catalog.schema.table")
            if not target.strip():
                raise ValueError(f"'{key}.catalog.{table}' must name a warehouse table (e.g. silver/customers)")
        from sqlglot.dialects.dialect import Dialect

        try:
            Dialect.get_or_raise(self.dialect)
        except ValueError:
            raise ValueError(f"'{key}.dialect' is not a SQL dialect sqlglot knows: {self.dialect!r}") from None
        names = [m.name for m in self.materialize]
        repeated = next((n for n in names if names.count(n) > 1), None)
        if repeated:
            raise ValueError(f"'{key}.materialize' lists the name {repeated!r} twice")


def resolve_repo_path(value: str | Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else LENS_ROOT / path
