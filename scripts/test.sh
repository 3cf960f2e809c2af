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
trap 'rm -rf "$ROS_LOG_DIR"' EXIT

"$repo/.venv/bin/python" -m pytest "$@"
