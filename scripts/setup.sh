#!/usr/bin/env bash
# Sets up a fresh Debian 12 machine for sluice: the Debian tools the tests and
# the lab drive (tcpdump, iproute2, ping, conntrack-tools, curl, ethtool,
# editcap/dumpcap for pcapng, nft, g++ and make for the addon), then the npm
# packages from package-lock.json, the native addon and the TypeScript build
# (`prepare` runs node-gyp, then tsc).
# Idempotent: a second run installs nothing new.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(tcpdump iproute2 iptables nftables iputils-ping conntrack curl ethtool wireshark-common python3 g++ make)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: need root to install Debian packages: ${missing[*]}" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# `npm install`, not `npm ci`: the registry these machines reach carries only
# the linux-x64 builds of optional platform packages (rollup's), so the lock
# cannot list the others and `npm ci` refuses it as "out of sync". `npm install`
# still installs exactly the versions package-lock.json pins, and leaves it as is.
# It runs `prepare` (tsc) too.
npm install --no-audit --no-fund
