#!/usr/bin/env bash
# Builds the image `sonde:local` (or $SONDE_IMAGE) with the local Docker daemon: the static
# binary (scripts/build-static.sh, or $SONDE_STATIC_BIN when already built) FROM scratch,
# so nothing is pulled. DOCKER_HOST is honoured like by any docker command; $DOCKER picks
# the client. The result is the final stage of ./Dockerfile, which builds the same binary
# inside Docker for registries' CI.
#
#   scripts/image.sh                       # -> sonde:local
#   DOCKER_HOST=unix:///path/docker.sock SONDE_IMAGE=sonde:test scripts/image.sh
set -euo pipefail
cd "$(dirname "$0")/.."

image="${SONDE_IMAGE:-sonde:local}"
docker="${DOCKER:-docker}"
bin="${SONDE_STATIC_BIN:-}"
if [ -z "$bin" ]; then
    bin="$(scripts/build-static.sh | tail -n 1)"
fi
[ -x "$bin" ] || { echo "image.sh: $bin is not an executable" >&2; exit 1; }

ctx="$(mktemp -d)"
trap 'rm -rf "$ctx"' EXIT
cp "$bin" "$ctx/sonde"
cat > "$ctx/Dockerfile" <<'DOCKERFILE'
FROM scratch
COPY sonde /usr/bin/sonde
EXPOSE 10300
ENTRYPOINT ["/usr/bin/sonde"]
DOCKERFILE
# The classic builder: it builds FROM scratch with any daemon, BuildKit or not.
DOCKER_BUILDKIT=0 "$docker" build --quiet -t "$image" "$ctx" >/dev/null
echo "$image"
