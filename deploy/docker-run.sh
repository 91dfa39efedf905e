#!/bin/sh
# sonde on a plain Docker host: privileged, in the host's PID and network namespaces, with the
# host's cgroupfs, tracefs and Docker socket. Metrics on http://<host>:10300/metrics
#
#   deploy/docker-run.sh                          # ghcr.io/sonde/sonde:latest
#   SONDE_IMAGE=sonde:local deploy/docker-run.sh  # the image scripts/image.sh built
#   deploy/docker-run.sh --metrics-endpoint http://prometheus:9090/api/v1/write  # extra flags
#
# SONDE_PRIVILEGE replaces --privileged where a host cannot grant every capability (a root
# without CAP_SYS_RESOURCE in its bounding set makes runc fail "unable to apply caps"):
#   SONDE_PRIVILEGE="--cap-add=ALL --cap-drop=SYS_RESOURCE --security-opt=seccomp=unconfined
#                    --security-opt=apparmor=unconfined --security-opt=systempaths=unconfined"
# DOCKER_HOST picks the daemon as for any docker command; HOST_DOCKER_SOCKET is the host path of
# that daemon's socket (default /var/run/docker.sock), mounted where the agent looks for it.
set -eu
image="${SONDE_IMAGE:-ghcr.io/sonde/sonde:latest}"
socket="${HOST_DOCKER_SOCKET:-/var/run/docker.sock}"
# The node's identity: the agent reads the host's /etc/machine-id through /proc/1/root, which
# some hosts deny even to privileged containers; the mount covers them.
machine_id=""
[ -f /etc/machine-id ] && machine_id="-v /etc/machine-id:/etc/machine-id:ro"
exec "${DOCKER:-docker}" run -d --name "${SONDE_NAME:-sonde}" --restart unless-stopped \
  ${SONDE_PRIVILEGE:---privileged} --pid host --network host \
  -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro \
  -v /sys/kernel/tracing:/sys/kernel/tracing \
  -v /sys/kernel/debug:/sys/kernel/debug \
  -v "$socket":/run/docker.sock:ro $machine_id \
  "$image" --cgroupfs-root=/host/sys/fs/cgroup --docker-socket=/run/docker.sock "$@"
