#!/bin/sh
# sonde on a plain Docker host: privileged, in the host's PID and network namespaces, with the
# host's cgroupfs. Metrics on http://<host>:10300/metrics
exec docker run -d --name sonde --restart unless-stopped \
  --privileged --pid host --network host \
  -v /sys/fs/cgroup:/host/sys/fs/cgroup:ro \
  -v /sys/kernel/tracing:/sys/kernel/tracing \
  -v /sys/kernel/debug:/sys/kernel/debug \
  ghcr.io/sonde/sonde:latest --cgroupfs-root=/host/sys/fs/cgroup
