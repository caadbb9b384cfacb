#!/usr/bin/env bash
# soak.sh: the long-running proofs that `make test` keeps short.
#   1. every fuzz target (func Fuzz* in any package) for FUZZTIME each;
#      a crasher is written to <pkg>/testdata/fuzz/<Target>/ and fails the run:
#      fix the bug and commit the file, `make test` then replays it forever.
#   2. the fault, crash and concurrency e2e tests SOAK_COUNT times over, to
#      shake out rare interleavings (retries, CAS races, elections).
# Usage: scripts/soak.sh            (FUZZTIME=30s SOAK_COUNT=5 by default)
#        FUZZTIME=5m SOAK_COUNT=20 scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."

GO=${GO:-go}
FUZZTIME=${FUZZTIME:-30s}
SOAK_COUNT=${SOAK_COUNT:-5}
SOAK_TESTS=${SOAK_TESTS:-'^(TestBackupKilledAtEveryStep|TestDeleteKilledAtEveryStep|TestManifestRetryKilled|TestManifestWriteCutOnFS|TestObjectStoreFaults.*|TestConcurrentBackupsLoseNothing.*|TestDeleteConcurrentWithBackups|TestEtcd.*|TestRestoreKilledAndRerun)$'}

failed=()
# `go test -fuzz` takes one package and one target at a time.
for pkg in $($GO list ./...); do
	targets=$($GO test -list '^Fuzz' "$pkg" 2>/dev/null | grep '^Fuzz' || true)
	for t in $targets; do
		echo "=== fuzz $pkg $t for $FUZZTIME"
		if ! $GO test -run '^$' -fuzz "^${t}\$" -fuzztime "$FUZZTIME" "$pkg"; then
			failed+=("fuzz $pkg $t")
		fi
	done
done

echo "=== fault, crash and concurrency tests, -count=$SOAK_COUNT"
if ! $GO test -count="$SOAK_COUNT" -timeout 120m -run "$SOAK_TESTS" ./e2e/; then
	failed+=("e2e faults")
fi

if ((${#failed[@]})); then
	printf 'soak FAILED: %s\n' "${failed[@]}"
	exit 1
fi
echo "soak passed"
