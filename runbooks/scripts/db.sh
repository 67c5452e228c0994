#!/usr/bin/env bash
# db.sh backup|restore|migrate|unmigrate: a stand-in database kept as files.
. "$(dirname "$0")/_state.sh"
maybe_fail
case "${1:?usage: db.sh backup|restore|migrate|unmigrate}" in
  backup)
    [ -f "$STATE/db.schema" ] || echo "schema 4.1" > "$STATE/db.schema"
    cp "$STATE/db.schema" "$STATE/db.backup"
    say "backup written: $(cat "$STATE/db.backup")" ;;
  restore)
    [ -f "$STATE/db.backup" ] || { say "no backup to restore"; exit 1; }
    cp "$STATE/db.backup" "$STATE/db.schema"
    say "database restored to: $(cat "$STATE/db.schema")" ;;
  migrate)
    echo "schema ${2:?version}" > "$STATE/db.schema"
    say "database migrated to: $(cat "$STATE/db.schema")" ;;
  *) echo "unknown action: $1" >&2; exit 2 ;;
esac
