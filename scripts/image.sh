#!/usr/bin/env bash
# Build sandbox images offline with `docker import` (no registry is reachable here).
#
# Usage: scripts/image.sh [--force] [--target busybox|debian] [DOCKER_HOST]
#
#   busybox (default)  insien/sandbox:busybox — /bin/busybox from Debian's busybox-static plus
#                      its applet symlinks; ~2 MB; builds in about a second.
#   debian             insien/sandbox:debian — debootstrap'ed bookworm minbase + python3. Needs
#                      the `debootstrap` package and the Debian mirror (same one apt uses); slow.
#
# DOCKER_HOST may be given as the last argument (e.g. unix:///path/docker.sock) or via the
# environment. The build is skipped when the image already exists, unless --force is given.
set -euo pipefail

BUSYBOX_IMAGE="${SANDBOX_IMAGE:-insien/sandbox:busybox}"
DEBIAN_IMAGE="${SANDBOX_DEBIAN_IMAGE:-insien/sandbox:debian}"
DEBIAN_SUITE="${DEBIAN_SUITE:-bookworm}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"

# A long-running default command that exits promptly on SIGTERM/SIGINT.
CMD_JSON='["/bin/sh","-c","trap '"'"'exit 0'"'"' TERM INT; while :; do sleep 3600 & wait $!; done"]'

log() { printf '[image] %s\n' "$*" >&2; }
die() { printf '[image] error: %s\n' "$*" >&2; exit 1; }

force=0
target=busybox
while [[ $# -gt 0 ]]; do
	case "$1" in
	--force | -f) force=1 ;;
	--target) target="${2:?--target needs a value}"; shift ;;
	--target=*) target="${1#--target=}" ;;
	-h | --help) sed -n '2,12p' "$0"; exit 0 ;;
	-*) die "unknown flag $1" ;;
	*) export DOCKER_HOST="$1" ;;
	esac
	shift
done
# An empty DOCKER_HOST confuses the docker CLI.
if [[ -z "${DOCKER_HOST:-}" ]]; then unset DOCKER_HOST; fi

command -v docker >/dev/null 2>&1 || die "docker CLI not found (install docker.io: sudo apt-get install -y docker.io)"

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

work=""
cleanup() { if [[ -n "$work" ]]; then rm -rf "$work"; fi; }
trap cleanup EXIT

write_etc() {
	local root="$1" hostname="$2"
	mkdir -p "$root/etc"
	cat >"$root/etc/passwd" <<-'EOF'
		root:x:0:0:root:/root:/bin/sh
		sandbox:x:1000:1000:sandbox:/workspace:/bin/sh
		nobody:x:65534:65534:nobody:/nonexistent:/bin/false
	EOF
	cat >"$root/etc/group" <<-'EOF'
		root:x:0:
		sandbox:x:1000:
		nogroup:x:65534:
	EOF
	printf '%s\n' "$hostname" >"$root/etc/hostname"
	mkdir -p "$root/tmp" "$root/workspace" "$root/root"
	chmod 1777 "$root/tmp"
	chmod 0700 "$root/root"
	chown 1000:1000 "$root/workspace" 2>/dev/null || true
	chmod 0777 "$root/workspace"
}

import_rootfs() {
	local root="$1" ref="$2"
	# Numeric owners so the tarball does not depend on this host's user database.
	tar --numeric-owner -C "$root" -cf - . |
		docker import \
			--change "CMD $CMD_JSON" \
			--change 'WORKDIR /workspace' \
			--change 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
			--message "built by scripts/image.sh" \
			- "$ref" >/dev/null
	log "built $ref"
}

build_busybox() {
	local ref="$BUSYBOX_IMAGE" bb=""
	if [[ $force -eq 0 ]] && image_exists "$ref"; then
		log "$ref already present (use --force to rebuild)"
		return 0
	fi
	# Debian's busybox-static installs a static /bin/busybox (the dynamic `busybox` package
	# installs the same path, which would not run inside an empty rootfs).
	if dpkg -s busybox-static >/dev/null 2>&1 && [[ -x /bin/busybox ]]; then
		bb=/bin/busybox
	elif command -v file >/dev/null 2>&1 && file -L /bin/busybox 2>/dev/null | grep -q 'statically linked'; then
		bb=/bin/busybox
	fi
	[[ -n "$bb" ]] || die "static busybox not found (sudo apt-get install -y busybox-static)"

	work="$(mktemp -d)"
	local root="$work/rootfs"
	mkdir -p "$root/bin" "$root/sbin" "$root/usr/bin" "$root/usr/sbin" "$root/dev" "$root/proc" "$root/sys"
	cp "$bb" "$root/bin/busybox"
	chmod 0755 "$root/bin/busybox"
	# Applet symlinks, each in its canonical directory (bin/sh, usr/bin/env, sbin/ip, ...).
	local applet
	while IFS= read -r applet; do
		[[ -n "$applet" && "$applet" != bin/busybox ]] || continue
		mkdir -p "$root/$(dirname "$applet")"
		ln -sf /bin/busybox "$root/$applet"
	done < <("$root/bin/busybox" --list-full)
	[[ -e "$root/bin/sh" ]] || ln -s /bin/busybox "$root/bin/sh"
	write_etc "$root" sandbox
	import_rootfs "$root" "$ref"
}

build_debian() {
	local ref="$DEBIAN_IMAGE"
	if [[ $force -eq 0 ]] && image_exists "$ref"; then
		log "$ref already present (use --force to rebuild)"
		return 0
	fi
	[[ $EUID -eq 0 ]] || die "debootstrap needs root"
	if ! command -v debootstrap >/dev/null 2>&1; then
		if ! { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null; }; then
			die "cannot install debootstrap"
		fi
	fi
	work="$(mktemp -d)"
	local root="$work/rootfs"
	log "debootstrap $DEBIAN_SUITE (minbase + python3) from $DEBIAN_MIRROR — this takes a few minutes"
	debootstrap --variant=minbase --include=python3,ca-certificates \
		"$DEBIAN_SUITE" "$root" "$DEBIAN_MIRROR" >"$work/debootstrap.log" 2>&1 || {
		tail -n 20 "$work/debootstrap.log" >&2
		die "debootstrap failed"
	}
	chroot "$root" apt-get clean >/dev/null 2>&1 || true
	rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin
	# Keep Debian's own passwd/group; add the sandbox user.
	grep -q '^sandbox:' "$root/etc/passwd" || echo 'sandbox:x:1000:1000:sandbox:/workspace:/bin/sh' >>"$root/etc/passwd"
	grep -q '^sandbox:' "$root/etc/group" || echo 'sandbox:x:1000:' >>"$root/etc/group"
	printf 'sandbox\n' >"$root/etc/hostname"
	mkdir -p "$root/workspace"
	chown 1000:1000 "$root/workspace"
	chmod 1777 "$root/tmp"
	import_rootfs "$root" "$ref"
}

case "$target" in
busybox) build_busybox ;;
debian) build_debian ;;
*) die "unknown target $target (busybox|debian)" ;;
esac
