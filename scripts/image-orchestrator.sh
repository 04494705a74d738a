#!/usr/bin/env bash
# Build the orchestrator's own image offline: a static binary in an image FROM scratch
# (deploy/image/Dockerfile), tagged insien/orchestrator:<version> and :dev, saved as a tar that
# containerd imports, and optionally imported into the project's Kubernetes cluster.
#
# Usage: scripts/image-orchestrator.sh [--import [PROFILE]] [--output FILE]
#
#   --import [PROFILE]  import the saved tar into the cluster of scripts/k8s.sh (profile dev or
#                       test, default dev), so Pods with imagePullPolicy Never/IfNotPresent find it
#   --output FILE       where the tar goes (default bin/orchestrator-image.tar)
#
# The Docker engine is the one DOCKER_HOST names (the local socket when unset); `docker build` of a
# FROM scratch Dockerfile pulls nothing. VERSION (default `git describe --always --dirty`) is
# stamped into the binary as `orchestrator version` prints it, and into the tag. The last line on
# stdout is the image reference (insien/orchestrator:<version>).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
ROOT="$(cd "$SCRIPT_DIR/.." && pwd)"
cd "$ROOT"

REPO="${ORCHESTRATOR_IMAGE:-insien/orchestrator}"
# The user the Dockerfile runs as (the conventional "nonroot" id).
NONROOT=65532
# Debian's ca-certificates bundle: copied in when present so TLS to Clerk or Postgres verifies.
CA_BUNDLE="${CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

log() { printf '[image-orchestrator] %s\n' "$*" >&2; }
die() { printf '[image-orchestrator] error: %s\n' "$*" >&2; exit 1; }

profile=""
output="bin/orchestrator-image.tar"
while [[ $# -gt 0 ]]; do
	case "$1" in
	--import)
		profile=dev
		if [[ $# -gt 1 && "$2" != -* ]]; then profile="$2"; shift; fi
		;;
	--output) output="${2:?--output needs a file}"; shift ;;
	--output=*) output="${1#--output=}" ;;
	-h | --help) sed -n '2,16p' "$0"; exit 0 ;;
	*) die "unknown argument $1" ;;
	esac
	shift
done
# An empty DOCKER_HOST confuses the docker CLI.
if [[ -z "${DOCKER_HOST:-}" ]]; then unset DOCKER_HOST; fi
command -v docker >/dev/null 2>&1 || die "docker CLI not found (sudo apt-get install -y docker.io)"

version="${VERSION:-$(git describe --always --dirty 2>/dev/null || echo dev)}"
ref="$REPO:$version"

context="$(mktemp -d)"
trap 'rm -rf "$context"' EXIT
rootfs="$context/rootfs"
mkdir -p "$rootfs/etc" "$rootfs/tmp"
chmod 1777 "$rootfs/tmp"

# Static (no libc in the image), paths trimmed, stripped (panics keep their stack traces: the
# line tables stay), version stamped as `go tool task build` does.
log "go build ($version)"
CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=$version" \
	-o "$rootfs/orchestrator" ./cmd/orchestrator

printf 'root:x:0:0:root:/:/sbin/nologin\nnonroot:x:%d:%d:nonroot:/:/sbin/nologin\n' "$NONROOT" "$NONROOT" >"$rootfs/etc/passwd"
printf 'root:x:0:\nnonroot:x:%d:\n' "$NONROOT" >"$rootfs/etc/group"
if [[ -r "$CA_BUNDLE" ]]; then
	mkdir -p "$rootfs/etc/ssl/certs"
	cp "$CA_BUNDLE" "$rootfs/etc/ssl/certs/ca-certificates.crt"
else
	log "warning: no CA bundle at $CA_BUNDLE (sudo apt-get install -y ca-certificates): TLS to Clerk will not verify"
fi
cp deploy/image/Dockerfile "$context/Dockerfile"

# The classic builder: it needs no buildx plugin and, for FROM scratch, no registry. Its
# deprecation notice is shown only with a failure.
log "docker build $ref"
if ! DOCKER_BUILDKIT=0 docker build --quiet --build-arg "VERSION=$version" \
	--tag "$ref" --tag "$REPO:dev" "$context" >"$context/build.log" 2>&1; then
	cat "$context/build.log" >&2
	die "docker build failed"
fi

mkdir -p "$(dirname "$output")"
docker save --output "$output" "$ref" "$REPO:dev"
log "saved $ref and $REPO:dev to $output ($(du -h "$output" | cut -f1))"

if [[ -n "$profile" ]]; then
	[[ -x "$SCRIPT_DIR/k8s.sh" ]] || die "scripts/k8s.sh not found: cannot import into the cluster"
	"$SCRIPT_DIR/k8s.sh" import "$output" "$profile"
fi
echo "$ref"
