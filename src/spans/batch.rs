//! The batch span processor: finished spans wait in a bounded queue and
//! go out in batches from one task on the service's runtime, so a
//! collector that is down or slow never holds a request. The SDK's own
//! batch processor counts the spans it drops only in a log line at
//! shutdown; this one counts every span exported, dropped because the
//! queue was full, and dropped because its export failed or timed out,
//! for `/metrics`.

use std::sync::Arc;
use std::time::Duration;

use opentelemetry::Context;
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Span, SpanData, SpanExporter, SpanProcessor};
use opentelemetry_sdk::Resource;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use tokio::sync::{mpsc, oneshot};

use super::config::Batching;

/// What happened to the spans of one service.
#[derive(Debug, Clone)]
pub struct SpanCounts {
    pub exported: Counter,
    /// Spans not sent, by [`Dropped`] reason.
    pub dropped: Family<Dropped, Counter>,
}

/// Why spans were not sent.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Dropped {
    /// `queue_full` or `export_failed`.
    pub reason: &'static str,
}

const QUEUE_FULL: Dropped = Dropped {
    reason: "queue_full",
};
const EXPORT_FAILED: Dropped = Dropped {
    reason: "export_failed",
};

impl Default for SpanCounts {
    /// Both reasons counted from 0, so `/metrics` shows them before any drop.
    fn default() -> Self {
        let dropped = Family::default();
        for reason in [QUEUE_FULL, EXPORT_FAILED] {
            let _ = dropped.get_or_create(&reason);
        }
        SpanCounts {
            exported: Counter::default(),
            dropped,
        }
    }
}

impl SpanCounts {
    fn drop_spans(&self, why: &Dropped, n: u64) {
        self.dropped.get_or_create(why).inc_by(n);
    }
}

/// Sends finished spans to the export task; see the module. Its clones
/// share the task, which ends when the last is dropped.
#[derive(Debug, Clone)]
pub(super) struct BatchProcessor {
    spans: mpsc::Sender<SpanData>,
    flushes: mpsc::Sender<oneshot::Sender<()>>,
    counts: SpanCounts,
}

impl BatchProcessor {
    /// A processor whose export task (spawned on the current runtime)
    /// sends through `exporter`.
    pub(super) fn start<E: SpanExporter + 'static>(
        mut exporter: E,
        batching: Batching,
        counts: SpanCounts,
        resource: &Resource,
    ) -> BatchProcessor {
        exporter.set_resource(resource);
        let (spans, queue) = mpsc::channel(batching.max_queue);
        let (flushes, flush_asked) = mpsc::channel(4);
        tokio::spawn(export_loop(
            exporter,
            queue,
            flush_asked,
            batching,
            counts.clone(),
        ));
        BatchProcessor {
            spans,
            flushes,
            counts,
        }
    }

    /// Exports what waits now, within `timeout`.
    pub(super) async fn flush(&self, timeout: Duration) {
        let (done, wait) = oneshot::channel();
        if self.flushes.send(done).await.is_ok() {
            let _ = tokio::time::timeout(timeout, wait).await;
        }
    }
}

impl SpanProcessor for BatchProcessor {
    fn on_start(&self, _span: &mut Span, _cx: &Context) {}

    fn on_end(&self, span: SpanData) {
        if !span.span_context.is_sampled() {
            return;
        }
        if self.spans.try_send(span).is_err() {
            self.counts.drop_spans(&QUEUE_FULL, 1);
        }
    }

    fn force_flush(&self) -> OTelSdkResult {
        // Asked synchronously, where waiting could stall the runtime: the
        // service flushes with `flush` at shutdown instead.
        Ok(())
    }

    fn shutdown_with_timeout(&self, _timeout: Duration) -> OTelSdkResult {
        Ok(())
    }
}

/// Collects spans into batches of at most `max_batch`, each sent when full
/// or `schedule_delay` after its first span, one export at a time; ends
/// when the processor is dropped, after sending what is left.
async fn export_loop<E: SpanExporter>(
    exporter: E,
    mut queue: mpsc::Receiver<SpanData>,
    mut flush_asked: mpsc::Receiver<oneshot::Sender<()>>,
    batching: Batching,
    counts: SpanCounts,
) {
    let exporter = Arc::new(exporter);
    let mut batch: Vec<SpanData> = Vec::with_capacity(batching.max_batch);
    let mut open = true;
    let mut failing = false;
    while open {
        let mut flushed = None;
        if batch.is_empty() {
            tokio::select! {
                first = queue.recv() => match first {
                    Some(span) => batch.push(span),
                    None => open = false,
                },
                Some(done) = flush_asked.recv() => flushed = Some(done),
            }
        }
        let due = tokio::time::Instant::now() + batching.schedule_delay;
        while open && flushed.is_none() && batch.len() < batching.max_batch {
            let room = batching.max_batch - batch.len();
            tokio::select! {
                got = queue.recv_many(&mut batch, room) => open = got > 0,
                Some(done) = flush_asked.recv() => flushed = Some(done),
                _ = tokio::time::sleep_until(due) => break,
            }
        }
        if flushed.is_some() {
            // Everything queued now goes, in as many batches as it takes.
            while let Ok(span) = queue.try_recv() {
                batch.push(span);
                if batch.len() == batching.max_batch {
                    export(&*exporter, &mut batch, &batching, &counts, &mut failing).await;
                }
            }
        }
        export(&*exporter, &mut batch, &batching, &counts, &mut failing).await;
        if let Some(done) = flushed {
            let _ = done.send(());
        }
    }
}

/// Sends `batch` (emptying it) within the export timeout, counting what
/// became of its spans.
async fn export<E: SpanExporter>(
    exporter: &E,
    batch: &mut Vec<SpanData>,
    batching: &Batching,
    counts: &SpanCounts,
    failing: &mut bool,
) {
    if batch.is_empty() {
        return;
    }
    let spans = std::mem::replace(batch, Vec::with_capacity(batching.max_batch));
    let n = spans.len() as u64;
    match tokio::time::timeout(batching.export_timeout, exporter.export(spans)).await {
        Ok(Ok(())) => {
            counts.exported.inc_by(n);
            *failing = false;
        }
        outcome => {
            counts.drop_spans(&EXPORT_FAILED, n);
            let why = match outcome {
                Ok(Err(e)) => e.to_string(),
                _ => format!(
                    "no answer within {:?} (OTEL_BSP_EXPORT_TIMEOUT)",
                    batching.export_timeout
                ),
            };
            // Said once when exports start failing, not once per batch.
            if !std::mem::replace(failing, true) {
                tracing::warn!(error = %why, spans = n, "span export failed; dropping spans until the collector answers (counted in servicemock_spans_dropped_total)");
            } else {
                tracing::debug!(error = %why, spans = n, "span export failed; spans dropped");
            }
        }
    }
}
