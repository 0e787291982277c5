//! Compiles `proto/servicemock/v1/servicemock.proto` without a system `protoc`:
//! protox parses it in pure Rust, tonic-prost-build generates the messages,
//! client and server, pbjson-build their proto3 JSON form, and the encoded
//! descriptor set is written for reflection.

use std::path::PathBuf;

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let proto = "proto/servicemock/v1/servicemock.proto";
    println!("cargo:rerun-if-changed={proto}");
    let fds = protox::compile([proto], ["proto"])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptor_set = fds.encode_to_vec();
    std::fs::write(out_dir.join("servicemock_descriptor.bin"), &descriptor_set)?;
    // proto3 JSON (what grpcurl -d and HTTP plan bodies use) from the same
    // descriptor: serde impls for every message, unknown fields refused.
    pbjson_build::Builder::new()
        .register_descriptors(&descriptor_set)?
        .build(&[".servicemock"])?;
    // Decoding goes through the nesting guard of `src/wire.rs`.
    tonic_prost_build::configure()
        .codec_path("crate::wire::GuardedCodec")
        .compile_fds(fds)?;
    Ok(())
}
