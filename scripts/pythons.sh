#!/usr/bin/env bash
# The CPython interpreters `make test` runs on: the newest patch release of
# each of 3.11, 3.12, 3.13 and 3.14 found on this machine.
#
#   scripts/pythons.sh           one line per minor version found:
#                                "3.12 /path/to/python3.12 3.12.1"
#   scripts/pythons.sh --minors  the minor versions found, on one line: "3.11 3.12"
#   scripts/pythons.sh 3.12      the interpreter of 3.12 (exit 1 when there is none)
#
# Where they are looked for, per minor version 3.X:
#   1. pyenv, when it is installed (on PATH, or in $PYENV_ROOT, default
#      ~/.pyenv): the newest final release 3.X.N among `pyenv versions --bare`;
#   2. otherwise `python3.X` on PATH, then `python3` if it is 3.X.
# Each candidate is run once to check its version; the path printed is its
# sys.executable.
#
#   ONELOOP_REQUIRE_PYTHONS="3.11 3.12 3.13"  every mode fails at once, naming
#                                              the missing versions, unless all
#                                              of these are found
set -euo pipefail

MINORS=(3.11 3.12 3.13 3.14)
log() { echo "pythons.sh: $*" >&2; }

pyenv=$(command -v pyenv || true)
if [ -z "$pyenv" ] && [ -x "${PYENV_ROOT:-$HOME/.pyenv}/bin/pyenv" ]; then
  pyenv="${PYENV_ROOT:-$HOME/.pyenv}/bin/pyenv"
fi
pyenv_versions=""
if [ -n "$pyenv" ]; then
  pyenv_versions=$("$pyenv" versions --bare 2>/dev/null || true)
fi

# "sys.executable X.Y.Z" of interpreter $1 when it runs and is CPython $2, else nothing.
probe() {
  "$1" -c '
import platform, sys
if platform.python_implementation() == "CPython" and "%d.%d" % sys.version_info[:2] == sys.argv[1]:
    print(sys.executable, platform.python_version())
' "$2" 2>/dev/null || true
}

# "path X.Y.Z" of the interpreter chosen for minor version $1, or nothing.
find_minor() {
  local minor=$1 version prefix found
  if [ -n "$pyenv_versions" ]; then
    # Final releases only: not 3.13.0t (free-threaded), 3.14-dev, 3.14.0rc1
    # or virtualenvs (3.12.1/envs/name).
    for version in $(grep -E "^${minor//./\\.}\.[0-9]+$" <<<"$pyenv_versions" | sort -rV); do
      prefix=$("$pyenv" prefix "$version" 2>/dev/null) || continue
      found=$(probe "$prefix/bin/python$minor" "$minor")
      if [ -n "$found" ]; then
        echo "$found"
        return
      fi
    done
  fi
  for candidate in "python$minor" python3; do
    if command -v "$candidate" >/dev/null 2>&1; then
      found=$(probe "$candidate" "$minor")
      if [ -n "$found" ]; then
        echo "$found"
        return
      fi
    fi
  done
}

declare -A path version
found_minors=()
for minor in "${MINORS[@]}"; do
  result=$(find_minor "$minor")
  if [ -n "$result" ]; then
    path[$minor]=${result% *}
    version[$minor]=${result##* }
    found_minors+=("$minor")
  fi
done

missing=()
for minor in ${ONELOOP_REQUIRE_PYTHONS:-}; do
  if [ -z "${path[$minor]:-}" ]; then
    missing+=("$minor")
  fi
done
if [ ${#missing[@]} -gt 0 ]; then
  log "Python ${missing[*]} not found (ONELOOP_REQUIRE_PYTHONS=\"$ONELOOP_REQUIRE_PYTHONS\"; found: ${found_minors[*]:-none}); install it, e.g. with pyenv install ${missing[0]}"
  exit 1
fi

case "${1:-}" in
  "")
    for minor in "${found_minors[@]}"; do
      echo "$minor ${path[$minor]} ${version[$minor]}"
    done
    ;;
  --minors)
    echo "${found_minors[*]}"
    ;;
  3.*)
    if [ -z "${path[$1]:-}" ]; then
      log "no Python $1 found"
      exit 1
    fi
    echo "${path[$1]}"
    ;;
  *)
    log "usage: pythons.sh [--minors | 3.X]"
    exit 2
    ;;
esac
