"""MockService's streams as a grpcio client builds them from server
reflection alone (no .proto file, no generated code): a CallStream of three
runs of a path, then a Converse whose messages are the other paths given.
Prints one JSON line: each message's number, who answered and the first
line of what it received.

Usage: streams.py ADDR STREAM_PATH CONVERSE_PATH...
"""

import json
import sys

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def summary(response):
    called = [
        hop.response.service
        for group in response.parallel_forwards
        for hop in group.sequential_forwards
    ]
    return {
        "message": response.stream_message,
        "service": response.service,
        "called": called,
        "received": response.request_info[0],
    }


def main() -> int:
    addr, stream_path, *converse_paths = sys.argv[1:]
    with grpc.insecure_channel(addr) as channel:
        pool = descriptor_pool.DescriptorPool(ProtoReflectionDescriptorDatabase(channel))
        service = pool.FindServiceByName("servicemock.v1.MockService")
        call_stream = service.FindMethodByName("CallStream")
        converse = service.FindMethodByName("Converse")
        stream_request = message_factory.GetMessageClass(call_stream.input_type)
        response = message_factory.GetMessageClass(call_stream.output_type)
        converse_request = message_factory.GetMessageClass(converse.input_type)
        streamed = channel.unary_stream(
            "/servicemock.v1.MockService/CallStream",
            request_serializer=stream_request.SerializeToString,
            response_deserializer=response.FromString,
        )
        conversed = channel.stream_stream(
            "/servicemock.v1.MockService/Converse",
            request_serializer=converse_request.SerializeToString,
            response_deserializer=response.FromString,
        )
        request = stream_request(count=3, interval="20ms")
        request.call.path = stream_path
        out = {
            "streamed": [summary(r) for r in streamed(request, timeout=20)],
            "conversed": [
                summary(r)
                for r in conversed(
                    iter([converse_request(path=p) for p in converse_paths]), timeout=20
                )
            ],
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
