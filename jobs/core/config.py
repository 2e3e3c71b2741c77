"""Configuration: YAML under conf/, validated at load into frozen dataclasses.

Every section is a dataclass; `load_config` walks the YAML against the dataclass fields, so an
unknown or mistyped key, or a value of the wrong type, is a ConfigError that names the file and the
dotted key (with a suggestion for typos). Environment differences (local vs cluster) are config.
A section may define `validate(self, key: str) -> None` for checks beyond types.
"""
from __future__ import annotations

import dataclasses
import difflib
import hashlib
import importlib.resources
import os
import tempfile
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from urllib.parse import urlparse
from typing import Any

import yaml

from jobs.activities.settings import ActivitySettings
from jobs.core import storage
from jobs.core.errors import ConfigError
from jobs.groups.settings import GroupSettings
from jobs.identity.settings import IdentitySettings
from jobs.rfm.settings import RfmSettings
from jobs.traits.settings import TraitSettings
from jobs.segments.settings import SegmentSettings
from jobs.lens_stage.settings import LensSettings

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_CONFIG_NAME = "conf/local.yml"
DEFAULT_CONFIG = REPO_ROOT / DEFAULT_CONFIG_NAME


# ----------------------------------------------------------------------------------------------
# Files shipped with the code (lens models, saved queries, conf/). In a checkout they are plain
# files under REPO_ROOT; under `spark-submit --py-files dist/c360.zip` the packages are imported
# from the zip, REPO_ROOT is the zip itself, and these files are members of it.
# ----------------------------------------------------------------------------------------------


def packaged_file(relative: str | PurePosixPath) -> Path | None:
    """A file shipped with the c360 packages, as a path on disk, or None if there is none.

    `relative` is the file's path in the repo (e.g. "lens/queries/rfm.yml"). From a checkout this is
    the file itself. From the --py-files zip it is read through importlib.resources and copied once,
    by content, to a cache folder, so readers that open paths work unchanged."""
    parts = PurePosixPath(relative).parts
    if not parts or parts[0] in ("/", "..") or ".." in parts:
        return None
    resource = importlib.resources.files("jobs").parent.joinpath(*parts)
    if not resource.is_file():
        return None
    if isinstance(resource, Path):
        return resource
    data = resource.read_bytes()
    digest = hashlib.sha256(data).hexdigest()[:16]
    out = Path(tempfile.gettempdir()) / f"c360-packaged-{digest}" / Path(*parts)
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_name(f".{out.name}.{os.getpid()}")
        partial.write_bytes(data)
        os.replace(partial, out)  # atomic: concurrent runs never read a half-written file
    return out


def locate_file(value: str) -> str:
    """A file named in config, found on disk: an absolute path as is; a relative one under the
    repo (a checkout), else shipped in the packages (the --py-files zip), else under the current
    directory (a user's own file next to where spark-submit runs). Unfound, it stays as written,
    for the reader to report."""
    path = Path(value).expanduser()
    if path.is_absolute() or (REPO_ROOT / path).is_file():
        return value
    packaged = packaged_file(PurePosixPath(path.as_posix()))
    if packaged is not None:
        return str(packaged)
    here = Path.cwd() / path
    return str(here.resolve()) if here.is_file() else value


def default_config_file() -> Path:
    """conf/local.yml of the checkout; under spark-submit, the one in the current directory or the zip."""
    if DEFAULT_CONFIG.is_file():
        return DEFAULT_CONFIG
    here = Path.cwd() / DEFAULT_CONFIG_NAME
    if here.is_file():
        return here
    return packaged_file(DEFAULT_CONFIG_NAME) or DEFAULT_CONFIG


# ----------------------------------------------------------------------------------------------
# Sections. Each stage owns its section; keep defaults usable so a minimal file works. A default is
# written once, in its dataclass: conf/*.yml set only what differs (tests/jobs/test_config.py).
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SparkSettings:
    """How to build the SparkSession. `master: null` leaves it to spark-submit."""

    master: str | None = "local[*]"
    app_name: str = "c360"
    # Local mode on a few cores: a few shuffle partitions beat Spark's default 200 by a wide margin.
    shuffle_partitions: int = 4
    driver_memory: str | None = None
    # Folder of jars resolved at set-up (jvm/jars.lock); relative paths are under the repo.
    jars_dir: str | None = ".jars"
    # Opt-in for cluster users: Maven coordinates resolved by Spark at session start (needs network).
    packages: list[str] = field(default_factory=list)
    # Any other Spark property, passed through as is.
    conf: dict[str, str] = field(default_factory=dict)
    # A Spark Connect server (sc://host:port, e.g. one `c360 serve` runs): the read-only commands
    # (lens query, segments preview, identity explain) ask it instead of starting Spark.
    remote: str | None = None
    # How many independent Spark jobs of one stage (writes of different tables: the lens queries,
    # customer and group traits) run at once (jobs.core.session.concurrently). Each one's planning,
    # Delta log reads and commit leave the executors idle, which another's tasks then fill; 1: one
    # after another.
    concurrent_jobs: int = 3

    def validate(self, key: str) -> None:
        if self.shuffle_partitions < 1:
            raise ValueError(f"'{key}.shuffle_partitions' must be at least 1")
        if self.concurrent_jobs < 1:
            raise ValueError(f"'{key}.concurrent_jobs' must be at least 1")
        if self.remote is not None:
            connect_address(self.remote, f"{key}.remote")


# Spark Connect's own default port.
CONNECT_DEFAULT_PORT = 15002
# The read commands' --remote option (jobs.cli, jobs.commands.lens).
REMOTE_METAVAR = "sc://HOST:PORT"
REMOTE_HELP = ("ask this Spark Connect server (e.g. `c360 serve`) instead of starting Spark "
               "(overrides spark.remote; read-only commands only)")


def connect_address(url: str, key: str = "spark.remote") -> tuple[str, int]:
    """(host, port) of a Spark Connect URL `sc://host[:port][/;params]`; a ValueError naming `key`
    for anything else."""
    parsed = urlparse(url)
    try:
        port = parsed.port or CONNECT_DEFAULT_PORT
    except ValueError:
        port = None
    if parsed.scheme != "sc" or not parsed.hostname or port is None:
        raise ValueError(f"'{key}' must be a Spark Connect URL such as sc://localhost:{CONNECT_DEFAULT_PORT}, got {url!r}")
    return parsed.hostname, port


@dataclass(frozen=True)
class IngestSettings:
    """Where raw input lives below `--input DIR`, and how much bad input is tolerable."""

    events_glob: str = "events"
    customers_glob: str = "customers"
    # Share of quarantined lines above which the run still completes but the summary warns.
    warn_quarantine_ratio: float = 0.05
    # A night's event files up to this size are kept in memory while they land; a bigger input is
    # kept on local disk (jobs.ingest.stage.landing_storage), so it cannot exhaust the heap.
    memory_cache_max_mb: int = 1024
    # After the first night, an event timestamped more than this many days before the run date is
    # quarantined as too_late instead of rewriting old history (jobs.ingest.inputs); null: any age.
    late_window_days: int | None = None

    def validate(self, key: str) -> None:
        if self.memory_cache_max_mb < 0:
            raise ValueError(f"'{key}.memory_cache_max_mb' must be 0 or more (MB; 0 keeps every input on disk)")
        if self.late_window_days is not None and self.late_window_days < 0:
            raise ValueError(f"'{key}.late_window_days' must be 0 or more days, or null for no limit")


# Delta's own minimum for VACUUM (spark.databricks.delta.retentionDurationCheck): 7 days.
MIN_VACUUM_RETAIN_HOURS = 168


@dataclass(frozen=True)
class MaintainSettings:
    """`c360 maintain` (jobs.commands.maintain)."""

    # Files no table version of the last this-many hours reads are deleted by VACUUM.
    vacuum_retain_hours: int = MIN_VACUUM_RETAIN_HOURS

    def validate(self, key: str) -> None:
        if self.vacuum_retain_hours < MIN_VACUUM_RETAIN_HOURS:
            raise ValueError(
                f"'{key}.vacuum_retain_hours' must be at least {MIN_VACUUM_RETAIN_HOURS} (7 days): a shorter "
                "retention deletes files that a running nightly or a reader of an earlier version still reads")


@dataclass(frozen=True)
class Config:
    warehouse: str = "warehouse"
    spark: SparkSettings = field(default_factory=SparkSettings)
    ingest: IngestSettings = field(default_factory=IngestSettings)
    # Sections owned by later stages; their schemas live in the stage modules' config classes.
    identity: IdentitySettings = field(default_factory=IdentitySettings)
    activities: ActivitySettings = field(default_factory=ActivitySettings)
    groups: GroupSettings = field(default_factory=GroupSettings)
    lens: LensSettings = field(default_factory=LensSettings)
    rfm: RfmSettings = field(default_factory=RfmSettings)
    traits: TraitSettings = field(default_factory=TraitSettings)
    segments: SegmentSettings = field(default_factory=SegmentSettings)
    maintain: MaintainSettings = field(default_factory=MaintainSettings)
    source: str = "<defaults>"

    def warehouse_location(self) -> str:
        """The warehouse as Spark and Hadoop read it: a URI (file:, hdfs:, s3a:, ...) as written,
        a plain path made absolute (jobs.core.storage)."""
        return self.warehouse if storage.scheme(self.warehouse) else str(resolve_path(self.warehouse))


def resolve_path(value: str | Path) -> Path:
    """Relative paths in config are relative to the repo root, so commands work from any cwd."""
    path = Path(value).expanduser()
    return path if path.is_absolute() else (Path.cwd() / path).resolve()


# ----------------------------------------------------------------------------------------------
# Loading and validation
# ----------------------------------------------------------------------------------------------


def load_config(path: str | Path | None = None, *, overrides: dict[str, Any] | None = None) -> Config:
    """Load and validate a config file; `overrides` replace top-level keys (e.g. warehouse)."""
    file = Path(path) if path is not None else default_config_file()
    if not file.is_file():
        raise ConfigError(f"configuration file {file} does not exist (pass --config FILE)")
    try:
        data = yaml.safe_load(file.read_text()) or {}
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(f"{file}: not valid YAML{where}: {getattr(exc, 'problem', exc)}") from None
    except OSError as exc:
        raise ConfigError(f"{file}: cannot be read: {exc.strerror}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: the top level must be a mapping of sections")
    data = {**data, **(overrides or {})}
    data.pop("source", None)
    cfg = build_section(Config, data, key="", file=str(file))
    return dataclasses.replace(cfg, source=str(file), lens=_locate_lens_files(cfg.lens))


def _locate_lens_files(lens: LensSettings) -> LensSettings:
    """lens.materialize models and queries as files on disk (see locate_file)."""
    items = [dataclasses.replace(m, model=locate_file(m.model), query=locate_file(m.query)) for m in lens.materialize]
    return dataclasses.replace(lens, materialize=items)


def build_section(cls: type, data: Any, *, key: str, file: str) -> Any:
    """Build dataclass `cls` from `data`, naming `file` and the dotted `key` in every error."""
    where = f"'{key}'" if key else "the top level"
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError(f"{file}: {where} must be a mapping, got {type(data).__name__}")
    hints = typing.get_type_hints(cls)
    names = [f.name for f in dataclasses.fields(cls) if f.init and f.name != "source"]
    for name in data:
        if name not in names:
            near = difflib.get_close_matches(str(name), names, n=1)
            hint = f" (did you mean '{_join(key, near[0])}'?)" if near else f" (known keys: {', '.join(names)})"
            raise ConfigError(f"{file}: unknown key '{_join(key, name)}'{hint}")
    kwargs = {name: _coerce(hints[name], data[name], key=_join(key, name), file=file) for name in names if name in data}
    try:
        obj = cls(**kwargs)
        if hasattr(obj, "validate"):
            obj.validate(key or cls.__name__)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{file}: {exc}") from None
    return obj


def _join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else str(name)


def _coerce(tp: Any, value: Any, *, key: str, file: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, key=key, file=file)
    if dataclasses.is_dataclass(tp):
        return build_section(tp, value, key=key, file=file)
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{file}: '{key}' must be one of {', '.join(map(repr, args))}, got {value!r}")
        return value
    if origin is list:
        if not isinstance(value, list):
            raise ConfigError(f"{file}: '{key}' must be a list, got {type(value).__name__}")
        return [_coerce(args[0], v, key=f"{key}[{i}]", file=file) for i, v in enumerate(value)] if args else value
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{file}: '{key}' must be a mapping, got {type(value).__name__}")
        if not args:
            return value
        return {str(k): _coerce(args[1], v, key=f"{key}.{k}", file=file) for k, v in value.items()}
    if tp is Any:
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{file}: '{key}' must be true or false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{file}: '{key}' must be a whole number, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{file}: '{key}' must be a number, got {value!r}")
        return float(value)
    if tp is str:
        # Spark properties are often written as numbers or booleans in YAML; keep them as text.
        if isinstance(value, (str, int, float, bool)):
            return str(value).lower() if isinstance(value, bool) else str(value)
        raise ConfigError(f"{file}: '{key}' must be text, got {type(value).__name__}")
    return value
