#!/usr/bin/env bash
# Debian packages the tests need on the host: the real ipykernel (kernel tests
# drive /usr/bin/python3 -m ipykernel_launcher) and matplotlib for plot tests.
set -euo pipefail
if /usr/bin/python3 -c 'import ipykernel, matplotlib, matplotlib_inline' >/dev/null 2>&1; then exit 0; fi
echo "installing python3-ipykernel and python3-matplotlib from Debian" >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq >&2
apt-get install -y -qq python3-ipykernel python3-matplotlib >&2
