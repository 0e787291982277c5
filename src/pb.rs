//! The messages, client and server generated from
//! `proto/servicemock/v1/servicemock.proto` by `build.rs` (with their
//! proto3 JSON form from pbjson), and the encoded
//! file descriptor set that server reflection publishes.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("servicemock.v1");
include!(concat!(env!("OUT_DIR"), "/servicemock.v1.serde.rs"));

/// The encoded `FileDescriptorSet` of the servicemock proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("servicemock_descriptor");

// Which walk of the decode guard each message takes.
use crate::guard::proto::{Guarded, Kind};

impl Guarded for ConverseRequest {
    const KIND: Kind = Kind::CallRequest;
    const ONE_PER_CALL: bool = false;
}

impl Guarded for CallRequest {
    const KIND: Kind = Kind::CallRequest;
}

impl Guarded for CallStreamRequest {
    const KIND: Kind = Kind::CallStreamRequest;
}

impl Guarded for CallResponse {
    const KIND: Kind = Kind::CallResponse;
}
