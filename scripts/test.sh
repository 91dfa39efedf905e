#!/usr/bin/env bash
# The whole test suite: formatting, lints, unit tests, and the privileged integration tests
# against real kernels, runtimes and scrapers. Run it as root to run everything; as root it
# installs the Debian packages the integration tests need (CI starts from a bare machine).
#
#   scripts/test.sh            # everything
#   SONDE_REQUIRE_PRIVILEGED=1 scripts/test.sh   # a skipped privileged test is a failure (CI)
#   SONDE_REQUIRE_DATA=1 scripts/test.sh         # a test skipped for missing data is a failure
set -euo pipefail
cd "$(dirname "$0")/.."

# Builds are cached outside the clone so a fresh checkout does not rebuild everything.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/tmp/sonde-target}"
# A fresh clone gains nothing from incremental builds, which double the target's size.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"

# Debian packages the integration tests use (ENVIRONMENT.md): container runtimes and a busybox
# to build images from, Prometheus and promtool, journald tools, the eBPF toolchain, network tools.
PACKAGES=(containerd runc containernetworking-plugins busybox-static docker.io prometheus
          systemd-journal-remote clang llvm bpftool libbpf-dev iptables iproute2 util-linux
          procps coreutils tmux
          binutils libc6-dev python3-venv
          e2fsprogs mount redis-server nginx postgresql gcc
          curl apache2-utils bind9-dnsutils nghttp2-server nghttp2-client redis-tools
          postgresql-client openssl golang-go
          mariadb-server-core memcached nats-server rabbitmq-server zookeeper)

install_packages() {
    local missing=()
    for p in "${PACKAGES[@]}"; do
        dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        echo "== installing: ${missing[*]}"
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    fi
}

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
    install_packages
    # Tools no Debian package has (OTLP reference protos, a Kubernetes schema validator, helm).
    scripts/install-test-tools.sh
else
    echo "== not root: privileged integration tests will skip (each says why)"
fi

step() { echo "== $*"; }

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets --quiet -- -D warnings

if [ -f ebpf/Makefile ] && command -v clang >/dev/null; then
    step "committed eBPF objects match their sources"
    make -s -C ebpf check
fi

step "build the agent (integration tests run the real binary)"
cargo build -p sonde --quiet

step "static release binary for the image test (cached in /var/tmp/sonde-target-static)"
SONDE_STATIC_BIN="$(scripts/build-static.sh | tail -n 1)"
export SONDE_STATIC_BIN
ls -l "$SONDE_STATIC_BIN"

step "cargo test"
# Every skipped test appends "SKIPPED <test>: <reason>" here (sonde-testsupport's skip policy):
# cargo shows a passing test's stderr only with --nocapture, so the file is the report.
export SONDE_SKIP_LOG="${SONDE_SKIP_LOG:-/tmp/sonde-skips.log}"
: > "$SONDE_SKIP_LOG"
# The exit status is cargo's, taken from PIPESTATUS before anything else runs (a `|| true`
# after the pipeline would replace it).
set +e
cargo test --workspace --no-fail-fast 2>&1 | tee /tmp/sonde-test.log \
    | grep -E "^(test |running|test result|failures|---- )|panicked|SKIPPED"
statuses=("${PIPESTATUS[@]}")
set -e
status=${statuses[0]}
if [ -s "$SONDE_SKIP_LOG" ]; then
    echo "== $(wc -l < "$SONDE_SKIP_LOG") skipped (SONDE_REQUIRE_PRIVILEGED=1 / SONDE_REQUIRE_DATA=1 make them failures):"
    sort "$SONDE_SKIP_LOG"
else
    echo "== no test skipped"
fi
if [ "$status" != 0 ]; then
    echo "== cargo test failed (full log: /tmp/sonde-test.log)"
    grep -E -A30 "^---- " /tmp/sonde-test.log | head -300 || true
    grep -E -B2 -A12 "^error(\[|:)" /tmp/sonde-test.log | head -100 || true
fi
exit "$status"
