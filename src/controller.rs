//! Kubernetes glue: watch `EipSegment`s, gather what the cloud says, ask `decide`, perform the one
//! step, record status and events, requeue.

use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{SecondsFormat, Utc};
use futures::StreamExt;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as Finalizer};
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use crate::cloud::credentials::{
    Credentials, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SECURITY_TOKEN, Secret, StaticCredentials,
};
use crate::cloud::model::{Segment, SegmentStatus};
use crate::cloud::{Action as CloudAction, Admit, CloudError, ErrorClass, VpcClient};
use crate::crd::{EipSegment, EipSegmentStatus, FINALIZER, LastError};
use crate::decide::{self, Cloud, Facts, Finished, Observed, Pace, Step, Timings};
use crate::poller::{Change, Key, Poller, Seen, WakeTarget};
use crate::telemetry::Metrics;

pub const MANAGER: &str = "eipsegment-operator";

/// Objects waiting on the poller are woken when their segment changes; this is only the safety net
/// should a wake be lost.
const UNWOKEN_RECHECK: Duration = Duration::from_secs(60);

/// Names the operator's own credentials in poller keys.
const OWN_CREDENTIALS: &str = "operator";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Kubernetes API call failed")]
    Kube(#[source] kube::Error),
    #[error("the object has no {0}")]
    MissingMetadata(&'static str),
    /// Keeps the finalizer while a release is not yet confirmed; not a failure.
    #[error("release not yet confirmed; looking again in {0:?}")]
    ReleasePending(Duration),
    #[error("the cloud call failed: {0}")]
    Cloud(#[source] Arc<CloudError>, Duration),
    #[error(transparent)]
    Finalizer(#[from] Box<finalizer::Error<Error>>),
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
    /// Consecutive failures per object UID, for backoff; reset on success.
    failures: Mutex<HashMap<String, u32>>,
    /// UIDs whose release was requested and is not yet confirmed.
    releasing: Mutex<HashSet<String>>,
    /// UIDs whose segment was last seen allocated.
    ready: Mutex<HashSet<String>>,
    /// UIDs waiting for a place within a client-side rate, per (credentials, region, action).
    queued: Mutex<HashMap<(Key, CloudAction), HashSet<String>>>,
    pub poller: Arc<Poller>,
    /// Set when objects may name their credentials in a Secret of their namespace.
    pub secret_credentials: Option<SecretCredentials>,
}

/// Secret-referenced credentials: per object (`spec.credentialsSecretRef`) or per namespace (a
/// Secret of a fixed name), always in the object's own namespace.
#[derive(Clone, Debug)]
pub struct SecretCredentials {
    pub namespace_default: String,
}

impl Context {
    pub fn new(client: Client, vpc: VpcClient, timings: Timings, metrics: Arc<Metrics>, poller: Arc<Poller>) -> Self {
        let reporter = Reporter { controller: MANAGER.into(), instance: std::env::var("POD_NAME").ok() };
        Context {
            client,
            vpc,
            reporter,
            timings,
            metrics,
            failures: Mutex::new(HashMap::new()),
            releasing: Mutex::default(),
            ready: Mutex::default(),
            queued: Mutex::default(),
            poller,
            secret_credentials: None,
        }
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, HashMap<String, u32>> {
        self.failures.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn record_failure(&self, uid: &str) -> u32 {
        let mut map = self.failures();
        let n = map.entry(uid.to_string()).or_insert(0);
        *n += 1;
        *n
    }

    fn record_success(&self, uid: &str) {
        self.failures().remove(uid);
    }

    /// The client acting with the object's credentials, and a name for them: the Secret it names,
    /// else its namespace's default Secret, else the operator's own.
    async fn client_for(&self, obj: &EipSegment) -> Result<(String, VpcClient), CloudError> {
        let explicit = obj.spec.credentials_secret_ref.as_ref().map(|r| r.name.clone());
        let own = || (OWN_CREDENTIALS.to_string(), self.vpc.clone());
        let Some(config) = &self.secret_credentials else {
            return match explicit {
                Some(_) => Err(CloudError::Credentials(
                    "spec.credentialsSecretRef is set, but this operator does not read Secrets: enable Secret-referenced credentials".into(),
                )),
                None => Ok(own()),
            };
        };
        let namespace = obj.namespace().unwrap_or_default();
        let name = explicit.clone().unwrap_or_else(|| config.namespace_default.clone());
        let secrets: Api<k8s_openapi::api::core::v1::Secret> = Api::namespaced(self.client.clone(), &namespace);
        match secrets.get_opt(&name).await {
            Ok(Some(secret)) => {
                let credentials = credentials_from_secret(&secret).map_err(|missing| {
                    CloudError::Credentials(format!("Secret {namespace}/{name} has no {missing}"))
                })?;
                Ok((
                    format!("secret/{namespace}/{name}"),
                    self.vpc.with_credentials(Arc::new(StaticCredentials(credentials))),
                ))
            }
            Ok(None) if explicit.is_none() => Ok(own()),
            Ok(None) => Err(CloudError::Credentials(format!(
                "Secret {namespace}/{name} named by spec.credentialsSecretRef does not exist"
            ))),
            Err(e) => Err(CloudError::Credentials(format!("cannot read Secret {namespace}/{name}: {e}"))),
        }
    }

    /// Tracks the gauge of releases in flight.
    fn set_releasing(&self, uid: &str, releasing: bool) {
        let mut set = self.releasing.lock().unwrap_or_else(|p| p.into_inner());
        let changed = if releasing { set.insert(uid.to_string()) } else { set.remove(uid) };
        if changed {
            self.metrics.releases_in_flight.set(set.len() as i64);
        }
    }

    /// Tracks the gauge of objects whose segment is allocated.
    fn set_ready(&self, uid: &str, ready: bool) {
        let mut set = self.ready.lock().unwrap_or_else(|p| p.into_inner());
        let changed = if ready { set.insert(uid.to_string()) } else { set.remove(uid) };
        if changed {
            self.metrics.objects_ready.set(set.len() as i64);
        }
    }

    /// When an object that found no free place within the rate tries again: after the rate allows
    /// one, spread over the others waiting, so that they neither stampede nor leave places unused.
    fn queue(&self, key: &Key, action: CloudAction, uid: &str, after: Duration, period: Option<Duration>) -> Duration {
        let waiting = {
            let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
            let set = queued.entry((key.clone(), action)).or_default();
            set.insert(uid.to_string());
            set.len()
        };
        let spread = period.unwrap_or_default().mul_f64(waiting as f64 / 2.0);
        after + spread.mul_f64(rand::random::<f64>())
    }

    fn unqueue(&self, key: &Key, action: CloudAction, uid: &str) {
        let mut queued = self.queued.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(set) = queued.get_mut(&(key.clone(), action)) {
            set.remove(uid);
            if set.is_empty() {
                queued.remove(&(key.clone(), action));
            }
        }
    }

    fn requeue(&self, uid: &str, pace: Pace, hint: Option<Duration>) -> Duration {
        if pace == Pace::Poll {
            // The poller wakes the object when its segment changes.
            self.record_success(uid);
            return UNWOKEN_RECHECK;
        }
        let failures = match pace {
            Pace::Backoff(_) => self.record_failure(uid),
            _ => {
                self.record_success(uid);
                0
            }
        };
        decide::requeue_after(pace, failures, rand::random::<f64>(), hint, &self.timings)
    }
}

/// Options of the watch.
pub struct WatchScope {
    /// Watch these namespaces; all when empty.
    pub namespaces: Vec<String>,
    pub concurrency: u16,
}

/// Changes that call for a reconcile: the spec, deletion, finalizers. Status writes do not, so the
/// operator's own writes never wake it up.
fn relevant_change(obj: &EipSegment) -> Option<u64> {
    let mut h = std::collections::hash_map::DefaultHasher::new();
    obj.metadata.generation.hash(&mut h);
    obj.metadata.deletion_timestamp.as_ref().map(|t| t.0.to_string()).hash(&mut h);
    obj.metadata.finalizers.hash(&mut h);
    Some(h.finish())
}

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
    let unsynced = Arc::new(std::sync::atomic::AtomicUsize::new(namespaces.len()));
    let shutdown = futures::FutureExt::shared(Box::pin(shutdown));
    let mut routes = Vec::new();
    let controllers: Vec<_> = namespaces
        .into_iter()
        .map(|namespace| {
            let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<WakeTarget>();
            let api = match &namespace {
                None => Api::all(ctx.client.clone()),
                Some(ns) => Api::namespaced(ctx.client.clone(), ns),
            };
            routes.push((namespace, tx));
            let wakes = futures::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|t| (reflector::ObjectRef::new(&t.name).within(&t.namespace), rx))
            });
            run_one(ctx.clone(), api, scope.concurrency, wakes, unsynced.clone(), shutdown.clone())
        })
        .collect();
    tokio::spawn(route_wakes(woken, routes));
    futures::future::join_all(controllers).await;
}

async fn route_wakes(
    mut woken: tokio::sync::mpsc::UnboundedReceiver<WakeTarget>,
    routes: Vec<(Option<String>, tokio::sync::mpsc::UnboundedSender<WakeTarget>)>,
) {
    while let Some(target) = woken.recv().await {
        if let Some((_, tx)) = routes.iter().find(|(ns, _)| ns.as_deref().is_none_or(|ns| ns == target.namespace)) {
            let _ = tx.send(target);
        }
    }
}

async fn run_one(
    ctx: Arc<Context>,
    api: Api<EipSegment>,
    concurrency: u16,
    wakes: impl futures::Stream<Item = reflector::ObjectRef<EipSegment>> + Send + 'static,
    unsynced: Arc<std::sync::atomic::AtomicUsize>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    use std::sync::atomic::Ordering;
    let (reader, writer) = reflector::store();
    let synced = reader.clone();
    let metrics = ctx.metrics.clone();
    tokio::spawn(async move {
        // One long wait was seen to miss readiness while the controller also waits on the store;
        // a fresh wait each second does not.
        loop {
            match tokio::time::timeout(Duration::from_secs(1), synced.wait_until_ready()).await {
                Ok(Ok(())) => {
                    if unsynced.fetch_sub(1, Ordering::AcqRel) == 1 {
                        metrics.ready.store(true, Ordering::Relaxed);
                    }
                    break;
                }
                Ok(Err(_)) => break,
                Err(_) => continue,
            }
        }
    });
    let metrics = ctx.metrics.clone();
    // A consistent, paged list (500 objects a page) rather than one answer from the watch cache:
    // with many objects, one unpaged answer dominates the operator's peak memory.
    let stream = watcher(api, watcher::Config::default())
        .default_backoff()
        // The cache holds every object: without managedFields and kubectl's copy of the last
        // applied spec it is a fraction of the size.
        .modify(|obj| {
            obj.managed_fields_mut().clear();
            obj.annotations_mut().remove("kubectl.kubernetes.io/last-applied-configuration");
        })
        .reflect(writer)
        .applied_objects()
        .predicate_filter(relevant_change, Default::default());
    Controller::for_stream(stream, reader)
        .with_config(kube::runtime::controller::Config::default().concurrency(concurrency))
        .reconcile_on(wakes)
        .graceful_shutdown_on(shutdown)
        .run(reconcile, error_policy, ctx)
        .for_each(|result| {
            let metrics = metrics.clone();
            async move {
                match result {
                    Ok((obj, _)) => {
                        metrics.reconciled("success");
                        debug!(object = %obj.name, namespace = ?obj.namespace, "reconciled")
                    }
                    Err(kube::runtime::controller::Error::ReconcilerFailed(e, obj)) if is_pending(&e) => {
                        metrics.reconciled("pending");
                        debug!(object = %obj.name, "release pending")
                    }
                    Err(e) => {
                        metrics.reconciled("error");
                        warn!(error = %crate::error_chain(&e), "reconcile failed")
                    }
                }
            }
        })
        .await;
}

fn is_pending(e: &Error) -> bool {
    matches!(e, Error::Finalizer(b) if matches!(b.as_ref(), finalizer::Error::CleanupFailed(Error::ReleasePending(_))))
}

async fn reconcile(obj: Arc<EipSegment>, ctx: Arc<Context>) -> Result<Action, Error> {
    let namespace = obj.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<EipSegment> = Api::namespaced(ctx.client.clone(), &namespace);
    let started = std::time::Instant::now();
    let result = finalizer::finalizer(&api, FINALIZER, obj, |event| async {
        match event {
            Finalizer::Apply(obj) => converge(&api, &obj, &ctx, false).await,
            Finalizer::Cleanup(obj) => converge(&api, &obj, &ctx, true).await,
        }
    })
    .await
    .map_err(|e| Error::Finalizer(Box::new(e)));
    ctx.metrics.reconcile_took(started.elapsed());
    result
}

fn error_policy(obj: Arc<EipSegment>, error: &Error, ctx: Arc<Context>) -> Action {
    let inner = match error {
        Error::Finalizer(b) => match b.as_ref() {
            finalizer::Error::CleanupFailed(e) | finalizer::Error::ApplyFailed(e) => e,
            _ => error,
        },
        e => e,
    };
    match inner {
        Error::ReleasePending(after) => Action::requeue(*after),
        Error::Cloud(_, after) => Action::requeue(*after),
        _ => {
            let uid = obj.uid().unwrap_or_default();
            Action::requeue(ctx.requeue(&uid, Pace::Backoff(ErrorClass::Transient), None))
        }
    }
}

/// One pass: look, decide, act, record. `deleting` passes run under the finalizer: their `Ok` lets
/// the object go, so waiting for the cloud returns `ReleasePending` instead.
async fn converge(api: &Api<EipSegment>, obj: &EipSegment, ctx: &Context, deleting: bool) -> Result<Action, Error> {
    let uid = obj.uid().ok_or(Error::MissingMetadata("uid"))?;
    let name = obj.name_any();
    let before = obj.status.clone().unwrap_or_default();
    let mut status = before.clone();
    status.observed_generation = obj.metadata.generation;
    let policy = obj.spec.effective_deletion_policy();
    status.deletion_policy = Some(policy.as_str().to_string());
    let region = obj.spec.region_id.as_str();
    let target = WakeTarget { namespace: obj.namespace().unwrap_or_default(), name: name.clone() };
    // Retain needs no cloud call, so not even credentials: a deleted Secret cannot block it.
    let retaining = deleting && policy == crate::crd::DeletionPolicy::Retain;
    let look_at = if retaining { None } else { decide::segment_to_look_at(&obj.spec, &status) };
    // Likewise when nothing was ever requested: the object goes without a call.
    let needs_cloud = !retaining
        && (look_at.is_some()
            || !matches!(
                decide::decide(&Facts { spec: &obj.spec, status: &status, deleting, cloud: &Cloud::NothingToLookAt }),
                Step::Finish(_)
            ));
    let (credentials, vpc) = if !needs_cloud {
        (OWN_CREDENTIALS.to_string(), ctx.vpc.clone())
    } else {
        match ctx.client_for(obj).await {
            Ok(found) => found,
            Err(e) => return fail(api, ctx, obj, &name, &before, status, Arc::new(e), "Credentials", deleting).await,
        }
    };
    let key = Key { account: credentials, region: region.to_string() };
    let wait = |after: Duration| if deleting { Err(Error::ReleasePending(after)) } else { Ok(Action::requeue(after)) };

    let (cloud, look_error) = match look_at {
        None => (Cloud::NothingToLookAt, None),
        // Settled segments stay under drift checks; one being deleted only awaits its release.
        Some(id) => match ctx.poller.look(&key, &vpc, id, target.clone(), !deleting) {
            None => {
                debug!(object = %name, segment = id, "waiting for a look at the segment");
                return wait(UNWOKEN_RECHECK);
            }
            Some(observation) => match observation.seen {
                Seen::Present(seg) => (Cloud::Found(seg), None),
                Seen::Absent => (Cloud::Missing, None),
                Seen::Failed(e) => (Cloud::LookFailed(e.class()), Some(e)),
            },
        },
    };
    let step =
        decide::with_tokens(decide::decide(&Facts { spec: &obj.spec, status: &status, deleting, cloud: &cloud }), &uid);
    debug!(object = %name, ?step, "decided");

    match step {
        Step::Allocate { token } => {
            let turn = Turn { api, ctx, obj, vpc: &vpc, key: &key, before: &before, deleting };
            let admission = match turn.take(CloudAction::AllocateEipSegmentAddress, &mut status).await {
                Ok(admission) => admission,
                Err(outcome) => return outcome,
            };
            status.allocation_token = Some(token.clone());
            let mut recorded = before.clone();
            if status.allocation_requested_at.is_none() {
                // The marker goes in before the call: a crash after it cannot leak the segment.
                status.allocation_requested_at = Some(now());
                write_status(api, &name, &before, &status).await?;
                recorded = status.clone();
                publish(
                    ctx,
                    obj,
                    EventType::Normal,
                    "AllocationRequested",
                    "Allocate",
                    format!("requesting a /{} segment in {region}", obj.spec.eip_mask.unwrap_or(28)),
                )
                .await;
            }
            match vpc.allocate(&obj.spec.allocate_request(&token), admission).await {
                Ok(resp) => {
                    info!(object = %name, segment = %resp.eip_segment_instance_id, "allocation accepted");
                    ctx.poller.changing(&key, &vpc, &resp.eip_segment_instance_id, Change::Allocating, target);
                    status.segment_instance_id = Some(resp.eip_segment_instance_id.clone());
                    status.cloud_status = Some("Allocating".into());
                    status.last_error = None;
                    set_synced(&mut status, None);
                    set_ready(
                        &mut status,
                        false,
                        "Allocating",
                        &format!("segment {} is being allocated", resp.eip_segment_instance_id),
                    );
                    write_status(api, &name, &recorded, &status).await?;
                    wait(ctx.requeue(&uid, Pace::Poll, None))
                }
                Err(e) => {
                    let c = e.classification();
                    if !decide::allocation_may_have_landed(c.class, e.is_ambiguous(), e.code()) {
                        status.allocation_requested_at = None;
                    }
                    fail(api, ctx, obj, &name, &recorded, status, Arc::new(e), "Allocate", deleting).await
                }
            }
        }
        Step::Release { segment_id, token } => {
            let turn = Turn { api, ctx, obj, vpc: &vpc, key: &key, before: &before, deleting };
            let admission = match turn.take(CloudAction::ReleaseEipSegmentAddress, &mut status).await {
                Ok(admission) => admission,
                Err(outcome) => return outcome,
            };
            status.release_token = Some(token.clone());
            if status.release_requested_at.is_none() {
                status.release_requested_at = Some(now());
            }
            write_status(api, &name, &before, &status).await?;
            let recorded = status.clone();
            match vpc.release(region, &segment_id, &token, admission).await {
                Ok(request_id) => {
                    info!(object = %name, segment = %segment_id, %request_id, "release accepted");
                    ctx.poller.changing(&key, &vpc, &segment_id, Change::Releasing, target);
                    ctx.set_releasing(&uid, true);
                    ctx.set_ready(&uid, false);
                    status.cloud_status = Some("Releasing".into());
                    status.last_error = None;
                    set_synced(&mut status, None);
                    set_ready(
                        &mut status,
                        false,
                        "Releasing",
                        &format!("release of {segment_id} requested; waiting for the cloud to confirm"),
                    );
                    write_status(api, &name, &recorded, &status).await?;
                    publish(
                        ctx,
                        obj,
                        EventType::Normal,
                        "ReleaseRequested",
                        "Release",
                        format!("release of {segment_id} accepted (RequestId {request_id})"),
                    )
                    .await;
                    Err(Error::ReleasePending(ctx.requeue(&uid, Pace::Poll, None)))
                }
                // Gone already: a fresh look confirms it.
                Err(e) if decide::after_refused_release(e.class()) == decide::AfterRefusedRelease::Confirm => {
                    ctx.poller.refresh(&key, &vpc, &segment_id, target);
                    Err(Error::ReleasePending(UNWOKEN_RECHECK))
                }
                Err(e) => {
                    let e = name_blockers(&vpc, region, &segment_id, e).await;
                    fail(api, ctx, obj, &name, &recorded, status, Arc::new(e), "Release", deleting).await
                }
            }
        }
        Step::Finish(finished) => {
            let (reason, note) = match &finished {
                Finished::Released { segment_id } => {
                    ("Released", format!("segment {segment_id} is released: the cloud no longer returns it"))
                }
                Finished::Retained { segment_id: Some(id) } => {
                    ("Retained", format!("deletion policy Retain: segment {id} was kept in the cloud"))
                }
                Finished::Retained { segment_id: None } => {
                    ("Retained", "deletion policy Retain: nothing released".to_string())
                }
                Finished::NothingAllocated => {
                    ("Released", "no segment was ever allocated: nothing to release".to_string())
                }
            };
            if let Finished::Released { .. } = finished {
                status.cloud_status = Some("Released".into());
                let requested =
                    status.release_requested_at.as_deref().and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok());
                if let Some(requested) = requested {
                    ctx.metrics
                        .release_confirmed((Utc::now() - requested.with_timezone(&Utc)).to_std().unwrap_or_default());
                }
            }
            if let Some(id) = decide::segment_to_look_at(&obj.spec, &status) {
                ctx.poller.forget(&key, id, &target);
            }
            ctx.set_releasing(&uid, false);
            ctx.set_ready(&uid, false);
            for action in [CloudAction::AllocateEipSegmentAddress, CloudAction::ReleaseEipSegmentAddress] {
                ctx.unqueue(&key, action, &uid);
            }
            info!(object = %name, reason, "{note}");
            publish(ctx, obj, EventType::Normal, reason, "Finalize", note).await;
            ctx.record_success(&uid);
            Ok(Action::await_change())
        }
        Step::Wait { observed, pace } => {
            let hint = look_error.as_ref().and_then(|e| e.retry_after());
            ctx.set_ready(&uid, matches!(observed, Observed::Ready(_)));
            match &observed {
                Observed::Ready(seg) => {
                    record_segment(&mut status, seg);
                    status.allocation_requested_at = None;
                    let (reason, message) = if obj.spec.adopts() {
                        ("Adopted", format!("adopted segment {} ({})", seg.instance_id, seg.segment))
                    } else {
                        ("Allocated", format!("segment {} ({}) is allocated", seg.instance_id, seg.segment))
                    };
                    if !is_ready(&before) {
                        publish(ctx, obj, EventType::Normal, reason, "Observe", message.clone()).await;
                    }
                    set_ready(&mut status, true, reason, &message);
                }
                Observed::Changing(seg) | Observed::Releasing(seg) => {
                    if deleting && seg.status == SegmentStatus::Releasing {
                        ctx.set_releasing(&uid, true);
                    }
                    record_segment(&mut status, seg);
                    let msg = format!("segment {} is {}", seg.instance_id, seg.status.as_str());
                    set_ready(&mut status, false, seg.status.as_str(), &msg);
                }
                Observed::Drifted { segment_id } => {
                    status.cloud_status = Some("Missing".into());
                    let msg = format!(
                        "segment {segment_id} no longer exists in the cloud (released outside this operator); it is not re-created: delete this object, or recreate it to allocate a new segment"
                    );
                    if ready_reason(&before).as_deref() != Some("SegmentMissing") {
                        publish(ctx, obj, EventType::Warning, "Drifted", "Observe", msg.clone()).await;
                    }
                    set_ready(&mut status, false, "SegmentMissing", &msg);
                }
                Observed::AdoptionTargetMissing { segment_id } => {
                    let msg = format!(
                        "segment {segment_id} to adopt does not exist in region {region}: check spec.segmentInstanceId and spec.regionId"
                    );
                    if ready_reason(&before).as_deref() != Some("AdoptionTargetNotFound") {
                        publish(ctx, obj, EventType::Warning, "AdoptionFailed", "Adopt", msg.clone()).await;
                    }
                    set_ready(&mut status, false, "AdoptionTargetNotFound", &msg);
                }
                Observed::LookFailed => {}
            }
            if let Some(e) = look_error {
                let after = ctx.requeue(&uid, pace, hint);
                return fail_with(api, ctx, obj, &name, &before, status, e, "Describe", deleting, after).await;
            }
            status.last_error = None;
            set_synced(&mut status, None);
            write_status(api, &name, &before, &status).await?;
            wait(ctx.requeue(&uid, pace, hint))
        }
    }
}

/// What an object's mutating call needs to wait for its place within the client-side rate.
struct Turn<'a> {
    api: &'a Api<EipSegment>,
    ctx: &'a Context,
    obj: &'a EipSegment,
    vpc: &'a VpcClient,
    key: &'a Key,
    before: &'a EipSegmentStatus,
    deleting: bool,
}

impl Turn<'_> {
    /// A place for the call now; or, when others are ahead, the status says so and the object
    /// comes back later, without holding a worker meanwhile.
    async fn take(
        &self,
        action: CloudAction,
        status: &mut EipSegmentStatus,
    ) -> Result<crate::cloud::Admission, Result<Action, Error>> {
        let Turn { api, ctx, obj, vpc, key, before, deleting } = *self;
        let uid = obj.uid().unwrap_or_default();
        let name = obj.name_any();
        let (queued, label) = match action {
            CloudAction::AllocateEipSegmentAddress => ("AllocationQueued", "Allocate"),
            _ => ("ReleaseQueued", "Release"),
        };
        match vpc.admit(action, &key.region).await {
            Admit::Granted(admission) => {
                ctx.unqueue(key, action, &uid);
                Ok(admission)
            }
            Admit::NotYet(after) => {
                set_ready(status, false, queued, &queued_message(vpc, action));
                if let Err(e) = write_status(api, &name, before, status).await {
                    return Err(Err(e));
                }
                let after = ctx.queue(key, action, &uid, after, vpc.rate_period(action));
                Err(if deleting { Err(Error::ReleasePending(after)) } else { Ok(Action::requeue(after)) })
            }
            Admit::Failed(e) => {
                Err(fail(api, ctx, obj, &name, before, status.clone(), Arc::new(e), label, deleting).await)
            }
        }
    }
}

/// Why an object waits before its call: the client-side rate, and what it is.
fn queued_message(vpc: &VpcClient, action: CloudAction) -> String {
    let rate = vpc
        .rate_period(action)
        .map(|p| format!(" ({:.2} calls/s per credentials and region)", 1.0 / p.as_secs_f64()))
        .unwrap_or_default();
    format!("waiting for a place within the client-side rate limit of {action}{rate}; other objects are ahead")
}

/// The standard variable names as keys, so one Secret serves `envFrom` and references alike.
fn credentials_from_secret(secret: &k8s_openapi::api::core::v1::Secret) -> Result<Credentials, &'static str> {
    let data = secret.data.clone().unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let access_key_id = text(ENV_ACCESS_KEY_ID).ok_or(ENV_ACCESS_KEY_ID)?;
    let secret_key = text(ENV_ACCESS_KEY_SECRET).ok_or(ENV_ACCESS_KEY_SECRET)?;
    Ok(Credentials {
        access_key_id,
        access_key_secret: Secret::new(secret_key),
        security_token: text(ENV_SECURITY_TOKEN).map(Secret::new),
    })
}

fn record_segment(status: &mut EipSegmentStatus, seg: &Segment) {
    status.segment_instance_id = Some(seg.instance_id.clone());
    if !seg.segment.is_empty() {
        status.segment = Some(seg.segment.clone());
    }
    if seg.ip_count.is_some() {
        status.ip_count = seg.ip_count;
    }
    status.cloud_status = Some(seg.status.as_str().to_string());
    if seg.status == SegmentStatus::Releasing && status.release_requested_at.is_none() {
        debug!(segment = %seg.instance_id, "segment is releasing without a request from this object");
    }
}

/// For a release blocked by member EIPs, names them (DescribeEipAddresses) in the error's advice.
async fn name_blockers(vpc: &VpcClient, region: &str, segment_id: &str, e: CloudError) -> CloudError {
    let wants_names = matches!(
        e.code(),
        "OperationFailed.EipStatusInvalid" | "IncorrectEipStatus" | "OperationFailed.EipInBwp" | "Forbidden.EipInBwp"
    );
    if !wants_names {
        return e;
    }
    let Ok(members) = vpc.describe_segment_members(region, segment_id).await else { return e };
    let blockers: Vec<String> = members
        .iter()
        .filter(|m| m.status != "Available" || !m.bandwidth_package_id.is_empty())
        .take(5)
        .map(|m| {
            let bound = if m.instance_id.is_empty() { String::new() } else { format!(" bound to {}", m.instance_id) };
            let bwp = if m.bandwidth_package_id.is_empty() {
                String::new()
            } else {
                format!(" in {}", m.bandwidth_package_id)
            };
            format!("{} ({}, {}{bound}{bwp})", m.ip_address, m.allocation_id, m.status)
        })
        .collect();
    if blockers.is_empty() {
        return e;
    }
    match e {
        CloudError::Api { action, http_status, code, message, request_id, retry_after } => CloudError::Api {
            action,
            http_status,
            code,
            message: format!("{message} Blocking member EIPs: {}", blockers.join(", ")),
            request_id,
            retry_after,
        },
        other => other,
    }
}

#[allow(clippy::too_many_arguments)]
async fn fail(
    api: &Api<EipSegment>,
    ctx: &Context,
    obj: &EipSegment,
    name: &str,
    before: &EipSegmentStatus,
    status: EipSegmentStatus,
    e: Arc<CloudError>,
    action: &str,
    deleting: bool,
) -> Result<Action, Error> {
    let uid = obj.uid().unwrap_or_default();
    let after = ctx.requeue(&uid, Pace::Backoff(e.class()), e.retry_after());
    fail_with(api, ctx, obj, name, before, status, e, action, deleting, after).await
}

/// Records a failed cloud call in status (and, unless it is passing, in a Warning event) and retries later.
#[allow(clippy::too_many_arguments)]
async fn fail_with(
    api: &Api<EipSegment>,
    ctx: &Context,
    obj: &EipSegment,
    name: &str,
    before: &EipSegmentStatus,
    mut status: EipSegmentStatus,
    e: Arc<CloudError>,
    action: &str,
    deleting: bool,
    after: Duration,
) -> Result<Action, Error> {
    let c = e.classification();
    let detail = match e.as_ref() {
        CloudError::Api { message, .. } => format!("{}: {} ({message})", e.code(), c.advice),
        CloudError::Credentials(message) => format!("{}: {message}", e.code()),
        CloudError::Sts { message, .. } => format!("{}: {} ({message})", e.code(), c.advice),
        _ => format!("{}: {}", e.code(), c.advice),
    };
    let last = LastError {
        class: c.class.as_str().into(),
        code: e.code().into(),
        message: detail.clone(),
        request_id: e.request_id().map(str::to_string),
        action: action.into(),
    };
    let segment = status.segment_instance_id.as_deref().or(obj.spec.segment_instance_id.as_deref()).unwrap_or("");
    warn!(object = %name, segment, action, class = c.class.as_str(), code = e.code(), request_id = e.request_id().unwrap_or(""), retry_in = ?after, "{detail}");
    let changed = status.last_error.as_ref().map(|l| (&l.code, &l.action)) != Some((&last.code, &last.action));
    set_synced(&mut status, Some((c.class, &detail)));
    status.last_error = Some(last);
    write_status(api, name, before, &status).await?;
    if changed && c.class != ErrorClass::Transient {
        let reason = match (action, c.class) {
            ("Release", ErrorClass::Blocked) => "ReleaseBlocked",
            ("Release", _) => "ReleaseFailed",
            ("Allocate", _) => "AllocationFailed",
            ("Credentials", _) => "CredentialsUnavailable",
            _ => "CloudError",
        };
        publish(ctx, obj, EventType::Warning, reason, action, detail).await;
    }
    if deleting { Err(Error::Cloud(e, after)) } else { Ok(Action::requeue(after)) }
}

fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn condition<'a>(status: &'a EipSegmentStatus, type_: &str) -> Option<&'a Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

fn is_ready(status: &EipSegmentStatus) -> bool {
    condition(status, "Ready").is_some_and(|c| c.status == "True")
}

fn ready_reason(status: &EipSegmentStatus) -> Option<String> {
    condition(status, "Ready").map(|c| c.reason.clone())
}

/// Sets a condition; `lastTransitionTime` moves only when the condition's status does.
fn set_condition(status: &mut EipSegmentStatus, type_: &str, value: bool, reason: &str, message: &str) {
    let value = if value { "True" } else { "False" };
    let generation = status.observed_generation;
    let transition = match condition(status, type_) {
        Some(c) if c.status == value => c.last_transition_time.clone(),
        _ => Time(k8s_openapi::jiff::Timestamp::now()),
    };
    status.conditions.retain(|c| c.type_ != type_);
    status.conditions.push(Condition {
        type_: type_.into(),
        status: value.into(),
        reason: reason.into(),
        message: message.chars().take(1000).collect(),
        last_transition_time: transition,
        observed_generation: generation,
    });
    status.conditions.sort_by(|a, b| a.type_.cmp(&b.type_));
}

fn set_ready(status: &mut EipSegmentStatus, ready: bool, reason: &str, message: &str) {
    set_condition(status, "Ready", ready, reason, message);
}

fn set_synced(status: &mut EipSegmentStatus, error: Option<(ErrorClass, &str)>) {
    match error {
        None => set_condition(status, "Synced", true, "Succeeded", "the last cloud call succeeded"),
        Some((class, message)) => set_condition(status, "Synced", false, class.as_str(), message),
    }
}

/// Server-side apply of the whole status, skipped when nothing changed.
async fn write_status(
    api: &Api<EipSegment>,
    name: &str,
    before: &EipSegmentStatus,
    status: &EipSegmentStatus,
) -> Result<(), Error> {
    if before == status {
        return Ok(());
    }
    let patch = json!({
        "apiVersion": EipSegment::api_version(&()),
        "kind": EipSegment::kind(&()),
        "status": status,
    });
    api.patch_status(name, &PatchParams::apply(MANAGER).force(), &Patch::Apply(&patch)).await.map_err(Error::Kube)?;
    Ok(())
}

async fn publish(ctx: &Context, obj: &EipSegment, type_: EventType, reason: &str, action: &str, note: String) {
    let event = Event { type_, reason: reason.into(), note: Some(note), action: action.into(), secondary: None };
    let recorder = Recorder::new(ctx.client.clone(), ctx.reporter.clone());
    if let Err(e) = recorder.publish(&event, &obj.object_ref(&())).await {
        warn!(object = %obj.name_any(), reason, error = %e, "could not publish event");
    }
}
