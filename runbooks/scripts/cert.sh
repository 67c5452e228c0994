#!/usr/bin/env bash
# cert.sh renew|restore|verify: a stand-in TLS certificate kept as files.
. "$(dirname "$0")/_state.sh"
maybe_fail
case "${1:?usage: cert.sh renew|restore|verify}" in
  renew)
    [ -f "$STATE/cert.pem" ] && cp "$STATE/cert.pem" "$STATE/cert.pem.previous"
    echo "certificate issued $(date -u +%F) valid 397 days" > "$STATE/cert.pem"
    say "certificate renewed" ;;
  restore)
    if [ -f "$STATE/cert.pem.previous" ]; then mv "$STATE/cert.pem.previous" "$STATE/cert.pem"; else rm -f "$STATE/cert.pem"; fi
    say "previous certificate restored" ;;
  verify)
    [ -f "$STATE/cert.pem" ] || { say "no certificate installed"; exit 1; }
    say "certificate ok: $(cat "$STATE/cert.pem")" ;;
  *) echo "unknown action: $1" >&2; exit 2 ;;
esac
