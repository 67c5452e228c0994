#!/usr/bin/env bash
# step.sh NAME [SECONDS]: a test step that takes SECONDS, and fails when the run's
# fail_step (or fail_undo) param names it.
set -euo pipefail
sleep "${2:-0}"
if [ "${GONOGO_PARAM_FAIL_STEP:-}" = "$1" ] || [ "${GONOGO_PARAM_FAIL_UNDO:-}" = "$1" ]; then
  echo "failing on purpose: $1"
  exit 3
fi
echo "done: $1"
