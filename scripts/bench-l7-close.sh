#!/bin/bash
# In-kernel cost of the TCP state programs per short connection (docs/benchmarks.md, "L7
# socket close"): one agent, bpf_stats on, `ab -c 1` (a new connection per request, both ends
# on this host) against URL; prints each program's ns per run, runs and ns per request.
# Usage: scripts/bench-l7-close.sh AGENT_BINARY [URL] [N]   (needs ab, bpftool, curl; root)
set -euo pipefail
BIN=$1
URL=${2:-http://127.0.0.1:28080/}
N=${3:-20000}
SONDE_LOG=warn "$BIN" --listen 127.0.0.1:28090 > /tmp/bench-l7-close-agent.log 2>&1 &
AP=$!
trap 'kill $AP 2>/dev/null; sysctl -q -w kernel.bpf_stats_enabled=0' EXIT
for _ in $(seq 100); do
  curl -sf http://127.0.0.1:28090/metrics 2>/dev/null |
    grep -q '^sonde_subsystem_up{subsystem="l7"[^}]*} 1' && break
  sleep 0.2
done
# run_time_ns and run_cnt of every program the agent holds, by name.
stats() {
  python3 - "$AP" <<'PY'
import json, os, subprocess, sys
pid = sys.argv[1]
out = subprocess.run(["bpftool", "prog", "show", "-j"], capture_output=True, text=True).stdout
names = {p["id"]: p.get("name", "") for p in json.loads(out)}
seen = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        info = dict(l.split(":", 1) for l in open(f"/proc/{pid}/fdinfo/{fd}").read().splitlines() if ":" in l)
        prog = int(info["prog_id"].strip())
    except (OSError, KeyError, ValueError):
        continue
    if prog not in seen:
        seen.add(prog)
        print(names.get(prog, "?"), info.get("run_time_ns", "0").strip(), info.get("run_cnt", "0").strip())
PY
}
sysctl -q -w kernel.bpf_stats_enabled=1
stats > /tmp/bench-l7-close.0
ab -q -c 1 -n "$N" "$URL" > /dev/null
stats > /tmp/bench-l7-close.1
python3 - "$N" <<'PY'
import sys
n = int(sys.argv[1])
load = lambda f: {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in open(f)}
a, b = load("/tmp/bench-l7-close.0"), load("/tmp/bench-l7-close.1")
for k in sorted(b):
    dn, dc = b[k][0] - a.get(k, (0, 0))[0], b[k][1] - a.get(k, (0, 0))[1]
    if dc and (k.startswith("l7_sock") or k.startswith("inet_sock")):
        print(f"{k:26s} {dn/dc:6.0f} ns/run {dc/n:6.2f} runs/request {dn/n:6.0f} ns/request")
PY
