//! One reconcile of one object: gather what the lifecycle asks for, perform its move, record it.

use std::sync::Arc;

use chrono::{SecondsFormat, Utc};
use kube::ResourceExt;
use kube::api::{Api, ListParams};
use kube::runtime::controller::Action;
use tracing::{debug, info, warn};

use super::credentials::{self, Resolved, problem_of};
use super::pacing::Counted;
use super::writes::{self, Precondition};
use super::{Cached, Context, Error};
use crate::cloud::model::Action as CloudAction;
use crate::cloud::{Admission, CloudError, VpcClient};
use crate::crd::{EipSegment, FINALIZER, SegmentAddress};
use crate::lifecycle::conditions::{self, is_ready};
use crate::lifecycle::{
    self, Call, Claimant, Decision, Facts, Look, Move, Need, Next, Object, Outcome, Problem, SecretUse, Seen, Watch,
};
use crate::poller::{self, Key, WakeTarget};
use crate::quota::{QueueName, Turn};
use vpc_api::ErrorClass;

pub async fn run(ctx: &Context, cached: Arc<Cached>) -> Result<Action, Error> {
    let obj = cached.object()?;
    let namespace = obj.namespace().ok_or(Error::MissingMetadata("namespace"))?;
    let api: Api<EipSegment> = Api::namespaced(ctx.client.clone(), &namespace);
    let has_finalizer = obj.finalizers().iter().any(|f| f == FINALIZER);
    let obj = match (obj.metadata.deletion_timestamp.is_some(), has_finalizer) {
        // Nothing of ours to do: the object goes without us.
        (true, false) => return Ok(Action::await_change()),
        // The finalizer goes on before anything is asked of the cloud.
        (false, false) => writes::add_finalizer(&api, &obj).await?,
        _ => obj,
    };
    let mut pass = Pass::new(ctx, api, obj)?;
    let mut decided = pass.decide().await?;
    // Right before a call, the other objects naming the segment are looked at again: one that
    // appeared since the decision makes it decide again.
    if let Some(call) = &decided.call
        && pass.claims_changed(matches!(call, Call::Release { .. })).await?
    {
        decided = pass.decide().await?;
    }
    match pass.perform(decided).await {
        // The object changed since it was read (or the cache had not caught up with the last
        // write): no call went out on that read, and what a call did is learned again (same
        // token, or a fresh look). Decide again on the object as it is.
        Err(e) if writes::is_conflict(&e) => {
            debug!(object = %pass.object.name, "the object changed since it was read; deciding again");
            Ok(Action::requeue(CHANGED_RETRY))
        }
        other => other,
    }
}

/// How many times a pass tries to record a sent call's outcome on an object that keeps changing.
const RECORD_ATTEMPTS: u32 = 5;

/// How soon a pass whose object changed under it is made again.
const CHANGED_RETRY: std::time::Duration = std::time::Duration::from_millis(500);

struct Pass<'c> {
    ctx: &'c Context,
    api: Api<EipSegment>,
    /// The object as last read or written in this pass.
    obj: EipSegment,
    object: Object,
    target: WakeTarget,
    /// The segment asked about, and the other objects that named it.
    claims: Option<(String, Vec<Claimant>)>,
    credentials: Option<Resolved>,
    look: Option<Look>,
    members: Option<Result<Vec<SegmentAddress>, Problem>>,
    outcome: Option<Outcome>,
    /// A mutating call went out (or may have): what it did must be recorded.
    sent: bool,
}

impl<'c> Pass<'c> {
    fn new(ctx: &'c Context, api: Api<EipSegment>, obj: EipSegment) -> Result<Pass<'c>, Error> {
        let object = object_of(ctx, &obj)?;
        let target = WakeTarget { namespace: object.namespace.clone(), name: object.name.clone() };
        Ok(Pass {
            ctx,
            api,
            obj,
            object,
            target,
            claims: None,
            credentials: None,
            look: None,
            members: None,
            outcome: None,
            sent: false,
        })
    }

    /// Asks the lifecycle until it has every fact it needs.
    async fn decide(&mut self) -> Result<Move, Error> {
        loop {
            let facts = Facts {
                object: &self.object,
                claims: self.claims.as_ref().map(|(_, c)| c.as_slice()),
                credentials: self.credentials.as_ref().map(|c| &c.fact),
                look: self.look.as_ref(),
                members: self.members.as_ref(),
                outcome: self.outcome.as_ref(),
            };
            match lifecycle::decide(&facts) {
                Decision::Act(m) => return Ok(m),
                Decision::Need(need) => {
                    debug!(object = %self.object.name, ?need, "gathering");
                    self.gather(need).await?
                }
            }
        }
    }

    async fn gather(&mut self, need: Need) -> Result<(), Error> {
        match need {
            Need::Claims { segment_id } => {
                let claims = self.claimants(&segment_id)?;
                self.claims = Some((segment_id, claims))
            }
            Need::Credentials(choice) => {
                let (namespace, region) = (&self.object.namespace, &self.object.spec.region_id);
                self.credentials = Some(credentials::resolve(self.ctx, namespace, region, &choice).await)
            }
            Need::Look { segment_id, drift } => self.look = Some(self.observe(&segment_id, drift)),
            Need::Members { segment_id } => self.members = Some(self.members(&segment_id).await),
        }
        Ok(())
    }

    async fn members(&self, segment_id: &str) -> Result<Vec<SegmentAddress>, Problem> {
        let Some((client, key)) = self.acting() else {
            return Err(problem_of(&CloudError::Credentials("no credentials".into())));
        };
        let members = client.describe_segment_members(&key.region, segment_id).await.map_err(|e| problem_of(&e))?;
        Ok(members
            .into_iter()
            .map(|m| SegmentAddress { allocation_id: m.allocation_id, ip_address: m.ip_address })
            .collect())
    }

    /// Whether the claims on the segment changed since they were gathered (then they are replaced).
    /// Before a release, those of the object's own namespace, the only ones that can keep the
    /// segment from it, are read from the apiserver: the cache may not show an object created a
    /// moment ago.
    async fn claims_changed(&mut self, releasing: bool) -> Result<bool, Error> {
        let Some((id, before)) = &self.claims else { return Ok(false) };
        let id = id.clone();
        let mut now = if releasing { self.claimants_read_now(&id).await? } else { self.claimants(&id)? };
        let mut before = before.clone();
        for claims in [&mut now, &mut before] {
            claims.sort_by(|a, b| (&a.namespace, &a.name, &a.uid).cmp(&(&b.namespace, &b.name, &b.uid)));
        }
        if now == before {
            return Ok(false);
        }
        self.claims = Some((id, now));
        Ok(true)
    }

    /// The claimants of other namespaces as the cache shows them, and those of the object's own as
    /// the apiserver lists them now (a quorum read).
    async fn claimants_read_now(&self, segment_id: &str) -> Result<Vec<Claimant>, Error> {
        let namespace = &self.object.namespace;
        let listed = self.api.list(&ListParams::default()).await.map_err(Error::Kube)?;
        let mut claims: Vec<Claimant> =
            self.claimants(segment_id)?.into_iter().filter(|c| c.namespace != *namespace).collect();
        let uid = &self.object.uid;
        claims.extend(
            listed
                .items
                .iter()
                .filter(|o| o.uid().as_ref() != Some(uid) && self.names(o, segment_id))
                .map(|o| claimant(o, segment_id)),
        );
        Ok(claims)
    }

    /// The other cached objects that name the segment: in spec, in status, or in an identity
    /// annotation the operator proves it wrote.
    fn claimants(&self, segment_id: &str) -> Result<Vec<Claimant>, Error> {
        let uid = &self.object.uid;
        let naming = self.ctx.naming(segment_id).iter().map(|o| o.object()).collect::<Result<Vec<_>, _>>()?;
        Ok(naming
            .iter()
            .filter(|o| o.uid().as_ref() != Some(uid) && self.names(o, segment_id))
            .map(|o| claimant(o, segment_id))
            .collect())
    }

    fn names(&self, o: &EipSegment, segment_id: &str) -> bool {
        let status = o.status.as_ref();
        let annotated = || {
            let namespace = o.namespace().unwrap_or_default();
            let proven = self.ctx.identity.read(&namespace, &o.name_any(), o.annotations(), status);
            proven.identity.segment_id.as_deref() == Some(segment_id)
        };
        o.spec.segment_instance_id.as_deref() == Some(segment_id)
            || status.and_then(|s| s.segment_instance_id.as_deref()) == Some(segment_id)
            || annotated()
    }

    /// The client and poller key of the credentials in force, when their account is known.
    fn acting(&self) -> Option<(&VpcClient, Key)> {
        let resolved = self.credentials.as_ref()?;
        let account = resolved.fact.account.as_ref().ok()?;
        Some((resolved.client.as_ref()?, Key { account: account.clone(), region: self.object.spec.region_id.clone() }))
    }

    fn observe(&self, segment_id: &str, drift: bool) -> Look {
        let Some((client, key)) = self.acting() else { return Look::Pending };
        match self.ctx.poller.look(&key, client, segment_id, self.target.clone(), drift) {
            None => Look::Pending,
            Some(observation) => Look::Seen { account: key.account, seen: seen_of(observation.seen) },
        }
    }

    /// Performs the move: with a call, the writes before it, the call, then the move its outcome
    /// decides; without, just the writes and what follows.
    async fn perform(&mut self, m: Move) -> Result<Action, Error> {
        let Some(call) = m.call.clone() else { return self.record(m).await };
        let admission = match self.admit(&call).await {
            Ok(admission) => admission,
            Err(outcome) => {
                self.outcome = Some(outcome);
                let after = self.decide().await?;
                return self.record(after).await;
            }
        };
        self.write(&m, Precondition::Checked).await?;
        // Only now is the place used: a pass stopped by its write keeps the object's turn, so that
        // the place it gives back is not left to objects asleep until a later window.
        self.ctx.queues.leave(&self.object.uid);
        // Before the events that announce the call: a deposed replica says nothing.
        self.ctx.prove_leadership().await?;
        for event in m.warning.iter().chain(&m.event) {
            writes::publish(self.ctx, &self.obj, event).await;
        }
        let outcome = self.call(call, admission).await;
        self.sent = true;
        self.outcome = Some(outcome);
        self.object.status = m.status;
        self.object.annotations = m.identity;
        let after = self.decide().await?;
        if after.call.is_some() {
            warn!(object = %self.object.name, "a second call in one pass is not made");
        }
        self.record(after).await
    }

    async fn admit(&self, call: &Call) -> Result<Admission, Outcome> {
        let Some((client, key)) = self.acting() else {
            return Err(Outcome::Refused(problem_of(&CloudError::Credentials("no credentials".into()))));
        };
        let action = action_of(call);
        let answer = client.admit(action, &key.region).await;
        let queue = QueueName { account: key.account, region: key.region, action };
        match self.ctx.queues.turn(&queue, &self.object.uid, &self.target, answer, client.quota(action)) {
            Turn::Go(admission) => Ok(admission),
            Turn::Wait { after, why } => Err(Outcome::NotAdmitted { after, why }),
            Turn::Failed(e) => Err(Outcome::Refused(problem_of(&e))),
        }
    }

    async fn call(&self, call: Call, admission: Admission) -> Outcome {
        let Some((client, _)) = self.acting() else {
            return Outcome::Refused(problem_of(&CloudError::Credentials("no credentials".into())));
        };
        match call {
            Call::Allocate(request) => match client.allocate(&request, admission).await {
                Ok(resp) => {
                    info!(object = %self.object.name, segment = %resp.eip_segment_instance_id, "allocation accepted");
                    Outcome::Allocated { segment_id: resp.eip_segment_instance_id }
                }
                Err(e) => Outcome::Refused(problem_of(&e)),
            },
            Call::Release { region, segment_id, token } => {
                match client.release(&region, &segment_id, &token, admission).await {
                    Ok(request_id) => {
                        info!(object = %self.object.name, segment = %segment_id, %request_id, "release accepted");
                        Outcome::ReleaseAccepted { request_id }
                    }
                    Err(e) => Outcome::Refused(problem_of(&name_blockers(client, &region, &segment_id, e).await)),
                }
            }
        }
    }

    /// The move's writes: status, identity annotations, the hold on the Secret. Status first: it is
    /// the operator's record, and a crash before the annotations follow leaves them behind it, which
    /// the next pass completes; annotations ahead of status would read as a restore.
    async fn write(&mut self, m: &Move, precondition: Precondition) -> Result<(), Error> {
        if let Some(written) = writes::write_status(&self.api, &self.obj, &m.status, precondition).await? {
            self.obj = written;
        }
        if let Some(written) = writes::write_identity(&self.api, &self.obj, &m.identity, &self.ctx.identity).await? {
            self.obj = written;
        }
        if let SecretUse::Hold(name) = &m.secret {
            let secret = self.credentials.as_ref().and_then(|c| c.secret.as_ref());
            writes::hold_secret(self.ctx, &self.object.namespace, name, &self.object.name, secret).await;
        }
        Ok(())
    }

    /// Writes the move (a finish lets go of the Secret, then of the object), tells the poller,
    /// publishes the event, and says when to come back.
    async fn record(&mut self, m: Move) -> Result<Action, Error> {
        let m = self.write_recorded(m).await?;
        if m.next == Next::Finish {
            if let SecretUse::LetGo(name) = &m.secret {
                writes::let_go_secret(self.ctx, &self.object.namespace, name, &self.object.name).await?;
            }
            writes::remove_finalizer(&self.api, &self.obj).await?;
        }
        if let Some(watch) = &m.watch {
            self.tell_poller(watch, &m);
        }
        if let Some(warning) = &m.warning {
            writes::publish(self.ctx, &self.obj, warning).await;
        }
        if let Some(event) = &m.event {
            if m.next == Next::Finish {
                info!(object = %self.object.name, reason = event.reason, "{}", event.note);
            }
            writes::publish(self.ctx, &self.obj, event).await;
        }
        Ok(self.next(&m))
    }

    /// Writes the move. Without a call sent, a conflict ends the pass: nothing happened that the
    /// next pass, deciding afresh, would not learn. After a sent call its outcome must be recorded:
    /// the move is decided again, with that outcome, on the object as it is now, so that nothing
    /// the older read lacked (an ID recorded since, an edited spec) is undone.
    async fn write_recorded(&mut self, mut m: Move) -> Result<Move, Error> {
        let mut attempts = 1;
        loop {
            match self.write(&m, Precondition::IfChanged).await {
                Err(e) if self.sent && writes::is_conflict(&e) && attempts < RECORD_ATTEMPTS => {
                    attempts += 1;
                    let fresh = self.api.get(&self.object.name).await.map_err(Error::Kube)?;
                    self.object = object_of(self.ctx, &fresh)?;
                    self.obj = fresh;
                    m = self.decide().await?;
                    m.call = None;
                }
                other => return other.map(|()| m),
            }
        }
    }

    fn tell_poller(&self, watch: &Watch, m: &Move) {
        // The account the segment lives in: recorded, else the one acted in.
        let account = m.status.account_id.clone().or_else(|| self.acting().map(|(_, key)| key.account));
        let Some(account) = account else { return };
        let key = Key { account, region: self.object.spec.region_id.clone() };
        let client = self.acting().map(|(client, _)| client.clone());
        match (watch, client) {
            (Watch::Forget { segment_ids }, _) => {
                segment_ids.iter().for_each(|id| self.ctx.poller.forget(&key, id, &self.target))
            }
            (Watch::Changing { segment_id, change }, Some(client)) => {
                self.ctx.poller.changing(&key, &client, segment_id, poller_change(*change), self.target.clone())
            }
            (Watch::Refresh { segment_id }, Some(client)) => {
                self.ctx.poller.refresh(&key, &client, segment_id, self.target.clone())
            }
            (Watch::LookAgain { segment_id }, Some(client)) => {
                self.ctx.poller.look_again(&key, &client, segment_id, self.target.clone())
            }
            (Watch::Expect { segment_id, change }, Some(client)) => {
                let change = poller_change(*change);
                self.ctx.poller.expect(&key, &client, segment_id, change, self.target.clone())
            }
            _ => {}
        }
    }

    fn next(&self, m: &Move) -> Action {
        let uid = &self.object.uid;
        match m.next {
            Next::Finish => {
                if let Some(requested) = m.status.release_requested_at.as_deref()
                    && let Ok(at) = chrono::DateTime::parse_from_rfc3339(requested)
                {
                    self.ctx
                        .metrics
                        .release_confirmed((Utc::now() - at.with_timezone(&Utc)).to_std().unwrap_or_default());
                }
                self.ctx.pacing.forget(uid);
                self.ctx.metrics.reconciled("success");
                Action::await_change()
            }
            Next::Wait(pace) => {
                let releasing =
                    self.object.deleting && conditions::ready_reason(&m.status) == Some(conditions::reason::RELEASING);
                self.ctx.pacing.count(uid, &self.object.namespace, Counted { ready: is_ready(&m.status), releasing });
                self.ctx.metrics.reconciled(if self.object.deleting { "pending" } else { "success" });
                match self.ctx.pacing.after(uid, pace, &self.ctx.timings) {
                    Some(after) => Action::requeue(after),
                    // The poller wakes it on any change; the watch's rolling resync comes by too.
                    None => Action::await_change(),
                }
            }
        }
    }
}

/// The object as the lifecycle knows it: the identity annotations it proves, the pass's time.
fn object_of(ctx: &Context, obj: &EipSegment) -> Result<Object, Error> {
    let namespace = obj.namespace().unwrap_or_default();
    let proven = ctx.identity.read(&namespace, &obj.name_any(), obj.annotations(), obj.status.as_ref());
    let now = Utc::now();
    Ok(Object {
        allowance: ctx.allowance(&namespace),
        namespace,
        name: obj.name_any(),
        uid: obj.uid().ok_or(Error::MissingMetadata("uid"))?,
        created: obj.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
        generation: obj.metadata.generation,
        spec: obj.spec.clone(),
        status: obj.status.clone().unwrap_or_default(),
        annotations: proven.identity,
        unproven: proven.unproven,
        deleting: obj.metadata.deletion_timestamp.is_some(),
        now: rfc3339(now),
        tokens_remembered_since: rfc3339(now - ctx.timings.token_memory),
    })
}

/// A time as status records it: RFC 3339 in UTC, to the second (so that its text orders as the
/// time does).
fn rfc3339(at: chrono::DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn claimant(o: &EipSegment, segment_id: &str) -> Claimant {
    let status = o.status.clone().unwrap_or_default();
    Claimant {
        namespace: o.namespace().unwrap_or_default(),
        name: o.name_any(),
        uid: o.uid().unwrap_or_default(),
        created: o.metadata.creation_timestamp.as_ref().map(|t| t.0.to_string()).unwrap_or_default(),
        established: status.segment_instance_id.as_deref() == Some(segment_id),
        deleting: o.metadata.deletion_timestamp.is_some(),
        finalized: o.finalizers().iter().any(|f| f == FINALIZER),
        adopts: o.spec.adopts(),
        ready_reason: conditions::ready_reason(&status).map(str::to_string),
        failing: status.last_error.as_ref().and_then(|e| ErrorClass::parse(&e.class)),
        account: status.account_id,
    }
}

fn poller_change(change: lifecycle::Change) -> poller::Change {
    match change {
        lifecycle::Change::Allocating => poller::Change::Allocating,
        lifecycle::Change::Releasing => poller::Change::Releasing,
    }
}

fn action_of(call: &Call) -> CloudAction {
    match call {
        Call::Allocate(_) => CloudAction::AllocateEipSegmentAddress,
        Call::Release { .. } => CloudAction::ReleaseEipSegmentAddress,
    }
}

fn seen_of(seen: poller::Seen) -> Seen {
    match seen {
        poller::Seen::Present(seg) => Seen::Present(seg),
        poller::Seen::Absent => Seen::Absent,
        poller::Seen::Failed(e) => Seen::Failed(problem_of(&e)),
    }
}

/// For a release blocked by member EIPs, names them (DescribeEipAddresses) in the error's advice.
async fn name_blockers(vpc: &VpcClient, region: &str, segment_id: &str, e: CloudError) -> CloudError {
    if !e.blocked_by_members() {
        return e;
    }
    let Ok(members) = vpc.describe_segment_members(region, segment_id).await else { return e };
    let blockers: Vec<String> = members
        .iter()
        .filter(|m| m.holds_the_release_back())
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
    match e {
        CloudError::Api { action, http_status, code, message, request_id, retry_after } if !blockers.is_empty() => {
            let message = format!("{message} Blocking member EIPs: {}", blockers.join(", "));
            CloudError::Api { action, http_status, code, message, request_id, retry_after }
        }
        other => other,
    }
}
