#!/bin/sh
# sonde on a plain Docker host: privileged, in the host's PID and network namespaces, with the
# host's cgroupfs, tracefs and Docker socket. Metrics on http://<host>:10300/metrics
#
#   deploy/docker-run.sh                          # ghcr.io/sonde/sonde:latest
#   SONDE_IMAGE=sonde:local deploy/docker-run.sh  # the image scripts/image.sh built
#   deploy/docker-run.sh --metrics-endpoint http://prometheus:9090/api/v1/write  # extra flags
#
# DOCKER_HOST picks the daemon as for any docker command; HOST_DOCKER_SOCKET is the host path of
# that daemon's socket (default /var/run/docker.sock), mounted where the agent looks for it.
set -eu
image="${SONDE_IMAGE:-ghcr.io/sonde/sonde:latest}"
socket="${HOST_DOCKER_SOCKET:-/var/run/docker.sock}"
exec "${DOCKER:-docker}" run -d --name "${SONDE_NAME:-sonde}" --restart unless-stopped \
  --privileged --pid host --network host \
  -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro \
  -v /sys/kernel/tracing:/sys/kernel/tracing \
  -v /sys/kernel/debug:/sys/kernel/debug \
  -v "$socket":/run/docker.sock:ro \
  "$image" --cgroupfs-root=/host/sys/fs/cgroup --docker-socket=/run/docker.sock "$@"
