"""Calls servicemock.v1.MockService/Call over TLS with grpcio's own TLS
stack (ssl_channel_credentials, a client certificate), knowing the service
only through reflection, and prints what the answer says of the TLS
session and the caller. Args: ADDR CA CERT KEY SNI"""
import json
import sys

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

addr, ca, cert, key, sni = sys.argv[1:6]
read = lambda p: open(p, "rb").read()
credentials = grpc.ssl_channel_credentials(read(ca), read(key), read(cert))
channel = grpc.secure_channel(addr, credentials, options=[("grpc.ssl_target_name_override", sni)])

stub = reflection_pb2_grpc.ServerReflectionStub(channel)
request = reflection_pb2.ServerReflectionRequest(file_containing_symbol="servicemock.v1.MockService")
pool = descriptor_pool.DescriptorPool()
for answer in stub.ServerReflectionInfo(iter([request]), timeout=10):
    for raw in answer.file_descriptor_response.file_descriptor_proto:
        proto = descriptor_pb2.FileDescriptorProto.FromString(raw)
        try:
            pool.Add(proto)
        except Exception:
            pass
CallRequest = message_factory.GetMessageClass(pool.FindMessageTypeByName("servicemock.v1.CallRequest"))
CallResponse = message_factory.GetMessageClass(pool.FindMessageTypeByName("servicemock.v1.CallResponse"))
call = channel.unary_unary(
    "/servicemock.v1.MockService/Call",
    request_serializer=lambda m: m.SerializeToString(),
    response_deserializer=CallResponse.FromString,
)
response = call(CallRequest(path="/"), timeout=10)
print(json.dumps(json_format.MessageToDict(response)))
