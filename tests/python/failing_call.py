"""A grpcio client with every setting at its default (8 KiB of metadata,
as Envoy), that makes one call and says what it got: the status code, the
size of the trailers, and the CallResponse a failed call carries in its
details, as proto3 JSON. It knows the service only by reflection.

Usage: failing_call.py ADDR PATH
Prints one JSON line; exits non-zero only when the call could not be read.
"""

import json
import sys

import grpc
from google.protobuf import json_format
from grpc_status import rpc_status

from reflected import mock_service_call


def main() -> int:
    addr, path = sys.argv[1], sys.argv[2]
    channel = grpc.insecure_channel(addr)
    _, call, request_class, response_class = mock_service_call(channel)
    request = json_format.ParseDict({"path": path}, request_class())
    seen = {}
    try:
        response = call(request, timeout=60)
        seen = {"code": "OK", "response": json_format.MessageToDict(response)}
    except grpc.RpcError as error:
        trailers = error.trailing_metadata() or ()
        seen = {
            "code": error.code().name,
            "message": error.details(),
            "trailer_bytes": sum(len(k) + len(v) + 32 for k, v in trailers),
        }
        status = rpc_status.from_call(error)
        if status is not None:
            for detail in status.details:
                if detail.type_url.endswith("servicemock.v1.CallResponse"):
                    seen["response"] = json_format.MessageToDict(
                        response_class.FromString(detail.value)
                    )
    print(json.dumps(seen))
    return 0


if __name__ == "__main__":
    sys.exit(main())
