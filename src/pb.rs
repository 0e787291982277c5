//! The messages, client and server generated from
//! `proto/servicemock/v1/servicemock.proto` by `build.rs`, and the encoded
//! file descriptor set that server reflection publishes.

#![allow(clippy::all, missing_docs)]

tonic::include_proto!("servicemock.v1");

/// The encoded `FileDescriptorSet` of the servicemock proto, for reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("servicemock_descriptor");
