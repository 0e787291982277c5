//! How spans are exported, read as OpenTelemetry users expect: the
//! standard `OTEL_*` environment variables, and `--otlp-endpoint` before
//! them. Nothing set means no spans: no exporter, no task, no cost.
//!
//! Every value is checked here, at start, and a wrong one stops the service
//! with the variable's name (the SDK would fall back without a word).

use std::time::Duration;

use opentelemetry_sdk::trace::Sampler;

/// The wire an exporter speaks (`OTEL_EXPORTER_OTLP_PROTOCOL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OtlpProtocol {
    /// OTLP over gRPC (port 4317 by convention).
    Grpc,
    /// OTLP protobuf over HTTP POST (port 4318): the specification's default.
    HttpProtobuf,
}

impl OtlpProtocol {
    pub fn as_str(self) -> &'static str {
        match self {
            OtlpProtocol::Grpc => "grpc",
            OtlpProtocol::HttpProtobuf => "http/protobuf",
        }
    }
}

/// The batch span processor's bounds (`OTEL_BSP_*`, the specification's
/// defaults).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Batching {
    /// Longest a finished span waits before its batch goes out.
    pub schedule_delay: Duration,
    /// Spans waiting at most; one more is dropped and counted.
    pub max_queue: usize,
    /// Spans in one export at most.
    pub max_batch: usize,
    /// Longest one export may take; past it, its spans are dropped.
    pub export_timeout: Duration,
}

impl Default for Batching {
    fn default() -> Self {
        Batching {
            schedule_delay: Duration::from_millis(5000),
            max_queue: 2048,
            max_batch: 512,
            export_timeout: Duration::from_millis(30000),
        }
    }
}

/// Where and how spans go.
#[derive(Debug, Clone)]
pub struct SpanSettings {
    /// The URL spans are sent to, whole (`/v1/traces` already appended for
    /// HTTP when the base endpoint was given).
    pub endpoint: String,
    pub protocol: OtlpProtocol,
    pub sampler: Sampler,
    /// `OTEL_SERVICE_NAME`, when set: the name spans carry instead of the
    /// service's own (in `serve`; each member of a mesh keeps its own).
    pub service_name: Option<String>,
    pub batching: Batching,
}

/// A variable (or flag) with a value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}={value:?}: {problem}")]
pub struct ConfigError {
    pub name: String,
    pub value: String,
    pub problem: String,
}

fn wrong(name: &str, value: &str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        name: name.to_owned(),
        value: value.to_owned(),
        problem: problem.into(),
    }
}

impl SpanSettings {
    /// The settings the process environment and `--otlp-endpoint` give, or
    /// `None` when no endpoint is set (or `OTEL_SDK_DISABLED=true`,
    /// `OTEL_TRACES_EXPORTER=none`).
    pub fn from_env(flag: Option<&str>) -> Result<Option<SpanSettings>, ConfigError> {
        SpanSettings::from_lookup(flag, |name| std::env::var(name).ok())
    }

    /// As [`SpanSettings::from_env`], with the variables from `var`.
    pub fn from_lookup(
        flag: Option<&str>,
        var: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<SpanSettings>, ConfigError> {
        let var = |name: &str| {
            var(name)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        if let Some(disabled) = var("OTEL_SDK_DISABLED") {
            match disabled.to_ascii_lowercase().as_str() {
                "true" => return Ok(None),
                "false" => {}
                _ => return Err(wrong("OTEL_SDK_DISABLED", &disabled, "write true or false")),
            }
        }
        if let Some(exporter) = var("OTEL_TRACES_EXPORTER") {
            match exporter.as_str() {
                "none" => return Ok(None),
                "otlp" => {}
                _ => {
                    return Err(wrong(
                        "OTEL_TRACES_EXPORTER",
                        &exporter,
                        "servicemock exports spans over OTLP only: write otlp or none",
                    ))
                }
            }
        }
        let protocol = match var("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
            .map(|v| ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", v))
            .or_else(|| {
                var("OTEL_EXPORTER_OTLP_PROTOCOL").map(|v| ("OTEL_EXPORTER_OTLP_PROTOCOL", v))
            }) {
            None => OtlpProtocol::HttpProtobuf,
            Some((name, value)) => match value.as_str() {
                "grpc" => OtlpProtocol::Grpc,
                "http/protobuf" => OtlpProtocol::HttpProtobuf,
                "http/json" => {
                    return Err(wrong(
                        name,
                        &value,
                        "http/json is not built in: write http/protobuf or grpc",
                    ))
                }
                _ => return Err(wrong(name, &value, "write grpc or http/protobuf")),
            },
        };
        // The signal's own endpoint is used as it is; a base endpoint (the
        // flag, or the generic variable) gets the signal's path over HTTP.
        let (name, endpoint, whole) = if let Some(flag) = flag.filter(|f| !f.trim().is_empty()) {
            ("--otlp-endpoint", flag.trim().to_owned(), false)
        } else if let Some(e) = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") {
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", e, true)
        } else if let Some(e) = var("OTEL_EXPORTER_OTLP_ENDPOINT") {
            ("OTEL_EXPORTER_OTLP_ENDPOINT", e, false)
        } else {
            return Ok(None);
        };
        let endpoint = endpoint_url(name, &endpoint, protocol, whole)?;
        Ok(Some(SpanSettings {
            endpoint,
            protocol,
            sampler: sampler(&var)?,
            service_name: var("OTEL_SERVICE_NAME"),
            batching: batching(&var)?,
        }))
    }
}

/// The URL spans are sent to, from what `name` said.
fn endpoint_url(
    name: &str,
    written: &str,
    protocol: OtlpProtocol,
    whole: bool,
) -> Result<String, ConfigError> {
    let uri: http::Uri = written.parse().map_err(|e| {
        wrong(
            name,
            written,
            format!("not a URL ({e}): write http://HOST:PORT"),
        )
    })?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(wrong(
                name,
                written,
                "TLS to the collector is not built in: write http:// (in a mesh, the sidecar secures the call)",
            ))
        }
        _ => return Err(wrong(name, written, "write http://HOST:PORT")),
    }
    if uri.host().is_none_or(str::is_empty) {
        return Err(wrong(name, written, "the URL names no host"));
    }
    Ok(match protocol {
        OtlpProtocol::HttpProtobuf if !whole => {
            format!("{}/v1/traces", written.trim_end_matches('/'))
        }
        _ => written.to_owned(),
    })
}

/// `OTEL_TRACES_SAMPLER` and its argument; `parentbased_always_on` when unset.
fn sampler(var: &impl Fn(&str) -> Option<String>) -> Result<Sampler, ConfigError> {
    const NAME: &str = "OTEL_TRACES_SAMPLER";
    let ratio = || -> Result<f64, ConfigError> {
        match var("OTEL_TRACES_SAMPLER_ARG") {
            None => Ok(1.0),
            Some(arg) => arg
                .parse::<f64>()
                .ok()
                .filter(|r| (0.0..=1.0).contains(r))
                .ok_or_else(|| {
                    wrong(
                        "OTEL_TRACES_SAMPLER_ARG",
                        &arg,
                        "write a ratio from 0 to 1 (0.25 samples a quarter of the traces)",
                    )
                }),
        }
    };
    let Some(name) = var(NAME) else {
        return Ok(Sampler::ParentBased(Box::new(Sampler::AlwaysOn)));
    };
    Ok(match name.as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio()?),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => {
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio()?)))
        }
        _ => return Err(wrong(
            NAME,
            &name,
            "write always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off or parentbased_traceidratio",
        )),
    })
}

/// `OTEL_BSP_*`: milliseconds and counts, each a positive whole number.
fn batching(var: &impl Fn(&str) -> Option<String>) -> Result<Batching, ConfigError> {
    let number = |name: &str, default: u64| -> Result<u64, ConfigError> {
        match var(name) {
            None => Ok(default),
            Some(v) => v
                .parse::<u64>()
                .ok()
                .filter(|n| *n > 0)
                .ok_or_else(|| wrong(name, &v, "write a whole number above 0")),
        }
    };
    let default = Batching::default();
    let batching = Batching {
        schedule_delay: Duration::from_millis(number(
            "OTEL_BSP_SCHEDULE_DELAY",
            default.schedule_delay.as_millis() as u64,
        )?),
        max_queue: number("OTEL_BSP_MAX_QUEUE_SIZE", default.max_queue as u64)? as usize,
        max_batch: number("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", default.max_batch as u64)? as usize,
        export_timeout: Duration::from_millis(number(
            "OTEL_BSP_EXPORT_TIMEOUT",
            default.export_timeout.as_millis() as u64,
        )?),
    };
    Ok(Batching {
        // The specification: a batch is never bigger than the queue.
        max_batch: batching.max_batch.min(batching.max_queue),
        ..batching
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(
        flag: Option<&str>,
        vars: &[(&str, &str)],
    ) -> Result<Option<SpanSettings>, ConfigError> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        SpanSettings::from_lookup(flag, |name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
    }

    #[test]
    fn nothing_set_means_off() {
        assert!(read(None, &[]).unwrap().is_none());
        assert!(read(None, &[("OTEL_SERVICE_NAME", "a")]).unwrap().is_none());
        assert!(read(None, &[("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")])
            .unwrap()
            .is_none());
        let off = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_SDK_DISABLED", "true"),
        ];
        assert!(read(None, &off).unwrap().is_none());
        let none = [
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318"),
            ("OTEL_TRACES_EXPORTER", "none"),
        ];
        assert!(read(None, &none).unwrap().is_none());
    }

    #[test]
    fn endpoints_as_the_specification_reads_them() {
        let http = read(
            None,
            &[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318/")],
        )
        .unwrap()
        .unwrap();
        assert_eq!(http.protocol, OtlpProtocol::HttpProtobuf);
        assert_eq!(http.endpoint, "http://collector:4318/v1/traces");
        let own = read(
            None,
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
                ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://b:4318/custom"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(own.endpoint, "http://b:4318/custom");
        let grpc = read(
            Some("http://c:4317"),
            &[
                ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://a:4318"),
                ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf"),
                ("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc"),
            ],
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (grpc.protocol, grpc.endpoint.as_str()),
            (OtlpProtocol::Grpc, "http://c:4317")
        );
    }

    #[test]
    fn wrong_values_name_the_variable() {
        let e = read(None, &[("OTEL_EXPORTER_OTLP_ENDPOINT", "https://c:4318")]).unwrap_err();
        assert!(
            e.to_string()
                .starts_with("OTEL_EXPORTER_OTLP_ENDPOINT=\"https://c:4318\": TLS"),
            "{e}"
        );
        let e = read(Some("collector 4317"), &[]).unwrap_err();
        assert_eq!(e.name, "--otlp-endpoint");
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        for (name, value) in [
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json"),
            ("OTEL_EXPORTER_OTLP_PROTOCOL", "thrift"),
            ("OTEL_TRACES_SAMPLER", "sometimes"),
            ("OTEL_TRACES_SAMPLER_ARG", "2"),
            ("OTEL_BSP_MAX_QUEUE_SIZE", "-1"),
            ("OTEL_BSP_SCHEDULE_DELAY", "soon"),
            ("OTEL_TRACES_EXPORTER", "jaeger"),
            ("OTEL_SDK_DISABLED", "maybe"),
        ] {
            let sampler = ("OTEL_TRACES_SAMPLER", "traceidratio");
            let vars = if name == "OTEL_TRACES_SAMPLER_ARG" {
                vec![base, sampler, (name, value)]
            } else {
                vec![base, (name, value)]
            };
            let e = read(None, &vars).unwrap_err();
            assert_eq!((e.name.as_str(), e.value.as_str()), (name, value), "{e}");
        }
    }

    #[test]
    fn samplers_and_batching() {
        let base = ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4318");
        let s = read(None, &[base]).unwrap().unwrap();
        assert!(matches!(s.sampler, Sampler::ParentBased(_)));
        assert_eq!(s.batching, Batching::default());
        let s = read(
            None,
            &[
                base,
                ("OTEL_TRACES_SAMPLER", "traceidratio"),
                ("OTEL_TRACES_SAMPLER_ARG", "0.5"),
                ("OTEL_BSP_SCHEDULE_DELAY", "100"),
                ("OTEL_BSP_MAX_QUEUE_SIZE", "10"),
                ("OTEL_SERVICE_NAME", "shop"),
            ],
        )
        .unwrap()
        .unwrap();
        assert!(matches!(s.sampler, Sampler::TraceIdRatioBased(r) if r == 0.5));
        assert_eq!(s.batching.schedule_delay, Duration::from_millis(100));
        assert_eq!((s.batching.max_queue, s.batching.max_batch), (10, 10));
        assert_eq!(s.service_name.as_deref(), Some("shop"));
    }
}
