/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/* Classification of a socket from its first bytes (included by src/l7.c). */

/* ---- classification ---- */

/*
 * The first 16 bytes are held as two little-endian words, not a byte array:
 * clang turns chains of byte compares on a stack array into pointer
 * arithmetic the verifier refuses ("bitwise operator on pointer").
 */
struct l7_head {
	__u64 w0;
	__u64 w1;
};

static __always_inline __u8 l7_b(const struct l7_head *h, int i)
{
	return i < 8 ? (h->w0 >> (8 * i)) & 0xff : (h->w1 >> (8 * (i - 8))) & 0xff;
}

static __always_inline __u64 l7_mask(int n)
{
	return n >= 8 ? ~0ULL : (1ULL << (8 * (n & 7))) - 1;
}

/* The first n (<= 8) bytes of w0 equal the first n of s. */
#define L7_PREFIX(h, s, n) (((h)->w0 & l7_mask(n)) == l7_word(s, n))

static __always_inline __u64 l7_word(const char *s, int n)
{
	__u64 w = 0;
#pragma unroll
	for (int i = 0; i < 8; i++)
		if (i < n)
			w |= (__u64)(__u8)s[i] << (8 * i);
	return w;
}

static __always_inline int l7_is_http1_request(const struct l7_head *h)
{
	return L7_PREFIX(h, "GET ", 4) || L7_PREFIX(h, "POST ", 5) || L7_PREFIX(h, "PUT ", 4) ||
	       L7_PREFIX(h, "HEAD ", 5) || L7_PREFIX(h, "DELETE ", 7) || L7_PREFIX(h, "PATCH ", 6) ||
	       L7_PREFIX(h, "OPTIONS ", 8) || L7_PREFIX(h, "CONNECT ", 8) || L7_PREFIX(h, "TRACE ", 6);
}

/* "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n": every HTTP/2 connection without TLS
 * (h2c prior knowledge, gRPC) starts with it. */
static __always_inline int l7_is_http2_preface(const struct l7_head *h)
{
	return L7_PREFIX(h, "PRI * HT", 8) && (h->w1 & 0xffffffff) == l7_word("TP/2", 4);
}

/* Postgres: a connection starts with a StartupMessage (length, protocol
 * 3.0), an SSLRequest or a GSSENCRequest (length 8, magic code). */
static __always_inline int l7_is_postgres_start(const struct l7_head *h, __u32 size)
{
	__u32 len = bpf_ntohl((__u32)h->w0);
	__u32 code = bpf_ntohl((__u32)(h->w0 >> 32));
	if (len != size || len < 8 || len > 10000)
		return 0;
	return code == 196608 || code == 80877103 || code == 80877104;
}

/* Redis: a command is an array of bulk strings: "*<n>\r\n$". */
static __always_inline int l7_is_redis_command(const struct l7_head *h)
{
	__u8 b1 = l7_b(h, 1), b2 = l7_b(h, 2);
	if (l7_b(h, 0) != '*' || b1 < '1' || b1 > '9')
		return 0;
	if (b2 == '\r')
		return l7_b(h, 3) == '\n' && l7_b(h, 4) == '$';
	return b2 >= '0' && b2 <= '9' && l7_b(h, 3) == '\r' && l7_b(h, 4) == '\n' &&
	       l7_b(h, 5) == '$';
}

/* A TLS handshake record: ContentType 22, version 3.x. */
static __always_inline int l7_is_tls_record(const struct l7_head *h)
{
	return l7_b(h, 0) == 0x16 && l7_b(h, 1) == 0x03 && l7_b(h, 2) <= 0x04;
}

/*
 * Issue 16's protocols: a few compares each on a connection's first bytes
 * (formats: the protocols' specifications; what counts as a request is the
 * parsers' business, crates/l7).
 */
static __always_inline __u32 l7_be32(__u64 w, int byte)
{
	return bpf_ntohl((__u32)(w >> (8 * byte)));
}

/* AMQP 0-9-1: the client's protocol header "AMQP\0\0\x09\x01". */
static __always_inline int l7_is_amqp(const struct l7_head *h)
{
	return L7_PREFIX(h, "AMQP", 4) && (h->w0 >> 32) == 0x01090000;
}

/* NATS: the client's "CONNECT {" or "PING"/"PUB "/"SUB " after it. */
static __always_inline int l7_is_nats_client(const struct l7_head *h)
{
	return L7_PREFIX(h, "CONNECT ", 8) && l7_b(h, 8) == '{';
}

/* Memcached text commands, and the binary protocol's request magic. */
static __always_inline int l7_is_memcached(const struct l7_head *h, __u32 size)
{
	if (l7_b(h, 0) == 0x80 && size >= 24 && l7_b(h, 1) <= 0x48)
		return 1;
	return L7_PREFIX(h, "get ", 4) || L7_PREFIX(h, "gets ", 5) || L7_PREFIX(h, "set ", 4) ||
	       L7_PREFIX(h, "add ", 4) || L7_PREFIX(h, "replace ", 8) || L7_PREFIX(h, "append ", 7) ||
	       L7_PREFIX(h, "prepend ", 8) || L7_PREFIX(h, "cas ", 4) || L7_PREFIX(h, "delete ", 7) ||
	       L7_PREFIX(h, "incr ", 5) || L7_PREFIX(h, "decr ", 5) || L7_PREFIX(h, "touch ", 6) ||
	       L7_PREFIX(h, "gat ", 4) || L7_PREFIX(h, "gats ", 5) || L7_PREFIX(h, "version\r", 8) ||
	       L7_PREFIX(h, "stats", 5) || L7_PREFIX(h, "flush_al", 8) || L7_PREFIX(h, "mg ", 3) ||
	       L7_PREFIX(h, "ms ", 3) || L7_PREFIX(h, "md ", 3);
}

/* MongoDB: a message header (little endian) whose length is the write's,
 * responseTo 0, and an opcode a client sends (OP_MSG, OP_QUERY, OP_COMPRESSED). */
static __always_inline int l7_is_mongo(const struct l7_head *h, __u32 size)
{
	__u32 len = (__u32)h->w0;
	__u32 response_to = (__u32)h->w1;
	__u32 op = (__u32)(h->w1 >> 32);
	return len == size && len >= 16 && response_to == 0 && (op == 2013 || op == 2004 || op == 2012);
}

/* Kafka: size (big endian) = the rest of the write, a known API key and version. */
static __always_inline int l7_is_kafka(const struct l7_head *h, __u32 size)
{
	__u32 len = l7_be32(h->w0, 0);
	__u16 key = ((__u16)l7_b(h, 4) << 8) | l7_b(h, 5);
	__u16 ver = ((__u16)l7_b(h, 6) << 8) | l7_b(h, 7);
	return size >= 12 && len == size - 4 && key <= 74 && ver <= 20 && l7_b(h, 8) < 0x80;
}

/* Cassandra CQL v3-v5: request version byte, an opcode a client opens with or
 * queries with, body length = the rest of the write. */
static __always_inline int l7_is_cassandra(const struct l7_head *h, __u32 size)
{
	__u8 v = l7_b(h, 0), op = l7_b(h, 4);
	__u32 len = ((__u32)l7_b(h, 5) << 24) | ((__u32)l7_b(h, 6) << 16) |
		    ((__u32)l7_b(h, 7) << 8) | l7_b(h, 8);
	if (v < 3 || v > 5 || size < 9 || len != size - 9)
		return 0;
	return op == 0x01 || op == 0x05 || op == 0x07 || op == 0x09 || op == 0x0a || op == 0x0d ||
	       op == 0x0b || op == 0x0f;
}

/* ZooKeeper: the session's ConnectRequest, length 44 or 45, protocol version 0. */
static __always_inline int l7_is_zookeeper(const struct l7_head *h, __u32 size)
{
	__u32 len = l7_be32(h->w0, 0);
	return (len == 44 || len == 45) && size == len + 4 && (__u32)(h->w0 >> 32) == 0;
}

/* Dubbo2: magic 0xdabb and the request flag. */
static __always_inline int l7_is_dubbo2(const struct l7_head *h)
{
	return l7_b(h, 0) == 0xda && l7_b(h, 1) == 0xbb && (l7_b(h, 2) & 0x80);
}

/* ClickHouse native: the client's Hello packet (type 0) naming a ClickHouse client. */
static __always_inline int l7_is_clickhouse(const struct l7_head *h)
{
	if (l7_b(h, 0) != 0 || l7_b(h, 1) < 8 || l7_b(h, 1) > 64)
		return 0;
	__u8 c = l7_b(h, 2) | 0x20;
	return c == 'c' && (l7_b(h, 3) | 0x20) == 'l' && (l7_b(h, 4) | 0x20) == 'i' &&
	       (l7_b(h, 5) | 0x20) == 'c' && (l7_b(h, 6) | 0x20) == 'k';
}

/* FoundationDB: a ConnectPacket, whose protocol version starts 0x0FDB00B0, or
 * 0x1FDB00B0 with the object serializer flag (0x1000000000000000) every
 * FoundationDB >= 6.2 sets. */
static __always_inline int l7_is_foundationdb(const struct l7_head *h)
{
	return ((__u32)h->w1 & ~0x10000000u) == 0x0FDB00B0;
}

/* Server-first protocols, classified from the server's greeting (a client's
 * first read, a server's first write). MySQL: packet 0 of protocol 10; NATS:
 * "INFO {". */
static __always_inline __u8 l7_classify_greeting(__u64 ubuf, __u32 size)
{
	struct l7_head h = {};
	if (size < 8 || bpf_probe_read_user(&h.w0, 8, (void *)ubuf) != 0)
		return L7_UNKNOWN;
	__u32 len = (__u32)h.w0 & 0xffffff;
	if (l7_b(&h, 3) == 0 && l7_b(&h, 4) == 0x0a && len + 4 <= size && len < 1024)
		return L7_MYSQL;
	if (L7_PREFIX(&h, "INFO {", 6))
		return L7_NATS;
	return L7_UNKNOWN;
}

/*
 * The protocol of a connection from its first 16 request-direction bytes
 * (w0, w1: little-endian words) and the size of the data they begin; L7_NONE
 * when none matches. A global function: the verifier checks it once on its
 * own instead of in every program that classifies.
 */
__attribute__((noinline)) int l7_classify_head(__u64 w0, __u64 w1, __u32 size)
{
	struct l7_head hd = {.w0 = w0, .w1 = w1};
	const struct l7_head *h = &hd;
	if (size < 4)
		return L7_NONE;
	if (l7_is_http2_preface(h))
		return L7_HTTP2;
	if (l7_is_nats_client(h))
		return L7_NATS;
	if (l7_is_http1_request(h))
		return L7_HTTP;
	if (l7_is_redis_command(h))
		return L7_REDIS;
	if (size >= 8 && l7_is_postgres_start(h, size))
		return L7_POSTGRES;
	if (l7_is_tls_record(h))
		return L7_TLS_CIPHER;
	if (l7_is_amqp(h))
		return L7_RABBITMQ;
	if (l7_is_mongo(h, size))
		return L7_MONGO;
	/* ZooKeeper before Kafka: a ConnectRequest (length 44/45, protocol
	 * version 0, lastZxidSeen 0) also reads as a Kafka Produce v0 header. */
	if (l7_is_zookeeper(h, size))
		return L7_ZOOKEEPER;
	if (l7_is_kafka(h, size))
		return L7_KAFKA;
	if (l7_is_cassandra(h, size))
		return L7_CASSANDRA;
	if (l7_is_dubbo2(h))
		return L7_DUBBO2;
	if (l7_is_clickhouse(h))
		return L7_CLICKHOUSE;
	if (l7_is_foundationdb(h))
		return L7_FOUNDATIONDB;
	if (l7_is_memcached(h, size))
		return L7_MEMCACHED;
	return L7_NONE;
}

/* The first 16 bytes at ubuf (fewer when the call moved fewer: the rest 0). */
static __always_inline int l7_read_head(struct l7_head *h, __u64 ubuf, __u32 size)
{
	if (bpf_probe_read_user(h, sizeof(*h), (void *)ubuf) == 0)
		return 0;
	/* Fewer than 16 readable bytes: read what the call moved. */
	h->w1 = 0;
	if (size >= sizeof(*h) || bpf_probe_read_user(&h->w0, 8, (void *)ubuf) != 0)
		return -1;
	return 0;
}

/* The protocol of a connection from its first request-direction bytes;
 * L7_NONE when none matches. */
static __always_inline __u8 l7_classify(__u64 ubuf, __u32 size)
{
	struct l7_head h = {};
	if (size < 4 || l7_read_head(&h, ubuf, size) != 0)
		return L7_NONE;
	return l7_classify_head(h.w0, h.w1, size);
}

/*
 * The protocol of a connection whose first request-direction call moved only
 * a 4-byte length prefix (held in l7_sock.prefix: a ZooKeeper or Kafka server
 * reads each packet's length apart from its body), from that prefix and the
 * next call's bytes at ubuf (size of them), as if one call had moved both.
 */
static __always_inline __u8 l7_classify_held(__u32 prefix, __u64 ubuf, __u32 size)
{
	struct l7_head t = {};
	if (size == 0 || l7_read_head(&t, ubuf, size) != 0)
		return L7_NONE;
	return l7_classify_head((__u64)prefix | (t.w0 << 32), (t.w0 >> 32) | (t.w1 << 32),
				size + 4);
}
