//! Application-layer metrics (coroot-node-agent's `L7Requests`, `L7Latency`,
//! `L7InboundRequests`, `L7InboundLatency`, the DNS ones and `ip_to_fqdn`) and the L7 engine's
//! self-metrics: one entry per name; render_l7.rs renders them. Outbound series carry
//! `destination, actual_destination, status` (plus `method` for RabbitMQ and NATS), inbound ones
//! `status`; histograms use `sonde_registry::l7::BUCKETS`.

use super::{Kind, MetricDef};

metric!(
    CONTAINER_HTTP_REQUESTS_TOTAL,
    "container_http_requests_total",
    Counter,
    "Total number of outbound HTTP requests"
);

metric!(
    CONTAINER_HTTP_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_http_requests_duration_seconds_total",
    Histogram,
    "Histogram of the response time for each outbound HTTP request"
);

metric!(
    CONTAINER_HTTP_INBOUND_REQUESTS_TOTAL,
    "container_http_inbound_requests_total",
    Counter,
    "Total number of inbound HTTP requests"
);

metric!(
    CONTAINER_HTTP_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_http_inbound_requests_duration_seconds_total",
    Histogram,
    "Histogram of the response time for each inbound HTTP request"
);

metric!(
    CONTAINER_POSTGRES_QUERIES_TOTAL,
    "container_postgres_queries_total",
    Counter,
    "Total number of outbound Postgres queries"
);

metric!(
    CONTAINER_POSTGRES_QUERIES_DURATION_SECONDS_TOTAL,
    "container_postgres_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound Postgres querie"
);

metric!(
    CONTAINER_POSTGRES_INBOUND_QUERIES_TOTAL,
    "container_postgres_inbound_queries_total",
    Counter,
    "Total number of inbound Postgres queries"
);

metric!(
    CONTAINER_POSTGRES_INBOUND_QUERIES_DURATION_SECONDS_TOTAL,
    "container_postgres_inbound_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound Postgres querie"
);

metric!(
    CONTAINER_REDIS_QUERIES_TOTAL,
    "container_redis_queries_total",
    Counter,
    "Total number of outbound Redis queries"
);

metric!(
    CONTAINER_REDIS_QUERIES_DURATION_SECONDS_TOTAL,
    "container_redis_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound Redis querie"
);

metric!(
    CONTAINER_REDIS_INBOUND_QUERIES_TOTAL,
    "container_redis_inbound_queries_total",
    Counter,
    "Total number of inbound Redis queries"
);

metric!(
    CONTAINER_REDIS_INBOUND_QUERIES_DURATION_SECONDS_TOTAL,
    "container_redis_inbound_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound Redis querie"
);

metric!(
    CONTAINER_MEMCACHED_QUERIES_TOTAL,
    "container_memcached_queries_total",
    Counter,
    "Total number of outbound Memcached queries"
);

metric!(
    CONTAINER_MEMCACHED_QUERIES_DURATION_SECONDS_TOTAL,
    "container_memcached_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound Memcached querie"
);

metric!(
    CONTAINER_MEMCACHED_INBOUND_QUERIES_TOTAL,
    "container_memcached_inbound_queries_total",
    Counter,
    "Total number of inbound Memcached queries"
);

metric!(
    CONTAINER_MEMCACHED_INBOUND_QUERIES_DURATION_SECONDS_TOTAL,
    "container_memcached_inbound_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound Memcached querie"
);

metric!(
    CONTAINER_MYSQL_QUERIES_TOTAL,
    "container_mysql_queries_total",
    Counter,
    "Total number of outbound Mysql queries"
);

metric!(
    CONTAINER_MYSQL_QUERIES_DURATION_SECONDS_TOTAL,
    "container_mysql_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound Mysql querie"
);

metric!(
    CONTAINER_MYSQL_INBOUND_QUERIES_TOTAL,
    "container_mysql_inbound_queries_total",
    Counter,
    "Total number of inbound Mysql queries"
);

metric!(
    CONTAINER_MYSQL_INBOUND_QUERIES_DURATION_SECONDS_TOTAL,
    "container_mysql_inbound_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound Mysql querie"
);

metric!(
    CONTAINER_MONGO_QUERIES_TOTAL,
    "container_mongo_queries_total",
    Counter,
    "Total number of outbound Mongo queries"
);

metric!(
    CONTAINER_MONGO_QUERIES_DURATION_SECONDS_TOTAL,
    "container_mongo_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound Mongo querie"
);

metric!(
    CONTAINER_MONGO_INBOUND_QUERIES_TOTAL,
    "container_mongo_inbound_queries_total",
    Counter,
    "Total number of inbound Mongo queries"
);

metric!(
    CONTAINER_MONGO_INBOUND_QUERIES_DURATION_SECONDS_TOTAL,
    "container_mongo_inbound_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound Mongo querie"
);

metric!(
    CONTAINER_KAFKA_REQUESTS_TOTAL,
    "container_kafka_requests_total",
    Counter,
    "Total number of outbound Kafka requests"
);

metric!(
    CONTAINER_KAFKA_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_kafka_requests_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound Kafka request"
);

metric!(
    CONTAINER_KAFKA_INBOUND_REQUESTS_TOTAL,
    "container_kafka_inbound_requests_total",
    Counter,
    "Total number of inbound Kafka requests"
);

metric!(
    CONTAINER_KAFKA_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_kafka_inbound_requests_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound Kafka request"
);

metric!(
    CONTAINER_CASSANDRA_QUERIES_TOTAL,
    "container_cassandra_queries_total",
    Counter,
    "Total number of outbound Cassandra requests"
);

metric!(
    CONTAINER_CASSANDRA_QUERIES_DURATION_SECONDS_TOTAL,
    "container_cassandra_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound Cassandra request"
);

metric!(
    CONTAINER_CASSANDRA_INBOUND_QUERIES_TOTAL,
    "container_cassandra_inbound_queries_total",
    Counter,
    "Total number of inbound Cassandra requests"
);

metric!(
    CONTAINER_CASSANDRA_INBOUND_QUERIES_DURATION_SECONDS_TOTAL,
    "container_cassandra_inbound_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound Cassandra request"
);

metric!(
    CONTAINER_RABBITMQ_MESSAGES_TOTAL,
    "container_rabbitmq_messages_total",
    Counter,
    "Total number of Rabbitmq messages produced or consumed by the container"
);

metric!(
    CONTAINER_NATS_MESSAGES_TOTAL,
    "container_nats_messages_total",
    Counter,
    "Total number of NATS messages produced or consumed by the container"
);

metric!(
    CONTAINER_DUBBO_REQUESTS_TOTAL,
    "container_dubbo_requests_total",
    Counter,
    "Total number of outbound DUBBO requests"
);

metric!(
    CONTAINER_DUBBO_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_dubbo_requests_duration_seconds_total",
    Histogram,
    "Histogram of the response time for each outbound DUBBO request"
);

metric!(
    CONTAINER_DUBBO_INBOUND_REQUESTS_TOTAL,
    "container_dubbo_inbound_requests_total",
    Counter,
    "Total number of inbound DUBBO requests"
);

metric!(
    CONTAINER_DUBBO_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_dubbo_inbound_requests_duration_seconds_total",
    Histogram,
    "Histogram of the response time for each inbound DUBBO request"
);

metric!(
    CONTAINER_CLICKHOUSE_QUERIES_TOTAL,
    "container_clickhouse_queries_total",
    Counter,
    "Total number of outbound ClickHouse queries"
);

metric!(
    CONTAINER_CLICKHOUSE_QUERIES_DURATION_SECONDS_TOTAL,
    "container_clickhouse_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound ClickHouse querie"
);

metric!(
    CONTAINER_CLICKHOUSE_INBOUND_QUERIES_TOTAL,
    "container_clickhouse_inbound_queries_total",
    Counter,
    "Total number of inbound ClickHouse queries"
);

metric!(
    CONTAINER_CLICKHOUSE_INBOUND_QUERIES_DURATION_SECONDS_TOTAL,
    "container_clickhouse_inbound_queries_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound ClickHouse querie"
);

metric!(
    CONTAINER_ZOOKEEPER_REQUESTS_TOTAL,
    "container_zookeeper_requests_total",
    Counter,
    "Total number of outbound Zookeeper requests"
);

metric!(
    CONTAINER_ZOOKEEPER_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_zookeeper_requests_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound Zookeeper request"
);

metric!(
    CONTAINER_ZOOKEEPER_INBOUND_REQUESTS_TOTAL,
    "container_zookeeper_inbound_requests_total",
    Counter,
    "Total number of inbound Zookeeper requests"
);

metric!(
    CONTAINER_ZOOKEEPER_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_zookeeper_inbound_requests_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound Zookeeper request"
);

metric!(
    CONTAINER_FOUNDATIONDB_REQUESTS_TOTAL,
    "container_foundationdb_requests_total",
    Counter,
    "Total number of outbound FoundationDB requests"
);

metric!(
    CONTAINER_FOUNDATIONDB_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_foundationdb_requests_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each outbound FoundationDB request"
);

metric!(
    CONTAINER_FOUNDATIONDB_INBOUND_REQUESTS_TOTAL,
    "container_foundationdb_inbound_requests_total",
    Counter,
    "Total number of inbound FoundationDB requests"
);

metric!(
    CONTAINER_FOUNDATIONDB_INBOUND_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_foundationdb_inbound_requests_duration_seconds_total",
    Histogram,
    "Histogram of the execution time for each inbound FoundationDB request"
);

metric!(
    CONTAINER_DNS_REQUESTS_TOTAL,
    "container_dns_requests_total",
    Counter,
    "Total number of outbound DNS requests"
);
metric!(
    CONTAINER_DNS_REQUESTS_DURATION_SECONDS_TOTAL,
    "container_dns_requests_duration_seconds_total",
    Histogram,
    "Histogram of the response time for each outbound DNS request"
);
metric!(
    IP_TO_FQDN,
    "ip_to_fqdn",
    Gauge,
    "Mapping IP addresses to FQDNs based on DNS requests initiated by containers"
);

// Self-metrics of the L7 engine (sonde's own).
metric!(
    SONDE_L7_RECORDS,
    "sonde_l7_records_total",
    Counter,
    "Reads and writes of traced connections read from the kernel's ring (application-protocol records)"
);
metric!(
    SONDE_L7_REQUESTS,
    "sonde_l7_requests_total",
    Counter,
    "Requests matched with their responses by the L7 parsers (before container attribution and --exclude-http-requests-by-path)"
);
metric!(
    SONDE_L7_SESSIONS,
    "sonde_l7_sessions",
    Gauge,
    "Connections with L7 parser state now"
);
metric!(
    SONDE_L7_SESSIONS_EVICTED,
    "sonde_l7_sessions_evicted_total",
    Counter,
    "L7 parser sessions dropped, least recently used first, to stay within their bound (their requests in flight are lost)"
);
metric!(
    SONDE_L7_PARSE_ERRORS,
    "sonde_l7_parse_errors_total",
    Counter,
    "Payloads that did not parse as their connection's protocol"
);
metric!(
    SONDE_L7_UNMATCHED,
    "sonde_l7_unmatched_responses_total",
    Counter,
    "Responses with no request waiting for them (a request lost or never seen)"
);
metric!(
    SONDE_L7_PENDING_OVERFLOW,
    "sonde_l7_pending_overflow_total",
    Counter,
    "Requests dropped because too many were waiting for a response on one connection"
);
metric!(
    SONDE_L7_UNSUPPORTED,
    "sonde_l7_unsupported_records_total",
    Counter,
    "Records of a protocol this build has no parser for (counted, not guessed)"
);
metric!(
    SONDE_L7_DECODE_ERRORS,
    "sonde_l7_decode_errors_total",
    Counter,
    "L7 records from the kernel that could not be decoded"
);
metric!(
    SONDE_L7_DROPPED,
    "sonde_l7_requests_dropped_total",
    Counter,
    "Requests not counted because a container reached its bound of L7 or DNS series (summed over exported containers)"
);
metric!(
    SONDE_L7_UNSUPPORTED_CHUNKS,
    "sonde_l7_unsupported_chunks_total",
    Counter,
    "Reads and writes of connections whose protocol has no parser in this build"
);
metric!(
    SONDE_L7_UNPROVEN,
    "sonde_l7_unproven_requests_total",
    Counter,
    "Requests seen only partly (cut by the 512-byte window) whose count could not be proven from the responses"
);
metric!(
    SONDE_L7_RESYNCS,
    "sonde_l7_resyncs_total",
    Counter,
    "Times a connection's parser lost its place (a body or frame past the window with no length) and waited for a recognisable start"
);
metric!(
    SONDE_L7_HPACK_ERRORS,
    "sonde_l7_hpack_errors_total",
    Counter,
    "HTTP/2 header blocks that could not be decoded, and table sizes above the 64 KiB cap"
);
metric!(
    SONDE_L7_RESET_STREAMS,
    "sonde_l7_reset_streams_total",
    Counter,
    "HTTP/2 streams reset before any response (not counted as requests)"
);
metric!(
    SONDE_L7_EXCLUDED,
    "sonde_l7_excluded_requests_total",
    Counter,
    "HTTP requests left out by --exclude-http-requests-by-path"
);

// Self-metrics of the TLS uprobes (crates/registry/src/tls_bridge.rs counts them).
metric!(
    SONDE_TLS_UPROBES_ATTACHED,
    "sonde_tls_uprobes_attached",
    Gauge,
    "Files (OpenSSL libraries, Go binaries) whose TLS functions are probed now, by kind"
);
metric!(
    SONDE_TLS_UPROBES,
    "sonde_tls_uprobe_links",
    Gauge,
    "TLS uprobes attached now (entries, returns and Go RET offsets over all probed files)"
);
metric!(
    SONDE_TLS_FILES_SKIPPED,
    "sonde_tls_files_skipped_total",
    Counter,
    "Files that could hold TLS functions but got no probe, by reason (each file once; unreadable ones each time)"
);
