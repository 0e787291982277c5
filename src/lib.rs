//! servicemock: a mock service for testing service meshes.
//!
//! Deploy one binary many times under different names, then make the copies
//! call each other by typing a URL (`/@service2|service3/@service1/end`) or by
//! sending one gRPC `Call` message. Every copy answers with the whole tree of
//! what happened below it.
//!
//! # Layout
//!
//! The protocol-independent core sits in the middle; everything that knows
//! axum or tonic sits at the edges.
//!
//! * [`plan`]: the hop tree ([`plan::Plan`]) and its limits; `plan::path`
//!   parses and renders the @-path grammar, `plan::proto` converts to and from
//!   the gRPC messages, `plan::json` reads a `CallRequest` sent as JSON over
//!   HTTP. Both directions round-trip.
//! * [`exec`]: the executor that runs a plan (groups concurrently, hops of a
//!   group in order) and knows no protocol; behind `exec::transport`, one
//!   transport per hop protocol (pooled HTTP/1.1 and h2c clients, gRPC
//!   channels); the name resolver of the one-process mesh; the per-request
//!   context (depth, layered deadline).
//! * [`behavior`]: the `x-mock-*` directives (delay, status, size, reset)
//!   a service applies to itself, and the process defaults for them.
//! * [`caller`]: how a request arrived and who sent it: the TLS session,
//!   the verified client certificate, Envoy's `x-forwarded-client-cert`.
//! * [`certs`]: a CA and per-service certificates (`servicemock certs`,
//!   `--tls-self-signed`).
//! * [`codes`]: gRPC code names and the HTTP status ↔ gRPC code mappings.
//! * [`attempts`]: which attempt of a request this is (`x-envoy-attempt-count`,
//!   `grpc-previous-rpc-attempts`, or the same call seen again), for `@first=N`.
//! * [`load`]: `servicemock load` — many calls through the executor, tallied
//!   per position of the tree, judged against `--expect` by a chi-square test.
//! * [`report`]: the tree of what happened, its JSON form (field names of the
//!   original Go server kept) and its protobuf form.
//! * [`server`]: the connection seam (accept, bound, identify TLS or
//!   plaintext, hand to HTTP) and the one port that speaks HTTP/1.1, h2c
//!   and gRPC, with or without TLS; one pipeline both edges share (admit, check,
//!   run, verdict); the axum routes, the tonic service, health, reflection,
//!   `/control` and the draining shutdown.
//! * [`client`]: the `call` and `health` commands' clients, reading addresses
//!   and paths the way curl and grpcurl users write them.
//! * [`mesh`]: many named servers in one process, for a demo or a test.
//! * [`manifests`]: Kubernetes Service and Deployment YAML for named services.
//! * [`topology`]: one YAML file describing a mesh (services, versions,
//!   replicas, behaviour, default calls) for `mesh` and `manifests`.
//! * [`spans`]: OpenTelemetry spans of each request and hop, exported over
//!   OTLP when an endpoint is set (`OTEL_EXPORTER_OTLP_ENDPOINT`), in the
//!   trace the request arrived with (W3C, B3).
//! * [`metrics`]: the Prometheus metrics each service serves at `/metrics`.
//! * [`config`]: who this copy is and what it allows (identity and limits).
//! * [`fuzzing`]: the properties the fuzz targets of `fuzz/` check, replayed
//!   on stable by `tests/fuzz_corpus.rs`.
//! * [`guard`]: the guards before every protobuf and JSON decode of a plan
//!   or a report (nesting bounded by `--max-depth`, no recursion on hostile
//!   input), and the ceilings they hold.
//! * [`wire`]: the tonic codec, decoding behind the guard.
//! * [`units`]: durations and sizes as people write them, for every part.
//! * [`pb`]: the code generated from `proto/servicemock/v1/servicemock.proto`.

#![warn(unreachable_pub)]

pub mod attempts;
pub mod behavior;
pub mod caller;
pub mod certs;
pub mod client;
pub mod codes;
pub mod config;
pub mod exec;
pub mod fuzzing;
pub mod guard;
pub mod load;
pub mod manifests;
pub mod mesh;
pub mod metrics;
pub mod pb;
pub mod plan;
pub mod report;
pub mod server;
pub mod spans;
pub mod topology;
pub mod units;
pub mod wire;
