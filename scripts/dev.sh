#!/usr/bin/env bash
# Development helpers around the `dev` stack.
#
# Usage: scripts/dev.sh [run]          stack up dev, migrate up, print a dev API key, serve;
#                                      on exit (incl. Ctrl-C) stops the services it started
#        scripts/dev.sh migrate [ARGS] go run ./cmd/orchestrator migrate ARGS (default: up)
#        scripts/dev.sh key            create a dev API key (warns on failure)
#
# `run` leaves the stack running when it was already fully up before (e.g. `task stack:up`),
# or when STACK_KEEP=1.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$SCRIPT_DIR/.."
STACK="$SCRIPT_DIR/stack.sh"

load_env() {
	eval "$("$STACK" env dev)"
	export ORCH_ENV="${ORCH_ENV:-development}"
}

cmd_migrate() {
	load_env
	if [[ $# -eq 0 ]]; then set -- up; fi
	go run ./cmd/orchestrator migrate "$@"
}

cmd_key() {
	load_env
	if ! go run ./cmd/orchestrator keys create --email dev@localhost --name dev; then
		echo "[dev] warning: could not create a dev API key (does 'orchestrator keys create' exist yet?)" >&2
	fi
	return 0
}

cmd_run() {
	KEEP="${STACK_KEEP:-0}"
	local before
	before="$("$STACK" status dev 2>/dev/null || true)"
	if [[ "$before" != *" down "* ]]; then KEEP=1; fi

	cleanup() {
		local rc=$?
		trap - EXIT INT TERM
		if [[ "$KEEP" != 1 ]]; then
			"$STACK" down dev || true
		else
			echo "[dev] leaving the dev stack running (scripts/stack.sh down dev)" >&2
		fi
		exit "$rc"
	}
	trap cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM

	"$STACK" up dev
	cmd_migrate up
	cmd_key
	load_env
	echo "[dev] serving with ORCH_ENV=$ORCH_ENV DATABASE_URL=$DATABASE_URL REDIS_URL=$REDIS_URL DOCKER_HOST=$DOCKER_HOST" >&2
	go run ./cmd/orchestrator serve
}

case "${1:-run}" in
run) cmd_run ;;
migrate) shift; cmd_migrate "$@" ;;
key) cmd_key ;;
*) sed -n '2,10p' "$0" >&2; exit 2 ;;
esac
