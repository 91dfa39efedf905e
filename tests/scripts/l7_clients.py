#!/usr/bin/env python3
"""Clients for the L7 tests (tests/tests/agent_l7.rs). Each prints one JSON object: what the
client really saw, with its own wall-clock measurement of every request (an upper bound of
the latency the agent may report).

  http-once HOST PORT PATH          one request on its own connection
      -> {"statuses": [code], "ns": [ns]}
  http-keepalive HOST PORT PATH...  every request on one keep-alive connection, one by one
      -> {"statuses": [...], "ns": [...]}
  https-once, https-keepalive       the same over TLS (Python's ssl: the system's OpenSSL),
                                    the server's certificate not verified (a test's own)
  http-pipeline HOST PORT PATH...   every request written at once (one write), then the
                                    responses read in order
      -> {"statuses": [...], "ns": [...]}   (each request's ns is the whole exchange's)
  grpc HOST PORT METHOD COUNT       COUNT unary calls of /sonde.Test/METHOD on one channel
      -> {"codes": [grpc status code], "ns": [...]}
  redis-pipeline HOST PORT N        N "INCR pipelined" commands written at once, N replies read
      -> {"ok": n, "errors": n, "ns": ns}
  pg-extended HOST PORT USER N      N queries of the extended protocol (Parse/Bind/Describe/
                                    Execute/Sync, one write each) on one connection
      -> {"ok": n, "failed": n, "ns": [...]}
  dns SERVER PORT NAME TYPE         one UDP query with sendto/recvfrom (TYPE A or AAAA)
      -> {"rcode": n, "answers": [ip], "ns": ns}
"""
import http.client
import json
import socket
import ssl
import struct
import sys
import time


def now():
    return time.monotonic_ns()


def out(obj):
    sys.stdout.write(json.dumps(obj) + "\n")


# ------------------------------------------------------------------------------------------
# HTTP/1.1


def connection(host, port, tls):
    if tls:
        ctx = ssl.create_default_context()
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
        return http.client.HTTPSConnection(host, port, timeout=30, context=ctx)
    return http.client.HTTPConnection(host, port, timeout=30)


def http_once(host, port, path, tls=False):
    t0 = now()
    c = connection(host, port, tls)
    c.request("GET", path, headers={"Connection": "close"})
    r = c.getresponse()
    r.read()
    c.close()
    out({"statuses": [r.status], "ns": [now() - t0]})


def http_keepalive(host, port, paths, tls=False):
    c = connection(host, port, tls)
    statuses, times = [], []
    for p in paths:
        t0 = now()
        c.request("GET", p)
        r = c.getresponse()
        r.read()
        times.append(now() - t0)
        statuses.append(r.status)
    c.close()
    out({"statuses": statuses, "ns": times})


def read_response(f):
    """Status of one HTTP/1.1 response read from f (Content-Length bodies only)."""
    status_line = f.readline().decode()
    status = int(status_line.split()[1])
    length = 0
    while True:
        h = f.readline().decode()
        if h in ("\r\n", "\n", ""):
            break
        k, _, v = h.partition(":")
        if k.strip().lower() == "content-length":
            length = int(v.strip())
    f.read(length)
    return status


def http_pipeline(host, port, paths):
    s = socket.create_connection((host, port), timeout=30)
    data = "".join("GET %s HTTP/1.1\r\nHost: %s:%d\r\n\r\n" % (p, host, port) for p in paths)
    t0 = now()
    s.sendall(data.encode())
    f = s.makefile("rb")
    statuses = [read_response(f) for _ in paths]
    total = now() - t0
    s.close()
    out({"statuses": statuses, "ns": [total] * len(paths)})


# ------------------------------------------------------------------------------------------
# gRPC


def grpc_calls(host, port, method, count):
    import grpc

    codes, times = [], []
    with grpc.insecure_channel("%s:%d" % (host, port)) as ch:
        call = ch.unary_unary("/sonde.Test/" + method)
        for i in range(count):
            t0 = now()
            try:
                call(b"ping%d" % i, timeout=30)
                codes.append(0)
            except grpc.RpcError as e:
                codes.append(e.code().value[0])
            times.append(now() - t0)
    out({"codes": codes, "ns": times})


# ------------------------------------------------------------------------------------------
# Redis


def resp_reply(f):
    """Reads one RESP2 reply; returns True for an error reply."""
    line = f.readline()
    kind = line[:1]
    if kind == b"-":
        return True
    if kind in (b"+", b":"):
        return False
    if kind == b"$":
        n = int(line[1:])
        if n >= 0:
            f.read(n + 2)
        return False
    if kind == b"*":
        for _ in range(max(int(line[1:]), 0)):
            resp_reply(f)
        return False
    raise ValueError("unexpected reply %r" % line)


def redis_pipeline(host, port, n):
    s = socket.create_connection((host, port), timeout=30)
    cmd = b"*2\r\n$4\r\nINCR\r\n$9\r\npipelined\r\n"
    t0 = now()
    s.sendall(cmd * n)
    f = s.makefile("rb")
    errors = sum(1 for _ in range(n) if resp_reply(f))
    ns = now() - t0
    s.close()
    out({"ok": n - errors, "errors": errors, "ns": ns})


# ------------------------------------------------------------------------------------------
# Postgres: a minimal extended-protocol client (trust authentication)


def pg_msg(tag, body):
    return tag + struct.pack("!I", len(body) + 4) + body


def pg_read(f):
    tag = f.read(1)
    if not tag:
        raise EOFError("server closed")
    n = struct.unpack("!I", f.read(4))[0]
    return tag, f.read(n - 4)


def pg_extended(host, port, user, n):
    s = socket.create_connection((host, port), timeout=30)
    params = b"user\0" + user.encode() + b"\0database\0postgres\0\0"
    startup = struct.pack("!II", len(params) + 8, 196608) + params
    s.sendall(startup)
    f = s.makefile("rb")
    while True:
        tag, body = pg_read(f)
        if tag == b"E":
            raise RuntimeError("startup failed: %r" % body)
        if tag == b"R" and struct.unpack("!I", body[:4])[0] != 0:
            raise RuntimeError("authentication required (trust expected)")
        if tag == b"Z":
            break
    ok = failed = 0
    times = []
    for i in range(n):
        sql = b"SELECT $1::int + 1"
        param = str(i).encode()
        batch = (
            pg_msg(b"P", b"\0" + sql + b"\0" + struct.pack("!H", 0))
            + pg_msg(b"B", b"\0\0" + struct.pack("!HHI", 0, 1, len(param)) + param + struct.pack("!H", 0))
            + pg_msg(b"D", b"P\0")
            + pg_msg(b"E", b"\0" + struct.pack("!I", 0))
            + pg_msg(b"S", b"")
        )
        t0 = now()
        s.sendall(batch)
        error = False
        while True:
            tag, _ = pg_read(f)
            if tag == b"E":
                error = True
            if tag == b"Z":
                break
        times.append(now() - t0)
        if error:
            failed += 1
        else:
            ok += 1
    s.sendall(pg_msg(b"X", b""))
    s.close()
    out({"ok": ok, "failed": failed, "ns": times})


# ------------------------------------------------------------------------------------------
# DNS over UDP with plain sendto/recvfrom


def dns_query(server, port, name, qtype):
    qt = {"A": 1, "AAAA": 28}[qtype]
    qid = int(time.time() * 1000) & 0xFFFF
    q = struct.pack("!HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.split("."):
        q += bytes([len(label)]) + label.encode()
    q += b"\0" + struct.pack("!HH", qt, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.settimeout(10)
    t0 = now()
    s.sendto(q, (server, port))
    msg, _ = s.recvfrom(4096)
    ns = now() - t0
    flags, _, ancount = struct.unpack("!HHH", msg[2:8])
    i = len(q)
    answers = []
    for _ in range(ancount):
        rtype, _, _, rdlen = struct.unpack("!HHIH", msg[i + 2 : i + 12])
        rdata = msg[i + 12 : i + 12 + rdlen]
        answers.append(socket.inet_ntop(socket.AF_INET if rtype == 1 else socket.AF_INET6, rdata))
        i += 12 + rdlen
    out({"rcode": flags & 0xF, "answers": answers, "ns": ns})


if __name__ == "__main__":
    a = sys.argv[1:]
    kind = a[0]
    if kind == "http-once":
        http_once(a[1], int(a[2]), a[3])
    elif kind == "http-keepalive":
        http_keepalive(a[1], int(a[2]), a[3:])
    elif kind == "https-once":
        http_once(a[1], int(a[2]), a[3], tls=True)
    elif kind == "https-keepalive":
        http_keepalive(a[1], int(a[2]), a[3:], tls=True)
    elif kind == "http-pipeline":
        http_pipeline(a[1], int(a[2]), a[3:])
    elif kind == "grpc":
        grpc_calls(a[1], int(a[2]), a[3], int(a[4]))
    elif kind == "redis-pipeline":
        redis_pipeline(a[1], int(a[2]), int(a[3]))
    elif kind == "pg-extended":
        pg_extended(a[1], int(a[2]), a[3], int(a[4]))
    elif kind == "dns":
        dns_query(a[1], int(a[2]), a[3], a[4])
    else:
        sys.exit("unknown client %r" % kind)
