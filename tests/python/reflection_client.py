"""An independent gRPC client for servicemock, written against grpcio only.

It knows nothing of servicemock's .proto: it discovers the service by server
reflection, builds the request classes from the reflected descriptors, calls
servicemock.v1.MockService/Call, checks grpc.health.v1, and reads the report a
failed call carries in its status details.

Usage: reflection_client.py ADDR CLOSED_PORT
Prints one JSON line with what it saw; exits non-zero on any mismatch.
"""

import json
import sys

import grpc
from google.protobuf import json_format
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_status import rpc_status

from reflected import mock_service_call


def main() -> int:
    addr, closed_port = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(addr)
    database, call, request_class, response_class = mock_service_call(channel)
    services = sorted(database.get_services())
    for expected in (
        "servicemock.v1.MockService",
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ):
        assert expected in services, f"{expected} not listed by reflection: {services}"

    # A path request that mixes protocols.
    request = json_format.ParseDict({"path": "/@service2/@grpc:service3/end"}, request_class())
    response, rpc = call.with_call(request, timeout=10)
    tree = json_format.MessageToDict(response)
    hop = tree["parallelForwards"][0]["sequentialForwards"][0]
    assert hop["protocol"] == "PROTOCOL_HTTP", hop
    inner = hop["response"]["parallelForwards"][0]["sequentialForwards"][0]
    assert inner["protocol"] == "PROTOCOL_GRPC", inner
    assert inner["response"]["service"] == "service3", inner
    identity = dict(rpc.initial_metadata())
    assert identity.get("x-servicemock-service") == "service1", identity

    # A structured plan, written as grpcurl users write it.
    plan = {
        "plan": {
            "uri": "/end",
            "parallel": [
                {"hops": [{"target": "service2", "protocol": "PROTOCOL_GRPC",
                           "headers": {"end-user": "jason"}}]},
                {"hops": [{"target": "service3", "protocol": "PROTOCOL_H2C"}]},
            ],
        }
    }
    response = call(json_format.ParseDict(plan, request_class()), timeout=10)
    tree = json_format.MessageToDict(response)
    groups = [g["sequentialForwards"][0] for g in tree["parallelForwards"]]
    assert [g["response"]["service"] for g in groups] == ["service2", "service3"], groups
    assert "end-user: jason" in groups[0]["response"]["requestInfo"], groups[0]

    # Bad input: INVALID_ARGUMENT naming the position.
    try:
        call(json_format.ParseDict({"path": "/@a||b"}, request_class()), timeout=10)
        raise AssertionError("a bad path was accepted")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.INVALID_ARGUMENT, error
        assert "position 4" in error.details(), error.details()

    # A failed hop: UNAVAILABLE, with the whole CallResponse in the details.
    try:
        call(json_format.ParseDict({"path": f"/@127.0.0.1:{closed_port}/"}, request_class()), timeout=10)
        raise AssertionError("a call to a closed port succeeded")
    except grpc.RpcError as error:
        assert error.code() == grpc.StatusCode.UNAVAILABLE, error
        status = rpc_status.from_call(error)
        assert status is not None, "no grpc-status-details-bin"
        detail = status.details[0]
        assert detail.type_url.endswith("servicemock.v1.CallResponse"), detail.type_url
        failed = response_class.FromString(detail.value)
        failed_hop = json_format.MessageToDict(failed)["parallelForwards"][0]["sequentialForwards"][0]
        assert failed_hop["result"] == "refused", failed_hop

    health = health_pb2_grpc.HealthStub(channel)
    serving = health.Check(health_pb2.HealthCheckRequest(service=""), timeout=10)
    assert serving.status == health_pb2.HealthCheckResponse.SERVING, serving

    print(json.dumps({"services": services, "failed_hop": failed_hop["result"],
                      "health": health_pb2.HealthCheckResponse.ServingStatus.Name(serving.status)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
