#!/usr/bin/env bash
# Local service stack (Postgres, Redis, Docker Engine) for development and tests.
#
# Usage: scripts/stack.sh deps                # postgresql redis-server docker.io busybox-static gcc
#                                             # xfsprogs btrfs-progs (disk limits); etcd-server
#                                             # containernetworking-plugins (for k8s.sh)
#                                             # nodejs npm (the TypeScript SDK's build and tests)
#        scripts/stack.sh up   dev|test
#        scripts/stack.sh down dev|test
#        scripts/stack.sh env  dev|test      # prints `export` lines; eval "$(scripts/stack.sh env test)"
#        scripts/stack.sh status dev|test
#
# Profile   Postgres          Redis             Docker Engine
# dev       127.0.0.1:5432    127.0.0.1:6379    $DOCKER_HOST or /var/run/docker.sock (started if absent)
# test      127.0.0.1:55432   127.0.0.1:56379   own dockerd on unix://$STACK_DIR/test/docker.sock
#           (STACK_PG_PORT)   (STACK_REDIS_PORT)
#
# Disk limits: a dockerd this script starts (test, and dev when it starts one) keeps its data root
# on a filesystem with per-container quotas (a sparse image, $STACK_DIR/<profile>/docker/disk.img,
# loop mounted at $STACK_DIR/<profile>/docker/data; see quota_data_root): xfs with prjquota for
# overlay2 (`--storage-opt size`, the orchestrator's disk_mb; a container that names no size, such
# as a template build's RUN step, gets STACK_DOCKER_DEFAULT_SIZE), else btrfs with qgroups (the
# btrfs driver's `size`). Without root, mkfs or a loop device it warns and keeps the data root
# where it was: no disk limits then.
#
# Everything this script starts lives under $STACK_DIR/<profile> (default <repo>/.stack) and is
# tracked by pidfiles there; `down` stops only those, never services that `up` merely reused
# (dev reuses anything already listening on 5432 / 6379 and any responding Docker engine).
#
# Environment knobs:
#   STACK_DIR                  state directory (default <repo>/.stack)
#   STACK_DOCKER_STORAGE_DRIVER  force a storage driver for a dockerd we start (default: dockerd's
#                              own choice — overlay2 on ext4 here — falling back to vfs if it fails)
#   STACK_TIMEOUT              readiness timeout per service in seconds (default 60)
#   STACK_PG_PORT, STACK_REDIS_PORT  test only: ports of its Postgres and Redis (default 55432,
#                              56379), so that a second test stack (another STACK_DIR) runs beside
#   STACK_DOCKER_QUOTA         1 (default): the data root on a quota filesystem as above; 0: as before
#   STACK_DOCKER_DISK_GB       size of that sparse image (default 40; only what is written takes
#                              host disk)
#   STACK_DOCKER_DEFAULT_SIZE  xfs: overlay2.size of a container that names none, e.g. a build
#                              step's (default 10G for dev, 512M for test)
#   DEV_DATABASE_URL           dev only: use this URL instead of a local cluster (e.g. a reused
#                              system Postgres that needs a password); `up dev` skips Postgres
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
STACK_DIR="${STACK_DIR:-$REPO_ROOT/.stack}"
mkdir -p "$STACK_DIR"
STACK_DIR="$(cd "$STACK_DIR" && pwd)"
TIMEOUT="${STACK_TIMEOUT:-60}"

SANDBOX_IMAGE="${SANDBOX_IMAGE:-insien/sandbox:busybox}"
DEV_DB_NAME="insien_sandbox"
SYSTEM_DOCKER_SOCK="/var/run/docker.sock"

log() { printf '[stack] %s\n' "$*" >&2; }
warn() { printf '[stack] warning: %s\n' "$*" >&2; }
die() { printf '[stack] error: %s\n' "$*" >&2; exit 1; }

is_root() { [[ "$(id -u)" -eq 0 ]]; }

# ---------------------------------------------------------------------------------------------
# Dependencies
# ---------------------------------------------------------------------------------------------

# Highest installed PostgreSQL major's bin dir (Debian layout), or empty.
pg_bindir() {
	local d best=""
	for d in /usr/lib/postgresql/*/bin; do
		[[ -x "$d/initdb" && -x "$d/pg_ctl" && -x "$d/postgres" ]] || continue
		if [[ -z "$best" ]] || [[ "$(basename "$(dirname "$d")")" -gt "$(basename "$(dirname "$best")")" ]]; then
			best="$d"
		fi
	done
	printf '%s' "$best"
}

redis_server_bin() { command -v redis-server 2>/dev/null || { [[ -x /usr/bin/redis-server ]] && echo /usr/bin/redis-server; } || true; }

# Prints the Debian packages that are missing, space separated.
missing_packages() {
	local missing=()
	if [[ -z "$(pg_bindir)" ]] || ! command -v psql >/dev/null 2>&1 || ! command -v pg_isready >/dev/null 2>&1; then
		missing+=(postgresql)
	fi
	if [[ -z "$(redis_server_bin)" ]] || ! command -v redis-cli >/dev/null 2>&1; then
		missing+=(redis-server)
	fi
	if ! command -v docker >/dev/null 2>&1 || ! [[ -x "$(dockerd_bin)" ]]; then
		missing+=(docker.io)
	fi
	if ! dpkg -s busybox-static >/dev/null 2>&1; then
		missing+=(busybox-static)
	fi
	# `go test -race` needs cgo, hence a C toolchain.
	if ! command -v gcc >/dev/null 2>&1; then
		missing+=(gcc libc6-dev)
	fi
	# The local Kubernetes (scripts/k8s.sh): etcd, containerd with runc (docker.io brings both), the
	# CNI plugins, and openssl and curl for its certificates and readiness checks. kubectl
	# (kubernetes-client) is optional.
	local tool_pkg
	# The egress tests' little internet: network namespaces and veth pairs made with iproute2's ip;
	# volumes: ext4 images made with e2fsprogs' mkfs.ext4, loop mounted with util-linux's mount;
	# disk limits: the engine's data root on xfs (xfsprogs) or, where the kernel has no xfs quotas,
	# btrfs (btrfs-progs).
	for tool_pkg in etcd:etcd-server containerd:containerd runc:runc openssl:openssl curl:curl ip:iproute2 mkfs.ext4:e2fsprogs mount:mount mkfs.xfs:xfsprogs mkfs.btrfs:btrfs-progs; do
		command -v "${tool_pkg%%:*}" >/dev/null 2>&1 || missing+=("${tool_pkg#*:}")
	done
	# The TypeScript SDK (sdk/typescript): built with npm and tested with node --test.
	for tool_pkg in node:nodejs npm:npm; do
		command -v "${tool_pkg%%:*}" >/dev/null 2>&1 || missing+=("${tool_pkg#*:}")
	done
	if ! [[ -x /usr/lib/cni/bridge && -x /usr/lib/cni/host-local && -x /usr/lib/cni/loopback ]]; then
		missing+=(containernetworking-plugins)
	fi
	printf '%s' "${missing[*]:-}"
}

cmd_deps() {
	local missing
	missing="$(missing_packages)"
	if [[ -z "$missing" ]]; then
		return 0
	fi
	if ! is_root; then
		# shellcheck disable=SC2086 # word splitting of the package list is intended
		printf '[stack] missing packages; run:\n  sudo apt-get update && sudo apt-get install -y %s\n' $missing >&2
		exit 1
	fi
	command -v apt-get >/dev/null 2>&1 || die "missing packages ($missing) and no apt-get to install them"
	log "installing: $missing"
	apt-get update -qq
	# policy-rc.d keeps package scripts from starting system services (we run our own).
	local policy=/usr/sbin/policy-rc.d created_policy=0
	if [[ ! -e "$policy" ]]; then
		printf '#!/bin/sh\nexit 101\n' >"$policy"
		chmod +x "$policy"
		created_policy=1
	fi
	# shellcheck disable=SC2086
	DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null || {
		[[ $created_policy -eq 1 ]] && rm -f "$policy"
		die "apt-get install $missing failed"
	}
	[[ $created_policy -eq 1 ]] && rm -f "$policy"
	missing="$(missing_packages)"
	[[ -z "$missing" ]] || die "still missing after install: $missing"
	log "dependencies installed"
}

# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# pid_alive PIDFILE COMM — true when the pidfile names a live process whose comm is COMM.
pid_alive() {
	local pidfile="$1" comm="$2" pid
	[[ -s "$pidfile" ]] || return 1
	pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
	[[ -n "$pid" ]] && [[ -r "/proc/$pid/comm" ]] || return 1
	[[ "$(cat "/proc/$pid/comm")" == "$comm"* ]] || return 1
	# A killed process nobody reaped (a zombie) is not alive: after a crash, `up` starts anew.
	[[ "$(awk '{ print $3 }' "/proc/$pid/stat" 2>/dev/null)" != Z ]]
}

# wait_until DESC LOGFILE CMD... — polls CMD for up to $TIMEOUT seconds.
wait_until() {
	local desc="$1" logfile="$2"
	shift 2
	local deadline=$((SECONDS + TIMEOUT))
	while ((SECONDS < deadline)); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		sleep 0.2
	done
	printf '[stack] error: %s not ready after %ss\n' "$desc" "$TIMEOUT" >&2
	if [[ -n "$logfile" && -f "$logfile" ]]; then
		printf '[stack] last lines of %s:\n' "$logfile" >&2
		tail -n 30 "$logfile" >&2
	fi
	return 1
}

# stop_pid PIDFILE COMM DESC — SIGTERM, wait, then SIGKILL.
stop_pid() {
	local pidfile="$1" comm="$2" desc="$3" pid i
	if ! pid_alive "$pidfile" "$comm"; then
		rm -f "$pidfile"
		return 0
	fi
	pid="$(head -n1 "$pidfile" | tr -dc '0-9')"
	log "stopping $desc (pid $pid)"
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < 150; i++)); do
		[[ -d "/proc/$pid" ]] || break
		sleep 0.2
	done
	if [[ -d "/proc/$pid" ]]; then
		warn "$desc did not stop in 30s; killing"
		kill -KILL "$pid" 2>/dev/null || true
		sleep 0.5
	fi
	rm -f "$pidfile"
}

# unix socket paths are limited to 107 bytes.
check_sock_path() {
	[[ ${#1} -le 100 ]] || die "socket path too long ($1); set STACK_DIR to a shorter directory"
}

as_postgres() {
	if is_root; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

profile_port() { # profile service
	case "$1:$2" in
	dev:pg) echo 5432 ;; test:pg) echo "${STACK_PG_PORT:-55432}" ;;
	dev:redis) echo 6379 ;; test:redis) echo "${STACK_REDIS_PORT:-56379}" ;;
	esac
}

# ---------------------------------------------------------------------------------------------
# Postgres
# ---------------------------------------------------------------------------------------------

# The cluster lives in $STACK_DIR/<profile>/pg. When we are root and the `postgres` user cannot
# traverse to it (e.g. a checkout under /root), it lives in /var/tmp/insien-stack-<hash> instead;
# the choice is recorded in $STACK_DIR/<profile>/pg.dir so that `down` finds it.
pg_dir() {
	local profile="$1" rec="$STACK_DIR/$1/pg.dir" dir
	if [[ -s "$rec" ]]; then
		cat "$rec"
		return 0
	fi
	dir="$STACK_DIR/$profile/pg"
	if is_root && id postgres >/dev/null 2>&1 && ! runuser -u postgres -- test -x "$STACK_DIR/$profile" 2>/dev/null; then
		dir="/var/tmp/insien-stack-$(printf '%s' "$STACK_DIR" | md5sum | cut -c1-8)/$profile/pg"
		mkdir -p "$dir"
		chmod 0755 "$(dirname "$(dirname "$dir")")" "$(dirname "$dir")"
		warn "user postgres cannot reach $STACK_DIR; keeping the $profile cluster in $dir"
	fi
	printf '%s\n' "$dir" >"$rec"
	printf '%s' "$dir"
}

pg_up() {
	local profile="$1" port bindir dir data run logf
	port="$(profile_port "$profile" pg)"
	bindir="$(pg_bindir)"
	[[ -n "$bindir" ]] || die "PostgreSQL server not installed (run: scripts/stack.sh deps)"
	dir="$(pg_dir "$profile")"
	data="$dir/data"
	run="$dir/run"
	logf="$dir/postgres.log"

	if [[ "$profile" == dev && -n "${DEV_DATABASE_URL:-}" ]]; then
		log "postgres: using DEV_DATABASE_URL; not managing a local cluster"
		return 0
	fi

	if [[ -f "$data/PG_VERSION" ]] && as_postgres "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		log "postgres ($profile) already running on 127.0.0.1:$port"
	elif [[ "$profile" == dev ]] && port_open "$port"; then
		log "postgres: something already listens on 127.0.0.1:$port; reusing it"
		echo "reused" >"$STACK_DIR/$profile/pg.reused"
	else
		if [[ "$profile" == test ]] && port_open "$port"; then
			die "port $port is in use by something other than our test cluster ($data)"
		fi
		mkdir -p "$data" "$run"
		check_sock_path "$run/.s.PGSQL.$port"
		chmod 0700 "$data"
		if is_root; then
			id postgres >/dev/null 2>&1 || die "OS user 'postgres' not found (it comes with the postgresql package)"
			chown -R postgres: "$dir"
			as_postgres test -x "$dir/data" || die "user postgres cannot reach $dir (check permissions of its parent directories)"
		fi
		if [[ ! -f "$data/PG_VERSION" ]]; then
			log "postgres ($profile): initdb $data"
			as_postgres "$bindir/initdb" -D "$data" -U postgres --auth=trust -E UTF8 --no-locale --no-sync \
				>"$dir/initdb.log" 2>&1 || {
				tail -n 30 "$dir/initdb.log" >&2
				die "initdb failed"
			}
			echo "include_if_exists = 'stack.conf'" >>"$data/postgresql.conf"
		fi
		# Rewritten on every start so changes to these settings apply to existing clusters.
		{
			echo "# written by scripts/stack.sh"
			echo "listen_addresses = '127.0.0.1'"
			echo "port = $port"
			echo "unix_socket_directories = '$run'"
			echo "logging_collector = off"
			if [[ "$profile" == test ]]; then
				echo "max_connections = 300"
				echo "shared_buffers = 128MB"
				echo "fsync = off"
				echo "synchronous_commit = off"
				echo "full_page_writes = off"
				echo "wal_level = minimal"
				echo "max_wal_senders = 0"
				echo "checkpoint_timeout = 30min"
				echo "max_wal_size = 4GB"
			fi
		} >"$data/stack.conf"
		touch "$logf"
		if is_root; then chown postgres: "$data/stack.conf" "$logf"; fi
		log "postgres ($profile): starting on 127.0.0.1:$port"
		as_postgres "$bindir/pg_ctl" -D "$data" -l "$logf" -w -t "$TIMEOUT" start >/dev/null 2>&1 || {
			printf '[stack] error: postgres failed to start; last lines of %s:\n' "$logf" >&2
			tail -n 30 "$logf" >&2
			exit 1
		}
		rm -f "$STACK_DIR/$profile/pg.reused"
	fi
	wait_until "postgres on 127.0.0.1:$port" "$logf" pg_isready -q -h 127.0.0.1 -p "$port" || exit 1

	if [[ "$profile" == dev ]]; then
		pg_dev_database "$port"
	fi
}

# Create the dev database; works for our own cluster and for a reused trust-auth cluster.
pg_dev_database() {
	local port="$1" q
	q="SELECT 1 FROM pg_database WHERE datname = '$DEV_DB_NAME'"
	if ! PGCONNECT_TIMEOUT=5 psql -X -w -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc 'SELECT 1' >/dev/null 2>&1; then
		warn "cannot connect to 127.0.0.1:$port as 'postgres' without a password (a reused system cluster?)."
		warn "create database $DEV_DB_NAME yourself and export DEV_DATABASE_URL=postgres://USER:PASSWORD@127.0.0.1:$port/$DEV_DB_NAME?sslmode=disable"
		warn "(or stop that cluster so this script starts its own)"
		return 0
	fi
	if [[ -z "$(psql -X -w -h 127.0.0.1 -p "$port" -U postgres -d postgres -tAc "$q")" ]]; then
		log "postgres: creating database $DEV_DB_NAME"
		psql -X -w -q -h 127.0.0.1 -p "$port" -U postgres -d postgres -c "CREATE DATABASE $DEV_DB_NAME" >/dev/null
	fi
}

pg_down() {
	local profile="$1" bindir data
	bindir="$(pg_bindir)"
	data="$(pg_dir "$profile")/data"
	rm -f "$STACK_DIR/$profile/pg.reused"
	[[ -n "$bindir" && -f "$data/PG_VERSION" ]] || return 0
	if as_postgres "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		log "stopping postgres ($profile)"
		as_postgres "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null ||
			as_postgres "$bindir/pg_ctl" -D "$data" -m immediate -w stop >/dev/null || true
	fi
}

# ---------------------------------------------------------------------------------------------
# Redis
# ---------------------------------------------------------------------------------------------

redis_up() {
	local profile="$1" port dir conf pidf logf bin
	port="$(profile_port "$profile" redis)"
	bin="$(redis_server_bin)"
	[[ -n "$bin" ]] || die "redis-server not installed (run: scripts/stack.sh deps)"
	dir="$STACK_DIR/$profile/redis"
	conf="$dir/redis.conf"
	pidf="$dir/redis.pid"
	logf="$dir/redis.log"

	if pid_alive "$pidf" redis-server; then
		log "redis ($profile) already running on 127.0.0.1:$port"
	elif [[ "$profile" == dev ]] && port_open "$port"; then
		log "redis: something already listens on 127.0.0.1:$port; reusing it"
	else
		if [[ "$profile" == test ]] && port_open "$port"; then
			die "port $port is in use by something other than our test redis"
		fi
		mkdir -p "$dir"
		rm -f "$pidf"
		{
			echo "# written by scripts/stack.sh"
			echo "bind 127.0.0.1"
			echo "port $port"
			echo "protected-mode yes"
			echo "daemonize yes"
			echo "pidfile $pidf"
			echo "logfile $logf"
			echo "dir $dir"
			if [[ "$profile" == test ]]; then
				echo "databases 128"
				echo 'save ""'
				echo "appendonly no"
			else
				echo "databases 16"
				echo "save 3600 1 300 100 60 10000"
				echo "appendonly no"
			fi
		} >"$conf"
		log "redis ($profile): starting on 127.0.0.1:$port"
		: >"$logf"
		"$bin" "$conf" || {
			tail -n 30 "$logf" >&2
			die "redis-server failed to start"
		}
	fi
	wait_until "redis on 127.0.0.1:$port" "$logf" redis_ping "$port" || exit 1
}

redis_ping() { [[ "$(redis-cli -h 127.0.0.1 -p "$1" ping 2>/dev/null)" == PONG ]]; }

redis_down() {
	local profile="$1"
	stop_pid "$STACK_DIR/$profile/redis/redis.pid" redis-server "redis ($profile)"
}

# ---------------------------------------------------------------------------------------------
# Docker Engine
# ---------------------------------------------------------------------------------------------

docker_ok() { DOCKER_HOST="$1" docker version --format '{{.Server.Version}}' >/dev/null 2>&1; }

dockerd_bin() { command -v dockerd 2>/dev/null || echo /usr/sbin/dockerd; }

# start_dockerd DIR SOCKET_URL [extra dockerd args...] — starts a detached dockerd tracked by
# DIR/dockerd.pid, logging to DIR/dockerd.log; retries with vfs if the default driver fails.
start_dockerd() {
	local dir="$1" host="$2"
	shift 2
	local bin args driver="${STACK_DOCKER_STORAGE_DRIVER:-}" attempt fallback=1
	bin="$(dockerd_bin)"
	mkdir -p "$dir"
	args=(--bridge=none --iptables=false -H "$host" --pidfile "$dir/dockerd.pid" "$@")
	if "$bin" --help 2>&1 | grep -q -- '--ip6tables'; then args+=(--ip6tables=false); fi
	if [[ " $* " == *" --storage-driver "* ]]; then
		# The caller chose the driver (overlay2 on the xfs data root): no other will do.
		driver="" fallback=0
	fi
	for attempt in 1 2; do
		local run_args=("${args[@]}")
		[[ -n "$driver" ]] && run_args+=(--storage-driver "$driver")
		log "docker: starting dockerd ${run_args[*]}"
		: >"$dir/dockerd.log"
		# setsid: survive the calling shell / task and ignore its Ctrl-C.
		setsid "$bin" "${run_args[@]}" >>"$dir/dockerd.log" 2>&1 </dev/null &
		echo $! >"$dir/dockerd.launcher.pid"
		local deadline=$((SECONDS + TIMEOUT)) pid=$!
		while ((SECONDS < deadline)); do
			if docker_ok "$host"; then
				rm -f "$dir/dockerd.launcher.pid"
				log "docker: ready on $host (storage driver: $(DOCKER_HOST="$host" docker info --format '{{.Driver}}' 2>/dev/null))"
				return 0
			fi
			[[ -d "/proc/$pid" ]] || break
			sleep 0.25
		done
		kill -TERM "$pid" 2>/dev/null || true
		sleep 1
		rm -f "$dir/dockerd.launcher.pid"
		if [[ $attempt -eq 1 && -z "$driver" && $fallback -eq 1 ]] && grep -qiE 'storage|graphdriver|overlay|driver not supported' "$dir/dockerd.log"; then
			warn "dockerd failed with its default storage driver; retrying with vfs"
			cp "$dir/dockerd.log" "$dir/dockerd.failed.log"
			driver=vfs
			continue
		fi
		printf '[stack] error: dockerd not ready after %ss; last lines of %s:\n' "$TIMEOUT" "$dir/dockerd.log" >&2
		tail -n 30 "$dir/dockerd.log" >&2
		exit 1
	done
}

# Records the Docker host a profile uses (read by `env`).
set_docker_host() { printf '%s\n' "$2" >"$STACK_DIR/$1/docker.host"; }

# quota_data_root DIR PROFILE — makes DIR/data a filesystem on which the engine limits each
# container's writable layer (`--storage-opt size`, the orchestrator's disk_mb), from the sparse
# image DIR/disk.img (STACK_DOCKER_DISK_GB), and sets QUOTA_ARGS to the dockerd flags for it:
#   xfs mounted with prjquota: overlay2 with `size`, and overlay2.size=STACK_DOCKER_DEFAULT_SIZE
#     for every container that names no size (a build step's): writes past it fail with ENOSPC;
#   else btrfs (kernels without xfs quotas, like this machine's): the btrfs driver's qgroups, where
#     `size` counts the image's files too and writes past it fail with EDQUOT; no engine-wide
#     default exists there, so build steps are bounded only by the filesystem.
# The filesystem chosen is recorded in DIR/disk.fs. A mount left by an earlier `up` (a crash) is
# reused; an image left unmounted is mounted again (both replay their logs). Returns 1 with a
# warning where none can be had (not root, no mkfs, no loop device): then no disk limits.
QUOTA_ARGS=()
quota_data_root() {
	local dir="$1" profile="$2" img="$1/disk.img" mnt="$1/data" fs current size
	QUOTA_ARGS=()
	rm -f "$STACK_DIR/$profile/docker.default-size"
	[[ "${STACK_DOCKER_QUOTA:-1}" == 1 ]] || return 1
	if ! is_root; then
		warn "not root: the engine's data root stays on the host's filesystem, without disk limits"
		return 1
	fi
	mkdir -p "$mnt"
	fs="$(cat "$dir/disk.fs" 2>/dev/null || true)"
	current="$(findmnt -n -o FSTYPE,OPTIONS --mountpoint "$mnt" 2>/dev/null || true)"
	if [[ -n "$fs" && "$current" == "$fs "* ]] && { [[ "$fs" != xfs ]] || [[ "$current" == *prjquota* ]]; }; then
		log "docker: data root $mnt is already $fs; reusing it"
	else
		if [[ -n "$current" ]]; then
			umount "$mnt" || die "$mnt is mounted ($current) and cannot be unmounted"
		fi
		# An image without its record was never finished: make it again.
		[[ -n "$fs" ]] || rm -f "$img"
		if [[ ! -f "$img" ]]; then
			if [[ -n "$(ls -A "$mnt" 2>/dev/null)" ]]; then
				# A data root of a run before disk limits: set aside, not deleted.
				warn "moving the old data root $mnt aside to $dir/data.pre-quota (delete it when no longer wanted)"
				rm -rf "$dir/data.pre-quota"
				mv "$mnt" "$dir/data.pre-quota"
				mkdir -p "$mnt"
			fi
			fs=""
			local try
			for try in xfs btrfs; do
				command -v "mkfs.$try" >/dev/null 2>&1 || { warn "mkfs.$try not found (scripts/stack.sh deps installs it)"; continue; }
				rm -f "$img"
				truncate -s "${STACK_DOCKER_DISK_GB:-40}G" "$img"
				"mkfs.$try" -q "$img" >"$dir/mkfs.log" 2>&1 || { warn "mkfs.$try failed: $(tail -n1 "$dir/mkfs.log")"; continue; }
				if quota_mount "$try" "$img" "$mnt" "$dir"; then fs="$try"; break; fi
			done
			if [[ -z "$fs" ]]; then
				rm -f "$img" "$dir/disk.fs"
				warn "no filesystem with per-container quotas could be mounted: no disk limits"
				return 1
			fi
			printf '%s\n' "$fs" >"$dir/disk.fs"
			log "docker: made the $fs image $img (${STACK_DOCKER_DISK_GB:-40} GB, sparse)"
		else
			quota_mount "$fs" "$img" "$mnt" "$dir" || { warn "no disk limits"; return 1; }
		fi
	fi
	case "$fs" in
	xfs)
		size="${STACK_DOCKER_DEFAULT_SIZE:-}"
		[[ -n "$size" ]] || { [[ "$profile" == test ]] && size=512M || size=10G; }
		printf '%s\n' "$size" >"$STACK_DIR/$profile/docker.default-size"
		QUOTA_ARGS=(--storage-driver overlay2 --storage-opt "overlay2.size=$size")
		;;
	btrfs) QUOTA_ARGS=(--storage-driver btrfs) ;;
	esac
	log "docker: data root $mnt is $fs (from $img): containers get disk limits"
}

# quota_mount FS IMG MNT DIR — loop mounts IMG at MNT with the options FS needs for quotas.
quota_mount() {
	local fs="$1" img="$2" mnt="$3" opts=loop,nosuid,nodev
	[[ "$fs" == xfs ]] && opts+=,prjquota
	if ! mount -t "$fs" -o "$opts" "$img" "$mnt" 2>"$4/mount.err"; then
		# e.g. "XFS: quota support not available in this kernel" (dmesg).
		warn "cannot mount $img as $fs with $opts: $(head -n1 "$4/mount.err")"
		return 1
	fi
}

# quota_release DIR — unmounts DIR/data if quota_data_root mounted it (its loop device goes with it).
quota_release() {
	local mnt="$1/data" i
	[[ -f "$1/disk.img" ]] || return 0
	# dockerd bind-mounts its data root onto itself: unmount every layer.
	for ((i = 0; i < 25; i++)); do
		findmnt -n --mountpoint "$mnt" >/dev/null 2>&1 || return 0
		umount "$mnt" 2>/dev/null || sleep 0.2
	done
	warn "$mnt is busy; detaching it lazily"
	umount -l "$mnt" || true
}

docker_up_dev() {
	local dir="$STACK_DIR/dev/docker"
	if pid_alive "$dir/dockerd.pid" dockerd; then
		wait_until "dev dockerd on unix://$SYSTEM_DOCKER_SOCK" "$dir/dockerd.log" docker_ok "unix://$SYSTEM_DOCKER_SOCK" || exit 1
		log "docker (dev) already running (started by this script) on unix://$SYSTEM_DOCKER_SOCK"
		set_docker_host dev "unix://$SYSTEM_DOCKER_SOCK"
	elif [[ -n "${DOCKER_HOST:-}" ]] && docker_ok "$DOCKER_HOST"; then
		log "docker: reusing engine at DOCKER_HOST=$DOCKER_HOST"
		set_docker_host dev "$DOCKER_HOST"
	elif docker_ok "unix://$SYSTEM_DOCKER_SOCK"; then
		log "docker: reusing running engine at unix://$SYSTEM_DOCKER_SOCK"
		set_docker_host dev "unix://$SYSTEM_DOCKER_SOCK"
	else
		if ! is_root; then
			die "no Docker engine responds at ${DOCKER_HOST:-unix://$SYSTEM_DOCKER_SOCK}. Start one (e.g. 'sudo systemctl start docker', or 'sudo scripts/stack.sh up dev'), and make sure your user may use it (sudo usermod -aG docker \$USER), or set DOCKER_HOST"
		fi
		if [[ -S "$SYSTEM_DOCKER_SOCK" ]]; then rm -f "$SYSTEM_DOCKER_SOCK"; fi
		# With disk limits the dev engine's data root is the xfs image in the stack dir (images are
		# rebuilt after `rm -rf .stack`); without, the system default (/var/lib/docker). Its exec
		# root is the system default (/var/run/docker).
		local extra=()
		if quota_data_root "$dir" dev; then extra=("${QUOTA_ARGS[@]}" --data-root "$dir/data"); fi
		start_dockerd "$dir" "unix://$SYSTEM_DOCKER_SOCK" "${extra[@]}"
		set_docker_host dev "unix://$SYSTEM_DOCKER_SOCK"
	fi
}

docker_up_test() {
	local dir="$STACK_DIR/test/docker" sock="$STACK_DIR/test/docker.sock"
	check_sock_path "$sock"
	if pid_alive "$dir/dockerd.pid" dockerd; then
		# Ours and alive (possibly still starting): wait for it rather than start a second one.
		wait_until "test dockerd on unix://$sock" "$dir/dockerd.log" docker_ok "unix://$sock" || exit 1
		log "docker (test) already running on unix://$sock"
		set_docker_host test "unix://$sock"
		return 0
	fi
	if ! is_root; then
		# A second, isolated dockerd needs root. Fall back to sharing an engine the user can reach;
		# tests label and name their containers, so they can coexist with dev workloads.
		local shared="${DOCKER_HOST:-unix://$SYSTEM_DOCKER_SOCK}"
		if docker_ok "$shared"; then
			warn "not root: cannot start an isolated test dockerd; sharing the engine at $shared"
			set_docker_host test "$shared"
			return 0
		fi
		die "not root and no Docker engine responds at $shared. Run 'sudo scripts/stack.sh up test', or start Docker and make it usable by your user (sudo usermod -aG docker \$USER)"
	fi
	# Isolation: a second daemon with its own data-root (images, containers, volumes), exec-root
	# (its own managed containerd), pidfile and socket. Two daemons coexist fine here (cgroup v1,
	# --bridge=none, no iptables). Storage driver: overlay2 on the xfs data root (disk limits);
	# where that cannot be, dockerd's default (overlay2 on the ext4 that holds /work here), vfs
	# automatically if that fails (e.g. overlay on overlay).
	rm -f "$sock"
	quota_data_root "$dir" test || true
	start_dockerd "$dir" "unix://$sock" \
		--data-root "$dir/data" --exec-root "$dir/exec" --shutdown-timeout 3 "${QUOTA_ARGS[@]}"
	set_docker_host test "unix://$sock"
}

docker_down() {
	local profile="$1" dir="$STACK_DIR/$1/docker"
	rm -f "$STACK_DIR/$profile/docker.host"
	if [[ -f "$dir/dockerd.pid" ]]; then
		stop_pid "$dir/dockerd.pid" dockerd "dockerd ($profile)"
	fi
	if [[ -f "$dir/dockerd.launcher.pid" ]]; then
		stop_pid "$dir/dockerd.launcher.pid" dockerd "dockerd launcher ($profile)"
	fi
	if [[ "$profile" == test ]]; then
		rm -f "$STACK_DIR/test/docker.sock"
		# A daemon that died hard can leave mounts behind under its roots; release them (the xfs
		# data root itself last, and cleanly).
		local m
		if [[ -r /proc/self/mounts ]]; then
			while IFS= read -r m; do
				umount -l "$m" 2>/dev/null || true
			done < <(awk -v p="$dir/" -v d="$dir/data" 'index($2, p) == 1 && $2 != d { print $2 }' /proc/self/mounts | sort -r)
		fi
	fi
	quota_release "$dir"
	rm -f "$STACK_DIR/$profile/docker.default-size"
}

docker_image() {
	local profile="$1" host
	host="$(cat "$STACK_DIR/$profile/docker.host")"
	"$SCRIPT_DIR/image.sh" "$host"
}

# ---------------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------------

check_profile() {
	case "${1:-}" in
	dev | test) ;;
	*) die "profile must be 'dev' or 'test' (got '${1:-}')" ;;
	esac
}

cmd_up() {
	local profile="$1"
	cmd_deps
	mkdir -p "$STACK_DIR/$profile"
	pg_up "$profile"
	redis_up "$profile"
	if [[ "$profile" == dev ]]; then docker_up_dev; else docker_up_test; fi
	docker_image "$profile"
	log "$profile stack is up; load it with: eval \"\$(scripts/stack.sh env $profile)\""
}

cmd_down() {
	local profile="$1"
	[[ -d "$STACK_DIR/$profile" ]] || return 0
	docker_down "$profile"
	redis_down "$profile"
	pg_down "$profile"
	log "$profile stack is down"
}

cmd_env() {
	local profile="$1" host bindir
	host=""
	if [[ -f "$STACK_DIR/$profile/docker.host" ]]; then host="$(cat "$STACK_DIR/$profile/docker.host")"; fi
	if [[ "$profile" == dev ]]; then
		printf "export DATABASE_URL='%s'\n" "${DEV_DATABASE_URL:-postgres://postgres@127.0.0.1:5432/$DEV_DB_NAME?sslmode=disable}"
		printf "export REDIS_URL='%s'\n" "redis://127.0.0.1:6379"
		printf "export DOCKER_HOST='%s'\n" "${host:-unix://$SYSTEM_DOCKER_SOCK}"
	else
		bindir="$(pg_bindir)"
		printf "export ORCH_TEST_DATABASE_URL='%s'\n" "postgres://postgres@127.0.0.1:$(profile_port test pg)/postgres?sslmode=disable"
		printf "export ORCH_TEST_REDIS_URL='%s'\n" "redis://127.0.0.1:$(profile_port test redis)"
		printf "export ORCH_TEST_DOCKER_HOST='%s'\n" "${host:-unix://$STACK_DIR/test/docker.sock}"
		printf "export ORCH_TEST_IMAGE='%s'\n" "$SANDBOX_IMAGE"
		printf "export ORCH_TEST_PG_BINDIR='%s'\n" "$bindir"
		printf "export ORCH_TEST_REDIS_SERVER='%s'\n" "$(redis_server_bin)"
		# The engine's bound on a container that names no size (a build step's), when it has one.
		if [[ -s "$STACK_DIR/test/docker.default-size" ]]; then
			printf "export ORCH_TEST_DOCKER_DEFAULT_SIZE='%s'\n" "$(cat "$STACK_DIR/test/docker.default-size")"
		fi
	fi
}

cmd_status() {
	local profile="$1" port host
	port="$(profile_port "$profile" pg)"
	if pg_isready -q -h 127.0.0.1 -p "$port" 2>/dev/null; then echo "postgres  up   127.0.0.1:$port"; else echo "postgres  down 127.0.0.1:$port"; fi
	port="$(profile_port "$profile" redis)"
	if redis_ping "$port"; then echo "redis     up   127.0.0.1:$port"; else echo "redis     down 127.0.0.1:$port"; fi
	host="unix://$SYSTEM_DOCKER_SOCK"
	[[ "$profile" == test ]] && host="unix://$STACK_DIR/test/docker.sock"
	if [[ -f "$STACK_DIR/$profile/docker.host" ]]; then host="$(cat "$STACK_DIR/$profile/docker.host")"; fi
	if docker_ok "$host"; then echo "docker    up   $host"; else echo "docker    down $host"; fi
}

usage() {
	sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

main() {
	local cmd="${1:-}"
	case "$cmd" in
	deps) cmd_deps ;;
	up | down | env | status)
		check_profile "${2:-}"
		"cmd_$cmd" "$2"
		;;
	*) usage ;;
	esac
}

main "$@"
