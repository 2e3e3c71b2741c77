"""The output layout under --out, and writing / appending lines to it."""
from __future__ import annotations

import contextlib
import csv
import gzip
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

from jobs.core.errors import InputError

if TYPE_CHECKING:
    from generator.chunk import ChunkOutput
    from generator.params import GenerateParams

EVENTS_DIR = "events"
CUSTOMERS_DIR = "customers"
TRUTH_DIR = "_truth"
MANIFEST = "_manifest.json"
OUTPUTS = (EVENTS_DIR, CUSTOMERS_DIR, TRUTH_DIR, MANIFEST)


def event_file_name(index: int, compressed: bool) -> str:
    return f"part-{index:05d}.jsonl" + (".gz" if compressed else "")


def customer_file_name(index: int) -> str:
    return f"part-{index:05d}.csv"


def prepare_output(out: Path, *, force: bool) -> None:
    if out.exists() and not out.is_dir():
        raise InputError(f"--out {out} exists and is not a folder")
    if out.is_dir() and any(out.iterdir()):
        if not force:
            raise InputError(f"--out {out} is not empty; pass --force to replace the generated data in it")
        for name in OUTPUTS:
            target = out / name
            if target.is_dir():
                shutil.rmtree(target)
            elif target.exists():
                target.unlink()
    out.mkdir(parents=True, exist_ok=True)


def open_truth(out: Path, stack: contextlib.ExitStack):
    """CSV writers for _truth/people.csv and _truth/group_members.csv, closed with `stack`."""
    (out / TRUTH_DIR).mkdir(parents=True, exist_ok=True)
    writers = []
    for name, header in (("people.csv", ("person_id", "identifier_type", "identifier_value")),
                         ("group_members.csv", ("group_id", "person_id"))):
        writer = csv.writer(stack.enter_context(open(out / TRUTH_DIR / name, "w", newline="")), lineterminator="\n")
        writer.writerow(header)
        writers.append(writer)
    return writers


def write_text(path: Path, lines: list[str], compressed: bool) -> None:
    with open(path, "wb") as raw:
        if compressed:
            # filename="" and mtime=0: the gzip header carries nothing that varies between runs.
            with gzip.GzipFile(filename="", mode="wb", fileobj=raw, compresslevel=6, mtime=0) as fh:
                for start in range(0, len(lines), 10_000):
                    fh.write(("\n".join(lines[start:start + 10_000]) + "\n").encode("utf-8"))
        else:
            for start in range(0, len(lines), 10_000):
                raw.write(("\n".join(lines[start:start + 10_000]) + "\n").encode("utf-8"))


def encode_lines(lines: list[str], compressed: bool) -> bytes:
    """Bytes to append to a file; a separate gzip member when compressed (gzip readers concatenate members)."""
    if not lines:
        return b""
    data = ("\n".join(lines) + "\n").encode("utf-8")
    return gzip.compress(data, compresslevel=6, mtime=0) if compressed else data


def append_carry(params: GenerateParams, source: ChunkOutput, *, into: int) -> None:
    """Appends a chunk's carried lines and rows to the files of chunk `into`."""
    with open(params.out / EVENTS_DIR / event_file_name(into, params.gzip), "ab") as fh:
        fh.write(source.events_carry)
    with open(params.out / CUSTOMERS_DIR / customer_file_name(into), "ab") as fh:
        fh.write(source.customers_carry)
