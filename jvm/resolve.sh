#!/usr/bin/env bash
# Resolve the pinned JVM jars in jvm/jars.lock into .jars/ and check their sha256 pins.
# No Maven needed: the Ivy that ships inside pyspark (the one spark.jars.packages uses) fetches
# exactly the pinned artifacts, not their dependencies (those ship with pyspark), from Maven Central
# into the cache .ivy/; the jars are copied to .jars/ only when their checksums match.
# Idempotent: with every pinned jar present and matching, nothing runs and no network is used.
# Environment: C360_JARS_DIR (default .jars), C360_IVY_DIR (default .ivy), C360_PYTHON (default
# .venv/bin/python, to find pyspark), C360_IVY_SETTINGS (an ivysettings.xml, e.g. for a mirror).
set -euo pipefail
cd "$(dirname "$0")/.."
dest="${C360_JARS_DIR:-.jars}"
ivy="${C360_IVY_DIR:-.ivy}"
python="${C360_PYTHON:-.venv/bin/python}"

sha_of() { { sha256sum "$1" 2>/dev/null || shasum -a 256 "$1"; } | cut -d' ' -f1; }
pins() { grep -v '^\s*#' jvm/jars.lock | grep -v '^\s*$'; }
fail() { echo "error: $*" >&2; exit 2; }

missing=()
while read -r coord sha; do
  IFS=: read -r group artifact version <<<"$coord"
  jar="$dest/$artifact-$version.jar"
  [ -f "$jar" ] && [ "$(sha_of "$jar")" = "$sha" ] || missing+=("$coord")
done < <(pins)

if [ "${#missing[@]}" -gt 0 ]; then
  java="${JAVA_HOME:+$JAVA_HOME/bin/}java"
  command -v "$java" >/dev/null 2>&1 || fail "java not found: install Java 17 (or set JAVA_HOME) to resolve jvm/jars.lock"
  [ -x "$python" ] || fail "$python not found: the virtualenv comes first (\`make setup\` creates it)"
  ivy_jar="$("$python" -c 'import glob, os, pyspark; print(next(iter(glob.glob(os.path.join(os.path.dirname(pyspark.__file__), "jars", "ivy-*.jar"))), ""))')"
  [ -n "$ivy_jar" ] || fail "no ivy-*.jar in pyspark's jars/ (is pyspark installed in $python's environment?)"
  mkdir -p "$ivy" "$dest"
  log="$ivy/resolve.log"
  : >"$log"
  settings=()
  [ -n "${C360_IVY_SETTINGS:-}" ] && settings=(-settings "$C360_IVY_SETTINGS")
  for coord in "${missing[@]}"; do
    IFS=: read -r group artifact version <<<"$coord"
    echo "resolving $coord (Ivy, log: $log)"
    "$java" -cp "$ivy_jar" org.apache.ivy.Main "${settings[@]}" -cache "$ivy/cache" -m2compatible \
      -dependency "$group" "$artifact" "$version" -confs default -types jar -notransitive \
      -retrieve "$ivy/retrieved/[artifact]-[revision].[ext]" >>"$log" 2>&1 \
      || fail "Ivy could not resolve $coord (jvm/jars.lock) from Maven Central: $(grep -m1 -iE 'unresolved|not found|error|exception' "$log" | sed 's/^[[:space:]]*//' || tail -1 "$log") (details in $log)"
    src="$ivy/retrieved/$artifact-$version.jar"
    [ -f "$src" ] || fail "Ivy resolved $coord but did not retrieve $src (details in $log)"
    cp "$src" "$dest/$artifact-$version.jar"
  done
fi

# Verify every pin, whether just copied or already present.
while read -r coord sha; do
  IFS=: read -r group artifact version <<<"$coord"
  jar="$dest/$artifact-$version.jar"
  got="$(sha_of "$jar")"
  if [ "$got" != "$sha" ]; then
    rm -f "$jar"; fail "$jar has sha256 $got, jvm/jars.lock pins $sha"
  fi
done < <(pins)
touch "$dest/.resolved"
