#!/usr/bin/env python3
"""Runs commands from inside a test cgroup for the L7 tests (tests/tests/agent_l7.rs).

The test starts this runner, moves it into a test cgroup ("container") before the agent starts,
then sends it one JSON request per line on stdin. Every process it starts is therefore born in
that cgroup: short-lived clients (one process per request) are attributed from their first
syscall, and servers' forked workers and backends too. One JSON answer per line on stdout:

  {"op": "run", "argv": [...], "env": {...}, "input": "...", "timeout": s}
      -> {"rc": int, "stdout": str, "stderr": str, "ns": wall-clock ns of the whole process}
  {"op": "spawn", "argv": [...], "env": {...}, "log": path}
      -> {"pid": int}   (a background process; stdout+stderr appended to log)

On EOF every spawned process is killed. The measured "ns" is the client's own upper bound of
the latency of every request that process made (it includes its start and exit).
"""
import json
import os
import subprocess
import sys
import time

spawned = []


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        env = dict(os.environ)
        env.update(req.get("env") or {})
        try:
            if req["op"] == "run":
                t0 = time.monotonic_ns()
                p = subprocess.run(
                    req["argv"],
                    input=(req.get("input") or "").encode(),
                    capture_output=True,
                    env=env,
                    timeout=req.get("timeout", 120),
                )
                ns = time.monotonic_ns() - t0
                out = {
                    "rc": p.returncode,
                    "stdout": p.stdout.decode(errors="replace"),
                    "stderr": p.stderr.decode(errors="replace"),
                    "ns": ns,
                }
            elif req["op"] == "spawn":
                log = open(req["log"], "ab")
                p = subprocess.Popen(
                    req["argv"], stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=env
                )
                spawned.append(p)
                out = {"pid": p.pid}
            else:
                out = {"error": "unknown op %r" % req["op"]}
        except Exception as e:  # reported to the test, which fails with it
            out = {"error": "%s: %s" % (type(e).__name__, e)}
        sys.stdout.write(json.dumps(out) + "\n")
        sys.stdout.flush()
    for p in spawned:
        p.kill()
        p.wait()


if __name__ == "__main__":
    main()
