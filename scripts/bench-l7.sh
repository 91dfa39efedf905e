#!/usr/bin/env bash
# The L7 engine's cost under load (issue 15, "Cost"): a real nginx driven by ab and a real
# redis-server driven by redis-benchmark, each run with
#   off    no agent,
#   nol7   the agent with --disable-l7-tracing (TCP tracing and everything else on),
#   l7     the agent with L7 tracing on, on the best hooks the kernel allows (the socket
#          tracepoints on kernels >= 6.3),
#   l7sys  the same agent with its L7 programs pinned to the raw syscall tracepoints
#          (SONDE_L7_HOOKS=syscalls: the tier kernels 5.5-6.2 get),
# interleaved round by round (the order rotated), so drift of this shared machine's speed
# spreads over all of them. While it runs, /dev/cpu_dma_latency is held at 0 (PIN_IDLE=0 to
# leave it): the CPUs poll instead of sleeping between requests, so a round's speed depends on
# the modes' cost rather than on how deep an idle CPU fell asleep (on this VM that alone moved
# ab -c 1 between 9,000 and 46,000 requests/s). Reported per mode: the median of RUNS runs with min..max of
#   - ab requests/s and mean time per request (-k -c 1: one keep-alive connection, so the
#     mean time per request is the request's latency; the l7-minus-off difference is the
#     latency the agent adds per request),
#   - redis-benchmark SET and GET requests/s and mean latency (-c 1),
#   - wrk requests/s against the same nginx, 1 thread, WRK_CONNS connections, WRK_SECS seconds
#     (both CPUs busy: the throughput loss is then the CPU the agent adds per request, its
#     programs' and its own, against the CPU a request costs),
#   - the agent's CPU (utime+stime of /proc/<agent>/stat) per 100,000 requests,
#   - the fast path: wall ns per syscall of `dd bs=1` copying /dev/zero to /dev/null (2 x DD_N
#     reads and writes that are no socket: what every process pays once the syscall
#     tracepoints are attached; l7 minus off is that cost per syscall).
# Then one more l7 run with kernel.bpf_stats_enabled=1 (kept off during the timed rounds, as
# the accounting itself costs time on every program run) for the in-kernel cost: ns per run of
# each L7 program under the request load, ns per run on the dd fast path, and the L7
# programs' total ns per request, from the run_time_ns/run_cnt the
# kernel keeps for each program the agent holds (/proc/<agent>/fdinfo). The total counts every
# read and write of every process during the window (the fast path's cost included), so on a
# busy machine it is an upper bound.
#
# Not part of the test suite. Needs root, nginx, apache2-utils (ab), redis-server, redis-tools,
# bpftool (names of the programs), python3. Loopback only.
#
# usage: scripts/bench-l7.sh    (env: SONDE_BIN, RUNS=5, AB_N=50000, REDIS_N=50000, DD_N=1000000,
#                                MODES="off nol7 l7 l7sys", PIN_IDLE=1, WRK_SECS=5, WRK_CONNS=16)
# Besides each mode's median, the throughput changes are given as paired ratios: each round's
# figure against the same round's "off" run, median (min..max) over the rounds, which takes
# out the machine's drift from round to round.
set -euo pipefail

RUNS=${RUNS:-5}
AB_N=${AB_N:-50000}
REDIS_N=${REDIS_N:-50000}
DD_N=${DD_N:-1000000}
read -r -a modes <<<"${MODES:-off nol7 l7 l7sys}"
WRK_SECS=${WRK_SECS:-5}
WRK_CONNS=${WRK_CONNS:-16}
PIN_IDLE=${PIN_IDLE:-1}
cd "$(dirname "$0")/.."
SONDE_BIN=${SONDE_BIN:-${CARGO_TARGET_DIR:-target}/release/sonde}
[ -x "$SONDE_BIN" ] || { echo "no agent binary at $SONDE_BIN (cargo build --release -p sonde, or set SONDE_BIN)" >&2; exit 2; }
[ "$(id -u)" = 0 ] || { echo "needs root (eBPF)" >&2; exit 2; }
for t in nginx ab wrk redis-server redis-benchmark bpftool python3 curl; do
    command -v "$t" >/dev/null || { echo "missing $t (apt-get install -y nginx apache2-utils wrk redis-server redis-tools bpftool curl)" >&2; exit 2; }
done

work=$(mktemp -d /tmp/sonde-bench-l7.XXXXXX)
chmod 755 "$work"
agent_pid=""
pin_pid=""
nginx_pid=""
redis_pid=""
stats_before=$(sysctl -n kernel.bpf_stats_enabled)
cleanup() {
    [ -n "$agent_pid" ] && kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    [ -n "$pin_pid" ] && kill "$pin_pid" 2>/dev/null || true
    sysctl -q -w kernel.bpf_stats_enabled="$stats_before" || true
    rm -rf "$work"
}
trap cleanup EXIT

# A free loopback port outside the ephemeral range (the agent never traces ephemeral ports as
# destinations).
free_port() {
    python3 - <<'PY'
import random, socket
for _ in range(500):
    p = random.randint(20000, 32000)
    s = socket.socket()
    try:
        s.bind(("127.0.0.1", p))
        print(p)
        break
    except OSError:
        pass
    finally:
        s.close()
PY
}

wait_port() {
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0
        sleep 0.1
    done
    echo "nothing listens on 127.0.0.1:$1" >&2
    exit 1
}

NGINX_PORT=$(free_port)
REDIS_PORT=$(free_port)
AGENT_PORT=$(free_port)
mkdir -p "$work/nginx/html" "$work/nginx/tmp" "$work/redis"
cat >"$work/nginx/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 1;
user root root;
pid $work/nginx/nginx.pid;
error_log $work/nginx/error.log;
events { worker_connections 1024; }
http {
    access_log off;
    client_body_temp_path $work/nginx/tmp/body;
    proxy_temp_path $work/nginx/tmp/proxy;
    fastcgi_temp_path $work/nginx/tmp/fastcgi;
    uwsgi_temp_path $work/nginx/tmp/uwsgi;
    scgi_temp_path $work/nginx/tmp/scgi;
    keepalive_requests 10000000;
    server {
        listen 127.0.0.1:$NGINX_PORT;
        location / { return 200 "ok\n"; }
    }
}
EOF
nginx -p "$work/nginx" -c "$work/nginx/nginx.conf" -e "$work/nginx/error.log" &
nginx_pid=$!
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no --dir "$work/redis" \
    --logfile "$work/redis/redis.log" &
redis_pid=$!
wait_port "$NGINX_PORT"
wait_port "$REDIS_PORT"

start_agent() { # $1: mode (nol7 | l7 | l7sys)
    local args=(--listen "127.0.0.1:$AGENT_PORT") hooks=""
    if [ "$1" = nol7 ]; then args+=(--disable-l7-tracing); fi
    if [ "$1" = l7sys ]; then hooks=syscalls; fi
    SONDE_L7_HOOKS=$hooks SONDE_LOG=warn "$SONDE_BIN" "${args[@]}" >"$work/agent.log" 2>&1 &
    agent_pid=$!
    local subsystem=tracer
    if [ "$1" != nol7 ]; then subsystem=l7; fi
    local want="^sonde_subsystem_up\\{subsystem=\"$subsystem\"[^}]*\\} 1\$"
    for _ in $(seq 300); do
        if curl -sf "http://127.0.0.1:$AGENT_PORT/metrics" 2>/dev/null | grep -qE "$want"; then
            return 0
        fi
        kill -0 "$agent_pid" 2>/dev/null || { cat "$work/agent.log" >&2; exit 1; }
        sleep 0.1
    done
    echo "agent ($1) not up: $want missing" >&2
    cat "$work/agent.log" >&2
    exit 1
}

stop_agent() {
    kill "$agent_pid" && wait "$agent_pid" 2>/dev/null || true
    agent_pid=""
}

agent_cpu_ticks() { # utime + stime of the agent, in clock ticks
    if [ -n "$agent_pid" ]; then
        awk '{ sub(/^.*\) /, ""); print $12 + $13 }' "/proc/$agent_pid/stat"
    else
        echo 0
    fi
}

# The L7 programs the agent holds: "name run_time_ns run_cnt" per program.
l7_prog_stats() {
    python3 - "$agent_pid" <<'PY'
import json, os, subprocess, sys
pid = sys.argv[1]
names = {p["id"]: p.get("name", "") for p in json.loads(subprocess.run(
    ["bpftool", "prog", "show", "-j"], capture_output=True, check=True, text=True).stdout)}
seen = set()
for fd in os.listdir(f"/proc/{pid}/fd"):
    try:
        if os.readlink(f"/proc/{pid}/fd/{fd}") != "anon_inode:bpf-prog":
            continue
        info = dict(l.split(":", 1) for l in open(f"/proc/{pid}/fdinfo/{fd}").read().splitlines() if ":" in l)
    except OSError:
        continue
    pid_ = int(info["prog_id"].strip())
    name = names.get(pid_, "")
    if pid_ in seen or not name.startswith("l7_"):
        continue
    seen.add(pid_)
    print(name, info.get("run_time_ns", "0").strip(), info.get("run_cnt", "0").strip())
PY
}

results="$work/results.tsv"
: >"$results"

one_run() { # $1 mode, $2 round: appends "mode round metric value" lines
    local mode=$1 round=$2 ab_out redis_out t0 t1
    if [ "$mode" != off ]; then start_agent "$mode"; fi
    sleep 1
    t0=$(agent_cpu_ticks)
    ab_out=$(ab -q -k -c 1 -n "$AB_N" "http://127.0.0.1:$NGINX_PORT/")
    redis_out=$(redis-benchmark -p "$REDIS_PORT" -c 1 -n "$REDIS_N" -t set,get --csv)
    t1=$(agent_cpu_ticks)
    local wrk_out
    wrk_out=$(wrk -t 1 -c "$WRK_CONNS" -d "${WRK_SECS}s" "http://127.0.0.1:$NGINX_PORT/")
    local d0 d1
    d0=$(date +%s%N)
    dd if=/dev/zero of=/dev/null bs=1 count="$DD_N" status=none
    d1=$(date +%s%N)
    if [ "$mode" != off ]; then stop_agent; fi
    {
        echo "$mode $round fastpath_ns_per_syscall $(((d1 - d0) / (2 * DD_N)))"
        echo "$ab_out" | awk -v m="$mode" -v r="$round" '
            /^Requests per second/ { print m, r, "ab_rps", $4 }
            /^Time per request/ && !done { print m, r, "ab_latency_us", $4 * 1000; done = 1 }
            /^Failed requests/ { print m, r, "ab_failed", $3 }'
        echo "$wrk_out" | awk -v m="$mode" -v r="$round" '/^Requests\/sec/ { print m, r, "wrk_rps", $2 }'
        echo "$redis_out" | tr -d '"' | awk -F, -v m="$mode" -v r="$round" '
            $1 == "SET" || $1 == "GET" { print m, r, "redis_" tolower($1) "_rps", $2; print m, r, "redis_" tolower($1) "_latency_us", $3 * 1000 }'
        local ticks=$((t1 - t0)) hz requests
        hz=$(getconf CLK_TCK)
        requests=$((AB_N + 2 * REDIS_N))  # wrk's requests come after t1: not in the CPU figure
        if [ "$mode" != off ]; then
            echo "$mode $round agent_cpu_ms_per_100k $(python3 -c "print($ticks / $hz * 1000 * 100000 / $requests)")"
        fi
    } >>"$results"
}

if [ "$PIN_IDLE" = 1 ]; then
    python3 -c 'import os, struct, time
fd = os.open("/dev/cpu_dma_latency", os.O_WRONLY)
os.write(fd, struct.pack("i", 0))
time.sleep(86400)' &
    pin_pid=$!
fi
echo "== $(nproc) CPUs, $(uname -r), agent $SONDE_BIN, $RUNS rounds of ${modes[*]}: ab -k -c 1 -n $AB_N, redis-benchmark -c 1 -n $REDIS_N -t set,get (idle pinned: $PIN_IDLE)"
for round in $(seq "$RUNS"); do
    # Rotate the order each round.
    for i in $(seq 0 $((${#modes[@]} - 1))); do
        mode=${modes[$(((i + round) % ${#modes[@]}))]}
        one_run "$mode" "$round"
        echo "   round $round $mode done"
    done
done

# In-kernel cost, in one extra run of each L7 mode with bpf_stats on.
sysctl -q -w kernel.bpf_stats_enabled=1
stats_report=""
for mode in "${modes[@]}"; do
    case $mode in l7 | l7sys) ;; *) continue ;; esac
    start_agent "$mode"
    sleep 1
    before=$(l7_prog_stats)
    ab -q -k -c 1 -n "$AB_N" "http://127.0.0.1:$NGINX_PORT/" >/dev/null
    redis-benchmark -p "$REDIS_PORT" -c 1 -n "$REDIS_N" -t set,get --csv >/dev/null
    after=$(l7_prog_stats)
    dd if=/dev/zero of=/dev/null bs=1 count="$DD_N" status=none
    after_dd=$(l7_prog_stats)
    stop_agent
    stats_report+="$mode"$'\n'"$before"$'\n'"--"$'\n'"$after"$'\n'"--"$'\n'"$after_dd"$'\n'"=="$'\n'
done
sysctl -q -w kernel.bpf_stats_enabled="$stats_before"

python3 - "$results" "$((AB_N + 2 * REDIS_N))" <<PY
import statistics, sys
from collections import defaultdict
rows = defaultdict(list)
by_round = {}
for line in open(sys.argv[1]):
    mode, rnd, metric, value = line.split()
    rows[(metric, mode)].append(float(value))
    by_round[(metric, mode, rnd)] = float(value)
metrics = sorted({m for m, _ in rows})
modes = "${modes[*]}".split()
print()
print("%-28s" % "metric (median, min..max)" + "".join("%26s" % m for m in modes))
for m in metrics:
    cells = []
    for mode in modes:
        v = rows.get((m, mode))
        cells.append("%.1f (%.1f..%.1f)" % (statistics.median(v), min(v), max(v)) if v else "-")
    print("%-28s" % m + "".join("%26s" % c for c in cells))
def med(m, mode):
    v = rows.get((m, mode))
    return statistics.median(v) if v else float("nan")
print()
others = [m for m in modes if m != "off"]
for m in ("ab_rps", "wrk_rps", "redis_set_rps", "redis_get_rps"):
    for mode in others:
        paired = sorted((by_round[(m, mode, r)] / by_round[(m, "off", r)] - 1) * 100
                        for (mm, md, r) in by_round if mm == m and md == mode and (m, "off", r) in by_round)
        if not paired:
            continue
        print("throughput change %-14s %-5s vs off: medians %+.2f %%, paired per round %+.2f %% (%+.2f..%+.2f, %d rounds)" % (
            m, mode, (med(m, mode) / med(m, "off") - 1) * 100, statistics.median(paired), paired[0], paired[-1], len(paired)))
for m in ("ab_latency_us", "redis_set_latency_us", "redis_get_latency_us"):
    for mode in others:
        print("added latency     %-20s %-5s vs off: %+.2f us" % (m, mode, med(m, mode) - med(m, "off")))

def parse(text):
    return {l.split()[0]: (int(l.split()[1]), int(l.split()[2])) for l in text.splitlines() if l.strip()}
def window(a, b, title):
    print(title)
    total_ns = 0
    for name in sorted(b):
        ns = b[name][0] - a.get(name, (0, 0))[0]
        cnt = b[name][1] - a.get(name, (0, 0))[1]
        total_ns += ns
        if cnt:
            print("  %-18s %10d runs %8.0f ns/run" % (name, cnt, ns / cnt))
    return total_ns
requests = int(sys.argv[2])
for block in """$stats_report""".split("==\n"):
    if not block.strip():
        continue
    mode, rest = block.split("\n", 1)
    before, after, after_dd = (parse(t) for t in rest.split("--\n"))
    print()
    total_ns = window(before, after, f"[{mode}] in-kernel cost, bpf_stats, ab + redis-benchmark (all processes' calls in the window):")
    print("  L7 programs' total: %.0f ns per request (%d ns over %d requests)" % (total_ns / requests, total_ns, requests))
    window(after, after_dd, f"[{mode}] the fast path: dd bs=1 count=$DD_N /dev/zero -> /dev/null, same agent:")
PY
