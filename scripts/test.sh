#!/usr/bin/env bash
# The whole test suite: what the README's test command and .ci/run run.
# It sets up what the tests need by itself (the test virtualenv with pinned
# Django, Flask, Starlette and FastAPI from PyPI; Debian's chromium, installed
# with apt-get as root when missing, for the status page test; pebble, Let's Encrypt's ACME
# test server, built pinned into .cache/bin, for the ACME tests), then runs
# vet, gofmt, the Go tests with the race detector, the Python runtime's tests
# under two interpreters, and each fuzz target briefly. FUZZ (default 200000x; 3000x for the end-to-end
# targets, which drive a real server) sets each target's budget as a number
# of executions: a wall-clock -fuzztime races Go 1.26's fuzz coordinator at
# the deadline and fails with a bare "context deadline exceeded"
# (golang/go#75804, fixed in Go 1.27).
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*" >&2; }

step "go vet"
go vet ./...

step "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './.cache/*'))
if [ -n "$unformatted" ]; then
  echo "gofmt would change: $unformatted" >&2
  exit 1
fi

step "test virtualenv (testdata/requirements-test.txt)"
WHISK_TEST_VENV=$(scripts/testenv.sh | tail -n 1)
export WHISK_TEST_VENV

step "headless chromium (the status page test renders the page)"
WHISK_TEST_CHROMIUM=$(scripts/chromium.sh | tail -n 1)
export WHISK_TEST_CHROMIUM

step "pebble ACME test server (the ACME tests get certificates from it)"
pebble_version=v2.10.1
bin=$PWD/.cache/bin
if [ ! -x "$bin/pebble" ] || [ ! -x "$bin/pebble-challtestsrv" ]; then
  GOBIN=$bin go install \
    "github.com/letsencrypt/pebble/v2/cmd/pebble@$pebble_version" \
    "github.com/letsencrypt/pebble/v2/cmd/pebble-challtestsrv@$pebble_version"
fi
export WHISK_TEST_PEBBLE=$bin/pebble WHISK_TEST_CHALLTESTSRV=$bin/pebble-challtestsrv

step "python runtime tests"
for py in python3 /usr/bin/python3; do
  if command -v "$py" >/dev/null 2>&1; then
    echo "-- $py ($("$py" --version 2>&1))" >&2
    "$py" -m unittest discover -s internal/pyrt/tests -t internal/pyrt
  fi
done

step "go test -race"
go test -race -count=1 -timeout 20m ./...

step "fuzz targets (${FUZZ:-200000x} executions each; end-to-end: ${FUZZ_E2E:-3000x})"
for pkg in $(go list ./...); do
  dir=$(go list -f '{{.Dir}}' "$pkg")
  budget=${FUZZ:-200000x}
  case "$pkg" in
    */e2e) budget=${FUZZ_E2E:-3000x} ;;
    */internal/config) budget=${FUZZ_CONFIG:-50000x} ;;     # each input is a file written and loaded
    */internal/compress) budget=${FUZZ_COMPRESS:-20000x} ;; # each input is compressed and decoded 3 ways
    */internal/accesslog) budget=${FUZZ_ACCESSLOG:-50000x} ;; # each input formats whole lines three ways
  esac
  for target in $(grep -ho '^func Fuzz[A-Za-z0-9_]*' "$dir"/*_test.go 2>/dev/null | sed 's/^func //' | sort -u); do
    start=$SECONDS
    if ! out=$(go test -run '^$' -fuzz "^${target}\$" -fuzztime "$budget" "$pkg" 2>&1); then
      echo "-- $pkg $target" >&2
      echo "$out" >&2
      exit 1
    fi
    echo "-- $pkg $target ($budget, $((SECONDS - start))s)" >&2
  done
done

echo >&2
echo "all tests passed" >&2
