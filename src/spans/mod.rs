//! OpenTelemetry spans of servicemock's own work: each request a SERVER
//! span, each try of each hop a CLIENT span under it, in the trace the
//! request arrived with ([`propagate`]), exported over OTLP in batches
//! ([`batch`]) when an endpoint is set ([`config`]).
//!
//! This module owns the semantic conventions (which attribute says what);
//! the pipeline and the executor hand it plain facts ([`ServerStart`],
//! [`ServerEnd`], [`HopStart`], [`HopEnd`]). With no endpoint there is no
//! [`Spans`] and nothing here runs.

mod batch;
pub mod config;
pub mod propagate;

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use http::HeaderMap;
use opentelemetry::trace::{SpanKind, Status, TraceContextExt, Tracer as _, TracerProvider as _};
use opentelemetry::{Context, InstrumentationScope, KeyValue};
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::resource::{EnvResourceDetector, ResourceDetector};
use opentelemetry_sdk::trace::{SdkTracer, SdkTracerProvider};
use opentelemetry_sdk::Resource;

pub use batch::SpanCounts;
pub use config::SpanSettings;
use propagate::Formats;

use crate::config::Identity;
use crate::hex::Hex;

/// One service's spans: its tracer (its own `service.name`), the batch
/// processor behind it and what became of its spans.
#[derive(Debug, Clone)]
pub struct Spans {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    _provider: SdkTracerProvider,
    tracer: SdkTracer,
    processor: batch::BatchProcessor,
    counts: SpanCounts,
    endpoint: String,
}

/// Who the spans say they come from.
pub enum Naming {
    /// `serve`: `OTEL_SERVICE_NAME` when set, else the service's name.
    Service,
    /// A member of `servicemock mesh`: always its own name.
    Member,
}

impl Spans {
    /// Starts the span pipeline of `identity` as `settings` say; must run
    /// on the runtime (the export task and the gRPC channel live there).
    pub fn start(
        settings: &SpanSettings,
        identity: &Identity,
        naming: Naming,
    ) -> Result<Spans, String> {
        let exporter = match settings.protocol {
            config::OtlpProtocol::Grpc => opentelemetry_otlp::SpanExporter::builder()
                .with_tonic()
                .with_endpoint(settings.endpoint.clone())
                .build(),
            config::OtlpProtocol::HttpProtobuf => opentelemetry_otlp::SpanExporter::builder()
                .with_http()
                .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
                .with_endpoint(settings.endpoint.clone())
                .build(),
        }
        .map_err(|e| {
            format!(
                "cannot export spans to {} over {}: {e}",
                settings.endpoint,
                settings.protocol.as_str()
            )
        })?;
        let resource = resource(settings, identity, naming);
        let counts = SpanCounts::default();
        let processor =
            batch::BatchProcessor::start(exporter, settings.batching, counts.clone(), &resource);
        let provider = SdkTracerProvider::builder()
            .with_span_processor(processor.clone())
            .with_sampler(settings.sampler.clone())
            .with_resource(resource)
            .build();
        let scope = InstrumentationScope::builder("servicemock")
            .with_version(env!("CARGO_PKG_VERSION"))
            .build();
        let tracer = provider.tracer_with_scope(scope);
        Ok(Spans {
            inner: Arc::new(Inner {
                _provider: provider,
                tracer,
                processor,
                counts,
                endpoint: settings.endpoint.clone(),
            }),
        })
    }

    /// What became of this service's spans (for `/metrics`).
    pub fn counts(&self) -> &SpanCounts {
        &self.inner.counts
    }

    /// Where the spans go.
    pub fn endpoint(&self) -> &str {
        &self.inner.endpoint
    }

    /// Sends the spans waiting now, within `timeout` (at shutdown).
    pub async fn flush(&self, timeout: Duration) {
        self.inner.processor.flush(timeout).await;
    }

    /// Starts the SERVER span of a request that arrived with `headers`,
    /// in the trace they name (a new one when they name none).
    pub fn server(&self, headers: &HeaderMap, start: ServerStart<'_>) -> Trace {
        let parent = propagate::extract(headers);
        // Each list made as long as it can grow: spans are made for every
        // request, and a list that grows is copied.
        let mut attributes = Vec::with_capacity(5);
        attributes.extend([
            KeyValue::new("network.protocol.name", start.network_protocol()),
            KeyValue::new("servicemock.protocol", start.protocol.to_owned()),
        ]);
        match start.grpc_method {
            Some(method) => attributes.extend([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", "servicemock.v1.MockService"),
                KeyValue::new("rpc.method", method.to_owned()),
            ]),
            None => {
                if let Some(method) = start.method {
                    attributes.push(KeyValue::new("http.request.method", method.to_owned()));
                    attributes.push(KeyValue::new("http.route", "/{plan}"));
                }
                attributes.push(KeyValue::new("url.path", start.path.to_owned()));
            }
        }
        // Joined, not formatted: a span's name is made for every request.
        let name = match (start.grpc_method, start.method) {
            (Some(method), _) => ["servicemock servicemock.v1.MockService/", method].concat(),
            (None, Some(method)) => ["servicemock ", method, " /{plan}"].concat(),
            (None, None) => ["servicemock ", start.protocol].concat(),
        };
        let tracer = &self.inner.tracer;
        let span = tracer
            .span_builder(name)
            .with_kind(SpanKind::Server)
            .with_start_time(start.received)
            .with_attributes(attributes)
            .start_with_context(tracer, &parent);
        let cx = parent.with_span(span);
        Trace::new(tracer.clone(), cx, Formats::of(headers))
    }
}

/// The `Resource` of a service's spans: its name, version, pod and
/// namespace, then what `OTEL_RESOURCE_ATTRIBUTES` says (which wins, but
/// for a mesh member's name).
fn resource(settings: &SpanSettings, identity: &Identity, naming: Naming) -> Resource {
    let mut ours = vec![
        KeyValue::new("service.version", identity.version.to_string()),
        KeyValue::new("host.name", identity.host.to_string()),
    ];
    if !identity.namespace.is_empty() {
        ours.push(KeyValue::new(
            "k8s.namespace.name",
            identity.namespace.clone(),
        ));
        ours.push(KeyValue::new("k8s.pod.name", identity.host.to_string()));
    }
    if !identity.pod_ip.is_empty() {
        ours.push(KeyValue::new("k8s.pod.ip", identity.pod_ip.clone()));
    }
    let from_env = EnvResourceDetector::new().detect();
    let name = match naming {
        Naming::Member => identity.service.to_string(),
        Naming::Service => settings
            .service_name
            .clone()
            .or_else(|| {
                from_env
                    .get(&opentelemetry::Key::from_static_str("service.name"))
                    .map(|v| v.to_string())
            })
            .unwrap_or_else(|| identity.service.to_string()),
    };
    Resource::builder_empty()
        .with_attributes(ours)
        .with_attributes(
            from_env
                .iter()
                .map(|(k, v)| KeyValue::new(k.clone(), v.clone())),
        )
        .with_attribute(KeyValue::new("telemetry.sdk.language", "rust"))
        .with_attribute(KeyValue::new("telemetry.sdk.name", "opentelemetry"))
        .with_service_name(name)
        .build()
}

/// The trace a request is part of, as this service sees it: its SERVER
/// span and the formats its hops carry. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Trace {
    tracer: SdkTracer,
    cx: Context,
    formats: Formats,
    trace_id: Arc<str>,
    span_id: Arc<str>,
}

impl Trace {
    fn new(tracer: SdkTracer, cx: Context, formats: Formats) -> Trace {
        let (trace_id, span_id) = {
            let own = cx.span();
            let context = own.span_context();
            (
                Hex::<32>::of(context.trace_id().to_bytes()),
                Hex::<16>::of(context.span_id().to_bytes()),
            )
        };
        Trace {
            tracer,
            cx,
            formats,
            trace_id: trace_id.as_str().into(),
            span_id: span_id.as_str().into(),
        }
    }

    /// The trace id, 32 hex digits.
    pub fn trace_id(&self) -> &str {
        &self.trace_id
    }

    /// The SERVER span's id, 16 hex digits.
    pub fn span_id(&self) -> &str {
        &self.span_id
    }

    /// Ends the SERVER span with what the request came to.
    pub fn end(&self, end: ServerEnd<'_>) {
        let span = self.cx.span();
        if let Some(asked) = end.delay {
            span.add_event_with_timestamp(
                "servicemock.delay",
                end.received,
                vec![
                    KeyValue::new("servicemock.delay.ms", asked.as_secs_f64() * 1000.0),
                    KeyValue::new("servicemock.delay.cut", end.timed_out),
                ],
            );
        }
        let mut attributes = Vec::with_capacity(7);
        attributes.extend([
            KeyValue::new("servicemock.result", end.result.to_owned()),
            KeyValue::new("servicemock.attempt", i64::from(end.attempt)),
            KeyValue::new("servicemock.hops", end.hops as i64),
        ]);
        if end.grpc {
            attributes.push(KeyValue::new("rpc.grpc.status_code", i64::from(end.status)));
        } else if end.http {
            attributes.push(KeyValue::new(
                "http.response.status_code",
                i64::from(end.status),
            ));
        }
        if !end.injected.is_empty() {
            attributes.push(KeyValue::new(
                "servicemock.injected",
                end.injected.join(", "),
            ));
        }
        if end.by_default {
            attributes.push(KeyValue::new("servicemock.plan", "default"));
        }
        if end.result != "ok" {
            attributes.push(KeyValue::new("error.type", end.result.to_owned()));
            span.set_status(Status::error(end.message.to_owned()));
        }
        span.set_attributes(attributes);
        span.end();
    }

    /// Starts the CLIENT span of one try of a hop, child of the SERVER span.
    pub fn hop(&self, start: HopStart<'_>) -> HopSpan {
        let mut attributes = Vec::with_capacity(10);
        attributes.extend([
            KeyValue::new("server.address", start.host.to_owned()),
            KeyValue::new("server.port", i64::from(start.port)),
            KeyValue::new("servicemock.attempt", i64::from(start.try_number)),
        ]);
        if start.try_number > 1 {
            attributes.push(KeyValue::new(
                "http.request.resend_count",
                i64::from(start.try_number - 1),
            ));
        }
        match start.protocol {
            "grpc" | "grpcs" => attributes.extend([
                KeyValue::new("rpc.system", "grpc"),
                KeyValue::new("rpc.service", "servicemock.v1.MockService"),
                KeyValue::new("rpc.method", "Call"),
                KeyValue::new("network.protocol.name", "http"),
                KeyValue::new("network.protocol.version", "2"),
            ]),
            "tcp" => attributes.push(KeyValue::new("network.transport", "tcp")),
            _ => attributes.extend([
                KeyValue::new("network.protocol.name", "http"),
                KeyValue::new("http.request.method", start.method.to_owned()),
                KeyValue::new("url.full", start.url.to_owned()),
            ]),
        }
        if start.protocol == "h2c" {
            attributes.push(KeyValue::new("network.protocol.version", "2"));
        }
        if !start.injected.is_empty() {
            attributes.push(KeyValue::new("servicemock.injected", start.injected));
        }
        let span = self
            .tracer
            .span_builder([start.protocol, " ", &start.target].concat())
            .with_kind(SpanKind::Client)
            .with_attributes(attributes)
            .start_with_context(&self.tracer, &self.cx);
        HopSpan {
            cx: self.cx.with_span(span),
            parent: Arc::clone(&self.span_id),
            formats: self.formats,
        }
    }
}

/// The CLIENT span of one try of a hop.
#[derive(Debug)]
pub struct HopSpan {
    cx: Context,
    parent: Arc<str>,
    formats: Formats,
}

impl HopSpan {
    /// Writes this span's context into the hop's headers, in the formats
    /// the request arrived with.
    pub fn inject(&self, headers: &mut HeaderMap) {
        propagate::inject(&self.cx, &self.parent, self.formats, headers);
    }

    /// Ends the span with what the try came to.
    pub fn end(self, end: HopEnd<'_>) {
        let span = self.cx.span();
        let mut attributes = Vec::with_capacity(4);
        attributes.push(KeyValue::new("servicemock.result", end.outcome.to_owned()));
        if let Some(status) = end.status {
            let key = if end.grpc {
                "rpc.grpc.status_code"
            } else {
                "http.response.status_code"
            };
            attributes.push(KeyValue::new(key, i64::from(status)));
        }
        if let Some(by) = end.answered_by {
            attributes.push(KeyValue::new("servicemock.answered_by", by.into_owned()));
        }
        if let Some(error) = end.error {
            attributes.push(KeyValue::new("error.type", end.outcome.to_owned()));
            span.set_status(Status::error(error.to_owned()));
        }
        span.set_attributes(attributes);
        span.end();
    }
}

/// What a request is, as it starts.
pub struct ServerStart<'a> {
    /// How it arrived, as reports say it (`http/1.1`, `h2c`, `grpc`, ...).
    pub protocol: &'a str,
    /// The HTTP method, for HTTP requests.
    pub method: Option<&'a str>,
    /// The gRPC method (`Call`, `CallStream`, ...), for gRPC calls.
    pub grpc_method: Option<&'a str>,
    /// What it asked (the path, the line, the message's plan).
    pub path: &'a str,
    pub received: SystemTime,
}

impl ServerStart<'_> {
    fn network_protocol(&self) -> &'static str {
        match self.protocol {
            "tcp" => "tcp",
            "websocket" => "websocket",
            _ => "http",
        }
    }
}

/// What a request came to.
pub struct ServerEnd<'a> {
    /// `ok`, `hops-failed`, `injected`, `timed-out`, `refused`.
    pub result: &'a str,
    pub message: &'a str,
    /// The HTTP status or gRPC code it was answered with.
    pub status: u16,
    pub http: bool,
    pub grpc: bool,
    pub attempt: u32,
    pub hops: usize,
    pub injected: &'a [String],
    /// The injected delay asked, when there was one, and whether it was
    /// cut by the deadline.
    pub delay: Option<Duration>,
    pub timed_out: bool,
    pub received: SystemTime,
    pub by_default: bool,
}

/// What a try of a hop is, as it starts.
pub struct HopStart<'a> {
    /// The hop's scheme word (`http`, `h2c`, `grpc`, ...).
    pub protocol: &'a str,
    /// `host` or `host:port` as the plan wrote it.
    pub target: String,
    pub host: &'a str,
    pub port: u16,
    pub url: &'a str,
    pub method: &'a str,
    pub try_number: u32,
    /// The behaviour directives the hop asks of its callee.
    pub injected: String,
}

/// What a try of a hop came to.
pub struct HopEnd<'a> {
    pub outcome: &'a str,
    pub status: Option<i32>,
    pub grpc: bool,
    pub error: Option<&'a str>,
    pub answered_by: Option<std::borrow::Cow<'a, str>>,
}
