#!/usr/bin/env bash
# Run the Go tests against the isolated `test` stack and the local test Kubernetes cluster
# (scripts/k8s.sh), and always tear both down afterwards (success, failure or Ctrl-C). Set
# STACK_KEEP=1 to leave them running for the next run.
#
# Usage: scripts/test.sh [go test args...]
#        no args: the whole suite (-race -count=1 -timeout 15m ./...) through gotestsum, then every
#                 fuzz target for FUZZTIME (default 3s) each
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$SCRIPT_DIR/.."

cleanup() {
	local rc=$?
	trap - EXIT INT TERM
	if [[ "${STACK_KEEP:-0}" != 1 ]]; then
		# Quietly, so the test summary stays the last thing printed; its log is kept.
		local log="${TMPDIR:-/tmp}/orchestrator-stack-down.log" failed=0
		"$SCRIPT_DIR/k8s.sh" down test >"$log" 2>&1 || failed=1
		"$SCRIPT_DIR/stack.sh" down test >>"$log" 2>&1 || failed=1
		((failed == 0)) || echo "[test] stopping the test stack failed: see $log" >&2
	else
		echo "[test] STACK_KEEP=1: leaving the test stack and cluster running (scripts/k8s.sh down test; scripts/stack.sh down test)" >&2
	fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

"$SCRIPT_DIR/stack.sh" up test
eval "$("$SCRIPT_DIR/stack.sh" env test)"
"$SCRIPT_DIR/k8s.sh" up test
eval "$("$SCRIPT_DIR/k8s.sh" env test)"

# The HTTP tests where the driver shows through the API (they read the runtime through
# testenv.Workloads, never Docker itself); validation, tenancy and the rules of the services are
# the same code whatever the driver, and the drivers' conformance suite covers the rest. Run one by hand with ORCH_TEST_DRIVER=kubernetes go tool task test -- ./handlers -run X.
# TestVolumeWithoutStorage is the Kubernetes side of volumes that Docker has not (storage bound
# late, by the cluster); it skips on Docker.
DRIVER_NEUTRAL_API_TESTS='^(TestSandboxLifecycle|TestRuntimeCapabilities|TestIdempotentCreate|TestExpiryReapsWithinSeconds|TestReconciliation|TestFailedStartLeavesNoContainer|TestExec|TestExecStreaming|TestFiles|TestLogs|TestMetrics|TestTerminal|TestKillDuringCreatesThenRestart|TestWarmPool|TestWarmPoolReplacesDeadMembers|TestPortProxy|TestPreviewURLs|TestEgressModesAreCappedByTheOperator|TestVolumes|TestVolumeWithoutStorage)$'

if [[ $# -eq 0 ]]; then
	# The whole suite: gotestsum prints one line per package, the failures in full, and a closing
	# "DONE N tests" summary.
	echo "[test] go test -race -count=1 -timeout 15m ./..." >&2
	go tool gotestsum --format pkgname-and-test-fails -- -race -count=1 -timeout 15m ./...
	# The API's driver-neutral tests once more, on the Kubernetes driver: the same table of tests
	# holds both drivers to the same behaviour through HTTP (the drivers' own conformance suite,
	# internal/runtimes/runtimetest, already ran for both above).
	echo "[test] the API's driver-neutral tests on the Kubernetes driver (ORCH_TEST_DRIVER=kubernetes)" >&2
	ORCH_TEST_DRIVER=kubernetes go tool gotestsum --format pkgname-and-test-fails -- -race -count=1 -timeout 15m \
		-run "$DRIVER_NEUTRAL_API_TESTS" ./handlers/ ./cmd/orchestrator/
	# Then every fuzz target briefly: the seeds and a few seconds of new inputs (longer: task fuzz).
	"$SCRIPT_DIR/fuzz.sh" "${FUZZTIME:-3s}"
else
	echo "[test] go test $*" >&2
	go test "$@"
fi
