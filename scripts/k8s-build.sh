#!/usr/bin/env bash
# Builds kube-apiserver, kubelet, kube-scheduler and kube-controller-manager from the
# k8s.io/kubernetes Go module into a cache directory outside the clone, once per version.
# Prints the bin directory. Reruns (and CI on a machine that built once) cost seconds.
#
#   K8S_VERSION   (default v1.37.2)
#   K8S_CACHE     (default ${XDG_CACHE_HOME:-$HOME/.cache}/insien/k8s-$K8S_VERSION)
set -euo pipefail

K8S_VERSION="${K8S_VERSION:-v1.37.2}"
K8S_CACHE="${K8S_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/insien/k8s-$K8S_VERSION}"
BIN="$K8S_CACHE/bin"
COMPONENTS=(kube-apiserver kubelet kube-scheduler kube-controller-manager)

log() { printf '[k8s-build] %s\n' "$*" >&2; }

all_built() {
	local c
	for c in "${COMPONENTS[@]}"; do [[ -x "$BIN/$c" ]] || return 1; done
}

if all_built; then
	echo "$BIN"
	exit 0
fi

mkdir -p "$K8S_CACHE/src" "$BIN"
exec 9>"$K8S_CACHE/build.lock"
flock 9
if all_built; then echo "$BIN"; exit 0; fi

minor="${K8S_VERSION#v1.}"; minor="${minor%%.*}"
staging="v0.${K8S_VERSION#v1.}"
src="$K8S_CACHE/src"
cd "$src"
if [[ ! -f go.mod ]]; then
	log "preparing a module that requires k8s.io/kubernetes $K8S_VERSION"
	go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
	upstream_mod="$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod"
	{
		echo "module insien.local/k8sbuild"
		echo
		echo "go $(sed -n 's/^go //p' "$upstream_mod")"
		echo
		echo "require k8s.io/kubernetes $K8S_VERSION"
		echo
		echo "replace ("
		# Every staging module the upstream go.mod points at ./staging is served at v0.<minor>.<patch>.
		sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\t\1 => \1 '"$staging"'#p' "$upstream_mod"
		echo ")"
	} >go.mod
	cat >tools.go <<'GO'
//go:build tools

package k8sbuild

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
)
GO
	GOFLAGS=-mod=mod go mod tidy -e >&2
fi

ldflags="-s -w -X k8s.io/component-base/version.gitVersion=$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=$minor -X k8s.io/component-base/version.gitTreeState=clean"
for c in "${COMPONENTS[@]}"; do
	[[ -x "$BIN/$c" ]] && continue
	log "building $c $K8S_VERSION (the first build takes ~10 minutes on 2 cores)"
	start=$SECONDS
	go build -trimpath -ldflags "$ldflags" -o "$BIN/$c.tmp" "k8s.io/kubernetes/cmd/$c"
	mv "$BIN/$c.tmp" "$BIN/$c"
	log "built $c in $((SECONDS - start)) s"
done
echo "$BIN"
