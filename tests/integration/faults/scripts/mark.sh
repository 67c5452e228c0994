#!/usr/bin/env bash
# mark.sh NAME SECONDS [EXIT]: a command that leaves one marker file per execution.
# NAME.<pid>.started when it starts and NAME.<pid>.ended when it ends, in a folder per
# run, so a test counts how often each command started and ended, and reads the pid of
# a running one to find (and kill) the worker running it.
set -euo pipefail
dir="$GONOGO_STATE_DIR/markers/$GONOGO_RUN_ID"
mkdir -p "$dir"
echo "$$" > "$dir/$1.$$.started"
sleep "$2"
touch "$dir/$1.$$.ended"
echo "ran: $1"
exit "${3:-0}"
