#!/usr/bin/env bash
# The README's two commands, on a fresh Debian 12 checkout (as root, or a user with sudo):
#   ./setup.sh run    set everything up, then run the daemon on the embedded default
#   ./setup.sh test   set everything up, then run the tests
# Set-up: the system packages (service/install-deps.sh), the node packages
# (npm ci, skipped when package-lock.json has not changed since the last one),
# the TypeScript, the eBPF helper and the line scanner. Prints each step.
set -euo pipefail
cd "$(dirname "$0")"
what=${1:-}
case "$what" in
  run | test) ;;
  *) echo "usage: ./setup.sh run|test   (set up, then run the daemon or the tests)" >&2; exit 1 ;;
esac
step() { echo "setup: [$1/4] $2"; }
start=$(date +%s)

step 1 "system packages (service/install-deps.sh)"
bash service/install-deps.sh

step 2 "node packages (npm ci; better-sqlite3 compiles for a few minutes when no prebuilt binary can be fetched)"
stamp=node_modules/.rarecon-lock-sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ] && [ -d node_modules/better-sqlite3 ]; then
  echo "setup: node_modules matches package-lock.json"
else
  npm ci --no-audit --no-fund --foreground-scripts --loglevel=warn
  echo "$want" > "$stamp"
fi

step 3 "build: TypeScript, the eBPF helper and the line scanner (npm run build)"
npm run --silent build
echo "setup: ready in $(( $(date +%s) - start )) s"

if [ "$what" = run ]; then
  step 4 "rarecon run (the embedded default: live sensor, state in /var/lib/rarecon, alerts on stdout; Ctrl-C stops it)"
  if [ "$(id -u)" -ne 0 ]; then exec sudo ./rarecon run; fi
  exec ./rarecon run
fi
step 4 "npm test"
exec npm test
