//! A replica you can make sick at run time (`--control`, off by default):
//! `GET /control` shows this process's default behaviour, readiness and
//! liveness; `PUT /control` changes them (JSON body or query parameters);
//! `DELETE /control` goes back to what the flags said. Readiness turns
//! `/ready` and gRPC health NOT_SERVING, liveness turns `/health`; both,
//! and every default directive, show in each answer's `Injected`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};

use axum::extract::{Query, State};
use axum::http::{HeaderMap, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value};

use super::grpc::Health;
use super::Service;
use crate::behavior::{Directive, Directives};

/// What `/control` can change, and what the flags said.
#[derive(Debug)]
pub struct Control {
    enabled: bool,
    flags: Arc<Directives>,
    defaults: RwLock<Arc<Directives>>,
    /// What `/control` has set beside the flags, as every answer lists it
    /// in `Injected`: made again on each change, never per request.
    injected: RwLock<Arc<[String]>>,
    ready: AtomicBool,
    live: AtomicBool,
    health: OnceLock<Health>,
}

impl Control {
    pub(super) fn new(enabled: bool, flags: Directives) -> Control {
        let flags = Arc::new(flags);
        Control {
            enabled,
            defaults: RwLock::new(flags.clone()),
            injected: RwLock::new(Arc::from([])),
            flags,
            ready: AtomicBool::new(true),
            live: AtomicBool::new(true),
            health: OnceLock::new(),
        }
    }

    /// The behaviour a request gets for the directives it does not give.
    pub fn defaults(&self) -> Arc<Directives> {
        self.defaults
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// The lines every answer's `Injected` carries for what `/control`
    /// has set: `set by /control: x-mock-status=503@50%`, `not ready (set
    /// by /control)`, `not live (set by /control)`; none while nothing is.
    pub fn injected(&self) -> Arc<[String]> {
        self.injected
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts `defaults`, readiness and liveness in force, and the lines
    /// that say so.
    fn publish(&self, defaults: Arc<Directives>, ready: bool, live: bool) {
        let (flags, set) = (self.flags.texts(), defaults.texts());
        let changed: Vec<String> = set
            .iter()
            .filter(|text| !flags.contains(text))
            .map(|(name, text)| format!("{name}={text}"))
            .chain(
                flags
                    .iter()
                    .filter(|(name, _)| !set.iter().any(|(n, _)| n == name))
                    .map(|(name, _)| format!("{name} cleared")),
            )
            .collect();
        let mut lines = Vec::new();
        if !changed.is_empty() {
            lines.push(format!("set by /control: {}", changed.join(", ")));
        }
        if !ready {
            lines.push("not ready (set by /control)".to_owned());
        }
        if !live {
            lines.push("not live (set by /control)".to_owned());
        }
        *self.defaults.write().unwrap_or_else(|p| p.into_inner()) = defaults;
        self.ready.store(ready, Ordering::Relaxed);
        self.live.store(live, Ordering::Relaxed);
        *self.injected.write().unwrap_or_else(|p| p.into_inner()) = Arc::from(lines);
    }

    /// Whether `/control` said this replica is ready (draining aside).
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// Whether `/control` said this replica is live.
    pub fn live(&self) -> bool {
        self.live.load(Ordering::Relaxed)
    }

    pub(super) fn attach_health(&self, health: Health) {
        let _ = self.health.set(health);
    }

    /// The state as `GET /control` shows it.
    fn state(&self) -> Value {
        let defaults = self.defaults();
        let mut out = Map::new();
        // The keys `/control` reads and shows: the names of the process
        // flags (`--status`, `--delay`, ...).
        for directive in Directive::ALL {
            let text = defaults.text(directive).map(Value::from);
            out.insert(
                directive.control_key().to_owned(),
                text.unwrap_or(Value::Null),
            );
        }
        out.insert("ready".into(), self.ready().into());
        out.insert("live".into(), self.live().into());
        Value::Object(out)
    }

    /// Applies a change (every key checked before any is applied) and
    /// says what changed, or what is wrong with it.
    fn apply(&self, change: &Map<String, Value>, service: &Service) -> Result<String, String> {
        let max_delay = service.executor.settings().max_delay;
        let mut defaults = (*self.defaults()).clone();
        let (mut ready, mut live) = (None, None);
        let mut said = Vec::new();
        for (key, value) in change {
            let flag = |v: &Value| match v {
                Value::Bool(b) => Ok(*b),
                Value::String(s) if s == "true" || s == "false" => Ok(s == "true"),
                _ => Err(format!("{key}: write true or false, not {v}")),
            };
            match key.as_str() {
                "ready" => ready = Some(flag(value)?),
                "live" => live = Some(flag(value)?),
                _ => {
                    // `grpcStatus`, `grpc-status`, `grpc_status` and the header
                    // name `x-mock-grpc-status` all name one directive.
                    let plain = |k: &str| {
                        k.strip_prefix("x-mock-")
                            .unwrap_or(k)
                            .replace(['-', '_'], "")
                            .to_ascii_lowercase()
                    };
                    let Some(directive) = Directive::ALL
                        .into_iter()
                        .find(|d| plain(d.control_key()) == plain(key))
                    else {
                        let known: Vec<&str> =
                            Directive::ALL.iter().map(|d| d.control_key()).collect();
                        return Err(format!(
                            "unknown key \"{key}\" (known: {}, ready, live)",
                            known.join(", ")
                        ));
                    };
                    let key = directive.control_key();
                    let text = match value {
                        Value::Null => String::new(),
                        Value::String(s) => s.trim().to_owned(),
                        Value::Number(n) => n.to_string(),
                        other => {
                            return Err(format!("{key}: write the directive as text, not {other}"))
                        }
                    };
                    if text.is_empty() {
                        defaults.clear(directive);
                        said.push(format!("{key} cleared"));
                    } else {
                        defaults
                            .set(directive.header(), &text, max_delay)
                            .map_err(|e| e.to_string())?;
                        said.push(format!("{key}={text}"));
                    }
                }
            }
        }
        if let Some(r) = ready {
            said.push(format!("ready={r}"));
        }
        if let Some(l) = live {
            said.push(format!("live={l}"));
        }
        self.publish(
            Arc::new(defaults),
            ready.unwrap_or_else(|| self.ready()),
            live.unwrap_or_else(|| self.live()),
        );
        Ok(said.join(" "))
    }

    /// Back to what the flags said: ready and live.
    fn reset(&self) {
        self.publish(self.flags.clone(), true, true);
    }

    /// gRPC health follows readiness (and draining).
    async fn publish_health(&self, draining: bool) {
        if let Some(health) = self.health.get() {
            health.set(self.ready() && !draining).await;
        }
    }
}

/// `GET`, `PUT` and `DELETE /control`.
pub(super) async fn handle(
    State(service): State<Arc<Service>>,
    method: Method,
    Query(query): Query<BTreeMap<String, String>>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    let control = &service.control;
    if !control.enabled {
        return (
            StatusCode::NOT_FOUND,
            "/control is off: start the service with --control to change it at run time\n",
        )
            .into_response();
    }
    let name = &service.identity.service;
    match method {
        Method::GET | Method::HEAD => {}
        Method::PUT | Method::POST => {
            let mut change: Map<String, Value> = query
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            if !body.is_empty() {
                match serde_json::from_slice::<Value>(&body) {
                    Ok(Value::Object(fields)) => change.extend(fields),
                    Ok(_) | Err(_) => {
                        return bad(format!(
                            "the body is not a JSON object (content-type {:?}); write e.g. {{\"status\": \"503\", \"ready\": false}}",
                            headers.get("content-type").map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).unwrap_or_default()
                        ));
                    }
                }
            }
            match control.apply(&change, &service) {
                Ok(said) => tracing::info!(service = %name, change = %said, "control: changed"),
                Err(problem) => return bad(problem),
            }
        }
        Method::DELETE => {
            control.reset();
            tracing::info!(service = %name, "control: back to the flags' defaults");
        }
        other => {
            return (
                StatusCode::METHOD_NOT_ALLOWED,
                [("allow", "GET, PUT, DELETE")],
                format!("{other} /control: use GET, PUT or DELETE\n"),
            )
                .into_response()
        }
    }
    control.publish_health(service.is_draining()).await;
    let mut body = serde_json::to_vec_pretty(&control.state()).unwrap_or_default();
    body.push(b'\n');
    ([("content-type", "application/json")], body).into_response()
}

fn bad(problem: String) -> Response {
    (StatusCode::BAD_REQUEST, format!("/control: {problem}\n")).into_response()
}
