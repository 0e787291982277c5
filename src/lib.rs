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
//! axum or tonic sits at the edges. The modules form a one-way graph
//! (`tests/layout.rs` keeps it so); this list is the one map of them.
//!
//! * [`plan`]: the hop tree ([`plan::Plan`]), its limits and the one rule
//!   for hop headers and remainders; `path` (@-paths ⇄ Plan), `proto`
//!   (messages ⇄ Plan), `json` (a `CallRequest` as proto3 JSON, by the
//!   pbjson code generated from the same .proto), `options` (hop options
//!   `[:name=value]`: one type, where each applies), `default` (a service's
//!   default cascade, `--calls`). Every form round-trips.
//! * [`exec`]: the executor that runs a plan (groups concurrently, hops of a
//!   group in order) and knows no protocol: `admission` (what a request's
//!   headers ask: depth, calls and time left, behaviour), `hop` (one hop as
//!   the caller makes it: its timer, its tries), `result` (what came back,
//!   by named constructors), `base` (the level's own report), `context`
//!   (depth, budget, request id, propagated headers), `deadline` (layered
//!   deadlines), `judge` (one verdict on an answer, whatever its protocol),
//!   `resolve` (mesh names, replicas in turn). These name no wire crate:
//!   behind `transport/` (the hop seam: encode the sub-plan, name the URL,
//!   carry the deadline) live the clients, one file per protocol: `http`
//!   (pooled HTTP/1.1 and h2c), `grpc` (channels), `tcp`, `tls` (the rustls
//!   connector and the words for a failed handshake), with `lookup` (names,
//!   typed failures) and `failure` (transport errors sorted by type).
//! * [`behavior`]: the `x-mock-*` directives (one [`behavior::Directive`]
//!   list) a service applies to itself: `values` (their values and parsing),
//!   `conditions` (`@first=`, `@version=`, `@pod=`, `@service=`, `@from=`),
//!   `stream` (`x-mock-stream-*`), `flags` (`--delay`, `--error-rate`, …:
//!   one list for serve, mesh and topologies).
//! * [`caller`]: how a request arrived and who sent it: the TLS session,
//!   the verified client certificate (`cert`), Envoy's
//!   `x-forwarded-client-cert` (`xfcc`).
//! * [`certs`]: a CA and per-service certificates with SPIFFE ids
//!   (`servicemock certs`, `--tls-self-signed`).
//! * [`codes`]: gRPC code names and the HTTP status ↔ gRPC code mappings.
//! * [`attempts`]: which attempt of a request this is (`x-envoy-attempt-count`,
//!   `grpc-previous-rpc-attempts`, or the same call seen again), for `@first=N`.
//! * [`load`]: `servicemock load` — many calls through the executor (closed
//!   and open loop), `tally` (per position of the tree, HDR latencies),
//!   `expect` (chi-square verdicts), `render`, `converse` (`--stream`).
//! * [`report`]: the tree of what happened (outcomes and protocols are
//!   enums, words only at the edge: `word`), its JSON form (field names of
//!   the original Go server kept); `received` (a downstream's report kept as
//!   the text it came in, judged from it, parsed only when looked at:
//!   `forwards`), `pretty` (indented JSON), `proto` (⇄ `CallResponse`,
//!   status details), `text` (the tree view), `flat` (one row per hop),
//!   `trim` (fitting a report into a byte budget, failures kept).
//! * [`server`]: `connection` (the connection seam: accept and bound,
//!   identify TLS or plaintext by the first byte, hand to HTTP; heads and
//!   idleness timed, upgrade-aware; certificates by SNI, mTLS, reload by
//!   content), `front` (the one tower service every request passes:
//!   metrics, load shedding that spares probes, attempts, steering by
//!   content type), `pipeline` (admit → check → run → verdict, shared by
//!   every edge), the HTTP routes, the tonic service, `streams` (CallStream,
//!   Converse), `websocket`, `tcp` (the raw TCP lines port), `recorder`
//!   (`/requests`), `control` (`/control`), health, reflection and the
//!   draining `shutdown`.
//! * [`client`]: the `call`, `health` and `requests` clients, reading
//!   addresses and paths the way curl and grpcurl users write them.
//! * [`mesh`]: many named servers in one process (versions, replicas,
//!   default calls), for a demo or a test.
//! * [`manifests`]: Kubernetes YAML for named services or a topology, a
//!   Deployment per version.
//! * [`topology`]: one YAML file describing a mesh (services, versions,
//!   replicas, behaviour, default calls), a line and column on every error.
//! * [`spans`]: OpenTelemetry spans of each request and hop, exported over
//!   OTLP when an endpoint is set (`config` reads the `OTEL_*` variables,
//!   `batch` exports without ever blocking a request, `propagate` reads and
//!   writes W3C and B3).
//! * [`metrics`]: the Prometheus metrics each service serves at `/metrics`.
//! * [`config`]: who this copy is and what it allows (identity, names and
//!   limits).
//! * [`fuzzing`]: the properties the fuzz targets of `fuzz/` check, replayed
//!   on stable by `tests/fuzz_corpus.rs`.
//! * [`guard`]: the guards before every protobuf and JSON decode of a plan
//!   or a report (nesting bounded by `--max-depth`, no recursion on hostile
//!   input), and the ceilings they hold. A leaf.
//! * [`wire`]: the tonic codec, decoding behind the guard.
//! * [`units`]: durations and sizes as people write them. A leaf.
//! * [`shared`]: text made once and shared (a service's name, version and
//!   host, in every report it writes). A leaf.
//! * [`pb`]: the code generated from `proto/servicemock/v1/servicemock.proto`.
//!
//! The binary adds `cli/` (every flag; the clients', `serve`'s and the
//! deployment commands' arguments) and `commands/` (one file per command).

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
pub mod hex;
pub mod load;
pub mod manifests;
pub mod mesh;
pub mod metrics;
pub mod pb;
pub mod plan;
pub mod report;
pub mod server;
pub mod shared;
pub mod spans;
pub mod topology;
pub mod units;
pub mod wire;
