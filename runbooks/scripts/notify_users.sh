#!/usr/bin/env bash
# notify_users.sh MESSAGE...: records a user announcement (a stand-in for the intranet banner).
. "$(dirname "$0")/_state.sh"
maybe_fail
printf '%s %s\n' "$(date -u +%FT%TZ)" "$*" >> "$STATE/announcements.log"
say "announced: $*"
