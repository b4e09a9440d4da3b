//! Kubernetes glue: watch `EipSegment`s and, for each, gather what the lifecycle core asks for,
//! perform the move it decides, record it, requeue. No lifecycle decision is made here.

mod cache;
mod census;
mod claims;
mod credentials;
pub mod guard;
mod pacing;
mod pass;
mod removals;
mod resync;
mod writes;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::Namespace;
use kube::api::Api;
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::Reporter;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, ResourceExt};
use tracing::{debug, warn};

use crate::cloud::VpcClient;
use crate::fence::{Fence, Refusal};
use crate::lifecycle::Allowance;
use crate::poller::{Poller, WakeTarget};
use crate::proof::IdentityKey;
use crate::quota::Queues;
use crate::telemetry::Metrics;
use crate::tenancy::Tenancy;

pub use cache::Cached;
pub use credentials::SecretCredentials;
pub use pacing::Timings;

pub const MANAGER: &str = "eipsegment-operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed")]
    Kube(#[source] kube::Error),
    #[error("the object has no {0}")]
    MissingMetadata(&'static str),
    #[error(transparent)]
    Unreadable(#[from] cache::Unreadable),
    #[error("the cloud call was not sent")]
    Fenced(#[source] Refusal),
}

pub struct Context {
    pub client: Client,
    pub vpc: VpcClient,
    /// Who publishes events. A recorder is made per event: kube's keeps every event it published
    /// for six minutes to count repeats, which a delete storm of thousands turns into tens of MiB
    /// and a scan per event, while this operator publishes only on a change anyway.
    pub reporter: Reporter,
    pub timings: Timings,
    pub metrics: Arc<Metrics>,
    pub poller: Arc<Poller>,
    /// Set when objects may name their credentials in a Secret of their namespace.
    pub secret_credentials: Option<SecretCredentials>,
    /// The key the identity annotations are proven with.
    pub identity: IdentityKey,
    /// The tenancy policy, and the namespaces' labels its rules select by (watched only then).
    pub tenancy: Tenancy,
    pub namespace_labels: Option<reflector::Store<Namespace>>,
    /// With leader election: what proves this replica the holder before each mutating call.
    pub fence: Option<Arc<Fence>>,
    /// The objects queued for a place within the client-side quotas.
    queues: Arc<Queues>,
    /// Per-object backoff and gauges, keyed by UID.
    pacing: pacing::Pacing,
    /// The caches of every watch, each with its index of the objects naming each segment.
    stores: RwLock<Vec<Cache>>,
}

/// The namespaces' labels, for a tenancy policy whose rules select namespaces by them: the cache,
/// and the watch that fills it (to spawn), ready once its first list is in.
pub fn watch_namespaces(client: Client) -> (reflector::Store<Namespace>, impl std::future::Future<Output = ()>) {
    let (reader, writer) = reflector::store();
    let stream = watcher(Api::<Namespace>::all(client), watcher::Config::default())
        .default_backoff()
        .reflect(writer)
        .applied_objects();
    let follow = async move {
        futures::pin_mut!(stream);
        while let Some(event) = stream.next().await {
            if let Err(e) = event {
                warn!(error = %e, "the namespaces' watch failed; retrying");
            }
        }
    };
    (reader, follow)
}

/// One watch's cache and its index of who names each segment.
type Cache = (reflector::Store<Cached>, Arc<Mutex<claims::Claims>>);

impl Context {
    pub fn new(
        client: Client,
        vpc: VpcClient,
        timings: Timings,
        metrics: Arc<Metrics>,
        poller: Arc<Poller>,
        identity: IdentityKey,
    ) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        let queues = Arc::new(Queues::default());
        Context {
            client,
            vpc,
            reporter,
            timings,
            pacing: pacing::Pacing::new(metrics.clone(), queues.clone()),
            queues,
            metrics,
            poller,
            secret_credentials: None,
            identity,
            tenancy: Tenancy::default(),
            namespace_labels: None,
            fence: None,
            stores: RwLock::default(),
        }
    }

    /// What the tenancy policy lets `namespace` do, by its labels as last seen.
    pub(crate) fn allowance(&self, namespace: &str) -> Allowance {
        let labels = self.namespace_labels.as_ref().and_then(|store| store.get(&ObjectRef::new(namespace)));
        self.tenancy.allowance(namespace, labels.as_ref().map(|ns| ns.labels()))
    }

    /// Proves this replica the Lease's holder, when there is a fence, right before a mutating cloud
    /// call. A call not sent for want of proof is as a crash after the write-ahead record: the next
    /// pass, or the next leader, learns from the cloud what it did.
    pub(crate) async fn prove_leadership(&self) -> Result<(), Error> {
        match &self.fence {
            Some(fence) => fence.prove().await.map_err(Error::Fenced),
            None => Ok(()),
        }
    }

    /// Every cached object that passes `keep`.
    pub(crate) fn cached(&self, keep: impl Fn(&Cached) -> bool) -> Vec<Arc<Cached>> {
        let stores = self.stores.read().unwrap_or_else(|p| p.into_inner());
        stores.iter().flat_map(|(s, _)| s.state_filter(|o| keep(o))).collect()
    }

    /// The cached objects that named the segment when the watch last saw them, as cached now.
    pub(crate) fn naming(&self, segment_id: &str) -> Vec<Arc<Cached>> {
        let stores = self.stores.read().unwrap_or_else(|p| p.into_inner());
        stores
            .iter()
            .flat_map(|(store, claims)| {
                let names = claims.lock().unwrap_or_else(|p| p.into_inner()).naming(segment_id);
                names
                    .iter()
                    .filter_map(|n| store.get(&ObjectRef::new(&n.name).within(&n.namespace)))
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

/// Options of the watch.
pub struct WatchScope {
    /// Watch these namespaces; all when empty.
    pub namespaces: Vec<String>,
    pub concurrency: u16,
}

/// Objects per page of the watch's list.
const LIST_PAGE: u32 = 100;

type Wakes = tokio::sync::mpsc::UnboundedSender<WakeTarget>;

/// Runs until `shutdown` resolves; reconciles under way finish first, so no cloud call's outcome goes
/// unrecorded. One controller per watched namespace (or one for all), each with its own cache; the
/// poller's wakes go to the controller that watches the object.
pub async fn run(
    ctx: Arc<Context>,
    scope: WatchScope,
    woken: tokio::sync::mpsc::UnboundedReceiver<WakeTarget>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let namespaces: Vec<Option<String>> =
        if scope.namespaces.is_empty() { vec![None] } else { scope.namespaces.iter().cloned().map(Some).collect() };
    ctx.metrics.count_with(Arc::new(census::Counting(Arc::downgrade(&ctx))));
    let unsynced = Arc::new(AtomicUsize::new(namespaces.len()));
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let mut routes: Vec<(Option<String>, Wakes)> = Vec::new();
    let controllers: Vec<_> = namespaces
        .into_iter()
        .map(|namespace| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<WakeTarget>();
            let api: Api<Cached> = match &namespace {
                None => Api::all(ctx.client.clone()),
                Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            };
            let removals = removals::Removals::new(ctx.clone(), namespace.clone());
            routes.push((namespace, tx));
            run_one(ctx.clone(), api, removals, scope.concurrency, triggers(rx), unsynced.clone(), shutdown.clone())
        })
        .collect();
    let routes = Arc::new(routes);
    tokio::spawn(route_wakes(woken, routes.clone()));
    // Objects queued for a place within a quota wake on the queues' alarms, routed alike.
    let (alarms, rung) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(route_wakes(rung, routes));
    tokio::spawn({
        let ctx = ctx.clone();
        async move { ctx.queues.ring(alarms).await }
    });
    futures::future::join_all(controllers).await;
}

/// The objects a channel of wakes names, as triggers of passes.
fn triggers(
    wakes: tokio::sync::mpsc::UnboundedReceiver<WakeTarget>,
) -> impl futures::Stream<Item = ObjectRef<Cached>> + Send + 'static {
    futures::stream::unfold(wakes, |mut wakes| async move {
        wakes.recv().await.map(|t| (ObjectRef::new(&t.name).within(&t.namespace), wakes))
    })
}

async fn route_wakes(
    mut woken: tokio::sync::mpsc::UnboundedReceiver<WakeTarget>,
    routes: Arc<Vec<(Option<String>, Wakes)>>,
) {
    while let Some(target) = woken.recv().await {
        if let Some((_, tx)) = routes.iter().find(|(ns, _)| ns.as_deref().is_none_or(|ns| ns == target.namespace)) {
            let _ = tx.send(target);
        }
    }
}

/// Marks the operator ready once every watch has listed its objects. One long wait was seen to
/// miss readiness while the controller also waits on the store; a fresh wait each second does not.
async fn mark_synced(store: reflector::Store<Cached>, unsynced: Arc<AtomicUsize>, metrics: Arc<Metrics>) {
    loop {
        match tokio::time::timeout(Duration::from_secs(1), store.wait_until_ready()).await {
            Ok(Ok(())) => {
                if unsynced.fetch_sub(1, Ordering::AcqRel) == 1 {
                    metrics.ready.store(true, Ordering::Relaxed);
                }
                return;
            }
            Ok(Err(_)) => return,
            Err(_) => continue,
        }
    }
}

async fn run_one(
    ctx: Arc<Context>,
    api: Api<Cached>,
    removals: removals::Removals,
    concurrency: u16,
    wakes: impl futures::Stream<Item = ObjectRef<Cached>> + Send + 'static,
    unsynced: Arc<AtomicUsize>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let (reader, writer) = reflector::store();
    let claims = Arc::new(Mutex::new(claims::Claims::default()));
    ctx.stores.write().unwrap_or_else(|p| p.into_inner()).push((reader.clone(), claims.clone()));
    tokio::spawn(mark_synced(reader.clone(), unsynced, ctx.metrics.clone()));
    let metrics = ctx.metrics.clone();
    let (neighbours, woken_neighbours) = tokio::sync::mpsc::unbounded_channel();
    let stream = changes(api, writer, claims, removals, neighbours);
    let resync = resync::rolling(reader.clone(), resync::PERIOD);
    Controller::for_stream(stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_on(futures::stream::select(futures::stream::select(wakes, triggers(woken_neighbours)), resync))
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            let metrics = metrics.clone();
            async move {
                match result {
                    Ok((obj, _)) => debug!(object = %obj.name, namespace = ?obj.namespace, "reconciled"),
                    Err(e) => {
                        metrics.reconciled("error");
                        warn!(error = %crate::error_chain(&e), "reconcile failed")
                    }
                }
            }
        })
        .await;
}

/// The watch of `api`, kept in `writer`'s store: the objects whose change calls for a pass. A consistent
/// list in pages of 100: each page's text is held whole until its objects are kept; at the default
/// 500 a page was the largest allocation of a restart. The others naming a segment with an object
/// whose stance changed go to `neighbours`; the store takes the event before any pass can read it.
fn changes(
    api: Api<Cached>,
    writer: reflector::store::Writer<Cached>,
    claims: Arc<Mutex<claims::Claims>>,
    mut removals: removals::Removals,
    neighbours: Wakes,
) -> impl futures::Stream<Item = Result<Cached, watcher::Error>> + Send + 'static {
    let cached = writer.as_reader();
    watcher(api, watcher::Config::default().page_size(LIST_PAGE))
        .default_backoff()
        // Each version meets the one it replaces before the store takes it: the index of who names
        // which segment follows, and only a change of the spec, deletion or finalizers (not the
        // operator's own status and annotation writes) calls for a pass.
        .map_ok(move |event| {
            let before = |o: &Cached| cached.get(&ObjectRef::from_obj(o));
            let event = event.modify(|o| o.compare(before(o).as_deref()));
            let held = match &event {
                watcher::Event::Apply(o) | watcher::Event::Delete(o) => before(o),
                _ => None,
            };
            let mut claims = claims.lock().unwrap_or_else(|p| p.into_inner());
            claims.observe(&event, held.as_deref());
            for (namespace, name) in claims.to_wake(&event, held.as_deref()) {
                let _ = neighbours.send(WakeTarget { namespace: namespace.into(), name: name.into() });
            }
            drop(claims);
            removals.observe(&event);
            event
        })
        .reflect(writer)
        .applied_objects()
        .try_filter(|o| futures::future::ready(o.changed))
        .map_ok(|o| o.named_only())
}

async fn reconcile(obj: Arc<Cached>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let result = pass::run(&ctx, obj).await;
    ctx.metrics.reconcile_took(started.elapsed());
    result
}

/// A Kubernetes call failed: try again with the object's backoff.
fn error_policy(obj: Arc<Cached>, _error: &Error, ctx: Arc<Context>) -> Action {
    let uid = obj.uid().unwrap_or_default();
    Action::requeue(ctx.pacing.after_kube_error(&uid, &ctx.timings))
}
