"""An OTLP trace receiver that nobody here wrote the protocol of.

Serves OpenTelemetry's own TraceService (opentelemetry-proto's generated
messages and grpcio stubs) over gRPC, or POST /v1/traces over HTTP with
the same messages as protobuf, on a loopback port chosen by the OS
(printed on the first line of stdout). Every span received is appended as
one JSON line to OUT (or only counted with --discard). Runs until killed.

    otlp_receiver.py grpc|http OUT|--discard
"""

import concurrent.futures
import gzip
import http.server
import json
import sys
import threading

import grpc
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2,
    trace_service_pb2_grpc,
)
from opentelemetry.proto.trace.v1 import trace_pb2

protocol, out = sys.argv[1], sys.argv[2]
lock = threading.Lock()


def value(any_value):
    kind = any_value.WhichOneof("value")
    return getattr(any_value, kind) if kind else None


def attributes(pairs):
    return {pair.key: value(pair.value) for pair in pairs}


def record(request):
    """Writes every span of an ExportTraceServiceRequest as a JSON line."""
    lines = []
    for resource_spans in request.resource_spans:
        resource = attributes(resource_spans.resource.attributes)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                lines.append(
                    json.dumps(
                        {
                            "service": resource.get("service.name"),
                            "resource": resource,
                            "scope": scope_spans.scope.name,
                            "trace_id": span.trace_id.hex(),
                            "span_id": span.span_id.hex(),
                            "parent_span_id": span.parent_span_id.hex(),
                            "name": span.name,
                            "kind": trace_pb2.Span.SpanKind.Name(span.kind),
                            "start": span.start_time_unix_nano,
                            "end": span.end_time_unix_nano,
                            "attributes": attributes(span.attributes),
                            "events": [
                                {
                                    "name": event.name,
                                    "attributes": attributes(event.attributes),
                                }
                                for event in span.events
                            ],
                            "status": {
                                "code": trace_pb2.Status.StatusCode.Name(
                                    span.status.code
                                ),
                                "message": span.status.message,
                            },
                        }
                    )
                )
    if out == "--discard":
        return
    with lock, open(out, "a") as file:
        for line in lines:
            file.write(line + "\n")


class TraceService(trace_service_pb2_grpc.TraceServiceServicer):
    def Export(self, request, context):
        record(request)
        return trace_service_pb2.ExportTraceServiceResponse()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if self.headers.get("content-encoding") == "gzip":
            body = gzip.decompress(body)
        if self.path != "/v1/traces" or not self.headers.get(
            "content-type", ""
        ).startswith("application/x-protobuf"):
            self.send_response(404 if self.path != "/v1/traces" else 415)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        record(trace_service_pb2.ExportTraceServiceRequest.FromString(body))
        answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("content-type", "application/x-protobuf")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass


if protocol == "grpc":
    server = grpc.server(concurrent.futures.ThreadPoolExecutor(max_workers=4))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(TraceService(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    print(port, flush=True)
    sys.stdout.close()
    server.wait_for_termination()
elif protocol == "http":
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    print(server.server_address[1], flush=True)
    sys.stdout.close()
    server.serve_forever()
else:
    sys.exit(f"protocol must be grpc or http, not {protocol!r}")
