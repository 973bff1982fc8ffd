#!/usr/bin/env bash
# Builds the Gull base image (Debian's Chromium headless shell, fonts, tini,
# user 1000, /workspace) without any container registry: mmdebstrap from the
# machine's own apt mirror (plus its security archive, a browser needs those
# updates), then `docker import`. Cached by a content hash of the package list
# and this script. Only Depends are installed (mmdebstrap skips Recommends).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
hash=$(cat "$here/packages.txt" "$here/build-base.sh" | sha256sum | cut -c1-16)
tag="gull-base:$hash"
if docker image inspect "$tag" >/dev/null 2>&1; then
  echo "$tag"; exit 0
fi
if ! command -v mmdebstrap >/dev/null; then
  # Several image builds may start at once (make -j): one apt at a time.
  flock /tmp/shipyard-apt.lock bash -c 'command -v mmdebstrap >/dev/null || {
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mmdebstrap; }' >&2
fi
# The mirrors are whatever this machine's apt uses (deb822 or one-line sources), never a fixed host.
uris=$(
  { grep -hE '^URIs:' /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '{print $2}';
    grep -hE '^deb ' /etc/apt/sources.list 2>/dev/null | awk '{print $2}'; } 2>/dev/null || true)
mirror=$(printf '%s\n' "$uris" | grep -v -e security -e nodesource -e google | grep . | head -n1 || true)
security=$(printf '%s\n' "$uris" | grep -e security | head -n1 || true)
[ -n "$mirror" ] || { echo "no Debian mirror found in apt sources" >&2; exit 1; }
sources=("deb $mirror bookworm main" "deb $mirror bookworm-updates main")
[ -n "$security" ] && sources+=("deb $security bookworm-security main")
pkgs=$(grep -vE '^\s*(#|$)' "$here/packages.txt" | paste -sd, -)
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
echo "building $tag (a few minutes)" >&2
# Chromium runs with the GPU off (no GL, no software rasteriser), so Mesa's GL
# drivers and the LLVM they link (~160 MB, pulled in by Depends) are left out.
mmdebstrap --variant=apt --include="$pkgs" \
  --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/dri/*' \
  --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/libLLVM*' \
  --dpkgopt='path-exclude=/usr/lib/x86_64-linux-gnu/libz3.so*' \
  --customize-hook='chroot "$1" groupadd -g 1000 shipyard' \
  --customize-hook='chroot "$1" useradd -u 1000 -g 1000 -d /workspace -s /bin/bash -M shipyard' \
  --customize-hook='mkdir -p "$1/workspace" && chown 1000:1000 "$1/workspace" && chmod 755 "$1/workspace"' \
  --customize-hook='rm -rf "$1/var/lib/apt/lists/"* "$1/var/cache/apt/"*.bin "$1/usr/share/doc" "$1/usr/share/man" "$1/usr/share/locale"' \
  bookworm "$tmp/rootfs.tar" "${sources[@]}" >&2
docker import \
  --change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'WORKDIR /workspace' \
  "$tmp/rootfs.tar" "$tag" >&2
echo "$tag"
