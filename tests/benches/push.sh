#!/usr/bin/env bash
# Push delivery throughput: how fast the agent drains a spool into a real Prometheus
# remote-write receiver after an outage. Needs root, prometheus (Debian), curl.
#
#   tests/benches/push.sh [agent binary] [outage seconds]
#
# The agent gathers every 100 ms while Prometheus is stopped, so the spool fills with
# 10 batches a second; then Prometheus starts again and the drain is timed from the agent's
# own counters (sonde_push_samples_sent_total, sonde_push_spool_batches).
set -euo pipefail
bin="${1:-/var/tmp/sonde-target-static/static/sonde}"
outage="${2:-30}"
dir="$(mktemp -d)"
prom_port=19390
agent_port=19391
cleanup() { kill "${agent:-}" "${prom:-}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$dir"; }
trap cleanup EXIT
printf 'global:\n  scrape_interval: 1h\n' > "$dir/prometheus.yml"
start_prom() {
    prometheus --config.file="$dir/prometheus.yml" --storage.tsdb.path="$dir/data" \
        --web.listen-address=127.0.0.1:$prom_port --web.enable-remote-write-receiver \
        >/dev/null 2>&1 &
    prom=$!
    until curl -sf "127.0.0.1:$prom_port/-/ready" >/dev/null; do sleep 0.2; done
}
metric() { curl -s "127.0.0.1:$agent_port/metrics" | awk -v m="$1{" 'index($0, m) == 1 && /protocol="remote_write"/ {print $NF}'; }
start_prom
"$bin" --listen 127.0.0.1:$agent_port --metrics-endpoint "http://127.0.0.1:$prom_port/api/v1/write" \
    --scrape-interval 100ms --push-retry-min 100ms --push-retry-max 1s --wal-dir "$dir/wal" \
    --disable-log-parsing >"$dir/agent.log" 2>&1 &
agent=$!
sleep 3
kill "$prom"; wait "$prom" 2>/dev/null || true
sleep "$outage"
batches=$(metric sonde_push_spool_batches)
bytes=$(metric sonde_push_spool_bytes)
sent0=$(metric sonde_push_samples_sent_total)
start_prom
t0=$(date +%s.%N)
until [ "$(metric sonde_push_spool_batches)" = 0 ]; do sleep 0.05; done
t1=$(date +%s.%N)
sent1=$(metric sonde_push_samples_sent_total)
cpu=$(awk '{print ($14+$15)/100}' "/proc/$agent/stat")
awk -v b="$batches" -v by="$bytes" -v s0="$sent0" -v s1="$sent1" -v t0="$t0" -v t1="$t1" -v cpu="$cpu" 'BEGIN {
    d = t1 - t0; n = s1 - s0;
    printf "samples per batch: %.0f\n", n / b;
    printf "spooled during the outage: %d batches, %d bytes (%.0f bytes/batch)\n", b, by, by / b;
    printf "drained in %.2f s after Prometheus was ready: %d samples, %.0f samples/s, %.1f batches/s\n", d, n, n / d, b / d;
    printf "agent CPU over the whole run: %.2f s\n", cpu }'
