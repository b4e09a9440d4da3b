//! The lifecycle of one `EipSegment`, decided here and nowhere else. No IO, no clock, no Kubernetes
//! or HTTP types: a pass gathers [`Facts`], asks [`decide`], and gets either a [`Need`] (one more
//! fact to gather: who else names the segment, the credentials and the account they act for, the
//! poller's last look) or the whole [`Move`]: the status and identity annotations to write, the one
//! cloud call or none, the event, what the poller should know, and whether to wait or let the
//! object go. After the call, the pass asks again with the [`Outcome`] (and the object as written
//! before the call), and performs that answer, which has no call of its own.
//!
//! The promises kept here, and checked by the model checker over these very functions:
//! - a segment is allocated only with its account and token recorded (status and annotations)
//!   first, so a crash, a lost answer or a restore never loses it or allocates a second one;
//! - nothing is released, allocated or believed absent with credentials of another account;
//! - absence is believed only from a proven look, and never for a segment not yet seen since its
//!   allocation; the pending marker goes only with proof;
//! - one object holds a segment: another that names it is refused, and a segment another live
//!   object names is never released;
//! - a release goes only from a deleting object with the Delete policy, with one token;
//! - an identity annotation counts only when the operator proves it wrote it;
//! - another namespace's object never blocks a release, never receives a segment, and never makes
//!   one kept; the tenancy policy of the object's namespace is asked before any allocation or
//!   adoption, and caps what an adoption may release.

mod apply;
mod cleanup;
pub mod conditions;
pub mod facts;
pub mod identity;
pub mod moves;
mod pass;
pub mod replay;

pub use facts::{Allowance, Claimant, Credentials, Facts, Look, Object, Outcome, Problem, Seen};
pub use identity::{Identity, Source};
pub use moves::{Call, Change, Decision, Event, Move, Need, Next, Pace, SecretUse, SourceChoice, Watch};

/// The next step for the object, from what is known so far.
pub fn decide(facts: &Facts<'_>) -> Decision {
    let pass = pass::Pass::new(facts);
    let decision = if facts.object.deleting { cleanup::decide(&pass) } else { apply::decide(&pass) };
    match decision {
        Decision::Act(decided) => Decision::Act(tell_identity(facts.object, decided)),
        need => need,
    }
}

/// Every move says which identity annotations the object carries that the operator cannot prove
/// (a condition), with a Warning event when that is new.
fn tell_identity(object: &Object, mut decided: Move) -> Move {
    conditions::set_identity(&mut decided.status, &object.unproven, &object.now);
    let before = conditions::get(&object.status, conditions::IDENTITY_PROVEN);
    let after = conditions::get(&decided.status, conditions::IDENTITY_PROVEN);
    let news = after.is_some_and(|c| c.status == "False") && before.map(|c| &c.message) != after.map(|c| &c.message);
    if news {
        let note = conditions::message::unproven(&object.unproven);
        decided.warning = Some(Event::warning("UnprovenIdentity", "Observe", note));
    }
    decided
}

#[cfg(test)]
mod tests;
