#!/usr/bin/env bash
# kube.sh — a real single-node Kubernetes cluster for tests, built from the Go
# module proxy and Debian's packages, and print its kubeconfig path.
#
#   KUBECONFIG=$(scripts/kube.sh up)   # build (cached), install, start; print kubeconfig path
#   scripts/kube.sh build              # only build the binaries (cached by version)
#   scripts/kube.sh import [IMAGE]     # (re)import a Docker image (default ship:latest)
#   scripts/kube.sh down               # stop everything `up` started and clean up after it
#   scripts/kube.sh status             # exit 0 when the cluster answers
#
# Only the kubeconfig path goes to stdout; progress goes to the log file
# ($STATE/kube.log) and a line or two to stderr. See docs/operations.md
# ("A test cluster") for what runs and why.
#
# Settings (environment):
#   SHIPYARD_KUBE_CACHE  binaries, cached by version    (default /var/cache/shipyard/kube)
#   SHIPYARD_KUBE_DIR    cluster state (certs, etcd, containerd root, logs)
#                                                        (default /var/tmp/shipyard-kube)
#   SHIPYARD_KUBE_IMAGES Docker images imported into the cluster's containerd
#                        (default ship:latest gull:latest bay:latest; missing images are skipped with a note)
#   SHIPYARD_KUBE_POD_CIDR pod subnet of the CNI bridge (default 10.244.0.0/24)
set -euo pipefail

K8S_VERSION=v1.37.2
ETCD_VERSION=v3.7.3
CACHE=$(realpath -m "${SHIPYARD_KUBE_CACHE:-/var/cache/shipyard/kube}")
BIN=$CACHE/$K8S_VERSION-etcd$ETCD_VERSION/bin
export PATH=/usr/local/go/bin:$PATH

log() { echo "kube.sh: $*" >&2; }
die() { log "$*"; exit 1; }

# ---------------------------------------------------------------- build
K8S_CMDS=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl)

have_binaries() {
	local b
	for b in "${K8S_CMDS[@]}" etcd; do [[ -x $BIN/$b ]] || return 1; done
}

# build compiles the Kubernetes commands and etcd once per version into $BIN.
# k8s.io/kubernetes is not meant to be required as a module: a scratch module
# requires it and repeats its replace lines for the staging modules, pointed at
# their published versions (v0.MINOR.PATCH).
build() {
	have_binaries && return 0
	mkdir -p "$CACHE"
	exec 8>"$CACHE/.build.lock"
	flock 8
	have_binaries && return 0
	local src=$CACHE/src-$K8S_VERSION tmp=$BIN.tmp gomod stage minor
	stage=v0.${K8S_VERSION#v1.}
	minor=${K8S_VERSION#v1.}; minor=${minor%%.*}
	rm -rf "$src" "$tmp"
	mkdir -p "$src" "$tmp"
	log "building Kubernetes $K8S_VERSION and etcd $ETCD_VERSION into $BIN (first run only: ~15 min on 2 cores)"
	gomod=$(go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')
	[[ -f $gomod ]] || die "cannot read k8s.io/kubernetes@$K8S_VERSION's go.mod"
	(
		cd "$src"
		go mod init shipyard.invalid/kubebuild >/dev/null 2>&1
		go mod edit -go="$(sed -n 's/^go //p' "$gomod")" -require="k8s.io/kubernetes@$K8S_VERSION"
		# One replace per staging module, except the samples nothing imports.
		sed -n 's#^[[:space:]]*\(k8s.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod" |
			grep -v -e '^k8s.io/sample-cli-plugin$' -e '^k8s.io/sample-controller$' |
			while read -r m; do go mod edit -replace="$m=$m@$stage"; done
		GOFLAGS=-mod=mod go mod download k8s.io/kubernetes
		local ld="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION"
		ld+=" -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor"
		ld+=" -X k8s.io/component-base/version.gitTreeState=clean"
		ld+=" -X k8s.io/component-base/version.buildDate=1970-01-01T00:00:00Z"
		local pkgs=() c
		for c in "${K8S_CMDS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "$ld" -o "$tmp/" "${pkgs[@]}"
	) || die "building Kubernetes failed"
	mkdir -p "$src/etcd"
	(
		cd "$src/etcd"
		go mod init shipyard.invalid/etcdbuild >/dev/null 2>&1
		go mod edit -require="go.etcd.io/etcd/server/v3@$ETCD_VERSION"
		CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$tmp/etcd" go.etcd.io/etcd/server/v3
	) || die "building etcd failed"
	rm -rf "$BIN"
	mv "$tmp" "$BIN"
	rm -rf "$src"
	log "binaries ready in $BIN"
}


# ---------------------------------------------------------------- cluster
STATE=$(realpath -m "${SHIPYARD_KUBE_DIR:-/var/tmp/shipyard-kube}")
IMAGES=${SHIPYARD_KUBE_IMAGES:-ship:latest gull:latest bay:latest}
POD_CIDR=${SHIPYARD_KUBE_POD_CIDR:-10.244.0.0/24}
SERVICE_CIDR=10.96.0.0/16
API_PORT=16443
ETCD_PORT=23790
ETCD_PEER_PORT=23800
KUBELET_PORT=10250
NODE=shipyard-kube-node
BRIDGE=shipkube0
CNI_NET=shipyard-kube
PAUSE_IMAGE=shipyard.invalid/pause:3.10
PKI=$STATE/pki
RUN=$STATE/run
CTRD=$STATE/containerd
CTRD_SOCK=$CTRD/containerd.sock
KUBECONFIG_ADMIN=$STATE/admin.kubeconfig
LOG=$STATE/kube.log
CNI_BIN=/usr/lib/cni
DAEMONS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet)

ctr_() { ctr --address "$CTRD_SOCK" --namespace k8s.io "$@"; }
# has_image REF: whether the cluster's containerd has REF. The list is read
# whole first: with pipefail, `ctr ... | grep -q` fails when grep stops
# reading at an early match and ctr dies of SIGPIPE (a fresh machine's CI run
# failed so on bay:latest, the first line of the list).
has_image() {
	local list
	list=$(ctr_ images ls -q 2>/dev/null) || return 1
	grep -qxF "$1" <<<"$list"
}
kubectl_() { "$BIN/kubectl" --kubeconfig "$KUBECONFIG_ADMIN" --request-timeout=10s "$@"; }
note() { echo "$(date -u +%FT%TZ) $*" >>"$LOG"; }

# host_ip is the address of the interface of the default route: the API server
# must advertise a non-loopback address, and the apiserver reaches the kubelet there.
host_ip() {
	local dev ip
	dev=$(ip -4 route show default 2>/dev/null | awk '{for(i=1;i<NF;i++) if ($i=="dev") {print $(i+1); exit}}')
	[[ -n $dev ]] && ip=$(ip -4 -o addr show dev "$dev" scope global | awk '{sub(/\/.*/, "", $4); print $4; exit}')
	if [[ -z ${ip:-} ]]; then
		ip=$(ip -4 -o addr show scope global | awk '$2 !~ /^(docker|br-|veth|'"$BRIDGE"')/ {sub(/\/.*/, "", $4); print $4; exit}')
	fi
	[[ -n $ip ]] || die "no non-loopback IPv4 address to advertise"
	echo "$ip"
}

# our_pid NAME: the pid of daemon NAME if it is alive and ours (its command line
# names our state directory or socket), else fails.
our_pid() {
	local pid cmd
	pid=$(cat "$RUN/$1.pid" 2>/dev/null) || return 1
	[[ $pid =~ ^[0-9]+$ && -r /proc/$pid/cmdline ]] || return 1
	[[ $(awk '{print $3}' "/proc/$pid/stat" 2>/dev/null) != Z ]] || return 1
	cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null) || return 1
	[[ $cmd == *"$STATE"* ]] || return 1
	echo "$pid"
}

# spawn NAME CMD...: start a daemon in its own session, log to $STATE/logs/NAME.log.
spawn() {
	local name=$1
	shift
	mkdir -p "$STATE/logs" "$RUN"
	note "starting $name: $*"
	(
		# Do not hand our descriptors (the lock, the caller's pipes) to the daemon.
		for fd in /proc/$BASHPID/fd/*; do
			n=${fd##*/}
			((n > 2)) && eval "exec $n>&-" 2>/dev/null
		done
		exec setsid "$@" </dev/null >>"$STATE/logs/$name.log" 2>&1
	) &
	echo $! >"$RUN/$name.pid"
}

# wait_for WHAT SECONDS CMD...: retry CMD every 0.2 s.
wait_for() {
	local what=$1 secs=$2 i
	shift 2
	for ((i = 0; i < secs * 5; i++)); do
		"$@" >/dev/null 2>&1 && return 0
		sleep 0.2
	done
	note "timed out waiting for $what"
	return 1
}

cert() { # cert NAME CN [O] [SANs]: a key and a certificate signed by our CA
	local name=$1 cn=$2 org=${3:-} san=${4:-} subj ext
	[[ -f $PKI/$name.crt ]] && return 0
	subj="/CN=$cn"
	[[ -n $org ]] && subj="/O=$org$subj"
	openssl genrsa -out "$PKI/$name.key" 2048 2>>"$LOG"
	openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>>"$LOG"
	ext=$PKI/$name.ext
	{
		echo "basicConstraints=CA:FALSE"
		echo "keyUsage=critical,digitalSignature,keyEncipherment"
		if [[ -n $san ]]; then
			echo "extendedKeyUsage=serverAuth,clientAuth"
			echo "subjectAltName=$san"
		else
			echo "extendedKeyUsage=clientAuth"
		fi
	} >"$ext"
	openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -CAcreateserial \
		-days 3650 -sha256 -extfile "$ext" -out "$PKI/$name.crt" 2>>"$LOG"
	rm -f "$PKI/$name.csr" "$ext"
}

kubeconfig() { # kubeconfig FILE CERTNAME USER
	cat >"$1" <<KC
apiVersion: v1
kind: Config
clusters:
- name: shipyard-kube
  cluster:
    server: https://127.0.0.1:$API_PORT
    certificate-authority: $PKI/ca.crt
users:
- name: $3
  user:
    client-certificate: $PKI/$2.crt
    client-key: $PKI/$2.key
contexts:
- name: shipyard-kube
  context: {cluster: shipyard-kube, user: $3}
current-context: shipyard-kube
KC
	chmod 0600 "$1"
}

pki() {
	local ip=$1
	mkdir -p "$PKI"
	chmod 0700 "$PKI"
	# Certificates name the host address: make new ones when it changed.
	if [[ $(cat "$PKI/host-ip" 2>/dev/null) != "$ip" ]]; then
		rm -f "$PKI"/*.crt "$PKI"/*.key
		echo "$ip" >"$PKI/host-ip"
	fi
	if [[ ! -f $PKI/ca.crt ]]; then
		openssl genrsa -out "$PKI/ca.key" 2048 2>>"$LOG"
		openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=shipyard-kube-ca" -days 3650 -sha256 \
			-out "$PKI/ca.crt" 2>>"$LOG"
	fi
	cert apiserver kube-apiserver "" "IP:127.0.0.1,IP:$ip,IP:10.96.0.1,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
	cert apiserver-kubelet-client kube-apiserver-kubelet-client system:masters
	cert admin kubernetes-admin system:masters
	cert controller-manager system:kube-controller-manager
	cert scheduler system:kube-scheduler
	cert kubelet-client "system:node:$NODE" system:nodes
	cert kubelet-serving "$NODE" "" "IP:$ip,IP:127.0.0.1,DNS:$NODE"
	if [[ ! -f $PKI/sa.key ]]; then
		openssl genrsa -out "$PKI/sa.key" 2048 2>>"$LOG"
		openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>>"$LOG"
	fi
	kubeconfig "$KUBECONFIG_ADMIN" admin kubernetes-admin
	kubeconfig "$STATE/controller-manager.kubeconfig" controller-manager system:kube-controller-manager
	kubeconfig "$STATE/scheduler.kubeconfig" scheduler system:kube-scheduler
	kubeconfig "$STATE/kubelet.kubeconfig" kubelet-client "system:node:$NODE"
}

# pause_image builds the pod sandbox ("pause") image from kubernetes' own
# source, so no registry is needed, and loads it into Docker (to save it).
pause_image() {
	docker image inspect "$PAUSE_IMAGE" >/dev/null 2>&1 && return 0
	local src dir
	src=$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/build/pause/linux/pause.c
	[[ -f $src ]] || go mod download "k8s.io/kubernetes@$K8S_VERSION" >>"$LOG" 2>&1
	[[ -f $src ]] || die "no $src"
	dir=$(mktemp -d)
	gcc -Os -static -o "$dir/pause" "$src" -DVERSION="$K8S_VERSION" 2>>"$LOG" || { rm -rf "$dir"; die "compiling pause.c failed (gcc, libc6-dev)"; }
	strip "$dir/pause" 2>/dev/null || true
	tar -C "$dir" -c pause | docker import -c 'ENTRYPOINT ["/pause"]' - "$PAUSE_IMAGE" >>"$LOG" 2>&1 ||
		{ rm -rf "$dir"; die "docker import of the pause image failed"; }
	rm -rf "$dir"
}

# import_image IMAGE: load a Docker image into the cluster's containerd, unless
# the same image id was loaded before and is still there.
import_image() {
	local img=$1 id stamp ref
	id=$(docker image inspect -f '{{.Id}}' "$img" 2>/dev/null) || { log "image $img is not in Docker (yet): not imported"; return 0; }
	stamp=$STATE/images/$(echo "$img" | tr '/:' '__').id
	ref=$img
	[[ $ref == */* ]] || ref=docker.io/library/$ref
	[[ ${ref##*/} == *:* ]] || ref=$ref:latest
	if [[ $(cat "$stamp" 2>/dev/null) == "$id" ]] && has_image "$ref"; then
		return 0
	fi
	log "importing $img ($id) into the cluster's containerd"
	note "importing $img $id as $ref"
	mkdir -p "$STATE/images"
	docker save "$img" | ctr_ images import - >>"$LOG" 2>&1 || die "importing $img failed (see $LOG)"
	has_image "$ref" || die "imported $img but containerd has no $ref"
	echo "$id" >"$stamp"
}

containerd_config() {
	mkdir -p "$CTRD" "$STATE/cni/net.d"
	cat >"$CTRD/config.toml" <<EOF
# scripts/kube.sh: a private containerd for the test cluster (never Docker's)
version = 2
root = "$CTRD/root"
state = "$CTRD/state"
oom_score = 0
[grpc]
  address = "$CTRD_SOCK"
[ttrpc]
  address = "$CTRD/containerd.sock.ttrpc"
[debug]
  address = "$CTRD/debug.sock"
[metrics]
  address = ""
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$PAUSE_IMAGE"
  # This VM's bounding set lacks CAP_SYS_RESOURCE: without this every pod
  # sandbox fails with "can't get final child's PID from pipe: EOF".
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "$CNI_BIN"
    conf_dir = "$STATE/cni/net.d"
EOF
	cat >"$STATE/cni/net.d/10-$CNI_NET.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "$CNI_NET",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$BRIDGE",
      "isGateway": true,
      "ipMasq": true,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$STATE/cni/ipam",
        "ranges": [[{"subnet": "$POD_CIDR"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
}

kubelet_config() {
	local ip=$1
	mkdir -p "$STATE/kubelet"
	cat >"$STATE/kubelet/config.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $ip
port: $KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: 10248
# The machine is cgroup v1 without systemd as init for us.
failCgroupV1: false
cgroupDriver: cgroupfs
failSwapOn: false
makeIPTablesUtilChains: false
containerRuntimeEndpoint: unix://$CTRD_SOCK
podCIDR: $POD_CIDR
resolvConf: /etc/resolv.conf
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: false}
  x509: {clientCAFile: $PKI/ca.crt}
authorization:
  mode: AlwaysAllow
tlsCertFile: $PKI/kubelet-serving.crt
tlsPrivateKeyFile: $PKI/kubelet-serving.key
# A small disk must not evict; imported images must never be collected.
evictionHard:
  memory.available: "100Mi"
  nodefs.available: "1%"
  nodefs.inodesFree: "1%"
  imagefs.available: "1%"
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
serializeImagePulls: false
EOF
}

healthy() {
	[[ -f $KUBECONFIG_ADMIN && -x $BIN/kubectl ]] || return 1
	for d in "${DAEMONS[@]}"; do our_pid "$d" >/dev/null || return 1; done
	kubectl_ get --raw /readyz >/dev/null 2>&1 || return 1
	[[ $(kubectl_ get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null) == True ]]
}

node_untainted() {
	[[ $(kubectl_ get node "$NODE" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}{.spec.taints}' 2>/dev/null) == True ]]
}

install_packages() {
	local missing=()
	command -v containerd >/dev/null || missing+=(containerd)
	command -v runc >/dev/null || missing+=(runc)
	[[ -x $CNI_BIN/bridge && -x $CNI_BIN/host-local && -x $CNI_BIN/portmap ]] || missing+=(containernetworking-plugins)
	command -v gcc >/dev/null || missing+=(gcc libc6-dev)
	command -v openssl >/dev/null || missing+=(openssl)
	command -v iptables >/dev/null || missing+=(iptables)
	((${#missing[@]} == 0)) && return 0
	[[ $(id -u) -eq 0 ]] || die "missing ${missing[*]}; installing needs root"
	log "installing ${missing[*]} (apt-get)"
	export DEBIAN_FRONTEND=noninteractive
	if ! apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1; then
		apt-get update -q >>"$LOG" 2>&1
		apt-get install -y -q --no-install-recommends "${missing[@]}" >>"$LOG" 2>&1 || die "apt-get install ${missing[*]} failed"
	fi
}

# forward_rules -A|-D: let pods talk to each other and out. Docker sets the
# FORWARD policy to DROP and makes bridged traffic pass iptables
# (br_netfilter), so without these a pod cannot reach another pod (Bay in the
# cluster cannot reach Ship) nor anything beyond the host.
forward_rules() {
	local r
	for r in "-i $BRIDGE" "-o $BRIDGE -m conntrack --ctstate RELATED,ESTABLISHED"; do
		# shellcheck disable=SC2086
		if iptables -C FORWARD $r -m comment --comment "$CNI_NET" -j ACCEPT 2>/dev/null; then
			[[ $1 == -D ]] && iptables -D FORWARD $r -m comment --comment "$CNI_NET" -j ACCEPT
		else
			[[ $1 == -A ]] && iptables -A FORWARD $r -m comment --comment "$CNI_NET" -j ACCEPT
		fi
	done
	return 0
}

up() {
	[[ $(id -u) -eq 0 ]] || die "the test cluster needs root (containerd, kubelet, CNI)"
	mkdir -p "$STATE"
	touch "$LOG"
	exec 9>"$STATE/.lock"
	flock 9
	if healthy; then
		forward_rules -A
		for img in $IMAGES; do import_image "$img"; done
		echo "$KUBECONFIG_ADMIN"
		return 0
	fi
	local t0=$SECONDS ip
	note "---- up"
	# Whatever is left of an earlier cluster (crashed, or ended with the machine) goes first.
	down_locked
	install_packages
	build
	forward_rules -A
	ip=$(host_ip)
	pki "$ip"
	# kubectl beside the kubeconfig, for people and tests (kubectl apply -k deploy/k8s).
	ln -sfn "$BIN/kubectl" "$STATE/kubectl"
	pause_image
	containerd_config
	kubelet_config "$ip"
	log "starting the cluster (log: $LOG)"

	mkdir -p "$CTRD/root" "$CTRD/state"
	spawn containerd containerd --config "$CTRD/config.toml"
	wait_for containerd 30 ctr --address "$CTRD_SOCK" version || die "containerd did not start (see $STATE/logs/containerd.log)"
	import_image "$PAUSE_IMAGE"

	rm -rf "$STATE/etcd"
	mkdir -p "$STATE/etcd"
	chmod 0700 "$STATE/etcd"
	spawn etcd "$BIN/etcd" --name shipyard-kube --data-dir "$STATE/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "shipyard-kube=http://127.0.0.1:$ETCD_PEER_PORT" --unsafe-no-fsync --quota-backend-bytes 1073741824 \
		--log-level warn

	spawn kube-apiserver "$BIN/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address 127.0.0.1 --secure-port "$API_PORT" --advertise-address "$ip" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--client-ca-file "$PKI/ca.crt" --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" --kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--kubelet-certificate-authority "$PKI/ca.crt" --kubelet-preferred-address-types InternalIP \
		--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
		--service-account-issuer https://kubernetes.default.svc \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--profiling=false --v=1
	wait_for "the API server" 90 kubectl_ get --raw /readyz || die "the API server did not become ready (see $STATE/logs/kube-apiserver.log)"

	spawn kube-controller-manager "$BIN/kube-controller-manager" \
		--kubeconfig "$STATE/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$STATE/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$STATE/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false \
		--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
		--use-service-account-credentials=true --enable-hostpath-provisioner=true \
		--profiling=false --v=1
	spawn kube-scheduler "$BIN/kube-scheduler" \
		--kubeconfig "$STATE/scheduler.kubeconfig" \
		--authentication-kubeconfig "$STATE/scheduler.kubeconfig" \
		--authorization-kubeconfig "$STATE/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --leader-elect=false --profiling=false --v=1
	spawn kubelet "$BIN/kubelet" \
		--config "$STATE/kubelet/config.yaml" --kubeconfig "$STATE/kubelet.kubeconfig" \
		--root-dir "$STATE/kubelet/root" --cert-dir "$STATE/kubelet/pki" \
		--hostname-override "$NODE" --node-ip "$ip" --v=1

	kubectl_ apply -f - >>"$LOG" 2>&1 <<EOF || die "creating the default StorageClass failed"
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations: {storageclass.kubernetes.io/is-default-class: "true"}
provisioner: kubernetes.io/host-path
reclaimPolicy: Delete
volumeBindingMode: Immediate
EOF
	for img in $IMAGES; do import_image "$img"; done
	wait_for "the node" 120 node_untainted || die "node $NODE did not become Ready (see $STATE/logs/kubelet.log)"
	note "up in $((SECONDS - t0)) s"
	log "cluster up in $((SECONDS - t0)) s"
	echo "$KUBECONFIG_ADMIN"
}

# stop_daemon NAME: SIGTERM, then SIGKILL after a grace period.
stop_daemon() {
	local pid i
	pid=$(our_pid "$1") || { rm -f "$RUN/$1.pid"; return 0; }
	note "stopping $1 ($pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 50; i++)); do
		our_pid "$1" >/dev/null || break
		sleep 0.2
	done
	if our_pid "$1" >/dev/null; then kill -KILL "$pid" 2>/dev/null || true; sleep 0.2; fi
	rm -f "$RUN/$1.pid"
}

down_locked() {
	[[ -d $STATE ]] || return 0
	note "---- down"
	# 1. Pods go through the kubelet, which tears their sandboxes and CNI down properly.
	if our_pid kube-apiserver >/dev/null && our_pid kubelet >/dev/null && [[ -f $KUBECONFIG_ADMIN ]]; then
		kubectl_ delete pods --all --all-namespaces --grace-period=1 --wait=false >>"$LOG" 2>&1 || true
		wait_for "pods to go" 60 bash -c "[[ -z \$('$BIN/kubectl' --kubeconfig '$KUBECONFIG_ADMIN' get pods -A -o name 2>/dev/null) ]]" || true
	fi
	local d
	for d in kubelet kube-scheduler kube-controller-manager kube-apiserver etcd; do stop_daemon "$d"; done
	# 2. Whatever the kubelet left (stopped sandboxes): remove through the CRI's containerd.
	if our_pid containerd >/dev/null; then
		local t c
		for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s KILL "$t" >/dev/null 2>&1 || true; done
		sleep 0.5
		for t in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete -f "$t" >/dev/null 2>&1 || true; done
		for c in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers rm "$c" >/dev/null 2>&1 || true; done
	fi
	stop_daemon containerd
	# 3. Shims of our containerd (they outlive it by design): by pid, matched on our socket.
	local p cmd
	for p in /proc/[0-9]*; do
		cmd=$({ tr '\0' ' ' <"$p/cmdline"; } 2>/dev/null) || continue
		[[ $cmd == *containerd-shim* && $cmd == *"$CTRD_SOCK"* ]] && kill -KILL "${p#/proc/}" 2>/dev/null || true
	done
	# 4. Mounts under our state directory, deepest first; the CRI's network namespaces.
	local m
	for m in $(awk -v s="$STATE/" 'index($2, s) == 1 {print $2}' /proc/mounts | sort -r); do
		umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
	done
	for m in /var/run/netns/cni-*; do
		[[ -e $m ]] || continue
		# Only namespaces no process uses any more (ours are all gone by now).
		umount "$m" 2>/dev/null || true
		rm -f "$m" 2>/dev/null || true
	done
	# 5. The bridge, its FORWARD rules and the NAT rules of our pod subnet.
	ip link del "$BRIDGE" >/dev/null 2>&1 || true
	forward_rules -D
	local rule chain
	while read -r rule; do
		chain=$(sed -n 's/.* -j \(CNI-[0-9a-f]*\)$/\1/p' <<<"$rule")
		eval "iptables -t nat -D ${rule#-A }" 2>/dev/null || true
		[[ -n $chain ]] && { iptables -t nat -F "$chain" 2>/dev/null; iptables -t nat -X "$chain" 2>/dev/null; } || true
	done < <(iptables-save -t nat 2>/dev/null | grep -E "^-A POSTROUTING .*name: \\\\?\"$CNI_NET\\\\?\"" || true)
	for chain in CNI-HOSTPORT-DNAT CNI-HOSTPORT-SETMARK CNI-HOSTPORT-MASQ; do
		grep -q -- "^-A .* -j $chain" <<<"$(iptables-save -t nat 2>/dev/null)" && continue
		iptables -t nat -F "$chain" 2>/dev/null && iptables -t nat -X "$chain" 2>/dev/null || true
	done
	# 6. Cgroups the kubelet made (cgroupfs driver), deepest first.
	local cg
	for cg in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
		[[ -d $cg ]] || continue
		find "$cg" -depth -type d -exec rmdir {} + 2>/dev/null || true
	done
	# 7. State that must not outlive the cluster: etcd, kubelet, IPAM, hostpath PVs.
	rm -rf "$STATE/etcd" "$STATE/kubelet/root" "$STATE/cni/ipam" "$CTRD/state" /tmp/hostpath_pv 2>/dev/null || true
	note "down done"
}

down() {
	[[ -d $STATE ]] || return 0
	exec 9>"$STATE/.lock"
	flock 9
	down_locked
	log "down"
}

case ${1:-} in
build) build ;;
up) up ;;
down) down ;;
status) healthy ;;
import)
	exec 9>"$STATE/.lock"
	flock 9
	our_pid containerd >/dev/null || die "the cluster is not up"
	for img in ${2:-$IMAGES}; do import_image "$img"; done
	;;
*) die "usage: $0 up|down|build|import [IMAGE]|status" ;;
esac
