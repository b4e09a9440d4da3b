//! The model: a cloud of two isolated accounts, an apiserver with EipSegments in two namespaces and
//! the team's credentials Secret, the operator (passes that gather, decide with the real lifecycle
//! core, write, call and record, and that a crash can cut between any two steps, or between the two
//! writes before a call), a user who deletes, flips the deletion policy, changes or breaks the
//! credentials, moves their endpoint, deletes the Secret, adopts another object's segment,
//! restores an object without its status and strips a finalizer, and a tenant of another
//! namespace who copies or forges the team's identity annotations or adopts its segment.
//!
//! The glue's world, where a scenario asks for it: passes of different objects under way at once
//! (never two of one object), reading the operator's cache, which shows the cluster as it was when
//! the watch last delivered; a replica deposed with the cache it had; a cloud that throttles with a
//! TimeLeft of a day, and that after a day forgets its ClientTokens and refuses the parameters.

use std::collections::{BTreeMap, BTreeSet};

use eipsegment_operator::cloud::ErrorClass;
use eipsegment_operator::cloud::error::{Refusal, classify};
use eipsegment_operator::cloud::model::{Segment, SegmentStatus};
use eipsegment_operator::crd::{DeletionPolicy, EipSegmentSpec, EipSegmentStatus, SegmentAddress};
use eipsegment_operator::lifecycle::{
    Allowance, Call, Claimant, Credentials, Decision, Facts, Identity, Look, Move, Need, Next, Object, Outcome, Pace,
    Problem, SecretUse, Seen, Source, SourceChoice, conditions, identity,
};
use eipsegment_operator::proof::Proven;

use super::rules::Rules;

pub const ACCOUNT_A: &str = "111";
/// The operator's own credentials act here: another account than the team's.
pub const ACCOUNT_B: &str = "222";
const SECRET: &str = "eipsegment-credentials";
/// The namespace of the objects whose segments are at stake, and of the credentials Secret.
pub const TEAM: &str = "team";
/// Another tenant's namespace.
pub const OTHER: &str = "other";
const NOW: &str = "2026-01-01T00:00:00Z";
/// A day later: beyond the cloud's memory of a ClientToken.
const LATER: &str = "2026-01-02T00:00:00Z";
/// The pass's time less the cloud's memory of a ClientToken (an hour), now and a day later.
const REMEMBERED_SINCE: [&str; 2] = ["2025-12-31T23:00:00Z", "2026-01-01T23:00:00Z"];
/// The one endpoint the model's cloud answers at.
pub const ENDPOINT: &str = "https://vpc.cn-hangzhou.aliyuncs.com";
/// An endpoint that does not serve the objects' region.
pub const ELSEWHERE: &str = "https://vpc.cn-shanghai.aliyuncs.com";

/// What the credentials Secret holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Keys {
    Of(&'static str),
    /// A wrong AccessKeySecret.
    Broken,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SecretState {
    pub exists: bool,
    pub keys: Keys,
    pub deleting: bool,
    /// The objects holding it (by name, in its namespace).
    pub holders: BTreeSet<&'static str>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Obj {
    pub namespace: &'static str,
    pub name: &'static str,
    pub exists: bool,
    /// The object's UID; a restore gives a new one.
    pub uid: String,
    pub created: String,
    pub spec: EipSegmentSpec,
    pub status: EipSegmentStatus,
    /// The identity annotations as written, by the operator or by a user.
    pub annotations: Identity,
    pub proof: Option<Proof>,
    pub finalizer: bool,
    pub deleting: bool,
    /// An operator's status write recorded a pending allocation or a segment (a backup keeps it).
    pub recorded_allocation: bool,
    /// It had, when its deletion was asked for.
    pub recorded_at_deletion: bool,
}

/// The operator's proof of the identity annotations it wrote (`proof::IdentityKey`): an HMAC of
/// their values with the object's namespace and name, modelled as what it binds. A user can copy
/// one to another object, but never make one.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Proof {
    pub namespace: &'static str,
    pub name: &'static str,
    pub covers: Identity,
}

impl Obj {
    pub fn label(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    /// The identity annotations the operator proves it wrote, and those it cannot, as the glue
    /// reads them (`proof::IdentityKey::read`): a key counts when a proof made for this object
    /// covers it with the value written, or when status records the same value.
    pub fn proven(&self) -> Proven {
        let nothing = Identity::default();
        let signed = self.proof.as_ref().filter(|proof| self.carries(proof)).map_or(&nothing, |proof| &proof.covers);
        let recorded = Identity::of_status(&self.status);
        let mut proven = Proven::default();
        for (((key, written), (_, in_status)), (_, in_proof)) in
            self.annotations.annotations().into_iter().zip(recorded.annotations()).zip(signed.annotations())
        {
            let Some(value) = written else { continue };
            if in_proof.is_some() || in_status == Some(value) {
                proven.identity.set(key, value);
            } else {
                proven.unproven.push(key.to_string());
            }
        }
        proven
    }

    /// The proof was made for this object, over the values it carries: an edited value, or a copy
    /// to another namespace or name, proves nothing.
    fn carries(&self, proof: &Proof) -> bool {
        let values = proof.covers.annotations().into_iter().zip(self.annotations.annotations());
        (proof.namespace, proof.name) == (self.namespace, self.name)
            && values.into_iter().all(|((_, signed), (_, written))| signed.is_none() || signed == written)
    }

    /// The identity annotations as the glue writes them: the move's replace what was there and are
    /// signed for this object; any others stay as they are, unproven.
    fn sign(&mut self, identity: &Identity) {
        if identity.is_empty() {
            return;
        }
        for (key, value) in identity.annotations() {
            if let Some(value) = value {
                self.annotations.set(key, value);
            }
        }
        self.proof = Some(Proof { namespace: self.namespace, name: self.name, covers: identity.clone() });
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Seg {
    pub account: &'static str,
    pub status: SegmentStatus,
    /// Describe returns it (a fresh allocation may not be visible yet).
    pub visible: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Cloud {
    pub segments: BTreeMap<String, Seg>,
    /// The ClientTokens the cloud remembers, with the segment each created.
    pub tokens: BTreeMap<(&'static str, String), String>,
    /// Every ClientToken that created a segment, remembered or not.
    pub minted: BTreeMap<(&'static str, String), String>,
    pub next_id: u8,
    /// Segments this operator allocated, with the object (slot) whose pass did it.
    pub allocated_by: BTreeMap<String, usize>,
    /// Release tokens the cloud accepted, per segment.
    pub release_tokens: BTreeMap<String, BTreeSet<String>>,
}

/// The account credentials act in, and whether they are the operator's own.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Acting {
    pub account: &'static str,
    pub operator: bool,
    /// Where their allocations go.
    pub endpoint: &'static str,
}

/// A pass under way: decided, and waiting to perform its call or to record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InFlight {
    pub slot: usize,
    /// The object as read, or as this pass last wrote it: its resourceVersion is every write's
    /// precondition.
    pub read: Obj,
    /// The credentials the pass acts with, when they work.
    pub acting: Option<Acting>,
    pub m: Move,
    /// The call step is done (sent, or refused a place by the client-side rate).
    pub called: bool,
    pub outcome: Option<Outcome>,
    /// The other objects that named the segment when the pass decided.
    pub claims: Option<(String, Vec<Claimant>)>,
    /// The credentials the pass resolved, kept to its end.
    pub resolved: Option<Resolved>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub objects: Vec<Obj>,
    pub secret: SecretState,
    pub cloud: Cloud,
    /// The passes under way, by slot: never two of one object.
    pub passes: Vec<InFlight>,
    /// The objects as the operator's cache shows them (the cluster as it was when the watch last
    /// delivered); empty: the cache never lags.
    pub cache: Vec<Obj>,
    /// The cache of a replica that lost the Lease and runs on, once there is one.
    pub deposed: Option<Vec<Obj>>,
    /// How long each object's requeue waits, in seconds, after a throttling hint.
    pub paused: BTreeMap<usize, u64>,
    /// The endpoint every credentials send allocations to.
    pub endpoint: &'static str,
    /// A day has passed: the cloud forgot its ClientTokens, and refuses the objects' parameters.
    pub later: bool,
    pub faults_left: u8,
    pub user_left: u8,
    /// Segments an object let go of with Retain, naming them.
    pub retained: BTreeSet<String>,
    /// A release the cloud accepted that its object must not make (see `Model::premature`).
    pub premature_release: Option<String>,
    /// A segment still there when its owner went with Delete, held by no other object of its
    /// namespace.
    pub misplaced: Option<String>,
    /// An object whose call the operator's own credentials made, against its namespace's policy.
    pub operator_call: Option<String>,
    /// A deleting object that sent an allocation although its status recorded none before.
    pub unfounded_allocation: Option<String>,
    /// An object whose status an operator write stripped of a segment still allocated.
    pub erased: Option<String>,
}

/// Where the model starts and what may happen.
#[derive(Clone, Debug)]
pub struct Scenario {
    pub name: &'static str,
    /// Slot 1 adopts slot 0's segment once it has one.
    pub second_adopts: bool,
    /// New segments are invisible until the cloud settles them once.
    pub visibility_lag: bool,
    pub faults: u8,
    pub user_actions: u8,
    pub user: Vec<UserKind>,
    /// Steps searched beyond the common depth (a small scenario can go further).
    pub extra_depth: usize,
    /// The account whose keys the team's Secret holds at first.
    pub team_keys: &'static str,
    /// The other namespace's tenant, with an object of its own (the last slot).
    pub tenant: Option<Tenant>,
    /// How many passes (of different objects) may be under way at once.
    pub concurrency: usize,
    /// The operator reads objects from a cache that catches up when the watch delivers.
    pub stale_cache: bool,
    /// The Lease may pass to another replica while the old one runs on.
    pub second_replica: bool,
    /// The cloud may throttle a call, with a TimeLeft of a day.
    pub throttling: bool,
    /// A crash may come between the two writes before a call (status, identity annotations).
    pub split_writes: bool,
    /// A day may pass, after which the cloud forgets its ClientTokens and refuses the parameters.
    pub forgetful: bool,
}

impl Scenario {
    /// The team's first object alone, its Secret holding keys of account A, no lag.
    pub fn new(name: &'static str, faults: u8, user_actions: u8, user: Vec<UserKind>) -> Scenario {
        Scenario {
            name,
            second_adopts: false,
            visibility_lag: false,
            faults,
            user_actions,
            user,
            extra_depth: 0,
            team_keys: ACCOUNT_A,
            tenant: None,
            concurrency: 1,
            stale_cache: false,
            second_replica: false,
            throttling: false,
            split_writes: false,
            forgetful: false,
        }
    }

    pub fn forgetful(self) -> Scenario {
        Scenario { forgetful: true, ..self }
    }

    /// Passes of different objects run at once, from a cache that lags.
    pub fn concurrent(self, passes: usize) -> Scenario {
        Scenario { concurrency: passes, stale_cache: true, ..self }
    }

    pub fn stale_cache(self) -> Scenario {
        Scenario { stale_cache: true, ..self }
    }

    pub fn second_replica(self) -> Scenario {
        Scenario { second_replica: true, ..self }
    }

    pub fn throttling(self) -> Scenario {
        Scenario { throttling: true, ..self }
    }

    pub fn split_writes(self) -> Scenario {
        Scenario { split_writes: true, ..self }
    }

    pub fn adopting(self) -> Scenario {
        Scenario { second_adopts: true, ..self }
    }

    pub fn lagging(self) -> Scenario {
        Scenario { visibility_lag: true, ..self }
    }

    pub fn deeper(self, extra_depth: usize) -> Scenario {
        Scenario { extra_depth, ..self }
    }

    pub fn team_keys(self, account: &'static str) -> Scenario {
        Scenario { team_keys: account, ..self }
    }

    pub fn tenant(self, tenant: Tenant) -> Scenario {
        Scenario { tenant: Some(tenant), ..self }
    }
}

/// The other namespace: what its policy allows, and the credentials it has.
#[derive(Clone, Debug)]
pub struct Tenant {
    pub allowance: Allowance,
    /// The account its default Secret holds keys of; None: it has no Secret.
    pub keys: Option<&'static str>,
}

impl Tenant {
    /// A tenant on the platform's shared profile: its own Secret only, no adoption.
    pub fn shared_profile(keys: Option<&'static str>) -> Tenant {
        let allowance = Allowance {
            rule: "shared".into(),
            operator_credentials: false,
            adopt: false,
            adopt_with_delete: false,
            ..Allowance::default()
        };
        Tenant { allowance, keys }
    }

    /// A tenant that brings its own Secret and may adopt, but only to keep: no adoption with Delete.
    pub fn adopts_to_keep(keys: Option<&'static str>) -> Tenant {
        let allowance = Allowance {
            rule: "keep-only".into(),
            operator_credentials: false,
            adopt_with_delete: false,
            ..Allowance::default()
        };
        Tenant { allowance, keys }
    }

    /// A tenant trusted with everything: the operator's credentials, adoption with Delete.
    pub fn permissive(keys: Option<&'static str>) -> Tenant {
        Tenant { allowance: Allowance { rule: "trusted".into(), ..Allowance::default() }, keys }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserKind {
    Delete,
    FlipPolicy,
    SwitchAccount,
    BreakKeys,
    DeleteSecret,
    Restore,
    /// The tenant creates its object with the team object's identity annotations (and proof).
    CopyIdentity,
    /// The tenant creates its object with identity annotations naming the team object's segment,
    /// its allocation token and the operator's credentials.
    ForgeIdentity,
    /// The tenant creates its object adopting the team object's segment, with Delete.
    AdoptAcross,
    /// The user strips the finalizer by hand from the team's first object and deletes it.
    Strip,
    /// The endpoint the credentials send allocations to moves elsewhere, or back.
    MoveEndpoint,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    User(User),
    Operator(Op),
    Cloud(String),
    /// The watch delivers what changed since the operator's cache last caught up: one stream
    /// for the kind, in order, so the cache shows the cluster as it was at some moment.
    Watch,
    /// The Lease passes to another replica (the operator of `Op`); the old one keeps its cache.
    Depose,
    /// The deposed replica reconciles the object in this slot from its cache, on its own clock.
    Stale(usize),
    /// A day passes: the cloud forgets its ClientTokens, and its rules change so that it refuses
    /// the objects' parameters (InvalidParameter.Mask).
    DayPasses,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum User {
    Delete(usize),
    FlipPolicy(usize),
    /// The Secret's keys become those of this account.
    Keys(Keys),
    DeleteSecret,
    /// The object comes back from a backup: annotations and spec, no status, a new UID.
    Restore(usize),
    /// Slot 1 is created adopting this segment, with deletion policy Delete.
    Adopt(String),
    /// The tenant's object is created, as the kind says.
    Tenant(Hostile),
    /// The finalizer is stripped by hand and the object deleted: it goes at once.
    Strip(usize),
    /// The credentials' endpoint for allocations becomes this one.
    Endpoint(&'static str),
}

/// What the tenant's object is created with.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Hostile {
    /// The team object's identity annotations and their proof, copied.
    Copy,
    /// Identity annotations written by hand: the segment (if the team object has one yet), its
    /// allocation token, the operator's credentials.
    Forge { segment: Option<String>, token: String },
    /// `spec.segmentInstanceId`, with Delete.
    Adopt(String),
}

/// How a look at the cloud ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum LookFault {
    None,
    Failed,
    /// A 2xx answer without its list or TotalCount.
    Malformed,
}

/// How a call ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallEnd {
    Answered,
    /// The cloud did it; the answer never came.
    AnswerLost,
    /// It never reached the cloud.
    NotSent,
    /// The cloud refused it (quota for an allocation, a blocked release).
    Refused,
    /// The writes before it failed: no call.
    WriteFailed,
    /// The client-side rate had no place for it: neither the writes before it nor the call are
    /// made, and the pass records the wait its outcome decides.
    NotAdmitted,
    /// The cloud throttled it, with a TimeLeft of a day.
    Throttled,
    /// The operator crashed between its two writes before the call.
    CrashBetweenWrites,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Pass(usize, LookFault),
    Call(usize, CallEnd),
    Record(usize),
    Crash,
}

pub struct Model {
    pub scenario: Scenario,
    pub rules: Rules,
}

/// A pass's decision, the credentials it acts with, and the claims it saw.
pub struct Decided {
    pub m: Move,
    pub acting: Option<Acting>,
    pub claims: Option<(String, Vec<Claimant>)>,
    /// The credentials as resolved, which the pass keeps to its end.
    pub resolved: Option<Resolved>,
}

/// Credentials as a pass resolved them: the fact, and what they act as.
pub type Resolved = (Credentials, Option<Acting>);

/// What a pass decides on: the object as it knows it (read, or as it wrote it), the other objects
/// as its cache shows them, and the credentials it resolved, if it has.
#[derive(Clone, Copy)]
pub struct Reading<'a> {
    pub view: &'a [Obj],
    pub read: &'a Obj,
    pub kept: Option<&'a Resolved>,
}

impl<'a> Reading<'a> {
    fn of(view: &'a [Obj], read: &'a Obj, kept: &'a Option<Resolved>) -> Reading<'a> {
        Reading { view, read, kept: kept.as_ref() }
    }
}

fn spec() -> EipSegmentSpec {
    EipSegmentSpec { region_id: "cn-hangzhou".into(), eip_mask: Some(28), ..Default::default() }
}

fn absent_object(slot: usize, namespace: &'static str, name: &'static str) -> Obj {
    Obj {
        namespace,
        name,
        exists: false,
        uid: format!("u{slot}"),
        created: format!("2026-01-01T00:00:0{slot}Z"),
        spec: spec(),
        status: EipSegmentStatus::default(),
        annotations: Identity::default(),
        proof: None,
        finalizer: false,
        deleting: false,
        recorded_allocation: false,
        recorded_at_deletion: false,
    }
}

/// The slot of the team's object that adopts the first one's segment.
const ADOPTER: usize = 1;

impl Model {
    pub fn init(&self) -> State {
        let mut objects = vec![absent_object(0, TEAM, "seg0")];
        objects[0].exists = true;
        if self.scenario.second_adopts {
            objects.push(absent_object(ADOPTER, TEAM, "seg1"));
        }
        if self.scenario.tenant.is_some() {
            // The same name as the team's object: only the namespace tells them apart.
            objects.push(absent_object(objects.len(), OTHER, "seg0"));
        }
        let keys = Keys::Of(self.scenario.team_keys);
        let cache = if self.scenario.stale_cache { objects.clone() } else { Vec::new() };
        State {
            objects,
            secret: SecretState { exists: true, keys, deleting: false, holders: BTreeSet::new() },
            cloud: Cloud::default(),
            passes: Vec::new(),
            cache,
            deposed: None,
            paused: BTreeMap::new(),
            endpoint: ENDPOINT,
            later: false,
            faults_left: self.scenario.faults,
            user_left: self.scenario.user_actions,
            retained: BTreeSet::new(),
            premature_release: None,
            misplaced: None,
            operator_call: None,
            unfounded_allocation: None,
            erased: None,
        }
    }

    /// The object in `slot`, as `namespace/name`.
    pub fn label(&self, slot: usize) -> String {
        self.init().objects[slot].label()
    }

    /// The tenant's object, when the scenario has a tenant.
    pub fn tenant_slot(&self) -> Option<usize> {
        self.scenario.tenant.as_ref().map(|_| 1 + usize::from(self.scenario.second_adopts))
    }

    /// What the tenancy policy lets `namespace` do.
    pub fn allowance(&self, namespace: &str) -> Allowance {
        match &self.scenario.tenant {
            Some(tenant) if namespace == OTHER => tenant.allowance.clone(),
            _ => Allowance::default(),
        }
    }

    /// The identity annotations the rules believe of `o`, and those they report unproven.
    pub fn believed(&self, o: &Obj) -> Proven {
        self.rules.annotations(&o.annotations, o.proven())
    }

    // ---- what may happen ----

    pub fn enabled(&self, s: &State, out: &mut Vec<Action>) {
        self.user_actions(s, out);
        self.tenant_actions(s, out);
        self.operator_actions(s, out);
        self.replica_actions(s, out);
        if !s.cache.is_empty() && s.cache != s.objects {
            out.push(Action::Watch);
        }
        if self.scenario.forgetful && !s.later {
            out.push(Action::DayPasses);
        }
        for (id, seg) in &s.cloud.segments {
            if !seg.visible || seg.status != SegmentStatus::Allocated {
                out.push(Action::Cloud(id.clone()));
            }
        }
    }

    fn user_actions(&self, s: &State, out: &mut Vec<Action>) {
        for (slot, o) in s.objects.iter().enumerate() {
            if o.exists && !o.deleting && self.allows(UserKind::Delete) {
                out.push(Action::User(User::Delete(slot)));
            }
        }
        let strippable = &s.objects[0];
        if self.allows(UserKind::Strip) && strippable.exists && strippable.finalizer {
            out.push(Action::User(User::Strip(0)));
        }
        if self.scenario.second_adopts
            && fresh(&s.objects[ADOPTER])
            && let Some(id) = &s.objects[0].status.segment_instance_id
        {
            out.push(Action::User(User::Adopt(id.clone())));
        }
        if s.user_left == 0 {
            return;
        }
        for (slot, o) in s.objects.iter().enumerate() {
            if o.exists && o.namespace == TEAM && self.allows(UserKind::FlipPolicy) {
                out.push(Action::User(User::FlipPolicy(slot)));
            }
            if o.exists && o.namespace == TEAM && o.finalizer && self.allows(UserKind::Restore) {
                out.push(Action::User(User::Restore(slot)));
            }
        }
        if self.allows(UserKind::MoveEndpoint) {
            out.push(Action::User(User::Endpoint(if s.endpoint == ENDPOINT { ELSEWHERE } else { ENDPOINT })));
        }
        if s.secret.exists {
            if self.allows(UserKind::SwitchAccount) {
                let other = if s.secret.keys == Keys::Of(ACCOUNT_B) { ACCOUNT_A } else { ACCOUNT_B };
                out.push(Action::User(User::Keys(Keys::Of(other))));
            }
            if self.allows(UserKind::BreakKeys) && s.secret.keys != Keys::Broken {
                out.push(Action::User(User::Keys(Keys::Broken)));
            }
            if self.allows(UserKind::DeleteSecret) && !s.secret.deleting {
                out.push(Action::User(User::DeleteSecret));
            }
        }
    }

    /// The tenant creates its object once, from what it can read of the team's first object (its
    /// segment also once it is gone).
    fn tenant_actions(&self, s: &State, out: &mut Vec<Action>) {
        let Some(slot) = self.tenant_slot() else { return };
        let victim = &s.objects[0];
        if !fresh(&s.objects[slot]) {
            return;
        }
        let segment = victim.status.segment_instance_id.clone();
        if self.allows(UserKind::CopyIdentity) && victim.exists && !victim.annotations.is_empty() {
            out.push(Action::User(User::Tenant(Hostile::Copy)));
        }
        if self.allows(UserKind::ForgeIdentity) && victim.exists {
            let token = identity::allocation_token(&victim.uid);
            out.push(Action::User(User::Tenant(Hostile::Forge { segment: segment.clone(), token })));
        }
        if let Some(id) = segment.filter(|_| self.allows(UserKind::AdoptAcross)) {
            out.push(Action::User(User::Tenant(Hostile::Adopt(id))));
        }
    }

    fn allows(&self, kind: UserKind) -> bool {
        self.scenario.user.contains(&kind)
    }

    fn operator_actions(&self, s: &State, out: &mut Vec<Action>) {
        if s.passes.len() < self.scenario.concurrency {
            for (slot, o) in self.view(s).iter().enumerate() {
                if o.exists && !s.passes.iter().any(|p| p.slot == slot) {
                    out.push(Action::Operator(Op::Pass(slot, LookFault::None)));
                    if s.faults_left > 0 {
                        out.push(Action::Operator(Op::Pass(slot, LookFault::Failed)));
                        out.push(Action::Operator(Op::Pass(slot, LookFault::Malformed)));
                    }
                }
            }
        }
        for p in &s.passes {
            if p.m.call.is_some() && !p.called {
                out.push(Action::Operator(Op::Call(p.slot, CallEnd::Answered)));
                if s.faults_left > 0 {
                    out.extend(self.call_faults().into_iter().map(|end| Action::Operator(Op::Call(p.slot, end))));
                }
            } else {
                out.push(Action::Operator(Op::Record(p.slot)));
            }
        }
        let recording = s.passes.iter().any(|p| p.m.call.is_none() || p.called);
        if recording && s.faults_left > 0 {
            out.push(Action::Operator(Op::Crash));
        }
    }

    /// The ways a call may fail in this scenario.
    fn call_faults(&self) -> Vec<CallEnd> {
        let mut ends =
            vec![CallEnd::AnswerLost, CallEnd::NotSent, CallEnd::Refused, CallEnd::WriteFailed, CallEnd::NotAdmitted];
        if self.scenario.throttling {
            ends.push(CallEnd::Throttled);
        }
        if self.scenario.split_writes {
            ends.push(CallEnd::CrashBetweenWrites);
        }
        ends
    }

    /// A deposed replica: it comes once, then reconciles from the cache it kept.
    fn replica_actions(&self, s: &State, out: &mut Vec<Action>) {
        if !self.scenario.second_replica {
            return;
        }
        match &s.deposed {
            None => out.push(Action::Depose),
            Some(cache) if s.faults_left > 0 => {
                let held = cache.iter().enumerate().filter(|(_, o)| o.exists && o.finalizer);
                out.extend(held.map(|(slot, _)| Action::Stale(slot)));
            }
            Some(_) => {}
        }
    }

    /// The objects as the operator reads them.
    pub fn view<'s>(&self, s: &'s State) -> &'s [Obj] {
        if s.cache.is_empty() { &s.objects } else { &s.cache }
    }

    pub fn step(&self, s: &State, action: &Action) -> Option<State> {
        let mut n = s.clone();
        self.apply(&mut n, action);
        Some(n)
    }

    /// The action's effect, in place.
    pub fn apply(&self, s: &mut State, action: &Action) {
        match action {
            Action::User(u) => self.user(s, u),
            Action::Operator(op) => self.operator(s, op),
            Action::Cloud(id) => settle(&mut s.cloud, id),
            Action::Watch => s.cache.clone_from(&s.objects),
            Action::Depose => s.deposed = Some(self.view(s).to_vec()),
            Action::Stale(slot) => self.stale_pass(s, *slot),
            Action::DayPasses => {
                s.later = true;
                s.cloud.tokens.clear();
            }
        }
        settle_kubernetes(s);
    }

    fn user(&self, s: &mut State, u: &User) {
        if !matches!(u, User::Delete(_) | User::Adopt(_) | User::Tenant(_) | User::Strip(_)) {
            s.user_left -= 1;
        }
        match u {
            User::Delete(slot) => {
                let o = &mut s.objects[*slot];
                o.deleting = true;
                o.recorded_at_deletion = o.recorded_allocation;
            }
            User::Strip(slot) => strip(s, *slot),
            User::FlipPolicy(slot) => {
                let spec = &mut s.objects[*slot].spec;
                let flipped = match spec.effective_deletion_policy() {
                    DeletionPolicy::Delete => DeletionPolicy::Retain,
                    DeletionPolicy::Retain => DeletionPolicy::Delete,
                };
                spec.deletion_policy = Some(flipped);
            }
            User::Keys(keys) => s.secret.keys = *keys,
            User::Endpoint(endpoint) => s.endpoint = endpoint,
            User::DeleteSecret => s.secret.deleting = true,
            User::Restore(slot) => {
                let o = &mut s.objects[*slot];
                o.uid = format!("{}r", o.uid);
                // The manifest keeps its finalizers, as backup tools restore them.
                o.status = EipSegmentStatus::default();
                o.deleting = false;
                s.passes.retain(|p| p.slot != *slot);
            }
            User::Adopt(id) => {
                let o = &mut s.objects[ADOPTER];
                o.exists = true;
                o.spec = adopting(id);
            }
            User::Tenant(hostile) => self.tenant_creates(s, hostile),
        }
    }

    fn tenant_creates(&self, s: &mut State, hostile: &Hostile) {
        let Some(slot) = self.tenant_slot() else { return };
        let (annotations, proof) = (s.objects[0].annotations.clone(), s.objects[0].proof.clone());
        let o = &mut s.objects[slot];
        o.exists = true;
        match hostile {
            Hostile::Copy => (o.annotations, o.proof) = (annotations, proof),
            Hostile::Forge { segment, token } => {
                o.annotations.segment_id.clone_from(segment);
                o.annotations.allocation_token = Some(token.clone());
                o.annotations.credentials_source = Some(Source::Operator.to_string());
            }
            Hostile::Adopt(id) => o.spec = adopting(id),
        }
    }

    // ---- the operator ----

    fn operator(&self, s: &mut State, op: &Op) {
        match op {
            Op::Pass(slot, fault) => self.begin(s, *slot, *fault),
            Op::Call(slot, end) => self.call(s, *slot, *end),
            Op::Record(slot) => self.record(s, *slot),
            Op::Crash => {
                s.faults_left -= 1;
                s.passes.clear();
            }
        }
    }

    fn begin(&self, s: &mut State, slot: usize, fault: LookFault) {
        if fault != LookFault::None {
            s.faults_left -= 1;
        }
        let mut read = self.view(s)[slot].clone();
        // The finalizer goes on first, tested against the list as read; the pass goes on with the
        // object as written.
        if !read.deleting && !read.finalizer {
            let live = &mut s.objects[slot];
            if !live.exists || live.deleting || live.finalizer {
                return;
            }
            live.finalizer = true;
            read = live.clone();
        }
        if !read.finalizer {
            return;
        }
        let Decided { m, acting, claims, resolved } =
            self.decide(s, Reading { view: self.view(s), read: &read, kept: None }, slot, fault, None);
        let pass = InFlight { slot, read, acting, m, called: false, outcome: None, claims, resolved };
        s.passes.push(pass);
        s.passes.sort_by_key(|p| p.slot);
    }

    /// The pass's decision, asking the real core until it has every fact it needs.
    pub fn decide(
        &self,
        s: &State,
        reading: Reading<'_>,
        slot: usize,
        fault: LookFault,
        outcome: Option<&Outcome>,
    ) -> Decided {
        let Reading { view, read, kept } = reading;
        let object = self.object_fact(read, s.later);
        let (mut claims, mut credentials, mut look) = (None::<(String, Vec<Claimant>)>, None, None);
        // The member list changes no property: one member, read without fault.
        let members = Ok(vec![SegmentAddress { allocation_id: "eip-1".into(), ip_address: "47.0.0.1".into() }]);
        let mut asked_members = false;
        let (mut acting, mut resolved) = (None, kept.cloned());
        loop {
            let facts = Facts {
                object: &object,
                claims: claims.as_ref().map(|(_, c)| c.as_slice()),
                credentials: credentials.as_ref(),
                look: look.as_ref(),
                members: asked_members.then_some(&members),
                outcome,
            };
            match self.rules.decide(&facts) {
                Decision::Act(m) => return Decided { m, acting, claims, resolved },
                Decision::Need(Need::Claims { segment_id }) => {
                    claims = Some((segment_id.clone(), self.claimants(view, slot, &segment_id)))
                }
                Decision::Need(Need::Credentials(choice)) => {
                    let (fact, found) =
                        resolved.get_or_insert_with(|| self.credentials(s, object.namespace.as_str(), &choice)).clone();
                    acting = found;
                    credentials = Some(self.rules.credentials(fact, object.status.account_id.as_deref()));
                }
                Decision::Need(Need::Look { segment_id, .. }) => {
                    look = Some(self.look(s, acting.map(|a| a.account), &segment_id, fault))
                }
                Decision::Need(Need::Members { .. }) => asked_members = true,
            }
        }
    }

    fn object_fact(&self, o: &Obj, later: bool) -> Object {
        let Proven { identity: annotations, unproven } = self.believed(o);
        Object {
            namespace: o.namespace.into(),
            name: o.name.into(),
            uid: o.uid.clone(),
            created: o.created.clone(),
            generation: Some(1),
            spec: o.spec.clone(),
            status: o.status.clone(),
            annotations,
            unproven,
            allowance: self.allowance(o.namespace),
            deleting: o.deleting,
            now: if later { LATER } else { NOW }.into(),
            tokens_remembered_since: REMEMBERED_SINCE[usize::from(later)].into(),
        }
    }

    /// The other objects naming the segment: by spec, by status, or by an identity annotation the
    /// glue can prove.
    fn claimants(&self, view: &[Obj], slot: usize, id: &str) -> Vec<Claimant> {
        let names = |o: &Obj| {
            o.spec.segment_instance_id.as_deref() == Some(id)
                || o.status.segment_instance_id.as_deref() == Some(id)
                || self.believed(o).identity.segment_id.as_deref() == Some(id)
        };
        let claims = view
            .iter()
            .enumerate()
            .filter(|(other, o)| *other != slot && o.exists && names(o))
            .map(|(_, o)| Claimant {
                namespace: o.namespace.into(),
                name: o.name.into(),
                uid: o.uid.clone(),
                created: o.created.clone(),
                established: o.status.segment_instance_id.as_deref() == Some(id),
                deleting: o.deleting,
                finalized: o.finalizer,
                adopts: o.spec.adopts(),
                account: o.status.account_id.clone(),
                ready_reason: conditions::ready_reason(&o.status).map(str::to_string),
                failing: o.status.last_error.as_ref().and_then(|e| ErrorClass::parse(&e.class)),
            })
            .collect();
        self.rules.claims(claims)
    }

    /// The keys of `namespace`'s credentials Secret, and whether it is being deleted; None: it has
    /// none. The tenant's Secret never changes.
    fn secret(&self, s: &State, namespace: &str) -> Option<(Keys, bool)> {
        match &self.scenario.tenant {
            Some(tenant) if namespace == OTHER => tenant.keys.map(|account| (Keys::Of(account), false)),
            _ => s.secret.exists.then_some((s.secret.keys, s.secret.deleting)),
        }
    }

    /// The credentials for `choice` in `namespace`, and what they act as (None: they do not work).
    fn credentials(&self, s: &State, namespace: &str, choice: &SourceChoice) -> (Credentials, Option<Acting>) {
        let source = Source::Secret(SECRET.into());
        let endpoint = s.endpoint;
        let operator = || {
            let fact = Credentials {
                source: Source::Operator,
                account: Ok(ACCOUNT_B.into()),
                terminating: false,
                endpoint: endpoint.into(),
            };
            (fact, Some(Acting { account: ACCOUNT_B, operator: true, endpoint }))
        };
        let secret = self.secret(s, namespace);
        match (choice, secret) {
            (SourceChoice::Exactly(Source::Operator), _) => operator(),
            (SourceChoice::NamespaceDefaultOrOperator, None) => operator(),
            (_, None) if self.rules.falls_back_to_operator() => operator(),
            (_, None) => {
                let missing =
                    Problem::new(ErrorClass::Terminal, "NoCredentials", "NoCredentials: the Secret does not exist");
                (Credentials { source, account: Err(missing), terminating: false, endpoint: endpoint.into() }, None)
            }
            (_, Some((keys, terminating))) => {
                let (account, acting) = match keys {
                    Keys::Of(a) => (Ok(a.to_string()), Some(Acting { account: a, operator: false, endpoint })),
                    Keys::Broken => (Err(Problem::new(ErrorClass::Terminal, "SignatureDoesNotMatch", "bad key")), None),
                };
                (Credentials { source, account, terminating, endpoint: endpoint.into() }, acting)
            }
        }
    }

    /// DescribeEipSegment by ID in the account of the credentials.
    fn look(&self, s: &State, account: Option<&'static str>, id: &str, fault: LookFault) -> Look {
        let Some(account) = account else { return Look::Pending };
        let seen = match fault {
            LookFault::Failed => Seen::Failed(Problem::new(ErrorClass::Transient, "InternalError", "InternalError")),
            LookFault::Malformed => self.rules.malformed(),
            LookFault::None => match s.cloud.segments.get(id) {
                Some(seg) if seg.account == account && seg.visible => Seen::Present(segment(id, &seg.status)),
                _ => Seen::Absent,
            },
        };
        Look::Seen { account: account.to_string(), seen }
    }

    fn call(&self, s: &mut State, slot: usize, end: CallEnd) {
        if end != CallEnd::Answered {
            s.faults_left -= 1;
        }
        let Some(at) = s.passes.iter().position(|p| p.slot == slot) else { return };
        let mut p = s.passes.remove(at);
        // Right before the call, the other objects naming the segment are looked at again (in the
        // cache; before a release, those of the object's namespace as the apiserver lists them):
        // one that appeared since the decision makes the pass decide again.
        if let Some((id, seen)) = &p.claims
            && self.claimants(&self.view_before_call(s, &p), slot, id) != *seen
        {
            return;
        }
        // The client-side rate is asked before any write.
        if end == CallEnd::NotAdmitted {
            let outcome = Outcome::NotAdmitted { after: std::time::Duration::from_secs(1), why: "rate".into() };
            p.m = self
                .decide(s, Reading::of(self.view(s), &p.read, &p.resolved), slot, LookFault::None, Some(&outcome))
                .m;
            (p.called, p.outcome) = (true, Some(outcome));
            s.passes.push(p);
            s.passes.sort_by_key(|p| p.slot);
            return;
        }
        if end == CallEnd::WriteFailed || !self.may_call(s, &p) {
            return;
        }
        if end == CallEnd::CrashBetweenWrites {
            self.write_first_half(s, slot, &p.m);
            s.passes.clear();
            return;
        }
        self.write(s, slot, &p.m);
        p.read = as_written(&p.read, &p.m);
        let Some(call) = p.m.call.clone() else { return };
        self.check_credentials(s, slot, p.acting);
        self.check_founded(s, slot, &call);
        let effect = matches!(end, CallEnd::Answered | CallEnd::AnswerLost);
        let answer = match p.acting {
            Some(acting) if effect => self.cloud_call(s, slot, acting, &call),
            _ => None,
        };
        let outcome = match (end, answer) {
            (CallEnd::Answered, Some(answer)) => answer,
            (CallEnd::Refused, _) => Outcome::Refused(refusal(&call)),
            (CallEnd::Throttled, _) => Outcome::Refused(self.throttled()),
            _ => Outcome::Refused(Problem::new(ErrorClass::Transient, "Timeout", "Timeout")),
        };
        // The core decides again on the object as written before the call.
        p.m = self.decide(s, Reading::of(self.view(s), &p.read, &p.resolved), slot, LookFault::None, Some(&outcome)).m;
        (p.called, p.outcome) = (true, Some(outcome));
        s.passes.push(p);
        s.passes.sort_by_key(|p| p.slot);
    }

    /// The writes before the call carry the read's resourceVersion: they fail if the object
    /// changed since, or is gone (unless the glue lets the call go for a gone object).
    fn may_call(&self, s: &State, p: &InFlight) -> bool {
        let live = &s.objects[p.slot];
        *live == p.read || (!live.exists && !self.rules.glue().gone_stops_calls)
    }

    /// A throttling answer with a TimeLeft of a day, as the glue takes it.
    fn throttled(&self) -> Problem {
        let asked = std::time::Duration::from_secs(DAY);
        let mut problem = Problem::new(ErrorClass::Transient, "Throttling.User", "throttled");
        problem.retry_after = Some(self.rules.hint(asked));
        problem
    }

    /// A deleting object that sends an allocation its status did not record before its deletion.
    fn check_founded(&self, s: &mut State, slot: usize, call: &Call) {
        let o = &s.objects[slot];
        let allocates = matches!(call, Call::Allocate(_));
        if allocates && o.exists && o.deleting && !o.recorded_at_deletion && s.unfounded_allocation.is_none() {
            s.unfounded_allocation = Some(o.label());
        }
    }

    /// A call made with the operator's own credentials for a namespace whose policy withholds them.
    fn check_credentials(&self, s: &mut State, slot: usize, acting: Option<Acting>) {
        let o = &s.objects[slot];
        let operator = acting.is_some_and(|a| a.operator);
        if operator && !self.allowance(o.namespace).operator_credentials && s.operator_call.is_none() {
            s.operator_call = Some(o.label());
        }
    }

    /// What the cloud does with the call; None when nothing could be sent.
    fn cloud_call(&self, s: &mut State, slot: usize, acting: Acting, call: &Call) -> Option<Outcome> {
        let account = acting.account;
        Some(match call {
            // The cloud validates a request before it looks up its token.
            Call::Allocate(_) if acting.endpoint != ENDPOINT => invalid("InvalidRegionId.NotFound", 404),
            Call::Allocate(_) if s.later => invalid("InvalidParameter.Mask", 400),
            Call::Allocate(request) => {
                let key = (account, request.client_token.clone());
                let id = match s.cloud.tokens.get(&key) {
                    Some(id) => id.clone(),
                    None => {
                        s.cloud.next_id += 1;
                        let id = format!("eipsg-{}", s.cloud.next_id);
                        let visible = !self.scenario.visibility_lag;
                        let seg = Seg { account, status: SegmentStatus::Allocating, visible };
                        s.cloud.segments.insert(id.clone(), seg);
                        s.cloud.tokens.insert(key.clone(), id.clone());
                        s.cloud.minted.insert(key, id.clone());
                        s.cloud.allocated_by.insert(id.clone(), slot);
                        id
                    }
                };
                Outcome::Allocated { segment_id: id }
            }
            Call::Release { segment_id, token, .. } => {
                let premature = self.premature(s, slot, segment_id);
                release(s, account, segment_id, token, premature)
            }
        })
    }

    /// The object's deletion releases its segment: deletion policy Delete, and for an adoption,
    /// only as its namespace's policy allows.
    pub fn releases_on_deletion(&self, o: &Obj) -> bool {
        let allowance = self.allowance(o.namespace);
        let capped = o.spec.adopts() && !(allowance.adopt && allowance.adopt_with_delete);
        o.spec.effective_deletion_policy() == DeletionPolicy::Delete && !capped
    }

    /// What a pass reads right before its call: the cache, and before a release the objects of the
    /// releasing object's namespace as they are (the glue lists them from the apiserver then).
    fn view_before_call(&self, s: &State, p: &InFlight) -> Vec<Obj> {
        let mut view = self.view(s).to_vec();
        if self.rules.lists_before_release() && matches!(p.m.call, Some(Call::Release { .. })) {
            let namespace = s.objects[p.slot].namespace;
            for (seen, live) in view.iter_mut().zip(&s.objects) {
                if live.namespace == namespace {
                    seen.clone_from(live);
                }
            }
        }
        view
    }

    /// A release its object must not make: not deleted with Delete in force, of a segment it
    /// neither allocated nor adopts, or of one another live object of its namespace wants.
    fn premature(&self, s: &State, slot: usize, id: &str) -> bool {
        let o = &s.objects[slot];
        let wanted = o.deleting && self.releases_on_deletion(o);
        let owner = s.cloud.allocated_by.get(id) == Some(&slot) || o.spec.segment_instance_id.as_deref() == Some(id);
        let heir = |other: &Obj| other.exists && !other.deleting && other.namespace == o.namespace && wants(other, id);
        let another = s.objects.iter().enumerate().any(|(i, other)| i != slot && heir(other));
        !wanted || !owner || another
    }

    /// The move's writes, as the apiserver applies them to the live object (a gone one takes
    /// none).
    fn write(&self, s: &mut State, slot: usize, m: &Move) {
        if !s.objects[slot].exists {
            return;
        }
        self.write_status(s, slot, &m.status);
        s.objects[slot].sign(&m.identity);
        let o = &s.objects[slot];
        // A Secret being deleted takes no new finalizer.
        let holds = matches!(m.secret, SecretUse::Hold(_)) && o.namespace == TEAM;
        if holds && s.secret.exists && !s.secret.deleting && self.rules.holds_secrets() {
            s.secret.holders.insert(o.name);
        }
    }

    /// The first of the two writes before a call, in the glue's order.
    fn write_first_half(&self, s: &mut State, slot: usize, m: &Move) {
        if !s.objects[slot].exists {
            return;
        }
        match self.rules.glue().status_first {
            true => self.write_status(s, slot, &m.status),
            false => s.objects[slot].sign(&m.identity),
        }
    }

    fn write_status(&self, s: &mut State, slot: usize, status: &EipSegmentStatus) {
        let o = &mut s.objects[slot];
        let erased = o.status.segment_instance_id.clone().filter(|_| status.segment_instance_id.is_none());
        o.status = status.clone();
        o.recorded_allocation |= status.allocation_requested_at.is_some() || status.segment_instance_id.is_some();
        let label = o.label();
        let allocated =
            |id: &String| s.cloud.segments.get(id).is_some_and(|seg| seg.status != SegmentStatus::Releasing);
        if erased.as_ref().is_some_and(allocated) && s.erased.is_none() {
            s.erased = Some(label);
        }
    }

    /// The pass's last writes. On a conflict (the object changed since it was read, or the cache
    /// lagged the pass's own write), what a sent call did is decided again on the object as it is
    /// now; a pass that sent nothing leaves it to the next one.
    fn record(&self, s: &mut State, slot: usize) {
        let Some(at) = s.passes.iter().position(|p| p.slot == slot) else { return };
        let p = s.passes.remove(at);
        let live = &s.objects[slot];
        if !live.exists || live.uid != p.read.uid {
            return;
        }
        if *live == p.read {
            return self.finish_move(s, slot, &p.m);
        }
        let sent = p.outcome.as_ref().is_some_and(|o| !matches!(o, Outcome::NotAdmitted { .. }));
        if !self.rules.glue().decides_again_on_conflict {
            // The earlier glue counted a refusal by the client-side rate as a call, and forced
            // the stale move onto the object.
            if p.called {
                self.finish_move(s, slot, &p.m);
            }
            return;
        }
        if sent {
            let fresh = live.clone();
            let m = self
                .decide(s, Reading::of(self.view(s), &fresh, &p.resolved), slot, LookFault::None, p.outcome.as_ref())
                .m;
            self.finish_move(s, slot, &m);
        }
    }

    /// Writes the move, then lets the Secret and the object go if it finishes.
    fn finish_move(&self, s: &mut State, slot: usize, m: &Move) {
        self.write(s, slot, m);
        match m.next {
            Next::Wait(Pace::Backoff { hint: Some(hint), .. }) => s.paused.insert(slot, hint.as_secs()),
            _ => s.paused.remove(&slot),
        };
        if m.next != Next::Finish || !s.objects[slot].exists {
            return;
        }
        if let SecretUse::LetGo(_) = &m.secret {
            s.secret.holders.remove(s.objects[slot].name);
        }
        if let Some(e) = &m.event
            && matches!(e.reason, "Retained" | "ReleaseUnderWay")
        {
            let named = m.status.segment_instance_id.clone().or_else(|| m.identity.segment_id.clone());
            s.retained.extend(named);
        }
        s.objects[slot].finalizer = false;
        if s.misplaced.is_none() && self.releases_on_deletion(&s.objects[slot]) {
            s.misplaced = kept_against_policy(s, slot);
        }
    }

    /// A pass of the deposed replica, from the cache it kept, start to end. Fenced, its writes
    /// carry the stale resourceVersion and fail, and no call goes without a Lease proof it cannot
    /// give; unfenced, it writes and calls as if it led.
    fn stale_pass(&self, s: &mut State, slot: usize) {
        s.faults_left -= 1;
        let Some(cache) = s.deposed.clone() else { return };
        let read = &cache[slot];
        let Decided { mut m, acting, resolved, .. } =
            self.decide(s, Reading { view: &cache, read, kept: None }, slot, LookFault::None, None);
        if self.rules.glue().fenced {
            if s.objects[slot] == *read && m.call.is_none() {
                self.finish_move(s, slot, &m);
            }
            return;
        }
        if let Some(call) = m.call.clone() {
            self.write(s, slot, &m);
            self.check_credentials(s, slot, acting);
            self.check_founded(s, slot, &call);
            let answer = acting.and_then(|acting| self.cloud_call(s, slot, acting, &call));
            if let Some(outcome) = answer {
                let written = as_written(read, &m);
                m = self.decide(s, Reading::of(&cache, &written, &resolved), slot, LookFault::None, Some(&outcome)).m;
            }
        }
        self.finish_move(s, slot, &m);
    }
}

/// The object as a move's writes leave it.
fn as_written(read: &Obj, m: &Move) -> Obj {
    let mut o = read.clone();
    if o.exists {
        o.status = m.status.clone();
        o.recorded_allocation |= m.status.allocation_requested_at.is_some() || m.status.segment_instance_id.is_some();
        o.sign(&m.identity);
    }
    o
}

/// A TimeLeft of a day, in seconds.
pub const DAY: u64 = 24 * 60 * 60;

/// The user strips the object's finalizer and deletes it: it goes at once, and what it held is
/// theirs to look after (the operator's cache may not know yet).
fn strip(s: &mut State, slot: usize) {
    let o = &mut s.objects[slot];
    (o.exists, o.finalizer, o.deleting) = (false, false, true);
    o.recorded_at_deletion = o.recorded_allocation;
    let named = o.status.segment_instance_id.clone();
    let allocated = s.cloud.allocated_by.iter().filter(|(_, by)| **by == slot).map(|(id, _)| id.clone());
    let held: Vec<String> = allocated.chain(named).collect();
    s.retained.extend(held);
}

/// The object holds the segment (its status records it), or adopts it by its spec and has not
/// shown that it cannot take it on.
fn wants(o: &Obj, id: &str) -> bool {
    o.status.segment_instance_id.as_deref() == Some(id)
        || (o.spec.segment_instance_id.as_deref() == Some(id) && !cannot_take(o))
}

/// Its status shows a refusal or a lasting failure: the segment is not there for its credentials,
/// its namespace may not adopt it, or its calls fail for good.
fn cannot_take(o: &Obj) -> bool {
    use conditions::reason::{ACCOUNT_UNKNOWN, ADOPTION_TARGET_NOT_FOUND, POLICY_REFUSED, SEGMENT_MISSING};
    let refusals = [ADOPTION_TARGET_NOT_FOUND, POLICY_REFUSED, SEGMENT_MISSING, ACCOUNT_UNKNOWN];
    let refused = conditions::ready_reason(&o.status).is_some_and(|reason| refusals.contains(&reason));
    let class = o.status.last_error.as_ref().and_then(|e| ErrorClass::parse(&e.class));
    refused || class.is_some_and(|class| class != ErrorClass::Transient)
}

/// Not yet created (and not created before, unless it left nothing behind).
fn fresh(o: &Obj) -> bool {
    !o.exists && o.status == EipSegmentStatus::default()
}

fn adopting(id: &str) -> EipSegmentSpec {
    EipSegmentSpec {
        eip_mask: None,
        segment_instance_id: Some(id.to_string()),
        deletion_policy: Some(DeletionPolicy::Delete),
        ..spec()
    }
}

/// An object let go under Delete while a segment it allocated, or adopted and held, is still there
/// (not released, not let go of with Retain), and no other object of its namespace holds it.
fn kept_against_policy(s: &State, slot: usize) -> Option<String> {
    let o = &s.objects[slot];
    let owned = |id: &str| {
        s.cloud.allocated_by.get(id) == Some(&slot)
            || (o.spec.segment_instance_id.as_deref() == Some(id)
                && o.status.segment_instance_id.as_deref() == Some(id))
    };
    let heir = |id: &str| {
        s.objects.iter().enumerate().any(|(i, h)| {
            i != slot && h.exists && h.namespace == o.namespace && h.status.segment_instance_id.as_deref() == Some(id)
        })
    };
    s.cloud
        .segments
        .iter()
        .filter(|(id, seg)| seg.status != SegmentStatus::Releasing && !s.retained.contains(*id) && owned(id))
        .find(|(id, _)| !heir(id))
        .map(|(id, _)| id.clone())
}

fn segment(id: &str, status: &SegmentStatus) -> Segment {
    Segment {
        instance_id: id.into(),
        status: status.clone(),
        segment: "47.0.0.0/28".into(),
        ip_count: Some(16),
        region_id: String::new(),
        zone: String::new(),
        name: String::new(),
        description: String::new(),
        creation_time: String::new(),
    }
}

/// The cloud's refusal of an invalid request, classified as the client classifies it.
fn invalid(code: &str, http_status: u16) -> Outcome {
    let classified = classify(code, http_status);
    let mut problem = Problem::new(classified.class, code, classified.advice);
    problem.proves_nothing_created = classified.refusal == Refusal::InvalidRequest;
    Outcome::Refused(problem)
}

/// A refusal that proves nothing: the allocation's quota, a release blocked by a member EIP.
fn refusal(call: &Call) -> Problem {
    match call {
        Call::Allocate(_) => Problem::new(ErrorClass::Blocked, "QuotaExceeded.Eip", "quota"),
        Call::Release { .. } => Problem::new(ErrorClass::Blocked, "OperationFailed.EipStatusInvalid", "in use"),
    }
}

fn release(s: &mut State, account: &'static str, id: &str, token: &str, premature: bool) -> Outcome {
    let Some(seg) = s.cloud.segments.get_mut(id) else {
        return Outcome::Refused(Problem::new(ErrorClass::Gone, "InvalidAllocationId.NotFound", "gone"));
    };
    if seg.account != account {
        return Outcome::Refused(Problem::new(ErrorClass::Terminal, "Forbidden", "not the owner"));
    }
    let accepted = s.cloud.release_tokens.entry(id.to_string()).or_default();
    match seg.status {
        SegmentStatus::Allocated => {
            seg.status = SegmentStatus::Releasing;
            accepted.insert(token.to_string());
        }
        SegmentStatus::Releasing if accepted.contains(token) => {}
        _ => return Outcome::Refused(Problem::new(ErrorClass::Transient, "IncorrectEipStatus", "changing")),
    }
    if premature && s.premature_release.is_none() {
        s.premature_release = Some(id.to_string());
    }
    Outcome::ReleaseAccepted { request_id: "R".into() }
}

/// The cloud's asynchronous side: a new segment becomes visible, then Allocated; a release ends.
fn settle(cloud: &mut Cloud, id: &str) {
    let Some(seg) = cloud.segments.get_mut(id) else { return };
    if !seg.visible {
        seg.visible = true;
    } else if seg.status == SegmentStatus::Allocating {
        seg.status = SegmentStatus::Allocated;
    } else if seg.status == SegmentStatus::Releasing {
        cloud.segments.remove(id);
    }
}

/// The apiserver's own work: an object being deleted without finalizers goes, and so does a Secret.
fn settle_kubernetes(s: &mut State) {
    for o in &mut s.objects {
        if o.exists && o.deleting && !o.finalizer {
            o.exists = false;
        }
    }
    if s.secret.exists && s.secret.deleting && s.secret.holders.is_empty() {
        s.secret.exists = false;
    }
}
