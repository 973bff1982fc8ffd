#!/usr/bin/env bash
# Builds bay:latest without a registry and without BuildKit. Bay is one static
# Go binary, so the image has no distribution at all: the binary, the host's CA
# bundle (PostgreSQL over TLS, outbound HTTPS), /etc/passwd and /etc/group with
# the unprivileged user bay (65532), /etc/nsswitch.conf, /tmp and the data
# directory /var/lib/bay (owned by bay). One tar, one `docker import` with the
# runtime settings. Cached by content hash (binary + CA bundle + the files of
# this folder): when bay:latest already carries the hash, nothing is done.
# Prints the image tag on stdout.
#
#   images/bay/build.sh             # build (or confirm) bay:latest
#   BAY_IMAGE=bay:dev images/bay/build.sh
#   BAY_CA_BUNDLE=/path/ca.pem images/bay/build.sh   # another CA bundle
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=${BAY_IMAGE:-bay:latest}
ca=${BAY_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
uid=65532

[ -s "$ca" ] || { echo "no CA bundle at $ca (install ca-certificates or set BAY_CA_BUNDLE)" >&2; exit 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
root=$tmp/root

# Reproducible static build: same sources, same bytes, same hash.
mkdir -p "$root/usr/local/bin"
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$root/usr/local/bin/bay" ./cmd/bay)
# No libc in the image: a dynamically linked binary would not even start.
linkage=$(LC_ALL=C ldd "$root/usr/local/bin/bay" 2>&1 || true)
if [[ $linkage != *"not a dynamic executable"* ]]; then
  echo "bay is not statically linked:" >&2
  echo "$linkage" >&2
  exit 1
fi

hash=$(
  {
    sha256sum "$root/usr/local/bin/bay" | cut -c1-64
    sha256sum "$ca" | cut -c1-64
    cd "$here" && sha256sum build.sh passwd group nsswitch.conf
  } | sha256sum | cut -c1-16)

current=$(docker image inspect -f '{{ index .Config.Labels "shipyard.content-hash" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
  echo "$image is up to date ($hash)" >&2
  echo "$image"
  exit 0
fi

mkdir -p "$root/etc/ssl/certs" "$root/tmp" "$root/var/lib/bay"
install -m 0644 "$ca" "$root/etc/ssl/certs/ca-certificates.crt"
install -m 0644 "$here/passwd" "$here/group" "$here/nsswitch.conf" "$root/etc/"
chmod 1777 "$root/tmp"
chmod 0755 "$root/usr/local/bin/bay"
chmod 0750 "$root/var/lib/bay"
# Everything belongs to root but the data directory, which is Bay's; fixed
# times and order, so the same inputs give the same layer.
opts=(--sort=name --mtime=@0 --numeric-owner --format=gnu -C "$root")
tar -cf "$tmp/rootfs.tar" "${opts[@]}" --owner=0 --group=0 --exclude=./var/lib/bay .
tar -rf "$tmp/rootfs.tar" "${opts[@]}" --owner=$uid --group=$uid ./var/lib/bay

old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
echo "building $image ($hash)" >&2
docker import \
  --change "USER $uid:$uid" \
  --change 'WORKDIR /var/lib/bay' \
  --change 'ENV BAY_DATA_DIR=/var/lib/bay' \
  --change 'EXPOSE 8114' \
  --change 'ENTRYPOINT ["/usr/local/bin/bay"]' \
  --change 'CMD ["serve"]' \
  --change "LABEL shipyard.content-hash=$hash" \
  "$tmp/rootfs.tar" "$image" >/dev/null
# The replaced image is now untagged: drop it unless a container still uses it.
new_id=$(docker image inspect -f '{{.Id}}' "$image")
if [ -n "$old_id" ] && [ "$old_id" != "$new_id" ]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
echo "$image"
