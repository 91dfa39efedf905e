/* SPDX-License-Identifier: GPL-2.0 OR Apache-2.0 */
/*
 * L7 classification of issue 16's protocols: which protocol a connection
 * speaks, from the first bytes of its first request-direction data (a
 * client's first write, a server's first read), as src/l7.c's l7_classify
 * does for HTTP, HTTP/2, Postgres and Redis.
 *
 * No hooks of its own: l7_classify16() is called from l7_classify() with the
 * first 16 bytes of the data (`p`, zero-padded when the call moved fewer)
 * and the syscall's byte count (`len`). Each check is a few byte compares on
 * those 16 bytes. What the first request-direction data is, per protocol:
 *
 *   MySQL/MariaDB  the client's HandshakeResponse41 or SSLRequest (the
 *                  server speaks first: its greeting is response-direction
 *                  data; l7_is_mysql_greeting() recognises it if the caller
 *                  wants to classify on it instead)
 *   Memcached      a text command line, or a binary request header (0x80)
 *   MongoDB        an OP_MSG / OP_QUERY / OP_COMPRESSED request (hello)
 *   Kafka          a request header (ApiVersions or Metadata first)
 *   Cassandra      an OPTIONS or STARTUP envelope, protocol v3-v5
 *   ClickHouse     the native Hello packet
 *   ZooKeeper      the 44/45-byte ConnectRequest
 *   NATS           CONNECT (the server's INFO comes first, response side)
 *   RabbitMQ       the AMQP protocol header "AMQP\0\0\x09\x01"
 *   Dubbo2         a request header (magic 0xdabb, request flag)
 *   FoundationDB   the ConnectPacket (protocol version bytes 6-7 = 0x1FDB)
 *
 * The sonde-l7 parsers (crates/l7) check everything again and count what
 * does not parse, so a check here only has to be cheap and rarely wrong.
 * Kernel: any with BPF (plain byte compares, no helpers).
 */

static __always_inline __u32 l7_be32(const __u8 *p)
{
	return (__u32)p[0] << 24 | (__u32)p[1] << 16 | (__u32)p[2] << 8 | p[3];
}

static __always_inline __u32 l7_le32(const __u8 *p)
{
	return (__u32)p[3] << 24 | (__u32)p[2] << 16 | (__u32)p[1] << 8 | p[0];
}

/* HandshakeResponse41 / SSLRequest: [len: u24 LE][seq 1][capabilities: u32
 * LE with CLIENT_PROTOCOL_41][max packet: u32][charset][23 zero bytes]. */
static __always_inline int l7_is_mysql_login(const __u8 *p, __u32 len)
{
	__u32 n = (__u32)p[0] | (__u32)p[1] << 8 | (__u32)p[2] << 16;
	if (p[3] != 1 || n + 4 > len || n < 32)
		return 0;
	return (p[5] & 0x02) /* CLIENT_PROTOCOL_41 (0x200) */ && p[13] == 0 && p[14] == 0 && p[15] == 0;
}

/* The server's greeting: [len][seq 0][protocol version 10][version "5.", "8.", "10."...]. */
static __always_inline int l7_is_mysql_greeting(const __u8 *p, __u32 len)
{
	__u32 n = (__u32)p[0] | (__u32)p[1] << 8 | (__u32)p[2] << 16;
	return p[3] == 0 && p[4] == 10 && n + 4 == len && p[5] >= '1' && p[5] <= '9';
}

static __always_inline int l7_is_memcached(const __u8 *p, __u32 len)
{
	/* Binary: request magic, opcode, raw data type, 24-byte header at least. */
	if (p[0] == 0x80)
		return len >= 24 && p[1] <= 0x48 && p[5] == 0 && 24 + l7_be32(p + 8) <= len;
	switch (p[0]) {
	case 'g':
		/* get, gets, gat, gats */
		return (p[1] == 'e' || p[1] == 'a') && p[2] == 't' && (p[3] == ' ' || (p[3] == 's' && p[4] == ' '));
	case 's':
		return (p[1] == 'e' && p[2] == 't' && p[3] == ' ') ||
		       (p[1] == 't' && p[2] == 'a' && p[3] == 't' && p[4] == 's' && (p[5] == '\r' || p[5] == ' '));
	case 'a':
		return (p[1] == 'd' && p[2] == 'd' && p[3] == ' ') ||
		       (p[1] == 'p' && p[2] == 'p' && p[3] == 'e' && p[4] == 'n' && p[5] == 'd' && p[6] == ' ');
	case 'c': return p[1] == 'a' && p[2] == 's' && p[3] == ' ';
	case 'i': return p[1] == 'n' && p[2] == 'c' && p[3] == 'r' && p[4] == ' ';
	case 'd':
		return (p[1] == 'e' && p[2] == 'c' && p[3] == 'r' && p[4] == ' ') ||
		       (p[1] == 'e' && p[2] == 'l' && p[3] == 'e' && p[4] == 't' && p[5] == 'e' && p[6] == ' ');
	case 't': return p[1] == 'o' && p[2] == 'u' && p[3] == 'c' && p[4] == 'h' && p[5] == ' ';
	case 'p':
		return p[1] == 'r' && p[2] == 'e' && p[3] == 'p' && p[4] == 'e' && p[5] == 'n' && p[6] == 'd' && p[7] == ' ';
	case 'r':
		return p[1] == 'e' && p[2] == 'p' && p[3] == 'l' && p[4] == 'a' && p[5] == 'c' && p[6] == 'e' && p[7] == ' ';
	case 'v':
		return p[1] == 'e' && p[2] == 'r' && p[3] == 's' && p[4] == 'i' && p[5] == 'o' && p[6] == 'n' && p[7] == '\r';
	case 'm':
		/* meta commands: mg, ms, md, ma, mn */
		return (p[1] == 'g' || p[1] == 's' || p[1] == 'd' || p[1] == 'a') && p[2] == ' ';
	}
	return 0;
}

/* [length: i32 LE = the write][requestID][responseTo 0][opCode]. */
static __always_inline int l7_is_mongo(const __u8 *p, __u32 len)
{
	__u32 op = l7_le32(p + 12);
	return l7_le32(p) == len && len >= 21 && l7_le32(p + 8) == 0 && (op == 2013 || op == 2004 || op == 2012);
}

/* [size: i32 BE = the rest of the write][api_key][api_version][correlation_id][client_id length]. */
static __always_inline int l7_is_kafka(const __u8 *p, __u32 len)
{
	__u16 key = (__u16)p[4] << 8 | p[5];
	__u16 ver = (__u16)p[6] << 8 | p[7];
	__s16 client_id = (__s16)((__u16)p[12] << 8 | p[13]);
	return l7_be32(p) + 4 == len && key <= 74 && ver <= 20 && p[8] < 0x10 && client_id >= -1 && client_id < 256;
}

/* [version 3-5, request][flags][stream: i16][opcode OPTIONS/STARTUP][length: u32 BE]. */
static __always_inline int l7_is_cassandra(const __u8 *p, __u32 len)
{
	return p[0] >= 3 && p[0] <= 5 && p[1] < 0x20 && (p[4] == 0x05 || p[4] == 0x01) &&
	       l7_be32(p + 5) + 9 <= len && l7_be32(p + 5) < 0x10000;
}

/* Hello: [0][client name: varint length + bytes]...; the name of the
 * official clients starts "ClickHouse" (clickhouse-client, clickhouse-
 * driver, JDBC) or "clickhouse" (clickhouse-go), case aside. */
static __always_inline int l7_is_clickhouse(const __u8 *p, __u32 len)
{
	if (p[0] != 0 || p[1] < 10 || p[1] > 64 || len < 12)
		return 0;
	return (p[2] | 0x20) == 'c' && (p[3] | 0x20) == 'l' && (p[4] | 0x20) == 'i' && (p[5] | 0x20) == 'c' &&
	       (p[6] | 0x20) == 'k' && (p[7] | 0x20) == 'h' && (p[8] | 0x20) == 'o' && (p[9] | 0x20) == 'u' &&
	       (p[10] | 0x20) == 's' && (p[11] | 0x20) == 'e';
}

/* ConnectRequest: [length 44 or 45][protocolVersion 0][lastZxidSeen][timeout]... */
static __always_inline int l7_is_zookeeper(const __u8 *p, __u32 len)
{
	__u32 n = l7_be32(p);
	return (n == 44 || n == 45) && n + 4 == len && l7_be32(p + 4) == 0;
}

static __always_inline int l7_is_nats(const __u8 *p, __u32 len)
{
	return len >= 10 && p[0] == 'C' && p[1] == 'O' && p[2] == 'N' && p[3] == 'N' && p[4] == 'E' && p[5] == 'C' &&
	       p[6] == 'T' && p[7] == ' ' && p[8] == '{';
}

/* The protocol header "AMQP" 0 0 9 1 (0-9-1). */
static __always_inline int l7_is_amqp(const __u8 *p, __u32 len)
{
	return len >= 8 && p[0] == 'A' && p[1] == 'M' && p[2] == 'Q' && p[3] == 'P' && p[4] == 0 && p[5] == 0 &&
	       p[6] == 9 && p[7] == 1;
}

/* [0xda 0xbb][flags: request, serialization id][status][id: u64][body length: u32 BE]. */
static __always_inline int l7_is_dubbo2(const __u8 *p, __u32 len)
{
	return p[0] == 0xda && p[1] == 0xbb && (p[2] & 0x80) && (p[2] & 0x1f) && len >= 16 &&
	       16 + l7_be32(p + 12) <= len;
}

/* ConnectPacket: [length: u32 LE][protocol version: u64 LE, bytes 6-7 = 0xdb 0x1f]. */
static __always_inline int l7_is_foundationdb(const __u8 *p, __u32 len)
{
	return p[10] == 0xdb && p[11] == 0x1f && l7_le32(p) + 4 <= len;
}

/*
 * The protocol of issue 16 that the first request-direction bytes announce,
 * L7_NONE if none. Called after the HTTP, HTTP/2, Redis and Postgres checks
 * (uppercase HTTP methods never meet memcached's lowercase commands; a
 * Postgres StartupMessage has p[0..2] = 0). Order: the exact-magic checks
 * first, length-framed binary ones last.
 */
static __always_inline __u8 l7_classify16(const __u8 *p, __u32 len)
{
	if (len < 8)
		return L7_NONE;
	if (l7_is_amqp(p, len))
		return L7_RABBITMQ;
	if (l7_is_nats(p, len))
		return L7_NATS;
	if (l7_is_dubbo2(p, len))
		return L7_DUBBO2;
	if (l7_is_memcached(p, len))
		return L7_MEMCACHED;
	if (len < 16)
		return L7_NONE;
	if (l7_is_mysql_login(p, len))
		return L7_MYSQL;
	if (l7_is_mongo(p, len))
		return L7_MONGO;
	if (l7_is_zookeeper(p, len))
		return L7_ZOOKEEPER;
	if (l7_is_cassandra(p, len))
		return L7_CASSANDRA;
	if (l7_is_clickhouse(p, len))
		return L7_CLICKHOUSE;
	if (l7_is_foundationdb(p, len))
		return L7_FOUNDATIONDB;
	if (l7_is_kafka(p, len))
		return L7_KAFKA;
	return L7_NONE;
}
