"""MockService/Call as a grpcio client builds it from server reflection
alone: no .proto file, no generated code."""

import grpc
from google.protobuf import descriptor_pool, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)


def mock_service_call(channel: grpc.Channel):
    """The reflection database, the Call method, its request and response
    classes, for a channel to a servicemock."""
    database = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(database)
    method = pool.FindServiceByName("servicemock.v1.MockService").FindMethodByName("Call")
    request_class = message_factory.GetMessageClass(method.input_type)
    response_class = message_factory.GetMessageClass(method.output_type)
    call = channel.unary_unary(
        "/servicemock.v1.MockService/Call",
        request_serializer=request_class.SerializeToString,
        response_deserializer=response_class.FromString,
    )
    return database, call, request_class, response_class
