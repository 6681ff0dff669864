#!/usr/bin/env bash
# Runs one stage of `make test` and keeps what scripts/test-summary.sh needs.
#
#   scripts/test-stage.sh NAME VENV COMMAND [ARG...]
#
# COMMAND's output goes to the terminal and to $TEST_LOGS/<minor>-NAME.log
# (TEST_LOGS defaults to .test-logs), where <minor> is the Python version of
# VENV; one tab-separated line is appended to $TEST_LOGS/stages.tsv:
#
#   NAME  <minor>-NAME.log  python-version  pytest-version  exit-status  seconds
#
# pytest-version is "-" when COMMAND is not VENV's pytest.
#
# The exit status is COMMAND's. A stage still running after
# TEST_STAGE_TIMEOUT seconds (default 1800; the slowest, the unit suite,
# takes 3 to 4 minutes on 2 idle cores, 14 when other suites share them) is
# stopped with its child processes and fails with status 124, so that a test
# that hangs cannot hold CI forever.
set -euo pipefail

name=$1 venv=$2
shift 2
logs=${TEST_LOGS:-.test-logs}
limit=${TEST_STAGE_TIMEOUT:-1800}
mkdir -p "$logs"

read -r python_version pytest_version < <(
  "$venv/bin/python" -c '
import importlib.metadata, platform
print(platform.python_version(), importlib.metadata.version("pytest"))
'
)
if [ "$(basename "$1")" != pytest ]; then
  pytest_version=-
fi
log=${python_version%.*}-$name.log

start=$SECONDS
# timeout runs COMMAND in a process group of its own, so that it can stop
# pytest-xdist's workers too; Ctrl-C does not reach that group, hence the trap.
status=0 interrupted="" pid=""
trap 'interrupted=1; [ -z "$pid" ] || kill -TERM "$pid" 2>/dev/null || true' INT TERM HUP
timeout --kill-after=30 "$limit" "$@" > >(tee "$logs/$log") 2>&1 &
pid=$!
wait "$pid" || status=$?
if [ -n "$interrupted" ]; then
  wait "$pid" 2>/dev/null || true
  exit 130
fi
if [ "$status" = 124 ]; then
  echo "test-stage.sh: $name stopped after ${limit}s (TEST_STAGE_TIMEOUT)" | tee -a "$logs/$log" >&2
fi
printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$name" "$log" "$python_version" "$pytest_version" \
  "$status" $((SECONDS - start)) >>"$logs/stages.tsv"
exit "$status"
