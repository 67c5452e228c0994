# Shared helpers for the example scripts: sourced, never run directly.
# Every example script only writes files under $GONOGO_STATE_DIR, so the demo
# and the tests can run a whole change, and undo it, without touching anything real.
set -euo pipefail
STATE="${GONOGO_STATE_DIR:-${TMPDIR:-/tmp}/gonogo-state}/${GONOGO_SERVICE:-demo}"
mkdir -p "$STATE"
say() { printf '%s %s\n' "$(date -u +%H:%M:%S)" "$*"; }
# A test or the demo can make any step fail on purpose: the fail_step param.
maybe_fail() {
  if [ -n "${GONOGO_PARAM_FAIL_STEP:-}" ] && [ "${GONOGO_PARAM_FAIL_STEP}" = "${GONOGO_STEP:-}" ]; then
    say "failing on purpose: fail_step=${GONOGO_PARAM_FAIL_STEP}"
    exit 3
  fi
}
