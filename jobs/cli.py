"""`c360` command line: one sub-command per stage, shared options, errors a person can act on.

Also the spark-submit entry point: `spark-submit --py-files dist/c360.zip jobs/cli.py <stage> ...`.
"""
from __future__ import annotations

import argparse
import datetime as dt
import importlib
import os
import sys
import time
from pathlib import Path

# Sub-command -> module. Each module defines HELP, NEEDS_SPARK, add_arguments(parser) and
# run(ctx, args) -> StageResult | None.
COMMANDS: dict[str, str] = {
    "generate": "jobs.generate",
    "ingest": "jobs.ingest",
    "stitch": "jobs.stitch",
    "identity": "jobs.identity_cli",
    "activities": "jobs.activities",
    "groups": "jobs.groups",
    "segments": "jobs.segments",
    "nightly": "jobs.nightly",
    "lens": "jobs.lens_cli",
    "lens-materialize": "jobs.lens_materialize",
    "rfm": "jobs.rfm",
    "traits": "jobs.traits",
}

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2


def _run_date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--run-date must be YYYY-MM-DD, got {text!r}") from None


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None, help="configuration file (default: conf/local.yml)")
    common.add_argument("--warehouse", default=None, help="warehouse root (overrides the config)")
    common.add_argument(
        "--run-date", type=_run_date, default=None,
        help="logical date of the run, YYYY-MM-DD (default: today in UTC)",
    )
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(prog="c360", description="Customer 360 on Spark and Delta Lake.")
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, module_name in COMMANDS.items():
        module = importlib.import_module(module_name)
        sub = subs.add_parser(name, parents=[common], help=module.HELP, description=module.HELP)
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def make_context(args: argparse.Namespace):
    from jobs.config import load_config
    from jobs.context import JobContext

    from jobs.errors import ConfigError

    overrides = {"warehouse": args.warehouse} if args.warehouse else None
    config = load_config(args.config, overrides=overrides)
    root = config.warehouse_path()
    if root.exists() and not root.is_dir():
        where = "--warehouse" if args.warehouse else f"'warehouse' in {config.source}"
        raise ConfigError(f"the warehouse {root} ({where}) is a file, not a folder")
    run_date = args.run_date or dt.datetime.now(dt.timezone.utc).date()
    return JobContext(config=config, run_date=run_date)


def format_result(name: str, result) -> str:
    parts = [f"{k}={v:,}" if isinstance(v, int) else f"{k}={v}" for k, v in result.metrics.items()]
    line = f"{name}: " + (", ".join(parts) if parts else "done")
    return "\n".join([line, *(f"  note: {n}" for n in result.notes)])


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "desc", None) or exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "JVM stacktrace", "Traceback")):
            return line[:500]
    return type(exc).__name__


def main(argv: list[str] | None = None) -> int:
    from jobs.errors import C360Error

    parser = build_parser()
    args = parser.parse_args(argv)
    module = args._module
    log_file: Path | None = None
    ctx = None
    started = time.monotonic()
    try:
        ctx = make_context(args)
        if getattr(module, "NEEDS_SPARK", True):
            from jobs.console import divert_jvm_output
            from jobs.session import LOG_FILE_ENV

            log_file = ctx.warehouse.root / "_logs" / f"{args.command}-{ctx.run_date}.log"
            divert_jvm_output(log_file)
            # Spark's log4j writes here too (conf/log4j2.properties; jobs.session routes it).
            os.environ[LOG_FILE_ENV] = str(log_file)
        result = module.run(ctx, args)
        if result is not None and args.command != "nightly":
            result.seconds = round(time.monotonic() - started, 1)
            print(format_result(args.command, result))
        return EXIT_OK
    except C360Error as exc:
        print(f"c360 {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"c360 {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # Spark/JVM failures: one line here, the whole trace in the log
        where = f" (full details in {log_file})" if log_file else ""
        print(f"c360 {args.command}: failed: {_first_line(exc)}{where}", file=sys.stderr)
        if log_file is not None:
            import traceback

            with open(log_file, "a") as fh:
                traceback.print_exc(file=fh)
        return EXIT_FAILED
    finally:
        if ctx is not None and ctx.has_spark:
            ctx.spark.stop()


if __name__ == "__main__":
    sys.exit(main())
