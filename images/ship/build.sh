#!/usr/bin/env bash
# Builds ship:latest without a registry and without BuildKit: the Debian base
# image from build-base.sh, plus the static Ship binary, the built-in skills and
# the kernel's start-up bundle, committed with the runtime settings. Cached by content hash (base tag + ship
# binary + skills + this script): when ship:latest already carries the hash,
# nothing is done. Prints the image tag on stdout.
#
#   images/ship/build.sh            # build (or confirm) ship:latest
#   SHIP_IMAGE=ship:dev images/ship/build.sh
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
image=${SHIP_IMAGE:-ship:latest}

base=$(bash "$here/build-base.sh")

tmp=$(mktemp -d)
cid=""
cleanup() {
  [ -n "$cid" ] && docker rm -f "$cid" >/dev/null 2>&1 || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# Reproducible static build: same sources, same bytes, same hash.
(cd "$repo" && CGO_ENABLED=0 go build -trimpath -buildvcs=false -ldflags "-s -w" -o "$tmp/ship" ./cmd/ship)

skills_hash=$(cd "$here/skills" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -c1-64)
hash=$(printf '%s\n%s\n%s\n%s\n' "$base" "$(sha256sum "$tmp/ship" | cut -c1-64)" "$skills_hash" \
  "$(sha256sum "$here/build.sh" | cut -c1-64)" | sha256sum | cut -c1-16)

current=$(docker image inspect -f '{{ index .Config.Labels "shipyard.content-hash" }}' "$image" 2>/dev/null || true)
if [ "$current" = "$hash" ]; then
  echo "$image is up to date ($hash)" >&2
  echo "$image"
  exit 0
fi

old_id=$(docker image inspect -f '{{.Id}}' "$image" 2>/dev/null || true)
echo "building $image ($hash) from $base" >&2
# The kernel's start-up bundle: the code of every module a kernel start
# imports, in one file, so that a start reads one file instead of ~550 through
# the storage driver (internal/ship/kernel/launcher.py). The launcher writes
# it when run with SHIPYARD_KERNEL_BUNDLE_OUT, here in a throwaway container
# of the base, started like Ship starts the kernel (uid 1000 in /workspace).
mkdir -p "$tmp/lib/shipyard" && chmod 777 "$tmp/lib/shipyard"
docker run --rm --network none --user 1000:1000 --workdir /workspace -v "$tmp/lib/shipyard:/out" \
  -e SHIPYARD_KERNEL_BUNDLE_OUT=/out/kernel-start.bundle "$base" \
  python3 -c "$(cat "$repo/internal/ship/kernel/launcher.py")" -f /tmp/kernel.json >&2
# The list of the files a kernel start reads (kernel-start.files), which Ship
# reads ahead of the kernel when it starts: a second start, served from the
# bundle as in the image (mounted where the image has it), records them.
out=$(docker run --rm --network none --user 1000:1000 --workdir /workspace -v "$tmp/lib/shipyard:/usr/local/lib/shipyard" \
  -e SHIPYARD_KERNEL_FILES_OUT=/usr/local/lib/shipyard/kernel-start.files "$base" \
  python3 -c "$(cat "$repo/internal/ship/kernel/launcher.py")" -f /tmp/kernel.json 2>&1) || { echo "$out" >&2; exit 1; }
case $out in
  *"bundle used"*) ;;
  *) echo "$out" >&2; echo "the kernel start did not use its bundle" >&2; exit 1 ;;
esac
chown -R 0:0 "$tmp/lib/shipyard" && chmod 755 "$tmp/lib/shipyard" && chmod 644 "$tmp/lib/shipyard/kernel-start.bundle" "$tmp/lib/shipyard/kernel-start.files"
cid=$(docker create "$base" /bin/true)
docker cp "$tmp/ship" "$cid:/usr/local/bin/ship"
docker cp "$here/skills/." "$cid:/app/skills/"
docker cp "$tmp/lib/shipyard" "$cid:/usr/local/lib/"
docker commit \
  --change 'USER 1000:1000' \
  --change 'WORKDIR /workspace' \
  --change 'ENV HOME=/workspace' \
  --change 'ENV LANG=en_US.UTF-8' \
  --change 'ENV SHIP_PORT=8123' \
  --change "ENV SHIP_IMAGE=$image" \
  --change 'EXPOSE 8123' \
  --change 'ENTRYPOINT ["/usr/bin/tini", "--", "/usr/local/bin/ship"]' \
  --change 'CMD []' \
  --change "LABEL shipyard.content-hash=$hash" \
  --change "LABEL shipyard.base=$base" \
  "$cid" "$image" >/dev/null
# The replaced image is now untagged: drop it unless a container still uses it.
if [ -n "$old_id" ]; then docker rmi "$old_id" >/dev/null 2>&1 || true; fi
echo "$image"
