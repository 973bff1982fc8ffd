#!/usr/bin/env bash
# Registers gVisor (Debian's runsc) as the Docker runtime "runsc" so that
# profiles with `runtime: runsc` can start. Idempotent: installs runsc when it
# is missing, merges the runtime into /etc/docker/daemon.json only when it is
# not there as wanted, and then reloads the daemon with SIGHUP, which applies
# runtime changes without stopping running containers.
#
# Flags given to runsc:
#   --platform=ptrace  gVisor's ptrace platform: works in VMs without nested
#                      virtualisation (KVM is not available on these machines).
#   --network=host     gVisor uses the kernel network stack of the container's
#                      own network namespace (the sandbox bridge and Bay's
#                      firewall rules apply as for runc). gVisor's own netstack
#                      refuses to start in this VM ("cannot run with network
#                      enabled in root network namespace": it cannot read PID 1's
#                      namespace here), see docs/security.md.
set -euo pipefail
conf=${DOCKER_DAEMON_JSON:-/etc/docker/daemon.json}
if ! command -v runsc >/dev/null 2>&1; then
  echo "installing Debian's runsc (gVisor)" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq runsc >&2
fi
runsc_path=$(command -v runsc)
want=$(printf '{"path":"%s","runtimeArgs":["--platform=ptrace","--network=host"]}' "$runsc_path")
# registered: whether the engine runs runsc as wanted. docker info's answer is
# read whole, then searched: `producer | grep -q` fails under pipefail when grep
# stops early and the producer dies of SIGPIPE.
registered() { grep -q -- '--network=host' <<<"$(docker info --format '{{json .Runtimes.runsc}}' 2>/dev/null)"; }
if registered; then
  exit 0
fi
mkdir -p "$(dirname "$conf")"
[ -s "$conf" ] || echo '{}' >"$conf"
python3 - "$conf" "$want" <<'PY'
import json, sys
path, want = sys.argv[1], json.loads(sys.argv[2])
with open(path) as f:
    d = json.load(f)
d.setdefault("runtimes", {})["runsc"] = want
tmp = path + ".tmp"
with open(tmp, "w") as f:
    json.dump(d, f, indent=2)
    f.write("\n")
import os
os.replace(tmp, path)
PY
echo "registered runsc in $conf; reloading the Docker daemon (SIGHUP, containers keep running)" >&2
pid=$(pidof dockerd || true)
[ -n "$pid" ] || { echo "dockerd is not running" >&2; exit 1; }
kill -HUP $pid
for _ in $(seq 1 20); do
  registered && exit 0
  sleep 0.5
done
echo "the Docker daemon did not pick up the runsc runtime (see its log)" >&2
exit 1
