//! Trace export's self-metrics (crates/traces, docs/traces.md), rendered by the binary
//! (crates/sonde/src/traces.rs) when `--traces-endpoint` is set.

use super::{Kind, MetricDef};

// Trace export (crates/traces, docs/traces.md), rendered by the binary.
// scrape-condition: trace export is configured (--traces-endpoint or --collector-endpoint)
metric!(
    SONDE_TRACES_SPANS_QUEUED,
    "sonde_traces_spans_queued_total",
    Counter,
    "Client requests sampled and queued for export as spans"
);
// scrape-condition: trace export is configured (--traces-endpoint or --collector-endpoint)
metric!(
    SONDE_TRACES_SPANS_EXPORTED,
    "sonde_traces_spans_exported_total",
    Counter,
    "Spans the OTLP receiver accepted"
);
// scrape-condition: trace export is configured (--traces-endpoint or --collector-endpoint)
metric!(
    SONDE_TRACES_SPANS_DROPPED,
    "sonde_traces_spans_dropped_total",
    Counter,
    "Spans lost, by reason: queue_full (the queue was at --traces-queue-size), export_failed (their batch failed every attempt), rejected (the receiver refused them)"
);
// scrape-condition: trace export is configured (--traces-endpoint or --collector-endpoint)
metric!(
    SONDE_TRACES_SAMPLED_OUT,
    "sonde_traces_requests_sampled_out_total",
    Counter,
    "Client requests left out by --traces-sampling"
);
// scrape-condition: trace export is configured (--traces-endpoint or --collector-endpoint)
metric!(
    SONDE_TRACES_WITHOUT_DETAIL,
    "sonde_traces_requests_without_detail_total",
    Counter,
    "Client requests of a traced protocol whose method, query or command was not seen (no span, as coroot-node-agent does)"
);
// scrape-condition: trace export is configured (--traces-endpoint or --collector-endpoint)
metric!(
    SONDE_TRACES_EXPORT_FAILURES,
    "sonde_traces_export_failures_total",
    Counter,
    "Span export requests that failed (network error, timeout, 5xx, 429) and were retried or given up"
);
// scrape-condition: trace export is configured (--traces-endpoint or --collector-endpoint)
metric!(
    SONDE_TRACES_BATCHES_EXPORTED,
    "sonde_traces_batches_exported_total",
    Counter,
    "Span export requests the OTLP receiver accepted"
);
// scrape-condition: trace export is configured (--traces-endpoint or --collector-endpoint)
metric!(
    SONDE_TRACES_QUEUE,
    "sonde_traces_queue_spans",
    Gauge,
    "Spans waiting in the export queue"
);
