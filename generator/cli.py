"""`c360 generate`: the command (HELP, NEEDS_SPARK, add_arguments, run) and generate(), which writes
the data set: chunks in worker processes, each chunk's carry appended to the next file in chunk order.

What the data set holds and why it is deterministic: the generator package docstring.
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import dataclasses
import io
import multiprocessing
from pathlib import Path
from typing import TYPE_CHECKING, Any

from generator.bad_lines import arrange_lines
from generator.chunk import Chunk, ChunkOutput
from generator.customers import customer_rows
from generator.events import person_events
from generator.files import (
    CUSTOMERS_DIR,
    EVENTS_DIR,
    append_carry,
    customer_file_name,
    encode_lines,
    event_file_name,
    open_truth,
    prepare_output,
    write_text,
)
from generator.groups import households
from generator.manifest import ChunkCounts, build_manifest, write_manifest
from generator.params import (
    DEFAULT_CHUNK_SIZE,
    DEFAULT_DAYS,
    DEFAULT_PROFILES,
    DEFAULT_SEED,
    DEFAULT_WORKERS,
    GenerateParams,
    Rates,
)
from generator.people import junk_identifiers, make_persons
from jobs.core.errors import InputError

if TYPE_CHECKING:
    from jobs.core.context import JobContext, StageResult

HELP = "write a deterministic synthetic raw input set (events JSONL + customers CSV) with hard cases"
NEEDS_SPARK = False


# ----------------------------------------------------------------------------------------------
# Command line
# ----------------------------------------------------------------------------------------------


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--out", required=True, help="output folder (events/, customers/, _manifest.json)")
    parser.add_argument("--profiles", type=int, default=DEFAULT_PROFILES, help="number of persons (default %(default)s)")
    parser.add_argument("--days", type=int, default=DEFAULT_DAYS, help="days of events up to --run-date (default %(default)s)")
    parser.add_argument("--seed", type=int, default=DEFAULT_SEED, help="random seed (default %(default)s)")
    parser.add_argument("--gzip", action="store_true", help="write events as .jsonl.gz")
    parser.add_argument("--force", action="store_true", help="replace earlier output in a non-empty --out")
    parser.add_argument("--truth", action="store_true", help="also write _truth/ (ground-truth identities, small N)")
    parser.add_argument("--chunk-size", type=int, default=DEFAULT_CHUNK_SIZE,
                        help="profiles per output file; part of the output's identity (default %(default)s)")
    parser.add_argument("--workers", type=int, default=DEFAULT_WORKERS,
                        help="worker processes; never changes the output (default %(default)s)")
    parser.add_argument("--rate", action="append", default=[], metavar="NAME=VALUE",
                        help=f"override a planted-case rate ({', '.join(f.name for f in dataclasses.fields(Rates))})")


def parse_rates(items: list[str]) -> Rates:
    known = {f.name: f for f in dataclasses.fields(Rates)}
    values: dict[str, Any] = {}
    for item in items:
        name, sep, text = item.partition("=")
        name = name.strip()
        if not sep or name not in known:
            raise InputError(f"--rate {item!r}: expected NAME=VALUE with NAME one of {', '.join(known)}")
        try:
            values[name] = int(text) if known[name].type == "int" else float(text)
        except ValueError:
            raise InputError(f"--rate {item!r}: {text!r} is not a {known[name].type}") from None
    return Rates(**values)


def run(ctx: JobContext, args: argparse.Namespace) -> StageResult:
    from jobs.core.context import StageResult

    params = GenerateParams(
        out=Path(args.out), profiles=args.profiles, days=args.days, seed=args.seed, run_date=ctx.run_date,
        chunk_size=args.chunk_size, workers=args.workers, gzip=args.gzip, truth=args.truth, force=args.force,
        rates=parse_rates(args.rate),
    )
    manifest = generate(params)
    ev, cu = manifest["events"], manifest["customers"]
    return StageResult(
        metrics={
            "profiles": params.profiles, "files": manifest["chunks"], "event_lines": ev["lines"],
            "replayed": ev["replayed_lines"], "malformed": ev["malformed_lines"], "customer_rows": cu["rows"],
            "bytes": manifest["bytes"],
        },
        notes=[f"wrote {params.out} (window {manifest['window_start']} .. {manifest['run_date']})"],
    )


# ----------------------------------------------------------------------------------------------
# Orchestration: chunks in worker processes, carries appended in chunk order
# ----------------------------------------------------------------------------------------------


def generate(params: GenerateParams) -> dict[str, Any]:
    """Write the data set described by `params`; returns the manifest (also written to _manifest.json)."""
    from jobs.ingest.schemas import CUSTOMER_COLUMNS

    if params.profiles < 1 or params.days < 1 or params.chunk_size < 1 or params.workers < 1:
        raise InputError("--profiles, --days, --chunk-size and --workers must be at least 1")
    params.rates.validate()
    params = dataclasses.replace(params, customer_columns=tuple(CUSTOMER_COLUMNS))
    prepare_output(params.out, force=params.force)
    (params.out / EVENTS_DIR).mkdir(parents=True)
    (params.out / CUSTOMERS_DIR).mkdir(parents=True)

    totals = ChunkCounts()
    per_file: list[dict[str, Any]] = []
    previous: ChunkOutput | None = None
    jobs = [(params, i) for i in range(params.chunks)]
    with contextlib.ExitStack() as stack:
        truth = open_truth(params.out, stack) if params.truth else None
        for result in _map_in_order(_generate_chunk, jobs, min(params.workers, params.chunks)):
            if previous is not None:
                append_carry(params, previous, into=result.index)
            totals.add(result.counts)
            per_file.append({"events": result.events_file, "event_lines": result.event_lines,
                             "customers": result.customers_file, "customer_rows": result.customer_rows})
            if truth is not None:
                truth[0].writerows(result.truth_people)
                truth[1].writerows(result.truth_groups)
            previous = result
    assert previous is not None
    append_carry(params, previous, into=previous.index)
    # Each chunk's carry went into the next file; the last chunk kept its own.
    for i, entry in enumerate(per_file):
        if i > 0:
            entry["event_lines"] += totals.carry_lines[i - 1]
            entry["customer_rows"] += totals.carry_rows[i - 1]
    per_file[-1]["event_lines"] += totals.carry_lines[len(per_file) - 1]
    per_file[-1]["customer_rows"] += totals.carry_rows[len(per_file) - 1]
    manifest = build_manifest(params, totals, per_file)
    write_manifest(params.out, manifest)
    return manifest


def _map_in_order(func, jobs: list, workers: int):
    """Results in job order; worker processes (spawned: safe next to a running JVM) when workers > 1."""
    if workers <= 1:
        yield from map(func, jobs)
        return
    with multiprocessing.get_context("spawn").Pool(workers) as pool:
        yield from pool.imap(func, jobs, chunksize=1)


# ----------------------------------------------------------------------------------------------
# One chunk (runs in a worker process)
# ----------------------------------------------------------------------------------------------


def _generate_chunk(job: tuple[GenerateParams, int]) -> ChunkOutput:
    params, index = job
    return write_chunk(params, index)


def write_chunk(params: GenerateParams, index: int) -> ChunkOutput:
    """Chunk `index`: its persons and messages, written to its two files; the rest comes back to the parent."""
    chunk = Chunk(params, index)
    # These steps draw from chunk.rng in this order; the order is part of the output.
    persons = make_persons(chunk)
    for person in persons:
        person_events(chunk, person)
    households(chunk, persons)
    junk_identifiers(chunk, persons)
    lines, carry_lines = arrange_lines(chunk, persons)
    events_name = event_file_name(index, params.gzip)
    write_text(params.out / EVENTS_DIR / events_name, lines, params.gzip)

    own_rows, carry_rows = customer_rows(chunk, persons)
    customers_name = customer_file_name(index)
    with open(params.out / CUSTOMERS_DIR / customers_name, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh, lineterminator="\n")
        writer.writerow(params.customer_columns)
        writer.writerows(own_rows)
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\n").writerows(carry_rows)

    chunk.counts.bump("event_lines", len(lines) + len(carry_lines))
    chunk.counts.bump("customer_rows", len(own_rows) + len(carry_rows))
    chunk.counts.carry_lines[index] = len(carry_lines)
    chunk.counts.carry_rows[index] = len(carry_rows)
    chunk.counts.carry_replays.setdefault(index, 0)
    return ChunkOutput(
        index=index, events_file=f"{EVENTS_DIR}/{events_name}", customers_file=f"{CUSTOMERS_DIR}/{customers_name}",
        event_lines=len(lines), customer_rows=len(own_rows),
        events_carry=encode_lines(carry_lines, params.gzip), customers_carry=buffer.getvalue().encode("utf-8"),
        counts=chunk.counts, truth_people=sorted(chunk.truth) if chunk.truth is not None else [],
        truth_groups=chunk.truth_groups,
    )
