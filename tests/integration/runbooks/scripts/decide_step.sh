#!/usr/bin/env bash
# decide_step.sh: does what the run's `behavior` param says: ok, flaky (fails the first time) or fail.
set -euo pipefail
marker="${GONOGO_STATE_DIR:-/tmp}/decide-${GONOGO_RUN_ID//[^A-Za-z0-9]/_}"
case "${GONOGO_PARAM_BEHAVIOR:-ok}" in
  ok) echo "deployed" ;;
  flaky)
    if [ -f "$marker" ]; then echo "deployed on the second try"; else touch "$marker"; echo "first try fails"; exit 1; fi ;;
  fail) echo "deploy failed: the package is corrupt"; exit 1 ;;
esac
