#!/usr/bin/env bash
# plan_step.sh WHAT LOG: a test step that records WHAT, once per run of it, in $GONOGO_STATE_DIR/LOG.log.
set -euo pipefail
echo "$1" >> "$GONOGO_STATE_DIR/${2:?log name}.log"
echo "done: $1"
