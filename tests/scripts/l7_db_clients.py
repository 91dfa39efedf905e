#!/usr/bin/env python3
"""Raw-socket clients for the database and queue L7 tests (tests/tests/agent_l7_db.rs).

Each client speaks its protocol from the specification over one TCP connection to
127.0.0.1:PORT, writes every message with one sendall (one write syscall), waits for each
answer before the next request (so every read holds one answer; the exceptions are a few
memcached gets pipelined in one write and NATS/AMQP batches of messages in one write, all
within the kernel's 512-byte window), and prints one JSON object:

  {"requests": [[status, ns], ...]}        status "ok" / "failed" as the server answered,
                                           ns the client's own time from write to answer
  {"produce": n, "consume": n}             NATS and AMQP: messages published / delivered

Used with real servers (mariadb, memcached, rabbitmq, zookeeper, nats-server) and with the
replay server of l7_replay.py (kafka, mongo, cassandra, dubbo2, clickhouse).

  l7_db_clients.py mysql PORT
  l7_db_clients.py memcached-text PORT
  l7_db_clients.py memcached-binary PORT
  l7_db_clients.py memcached-pipelined PORT
  l7_db_clients.py nats PORT N
  l7_db_clients.py amqp PORT N
  l7_db_clients.py zookeeper PORT
  l7_db_clients.py kafka|mongo|cassandra|dubbo2|clickhouse PORT
"""
import json
import socket
import struct
import sys
import time

HOST = "127.0.0.1"


class Conn:
    """A TCP connection with a receive buffer and exact reads."""

    def __init__(self, port):
        self.s = socket.create_connection((HOST, port), timeout=30)
        self.s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def send(self, data):
        self.s.sendall(data)

    def fill(self):
        d = self.s.recv(65536)
        if not d:
            raise EOFError("server closed the connection")
        self.buf += d

    def read(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def line(self):
        while b"\r\n" not in self.buf:
            self.fill()
        out, _, self.buf = self.buf.partition(b"\r\n")
        return out

    def close(self):
        self.s.close()


class Timed:
    """Per-request statuses and the client's own times."""

    def __init__(self):
        self.requests = []
        self.t0 = 0

    def start(self):
        self.t0 = time.monotonic_ns()

    def done(self, status):
        self.requests.append([status, time.monotonic_ns() - self.t0])

    def print(self):
        print(json.dumps({"requests": self.requests}))


# ---- MySQL / MariaDB (client/server protocol 4.1) ----------------------------------------


def mysql(port):
    c = Conn(port)

    def packet():
        h = c.read(4)
        return h[3], c.read(h[0] | h[1] << 8 | h[2] << 16)

    def write(seq, body):
        c.send(struct.pack("<I", len(body))[:3] + bytes([seq]) + body)

    seq, greeting = packet()
    assert greeting[0] == 10, greeting
    # HandshakeResponse41, user root, empty password (the server runs --skip-grant-tables).
    caps = 0x1 | 0x200 | 0x2000 | 0x8000 | 0x80000
    login = struct.pack("<IIB23x", caps, 1 << 24, 33) + b"root\0" + b"\0" + b"mysql_native_password\0"
    write(seq + 1, login)
    while True:
        seq, p = packet()
        if p[0] == 0x00:
            break
        if p[0] == 0xFE:  # auth switch: the empty password's answer is empty
            write(seq + 1, b"")
            continue
        raise SystemExit("mysql login failed: %r" % p)

    def lenenc(p):
        b = p[0]
        if b < 0xFB:
            return b
        return int.from_bytes(p[1 : 1 + {0xFC: 2, 0xFD: 3, 0xFE: 8}[b]], "little")

    t = Timed()
    queries = [
        "CREATE DATABASE sonde",
        "CREATE TABLE sonde.t (id INT PRIMARY KEY, v VARCHAR(20))",
        "INSERT INTO sonde.t VALUES (1, 'a'), (2, 'b')",
        "SELECT id, v FROM sonde.t ORDER BY id",
        "INSERT INTO sonde.t VALUES (1, 'duplicate')",  # failed: duplicate key
        "UPDATE sonde.t SET v = 'c' WHERE id = 2",
        "SELEC 1",  # failed: syntax
        "SELECT COUNT(*) FROM sonde.t",
        "SELECT * FROM sonde.missing",  # failed: no such table
        "DROP DATABASE sonde",
    ]
    for q in queries:
        t.start()
        write(0, b"\x03" + q.encode())
        _, p = packet()
        if p[0] == 0xFF:
            t.done("failed")
            continue
        if p[0] != 0x00:  # a result set: columns, EOF, rows, EOF
            for _ in range(lenenc(p)):
                packet()
            packet()
            while True:
                _, p = packet()
                if p[0] == 0xFE and len(p) < 9:
                    break
        t.done("ok")

    def skip_defs(n):  # n definitions and their EOF
        if n:
            for _ in range(n + 1):
                packet()

    # Prepared statements: COM_STMT_PREPARE and COM_STMT_EXECUTE are queries too.
    stmt = None
    for q in ["SELECT 1", "SELEC ?"]:
        t.start()
        write(0, b"\x16" + q.encode())
        _, p = packet()
        if p[0] == 0xFF:
            t.done("failed")
            continue
        stmt, cols, params = struct.unpack("<IHH", p[1:9])
        skip_defs(params)
        skip_defs(cols)
        t.done("ok")
    for _ in range(2):
        t.start()
        write(0, b"\x17" + struct.pack("<IBI", stmt, 0, 1))  # no cursor, one iteration
        _, p = packet()
        assert p[0] not in (0x00, 0xFF), p  # a binary result set
        skip_defs(lenenc(p))
        while True:
            _, p = packet()
            if p[0] == 0xFE and len(p) < 9:
                break
        t.done("ok")
    write(0, b"\x19" + struct.pack("<I", stmt))  # COM_STMT_CLOSE: no answer, not a query
    write(0, b"\x01")  # COM_QUIT: no answer, not a query
    c.close()
    t.print()


# ---- Memcached ------------------------------------------------------------------------------


def memcached_text(port):
    c = Conn(port)
    t = Timed()

    def cmd(line, data=None, multi=False):
        msg = line.encode() + b"\r\n"
        if data is not None:
            msg += data + b"\r\n"
        t.start()
        c.send(msg)
        first = c.line()
        if multi:  # VALUE blocks up to END
            resp = first
            while resp != b"END":
                if resp.startswith(b"VALUE "):
                    c.read(int(resp.split()[3]) + 2)
                resp = c.line()
        failed = first.startswith((b"ERROR", b"CLIENT_ERROR", b"SERVER_ERROR"))
        t.done("failed" if failed else "ok")

    cmd("set greeting 0 0 5", b"hello")  # STORED
    cmd("get greeting", multi=True)  # VALUE ... END
    cmd("get nosuchkey", multi=True)  # END (a miss: ok)
    cmd("add greeting 0 0 3", b"bye")  # NOT_STORED (ok)
    cmd("set counter 0 0 1", b"7")  # STORED
    cmd("incr counter 5")  # 12
    cmd("incr greeting 1")  # CLIENT_ERROR cannot increment non-numeric value: failed
    cmd("append greeting 0 0 1", b"!")  # STORED
    cmd("gets greeting counter", multi=True)  # two VALUEs
    cmd("touch greeting 100")  # TOUCHED
    cmd("delete greeting")  # DELETED
    cmd("delete greeting")  # NOT_FOUND (ok)
    c.close()
    t.print()


def memcached_pipelined(port):
    """A set, then three gets pipelined in one write, answered in order (each within the
    batch's time)."""
    c = Conn(port)
    t = Timed()
    t.start()
    c.send(b"set piped 0 0 1\r\nx\r\n")
    assert c.line() == b"STORED"
    t.done("ok")
    t0 = time.monotonic_ns()
    c.send(b"get piped\r\nget nosuchkey\r\nget piped\r\n")
    for _ in range(3):
        resp = c.line()
        while resp != b"END":
            if resp.startswith(b"VALUE "):
                c.read(int(resp.split()[3]) + 2)
            resp = c.line()
    for _ in range(3):
        t.requests.append(["ok", time.monotonic_ns() - t0])
    c.close()
    t.print()


def memcached_binary(port):
    c = Conn(port)
    t = Timed()
    opaque = [0]

    def cmd(op, key=b"", extras=b"", value=b""):
        opaque[0] += 1
        body = extras + key + value
        h = struct.pack(">BBHBBHIIQ", 0x80, op, len(key), len(extras), 0, 0, len(body), opaque[0], 0)
        t.start()
        c.send(h + body)
        r = c.read(24)
        magic, rop, _kl, _el, _dt, status, total, rop_opaque, _cas = struct.unpack(">BBHBBHIIQ", r)
        c.read(total)
        assert magic == 0x81 and rop == op and rop_opaque == opaque[0], r
        # Binary statuses as their text twins: 0 ok, 1 not found, 2 exists, 5 not stored are
        # answers; others (6 non-numeric, ...) are errors.
        t.done("ok" if status in (0, 1, 2, 5) else "failed")

    flags_exp = struct.pack(">II", 0, 0)
    cmd(0x01, b"bin-key", flags_exp, b"value")  # SET
    cmd(0x00, b"bin-key")  # GET hit
    cmd(0x00, b"bin-missing")  # GET miss (status 1)
    cmd(0x02, b"bin-key", flags_exp, b"again")  # ADD existing (status 2)
    cmd(0x05, b"bin-key", struct.pack(">QQI", 1, 0, 0))  # INCREMENT non-numeric (status 6)
    cmd(0x04, b"bin-key")  # DELETE
    c.close()
    t.print()


# ---- NATS -----------------------------------------------------------------------------------


def nats(port, n):
    c = Conn(port)
    info = c.line()
    assert info.startswith(b"INFO "), info
    c.send(b'CONNECT {"verbose":false,"pedantic":false,"name":"sonde-test"}\r\n')
    c.send(b"SUB sonde.test 1\r\n")
    c.send(b"PING\r\n")
    assert c.line() == b"PONG"
    produced = consumed = 0
    for i in range(n):
        payload = b"message %d" % i
        c.send(b"PUB sonde.test %d\r\n%s\r\n" % (len(payload), payload))
        produced += 1
        line = c.line()
        while line in (b"PING", b"+OK"):
            if line == b"PING":
                c.send(b"PONG\r\n")
            line = c.line()
        assert line.startswith(b"MSG sonde.test 1 "), line
        c.read(int(line.split()[-1]) + 2)
        consumed += 1
    # Then 5 PUBs in one write: every message of a write counts (coroot counts one).
    batch = b"".join(b"PUB sonde.test 7\r\nbatch-%d\r\n" % i for i in range(5))
    c.send(batch)
    produced += 5
    while consumed < n + 5:
        line = c.line()
        if line == b"PING":
            c.send(b"PONG\r\n")
            continue
        assert line.startswith(b"MSG sonde.test 1 "), line
        c.read(int(line.split()[-1]) + 2)
        consumed += 1
    c.close()
    print(json.dumps({"produce": produced, "consume": consumed}))


# ---- AMQP 0-9-1 (RabbitMQ) ------------------------------------------------------------------


def shortstr(s):
    return bytes([len(s)]) + s


def amqp(port, n):
    c = Conn(port)

    def frame(kind, ch, payload):
        return struct.pack(">BHI", kind, ch, len(payload)) + payload + b"\xce"

    def method(ch, cls, m, args=b""):
        return frame(1, ch, struct.pack(">HH", cls, m) + args)

    def read_frame():
        kind, ch, size = struct.unpack(">BHI", c.read(7))
        payload = c.read(size)
        assert c.read(1) == b"\xce"
        return kind, ch, payload

    def expect(cls, m):
        while True:
            kind, _, p = read_frame()
            if kind == 8:  # heartbeat
                continue
            got = struct.unpack(">HH", p[:4])
            assert kind == 1 and got == (cls, m), (kind, got, p)
            return p[4:]

    c.send(b"AMQP\x00\x00\x09\x01")
    expect(10, 10)  # Connection.Start
    c.send(
        method(
            0,
            10,
            11,
            struct.pack(">I", 0) + shortstr(b"PLAIN") + struct.pack(">I", 12) + b"\0guest\0guest" + shortstr(b"en_US"),
        )
    )
    tune = expect(10, 30)
    channel_max, frame_max, _ = struct.unpack(">HIH", tune[:8])
    c.send(method(0, 10, 31, struct.pack(">HIH", channel_max, frame_max, 0)))
    c.send(method(0, 10, 40, shortstr(b"/") + shortstr(b"") + b"\x00"))
    expect(10, 41)
    c.send(method(1, 20, 10, shortstr(b"")))
    expect(20, 11)
    queue = b"sonde-test"
    c.send(method(1, 50, 10, struct.pack(">H", 0) + shortstr(queue) + b"\x08" + struct.pack(">I", 0)))
    expect(50, 11)
    # Basic.Consume with no-ack: deliveries need no Basic.Ack.
    c.send(method(1, 60, 20, struct.pack(">H", 0) + shortstr(queue) + shortstr(b"") + b"\x02" + struct.pack(">I", 0)))
    expect(60, 21)
    produced = consumed = 0
    for i in range(n):
        body = b"message %d" % i
        publish = method(1, 60, 40, struct.pack(">H", 0) + shortstr(b"") + shortstr(queue) + b"\x00")
        header = frame(2, 1, struct.pack(">HHQH", 60, 0, len(body), 0))
        c.send(publish + header + frame(3, 1, body))  # one write per message
        produced += 1
        expect(60, 60)  # Basic.Deliver
        kind, _, _ = read_frame()  # content header
        assert kind == 2
        got = b""
        while len(got) < len(body):
            kind, _, p = read_frame()
            assert kind == 3
            got += p
        assert got == body, got
        consumed += 1
    # Then 3 publishes in one write (each frame of a write is looked at).
    batch = b""
    for i in range(3):
        body = b"batch %d" % i
        batch += method(1, 60, 40, struct.pack(">H", 0) + shortstr(b"") + shortstr(queue) + b"\x00")
        batch += frame(2, 1, struct.pack(">HHQH", 60, 0, len(body), 0)) + frame(3, 1, body)
    c.send(batch)
    produced += 3
    for i in range(3):
        expect(60, 60)
        assert read_frame()[0] == 2
        assert read_frame()[2] == b"batch %d" % i
        consumed += 1
    c.send(method(0, 10, 50, struct.pack(">H", 200) + shortstr(b"bye") + struct.pack(">HH", 0, 0)))
    expect(10, 51)
    c.close()
    print(json.dumps({"produce": produced, "consume": consumed}))


# ---- ZooKeeper ------------------------------------------------------------------------------


def zookeeper(port):
    c = Conn(port)

    def jstr(s):
        return struct.pack(">i", len(s)) + s

    def packet(body):
        return struct.pack(">i", len(body)) + body

    def read_packet():
        (n,) = struct.unpack(">i", c.read(4))
        return c.read(n)

    # ConnectRequest: protocolVersion, lastZxidSeen, timeOut, sessionId, passwd, readOnly.
    c.send(packet(struct.pack(">iqiq", 0, 0, 30000, 0) + jstr(b"\0" * 16) + b"\x00"))
    read_packet()
    t = Timed()
    xid = [0]
    acl = struct.pack(">i", 1) + struct.pack(">i", 31) + jstr(b"world") + jstr(b"anyone")

    def req(op, body):
        xid[0] += 1
        t.start()
        c.send(packet(struct.pack(">ii", xid[0], op) + body))
        while True:
            r = read_packet()
            rxid, _zxid, err = struct.unpack(">iqi", r[:16])
            if rxid == -1:  # a watch notification
                continue
            assert rxid == xid[0], (rxid, xid[0])
            break
        t.done("ok" if err == 0 else "failed")

    path = b"/sonde-test"
    req(1, jstr(path) + jstr(b"data") + acl + struct.pack(">i", 0))  # create
    req(1, jstr(path) + jstr(b"data") + acl + struct.pack(">i", 0))  # create again: NodeExists
    req(4, jstr(path) + b"\x00")  # getData
    req(3, jstr(b"/sonde-missing") + b"\x00")  # exists: NoNode
    req(5, jstr(path) + jstr(b"new") + struct.pack(">i", -1))  # setData
    req(8, jstr(b"/") + b"\x00")  # getChildren
    req(4, jstr(b"/sonde-missing") + b"\x00")  # getData: NoNode
    req(2, jstr(path) + struct.pack(">i", -1))  # delete
    c.close()
    t.print()


# ---- Replayed protocols (l7_replay.py answers) ---------------------------------------------


def replay(proto, port):
    sys.path.insert(0, __import__("os").path.dirname(__file__))
    import l7_replay

    c = Conn(port)
    t = Timed()
    for req, resp, status in l7_replay.conversation(proto):
        t.start()
        c.send(req)
        if resp is None:
            continue
        l7_replay.read_answer(proto, c, resp)
        if status is not None:
            t.done(status)
    c.close()
    t.print()


def main():
    cmd, port = sys.argv[1], int(sys.argv[2])
    if cmd == "mysql":
        mysql(port)
    elif cmd == "memcached-text":
        memcached_text(port)
    elif cmd == "memcached-pipelined":
        memcached_pipelined(port)
    elif cmd == "memcached-binary":
        memcached_binary(port)
    elif cmd == "nats":
        nats(port, int(sys.argv[3]))
    elif cmd == "amqp":
        amqp(port, int(sys.argv[3]))
    elif cmd == "zookeeper":
        zookeeper(port)
    else:
        replay(cmd, port)


if __name__ == "__main__":
    main()
