#!/usr/bin/env python3
"""Seed corpora for the fuzz targets, from the parsers' recorded conversations.

  python3 crates/l7/fuzz/seeds.py OUT_DIR      writes OUT_DIR/<target>/seed-*

Sources: crates/l7/fixtures (issue 16, '>'/'<' lines), crates/l7/tests/fixtures (issue 15,
'E'/'I' lines, '# conn' between connections) and the spec-built conversations of
tests/scripts/l7_replay.py (Kafka, MongoDB, Cassandra, Dubbo2, ClickHouse, FoundationDB).
Each conversation is written as the client and as the server sees it, once as recorded and
once with every record cut in 4-byte-then-rest pieces (a reader of a length prefix). The
encoding is fuzz_targets/common.rs's: per chunk [control][len][extra u16 LE][bytes].
"""
import hashlib
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
L7 = os.path.dirname(HERE)
ROOT = os.path.dirname(os.path.dirname(L7))
sys.path.insert(0, os.path.join(ROOT, "tests", "scripts"))

PAYLOAD_MAX, PAYLOAD_MAX_HTTP2 = 512, 4096


def encode(chunks, server, http2=False):
    """chunks: [(client egress?, bytes)] -> fuzz input bytes."""
    scales = [1, 2, 4, 16] if http2 else [1, 2, 3, 4]
    window = PAYLOAD_MAX_HTTP2 if http2 else PAYLOAD_MAX
    out = bytearray()
    for client_egress, data in chunks:
        egress = client_egress != server
        vis, extra = data[:window], min(len(data) - min(len(data), window), 0xFFFF)
        ctl = (0 if egress else 1) | (2 if server else 0)
        while True:
            n = len(vis)
            fit = [i for i, s in enumerate(scales) if n % s == 0 and n // s <= 255]
            if fit:
                i = fit[0]
                out += bytes([ctl | i << 2, n // scales[i]]) + extra.to_bytes(2, "little") + vis
                break
            # Not expressible in one chunk: a 255-byte piece first.
            out += bytes([ctl, 255, 0, 0]) + vis[:255]
            vis = vis[255:]
    return bytes(out)


def hexbytes(h):
    return bytes.fromhex(h.strip())


def fixture16(name):
    convs, cur = [], []
    for line in open(os.path.join(L7, "fixtures", name)):
        line = line.rstrip("\n")
        if line == "=":
            convs.append(cur)
            cur = []
        elif line.startswith("> "):
            cur.append((True, hexbytes(line[2:])))
        elif line.startswith("< "):
            cur.append((False, hexbytes(line[2:])))
    convs.append(cur)
    return [c for c in convs if c]


def fixture15(name):
    convs, cur = [], []
    for line in open(os.path.join(L7, "tests", "fixtures", name)):
        line = line.rstrip("\n")
        if line == "# conn":
            convs.append(cur)
            cur = []
        elif line.startswith("E "):
            cur.append((True, hexbytes(line[2:])))
        elif line.startswith("I "):
            cur.append((False, hexbytes(line[2:])))
    convs.append(cur)
    return [c for c in convs if c]


def replayed(proto):
    import l7_replay

    conv = []
    for req, resp, _ in l7_replay.conversation(proto):
        conv.append((True, req))
        if resp is not None:
            conv.append((False, resp))
    return [conv]


def prefix_split(conv):
    out = []
    for egress, data in conv:
        if len(data) > 4:
            out += [(egress, data[:4]), (egress, data[4:])]
        else:
            out.append((egress, data))
    return out


TARGETS = {
    "mysql": lambda: fixture16("mysql.txt"),
    "memcached": lambda: fixture16("memcached-text.txt") + fixture16("memcached-binary.txt"),
    "zookeeper": lambda: fixture16("zookeeper.txt"),
    "nats": lambda: fixture16("nats-pub.txt") + fixture16("nats-sub.txt"),
    "amqp": lambda: fixture16("amqp-publish.txt") + fixture16("amqp-consume.txt"),
    "clickhouse": lambda: fixture16("clickhouse.txt") + replayed("clickhouse"),
    "kafka": lambda: replayed("kafka"),
    "mongo": lambda: replayed("mongo"),
    "cassandra": lambda: replayed("cassandra"),
    "dubbo2": lambda: replayed("dubbo2"),
    "foundationdb": lambda: replayed("foundationdb"),
    "http1": lambda: fixture15("http1_python.txt")
    + fixture15("http1_nginx_keepalive.txt")
    + fixture15("http1_nginx_pipelined.txt")
    + fixture15("http2_h2c_upgrade.txt"),
    "http2": lambda: fixture15("http2_nginx.txt") + fixture15("grpc_python.txt"),
    # The grpc target replays the first call itself: seeds are the rest.
    "grpc": lambda: [c[4:] for c in fixture15("grpc_python.txt")],
    "postgres": lambda: fixture15("postgres.txt"),
    "redis": lambda: fixture15("redis.txt"),
    "dns": lambda: fixture15("dns_udp.txt") + fixture15("dns_tcp.txt"),
}


def main():
    out_dir = sys.argv[1]
    for target, convs in TARGETS.items():
        d = os.path.join(out_dir, target)
        os.makedirs(d, exist_ok=True)
        http2 = target in ("http2", "grpc")
        n = 0
        for conv in convs():
            for variant in (conv, prefix_split(conv)):
                for server in (False, True):
                    data = encode(variant, server, http2)
                    name = "seed-" + hashlib.sha1(data).hexdigest()
                    with open(os.path.join(d, name), "wb") as f:
                        f.write(data)
                    n += 1
        print(f"{target}: {n} seeds")


if __name__ == "__main__":
    main()
