"""`c360` command line: the one place that parses arguments and prints.

A sub-command per pipeline stage (jobs.pipeline.STAGES), plus `nightly` (every nightly stage in
order), `generate` (test data), `identity explain` and `lens query|sql`. Options become a RunParams
for the stages; results come back as StageResult and are printed here. Errors a person can act on
print one paragraph and exit 2; anything else prints one line and leaves the trace in the log.

Also the spark-submit entry point: `spark-submit --py-files dist/c360.zip jobs/cli.py <stage> ...`.
"""
from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from generator import cli as generator_cli  # pyspark-free, like the registry
from jobs import pipeline  # pyspark-free: a stage's module loads when it runs
from jobs.core.config import REMOTE_HELP, REMOTE_METAVAR
from jobs.core.context import RunParams

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_BAD_INPUT = 2
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, what a shell reports for a writer whose reader left
PREVIEW = "preview"
EXPLAIN = "explain"


def run_date_arg(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--run-date must be YYYY-MM-DD, got {text!r}") from None


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--config", default=None, help="configuration file (default: conf/local.yml)")
    common.add_argument("--warehouse", default=None, help="warehouse root (overrides the config)")
    common.add_argument(
        "--run-date", type=run_date_arg, default=None,
        help="logical date of the run, YYYY-MM-DD (default: today in UTC)",
    )
    return common


# ----------------------------------------------------------------------------------------------
# Commands: options, and what runs. A handler returns a StageResult to print, or None.
# ----------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Command:
    name: str
    help: str
    add_arguments: Callable[[argparse.ArgumentParser], None]
    handle: Callable  # (ctx, args) -> StageResult | None
    needs_spark: bool = True
    writes: bool = False  # holds the warehouse's lease while it runs (jobs.core.lock)


def _no_options(parser: argparse.ArgumentParser) -> None:
    """The stage takes only the shared options (--config, --warehouse, --run-date)."""


def _input_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="raw input folder with events/ and customers/")


def _rebuild_option(what: str) -> Callable[[argparse.ArgumentParser], None]:
    def add(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--full", action="store_true", help=what)
    return add


def _params(args: argparse.Namespace) -> RunParams:
    """The stage parameters the parsed options stand for. `--full` rebuilds derived tables from all
    history and, for segments, accepts a run date before the last applied one (rewinding history)."""
    full = bool(getattr(args, "full", False))
    raw = getattr(args, "input", None)
    return RunParams(input_dir=raw or None, rebuild=full, rewind=full, resend=tuple(getattr(args, "resend", None) or ()))


def _resend_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--resend", action="append", default=None, metavar="SEGMENT",
                        help="send this exported segment's file as the complete list of its ids today, which the "
                             "receiver processes like a new segment (a full refresh; repeatable)")


def _run_stage(name: str):
    def handle(ctx, args):
        return pipeline.stage(name).run(ctx, _params(args))
    return handle


def _segments_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=[PREVIEW],
                        help="preview NAME: print the member count and a sample; writes nothing")
    parser.add_argument("name", nargs="?", metavar="NAME", help="the segment to preview")
    parser.add_argument("--rows", type=int, default=None,
                        help="preview: members to print (default: segments.preview_rows)")
    parser.add_argument("--full", action="store_true",
                        help="accept a run date earlier than the last applied one: rewind segment history to it")
    _resend_option(parser)


def _segments(ctx, args):
    from jobs.core.errors import ConfigError
    from jobs.segments import stage as segments

    if args.action == PREVIEW:
        print(segments.preview(ctx, args.name, args.rows))
        return None
    if args.name:
        raise ConfigError(f"unexpected {args.name!r}: use `c360 segments` or `c360 segments preview NAME`")
    return pipeline.stage("segments").run(ctx, _params(args))


def _materialize_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", action="append", default=None, help="only this materialization (repeatable)")


def _materialize(ctx, args):
    return pipeline.stage("lens-materialize").run(ctx, _params(args), names=tuple(args.name or ()))


def _nightly_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--input", required=True, help="raw input folder (events/, customers/)")
    parser.add_argument("--full", action="store_true", help="rebuild derived tables instead of incremental")
    _resend_option(parser)


def _nightly(ctx, args):
    report = pipeline.run_nightly(ctx, _params(args), progress=lambda line: print(line, flush=True))
    print(pipeline.summary_text(report, pipeline.report_path(ctx), pipeline.report_path(ctx, pipeline.REPORT_HTML)),
          flush=True)
    return None


def _identity_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", choices=(EXPLAIN,), help="explain: the chain of evidence linking two identifiers")
    parser.add_argument("identifiers", nargs=2, metavar="ID", help="type:value, or a plain value (any type)")


def _identity(ctx, args):
    from jobs.identity.explain import explain

    for line in explain(ctx, *args.identifiers):
        print(line)
    return None


def _lens_options(parser: argparse.ArgumentParser) -> None:
    from jobs.commands import lens

    lens.add_arguments(parser, run_date_arg)


def _lens(ctx, args):
    from jobs.commands import lens

    return lens.run(ctx, args)


def _generate_options(parser: argparse.ArgumentParser) -> None:
    generator_cli.add_arguments(parser)


def _generate(ctx, args):
    return generator_cli.run(ctx, args)


def _unlock_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--force", action="store_true", help="clear the lease (only when no c360 run is writing)")


def _unlock(ctx, args):
    from jobs.core import lock
    from jobs.core.errors import C360Error

    found = lock.holders(ctx.spark, ctx.warehouse)
    if not found:
        print(f"c360 unlock: {ctx.warehouse.root} is not locked", flush=True)
        return None
    if not args.force:
        raise C360Error(f"{ctx.warehouse.root} is held by {found[0].describe()}; add --force to clear the "
                        "lease (only when that run is no longer writing)")
    lock.force_unlock(ctx.spark, ctx.warehouse)
    print(f"c360 unlock: cleared the lease of {found[0].describe()} on {ctx.warehouse.root}", flush=True)
    return None


def _maintain(ctx, args):
    from jobs.commands.maintain import maintain

    return maintain(ctx)


def _serve_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=None,
                        help="port to listen on (default: the port of spark.remote, else 15002)")


def _serve(ctx, args):
    from jobs.commands.serve import serve

    serve(ctx, args.port, say=lambda line: print(line, flush=True))
    return None


def _read_only(args: argparse.Namespace) -> bool:
    """`segments preview` writes nothing, so it needs no lease."""
    return getattr(args, "action", None) == PREVIEW


STAGE_OPTIONS: dict[str, Callable[[argparse.ArgumentParser], None]] = {
    "ingest": _input_option,
    "stitch": _rebuild_option("rebuild the identity graph from all bronze rows"),
    "activities": _rebuild_option("rebuild the activity stream instead of merging"),
}
TOOLS: dict[str, tuple[str, Callable, Callable, bool]] = {
    "generate": (generator_cli.HELP, _generate_options, _generate, False),
    "identity": ("inspect identity stitching: `explain ID_A ID_B` shows the evidence linking two identifiers",
                 _identity_options, _identity, True),
    "nightly": ("run the whole pipeline for a run date: ingest, stitch, activities, ... (idempotent)",
                _nightly_options, _nightly, True),
    "lens": ("semantic layer: `lens query` answers a lens query, `lens sql` prints the Spark SQL it compiles to",
             _lens_options, _lens, True),
    "unlock": ("show who holds the warehouse's lease; with --force, clear a lease a killed run left behind",
               _unlock_options, _unlock, True),
    "maintain": ("compact and Z-order the warehouse's tables, then vacuum files older than "
                 "maintain.vacuum_retain_hours (run it between nightlies)", _no_options, _maintain, True),
    "serve": ("run a Spark Connect server with c360's session; read commands whose config sets "
              "spark.remote ask it instead of starting Spark", _serve_options, _serve, True),
}
# The read-only commands that may ask a Spark Connect server (spark.remote) instead of starting Spark.
REMOTE_COMMANDS = frozenset({"lens", "identity"})
# The commands that write the warehouse: one at a time per warehouse (jobs.core.lock).
WRITING_COMMANDS = frozenset({*(step.name for step in pipeline.STAGES), "nightly", "maintain"})


def commands() -> dict[str, Command]:
    """Every sub-command, in help order: the generator first, then the stages, then the tools."""
    found = {"generate": Command("generate", *TOOLS["generate"])}
    for step in pipeline.STAGES:
        if step.name == "segments":
            found[step.name] = Command(step.name, step.help, _segments_options, _segments)
        elif step.name == "lens-materialize":
            found[step.name] = Command(step.name, step.help, _materialize_options, _materialize)
        else:
            found[step.name] = Command(step.name, step.help, STAGE_OPTIONS.get(step.name, _no_options),
                                       _run_stage(step.name))
    for name in ("identity", "nightly", "lens", "unlock", "maintain", "serve"):
        found[name] = Command(name, *TOOLS[name])
    return {name: dataclasses.replace(c, writes=name in WRITING_COMMANDS) for name, c in found.items()}


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(prog="c360", description="Customer 360 on Spark and Delta Lake.")
    subs = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, command in commands().items():
        sub = subs.add_parser(name, parents=[common], help=command.help, description=command.help)
        command.add_arguments(sub)
        if name in REMOTE_COMMANDS or name == "segments":
            sub.add_argument("--remote", default=None, metavar=REMOTE_METAVAR, help=REMOTE_HELP)
        sub.set_defaults(_command=command)
    return parser


def make_context(args: argparse.Namespace):
    from jobs.core.config import connect_address, load_config
    from jobs.core.context import JobContext
    from jobs.core import storage
    from jobs.core.errors import ConfigError

    overrides = {"warehouse": args.warehouse} if args.warehouse else None
    config = load_config(args.config, overrides=overrides)
    if getattr(args, "remote", None):
        try:
            connect_address(args.remote, "--remote")
        except ValueError as exc:
            raise ConfigError(str(exc)) from None
        config = dataclasses.replace(config, spark=dataclasses.replace(config.spark, remote=args.remote))
    root = storage.local_dir(config.warehouse_location())
    if root is not None and root.exists() and not root.is_dir():
        where = "--warehouse" if args.warehouse else f"'warehouse' in {config.source}"
        raise ConfigError(f"the warehouse {root} ({where}) is a file, not a folder")
    run_date = args.run_date or dt.datetime.now(dt.timezone.utc).date()
    remote_ok = args.command in REMOTE_COMMANDS or (args.command == "segments" and _read_only(args))
    if getattr(args, "remote", None) and not remote_ok:
        raise ConfigError(f"--remote is for the read-only commands (lens, identity explain, segments preview); "
                          f"`c360 {args.command}` writes the warehouse and starts its own Spark")
    return JobContext(config=config, run_date=run_date, remote_ok=remote_ok)


def _error_text(exc: BaseException) -> str:
    """The error's text. A Py4JJavaError asks the JVM for it, and raises if that JVM has died (the
    log and the JVM's exit status then say what happened), so this never raises."""
    try:
        return str(getattr(exc, "desc", None) or exc)
    except Exception:  # noqa: BLE001 - any failure to describe the error must not hide the error
        return f"{type(exc).__name__} (its message could not be read: the Spark JVM has exited)"


def _first_line(exc: BaseException) -> str:
    text = _error_text(exc).strip()
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith(("at ", "JVM stacktrace", "Traceback")):
            return line[:500]
    return type(exc).__name__


def _python_logging_to(log_file: Path) -> None:
    """Python's logging goes to the log too. py4j logs a dead JVM's connection errors with tracebacks
    on the root logger (`logging.exception`), which, with no handler, sets itself up on the terminal."""
    import logging

    handler = logging.FileHandler(log_file)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    logging.getLogger(pipeline.LOG.name).setLevel(logging.INFO)  # each stage's summary line


def _driver_jvm_exit() -> int | None:
    """The exit status of the driver JVM PySpark started, once it has exited; None while it runs, or
    when Python did not start it (spark-submit starts Python from the JVM)."""
    if "pyspark" not in sys.modules:
        return None
    from pyspark import SparkContext

    proc = getattr(SparkContext._gateway, "proc", None)
    return None if proc is None else proc.poll()


def _failure_message(command: str, exc: BaseException, ctx, log_file: Path | None, log_start: int) -> str:
    """One paragraph for a failure that is not bad input: what died, in which stage, the log, the
    setting to raise (jobs.core.failures); else the error's first line and the log."""
    from jobs.core.errors import StageFailed
    from jobs.core.failures import MemorySettings, diagnose, read_tail

    stage = exc.stage if isinstance(exc, StageFailed) else None
    cause = exc.__cause__ if isinstance(exc, StageFailed) and exc.__cause__ is not None else exc
    failure = None
    if ctx is not None:
        spark = ctx.config.spark
        memory = MemorySettings(config_file=ctx.config.source, local=str(spark.master or "").startswith("local"),
                                driver_memory=spark.driver_memory or "Spark's default, 1g",
                                executor_memory=spark.conf.get("spark.executor.memory"))
        failure = diagnose(f"{type(cause).__name__}: {_error_text(cause)}", read_tail(log_file, start=log_start), memory,
                           jvm_exit=_driver_jvm_exit())
    if failure is not None:
        return failure.paragraph(command, stage, log_file)
    where = f" during stage {stage}" if stage else ""
    details = f" (full details in {log_file})" if log_file else ""
    return f"c360 {command}: failed{where}: {_first_line(cause)}{details}"


def main(argv: list[str] | None = None) -> int:
    from jobs.core.errors import C360Error
    from lens.errors import LensError

    parser = build_parser()
    args = parser.parse_args(argv)
    command: Command = args._command
    log_file: Path | None = None
    log_start = 0
    ctx = None
    started = time.monotonic()
    try:
        ctx = make_context(args)
        if command.needs_spark:
            from jobs.core.console import divert_jvm_output
            from jobs.core.session import LOG_FILE_ENV
            from jobs.core.storage import logs_dir

            log_file = logs_dir(ctx.warehouse.root) / f"{args.command}-{ctx.run_date}.log"
            log_start = log_file.stat().st_size if log_file.is_file() else 0
            divert_jvm_output(log_file)
            _python_logging_to(log_file)
            # Spark's log4j writes here too (conf/log4j2.properties; jobs.core.session routes it).
            os.environ[LOG_FILE_ENV] = str(log_file)
        if command.writes and not _read_only(args):
            from jobs.core import lock

            with lock.held(ctx.spark, ctx.warehouse, args.command, ctx.run_date,
                           jvm_alive=lambda: _driver_jvm_exit() is None):
                result = command.handle(ctx, args)
        else:
            result = command.handle(ctx, args)
        if result is not None:
            result.seconds = round(time.monotonic() - started, 1)
            print(pipeline.format_result(args.command, result))
        return EXIT_OK
    except (C360Error, LensError) as exc:
        print(f"c360 {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print(f"c360 {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader of stdout went away (`c360 lens query ... | head`): nothing is wrong with the run.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_BROKEN_PIPE
    except Exception as exc:  # Spark/JVM failures: one paragraph here, the whole trace in the log
        print(_failure_message(args.command, exc, ctx, log_file, log_start), file=sys.stderr)
        if log_file is not None:
            import traceback

            with open(log_file, "a") as fh:
                traceback.print_exc(file=fh)
        return EXIT_FAILED
    finally:
        if ctx is not None and ctx.has_spark:
            try:
                ctx.spark.stop()
            except Exception:  # the JVM may be gone already; its failure has been reported
                pass


if __name__ == "__main__":
    sys.exit(main())
