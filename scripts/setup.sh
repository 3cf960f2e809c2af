#!/usr/bin/env bash
# Sets up everything from nothing, idempotently: a .venv in the repository root with the pinned
# dependencies (core, ROS 2 Kilted wheels, test tools), then builds and installs this package
# into it (msg/srv + the hybridgl_ros Python package + `ros2 run` wrappers).
#
# Needs only python3 (3.10+; 3.11 tested), cmake >= 3.20 and gcc/g++ on the machine.
# A second run with nothing changed skips both steps (a few seconds).
#   PYTHON=/path/to/python3.11 bash scripts/setup.sh   # choose the interpreter for a new .venv
#   HYBRIDGL_FORCE_REBUILD=1 bash scripts/setup.sh     # rebuild even if nothing changed
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$repo"
venv="$repo/.venv"
py="$venv/bin/python"

pick_python() {
  local candidate
  for candidate in "${PYTHON:-}" python3.11 python3; do
    if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1; then
      echo "$candidate"
      return 0
    fi
  done
  echo "setup.sh: no python3 found (set PYTHON=...)" >&2
  return 1
}

# Fingerprint of files, to skip work whose inputs did not change.
fingerprint() {
  find "$@" -type f -not -path '*/__pycache__/*' -not -name '*.pyc' -print0 2>/dev/null \
    | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1
}

if [ ! -x "$py" ]; then
  base_python="$(pick_python)"
  echo "setup.sh: creating $venv with $base_python"
  "$base_python" -m venv "$venv"
fi

requirements=(requirements/core.txt requirements/ros.txt requirements/test.txt)
req_stamp="$venv/.hybridgl_requirements.sha256"
req_hash="$(fingerprint "${requirements[@]}")"
# The pinned torch is the CUDA build: with its NVIDIA libraries and triton the venv takes about
# 6.2 GB. Check the space first, so a full disk is one clear line instead of pip's OSError halfway
# through an install. HYBRIDGL_SKIP_DISK_CHECK=1 skips the check.
check_disk() {
  local need_mb=512 free_mb
  if ! "$py" -c 'import torch' >/dev/null 2>&1; then
    need_mb=7000
  fi
  free_mb="$(df -Pm "$venv" | awk 'NR == 2 {print $4}')"
  if [ "${HYBRIDGL_SKIP_DISK_CHECK:-0}" != "1" ] && [ -n "$free_mb" ] \
      && [ "$free_mb" -lt "$need_mb" ]; then
    echo "setup.sh: installing the pinned requirements needs about $need_mb MB free on the" \
      "file system of $venv; it has $free_mb MB. Free some space (or set" \
      "HYBRIDGL_SKIP_DISK_CHECK=1 to try anyway)." >&2
    exit 1
  fi
}

if [ "$(cat "$req_stamp" 2>/dev/null)" != "$req_hash" ]; then
  check_disk
  echo "setup.sh: installing the pinned requirements"
  "$py" -m pip install -q -r requirements/core.txt -r requirements/ros.txt -r requirements/test.txt
  echo "$req_hash" > "$req_stamp"
else
  echo "setup.sh: requirements up to date"
fi

build_inputs=(CMakeLists.txt package.xml pyproject.toml msg srv action hybridgl_ros launch config)
build_stamp="$venv/.hybridgl_build.sha256"
build_hash="$(fingerprint "${build_inputs[@]}")"
if [ "${HYBRIDGL_FORCE_REBUILD:-0}" != "1" ] \
    && [ "$(cat "$build_stamp" 2>/dev/null)" == "$build_hash" ] \
    && (cd / && "$py" -c 'import hybridgl_ros.srv, hybridgl_ros.msg, hybridgl_ros.action') 2>/dev/null; then
  echo "setup.sh: hybridgl_ros is installed and up to date"
else
  echo "setup.sh: building and installing hybridgl_ros (CMake, ~15-50 s)"
  start=$SECONDS
  # --no-build-isolation: the build needs the venv's rosidl/ament packages.
  # --no-deps: the requirements above are the pinned set; don't let pip re-resolve them.
  "$py" -m pip install -q --no-build-isolation --no-deps "$repo"
  # Check from outside the checkout, so the installed copy is what gets imported.
  (cd / && "$py" -c 'import hybridgl_ros.srv, hybridgl_ros.msg, hybridgl_ros.action')
  echo "$build_hash" > "$build_stamp"
  echo "setup.sh: built and installed in $((SECONDS - start)) s"
fi
