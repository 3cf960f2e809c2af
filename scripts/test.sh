#!/usr/bin/env bash
# Installs everything (scripts/setup.sh, idempotent), then runs the test suite with the
# environment every ROS process here needs. Extra arguments go to pytest:
#   bash scripts/test.sh                 # everything
#   bash scripts/test.sh test/ros -x     # the ROS tests only, stop at the first failure
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"
cd "$repo"

# DDS stays on this machine: discovery on loopback only, and the shipped profile restricts the
# transports to shared memory + UDP on 127.0.0.1.
export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE="$repo/config/fastdds_localhost.xml"
export RMW_IMPLEMENTATION=rmw_fastrtps_cpp
# A domain of our own, so concurrent test runs on one machine do not see each other's nodes.
export ROS_DOMAIN_ID="${ROS_DOMAIN_ID:-$((RANDOM % 100 + 101))}"
# The PyPI ros-* wheels keep their ament index at the venv root; nothing else sets it.
export AMENT_PREFIX_PATH="$repo/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
ROS_LOG_DIR="$(mktemp -d -t hybridgl_ros_log.XXXXXX)"
export ROS_LOG_DIR

# A test that hangs (each gets HYBRIDGL_TEST_HANG_S s, default 300) ends pytest with every
# thread's stack (test/hang_guard.py): a known Fast DDS deadlock at entity destruction
# (eProsima/Fast-DDS#6502) cannot be interrupted any other way. The hung test and the ones not
# run yet then run in a fresh process; a test that hangs twice fails the run, as does a
# failure in any of the runs.
progress="$(mktemp -d -t hybridgl_test_progress.XXXXXX)"
export HYBRIDGL_TEST_PROGRESS="$progress"
trap 'rm -rf "$ROS_LOG_DIR" "$progress"' EXIT
hung_before=""
for attempt in 1 2 3; do
  rc=0
  "$repo/.venv/bin/python" -m pytest "$@" || rc=$?
  [ "$rc" -eq 1 ] && [ -s "$progress/hang.txt" ] || break
  hung="$(awk -F'\t' '$1 == "start" {s = $2} $1 == "end" && $2 == s {s = ""} END {print s}' \
    "$progress/progress.txt")"
  {
    echo
    echo "scripts/test.sh: $hung hung (not ended within HYBRIDGL_TEST_HANG_S, the Timeout below);"
    echo "every thread's Python stack at that moment:"
    cat "$progress/hang.txt"
  } >&2
  mv "$progress/hang.txt" "$progress/hang.$attempt.txt"
  if [ "$hung" = "$hung_before" ]; then
    echo "scripts/test.sh: $hung hung again: FAILED" >&2
    break
  elif [ "$attempt" -eq 3 ]; then
    echo "scripts/test.sh: a third hang in one run: FAILED" >&2
    break
  fi
  hung_before="$hung"
  echo "scripts/test.sh: running $hung and the tests not run yet again, in a fresh process" >&2
done
if [ "$attempt" -gt 1 ]; then
  failed="$(awk -F'\t' '$1 == "end" && $3 == "failed" {print $2}' "$progress/progress.txt")"
  if [ -n "$failed" ]; then
    printf 'scripts/test.sh: failed in an earlier process of this run:\n%s\n' "$failed" >&2
    [ "$rc" -ne 0 ] || rc=1
  fi
fi
exit "$rc"
