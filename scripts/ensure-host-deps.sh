#!/usr/bin/env bash
# Debian packages the tests need on the host: the real ipykernel (kernel tests
# drive /usr/bin/python3 -m ipykernel_launcher), matplotlib for plot tests, and
# iproute2's ip (the egress tests make a network namespace as "the outside").
set -euo pipefail
if ! command -v ip >/dev/null 2>&1; then
  echo "installing iproute2 from Debian" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq iproute2 >&2
fi
if /usr/bin/python3 -c 'import ipykernel, matplotlib, matplotlib_inline' >/dev/null 2>&1; then exit 0; fi
echo "installing python3-ipykernel and python3-matplotlib from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq python3-ipykernel python3-matplotlib >&2
