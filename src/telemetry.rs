//! Metrics and probes: `/metrics` (Prometheus text), `/healthz`, `/readyz`. Labels stay bounded:
//! action, outcome (an error code), never an object name.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::cloud::Action;
use crate::cloud::client::CallObserver;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CallLabels {
    pub action: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabels {
    pub outcome: String,
}

pub struct Metrics {
    registry: Registry,
    cloud_calls: Family<CallLabels, Counter>,
    cloud_call_seconds: Family<ActionLabels, Histogram>,
    throttled: Counter,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_seconds: Histogram,
    /// Objects whose release was requested and is not yet confirmed.
    pub releases_in_flight: Gauge,
    pub objects_ready: Gauge,
    release_seconds: Histogram,
    /// 1 while this replica holds the lease (or runs without leader election).
    pub leader: Gauge,
    /// Set once the watch has listed every object.
    pub ready: AtomicBool,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("eipsegment");
        let cloud_calls = Family::<CallLabels, Counter>::default();
        registry.register(
            "cloud_calls",
            "VPC API calls by action and outcome (Success or the error code)",
            cloud_calls.clone(),
        );
        let cloud_call_seconds = Family::<ActionLabels, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.01, 2.0, 12))
        });
        registry.register("cloud_call_duration_seconds", "VPC API call duration by action", cloud_call_seconds.clone());
        let throttled = Counter::default();
        registry.register("cloud_throttled", "VPC API calls answered with throttling", throttled.clone());
        let reconciles = Family::<OutcomeLabels, Counter>::default();
        registry.register("reconciles", "Reconciles by outcome (success, pending, error)", reconciles.clone());
        let reconcile_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        registry.register("reconcile_duration_seconds", "Duration of one reconcile", reconcile_seconds.clone());
        let releases_in_flight = Gauge::default();
        registry.register("releases_in_flight", "Releases requested and not yet confirmed", releases_in_flight.clone());
        let objects_ready = Gauge::default();
        registry.register("objects_ready", "Objects whose segment was last seen allocated", objects_ready.clone());
        let release_seconds = Histogram::new(exponential_buckets(0.5, 2.0, 14));
        registry.register(
            "release_duration_seconds",
            "From the release request to the cloud's confirmation",
            release_seconds.clone(),
        );
        let leader = Gauge::default();
        registry.register("leader", "1 while this replica reconciles (holds the lease)", leader.clone());
        Metrics {
            registry,
            cloud_calls,
            cloud_call_seconds,
            throttled,
            reconciles,
            reconcile_seconds,
            releases_in_flight,
            objects_ready,
            release_seconds,
            leader,
            ready: AtomicBool::new(false),
        }
    }
}

impl Metrics {
    pub fn reconciled(&self, outcome: &str) {
        self.reconciles.get_or_create(&OutcomeLabels { outcome: outcome.into() }).inc();
    }

    pub fn reconcile_took(&self, elapsed: Duration) {
        self.reconcile_seconds.observe(elapsed.as_secs_f64());
    }

    pub fn release_confirmed(&self, after: Duration) {
        self.release_seconds.observe(after.as_secs_f64());
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl CallObserver for Metrics {
    fn observe(&self, action: Action, _region: &str, outcome: &str, elapsed: Duration) {
        let action = action.as_str().to_string();
        if outcome.starts_with("Throttling") {
            self.throttled.inc();
        }
        self.cloud_calls.get_or_create(&CallLabels { action: action.clone(), outcome: outcome.into() }).inc();
        self.cloud_call_seconds.get_or_create(&ActionLabels { action }).observe(elapsed.as_secs_f64());
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body)));
    *r.status_mut() = status;
    r.headers_mut().insert("content-type", hyper::header::HeaderValue::from_static(content_type));
    r
}

/// Serves the probes and metrics until the process ends.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req: hyper::Request<hyper::body::Incoming>| {
                let metrics = metrics.clone();
                async move {
                    Ok::<_, std::convert::Infallible>(match req.uri().path() {
                        "/metrics" => reply(
                            StatusCode::OK,
                            "application/openmetrics-text; version=1.0.0; charset=utf-8",
                            metrics.encode(),
                        ),
                        "/healthz" => reply(StatusCode::OK, "text/plain", "ok\n".into()),
                        "/readyz" if metrics.ready.load(Ordering::Relaxed) => {
                            reply(StatusCode::OK, "text/plain", "ok\n".into())
                        }
                        "/readyz" => {
                            reply(StatusCode::SERVICE_UNAVAILABLE, "text/plain", "watch not yet synced\n".into())
                        }
                        _ => reply(StatusCode::NOT_FOUND, "text/plain", "not found\n".into()),
                    })
                }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
}

pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}
