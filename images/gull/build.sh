#!/usr/bin/env bash
# Builds gull:latest (the browser runtime) without a registry and without
# BuildKit: the Debian base image from build-base.sh (Chromium's headless
# shell, fonts, tini, user 1000), plus the static Gull binary, committed with
# the runtime settings. Cached by content hash (base tag + gull binary + this
# script): when gull:latest already carries the hash, nothing is done.
# Prints the image tag on stdout.
#
#   images/gull/build.sh             # build (or confirm) gull:latest
#   GULL_IMAGE=gull:dev images/gull/build.sh
#   images/gull/build.sh base        # only the base image (make image runs it beside Ship's)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=${GULL_IMAGE:-gull:latest}

base=$(bash "$here/build-base.sh")
[ "${1:-}" = base ] && { echo "$base"; exit 0; }

tmp=$(mktemp -d)
cid=""
cleanup() {
  [ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Reproducible static build: same sources, same bytes, same hash.
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/gull" ./cmd/gull)

hash=$(printf '%s\n%s\n%s\n' "$base" "$(sha256sum "$tmp/gull" | cut -c1-64)" \
  "$(sha256sum "$here/build.sh" | cut -c1-64)" | sha256sum | cut -c1-16)

current=$(docker image inspect -f '{{ index .Config.Labels "shipyard.content-hash" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
  echo "$image is up to date ($hash)" >&2
  echo "$image"
  exit 0
fi

old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
echo "building $image ($hash) from $base" >&2
cid=$(docker create "$base" /bin/true)
docker cp "$tmp/gull" "$cid:/usr/local/bin/gull"
docker commit \
  --change 'USER 1000:1000' \
  --change 'WORKDIR /workspace' \
  --change 'ENV HOME=/workspace' \
  --change 'ENV LANG=C.UTF-8' \
  --change 'EXPOSE 8115' \
  --change 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/gull"]' \
  --change 'CMD []' \
  --change "LABEL shipyard.content-hash=$hash" \
  --change "LABEL shipyard.base=$base" \
  "$cid" "$image" >/dev/null
# The replaced image is now untagged: drop it unless a container still uses it.
if [ -n "$old_id" ]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
echo "$image"
