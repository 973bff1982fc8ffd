#!/usr/bin/env bash
# Builds the Ship base image (Debian packages, user shipyard, /workspace) without
# any container registry: mmdebstrap from the machine's own apt mirror, then
# `docker import`. Cached by a content hash of the package list and this script.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# SHIP_PACKAGE_FILES lists the package files (relative to this folder) of the
# image: packages.txt alone for ship:latest, plus packages-data.txt for ship:data.
files=()
for f in ${SHIP_PACKAGE_FILES:-packages.txt}; do files+=("$here/$f"); done
hash=$(cat "${files[@]}" "$here/build-base.sh" | sha256sum | cut -c1-16)
tag="shipyard-base:$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"; exit 0
fi
if ! command -v mmdebstrap >/dev/null; then
  apt-get update -qq >&2 && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap >&2
fi
# The mirror is whatever this machine's apt uses (deb822 or one-line sources), never a fixed host.
mirror=$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
    grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'; } 2>/dev/null |
  grep -v -e security -e nodesource -e google | head -n1 || true)
[ -n "$mirror" ] || { echo "no Debian mirror found in apt sources" >&2; exit 1; }
pkgs=$(cat "${files[@]}" | grep -vE '^\s*(#|$)' | paste -sd, -)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "building $tag from $mirror (a few minutes)" >&2
mmdebstrap --variant=apt --include="$pkgs" \
  --customize-hook='chroot "$1" groupadd -g 1000 shipyard' \
  --customize-hook='chroot "$1" useradd -u 1000 -g 1000 -d /workspace -s /bin/bash -M shipyard' \
  --customize-hook='mkdir -p "$1/workspace" "$1/app/skills" && chown 1000:1000 "$1/workspace" && chmod 755 "$1/workspace"' \
  --customize-hook='sed -i "s/^# *en_US.UTF-8/en_US.UTF-8/" "$1/etc/locale.gen" && chroot "$1" locale-gen >/dev/null' \
  --customize-hook='rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*.bin "$1/usr/share/doc" "$1/usr/share/man"' \
  bookworm "$tmp/rootfs.tar" "$mirror" >&2
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=en_US.UTF-8' \
  --change 'WORKDIR /workspace' \
  "$tmp/rootfs.tar" "$tag" >&2
echo "$tag"
