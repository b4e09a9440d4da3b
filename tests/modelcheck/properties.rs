//! What must hold in every reachable state, and the fault-free continuation that checks that every
//! deletion finishes once faults and throttling stop: a round is a minute, and an object waits out
//! the pause its last throttling hint bought before it is reconciled again.

use std::collections::BTreeSet;

use eipsegment_operator::cloud::model::SegmentStatus;

use super::model::{ACCOUNT_A, Action, CallEnd, ENDPOINT, Keys, LookFault, Model, Obj, Op, State, TEAM};

/// Segments this operator allocated that no existing object can still release (unless an object
/// let go of it with Retain and named it).
pub fn leaked(m: &Model, s: &State) -> Vec<String> {
    s.cloud
        .segments
        .iter()
        .filter(|(id, seg)| {
            s.cloud.allocated_by.contains_key(*id)
                && seg.status != SegmentStatus::Releasing
                && !s.retained.contains(*id)
        })
        .filter(|(id, seg)| !s.objects.iter().any(|o| can_release(m, s, o, id, seg.account)))
        .map(|(id, _)| id.clone())
        .collect()
}

/// The object names the segment in its account, or holds the token that created it there.
fn can_release(m: &Model, s: &State, o: &Obj, id: &str, account: &str) -> bool {
    if !o.exists {
        return false;
    }
    let annotations = m.believed(o).identity;
    let recorded = o.status.account_id.as_deref().or(annotations.account_id.as_deref());
    // An adopter records the account when it first sees the segment, if its namespace may adopt
    // with Delete.
    let allowance = m.allowance(o.namespace);
    let adopts = o.spec.segment_instance_id.as_deref() == Some(id)
        && recorded.is_none()
        && allowance.adopt
        && allowance.adopt_with_delete;
    if recorded != Some(account) && !adopts {
        return false;
    }
    let named = o.status.segment_instance_id.as_deref().or(annotations.segment_id.as_deref());
    let token = o.status.allocation_token.as_ref().or(annotations.allocation_token.as_ref());
    let created = token.and_then(|t| s.cloud.minted.get(&(cloud_account(account), t.clone())));
    adopts || named == Some(id) || (named.is_none() && created.is_some_and(|c| c == id))
}

fn cloud_account(account: &str) -> &'static str {
    if account == ACCOUNT_A { ACCOUNT_A } else { super::model::ACCOUNT_B }
}

pub fn allocations_per_object_at_most_one(s: &State) -> bool {
    (0..s.objects.len()).all(|slot| s.cloud.allocated_by.values().filter(|v| **v == slot).count() <= 1)
}

pub fn one_release_token_per_segment(s: &State) -> bool {
    s.cloud.release_tokens.values().all(|tokens| tokens.len() <= 1)
}

/// The segment an object's status records is one it allocated or adopts by its spec: nothing else
/// (another's annotations, a token it did not make) credits it with one.
pub fn holds_only_its_own(s: &State) -> bool {
    s.objects.iter().enumerate().filter(|(_, o)| o.exists).all(|(slot, o)| {
        let Some(id) = o.status.segment_instance_id.as_deref() else { return true };
        let allocator = s.cloud.allocated_by.get(id);
        allocator.is_none_or(|by| *by == slot) || o.spec.segment_instance_id.as_deref() == Some(id)
    })
}

/// Faults stop and the user puts right what they broke (the Secret holds keys of the account the
/// segments live in again): then every object being deleted goes, within a bounded number of
/// fault-free passes and cloud steps.
pub fn deletions_finish(m: &Model, s: &State) -> bool {
    continuation(m, s, |_| {})
}

/// The continuation, each round shown to `see`.
pub fn continuation(m: &Model, s: &State, mut see: impl FnMut(&State)) -> bool {
    // Only the user asks for deletions: without one, there is nothing to finish.
    if !deleting(s) {
        return true;
    }
    // The passes under way complete first: a call may record the account the segment lives in.
    let mut c = s.clone();
    c.faults_left = 0;
    let Some(mut c) = repaired(m, finish_passes(m, c)) else { return true };
    for _ in 0..ROUNDS {
        if !deleting(&c) {
            return true;
        }
        c = round(m, c);
        see(&c);
    }
    false
}

const ROUNDS: usize = 12;
/// The time a round takes: an object paused longer by a throttling hint sits it out.
const ROUND_SECONDS: u64 = 60;

fn deleting(s: &State) -> bool {
    s.objects.iter().any(|o| o.exists && o.deleting && !waits_for_a_person(s, o))
}

/// A pending allocation that the cloud, having forgotten its token, no longer answers: nothing
/// proves what its first request did, and the object's condition asks a person to look.
fn waits_for_a_person(s: &State, o: &Obj) -> bool {
    let allocating = o.status.last_error.as_ref().is_some_and(|e| e.action == "Allocate");
    s.later && o.status.allocation_requested_at.is_some() && allocating
}

/// The user restores the credentials: keys of the account the team's objects recorded, the
/// Secret there. (The tenant's credentials never change.)
fn repaired(m: &Model, mut c: State) -> Option<State> {
    let recorded: BTreeSet<String> = c
        .objects
        .iter()
        .filter(|o| o.exists && o.namespace == TEAM)
        .filter_map(|o| o.status.account_id.clone().or_else(|| m.believed(o).identity.account_id))
        .collect();
    // One Secret cannot serve two accounts: nothing to check there.
    if recorded.len() > 1 {
        return None;
    }
    let account = recorded.first().map_or(m.scenario.team_keys, |a| cloud_account(a));
    c.secret.keys = Keys::Of(account);
    c.endpoint = ENDPOINT;
    if !c.secret.exists {
        c.secret.exists = true;
        c.secret.deleting = false;
    }
    c.faults_left = 0;
    c.user_left = 0;
    Some(c)
}

/// Every pass finishes without faults, each object is reconciled once, the cloud takes a step.
fn round(m: &Model, mut c: State) -> State {
    // A Secret that went is created again, as the condition's message asks.
    if !c.secret.exists {
        c.secret.exists = true;
        c.secret.deleting = false;
    }
    c = finish_passes(m, c);
    // The watch delivers: the cache catches up.
    if !c.cache.is_empty() {
        m.apply(&mut c, &Action::Watch);
    }
    for slot in 0..c.objects.len() {
        let paused = c.paused.get(&slot).is_some_and(|left| *left > ROUND_SECONDS);
        if c.objects[slot].exists && !paused {
            m.apply(&mut c, &Action::Operator(Op::Pass(slot, LookFault::None)));
            c = finish_passes(m, c);
        }
    }
    for left in c.paused.values_mut() {
        *left = left.saturating_sub(ROUND_SECONDS);
    }
    let ids: Vec<String> = c.cloud.segments.keys().cloned().collect();
    for id in ids {
        m.apply(&mut c, &Action::Cloud(id));
    }
    c
}

fn finish_passes(m: &Model, mut c: State) -> State {
    while let Some(p) = c.passes.first() {
        let op = match p.m.call.is_some() && !p.called {
            true => Op::Call(p.slot, CallEnd::Answered),
            false => Op::Record(p.slot),
        };
        m.apply(&mut c, &Action::Operator(op));
    }
    c
}
