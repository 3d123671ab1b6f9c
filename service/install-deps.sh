#!/usr/bin/env bash
# Installs the Debian 12 packages rarecon needs besides Node.js 20.12+ and npm:
# the compilers for better-sqlite3's source build (g++, make, python3), the eBPF
# toolchain for native-events/, and the tools the tests use (rsyslog, promtool,
# systemd-analyze, libseccomp, dnsmasq, iproute2, PostgreSQL 15 for the
# PostgreSQL store's tests and bench ...). As root it runs as it is;
# otherwise through sudo. Safe to run again. Prints each step.
set -euo pipefail
say() { echo "install-deps: $*"; }
if [ "$(id -u)" -ne 0 ]; then
  if command -v sudo >/dev/null 2>&1; then
    say "not root: running through sudo"
    exec sudo -E bash "$0" "$@"
  fi
  echo "install-deps: run as root (no sudo here)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

# Node.js first: Debian 12's own nodejs is 18, too old; 20.12 or later comes from NodeSource or nvm.
if ! command -v node >/dev/null 2>&1; then
  echo "install-deps: Node.js is not installed: rarecon needs Node.js 20.12 or later (20.x or 22.x) with npm" >&2
  exit 1
fi
if ! node -e 'const [a, b] = process.versions.node.split(".").map(Number); process.exit((a === 20 && b >= 12) || a === 21 || a === 22 ? 0 : 1)'; then
  echo "install-deps: rarecon needs Node.js 20.12 or later, before 23 (found $(node --version))" >&2
  exit 1
fi
say "Node.js $(node --version), npm $(npm --version 2>/dev/null || echo missing)"

PACKAGES=(
  # better-sqlite3 builds from source when no prebuilt binary can be fetched
  g++ make python3
  # native-events: the eBPF helper and the line scanner
  clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev pkg-config gcc libc6-dev
  # the tests: network namespaces and a DNS server, syslog, TLS, file attributes, rpm, promtool,
  # systemd-analyze, setpriv/unshare and libseccomp (the unit's sandbox)
  iproute2 curl dnsmasq-base rsyslog rsyslog-gnutls openssl ca-certificates procps attr rpm util-linux
  prometheus systemd libseccomp-dev
  # the PostgreSQL store (server.store postgresql): its tests start throwaway clusters of these binaries, pg_basebackup too
  postgresql-15
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ "${#missing[@]}" -eq 0 ]; then
  say "all ${#PACKAGES[@]} system packages are installed"
else
  say "apt-get update"
  apt-get update -qq
  say "installing ${#missing[@]} packages: ${missing[*]}"
  # policy-rc.d keeps a package's service (prometheus, rsyslog) from starting here.
  printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 0755 /usr/sbin/policy-rc.d
  trap 'rm -f /usr/sbin/policy-rc.d' EXIT
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# Debian's package makes a default cluster (15/main, port 5432); the tests run their own throwaway ones,
# so the default one is stopped here if it runs, and kept from starting at boot.
if command -v pg_lsclusters >/dev/null 2>&1 && pg_lsclusters --no-header 2>/dev/null | grep -q '^15 *main .* online'; then
  say "stopping Debian's default PostgreSQL cluster 15/main (the tests start their own)"
  pg_ctlcluster 15 main stop || true
fi
if [ -f /etc/postgresql/15/main/start.conf ] && ! grep -qx 'manual' /etc/postgresql/15/main/start.conf; then
  echo manual > /etc/postgresql/15/main/start.conf
fi
say "system packages ready"
