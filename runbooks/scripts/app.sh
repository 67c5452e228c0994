#!/usr/bin/env bash
# app.sh install VERSION | check VERSION | stop | start | smoke: a stand-in application server.
. "$(dirname "$0")/_state.sh"
maybe_fail
case "${1:?usage: app.sh install VERSION|check VERSION|stop|start|smoke}" in
  install)
    version="${2:?version}"
    printf '%s\n' "$version" > "$STATE/app.version"
    say "installed application version [$version]" ;;
  check) say "dry run: version [${2:?version}] would be installed; nothing changed" ;;
  stop)  echo stopped > "$STATE/app.status"; say "application stopped" ;;
  start) echo running > "$STATE/app.status"; say "application started" ;;
  smoke)
    status="$(cat "$STATE/app.status" 2>/dev/null || echo running)"
    [ "$status" = running ] || { say "smoke test failed: application is $status"; exit 1; }
    say "smoke test passed: version $(cat "$STATE/app.version" 2>/dev/null || echo unknown) is $status" ;;
  *) echo "unknown action: $1" >&2; exit 2 ;;
esac
