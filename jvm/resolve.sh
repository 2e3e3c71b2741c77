#!/usr/bin/env bash
# Resolve the pinned JVM jars in jvm/jars.lock into .jars/ with Maven, and check their sha256.
# Idempotent: a jar already present with the right checksum is not fetched again.
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${C360_JARS_DIR:-.jars}"
mkdir -p "$dest"
grep -v '^\s*#' jvm/jars.lock | grep -v '^\s*$' | while read -r coord sha; do
  IFS=: read -r group artifact version <<<"$coord"
  jar="$dest/$artifact-$version.jar"
  if [ -f "$jar" ] && [ "$(sha256sum "$jar" | cut -d' ' -f1)" = "$sha" ]; then
    continue
  fi
  echo "resolving $coord"
  mvn -B -q -Dstyle.color=never dependency:copy -Dartifact="$coord" -DoutputDirectory="$dest" -Dmdep.overWriteReleases=true >/dev/null \
    || { echo "error: Maven could not resolve $coord (listed in jvm/jars.lock)" >&2; exit 2; }
  got=$(sha256sum "$jar" | cut -d' ' -f1)
  if [ "$got" != "$sha" ]; then
    echo "error: $jar has sha256 $got, jvm/jars.lock pins $sha" >&2; rm -f "$jar"; exit 2
  fi
done
touch "$dest/.resolved"
