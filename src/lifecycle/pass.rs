//! One pass over one object: what it holds, who else claims it, which account is in force, and the
//! moves every decision is built from.

// `Err` carries the decision to return instead, which is what a pass is for.
#![allow(clippy::result_large_err)]

use crate::conditions::{self, set_ready, set_synced};
use crate::facts::{Claimant, Credentials, Facts, Look, Object, Problem, Seen};
use crate::identity::{self, Identity, Source};
use crate::moves::{Decision, Event, Move, Need, Next, Pace, SecretUse, SourceChoice, Watch};
use crate::replay;
use eipsegment_api::{DeletionPolicy, EipSegmentStatus, LastError};
use vpc_api::model::{Segment, SegmentStatus};

/// What the object holds in the cloud, as far as its own record says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) enum Holding {
    /// Nothing was ever requested (or the cloud proved the request created nothing).
    Nothing,
    /// An allocation was requested and its segment ID is not known yet.
    Pending,
    /// The segment to adopt, not yet recorded.
    Adopting(String),
    /// Allocated by this object and named by the cloud, not yet seen in a look.
    Unseen(String),
    /// Recorded and seen (or adopted, or restored).
    Named(String),
    /// Its release is proven and recorded.
    Gone(String),
}

/// What the operator was doing when a call failed: names the event and `lastError.action`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Act {
    Allocate,
    Release,
    Describe,
    Members,
    Credentials,
}

impl Act {
    fn as_str(self) -> &'static str {
        match self {
            Act::Allocate => "Allocate",
            Act::Release => "Release",
            Act::Describe => "Describe",
            Act::Members => "DescribeMembers",
            Act::Credentials => "Credentials",
        }
    }

    fn reason(self, class: vpc_api::ErrorClass) -> &'static str {
        use vpc_api::ErrorClass::Blocked;
        match (self, class) {
            (Act::Release, Blocked) => "ReleaseBlocked",
            (Act::Release, _) => "ReleaseFailed",
            (Act::Allocate, _) => "AllocationFailed",
            (Act::Credentials, _) => "CredentialsUnavailable",
            (Act::Describe, _) => "CloudError",
            (Act::Members, _) => "MembersUnavailable",
        }
    }
}

pub(super) struct Pass<'a> {
    /// What is known so far.
    pub facts: Facts<'a>,
    /// The object as read; its status is the one to keep when a move must not put an older one back.
    pub object: &'a Object,
    /// The status this pass starts from: as read, with the identity a restore left in annotations
    /// filled in, the generation observed and the deletion policy in force.
    pub starting_status: EipSegmentStatus,
    /// The deletion policy in force: the spec's, unless the tenancy policy keeps an adoption from
    /// releasing its segment.
    pub policy: DeletionPolicy,
    /// The tenancy policy turned the spec's Delete into Retain.
    pub policy_capped: bool,
}

impl<'a> Pass<'a> {
    pub fn new(facts: &Facts<'a>) -> Pass<'a> {
        let object = facts.object;
        let mut status = object.status.clone();
        // A restored allocation is pending again until its segment is seen: the backup may have been
        // taken before the answer was recorded, or before the cloud showed the segment. Not so once
        // a release was requested: the segment had been seen, and may be gone by now.
        let restored = identity::restore_into(&mut status, &object.annotations);
        if restored && object.spec.segment_instance_id.is_none() && object.annotations.release_token.is_none() {
            status.allocation_requested_at.get_or_insert_with(|| object.now.clone());
        }
        status.observed_generation = object.generation;
        let asked = object.spec.effective_deletion_policy();
        let policy_capped =
            object.spec.adopts() && asked == DeletionPolicy::Delete && !object.allowance.adopt_with_delete;
        let policy = if policy_capped { DeletionPolicy::Retain } else { asked };
        status.deletion_policy = Some(policy.as_str().to_string());
        Pass { facts: *facts, object, starting_status: status, policy, policy_capped }
    }

    /// Why the tenancy policy refuses a new allocation, if it does.
    pub fn refusal_to_allocate(&self) -> Option<String> {
        let allowance = &self.object.allowance;
        let mask = self.object.spec.eip_mask.unwrap_or(28);
        if !allowance.allocate {
            return Some(format!("{} allocate segments", self.policy_denies()));
        }
        (mask < allowance.min_eip_mask).then(|| {
            format!(
                "{} allocate a /{mask} segment: the largest it may ask for is a /{} (eipMask {} or more)",
                self.policy_denies(),
                allowance.min_eip_mask,
                allowance.min_eip_mask
            )
        })
    }

    /// Why the tenancy policy refuses an adoption, if it does.
    pub fn refusal_to_adopt(&self) -> Option<String> {
        if !self.object.allowance.adopt {
            return Some(format!("{} adopt segments it did not allocate", self.policy_denies()));
        }
        self.policy_capped.then(|| {
            format!(
                "{} adopt a segment with deletionPolicy Delete (a deletion would release a segment this namespace did \
                 not allocate): set spec.deletionPolicy to Retain",
                self.policy_denies()
            )
        })
    }

    fn policy_denies(&self) -> String {
        format!(
            "the tenancy policy (rule {:?}) does not let namespace {}",
            self.object.allowance.rule, self.object.namespace
        )
    }

    pub fn holding(&self) -> Holding {
        let status = &self.starting_status;
        match (&status.segment_instance_id, &self.object.spec.segment_instance_id) {
            (Some(id), _) if recorded_cloud_status(status) == Some(SegmentStatus::Released) => {
                Holding::Gone(id.clone())
            }
            (Some(id), _) if status.allocation_requested_at.is_some() => Holding::Unseen(id.clone()),
            (Some(id), _) => Holding::Named(id.clone()),
            (None, Some(adopt)) => Holding::Adopting(adopt.clone()),
            (None, None) if status.allocation_requested_at.is_some() => Holding::Pending,
            (None, None) => Holding::Nothing,
        }
    }

    pub fn region(&self) -> &str {
        &self.object.spec.region_id
    }

    pub fn now(&self) -> &str {
        &self.object.now
    }

    /// The token this object's allocation uses: the one recorded (a restored object keeps its
    /// own), else one derived from the UID.
    pub fn allocation_token(&self) -> String {
        self.starting_status.allocation_token.clone().unwrap_or_else(|| identity::allocation_token(&self.object.uid))
    }

    pub fn release_token(&self) -> String {
        self.starting_status.release_token.clone().unwrap_or_else(|| identity::release_token(&self.object.uid))
    }

    pub fn recorded_source(&self) -> Option<Source> {
        self.starting_status.credentials_source.as_deref().and_then(Source::parse)
    }

    fn source_choice(&self) -> SourceChoice {
        match (self.recorded_source(), &self.object.spec.credentials_secret_ref) {
            (Some(recorded), _) => SourceChoice::Exactly(recorded),
            (None, Some(secret)) => SourceChoice::Exactly(Source::Secret(secret.name.clone())),
            (None, None) if self.object.allowance.operator_credentials => SourceChoice::NamespaceDefaultOrOperator,
            (None, None) => SourceChoice::NamespaceDefaultOnly { rule: self.object.allowance.rule.clone() },
        }
    }

    /// The claimants, or the need for them.
    pub fn claims(&self, segment_id: &str) -> Result<&'a [Claimant], Decision> {
        self.facts.claims.ok_or_else(|| Decision::Need(Need::Claims { segment_id: segment_id.to_string() }))
    }

    /// The claimant that holds the segment instead of this object: a claim its status records
    /// comes first, then an object that names the segment as its own (it allocated it; a restored
    /// one comes back to it) before one that adopts it, then the older object (then the UID, so that
    /// the order is total). Between namespaces, an object that names the segment as its own (its
    /// status or its proven annotations say so) comes before any adopter, even one that took the
    /// segment while its owner was away (during a restore): another namespace never wins it.
    pub fn outranked_by<'c>(&self, claims: &'c [Claimant], segment_id: &str) -> Option<&'c Claimant> {
        let object = self.object;
        let established = object.status.segment_instance_id.as_deref() == Some(segment_id);
        claims.iter().filter(|claimant| claimant.uid != object.uid).find(|claimant| {
            let across = claimant.namespace != object.namespace;
            let theirs =
                (across && claimant.adopts, !claimant.established, claimant.adopts, &claimant.created, &claimant.uid);
            let mine =
                (across && object.spec.adopts(), !established, object.spec.adopts(), &object.created, &object.uid);
            theirs < mine
        })
    }

    /// The member EIPs, or the need for them.
    pub fn members(
        &self,
        segment_id: &str,
    ) -> Result<&'a Result<Vec<eipsegment_api::SegmentAddress>, Problem>, Decision> {
        self.facts.members.ok_or_else(|| Decision::Need(Need::Members { segment_id: segment_id.to_string() }))
    }

    /// The credentials and the account to act in, once known and in agreement with the account
    /// the segment lives in; otherwise what to do instead.
    pub fn account(&self) -> Result<(&'a Credentials, String), Decision> {
        let Some(credentials) = self.facts.credentials else {
            return Err(Decision::Need(Need::Credentials(self.source_choice())));
        };
        let account = match &credentials.account {
            Ok(account) => account.clone(),
            Err(problem) => return Err(self.fail(self.starting_status.clone(), problem, Act::Credentials)),
        };
        match &self.starting_status.account_id {
            Some(recorded) if *recorded != account => Err(self.mismatch(credentials, recorded, &account)),
            _ => Ok((credentials, account)),
        }
    }

    /// What a refusal of this pass's allocation says of the pending marker's request (see
    /// [`replay`]).
    pub fn refusal_verdict(&self, problem: &Problem) -> replay::Verdict {
        let Some(credentials) = self.facts.credentials else { return replay::Verdict::SaysNothing };
        let Ok(account) = &credentials.account else { return replay::Verdict::SaysNothing };
        let request = self.object.spec.allocate_request(&self.allocation_token());
        let replayed = replay::request_of(account, &credentials.endpoint, &request);
        replay::verdict(problem, self.object, &self.starting_status, &replayed)
    }

    /// A refusal of this pass's allocation proves that nothing was created.
    pub fn refusal_proves_nothing_created(&self, problem: &Problem) -> bool {
        self.refusal_verdict(problem) == replay::Verdict::NothingCreated
    }

    /// Credentials of another account: nothing they say about the segment is believed, and they
    /// neither allocate nor release.
    fn mismatch(&self, credentials: &Credentials, recorded: &str, account: &str) -> Decision {
        let detail = format!(
            "AccountMismatch: the credentials from {} act for account {account}, but the segment lives in account \
             {recorded}: nothing is allocated, released or believed absent with them. Give {} credentials of account \
             {recorded} again",
            credentials.source, credentials.source
        );
        let problem = Problem::new(vpc_api::ErrorClass::Terminal, "AccountMismatch", &detail);
        let mut status = self.starting_status.clone();
        status.last_error = None;
        let mut decision = self.fail(status, &problem, Act::Credentials);
        if let Decision::Act(decided) = &mut decision
            && let Some(event) = &mut decided.event
        {
            event.reason = "AccountMismatch";
        }
        decision
    }

    /// The segment as the look in `account` saw it (`None`: proven absent), or what to do until
    /// there is such a look (ask for one, report its failure, or wait for the poller).
    pub fn seen(&self, id: &str, account: &str, drift: bool) -> Result<Option<&'a Segment>, Decision> {
        let Some(look) = self.facts.look else {
            return Err(Decision::Need(Need::Look { segment_id: id.to_string(), drift }));
        };
        match look {
            Look::Seen { account: seen_in, seen } if seen_in == account => match seen {
                Seen::Present(seg) => Ok(Some(seg)),
                Seen::Absent => Ok(None),
                Seen::Failed(problem) => Err(self.fail(self.starting_status.clone(), problem, Act::Describe)),
            },
            // No look yet (or one from before the object's account was known): the poller wakes it.
            _ => Err(self.wait(self.starting_status.clone(), Pace::Looking)),
        }
    }

    // ---- moves ----

    /// A move with no call: write `status` (and the identity it holds), then wait or finish. The
    /// identity annotations only ever grow: what `status` lacks (a move built on the status as read,
    /// of an object restored with its identity in annotations only) keeps the object's annotation,
    /// or the next pass would no longer know its segment or its tokens.
    pub fn act(&self, status: EipSegmentStatus, next: Next) -> Move {
        Move {
            identity: Identity::of_status(&status).or(&self.object.annotations),
            secret: secret_use(&status),
            status,
            call: None,
            event: None,
            warning: None,
            watch: None,
            next,
        }
    }

    pub fn wait(&self, status: EipSegmentStatus, pace: Pace) -> Decision {
        Decision::Act(self.act(status, Next::Wait(pace)))
    }

    /// Settled or under way, with a cloud interaction that succeeded.
    pub fn succeeded(&self, mut status: EipSegmentStatus) -> EipSegmentStatus {
        status.last_error = None;
        set_synced(&mut status, None, self.now());
        status
    }

    /// Records a failed call and backs off at the pace of its class; a Warning event when it is new
    /// and not a passing one.
    pub fn fail(&self, mut status: EipSegmentStatus, problem: &Problem, act: Act) -> Decision {
        let last = LastError {
            class: problem.class.as_str().into(),
            code: problem.code.clone(),
            message: problem.detail.clone(),
            request_id: problem.request_id.clone(),
            action: act.as_str().into(),
        };
        let before = self.object.status.last_error.as_ref().map(|last| (&last.code, &last.action));
        let new = before != Some((&last.code, &last.action));
        set_synced(&mut status, Some(problem), self.now());
        status.last_error = Some(last);
        let mut decided =
            self.act(status, Next::Wait(Pace::Backoff { class: problem.class, hint: problem.retry_after }));
        if new && problem.class != vpc_api::ErrorClass::Transient {
            decided.event = Some(Event::warning(act.reason(problem.class), act.as_str(), problem.detail.clone()));
        }
        Decision::Act(decided)
    }

    /// Ready=False with a reason and message, and an event when the reason is new.
    pub fn not_ready(&self, mut status: EipSegmentStatus, reason: &str, message: &str) -> EipSegmentStatus {
        set_ready(&mut status, false, reason, message, self.now());
        status
    }

    /// Ready=False for a reason that lasts until something changes (the spec, the cloud, a person):
    /// no call, a backoff at the pace of `class`, and a Warning event (reason, action) when the
    /// reason is new.
    pub fn stand(
        &self,
        status: EipSegmentStatus,
        reason: &str,
        message: String,
        class: vpc_api::ErrorClass,
        (event, action): (&'static str, &'static str),
    ) -> Move {
        let status = self.not_ready(status, reason, &message);
        let mut decided = self.act(status, Next::Wait(Pace::Backoff { class, hint: None }));
        if self.reason_is_new(reason) {
            decided.event = Some(Event::warning(event, action, message));
        }
        decided
    }

    /// Refused by the tenancy policy: Ready=False saying which rule, no cloud call; asked again when
    /// the object changes (or after a long backoff, for a policy change).
    pub fn refuse_by_policy(&self, why: String) -> Decision {
        let (status, reason) = (self.starting_status.clone(), conditions::reason::POLICY_REFUSED);
        Decision::Act(self.stand(status, reason, why, vpc_api::ErrorClass::Terminal, ("PolicyRefused", "Admit")))
    }

    pub fn reason_is_new(&self, reason: &str) -> bool {
        conditions::ready_reason(&self.object.status) != Some(reason)
    }

    /// The object may go. The Secret it held is let go, the poller forgets it.
    pub fn finish(&self, status: EipSegmentStatus, event: Event) -> Decision {
        let mut decided = self.act(status, Next::Finish);
        decided.secret = match self.recorded_source() {
            Some(Source::Secret(name)) => SecretUse::LetGo(name),
            _ => SecretUse::Unchanged,
        };
        let ids: Vec<String> =
            [self.starting_status.segment_instance_id.clone(), self.object.spec.segment_instance_id.clone()]
                .into_iter()
                .flatten()
                .collect();
        decided.watch = (!ids.is_empty()).then_some(Watch::Forget { segment_ids: ids });
        decided.event = Some(event);
        Decision::Act(decided)
    }
}

/// An object whose status names a live segment, or an allocation that may have created one,
/// holds the Secret its credentials come from.
fn secret_use(status: &EipSegmentStatus) -> SecretUse {
    let live = status.segment_instance_id.is_some() || status.allocation_requested_at.is_some();
    match status.credentials_source.as_deref().and_then(Source::parse) {
        Some(Source::Secret(name)) if live => SecretUse::Hold(name),
        _ => SecretUse::Unchanged,
    }
}

/// Records the account a segment was seen or created in, and the source of its credentials.
pub(super) fn record_account(status: &mut EipSegmentStatus, credentials: &Credentials, account: &str) {
    if status.account_id.is_none() {
        status.account_id = Some(account.to_string());
    }
    if status.credentials_source.is_none() {
        status.credentials_source = Some(credentials.source.to_string());
    }
}

/// Records what a look saw of the segment.
pub(super) fn record_segment(status: &mut EipSegmentStatus, seg: &Segment) {
    status.segment_instance_id = Some(seg.instance_id.clone());
    if !seg.segment.is_empty() {
        status.segment = Some(seg.segment.clone());
    }
    if seg.ip_count.is_some() {
        status.ip_count = seg.ip_count;
    }
    record_cloud_status(status, &seg.status);
    // Seen: whatever was requested exists.
    status.allocation_requested_at = None;
    status.allocation_request = None;
}

/// Records the segment's status in the cloud's own word.
pub(super) fn record_cloud_status(status: &mut EipSegmentStatus, cloud: &SegmentStatus) {
    status.cloud_status = Some(cloud.as_str().to_string());
}

/// The operator's word in `cloudStatus` for a segment the cloud no longer returns: no status of the
/// cloud's, so it reads back as an unknown one.
const MISSING: &str = "Missing";

/// Records that the cloud no longer returns the segment.
pub(super) fn record_missing(status: &mut EipSegmentStatus) {
    status.cloud_status = Some(MISSING.to_string());
}

/// The cloud status a status records, read back in the cloud's vocabulary: a word the cloud does
/// not use (the operator's `Missing`, a hand edit) is `Other`, and proves nothing.
pub(super) fn recorded_cloud_status(status: &EipSegmentStatus) -> Option<SegmentStatus> {
    status.cloud_status.as_deref().map(SegmentStatus::parse)
}
