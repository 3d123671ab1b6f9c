#!/usr/bin/env bash
# Installs what rarecon needs on Debian 12 besides Node.js 20 and npm:
# the eBPF toolchain for native-events/ and the tools the end-to-end tests use.
# Run as root. Safe to run again.
set -euo pipefail
if [ "$(id -u)" -ne 0 ]; then
  echo "install-deps.sh: run as root (sudo $0)" >&2
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  clang llvm libbpf-dev bpftool libelf-dev zlib1g-dev make pkg-config gcc libc6-dev \
  iproute2 curl dnsmasq-base rsyslog rsyslog-gnutls openssl ca-certificates procps attr rpm util-linux >/dev/null
node_major=$(node -p 'process.versions.node.split(".")[0]' 2>/dev/null || echo 0)
if [ "$node_major" != "20" ] && [ "$node_major" != "21" ] && [ "$node_major" != "22" ]; then
  echo "install-deps.sh: rarecon needs Node.js 20 (found: $(node --version 2>/dev/null || echo none))" >&2
  exit 1
fi
echo "install-deps.sh: system packages ready"
