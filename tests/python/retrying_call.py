"""A grpcio client with a gRPC retry policy (service config: 3 attempts on
UNAVAILABLE), as a mesh's gRPC clients are set up: it sends
grpc-previous-rpc-attempts on each retry. Makes one call with the given
metadata and says what it got, the CallResponse as proto3 JSON.

Usage: retrying_call.py ADDR PATH [NAME=VALUE ...]
Prints one JSON line; exits non-zero only when the call could not be read.
"""

import json
import sys

import grpc
from google.protobuf import json_format

from reflected import mock_service_call

SERVICE_CONFIG = {
    "methodConfig": [
        {
            "name": [{"service": "servicemock.v1.MockService"}],
            "retryPolicy": {
                "maxAttempts": 3,
                "initialBackoff": "0.01s",
                "maxBackoff": "0.05s",
                "backoffMultiplier": 2,
                "retryableStatusCodes": ["UNAVAILABLE"],
            },
        }
    ]
}


def main() -> int:
    addr, path = sys.argv[1], sys.argv[2]
    metadata = [tuple(pair.split("=", 1)) for pair in sys.argv[3:]]
    channel = grpc.insecure_channel(
        addr,
        options=[
            ("grpc.enable_retries", 1),
            ("grpc.service_config", json.dumps(SERVICE_CONFIG)),
        ],
    )
    _, call, request_class, _ = mock_service_call(channel)
    request = json_format.ParseDict({"path": path}, request_class())
    try:
        response = call(request, timeout=30, metadata=metadata)
        seen = {"code": "OK", "response": json_format.MessageToDict(response)}
    except grpc.RpcError as error:
        seen = {"code": error.code().name, "message": error.details()}
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
