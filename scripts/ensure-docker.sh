#!/usr/bin/env bash
# Makes a Docker Engine available: installs Debian's docker.io when there is no
# docker at all, and starts the daemon when none answers.
set -euo pipefail
if docker info >/dev/null 2>&1; then exit 0; fi
if ! command -v dockerd >/dev/null 2>&1; then
  echo "installing Debian's docker.io" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq docker.io >&2
fi
echo "starting the Docker daemon" >&2
if command -v service >/dev/null 2>&1 && service docker start >&2 2>&1; then :; else
  nohup dockerd >/var/log/dockerd.log 2>&1 &
fi
for _ in $(seq 1 60); do
  docker info >/dev/null 2>&1 && exit 0
  sleep 1
done
echo "the Docker daemon did not come up (see /var/log/dockerd.log)" >&2
exit 1
