"""Phone numbers in E.164 (interface §3), read with Google's libphonenumber (the `phonenumbers` port).

A number written without a country code is read in `identity.default_phone_region` (ISO 3166
region, e.g. US), so `(415) 199-6488`, `415-199-6488`, `1 415 199 6488` and `+1 415 199 6488` are
all `+14151996488`. A value that `phonenumbers` cannot parse, or whose length is impossible for
its country (`is_possible_number`), is *unparseable*: it is not an identifier (the identity stage
audits it as rule `unparseable_phone`). A number that parses but is not in an assigned range
(`+1 555 …` test numbers) is kept in its E.164 form: sources use such numbers consistently, and
junk placeholders are the blocked values' and hub cap's business, not the parser's.

Parsing is Python, so it runs on the *distinct* raw values only, in Spark's Python workers, and
the result is joined back; a night's distinct phones are a small share of its
rows. Executors therefore need `phonenumbers` (README: running on a cluster).
"""
from __future__ import annotations

from functools import partial
from typing import Iterator

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from jobs.identity.settings import DEFAULT_PHONE_REGION  # noqa: F401  (the default of identity.default_phone_region)

RAW = "_phone_raw"
E164 = "_phone_e164"
PARSED_SCHEMA = f"{RAW} string, {E164} string"


def e164(raw: str | None, region: str) -> str | None:
    """E.164 form of `raw` read in `region`; None when blank or unparseable (module docstring)."""
    import phonenumbers

    text = (raw or "").strip()
    if not text:
        return None
    try:
        number = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _parse_partition(rows: Iterator, region: str) -> Iterator[tuple[str, str | None]]:
    for row in rows:
        yield row[0], e164(row[0], region)


def parsed_phones(raw_values: DataFrame, region: str) -> DataFrame:
    """One column of raw (trimmed) phone text -> (_phone_raw, _phone_e164) for each distinct
    non-null value; _phone_e164 is null when unparseable. (An RDD map, not mapInArrow or a pandas
    UDF: those need pandas on every worker, this needs only `phonenumbers`.)"""
    distinct = raw_values.select(F.col(raw_values.columns[0]).alias(RAW)).where(F.col(RAW).isNotNull()).distinct()
    parsed = distinct.rdd.mapPartitions(partial(_parse_partition, region=region))
    return raw_values.sparkSession.createDataFrame(parsed, PARSED_SCHEMA)


def with_e164(
    df: DataFrame, column: str, region: str, where: Column | None = None, known: DataFrame | None = None
) -> DataFrame:
    """`column` (raw phone text) replaced by its E.164 form (null when blank or unparseable), in
    the rows `where` selects (default: all); only those rows are joined to the parsed values.
    `known`: values parsed already (parsed_phones' output, read in the same region); only the
    values not among them go through the Python parser."""
    original = df.columns
    chosen = df if where is None else df.where(where)
    if known is None:
        parsed = parsed_phones(chosen.select(column), region)
    else:
        unknown = chosen.select(F.col(column).alias(RAW)).join(known.select(RAW), RAW, "left_anti")
        parsed = known.select(RAW, E164).unionByName(parsed_phones(unknown, region))
    converted = (
        chosen.join(parsed, chosen[column] == parsed[RAW], "left")
        .select(*[F.col(E164).alias(column) if c == column else F.col(c) for c in original])
    )
    return converted if where is None else df.where(~where | where.isNull()).unionByName(converted)
