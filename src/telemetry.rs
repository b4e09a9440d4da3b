//! Metrics and probes: `/metrics` (Prometheus text), `/healthz`, `/readyz`. Labels stay bounded:
//! action, outcome (a code of a bounded set), region, a condition's status and reason, an error
//! class; never an object name.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Response, StatusCode};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{Atomic, Gauge};
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

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabels {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RegionLabels {
    pub region: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReadyLabels {
    pub region: String,
    /// True, False or Unknown.
    pub ready: String,
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SyncedLabels {
    pub region: String,
    /// Succeeded, or the class of the last error (Transient, Blocked, Terminal); Unknown before the
    /// first cloud call.
    pub class: String,
}

/// What the served objects look like right now, counted at each scrape.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ObjectCensus {
    pub by_ready: HashMap<ReadyLabels, i64>,
    pub by_synced: HashMap<SyncedLabels, i64>,
    /// Per region served: objects being deleted that still hold their finalizer, and the age in
    /// seconds of the oldest deletion request among them (0 and 0 when none).
    pub pending_deletions: HashMap<String, (i64, f64)>,
    pub pending_allocations: HashMap<String, i64>,
    /// Per region scanned: segments the last region scan showed that no object names.
    pub unowned_segments: HashMap<String, i64>,
}

/// Takes the census at scrape time (the controller, from its watch caches and the poller's scans).
pub trait Census: Send + Sync {
    fn take(&self) -> ObjectCensus;
}

pub struct Metrics {
    registry: Registry,
    cloud_calls: Family<CallLabels, Counter>,
    cloud_call_seconds: Family<ActionLabels, Histogram>,
    throttled: Family<ActionLabels, Counter>,
    reconciles: Family<OutcomeLabels, Counter>,
    reconcile_seconds: Histogram,
    /// Objects whose release was requested and is not yet confirmed.
    pub releases_in_flight: Gauge,
    pub objects_ready: Gauge,
    release_seconds: Histogram,
    /// 1 while this replica holds the lease (or runs without leader election).
    pub leader: Gauge,
    fence_proofs: Counter,
    fence_refusals: Family<ReasonLabels, Counter>,
    fence_proof_seconds: Histogram,
    /// Set once the watch has listed every object.
    pub ready: AtomicBool,
    census: Arc<OnceLock<Arc<dyn Census>>>,
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
        let throttled = Family::<ActionLabels, Counter>::default();
        registry.register("cloud_throttled", "VPC API calls answered with throttling, by action", throttled.clone());
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
        let fence_proofs = Counter::default();
        registry.register(
            "fence_proofs",
            "Lease writes that proved this replica the holder right before a mutating cloud call",
            fence_proofs.clone(),
        );
        let fence_refusals = Family::<ReasonLabels, Counter>::default();
        registry.register(
            "fence_refusals",
            "Mutating cloud calls not sent because the holder was not proven (deposed, unconfirmed)",
            fence_refusals.clone(),
        );
        let fence_proof_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 14));
        registry.register("fence_proof_duration_seconds", "Duration of one fence proof", fence_proof_seconds.clone());
        let census = Arc::new(OnceLock::new());
        registry.register_collector(Box::new(CensusCollector(census.clone())));
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
            fence_proofs,
            fence_refusals,
            fence_proof_seconds,
            ready: AtomicBool::new(false),
            census,
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

    pub fn fence_proven(&self) {
        self.fence_proofs.inc();
    }

    pub fn fence_refused(&self, reason: &str) {
        self.fence_refusals.get_or_create(&ReasonLabels { reason: reason.into() }).inc();
    }

    pub fn fence_proof_took(&self, elapsed: Duration) {
        self.fence_proof_seconds.observe(elapsed.as_secs_f64());
    }

    /// Where the object gauges come from; the first source given stays.
    pub fn count_with(&self, census: Arc<dyn Census>) {
        let _ = self.census.set(census);
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl CallObserver for Metrics {
    fn observe(&self, action: Action, _region: &str, outcome: &str, throttled: bool, elapsed: Duration) {
        let action = action.as_str().to_string();
        if throttled {
            self.throttled.get_or_create(&ActionLabels { action: action.clone() }).inc();
        }
        self.cloud_calls.get_or_create(&CallLabels { action: action.clone(), outcome: outcome.into() }).inc();
        self.cloud_call_seconds.get_or_create(&ActionLabels { action }).observe(elapsed.as_secs_f64());
    }
}

/// The object gauges, from a census taken at each scrape; none before the controller runs.
#[derive(Clone)]
struct CensusCollector(Arc<OnceLock<Arc<dyn Census>>>);

impl std::fmt::Debug for CensusCollector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("CensusCollector")
    }
}

impl Collector for CensusCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let Some(source) = self.0.get() else { return Ok(()) };
        let census = source.take();
        let region = |r: &String| RegionLabels { region: r.clone() };
        counts(&mut encoder, "objects", "Objects by region and Ready condition (status, reason)", census.by_ready)?;
        counts(&mut encoder, "objects_synced", "Objects by region and Synced class", census.by_synced)?;
        let (count, oldest): (HashMap<_, _>, HashMap<_, _>) =
            census.pending_deletions.iter().map(|(r, (n, age))| ((region(r), *n), (region(r), *age))).unzip();
        counts(&mut encoder, "pending_deletions", "Objects being deleted that still hold the finalizer", count)?;
        let oldest_help = "Age of the oldest deletion request among them (0 when none)";
        gauges::<_, f64, AtomicU64>(&mut encoder, "oldest_pending_deletion_seconds", oldest_help, oldest)?;
        let by_region = |m: HashMap<String, i64>| m.into_iter().map(|(r, n)| (region(&r), n)).collect();
        let pending = by_region(census.pending_allocations);
        counts(
            &mut encoder,
            "pending_allocations",
            "Objects whose allocation may have created a segment not yet recorded",
            pending,
        )?;
        let unowned_help = "Segments the last region scan showed that no EipSegment names (scanned regions only)";
        counts(&mut encoder, "unowned_segments", unowned_help, by_region(census.unowned_segments))
    }
}

/// Whole-number gauges.
fn counts<L>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: HashMap<L, i64>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
{
    gauges::<_, i64, AtomicI64>(encoder, name, help, values)
}

fn gauges<L, N, A>(
    encoder: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    values: HashMap<L, N>,
) -> Result<(), std::fmt::Error>
where
    L: EncodeLabelSet + Clone + std::hash::Hash + Eq + std::fmt::Debug + Send + Sync + 'static,
    A: Atomic<N> + Default + std::fmt::Debug + Send + Sync + 'static,
    Gauge<N, A>: EncodeMetric,
{
    let family = Family::<L, Gauge<N, A>>::default();
    values.into_iter().for_each(|(labels, n)| {
        family.get_or_create(&labels).set(n);
    });
    family.encode(encoder.encode_descriptor(name, help, None, family.metric_type())?)
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
