#!/usr/bin/env bash
# Builds the binary users get: statically linked (no glibc floor, runs FROM scratch), the
# `dist` profile, debug info split off into sonde.debug beside it (for symbolizing crash
# reports; not shipped) and stripped from the binary.
#
#   scripts/build-static.sh            # -> $SONDE_STATIC_DIR (default /var/tmp/sonde-target-static/static)/sonde (+ sonde.debug)
#
# No musl toolchain is needed: glibc's static archives (libc6-dev) with
# `-C target-feature=+crt-static` on x86_64-unknown-linux-gnu. The agent never resolves
# names through NSS (see docs/operations.md, "Static binary"), so the usual static-glibc
# caveat (getaddrinfo/getpwnam need the host's NSS libraries at run time) does not bite.
#
# The build has its own target dir (RUSTFLAGS change every crate's hash, so sharing the
# regular one would rebuild it from scratch each time) and is incremental: a second run with
# unchanged sources only re-links, which is how scripts/test.sh reuses it for the image test.
set -euo pipefail
cd "$(dirname "$0")/.."

target=x86_64-unknown-linux-gnu
export CARGO_TARGET_DIR="${SONDE_STATIC_TARGET_DIR:-/var/tmp/sonde-target-static}"
# Not $CARGO_TARGET_DIR/dist: cargo keeps the host artifacts (build scripts) of the profile there.
out="${SONDE_STATIC_DIR:-$CARGO_TARGET_DIR/static}"
# --target makes RUSTFLAGS apply to the agent only, not to build scripts and proc macros
# (which must stay dynamic: the compiler loads them).
RUSTFLAGS="${RUSTFLAGS:-} -C target-feature=+crt-static" \
    cargo build --locked --profile dist --target "$target" -p sonde --quiet

built="$CARGO_TARGET_DIR/$target/dist/sonde"
mkdir -p "$out"
# Only rewrite the outputs when the build changed, so their mtimes (and image layers built
# from them) stay put across runs.
if [ ! -f "$out/sonde" ] || [ "$built" -nt "$out/sonde" ]; then
    cp "$built" "$out/sonde.tmp"
    objcopy --only-keep-debug "$out/sonde.tmp" "$out/sonde.debug"
    objcopy --strip-all --add-gnu-debuglink="$out/sonde.debug" "$out/sonde.tmp"
    mv "$out/sonde.tmp" "$out/sonde"
fi
# A dynamic binary lists its libraries ("libc.so.6 => ..."); a static(-pie) one does not.
if ldd "$out/sonde" 2>&1 | grep -q "=>"; then
    echo "build-static: $out/sonde is not statically linked" >&2
    exit 1
fi
echo "$out/sonde"
