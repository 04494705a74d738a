#!/usr/bin/env bash
# Run the Go tests against the isolated `test` stack, and always tear that stack down afterwards
# (success, failure or Ctrl-C). Set STACK_KEEP=1 to leave it running for the next run.
#
# Usage: scripts/test.sh [go test args...]
#        default args: -race -count=1 -timeout 15m ./...
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$SCRIPT_DIR/.."

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ "${STACK_KEEP:-0}" != 1 ]]; then
		"$SCRIPT_DIR/stack.sh" down test || true
	else
		echo "[test] STACK_KEEP=1: leaving the test stack running (scripts/stack.sh down test)" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$SCRIPT_DIR/stack.sh" up test
eval "$("$SCRIPT_DIR/stack.sh" env test)"

if [[ $# -eq 0 ]]; then
	set -- -race -count=1 -timeout 15m ./...
fi
echo "[test] go test $*" >&2
go test "$@"
