#!/usr/bin/env python3
"""Servers for the L7 tests (tests/tests/agent_l7.rs). Each prints READY once it serves, and
one line per request it answered (the server's own record of what really happened):

  http PORT         HTTP/1.1 with keep-alive and pipelining on 127.0.0.1:PORT.
                    GET /status/CODE answers CODE, any other path 200; logs "REQ PATH CODE".
  dns ADDR PORT     DNS over UDP and TCP on ADDR:PORT (run it in a test netns on :53).
                    Zone: *.sonde.test names in ZONE answer A/AAAA, every other name NXDOMAIN;
                    logs "DNS udp|tcp NAME TYPE RCODE".
  grpc PORT         gRPC (grpcio, h2c) on 127.0.0.1:PORT: /sonde.Test/Ok answers OK,
                    /sonde.Test/Missing fails with NOT_FOUND (5); logs "GRPC METHOD CODE".
"""
import socket
import struct
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def log(line):
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------------------------
# HTTP/1.1


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):
        code = 200
        parts = self.path.split("/")
        if len(parts) == 3 and parts[1] == "status" and parts[2].isdigit():
            code = int(parts[2])
        body = ("status %d for %s\n" % (code, self.path)).encode()
        self.send_response(code)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        log("REQ %s %d" % (self.path, code))

    def log_message(self, *args):
        pass


def serve_http(port):
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    log("READY")
    server.serve_forever()


# ------------------------------------------------------------------------------------------
# DNS

ZONE = {
    ("dig-a.sonde.test", 1): ["192.0.2.10"],
    ("py-a.sonde.test", 1): ["192.0.2.11"],
    ("tcp-a.sonde.test", 1): ["192.0.2.12"],
    ("dig-a.sonde.test", 28): ["2001:db8::10"],
    ("py-a.sonde.test", 28): ["2001:db8::11"],
}
TYPES = {1: "A", 28: "AAAA"}


def parse_query(msg):
    """(id, flags, name, qtype, end of question) of a query."""
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if qdcount != 1:
        raise ValueError("qdcount %d" % qdcount)
    labels, i = [], 12
    while msg[i] != 0:
        n = msg[i]
        labels.append(msg[i + 1 : i + 1 + n].decode().lower())
        i += 1 + n
    qtype = struct.unpack("!H", msg[i + 1 : i + 3])[0]
    return qid, flags, ".".join(labels), qtype, i + 5


def answer(msg, transport):
    qid, flags, name, qtype, qend = parse_query(msg)
    ips = ZONE.get((name, qtype))
    known = any(n == name for n, _ in ZONE)
    rcode = 0 if known else 3
    ips = ips or []
    header = struct.pack("!HHHHHH", qid, 0x8180 | (flags & 0x0100) | rcode, 1, len(ips), 0, 0)
    out = header + msg[12:qend]
    for ip in ips:
        if qtype == 1:
            rdata = socket.inet_pton(socket.AF_INET, ip)
        else:
            rdata = socket.inet_pton(socket.AF_INET6, ip)
        out += struct.pack("!HHHIH", 0xC00C, qtype, 1, 60, len(rdata)) + rdata
    log("DNS %s %s %s %d" % (transport, name, TYPES.get(qtype, str(qtype)), rcode))
    return out


def serve_dns(addr, port):
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((addr, port))
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((addr, port))
    tcp.listen(16)

    def udp_loop():
        while True:
            msg, peer = udp.recvfrom(4096)
            try:
                udp.sendto(answer(msg, "udp"), peer)
            except Exception as e:
                log("DNS bad udp query: %s" % e)

    def tcp_conn(c):
        with c:
            f = c.makefile("rb")
            while True:
                head = f.read(2)
                if len(head) < 2:
                    return
                msg = f.read(struct.unpack("!H", head)[0])
                try:
                    out = answer(msg, "tcp")
                except Exception as e:
                    log("DNS bad tcp query: %s" % e)
                    return
                c.sendall(struct.pack("!H", len(out)) + out)

    threading.Thread(target=udp_loop, daemon=True).start()
    log("READY")
    while True:
        c, _ = tcp.accept()
        threading.Thread(target=tcp_conn, args=(c,), daemon=True).start()


# ------------------------------------------------------------------------------------------
# gRPC


def serve_grpc(port):
    from concurrent import futures

    import grpc

    def ok(request, context):
        log("GRPC Ok 0")
        return b"pong:" + request

    def missing(request, context):
        log("GRPC Missing 5")
        context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

    handler = grpc.method_handlers_generic_handler(
        "sonde.Test",
        {
            "Ok": grpc.unary_unary_rpc_method_handler(ok),
            "Missing": grpc.unary_unary_rpc_method_handler(missing),
        },
    )
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    server.add_generic_rpc_handlers((handler,))
    server.add_insecure_port("127.0.0.1:%d" % port)
    server.start()
    log("READY")
    server.wait_for_termination()


if __name__ == "__main__":
    kind = sys.argv[1]
    if kind == "http":
        serve_http(int(sys.argv[2]))
    elif kind == "dns":
        serve_dns(sys.argv[2], int(sys.argv[3]))
    elif kind == "grpc":
        serve_grpc(int(sys.argv[2]))
    else:
        sys.exit("unknown server %r" % kind)
