#!/usr/bin/env bash
# A genuine single-node Kubernetes on this machine, on loopback only: etcd, containerd (+ runc and
# the CNI bridge plugin), kube-apiserver, kube-controller-manager, kube-scheduler and a kubelet.
#
# Usage: scripts/k8s.sh up     [dev|test]    # idempotent; waits for a Ready node and a Running Pod
#        scripts/k8s.sh down   [dev|test]    # stops what `up` started and removes its state
#        scripts/k8s.sh env    [dev|test]    # eval "$(scripts/k8s.sh env test)": KUBECONFIG (and
#                                            # ORCH_TEST_KUBECONFIG, ORCH_TEST_K8S_CONTAINERD for test)
#        scripts/k8s.sh status [dev|test]
#        scripts/k8s.sh import IMAGE|TARBALL [dev|test]   # a Docker image (docker save) or an
#                                            # image tarball into the cluster's containerd
#
# Profile  apiserver        etcd             node (on lo)  kubelet  scheduler  ctrl-mgr  pods
# dev      127.0.0.1:16443  127.0.0.1:16379  10.255.16.1   16250    16259      16257     10.244.16.0/24
# test     127.0.0.1:17443  127.0.0.1:17379  10.255.17.1   17250    17259      17257     10.244.17.0/24
#
# Everything lives under $STACK_DIR/k8s-<profile> (default <repo>/.stack): certificates,
# kubeconfigs, data, sockets, logs and pidfiles. Its containerd has its own root, state, socket and
# runc root, so a Docker engine (or containerd) already running is left alone; pods live in the
# cgroup /insien-k8s-<profile> and on the bridge ik8s-<profile> with no default route and no
# iptables rules. No registry is used: the pause image (cmd/sandbox-pause) and the sandbox image
# (insien/sandbox:busybox, from the profile's Docker engine, built by scripts/image.sh) are imported
# with `ctr images import`; Pods use imagePullPolicy Never or IfNotPresent.
#
# Binaries: etcd, containerd, runc and the CNI plugins from Debian (scripts/stack.sh deps); the
# Kubernetes components from scripts/k8s-build.sh (built once into a cache outside the clone).
#
# Environment knobs:
#   STACK_DIR      state directory (default <repo>/.stack)
#   K8S_TIMEOUT    seconds `up` waits for each step (default 120)
#   K8S_VERBOSE    set: `up` prints when each step is done
#   K8S_DOCKER_HOST  the Docker engine images are saved from (default: the profile's stack engine,
#                  then DOCKER_HOST, then unix:///var/run/docker.sock)
set -euo pipefail
shopt -s inherit_errexit

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(dirname "$SCRIPT_DIR")"
STACK_DIR="$(mkdir -p "${STACK_DIR:-$REPO_ROOT/.stack}" && cd "${STACK_DIR:-$REPO_ROOT/.stack}" && pwd)"
TIMEOUT="${K8S_TIMEOUT:-120}"
T0="$(date +%s.%N)"
CNI_PLUGINS_DIR="${CNI_PLUGINS_DIR:-/usr/lib/cni}"

SANDBOX_IMAGE="${SANDBOX_IMAGE:-insien/sandbox:busybox}"
PAUSE_IMAGE="insien/pause:1"
COMPONENTS=(etcd containerd kube-apiserver kube-controller-manager kube-scheduler kubelet)

say() { printf '[k8s] %s\n' "$*" >&2; }
die() { printf '[k8s] error: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Profile layout
# ---------------------------------------------------------------------------------------------

# set_profile PROFILE — every path and port of a profile, as globals.
set_profile() {
	PROFILE="$1"
	local base
	case "$PROFILE" in
	dev) base=16 ;;
	test) base=17 ;;
	*) die "profile must be 'dev' or 'test' (got '$PROFILE')" ;;
	esac
	# Below the ephemeral port range (32768+), so an outgoing connection never holds one.
	ETCD_PORT="${base}379" ETCD_PEER_PORT="${base}380" API_PORT="${base}443"
	KUBELET_PORT="${base}250" KUBELET_HEALTHZ_PORT="${base}248"
	SCHEDULER_PORT="${base}259" CM_PORT="${base}257"
	POD_SUBNET="10.244.${base}.0/24"
	SERVICE_CIDR="10.96.0.0/16" SERVICE_API_IP="10.96.0.1"
	NAME="insien-k8s-$PROFILE"
	# The node's address: a private IP on lo. The API server refuses to proxy to a loopback node
	# address (nodes/proxy, hence the kubelet's stats), and a kubelet rejects --node-ip=127.0.0.1;
	# traffic to an address of lo still never leaves the loopback device.
	NODE="$NAME" NODE_IP="10.255.${base}.1"
	BRIDGE="ik8s-$PROFILE"
	CGROUP_ROOT="/$NAME"
	K="$STACK_DIR/k8s-$PROFILE"
	PKI="$K/pki" RUN="$K/run" LOGS="$K/logs"
	SOCK="$K/containerd/containerd.sock"
	API="https://127.0.0.1:$API_PORT"
	[[ ${#SOCK} -le 90 ]] || die "socket path too long ($SOCK); set STACK_DIR to a shorter directory"
}

# ---------------------------------------------------------------------------------------------
# Processes: each one is started detached, tracked by $RUN/<name>.pid and recognised by its command
# line naming $K, so `down` never touches a process it did not start.
# ---------------------------------------------------------------------------------------------

# ours PID — true when PID is alive and its command line names this profile's directory.
ours() {
	[[ -n "$1" && -r "/proc/$1/cmdline" ]] && tr '\0' ' ' <"/proc/$1/cmdline" 2>/dev/null | grep -qF -- "$K/"
}

running() {
	local pid
	pid="$(cat "$RUN/$1.pid" 2>/dev/null || true)"
	ours "$pid"
}

# launch NAME BINARY ARGS... — starts BINARY in its own session, logging to $LOGS/NAME.log.
launch() {
	local name="$1"
	shift
	mkdir -p "$RUN" "$LOGS"
	: >"$LOGS/$name.log"
	# The pid is written from inside the session, so it is the component's own pid after exec.
	rm -f "$RUN/$name.pid"
	setsid bash -c 'echo $$ >"$0"; exec "$@"' "$RUN/$name.pid" "$@" >>"$LOGS/$name.log" 2>&1 </dev/null 8>&- &
	local i
	for ((i = 0; i < 100; i++)); do
		[[ -s "$RUN/$name.pid" ]] && return 0
		sleep 0.05
	done
	die "$name did not start"
}

# halt NAME [SECONDS] — SIGTERM, then SIGKILL after SECONDS (default 20).
halt() {
	local name="$1" grace="${2:-20}" pid i
	pid="$(cat "$RUN/$name.pid" 2>/dev/null || true)"
	if ours "$pid"; then
		kill -TERM "$pid" 2>/dev/null || true
		for ((i = 0; i < grace * 10; i++)); do
			ours "$pid" || break
			sleep 0.1
		done
		if ours "$pid"; then
			say "$name did not stop in ${grace}s; killing it"
			kill -KILL "$pid" 2>/dev/null || true
		fi
	fi
	rm -f "$RUN/$name.pid"
}

# await DESC COMPONENT CMD... — polls CMD until it succeeds; gives up after $TIMEOUT seconds or as
# soon as COMPONENT has exited, showing the tail of its log.
await() {
	local desc="$1" component="$2" deadline=$((SECONDS + TIMEOUT)) why
	shift 2
	until "$@" >/dev/null 2>&1; do
		why=""
		if ! running "$component"; then
			why="$component exited"
		elif ((SECONDS >= deadline)); then
			why="not after ${TIMEOUT}s"
		fi
		if [[ -n "$why" ]]; then
			say "error: $desc: $why; last lines of $LOGS/$component.log:"
			tail -n 25 "$LOGS/$component.log" >&2 || true
			return 1
		fi
		sleep 0.1
	done
	if [[ -n "${K8S_VERBOSE:-}" ]]; then say "$desc: ok at +$(elapsed "$T0") s"; fi
}

# ---------------------------------------------------------------------------------------------
# Talking to the API server without kubectl: curl with the admin certificate. A user agent other
# than curl's keeps the answers compact JSON, which the checks below grep.
# ---------------------------------------------------------------------------------------------

api() {
	local path="$1"
	shift
	curl -sf --max-time 10 -A k8s.sh --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
		"$@" "$API$path"
}

api_ready() { [[ "$(api /readyz)" == ok ]]; }

# node_ready — the node reports Ready and the controller-manager has lifted its not-ready taint.
node_ready() {
	local node
	node="$(api "/api/v1/nodes/$NODE")" || return 1
	grep -qF '"type":"Ready","status":"True"' <<<"$node" && ! grep -qF 'node.kubernetes.io/not-ready' <<<"$node"
}

pod_running() { api "/api/v1/namespaces/default/pods/$1" | grep -qF '"phase":"Running"'; }

# ---------------------------------------------------------------------------------------------
# Certificates (EC P-256, openssl) and kubeconfigs
# ---------------------------------------------------------------------------------------------

new_key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# issue NAME SUBJECT EXTENSIONS — a key and a certificate signed by the cluster CA.
issue() {
	local name="$1" subject="$2" ext="$3"
	new_key "$PKI/$name.key"
	openssl req -new -key "$PKI/$name.key" -subj "$subject" 2>/dev/null |
		openssl x509 -req -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" -set_serial "0x$(openssl rand -hex 16)" \
			-days 3650 -extfile <(printf '%b\n' "$ext") -out "$PKI/$name.crt" 2>/dev/null
}

# make_pki — the cluster's CA, serving and client certificates, service-account keys and
# kubeconfigs. They outlive `down` (they hold no cluster state), so a kubeconfig loaded by
# `env` stays valid across restarts; remove $K/pki to get new ones.
make_pki() {
	local client='basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth'
	local pids=() pid name
	[[ "$(cat "$PKI/done" 2>/dev/null || true)" == "node $NODE" ]] && return 0
	rm -rf "$PKI"
	mkdir -p "$PKI"
	chmod 0700 "$PKI"
	new_key "$PKI/ca.key"
	openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=$NAME-ca" -days 3650 \
		-addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature' \
		-out "$PKI/ca.crt" 2>/dev/null
	issue apiserver /CN=kube-apiserver "basicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\nsubjectAltName=IP:127.0.0.1,IP:$NODE_IP,IP:$SERVICE_API_IP,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local" &
	pids+=($!)
	issue admin "/O=system:masters/CN=$NAME-admin" "$client" &
	pids+=($!)
	issue apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client" &
	pids+=($!)
	issue kubelet "/O=system:nodes/CN=system:node:$NODE" "$client" &
	pids+=($!)
	issue scheduler /CN=system:kube-scheduler "$client" &
	pids+=($!)
	issue controller-manager /CN=system:kube-controller-manager "$client" &
	pids+=($!)
	{ new_key "$PKI/sa.key" && openssl pkey -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null; } &
	pids+=($!)
	for pid in "${pids[@]}"; do wait "$pid" || die "generating certificates in $PKI failed"; done
	for name in admin kubelet scheduler controller-manager; do kubeconfig "$name"; done
	echo "node $NODE" >"$PKI/done"
}

# kubeconfig NAME — $K/NAME.kubeconfig for the certificate $PKI/NAME.{crt,key}, self-contained.
kubeconfig() {
	local name="$1"
	cat >"$K/$name.kubeconfig" <<-EOF
		apiVersion: v1
		kind: Config
		clusters:
		- name: $NAME
		  cluster:
		    server: $API
		    certificate-authority-data: $(base64 -w0 "$PKI/ca.crt")
		users:
		- name: $name
		  user:
		    client-certificate-data: $(base64 -w0 "$PKI/$name.crt")
		    client-key-data: $(base64 -w0 "$PKI/$name.key")
		contexts:
		- name: $NAME
		  context:
		    cluster: $NAME
		    user: $name
		current-context: $NAME
	EOF
	chmod 0600 "$K/$name.kubeconfig"
}

# ---------------------------------------------------------------------------------------------
# Configuration files
# ---------------------------------------------------------------------------------------------

write_containerd_config() {
	local d="$K/containerd"
	mkdir -p "$d/root" "$d/state" "$d/opt" "$d/runc"
	# restrict_oom_score_adj: this machine refuses a negative oom_score_adj, without which every pod
	# sandbox fails with "can't get final child's PID from pipe: EOF".
	cat >"$d/config.toml" <<-EOF
		version = 2
		root = "$d/root"
		state = "$d/state"
		disabled_plugins = []
		[grpc]
		  address = "$SOCK"
		[debug]
		  address = ""
		[metrics]
		  address = ""
		[plugins."io.containerd.internal.v1.opt"]
		  path = "$d/opt"
		[plugins."io.containerd.grpc.v1.cri"]
		  sandbox_image = "docker.io/$PAUSE_IMAGE"
		  disable_apparmor = true
		  restrict_oom_score_adj = true
		  netns_mounts_under_state_dir = true
		  stream_server_address = "127.0.0.1"
		  stream_server_port = "0"
		  [plugins."io.containerd.grpc.v1.cri".containerd]
		    snapshotter = "overlayfs"
		    default_runtime_name = "runc"
		    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
		      runtime_type = "io.containerd.runc.v2"
		      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
		        SystemdCgroup = false
		        Root = "$d/runc"
		  [plugins."io.containerd.grpc.v1.cri".cni]
		    bin_dir = "$K/cni/bin"
		    conf_dir = "$K/cni/net.d"
		    max_conf_num = 1
	EOF
}

write_cni_config() {
	local plugin
	mkdir -p "$K/cni/bin" "$K/cni/net.d" "$K/cni/ipam"
	for plugin in bridge host-local loopback; do
		[[ -x "$CNI_PLUGINS_DIR/$plugin" ]] || die "CNI plugin $CNI_PLUGINS_DIR/$plugin missing (scripts/stack.sh deps)"
		ln -sf "$CNI_PLUGINS_DIR/$plugin" "$K/cni/bin/$plugin"
	done
	# A gateway on the host for pod-to-host traffic, but no default route and no masquerading:
	# pods reach nothing beyond this bridge.
	cat >"$K/cni/net.d/10-$NAME.conflist" <<-EOF
		{
		  "cniVersion": "0.4.0",
		  "name": "$NAME",
		  "plugins": [
		    {
		      "type": "bridge",
		      "bridge": "$BRIDGE",
		      "isGateway": true,
		      "isDefaultGateway": false,
		      "ipMasq": false,
		      "ipam": {
		        "type": "host-local",
		        "ranges": [[{"subnet": "$POD_SUBNET"}]],
		        "dataDir": "$K/cni/ipam"
		      }
		    }
		  ]
		}
	EOF
}

write_kubelet_config() {
	mkdir -p "$K/kubelet/root" "$K/kubelet/pki" "$K/kubelet/pod-logs" "$K/kubelet/volume-plugins"
	cat >"$K/kubelet/config.yaml" <<-EOF
		apiVersion: kubelet.config.k8s.io/v1beta1
		kind: KubeletConfiguration
		address: $NODE_IP
		port: $KUBELET_PORT
		readOnlyPort: 0
		healthzBindAddress: 127.0.0.1
		healthzPort: $KUBELET_HEALTHZ_PORT
		authentication:
		  anonymous:
		    enabled: false
		  webhook:
		    enabled: true
		  x509:
		    clientCAFile: $PKI/ca.crt
		authorization:
		  mode: Webhook
		containerRuntimeEndpoint: unix://$SOCK
		cgroupDriver: cgroupfs
		cgroupRoot: $CGROUP_ROOT
		failCgroupV1: false
		failSwapOn: false
		enforceNodeAllocatable: []
		evictionHard: {}
		imageGCHighThresholdPercent: 100
		imageGCLowThresholdPercent: 99
		makeIPTablesUtilChains: false
		resolvConf: ""
		clusterDomain: cluster.local
		podLogsDir: $K/kubelet/pod-logs
		volumePluginDir: $K/kubelet/volume-plugins
		serializeImagePulls: false
		rotateCertificates: false
		registerNode: true
	EOF
}

# make_cgroup_root — the kubelet requires its cgroupRoot to exist in every hierarchy.
make_cgroup_root() {
	local mnt
	for mnt in $(cgroup_mounts); do
		mkdir -p "$mnt$CGROUP_ROOT"
		# A new cpuset cgroup has no CPUs or memory nodes until given its parent's.
		if [[ -f "$mnt/cpuset.cpus" && -z "$(cat "$mnt$CGROUP_ROOT/cpuset.cpus")" ]]; then
			cat "$mnt/cpuset.cpus" >"$mnt$CGROUP_ROOT/cpuset.cpus"
			cat "$mnt/cpuset.mems" >"$mnt$CGROUP_ROOT/cpuset.mems"
		fi
	done
}

cgroup_mounts() { awk '$3 == "cgroup" || $3 == "cgroup2" { print $2 }' /proc/self/mounts; }

# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

ctr_k8s() { ctr -a "$SOCK" -n k8s.io "$@"; }

docker_host() {
	if [[ -n "${K8S_DOCKER_HOST:-}" ]]; then
		echo "$K8S_DOCKER_HOST"
	elif [[ -s "$STACK_DIR/$PROFILE/docker.host" ]]; then
		cat "$STACK_DIR/$PROFILE/docker.host"
	else
		echo "${DOCKER_HOST:-unix:///var/run/docker.sock}"
	fi
}

# pause_archive — a docker-save archive of the pause image, cached by the hash of its source.
pause_archive() {
	local cache sum work diff config cfgsum arch
	cache="$(k8s_cache)/images"
	sum="$(cat "$REPO_ROOT/cmd/sandbox-pause/main.go" "$REPO_ROOT/go.mod" | sha256sum | cut -c1-16)"
	if [[ -s "$cache/pause-$sum.tar" ]]; then
		echo "$cache/pause-$sum.tar"
		return 0
	fi
	mkdir -p "$cache"
	work="$(mktemp -d)"
	(cd "$REPO_ROOT" && CGO_ENABLED=0 go build -trimpath -ldflags '-s -w' -o "$work/rootfs/pause" ./cmd/sandbox-pause)
	tar --numeric-owner --owner=0 --group=0 --mtime=@0 -C "$work/rootfs" -cf "$work/layer.tar" pause
	diff="$(sha256sum "$work/layer.tar" | cut -d' ' -f1)"
	mkdir "$work/$diff"
	mv "$work/layer.tar" "$work/$diff/layer.tar"
	arch="$(go env GOARCH)"
	config='{"architecture":"'"$arch"'","os":"linux","config":{"Entrypoint":["/pause"],"User":"65535:65535"},"rootfs":{"type":"layers","diff_ids":["sha256:'"$diff"'"]}}'
	cfgsum="$(printf '%s' "$config" | sha256sum | cut -d' ' -f1)"
	printf '%s' "$config" >"$work/$cfgsum.json"
	printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$cfgsum" "$PAUSE_IMAGE" "$diff" >"$work/manifest.json"
	tar -C "$work" -cf "$cache/pause-$sum.tar.tmp" manifest.json "$cfgsum.json" "$diff"
	mv "$cache/pause-$sum.tar.tmp" "$cache/pause-$sum.tar"
	rm -rf "$work"
	echo "$cache/pause-$sum.tar"
}

# import_docker_image IMAGE — docker save | ctr import, skipped when the same image ID is in.
import_docker_image() {
	local image="$1" host id stamp
	host="$(docker_host)"
	if ! id="$(DOCKER_HOST="$host" docker image inspect --format '{{.Id}}' "$image" 2>/dev/null)"; then
		if [[ "$image" != "$SANDBOX_IMAGE" ]]; then die "image $image not found in the Docker engine at $host"; fi
		"$SCRIPT_DIR/image.sh" "$host" || die "cannot build $image in the Docker engine at $host (run scripts/stack.sh up $PROFILE first)"
		id="$(DOCKER_HOST="$host" docker image inspect --format '{{.Id}}' "$image")"
	fi
	stamp="$K/images/$(printf '%s' "$image" | tr '/:@' '___')"
	if [[ "$(cat "$stamp" 2>/dev/null || true)" == "$id" ]] && ctr_k8s images ls -q | grep -qxF "$(normalized "$image")"; then
		return 0
	fi
	mkdir -p "$K/images"
	DOCKER_HOST="$host" docker save "$image" | ctr_k8s images import - >/dev/null || die "importing $image failed"
	echo "$id" >"$stamp"
	say "imported $image from $host"
}

# normalized REF — the name containerd gives a Docker Hub style reference.
normalized() {
	local ref="$1"
	[[ "$ref" == *:* || "$ref" == *@* ]] || ref="$ref:latest"
	case "${ref%%/*}" in
	*.* | *:* | localhost) ;;
	*) [[ "$ref" == */* ]] || ref="library/$ref"; ref="docker.io/$ref" ;;
	esac
	echo "$ref"
}

import_images() {
	local pause
	if ! ctr_k8s images ls -q | grep -qxF "docker.io/$PAUSE_IMAGE"; then
		pause="$(pause_archive)"
		ctr_k8s images import "$pause" >/dev/null
		# Pinned: never garbage-collected (nothing could pull it back).
		ctr_k8s images label "docker.io/$PAUSE_IMAGE" io.cri-containerd.pinned=pinned >/dev/null
	fi
	import_docker_image "$SANDBOX_IMAGE"
}

# ---------------------------------------------------------------------------------------------
# up
# ---------------------------------------------------------------------------------------------

k8s_cache() { echo "${K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/insien/k8s-${K8S_VERSION:-v1.37.2}}"; }

need() {
	local tool
	for tool in "$@"; do
		command -v "$tool" >/dev/null 2>&1 || die "$tool not found (scripts/stack.sh deps installs what is missing)"
	done
}

all_running() {
	local c
	for c in "${COMPONENTS[@]}"; do running "$c" || return 1; done
}

any_running() {
	local c
	for c in "${COMPONENTS[@]}"; do running "$c" && return 0; done
	return 1
}

cmd_up() {
	local bin
	[[ "$(id -u)" -eq 0 ]] || die "a kubelet and containerd need root: sudo scripts/k8s.sh up $PROFILE"
	"$SCRIPT_DIR/stack.sh" deps
	need etcd containerd containerd-shim-runc-v2 runc ctr openssl curl docker
	bin="$("$SCRIPT_DIR/k8s-build.sh")"

	if all_running; then
		# A busy machine may slow the API server down; give it time before calling it broken.
		if await "kube-apiserver on $API" kube-apiserver api_ready && await "node $NODE Ready" kubelet node_ready; then
			import_images
			say "$PROFILE cluster already up at $API; reusing it"
			return 0
		fi
		say "$PROFILE cluster is running but not healthy; restarting it"
	elif any_running; then
		say "$PROFILE cluster is partly running; restarting it"
	fi
	# A fresh start, also from whatever a crash or a reboot left behind (data, mounts, cgroups, the
	# bridge).
	teardown
	local port
	for port in "$ETCD_PORT" "$ETCD_PEER_PORT" "$API_PORT" "$KUBELET_PORT" "$KUBELET_HEALTHZ_PORT" "$SCHEDULER_PORT" "$CM_PORT"; do
		if (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null; then
			die "port $port is in use by something other than the $PROFILE cluster (see the table in scripts/k8s.sh)"
		fi
	done

	T0="$(date +%s.%N)"
	mkdir -p "$K" "$RUN" "$LOGS"
	make_pki
	write_containerd_config
	write_cni_config
	write_kubelet_config
	make_cgroup_root
	# replace, not add: idempotent (a check-then-add failed once with "Address already assigned").
	ip addr replace "$NODE_IP/32" dev lo

	launch etcd etcd --name "$NAME" --data-dir "$K/etcd" \
		--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
		--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
		--initial-cluster "$NAME=http://127.0.0.1:$ETCD_PEER_PORT" --log-level warn
	launch containerd containerd --config "$K/containerd/config.toml"

	await "etcd on 127.0.0.1:$ETCD_PORT" etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"
	launch kube-apiserver "$bin/kube-apiserver" \
		--etcd-servers "http://127.0.0.1:$ETCD_PORT" \
		--bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$API_PORT" \
		--tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
		--client-ca-file "$PKI/ca.crt" \
		--service-account-issuer https://kubernetes.default.svc.cluster.local \
		--service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
		--service-cluster-ip-range "$SERVICE_CIDR" \
		--authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
		--kubelet-client-certificate "$PKI/apiserver-kubelet-client.crt" \
		--kubelet-client-key "$PKI/apiserver-kubelet-client.key" \
		--kubelet-preferred-address-types InternalIP,Hostname \
		--endpoint-reconciler-type none --allow-privileged=true --profiling=false
	await "containerd on $SOCK" containerd ctr -a "$SOCK" version
	# The kubelet retries until the API server answers.
	launch kubelet "$bin/kubelet" --config "$K/kubelet/config.yaml" --kubeconfig "$K/kubelet.kubeconfig" \
		--hostname-override "$NODE" --node-ip "$NODE_IP" --root-dir "$K/kubelet/root" --cert-dir "$K/kubelet/pki"
	import_images
	await "kube-apiserver on $API" kube-apiserver api_ready
	# Not before: the controller-manager exits when its RBAC roles are not bootstrapped yet.
	launch kube-controller-manager "$bin/kube-controller-manager" \
		--kubeconfig "$K/controller-manager.kubeconfig" \
		--authentication-kubeconfig "$K/controller-manager.kubeconfig" \
		--authorization-kubeconfig "$K/controller-manager.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$CM_PORT" --leader-elect=false \
		--use-service-account-credentials=true --controllers '*' \
		--service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
		--cluster-signing-cert-file "$PKI/ca.crt" --cluster-signing-key-file "$PKI/ca.key" \
		--cluster-name "$NAME" --profiling=false
	launch kube-scheduler "$bin/kube-scheduler" \
		--kubeconfig "$K/scheduler.kubeconfig" \
		--authentication-kubeconfig "$K/scheduler.kubeconfig" \
		--authorization-kubeconfig "$K/scheduler.kubeconfig" \
		--bind-address 127.0.0.1 --secure-port "$SCHEDULER_PORT" --leader-elect=false --profiling=false
	await "node $NODE Ready and untainted" kubelet node_ready
	await "the default ServiceAccount" kube-controller-manager api /api/v1/namespaces/default/serviceaccounts/default
	check_pod
	say "$PROFILE cluster up at $API in $(elapsed "$T0") s; load it with: eval \"\$(scripts/k8s.sh env $PROFILE)\""
}

elapsed() { awk -v a="$1" -v b="$(date +%s.%N)" 'BEGIN { printf "%.1f", b - a }'; }

# check_pod — a Pod from the local sandbox image goes through the scheduler to Running.
check_pod() {
	local name="k8s-sh-check-$RANDOM"
	api /api/v1/namespaces/default/pods -X POST -H 'Content-Type: application/json' -d '{"apiVersion":"v1","kind":"Pod",
		"metadata":{"name":"'"$name"'"},
		"spec":{"automountServiceAccountToken":false,"enableServiceLinks":false,"restartPolicy":"Never",
		"terminationGracePeriodSeconds":1,
		"containers":[{"name":"check","image":"'"$SANDBOX_IMAGE"'","imagePullPolicy":"Never","command":["sleep","600"]}]}}' \
		>/dev/null || die "creating the check Pod failed"
	if ! await "Pod $name Running" kubelet pod_running "$name"; then
		api "/api/v1/namespaces/default/pods/$name" >&2 || true
		exit 1
	fi
	api "/api/v1/namespaces/default/pods/$name" -X DELETE -H 'Content-Type: application/json' -d '{"gracePeriodSeconds":0}' >/dev/null || true
}

# ---------------------------------------------------------------------------------------------
# down
# ---------------------------------------------------------------------------------------------

# teardown — stops every component, then removes what the kubelet and containerd left on the host:
# container processes, mounts, the bridge, cgroups, log links; finally the state directory.
teardown() {
	local c mnt pid
	local ids="" id
	for c in kube-scheduler kube-controller-manager kubelet; do halt "$c" 20; done
	if running containerd; then
		ids="$(ctr_k8s containers ls -q 2>/dev/null || true)"
		if [[ -n "$ids" ]]; then
			# Force-deleting a task kills it and makes its shim clean up and exit.
			# shellcheck disable=SC2086 # one argument per container id
			ctr_k8s tasks delete -f $ids >/dev/null 2>&1 || true
		fi
	fi
	halt containerd 20
	# Long-running requests (watches, exec streams) would hold a graceful stop for a minute.
	halt kube-apiserver 5
	halt etcd 20
	# Shims outlive containerd by design; any left are ours when they name our socket.
	for pid in $(pgrep -f -- "-address $SOCK" 2>/dev/null || true); do
		ours "$pid" && kill -KILL "$pid" 2>/dev/null || true
	done
	# Container processes still in our cgroup tree (none after a clean stop).
	for mnt in $(cgroup_mounts); do
		[[ -d "$mnt$CGROUP_ROOT" ]] || continue
		find "$mnt$CGROUP_ROOT" -name cgroup.procs -exec cat {} + 2>/dev/null | xargs -r kill -KILL 2>/dev/null || true
	done
	# Pod volumes, rootfs and network namespace mounts, innermost first.
	awk -v p="$K/" 'index($2, p) == 1 { print $2 }' /proc/self/mounts | sort -r | while IFS= read -r mnt; do
		umount "$mnt" 2>/dev/null || umount -l "$mnt" 2>/dev/null || true
	done
	if ip link show "$BRIDGE" >/dev/null 2>&1; then ip link delete "$BRIDGE" 2>/dev/null || true; fi
	if ip -o addr show dev lo | grep -qF " $NODE_IP/32 "; then ip addr del "$NODE_IP/32" dev lo 2>/dev/null || true; fi
	# libcni caches each attachment's result in a fixed directory, named by network and container.
	for id in $ids; do rm -f /var/lib/cni/results/*-"$id"-* 2>/dev/null || true; done
	rm -f /var/lib/cni/results/"$NAME"-* 2>/dev/null || true
	find /var/log/containers -maxdepth 1 -type l -lname "$K/*" -delete 2>/dev/null || true
	remove_cgroups
	find "$K" -mindepth 1 -maxdepth 1 ! -name logs ! -name pki ! -name '*.kubeconfig' -exec rm -rf {} + 2>/dev/null || true
}

# remove_cgroups — our cgroup tree, deepest first; emptied cgroups may take a moment to release.
remove_cgroups() {
	local mnt i
	for ((i = 0; i < 50; i++)); do
		local left=0
		for mnt in $(cgroup_mounts); do
			[[ -d "$mnt$CGROUP_ROOT" ]] || continue
			find "$mnt$CGROUP_ROOT" -depth -type d -exec rmdir {} + 2>/dev/null || true
			[[ -d "$mnt$CGROUP_ROOT" ]] && left=1
		done
		((left == 0)) && return 0
		sleep 0.1
	done
	say "warning: cgroup $CGROUP_ROOT could not be removed everywhere"
}

cmd_down() {
	[[ -d "$K" ]] || return 0
	teardown
	say "$PROFILE cluster is down"
}

# ---------------------------------------------------------------------------------------------
# env, status, import
# ---------------------------------------------------------------------------------------------

cmd_env() {
	printf "export KUBECONFIG='%s'\n" "$K/admin.kubeconfig"
	if [[ "$PROFILE" == test ]]; then
		printf "export ORCH_TEST_KUBECONFIG='%s'\n" "$K/admin.kubeconfig"
		printf "export ORCH_TEST_K8S_CONTAINERD='%s'\n" "$SOCK"
	fi
}

cmd_status() {
	local c pid
	for c in "${COMPONENTS[@]}"; do
		if running "$c"; then
			pid="$(cat "$RUN/$c.pid")"
			printf '%-24s up    pid %-7s rss %s MB\n' "$c" "$pid" "$(($(awk '/^VmRSS/ { print $2 }' "/proc/$pid/status") / 1024))"
		else
			printf '%-24s down\n' "$c"
		fi
	done
	if [[ -f "$PKI/admin.crt" ]] && api_ready; then c="ready"; else c="not ready"; fi
	printf '%-24s %s %s\n' api "$c" "$API"
	if [[ -f "$PKI/admin.crt" ]] && node_ready; then c="Ready"; else c="not Ready"; fi
	printf '%-24s %s %s\n' node "$c" "$NODE ($NODE_IP)"
}

cmd_import() {
	local what="$1"
	running containerd || die "the $PROFILE cluster is not up (scripts/k8s.sh up $PROFILE)"
	if [[ -f "$what" ]]; then
		ctr_k8s images import "$what" >/dev/null || die "importing $what failed"
		say "imported $what"
	else
		import_docker_image "$what"
	fi
}

main() {
	case "${1:-}" in
	up | down | env | status)
		set_profile "${2:-dev}"
		if [[ "$1" == up || "$1" == down ]]; then
			# One `up` or `down` of a profile at a time; the lock sits beside the state directory
			# that `down` removes, and launch keeps it from the daemons.
			exec 8>"$K.lock"
			flock 8
		fi
		"cmd_$1"
		;;
	import)
		[[ -n "${2:-}" ]] || die "usage: scripts/k8s.sh import IMAGE|TARBALL [dev|test]"
		set_profile "${3:-dev}"
		cmd_import "$2"
		;;
	*)
		# The usage block at the top of this file.
		awk 'NR >= 5 && NR <= 16 { sub(/^# ?/, ""); print }' "$0" >&2
		exit 2
		;;
	esac
}

main "$@"
