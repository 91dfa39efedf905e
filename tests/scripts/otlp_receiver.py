#!/usr/bin/env python3
"""A minimal OTLP/HTTP metrics receiver for the push test.

It decodes every POST to /v1/metrics with the OpenTelemetry project's own generated protobuf
classes (PyPI opentelemetry-proto), so the agent's hand-written messages are checked against
the reference schema, and appends one JSON line per accepted request to OUT:
  {"resource": {k: v}, "metrics": [{"name", "kind", "monotonic", "temporality",
                                    "points": [{"attrs", "value" | "count", "sum",
                                                "buckets", "bounds", "time", "start"}]}]}
While the file DOWN exists it answers 503 (a receiver outage). A body that does not decode
is answered 400 and recorded as {"error": ...}.

usage: otlp_receiver.py PORT OUT DOWN
"""
import gzip
import json
import os
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from opentelemetry.proto.collector.metrics.v1 import metrics_service_pb2

PORT, OUT, DOWN = int(sys.argv[1]), sys.argv[2], sys.argv[3]


def any_value(v):
    return v.string_value if v.HasField("string_value") else str(v)


def attrs(kvs):
    return {kv.key: any_value(kv.value) for kv in kvs}


def convert(req):
    out = {"resource": {}, "metrics": []}
    for rm in req.resource_metrics:
        out["resource"].update(attrs(rm.resource.attributes))
        for sm in rm.scope_metrics:
            for m in sm.metrics:
                kind = m.WhichOneof("data")
                rec = {"name": m.name, "kind": kind, "points": []}
                if kind in ("gauge", "sum"):
                    data = getattr(m, kind)
                    if kind == "sum":
                        rec["monotonic"] = data.is_monotonic
                        rec["temporality"] = data.aggregation_temporality
                    for p in data.data_points:
                        value = p.as_double if p.WhichOneof("value") == "as_double" else p.as_int
                        rec["points"].append({"attrs": attrs(p.attributes), "value": value,
                                              "time": p.time_unix_nano,
                                              "start": p.start_time_unix_nano})
                elif kind == "histogram":
                    rec["temporality"] = m.histogram.aggregation_temporality
                    for p in m.histogram.data_points:
                        rec["points"].append({"attrs": attrs(p.attributes), "count": p.count,
                                              "sum": p.sum, "buckets": list(p.bucket_counts),
                                              "bounds": list(p.explicit_bounds),
                                              "time": p.time_unix_nano,
                                              "start": p.start_time_unix_nano})
                out["metrics"].append(rec)
    return out


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        if os.path.exists(DOWN):
            self.send_response(503)
            self.end_headers()
            self.wfile.write(b"down for the test\n")
            return
        try:
            if self.path != "/v1/metrics":
                raise ValueError("unexpected path " + self.path)
            if self.headers.get("Content-Type") != "application/x-protobuf":
                raise ValueError("content type " + str(self.headers.get("Content-Type")))
            if self.headers.get("Content-Encoding") == "gzip":
                body = gzip.decompress(body)
            req = metrics_service_pb2.ExportMetricsServiceRequest()
            req.ParseFromString(body)
            record = convert(req)
            status = 200
        except Exception as e:  # recorded, answered 400: the test fails on it
            record = {"error": repr(e)}
            status = 400
        with open(OUT, "a") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(status)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
