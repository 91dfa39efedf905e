#!/usr/bin/env python3
"""Conversation replay for the L7 protocols Debian does not package a server of
(tests/tests/agent_l7_db.rs; docs/testing-l7.md says which and why).

A conversation is a list of (request, response, status): the exact bytes a client writes, the
exact bytes the server answers (None: the protocol sends no answer, e.g. a Kafka Produce with
acks=0 or a Dubbo2 one-way call) and the status coroot-node-agent's semantics give the request
(None: a message that is no request of the metric, e.g. a handshake or a heartbeat). The bytes
are built here from each protocol's specification (the Kafka protocol guide, MongoDB's wire
protocol and BSON spec, Cassandra's native_protocol_v4.spec, Dubbo2's header layout,
ClickHouse's native protocol as its Connection::sendQuery/TCPHandler write it, FoundationDB's
FlowTransport ConnectPacket and packet framing).

  l7_replay.py PROTO PORT     the server: on 127.0.0.1:PORT, for every connection, reads each
                              request (checking it byte for byte) and writes its response;
                              prints READY, then "REQ <status>" per answered request.
The client is l7_db_clients.py PROTO PORT (it writes each request with one write and reads
the response before the next).
"""
import socket
import struct
import sys


# ---- Kafka (big-endian, [size][api_key][api_version][correlation_id][client_id]...) -------


def kafka():
    def req(key, ver, corr, body):
        m = struct.pack(">hhi", key, ver, corr) + struct.pack(">h", 10) + b"sonde-test" + body
        return struct.pack(">i", len(m)) + m

    def resp(corr, body):
        m = struct.pack(">i", corr) + body
        return struct.pack(">i", len(m)) + m

    produce = lambda acks: struct.pack(">hii", acks, 1000, 0)  # acks, timeout, no topics
    fetch = struct.pack(">iiiibi", -1, 100, 1, 1 << 20, 0, 0)
    return [
        (req(18, 0, 1, b""), resp(1, struct.pack(">hi", 0, 0)), "ok"),  # ApiVersions
        (req(3, 1, 2, struct.pack(">i", -1)), resp(2, struct.pack(">iii", 0, -1, 0)), "ok"),  # Metadata
        (req(0, 2, 3, produce(1)), resp(3, struct.pack(">ii", 0, 0)), "ok"),  # Produce acks=1
        (req(0, 2, 4, produce(0)), None, None),  # Produce acks=0: never answered
        (req(1, 4, 5, fetch), resp(5, struct.pack(">ii", 0, 0)), "ok"),  # Fetch
        (req(0, 2, 6, produce(-1)), resp(6, struct.pack(">ii", 0, 0)), "ok"),  # Produce acks=all
    ]


# ---- MongoDB (little-endian header, OP_MSG / OP_QUERY / OP_REPLY, BSON) ---------------------


def bson(*elems):
    body = b"".join(elems) + b"\x00"
    return struct.pack("<i", len(body) + 4) + body


def b_int(name, v):
    return b"\x10" + name + b"\0" + struct.pack("<i", v)


def b_dbl(name, v):
    return b"\x01" + name + b"\0" + struct.pack("<d", v)


def b_str(name, s):
    return b"\x02" + name + b"\0" + struct.pack("<i", len(s) + 1) + s + b"\0"


def b_bool(name, v):
    return b"\x08" + name + b"\0" + bytes([v])


def mongo():
    def op_msg(rid, to, doc):
        m = struct.pack("<I", 0) + b"\x00" + doc
        return struct.pack("<iiii", 16 + len(m), rid, to, 2013) + m

    def op_query(rid, doc):
        m = struct.pack("<i", 0) + b"admin.$cmd\0" + struct.pack("<ii", 0, -1) + doc
        return struct.pack("<iiii", 16 + len(m), rid, 0, 2004) + m

    def op_reply(rid, to, flags, doc):
        m = struct.pack("<iqii", flags, 0, 0, 1) + doc
        return struct.pack("<iiii", 16 + len(m), rid, to, 1) + m

    ok = bson(b_bool(b"ismaster", 1), b_int(b"maxWireVersion", 17), b_dbl(b"ok", 1.0))
    err = bson(b_dbl(b"ok", 0.0), b_str(b"errmsg", b"no such command: 'bogus'"), b_int(b"code", 59))
    return [
        (op_query(1, bson(b_int(b"isMaster", 1))), op_reply(101, 1, 0, ok), "ok"),
        (op_msg(2, 0, bson(b_int(b"ping", 1), b_str(b"$db", b"admin"))), op_msg(102, 2, bson(b_dbl(b"ok", 1.0))), "ok"),
        (op_msg(3, 0, bson(b_str(b"find", b"t"), b_str(b"$db", b"test"))), op_msg(103, 3, ok), "ok"),
        (op_msg(4, 0, bson(b_int(b"bogus", 1), b_str(b"$db", b"test"))), op_msg(104, 4, err), "failed"),
        (op_query(5, bson(b_int(b"bogus", 1))), op_reply(105, 5, 2, bson(b_str(b"$err", b"bogus"), b_int(b"code", 59))), "failed"),
        (op_msg(6, 0, bson(b_str(b"insert", b"t"), b_str(b"$db", b"test"))), op_msg(106, 6, ok), "ok"),
    ]


# ---- Cassandra CQL native protocol v4 --------------------------------------------------------


def cassandra():
    def frame(stream, op, body, response=False):
        return struct.pack(">BBhBI", 0x84 if response else 0x04, 0, stream, op, len(body)) + body

    def short(s):
        return struct.pack(">H", len(s)) + s

    def long(s):
        return struct.pack(">i", len(s)) + s

    void = struct.pack(">i", 1)
    prepared = struct.pack(">i", 4) + short(b"\x01\x02") + struct.pack(">iii", 1, 0, 0) + struct.pack(">ii", 4, 0)
    error = struct.pack(">i", 0x2000) + short(b"line 1:0 no viable alternative at input 'SELEC'")
    q = lambda text: long(text) + struct.pack(">HB", 1, 0)
    return [
        (frame(0, 0x05, b""), frame(0, 0x06, struct.pack(">H", 0), True), None),  # OPTIONS
        (frame(1, 0x01, struct.pack(">H", 1) + short(b"CQL_VERSION") + short(b"3.0.0")), frame(1, 0x02, b"", True), None),
        (frame(2, 0x07, q(b"CREATE KEYSPACE k")), frame(2, 0x08, void, True), "ok"),  # QUERY
        (frame(3, 0x07, q(b"SELEC 1")), frame(3, 0x00, error, True), "failed"),  # QUERY -> ERROR
        (frame(4, 0x09, long(b"INSERT INTO k.t (a) VALUES (?)")), frame(4, 0x08, prepared, True), "ok"),
        (frame(5, 0x0A, short(b"\x01\x02") + struct.pack(">HB", 1, 0)), frame(5, 0x08, void, True), "ok"),
        (frame(6, 0x0D, struct.pack(">BHB", 0, 1, 0) + long(b"INSERT INTO k.t (a) VALUES (1)") + struct.pack(">HHB", 0, 1, 0)), frame(6, 0x08, void, True), "ok"),
    ]


# ---- Dubbo2 ----------------------------------------------------------------------------------


def dubbo2():
    def msg(flags, status, rid, body):
        return struct.pack(">HBBqI", 0xDABB, flags, status, rid, len(body)) + body

    call = b'"2.0.2"\n"org.sonde.Echo"\n"0.0.0"\n"echo"\n"Ljava/lang/String;"\n"hi"\n{}\n'
    two_way, one_way, event = 0xC6, 0x86, 0xE6  # request flags, serialization 6 (fastjson)
    return [
        (msg(two_way, 0, 1, call), msg(0x06, 20, 1, b"1\n\"hi\"\n"), "ok"),  # OK
        (msg(event, 0, 2, b"null\n"), msg(0x26, 20, 2, b"null\n"), None),  # heartbeat
        (msg(two_way, 0, 3, call), msg(0x06, 70, 3, b'"service error"\n'), "failed"),  # SERVICE_ERROR
        (msg(one_way, 0, 4, call), None, None),  # one-way: no answer
        (msg(two_way, 0, 5, call), msg(0x06, 20, 5, b"1\n\"hi\"\n"), "ok"),
        (msg(two_way, 0, 6, call), msg(0x06, 60, 6, b'"no provider"\n'), "failed"),  # SERVICE_NOT_FOUND
    ]


# ---- ClickHouse native protocol (client revision 54460) --------------------------------------


def varint(n):
    out = b""
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out += bytes([b | 0x80])
        else:
            return out + bytes([b])


def chs(s):
    return varint(len(s)) + s


def clickhouse():
    rev = 54460
    hello = b"\x00" + chs(b"ClickHouse client") + varint(23) + varint(8) + varint(rev) + chs(b"default") + chs(b"default") + chs(b"")
    server_hello = b"\x00" + chs(b"ClickHouse") + varint(23) + varint(8) + varint(rev) + chs(b"UTC") + chs(b"sonde") + varint(1)

    def query(qid, sql):
        info = (
            b"\x01"  # initial query
            + chs(b"default")  # initial_user
            + chs(b"")  # initial_query_id
            + chs(b"127.0.0.1:41000")  # initial_address
            + struct.pack("<q", 0)  # initial_query_start_time_microseconds
            + b"\x01"  # interface TCP
            + chs(b"root")
            + chs(b"localhost")
            + chs(b"ClickHouse client")
            + varint(23)
            + varint(8)
            + varint(rev)
            + chs(b"")  # quota key
            + varint(0)  # distributed depth
            + varint(1)  # version patch
            + b"\x00"  # no OpenTelemetry
            + varint(0)
            + varint(0)
            + varint(0)  # parallel replicas
        )
        empty_block = b"\x02" + chs(b"") + varint(1) + b"\x00" + varint(2) + struct.pack("<i", -1) + varint(0) + varint(0) + varint(0)
        return b"\x01" + chs(qid) + info + chs(b"") + chs(b"") + varint(2) + varint(0) + chs(sql) + chs(b"") + empty_block

    def block(rows):
        head = b"\x01" + chs(b"") + varint(1) + b"\x00" + varint(2) + struct.pack("<i", -1) + varint(0)
        if rows:
            return head + varint(1) + varint(1) + chs(b"1") + chs(b"UInt8") + b"\x00" + b"\x01"
        return head + varint(1) + varint(0) + chs(b"1") + chs(b"UInt8") + b"\x00"

    progress = b"\x03" + varint(1) + varint(1) + varint(0) + varint(0) + varint(0)
    result = block(False) + block(True) + progress + b"\x05"
    exception = b"\x02" + struct.pack("<i", 62) + chs(b"DB::Exception") + chs(b"DB::Exception: Syntax error") + chs(b"") + b"\x00"
    return [
        (hello, server_hello, None),
        (query(b"8f6c1a1e-2d0b-4b8e-9a52-3b6f0d1c2e4f", b"SELECT 1"), result, "ok"),
        (query(b"", b"SELEC 1"), exception, "failed"),
        (b"\x04", b"\x04", None),  # Ping / Pong
        (query(b"0b0f0e2a-1c3d-4e5f-8a9b-0c1d2e3f4a5b", b"SELECT 1"), result, "ok"),
    ]


# ---- FoundationDB FlowTransport (little-endian; FDB 7.1 with the object serializer) ----------


def foundationdb():
    # ConnectPacket: length, protocol version (7.1's 0x0FDB00B071010000 with the object
    # serializer flag 0x1000000000000000, as every FDB >= 6.2 process sends it), canonical
    # remote port, connection id, canonical remote IPv4, flags.
    def connect(port):
        body = struct.pack("<QHQIH", 0x1FDB00B071010000, port, 0x5EED, 0x7F000001, 0)
        return struct.pack("<I", len(body)) + body

    # A packet: length (of token + message), checksum, endpoint token, then the flatbuffers
    # message: root offset and the file identifier naming its type, then the fields.
    def packet(token, file_id, fields):
        msg = struct.pack("<II", 8, file_id) + fields
        return struct.pack("<IQ", 16 + len(msg), 0) + token + msg

    token = bytes(range(16))
    reply_token = bytes(range(16, 32))
    get_value = 8454530  # request file identifiers of coroot-node-agent's list
    reply = 1378929  # a reply's (ErrorOr<...>) file identifier
    return [
        (connect(4500), connect(4501), None),
        (packet(token, get_value, b"key-1" + reply_token), packet(reply_token, reply, b"value"), "ok"),
        (packet(token, get_value, b"key-2" + reply_token), packet(reply_token, reply, b"value"), "ok"),
        (packet(token, get_value, b"key-3" + reply_token), packet(reply_token, reply, b""), "ok"),
    ]


CONVERSATIONS = {
    "kafka": kafka,
    "mongo": mongo,
    "cassandra": cassandra,
    "dubbo2": dubbo2,
    "clickhouse": clickhouse,
    "foundationdb": foundationdb,
}


def conversation(proto):
    return CONVERSATIONS[proto]()


def read_answer(proto, conn, expected):
    got = conn.read(len(expected))
    if got != expected:
        raise SystemExit("%s: unexpected answer %r" % (proto, got))


def recv_exact(s, n):
    out = b""
    while len(out) < n:
        d = s.recv(n - len(out))
        if not d:
            return None
        out += d
    return out


def serve(proto, port):
    conv = conversation(proto)
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind(("127.0.0.1", port))
    ls.listen(16)
    print("READY", flush=True)
    while True:
        s, _ = ls.accept()
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        for req, resp, status in conv:
            got = recv_exact(s, len(req))
            if got != req:
                print("MISMATCH %r" % got, flush=True)
                break
            if resp is not None:
                s.sendall(resp)
                if status is not None:
                    print("REQ %s" % status, flush=True)
        s.close()


if __name__ == "__main__":
    serve(sys.argv[1], int(sys.argv[2]))
