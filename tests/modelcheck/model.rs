//! The model: a cloud of two isolated accounts, an apiserver with EipSegments and one credentials
//! Secret, the operator (passes that gather, decide with the real lifecycle core, write, call and
//! record, and that a crash can cut between any two steps), and a user who deletes, flips the
//! deletion policy, changes or breaks the credentials, deletes the Secret, adopts another object's
//! segment and restores an object without its status.

use std::collections::{BTreeMap, BTreeSet};

use eipsegment_operator::cloud::ErrorClass;
use eipsegment_operator::cloud::model::{Segment, SegmentStatus};
use eipsegment_operator::crd::{DeletionPolicy, EipSegmentSpec, EipSegmentStatus, SegmentAddress};
use eipsegment_operator::lifecycle::{
    Allowance, Call, Claimant, Credentials, Decision, Facts, Identity, Look, Move, Need, Next, Object, Outcome,
    Problem, SecretUse, Seen, Source, SourceChoice, conditions,
};

use super::rules::Rules;

pub const ACCOUNT_A: &str = "111";
/// The operator's own credentials act here: another account than the team's.
pub const ACCOUNT_B: &str = "222";
const SECRET: &str = "eipsegment-credentials";
const NOW: &str = "2026-01-01T00:00:00Z";

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
    pub holders: BTreeSet<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Obj {
    pub exists: bool,
    /// The object's UID; a restore gives a new one.
    pub uid: String,
    pub created: String,
    pub spec: EipSegmentSpec,
    pub status: EipSegmentStatus,
    pub annotations: Identity,
    pub finalizer: bool,
    pub deleting: bool,
}

impl Obj {
    /// What a write's resourceVersion precondition protects: what the user may change meanwhile.
    fn version(&self) -> (EipSegmentSpec, bool, bool, String) {
        (self.spec.clone(), self.deleting, self.finalizer, self.uid.clone())
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
    pub tokens: BTreeMap<(&'static str, String), String>,
    pub next_id: u8,
    /// Segments this operator allocated, with the object (slot) whose pass did it.
    pub allocated_by: BTreeMap<String, usize>,
    /// Release tokens the cloud accepted, per segment.
    pub release_tokens: BTreeMap<String, BTreeSet<String>>,
}

/// A pass under way: decided, and waiting to perform its call or to record.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct InFlight {
    pub slot: usize,
    pub uid: String,
    /// The object as read, for the precondition of the writes before a call.
    pub read: (EipSegmentSpec, bool, bool, String),
    /// The account of the credentials the pass acts with.
    pub account: Option<&'static str>,
    pub m: Move,
    pub called: bool,
    /// The other objects that named the segment when the pass decided.
    pub claims: Option<(String, Vec<Claimant>)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct State {
    pub objects: Vec<Obj>,
    pub secret: SecretState,
    pub cloud: Cloud,
    pub pass: Option<InFlight>,
    pub faults_left: u8,
    pub user_left: u8,
    /// Segments an object let go of with Retain, naming them.
    pub retained: BTreeSet<String>,
    /// A release the cloud accepted while its object did not want it, or while another wanted it.
    pub premature_release: Option<String>,
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UserKind {
    Delete,
    FlipPolicy,
    SwitchAccount,
    BreakKeys,
    DeleteSecret,
    Restore,
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Action {
    User(User),
    Operator(Op),
    Cloud(String),
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
}

#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Pass(usize, LookFault),
    Call(CallEnd),
    Record,
    Crash,
}

pub struct Model {
    pub scenario: Scenario,
    pub rules: Rules,
}

/// A decision, the account of the credentials it acts with, and the claims it saw.
pub type Decided = (Move, Option<&'static str>, Option<(String, Vec<Claimant>)>);

fn spec() -> EipSegmentSpec {
    EipSegmentSpec { region_id: "cn-hangzhou".into(), eip_mask: Some(28), ..Default::default() }
}

fn absent_object(slot: usize) -> Obj {
    Obj {
        exists: false,
        uid: format!("u{slot}"),
        created: format!("2026-01-01T00:00:0{slot}Z"),
        spec: spec(),
        status: EipSegmentStatus::default(),
        annotations: Identity::default(),
        finalizer: false,
        deleting: false,
    }
}

impl Model {
    pub fn init(&self) -> State {
        let mut first = absent_object(0);
        first.exists = true;
        let objects = if self.scenario.second_adopts { vec![first, absent_object(1)] } else { vec![first] };
        State {
            objects,
            secret: SecretState { exists: true, keys: Keys::Of(ACCOUNT_A), deleting: false, holders: BTreeSet::new() },
            cloud: Cloud::default(),
            pass: None,
            faults_left: self.scenario.faults,
            user_left: self.scenario.user_actions,
            retained: BTreeSet::new(),
            premature_release: None,
        }
    }

    // ---- what may happen ----

    pub fn enabled(&self, s: &State, out: &mut Vec<Action>) {
        self.user_actions(s, out);
        self.operator_actions(s, out);
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
        if self.scenario.second_adopts
            && !s.objects[1].exists
            && s.objects[1].status == EipSegmentStatus::default()
            && let Some(id) = &s.objects[0].status.segment_instance_id
        {
            out.push(Action::User(User::Adopt(id.clone())));
        }
        if s.user_left == 0 {
            return;
        }
        for (slot, o) in s.objects.iter().enumerate() {
            if o.exists && self.allows(UserKind::FlipPolicy) {
                out.push(Action::User(User::FlipPolicy(slot)));
            }
            if o.exists && o.finalizer && self.allows(UserKind::Restore) {
                out.push(Action::User(User::Restore(slot)));
            }
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

    fn allows(&self, kind: UserKind) -> bool {
        self.scenario.user.contains(&kind)
    }

    fn operator_actions(&self, s: &State, out: &mut Vec<Action>) {
        match &s.pass {
            None => {
                for (slot, o) in s.objects.iter().enumerate() {
                    if o.exists {
                        out.push(Action::Operator(Op::Pass(slot, LookFault::None)));
                        if s.faults_left > 0 {
                            out.push(Action::Operator(Op::Pass(slot, LookFault::Failed)));
                            out.push(Action::Operator(Op::Pass(slot, LookFault::Malformed)));
                        }
                    }
                }
            }
            Some(p) if p.m.call.is_some() && !p.called => {
                out.push(Action::Operator(Op::Call(CallEnd::Answered)));
                if s.faults_left > 0 {
                    for end in [
                        CallEnd::AnswerLost,
                        CallEnd::NotSent,
                        CallEnd::Refused,
                        CallEnd::WriteFailed,
                        CallEnd::NotAdmitted,
                    ] {
                        out.push(Action::Operator(Op::Call(end)));
                    }
                }
            }
            Some(_) => {
                out.push(Action::Operator(Op::Record));
                if s.faults_left > 0 {
                    out.push(Action::Operator(Op::Crash));
                }
            }
        }
    }

    pub fn step(&self, s: &State, action: &Action) -> Option<State> {
        let mut n = s.clone();
        match action {
            Action::User(u) => self.user(&mut n, u),
            Action::Operator(op) => self.operator(&mut n, op),
            Action::Cloud(id) => settle(&mut n.cloud, id),
        }
        settle_kubernetes(&mut n);
        Some(n)
    }

    fn user(&self, s: &mut State, u: &User) {
        if !matches!(u, User::Delete(_) | User::Adopt(_)) {
            s.user_left -= 1;
        }
        match u {
            User::Delete(slot) => s.objects[*slot].deleting = true,
            User::FlipPolicy(slot) => {
                let spec = &mut s.objects[*slot].spec;
                let flipped = match spec.effective_deletion_policy() {
                    DeletionPolicy::Delete => DeletionPolicy::Retain,
                    DeletionPolicy::Retain => DeletionPolicy::Delete,
                };
                spec.deletion_policy = Some(flipped);
            }
            User::Keys(keys) => s.secret.keys = *keys,
            User::DeleteSecret => s.secret.deleting = true,
            User::Restore(slot) => {
                let o = &mut s.objects[*slot];
                o.uid = format!("{}r", o.uid);
                // The manifest keeps its finalizers, as backup tools restore them.
                o.status = EipSegmentStatus::default();
                o.deleting = false;
                if s.pass.as_ref().is_some_and(|p| p.slot == *slot) {
                    s.pass = None;
                }
            }
            User::Adopt(id) => {
                let o = &mut s.objects[1];
                o.exists = true;
                o.spec = EipSegmentSpec {
                    eip_mask: None,
                    segment_instance_id: Some(id.clone()),
                    deletion_policy: Some(DeletionPolicy::Delete),
                    ..spec()
                };
            }
        }
    }

    // ---- the operator ----

    fn operator(&self, s: &mut State, op: &Op) {
        match op {
            Op::Pass(slot, fault) => self.begin(s, *slot, *fault),
            Op::Call(end) => self.call(s, *end),
            Op::Record => self.record(s),
            Op::Crash => {
                s.faults_left -= 1;
                s.pass = None;
            }
        }
    }

    fn begin(&self, s: &mut State, slot: usize, fault: LookFault) {
        if fault != LookFault::None {
            s.faults_left -= 1;
        }
        let o = &mut s.objects[slot];
        if !o.deleting && !o.finalizer {
            o.finalizer = true;
        }
        if !o.finalizer {
            return;
        }
        let (m, account, claims) = self.decide(s, slot, fault, None);
        let o = &s.objects[slot];
        s.pass = Some(InFlight { slot, uid: o.uid.clone(), read: o.version(), account, m, called: false, claims });
    }

    /// The pass's decision, asking the real core until it has every fact it needs.
    pub fn decide(&self, s: &State, slot: usize, fault: LookFault, outcome: Option<&Outcome>) -> Decided {
        let object = self.object_fact(s, slot);
        let (mut claims, mut credentials, mut look) = (None::<(String, Vec<Claimant>)>, None, None);
        // The member list changes no property: one member, read without fault.
        let members = Ok(vec![SegmentAddress { allocation_id: "eip-1".into(), ip_address: "47.0.0.1".into() }]);
        let mut asked_members = false;
        let mut account = None;
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
                Decision::Act(m) => return (m, account, claims),
                Decision::Need(Need::Claims { segment_id }) => {
                    claims = Some((segment_id.clone(), self.claimants(s, slot, &segment_id)))
                }
                Decision::Need(Need::Credentials(choice)) => {
                    let (fact, acting) = self.credentials(s, &choice);
                    account = acting;
                    credentials = Some(self.rules.credentials(fact, object.status.account_id.as_deref()));
                }
                Decision::Need(Need::Look { segment_id, .. }) => look = Some(self.look(s, account, &segment_id, fault)),
                Decision::Need(Need::Members { .. }) => asked_members = true,
            }
        }
    }

    fn object_fact(&self, s: &State, slot: usize) -> Object {
        let o = &s.objects[slot];
        Object {
            namespace: "team".into(),
            name: format!("seg{slot}"),
            uid: o.uid.clone(),
            created: o.created.clone(),
            generation: Some(1),
            spec: o.spec.clone(),
            status: o.status.clone(),
            annotations: self.rules.annotations(&o.annotations),
            unproven: Vec::new(),
            allowance: Allowance::default(),
            deleting: o.deleting,
            now: NOW.into(),
        }
    }

    fn claimants(&self, s: &State, slot: usize, id: &str) -> Vec<Claimant> {
        let names = |o: &Obj| {
            o.spec.segment_instance_id.as_deref() == Some(id)
                || o.status.segment_instance_id.as_deref() == Some(id)
                || o.annotations.segment_id.as_deref() == Some(id)
        };
        let claims = s
            .objects
            .iter()
            .enumerate()
            .filter(|(other, o)| *other != slot && o.exists && names(o))
            .map(|(other, o)| Claimant {
                namespace: "team".into(),
                name: format!("seg{other}"),
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

    /// The credentials for `choice`, and the account they act in (None: they do not work).
    fn credentials(&self, s: &State, choice: &SourceChoice) -> (Credentials, Option<&'static str>) {
        let secret = Source::Secret(SECRET.into());
        let operator = || {
            (
                Credentials { source: Source::Operator, account: Ok(ACCOUNT_B.into()), terminating: false },
                Some(ACCOUNT_B),
            )
        };
        match choice {
            SourceChoice::Exactly(Source::Operator) => operator(),
            SourceChoice::NamespaceDefaultOrOperator if !s.secret.exists => operator(),
            _ if !s.secret.exists && self.rules.falls_back_to_operator() => operator(),
            _ if !s.secret.exists => {
                let missing =
                    Problem::new(ErrorClass::Terminal, "NoCredentials", "NoCredentials: the Secret does not exist");
                (Credentials { source: secret, account: Err(missing), terminating: false }, None)
            }
            _ => {
                let (account, acting) = match s.secret.keys {
                    Keys::Of(a) => (Ok(a.to_string()), Some(a)),
                    Keys::Broken => (Err(Problem::new(ErrorClass::Terminal, "SignatureDoesNotMatch", "bad key")), None),
                };
                (Credentials { source: secret, account, terminating: s.secret.deleting }, acting)
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

    fn call(&self, s: &mut State, end: CallEnd) {
        if end != CallEnd::Answered {
            s.faults_left -= 1;
        }
        let Some(mut p) = s.pass.take() else { return };
        let o = &s.objects[p.slot];
        // The writes before the call carry the read's resourceVersion.
        if end == CallEnd::WriteFailed || !o.exists || o.version() != p.read {
            return;
        }
        // Right before the call, the other objects naming the segment are looked at again: one
        // that appeared since the decision makes the pass decide again.
        if let Some((id, seen)) = &p.claims
            && self.claimants(s, p.slot, id) != *seen
        {
            return;
        }
        if end == CallEnd::NotAdmitted {
            let outcome = Outcome::NotAdmitted { after: std::time::Duration::from_secs(1), why: "rate".into() };
            (p.m, _, _) = self.decide(s, p.slot, LookFault::None, Some(&outcome));
            p.called = true;
            s.pass = Some(p);
            return;
        }
        self.write(s, p.slot, &p.m);
        let Some(call) = p.m.call.clone() else { return };
        let effect = matches!(end, CallEnd::Answered | CallEnd::AnswerLost);
        let answer = match p.account {
            Some(account) if effect => self.cloud_call(s, p.slot, account, &call),
            _ => None,
        };
        let outcome = match (end, answer) {
            (CallEnd::Answered, Some(answer)) => answer,
            (CallEnd::Refused, _) => Outcome::Refused(refusal(&call)),
            _ => Outcome::Refused(Problem::new(ErrorClass::Transient, "Timeout", "Timeout")),
        };
        let (m, _, _) = self.decide(s, p.slot, LookFault::None, Some(&outcome));
        p.m = m;
        p.called = true;
        s.pass = Some(p);
    }

    /// What the cloud does with the call; None when nothing could be sent.
    fn cloud_call(&self, s: &mut State, slot: usize, account: &'static str, call: &Call) -> Option<Outcome> {
        Some(match call {
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
                        s.cloud.tokens.insert(key, id.clone());
                        s.cloud.allocated_by.insert(id.clone(), slot);
                        id
                    }
                };
                Outcome::Allocated { segment_id: id }
            }
            Call::Release { segment_id, token, .. } => release(s, slot, account, segment_id, token),
        })
    }

    /// The move's writes, as the apiserver applies them to the live object.
    fn write(&self, s: &mut State, slot: usize, m: &Move) {
        let o = &mut s.objects[slot];
        o.status = m.status.clone();
        o.annotations = m.identity.clone();
        if let SecretUse::Hold(_) = &m.secret {
            // A Secret being deleted takes no new finalizer.
            if s.secret.exists && !s.secret.deleting && self.rules.holds_secrets() {
                s.secret.holders.insert(format!("seg{slot}"));
            }
        }
    }

    fn record(&self, s: &mut State) {
        let Some(p) = s.pass.take() else { return };
        let o = &s.objects[p.slot];
        if !o.exists || o.uid != p.uid {
            return;
        }
        self.write(s, p.slot, &p.m);
        if p.m.next != Next::Finish {
            return;
        }
        if let SecretUse::LetGo(_) = &p.m.secret {
            s.secret.holders.remove(&format!("seg{}", p.slot));
        }
        if let Some(e) = &p.m.event
            && matches!(e.reason, "Retained" | "ReleaseUnderWay")
        {
            let named = p.m.status.segment_instance_id.clone().or_else(|| p.m.identity.segment_id.clone());
            s.retained.extend(named);
        }
        s.objects[p.slot].finalizer = false;
    }
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

/// A refusal that proves nothing: the allocation's quota, a release blocked by a member EIP.
fn refusal(call: &Call) -> Problem {
    match call {
        Call::Allocate(_) => Problem::new(ErrorClass::Blocked, "QuotaExceeded.Eip", "quota"),
        Call::Release { .. } => Problem::new(ErrorClass::Blocked, "OperationFailed.EipStatusInvalid", "in use"),
    }
}

fn release(s: &mut State, slot: usize, account: &'static str, id: &str, token: &str) -> Outcome {
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
    let o = &s.objects[slot];
    let wanted = o.deleting && o.spec.effective_deletion_policy() == DeletionPolicy::Delete;
    let names = |other: &Obj| {
        other.exists
            && !other.deleting
            && (other.status.segment_instance_id.as_deref() == Some(id)
                || other.spec.segment_instance_id.as_deref() == Some(id))
    };
    let another = s.objects.iter().enumerate().any(|(i, other)| i != slot && names(other));
    if (!wanted || another) && s.premature_release.is_none() {
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
