"""`c360 generate`: a deterministic synthetic raw input set (interface §3) with the hard cases of real data.

Output under `--out DIR`:
  events/part-NNNNN.jsonl[.gz]  one Segment message per line; one file per chunk of profiles
  customers/part-NNNNN.csv      customer master rows, header = jobs.ingest.schemas.CUSTOMER_COLUMNS
  _manifest.json                the exact planted counts, so tests can check ingest independently
  _truth/people.csv             with --truth: person_id, identifier_type, identifier_value (normalized)
  _truth/group_members.csv      with --truth: group_id, person_id

Determinism. Profiles are generated in chunks of `chunk_size`; chunk i uses its own random stream
seeded from (seed, i) and only integer/IEEE arithmetic (no libm functions), so the same arguments
give byte-identical files on any machine, with any number of worker processes. (With --gzip the
decompressed bytes are identical; the compressed bytes also depend on the zlib build.) A chunk hands
its late events, cross-file replays and repeated/updated customer rows to the NEXT chunk's file
(the last chunk keeps them at the end of its own file), so these arrive after their originals.
Every step of a chunk draws from the one random stream in a fixed order (persons, their events,
households, junk identifiers, line arrangement with malformed lines, customer rows): reordering
calls changes the output.

Modules:
  cli        the command (HELP, NEEDS_SPARK, add_arguments, run), generate(): chunks in worker
             processes, one chunk's files, carries appended in chunk order
  params     Rates (planted-case shares) and GenerateParams
  chunk      one chunk's state: random stream, emitted messages, counts, ground truth, formatting
  people     persons, their identifiers and devices; junk identifiers shared by many persons
  events     each person's messages: identifies, aliases, pages/screens, browsing, emails, orders
  groups     households / accounts: group calls and group events
  customers  customer master rows, repeated and updated rows, rows without a customer_id
  bad_lines  file order with the planted disorder: replays, late events, malformed lines
  manifest   exact planted counts and _manifest.json
  files      output layout, writing and appending lines
  values     fixed vocabularies and pure helpers (integer arithmetic only)

Worker processes import this package and never pyspark (jobs.ingest.reasons is pyspark-free;
jobs.ingest.schemas is imported only by the parent, in cli.generate).
"""
