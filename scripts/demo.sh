#!/usr/bin/env bash
# Sets everything up (scripts/setup.sh, idempotent), then runs the demo: held-out synthetic scenes
# through the ROS node over DDS on loopback, with the embedded demo models. Extra arguments go to
# `hybridgl demo` (e.g. --count 12, --out DIR, --no-ros).
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/scripts/setup.sh"

export ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST
export FASTDDS_DEFAULT_PROFILES_FILE="$repo/config/fastdds_localhost.xml"
export AMENT_PREFIX_PATH="$repo/.venv${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}"
ROS_LOG_DIR="$(mktemp -d -t hybridgl_demo_log.XXXXXX)"
export ROS_LOG_DIR
trap 'rm -rf "$ROS_LOG_DIR"' EXIT

cd "$repo"
"$repo/.venv/bin/hybridgl" demo "$@"
