//! The poller's pure decisions, without IO and without a clock (times are passed in): the state of
//! each watched segment and what a look makes of it, when a segment is next worth a look, how to
//! look (by ID or by region pages), and when a sweep may wait to gather first looks or to share one
//! page.

use std::collections::VecDeque;
use std::time::Duration;

use tokio::time::Instant;

use crate::cloud::model::SegmentStatus;

/// DescribeEipSegment reports at most this many segments per call.
pub const PAGE_SIZE: u32 = 50;

/// While a first change is being timed, others wait at most this many first-look intervals.
const SCOUTED_WAIT_FACTOR: u32 = 8;

/// After this long, a change that shows no sign of having begun (the segment still Allocated after
/// a release, or absent after an allocation) is reported to the objects instead of awaited.
pub const CHANGE_VISIBLE_WITHIN: Duration = Duration::from_secs(120);

/// From this many consecutive failures in a region on, objects hear of a failure they did not ask
/// about: it is no longer a blip.
const PERSISTENT_FAILURES: u32 = 3;

/// A change whose end the poller waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Allocating,
    Releasing,
}

/// A change under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Underway {
    pub change: Change,
    /// When it began: this operator's call, or the look that first saw it.
    pub since: Instant,
    /// This operator started it, so the time to its end teaches how long such changes take (a
    /// change first seen half-way says nothing about its length).
    pub ours: bool,
    /// Its next look is the region's one probe below the learned duration.
    pub probe: bool,
}

impl Underway {
    /// A change some look found under way, not started by this operator.
    fn seen(change: Change, at: Instant) -> Self {
        Underway { change, since: at, ours: false, probe: false }
    }
}

/// Where a watched segment stands, as far as the poller knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Registered, nothing usable known: its first look is due, gathered with others.
    Awaiting,
    /// A change is under way: looked at when such changes usually end, then on the poll pace,
    /// until it is seen to end.
    Changing(Underway),
    /// Allocated: looked at again only for drift checks, while an object wants them.
    Settled,
    /// Proved gone (by ID, or by one page holding the whole region): not looked at again until an
    /// object starts a change or asks for a fresh look.
    Gone,
    /// A status this operator does not know (or `Released` while the cloud still returns it): it
    /// may change at any time, so it is looked at on the poll pace while objects are registered.
    Unsettled,
    /// Only a look by ID can tell: the segment was absent from a multi-page scan (segments move
    /// between pages), or the cloud contradicted what was known. A change under way goes on
    /// being timed.
    Confirming(Option<Underway>),
}

impl Phase {
    /// The change under way, if any (also while a look by ID is awaited).
    pub fn underway(&self) -> Option<Underway> {
        match self {
            Phase::Changing(u) | Phase::Confirming(Some(u)) => Some(*u),
            _ => None,
        }
    }

    /// The kind of change whose one probe this segment holds.
    pub fn probe(&self) -> Option<Change> {
        self.underway().filter(|u| u.probe).map(|u| u.change)
    }
}

/// What one look said about a segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Saw {
    Present(SegmentStatus),
    Absent,
}

/// A watched segment as a look finds it.
#[derive(Clone, Debug)]
pub struct Before {
    pub phase: Phase,
    /// What objects can read now; `None` when nothing is (never looked at, or the last look failed).
    pub last: Option<Saw>,
    /// An object asked and found nothing usable: whatever the look says is news to it.
    pub waiting: bool,
    /// Looks sent before this predate this operator's last change or fresh look: they are stale.
    pub not_before: Instant,
}

/// One look: when it was sent (the cloud's state is at least this recent) and what it saw.
#[derive(Clone, Debug)]
pub struct Look {
    pub at: Instant,
    pub saw: Saw,
}

/// The time a transition runs at and the paces it schedules by.
#[derive(Clone, Copy, Debug)]
pub struct Pace {
    pub now: Instant,
    pub poll: Duration,
    /// The interval of looks at a change of this operator's still under way.
    pub relook: Duration,
    /// The drift-check interval, while an object registered on the segment wants drift checks.
    pub drift: Option<Duration>,
}

/// What a look taught about how long a change of its kind takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Learned {
    pub change: Change,
    pub elapsed: Duration,
    /// Ended by then (an upper bound), or still under way then (a lower bound).
    pub finished: bool,
}

/// What a look makes of a watched segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Next {
    pub phase: Phase,
    /// Wake the registered objects: what they can read has changed, or one is waiting for it.
    pub wake: bool,
    pub learned: Option<Learned>,
    /// The look was the probe of this kind of change: another may go.
    pub probe_spent: Option<Change>,
    /// The segment left the region (its size between scans).
    pub vanished: bool,
    pub due: Option<Instant>,
}

/// How a change stands after a look.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Progress {
    Under,
    Ended,
    /// No sign of it yet: the cloud's read side may lag the call.
    NotBegun,
}

fn progress(change: Change, saw: &Saw) -> Progress {
    match (change, saw) {
        (Change::Allocating, Saw::Present(SegmentStatus::Allocating))
        | (Change::Releasing, Saw::Present(SegmentStatus::Releasing)) => Progress::Under,
        (Change::Allocating, Saw::Present(_)) | (Change::Releasing, Saw::Absent) => Progress::Ended,
        _ => Progress::NotBegun,
    }
}

/// The phase a look implies when no change is awaited (or the awaited one has ended).
fn implied(look: &Look) -> Phase {
    match &look.saw {
        Saw::Absent => Phase::Gone,
        Saw::Present(SegmentStatus::Allocated) => Phase::Settled,
        Saw::Present(SegmentStatus::Allocating) => Phase::Changing(Underway::seen(Change::Allocating, look.at)),
        Saw::Present(SegmentStatus::Releasing) => Phase::Changing(Underway::seen(Change::Releasing, look.at)),
        Saw::Present(SegmentStatus::Released | SegmentStatus::Other(_)) => Phase::Unsettled,
    }
}

/// When a segment in `phase`, last looked at `at`, is next worth a look.
fn due_after(phase: &Phase, at: Instant, pace: &Pace) -> Option<Instant> {
    match phase {
        Phase::Changing(_) | Phase::Unsettled => Some(pace.now + pace.poll),
        Phase::Settled => pace.drift.map(|every| at + every),
        Phase::Gone => None,
        Phase::Awaiting | Phase::Confirming(_) => Some(pace.now),
    }
}

/// Whether the objects hear of this look at all: a change's end, and what no change stands
/// behind, always; a change still under way only as first news of one someone else began (the
/// object that started a change awaits its end); no sign of a change only once it is overdue.
fn reported(before: &Before, progress: Option<(Underway, Progress)>, at: Instant) -> bool {
    match progress {
        None | Some((_, Progress::Ended)) => true,
        Some((u, Progress::Under)) => !u.ours && before.waiting && before.last.is_none(),
        Some((u, Progress::NotBegun)) => at.saturating_duration_since(u.since) >= CHANGE_VISIBLE_WITHIN,
    }
}

/// The bound a look puts on the duration of a change this operator started.
fn learned(progress: Option<(Underway, Progress)>, at: Instant) -> Option<Learned> {
    let (u, p) = progress.filter(|(u, p)| u.ours && *p != Progress::NotBegun)?;
    Some(Learned { change: u.change, elapsed: at.saturating_duration_since(u.since), finished: p == Progress::Ended })
}

/// What a look makes of a watched segment; `None` when the look is stale and says nothing.
pub fn observed(before: &Before, look: &Look, pace: &Pace) -> Option<Next> {
    if look.at < before.not_before {
        return None;
    }
    let progress = before.phase.underway().map(|u| (u, progress(u.change, &look.saw)));
    let phase = match progress {
        Some((u, Progress::Under | Progress::NotBegun)) => Phase::Changing(Underway { probe: false, ..u }),
        None | Some((_, Progress::Ended)) => implied(look),
    };
    let changed = before.last.as_ref() != Some(&look.saw);
    let release_ended = matches!(progress, Some((Underway { change: Change::Releasing, .. }, Progress::Ended)));
    let vanished = look.saw == Saw::Absent && (matches!(before.last, Some(Saw::Present(_))) || release_ended);
    let due = match progress {
        // A change of this operator's still under way: looked at again at the relook pace (soon,
        // once its kind's duration is learned, for its end is near).
        Some((u, Progress::Under)) if u.ours => Some(pace.now + pace.relook),
        _ => due_after(&phase, look.at, pace),
    };
    Some(Next {
        due,
        phase,
        wake: reported(before, progress, look.at) && (changed || before.waiting),
        learned: learned(progress, look.at),
        probe_spent: before.phase.probe(),
        vanished,
    })
}

/// When a segment is next due after an object read a usable observation of it (sent at `at`): a
/// settled one is drift-checked only while some object wants that.
pub fn read(phase: &Phase, due: Option<Instant>, at: Instant, drift: Option<Duration>) -> Option<Instant> {
    match phase {
        Phase::Settled => drift.map(|every| due.unwrap_or(at + every)),
        _ => due,
    }
}

/// When a segment is next due after an object asked and found nothing usable: at once, unless
/// the look at a change under way is already scheduled (for when such changes usually end).
pub fn wanted(phase: &Phase, due: Option<Instant>, now: Instant) -> Option<Instant> {
    match (phase.underway(), due) {
        (Some(_), Some(due)) => Some(due),
        (_, due) => Some(due.map_or(now, |d| d.min(now))),
    }
}

/// The first look at a change this operator started. Until one change of its kind has been seen
/// to end, only one is timed: when `others_in_flight` (this operator's changes of the kind under
/// way), a new one waits well past the prior, for the first to tell how long they take.
pub fn first_look(durations: &mut Durations, others_in_flight: bool) -> FirstLook {
    if others_in_flight && !durations.known() {
        return FirstLook { after: durations.expected().saturating_mul(SCOUTED_WAIT_FACTOR), probe: false };
    }
    durations.first_look()
}

/// This operator's call started a change at `now`: it is under way, timed to its end, and first
/// looked at as `first` says.
pub fn started(change: Change, now: Instant, first: FirstLook) -> (Phase, Option<Instant>) {
    (Phase::Changing(Underway { change, since: now, ours: true, probe: first.probe }), Some(now + first.after))
}

/// Only a look by ID can tell now (absent from a multi-page scan, or the cloud contradicted what
/// was known): one is due at once, and a change under way goes on being timed.
pub fn confirm_by_id(phase: &Phase, now: Instant) -> (Phase, Option<Instant>) {
    (Phase::Confirming(phase.underway()), Some(now))
}

/// The first change of its kind has just been timed: this operator's changes of the kind not
/// looked at yet (they waited for it) are due when such changes usually end.
pub fn timed(
    phase: &Phase,
    looked: bool,
    due: Option<Instant>,
    change: Change,
    expected: Duration,
    now: Instant,
) -> Option<Instant> {
    match phase.underway() {
        Some(u) if u.ours && u.change == change && !looked => {
            let at = (u.since + expected).max(now);
            Some(due.map_or(at, |d| d.min(at)))
        }
        _ => due,
    }
}

/// Whether the objects hear of a failed look: when one asked, and when failures persist and this
/// one is not reported yet.
pub fn failure_reported(waiting: bool, reported: bool, failures: u32) -> bool {
    waiting || (failures >= PERSISTENT_FAILURES && !reported)
}

/// The segments one sweep looks at.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Only a look by ID can tell.
    pub by_id: Vec<String>,
    /// By ID or by region pages, as [`choose`] finds cheaper.
    pub others: Vec<String>,
    /// Of `others`, how many are expected to vanish (releases under way).
    pub vanishing: usize,
}

impl Sweep {
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty() && self.others.is_empty()
    }
}

/// The segments (ID, phase, due) due by `now`; when any is, also the settled ones due by `slack`
/// (drift checks), so that one scan serves them all.
pub fn sweep<'a>(
    segments: impl IntoIterator<Item = (&'a str, &'a Phase, Option<Instant>)>,
    now: Instant,
    slack: Instant,
) -> Sweep {
    let mut sweep = Sweep::default();
    let mut soon = Vec::new();
    for (id, phase, due) in segments {
        match (phase, due) {
            (Phase::Confirming(_), Some(d)) if d <= now => sweep.by_id.push(id.to_string()),
            (_, Some(d)) if d <= now => {
                if phase.underway().is_some_and(|u| u.change == Change::Releasing) {
                    sweep.vanishing += 1;
                }
                sweep.others.push(id.to_string());
            }
            (Phase::Settled, Some(d)) if d <= slack => soon.push(id.to_string()),
            _ => {}
        }
    }
    if !sweep.is_empty() {
        sweep.others.extend(soon);
    }
    sweep
}

/// How one sweep looks at the segments that are due.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// One DescribeEipSegment by ID per due segment.
    ById,
    /// Every page of the region (`pages` calls, when known), then by ID for what the pages could
    /// not settle.
    Pages { pages: Option<u32> },
}

/// Pages the region takes, when its size is known.
pub fn pages_for(total: u32) -> u32 {
    total.div_ceil(PAGE_SIZE).max(1)
}

/// The cheaper way to learn about `due` segments, given the region's size at the last page (if
/// any). Absence is only certain from a look by ID or from one page holding the whole region, so
/// multi-page scans also cost a look by ID for each due segment that is expected to vanish.
pub fn choose(due: usize, expected_to_vanish: usize, region_total: Option<u32>) -> Plan {
    if due == 0 {
        return Plan::ById;
    }
    match region_total {
        // Unknown size: one page is as cheap as two looks by ID and tells the size.
        None if due >= 2 => Plan::Pages { pages: None },
        None => Plan::ById,
        Some(total) => {
            let pages = pages_for(total);
            let confirmations = if pages == 1 { 0 } else { expected_to_vanish };
            if (pages as usize + confirmations) < due { Plan::Pages { pages: Some(pages) } } else { Plan::ById }
        }
    }
}

/// Whether a sweep due now may wait for the next due segment, so that one page serves both: only
/// when the whole region fits in one page and the wait is short.
pub fn hold_for(next_due_in: Option<Duration>, region_total: Option<u32>, max_hold: Duration) -> Option<Duration> {
    let next = next_due_in?;
    let single_page = region_total.is_some_and(|t| pages_for(t) == 1);
    (single_page && next <= max_hold).then_some(next)
}

/// How long a due sweep may wait.
#[derive(Clone, Copy, Debug)]
pub struct Holds {
    /// For other registrations, when first looks are due (many objects starting at once).
    pub gather: Duration,
    /// For the next due segment to share one page (regions of one page).
    pub hold: Duration,
}

/// What a region's task does next.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wait {
    /// Nothing is due: until a registration.
    Idle,
    /// Until then, or until a registration.
    Until(Instant),
    /// Sweep after this long (zero: at once).
    Sweep(Duration),
}

/// When the region's next sweep goes, given each segment's (phase, due) and how long a throttling
/// answer paused the region.
pub fn next_sweep<'a>(
    segments: impl IntoIterator<Item = (&'a Phase, Option<Instant>)>,
    paused_until: Option<Instant>,
    region_total: Option<u32>,
    now: Instant,
    holds: Holds,
) -> Wait {
    let (mut first, mut later, mut gathering) = (None::<Instant>, None::<Instant>, false);
    for (phase, due) in segments {
        let Some(due) = due else { continue };
        first = Some(first.map_or(due, |f| f.min(due)));
        if due > now {
            later = Some(later.map_or(due, |l| l.min(due)));
        } else if *phase == Phase::Awaiting {
            gathering = true;
        }
    }
    let Some(first) = first else { return Wait::Idle };
    let first = paused_until.map_or(first, |p| first.max(p));
    if first > now {
        return Wait::Until(first);
    }
    if gathering {
        return Wait::Sweep(holds.gather);
    }
    Wait::Sweep(hold_for(later.map(|l| l - now), region_total, holds.hold).unwrap_or_default())
}

/// Learns how long a change (allocation or release) takes from what the polls saw: the longest
/// time a segment was still seen changing (a lower bound) and the shortest time by which one had
/// finished (an upper bound). Segments take their first look at the upper bound; while the bounds
/// are far apart, one segment at a time probes halfway, so that a miss costs one look, not one per
/// segment in flight.
#[derive(Clone, Debug)]
pub struct Durations {
    prior: Duration,
    tolerance: Duration,
    lower: VecDeque<Duration>,
    upper: VecDeque<Duration>,
    probing: bool,
}

const SAMPLES: usize = 32;

/// When a segment's first look goes, and whether it is the probe.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirstLook {
    pub after: Duration,
    pub probe: bool,
}

impl Durations {
    pub fn new(prior: Duration, tolerance: Duration) -> Self {
        Durations { prior, tolerance, lower: VecDeque::new(), upper: VecDeque::new(), probing: false }
    }

    /// A segment was still changing this long after the change began.
    pub fn still_changing_after(&mut self, elapsed: Duration) {
        push(&mut self.lower, elapsed);
    }

    /// A segment had finished changing by this long after the change began. Only a tighter bound
    /// is kept: a look at or past the bound (most looks go there, some later still, behind a
    /// storm's others) says nothing new, and would push the probes' findings out of the window.
    pub fn finished_by(&mut self, elapsed: Duration) {
        if self.upper.iter().min().is_some_and(|hi| elapsed >= *hi) {
            return;
        }
        push(&mut self.upper, elapsed);
    }

    /// Whether anything was learned yet.
    pub fn known(&self) -> bool {
        !self.upper.is_empty()
    }

    /// When, after its change began, a segment that has no probe role is first worth a look.
    pub fn expected(&self) -> Duration {
        self.upper_bound().unwrap_or(self.prior)
    }

    /// The least time by which the changes seen lately had ended: the smallest bound a finished
    /// change set, unless another change outlasted it (changes begin a little apart from when this
    /// operator notes them, as a storm's calls wait for their status writes), then just past the
    /// longest one seen, so that a storm's first looks do not come too early and cost another.
    fn upper_bound(&self) -> Option<Duration> {
        let hi = self.upper.iter().min().copied()?;
        let lo = self.lower.iter().max().copied().unwrap_or_default();
        Some(if lo >= hi { lo + self.tolerance / 4 } else { hi })
    }

    /// The first look of a new change: halfway between the bounds if they are far apart and no
    /// other probe is out, else the upper bound.
    pub fn first_look(&mut self) -> FirstLook {
        let Some(hi) = self.upper_bound() else { return FirstLook { after: self.prior, probe: false } };
        let lo = self.lower.iter().max().copied().unwrap_or_default();
        if hi > lo + self.tolerance && !self.probing {
            self.probing = true;
            return FirstLook { after: lo + (hi - lo) / 2, probe: true };
        }
        FirstLook { after: hi, probe: false }
    }

    /// The probe's outcome is in (or it was abandoned): another may go.
    pub fn probe_done(&mut self) {
        self.probing = false;
    }
}

fn push(window: &mut VecDeque<Duration>, value: Duration) {
    if window.len() == SAMPLES {
        window.pop_front();
    }
    window.push_back(value);
}

#[cfg(test)]
mod tests {
    use super::*;
    use SegmentStatus::{Allocated, Allocating, Released, Releasing};

    fn s(secs: f64) -> Duration {
        Duration::from_secs_f64(secs)
    }

    fn present(status: SegmentStatus) -> Saw {
        Saw::Present(status)
    }

    fn unknown() -> SegmentStatus {
        SegmentStatus::Other("Maintaining".into())
    }

    fn learned(change: Change, secs: f64, finished: bool) -> Option<Learned> {
        Some(Learned { change, elapsed: s(secs), finished })
    }

    const POLL: f64 = 0.5;
    const DRIFT: f64 = 10.0;

    /// (phase, what objects can read, an object waits, the look saw, seconds since the change
    /// began (or since t0), drift checks wanted)
    type Given = (Phase, Option<Saw>, bool, Saw, f64, bool);
    /// (next phase, wake, learned, due in seconds after the look)
    type Want = (Phase, bool, Option<Learned>, Option<f64>);

    #[test]
    fn what_a_look_makes_of_a_segment() {
        let t0 = Instant::now();
        let ours = |change| Phase::Changing(Underway { change, since: t0, ours: true, probe: false });
        let theirs = |secs: f64| Phase::Changing(Underway::seen(Change::Releasing, t0 + s(secs)));
        let (alloc, rel) = (ours(Change::Allocating), ours(Change::Releasing));
        let (a, r) = (Change::Allocating, Change::Releasing);
        let confirming = Phase::Confirming(rel.underway());
        use Phase::{Awaiting, Gone, Settled, Unsettled};
        use Saw::Absent;
        #[rustfmt::skip]
        let table: Vec<(Given, Want)> = vec![
            // A first look settles what the status says.
            ((Awaiting, None, true, present(Allocated), 0.0, true), (Settled, true, None, Some(DRIFT))),
            ((Awaiting, None, true, present(Allocated), 0.0, false), (Settled, true, None, None)),
            ((Awaiting, None, true, Absent, 0.0, true), (Gone, true, None, None)),
            ((Awaiting, None, true, present(Releasing), 3.0, true), (theirs(3.0), true, None, Some(POLL))),
            // A status this operator does not know keeps being looked at, drift checks or not.
            ((Awaiting, None, true, present(unknown()), 0.0, false), (Unsettled, true, None, Some(POLL))),
            ((Awaiting, None, true, present(Released), 0.0, false), (Unsettled, true, None, Some(POLL))),
            ((Unsettled, Some(present(unknown())), false, present(unknown()), 0.0, false), (Unsettled, false, None, Some(POLL))),
            ((Unsettled, Some(present(unknown())), false, present(Allocated), 0.0, false), (Settled, true, None, None)),
            // Drift checks: quiet while nothing changes, a wake when the segment is gone.
            ((Settled, Some(present(Allocated)), false, present(Allocated), 0.0, true), (Settled, false, None, Some(DRIFT))),
            ((Settled, Some(present(Allocated)), false, Absent, 0.0, true), (Gone, true, None, None)),
            ((Gone, Some(Absent), false, Absent, 0.0, true), (Gone, false, None, None)),
            ((Gone, Some(Absent), true, Absent, 0.0, true), (Gone, true, None, None)),
            // A release this operator started: timed to its end; the object hears only of the end.
            // Still under way: looked at again soon, its end being near.
            ((rel, None, true, present(Releasing), 2.0, false), (rel, false, learned(r, 2.0, false), Some(POLL / 4.0))),
            ((rel, None, true, Absent, 5.0, false), (Gone, true, learned(r, 5.0, true), None)),
            ((rel, None, true, present(Allocated), 3.0, false), (rel, false, None, Some(POLL))),
            ((rel, None, true, present(Allocated), 120.0, false), (rel, true, None, Some(POLL))),
            // An allocation this operator started.
            ((alloc, None, true, present(Allocating), 1.0, true), (alloc, false, learned(a, 1.0, false), Some(POLL / 4.0))),
            ((alloc, None, true, Absent, 1.0, true), (alloc, false, None, Some(POLL))),
            ((alloc, None, true, present(Allocated), 4.0, true), (Settled, true, learned(a, 4.0, true), Some(DRIFT))),
            ((alloc, None, true, present(unknown()), 4.0, true), (Unsettled, true, learned(a, 4.0, true), Some(POLL))),
            ((alloc, None, true, present(Releasing), 4.0, true), (theirs(4.0), true, learned(a, 4.0, true), Some(POLL))),
            // A release someone else began: news once, then its end.
            ((theirs(0.0), Some(present(Releasing)), false, present(Releasing), 3.0, true), (theirs(0.0), false, None, Some(POLL))),
            ((theirs(0.0), None, true, present(Releasing), 3.0, true), (theirs(0.0), true, None, Some(POLL))),
            ((theirs(0.0), Some(present(Releasing)), false, Absent, 3.0, true), (Gone, true, None, None)),
            // A look by ID settles what a multi-page scan or a contradiction could not.
            ((Phase::Confirming(None), None, true, Absent, 0.0, true), (Gone, true, None, None)),
            ((Phase::Confirming(None), None, true, present(Allocated), 0.0, true), (Settled, true, None, Some(DRIFT))),
            ((confirming, None, true, Absent, 5.0, false), (Gone, true, learned(r, 5.0, true), None)),
            ((confirming, None, true, present(Releasing), 2.0, false), (rel, false, learned(r, 2.0, false), Some(POLL / 4.0))),
        ];
        for ((phase, last, waiting, saw, elapsed, drift), (want_phase, want_wake, want_learned, want_due)) in table {
            let at = t0 + s(elapsed);
            let before = Before { phase, last: last.clone(), waiting, not_before: t0 };
            let pace = Pace { now: at, poll: s(POLL), relook: s(POLL / 4.0), drift: drift.then_some(s(DRIFT)) };
            let row = format!("{phase:?}, last {last:?}, waiting {waiting}, saw {saw:?} after {elapsed}s");
            let next = observed(&before, &Look { at, saw }, &pace).expect(&row);
            assert_eq!(next.phase, want_phase, "{row}");
            assert_eq!(next.wake, want_wake, "wake: {row}");
            assert_eq!(next.learned, want_learned, "learned: {row}");
            assert_eq!(next.due, want_due.map(|d| at + s(d)), "due: {row}");
        }
    }

    #[test]
    fn a_stale_look_says_nothing() {
        let t0 = Instant::now();
        let before = Before { phase: Phase::Awaiting, last: None, waiting: true, not_before: t0 + s(1.0) };
        let pace = Pace { now: t0 + s(2.0), poll: s(POLL), relook: s(POLL), drift: None };
        assert_eq!(observed(&before, &Look { at: t0, saw: Saw::Absent }, &pace), None);
    }

    #[test]
    fn the_probe_is_spent_by_its_look_whatever_it_saw() {
        let t0 = Instant::now();
        let probe = Underway { change: Change::Releasing, since: t0, ours: true, probe: true };
        for saw in [present(Releasing), present(Allocated), Saw::Absent] {
            let before = Before { phase: Phase::Changing(probe), last: None, waiting: true, not_before: t0 };
            let pace = Pace { now: t0 + s(1.0), poll: s(POLL), relook: s(POLL), drift: None };
            let next = observed(&before, &Look { at: t0 + s(1.0), saw: saw.clone() }, &pace).expect("fresh");
            assert_eq!(next.probe_spent, Some(Change::Releasing), "{saw:?}");
            assert_eq!(next.phase.probe(), None, "{saw:?}");
        }
    }

    #[test]
    fn a_segment_leaves_the_region_when_seen_to_vanish() {
        let t0 = Instant::now();
        let rel = Phase::Changing(Underway { change: Change::Releasing, since: t0, ours: true, probe: false });
        // (phase, what objects can read, the look saw) -> vanished
        let table = [
            (Phase::Settled, Some(present(Allocated)), Saw::Absent, true),
            (rel, None, Saw::Absent, true),
            (Phase::Gone, Some(Saw::Absent), Saw::Absent, false),
            (Phase::Awaiting, None, Saw::Absent, false),
            (rel, None, present(Releasing), false),
        ];
        for (phase, last, saw, want) in table {
            let before = Before { phase, last: last.clone(), waiting: false, not_before: t0 };
            let pace = Pace { now: t0 + s(1.0), poll: s(POLL), relook: s(POLL), drift: None };
            let next = observed(&before, &Look { at: t0 + s(1.0), saw: saw.clone() }, &pace).expect("fresh");
            assert_eq!(next.vanished, want, "{phase:?}, last {last:?}, saw {saw:?}");
        }
    }

    #[test]
    fn an_object_asking_schedules_a_look() {
        let t0 = Instant::now();
        let later = Some(t0 + s(5.0));
        let rel = Phase::Changing(Underway { change: Change::Releasing, since: t0, ours: true, probe: false });
        // Nothing usable: at once, unless a change's first look is scheduled.
        assert_eq!(wanted(&Phase::Awaiting, None, t0), Some(t0));
        assert_eq!(wanted(&Phase::Settled, later, t0), Some(t0));
        assert_eq!(wanted(&rel, later, t0), later, "a change is looked at when such changes end");
        assert_eq!(wanted(&rel, None, t0), Some(t0));
        // Something usable: drift checks follow the objects' wish; nothing else moves.
        assert_eq!(read(&Phase::Settled, None, t0, Some(s(DRIFT))), Some(t0 + s(DRIFT)));
        assert_eq!(read(&Phase::Settled, later, t0, Some(s(DRIFT))), later);
        assert_eq!(read(&Phase::Settled, later, t0, None), None);
        assert_eq!(read(&Phase::Unsettled, later, t0, None), later, "an unknown status stays under watch");
        assert_eq!(read(&rel, later, t0, None), later);
    }

    #[test]
    fn a_change_this_operator_starts() {
        let t0 = Instant::now();
        let first = FirstLook { after: s(2.0), probe: true };
        let (phase, due) = started(Change::Releasing, t0, first);
        assert_eq!(phase, Phase::Changing(Underway { change: Change::Releasing, since: t0, ours: true, probe: true }));
        assert_eq!(due, Some(t0 + s(2.0)));
        // A contradiction keeps the change's timing but needs a look by ID.
        assert_eq!(confirm_by_id(&phase, t0 + s(1.0)), (Phase::Confirming(phase.underway()), Some(t0 + s(1.0))));
        assert_eq!(confirm_by_id(&Phase::Settled, t0), (Phase::Confirming(None), Some(t0)));
    }

    #[test]
    fn the_first_change_of_a_kind_is_timed_alone() {
        let mut d = Durations::new(s(2.0), s(1.0));
        assert_eq!(first_look(&mut d, false), FirstLook { after: s(2.0), probe: false });
        assert_eq!(first_look(&mut d, true), FirstLook { after: s(16.0), probe: false }, "waits for the first");
        d.finished_by(s(3.0));
        assert_eq!(first_look(&mut d, true), FirstLook { after: s(1.5), probe: true }, "known: no more waiting");

        // Once timed, those that waited are due when such changes end (or at once if that is past).
        let t0 = Instant::now();
        let waited = Phase::Changing(Underway { change: Change::Releasing, since: t0, ours: true, probe: false });
        let far = Some(t0 + s(16.0));
        assert_eq!(timed(&waited, false, far, Change::Releasing, s(3.0), t0 + s(1.0)), Some(t0 + s(3.0)));
        assert_eq!(timed(&waited, false, far, Change::Releasing, s(3.0), t0 + s(5.0)), Some(t0 + s(5.0)));
        assert_eq!(timed(&waited, true, far, Change::Releasing, s(3.0), t0), far, "already looked at");
        assert_eq!(timed(&waited, false, far, Change::Allocating, s(3.0), t0), far, "another kind");
        let theirs = Phase::Changing(Underway::seen(Change::Releasing, t0));
        assert_eq!(timed(&theirs, false, far, Change::Releasing, s(3.0), t0), far, "not this operator's");
    }

    #[test]
    fn objects_hear_of_failures_they_asked_about_and_of_persistent_ones() {
        assert!(failure_reported(true, false, 1));
        assert!(!failure_reported(false, false, 2));
        assert!(failure_reported(false, false, 3));
        assert!(!failure_reported(false, true, 3), "reported once");
    }

    #[test]
    fn what_one_sweep_looks_at() {
        let t0 = Instant::now();
        let now = t0 + s(10.0);
        let rel = Phase::Changing(Underway { change: Change::Releasing, since: t0, ours: true, probe: false });
        let alloc = Phase::Changing(Underway { change: Change::Allocating, since: t0, ours: true, probe: false });
        let confirming = Phase::Confirming(None);
        let segments = [
            ("due", &Phase::Settled, Some(t0)),
            ("releasing", &rel, Some(now)),
            ("allocating", &alloc, Some(t0)),
            ("confirm", &confirming, Some(now)),
            ("drift-soon", &Phase::Settled, Some(now + s(0.5))),
            ("unsettled-soon", &Phase::Unsettled, Some(now + s(0.5))),
            ("later", &Phase::Settled, Some(now + s(5.0))),
            ("gone", &Phase::Gone, None),
        ];
        let got = sweep(segments.iter().copied(), now, now + s(1.0));
        assert_eq!(got.by_id, ["confirm"]);
        assert_eq!(got.others, ["due", "releasing", "allocating", "drift-soon"]);
        assert_eq!(got.vanishing, 1);
        let quiet = [("drift-soon", &Phase::Settled, Some(now + s(0.5)))];
        assert!(sweep(quiet.iter().copied(), now, now + s(1.0)).is_empty(), "drift checks come along, never alone");
    }

    #[test]
    fn when_the_next_sweep_goes() {
        let t0 = Instant::now();
        let holds = Holds { gather: s(0.3), hold: s(1.0) };
        let next = |segments: &[(Phase, Option<Instant>)], paused: Option<Instant>, total: Option<u32>| {
            next_sweep(segments.iter().map(|(p, d)| (p, *d)), paused, total, t0, holds)
        };
        assert_eq!(next(&[], None, None), Wait::Idle);
        assert_eq!(next(&[(Phase::Gone, None)], None, None), Wait::Idle);
        assert_eq!(next(&[(Phase::Settled, Some(t0 + s(4.0)))], None, None), Wait::Until(t0 + s(4.0)));
        assert_eq!(next(&[(Phase::Settled, Some(t0))], Some(t0 + s(2.0)), None), Wait::Until(t0 + s(2.0)), "throttled");
        assert_eq!(next(&[(Phase::Awaiting, Some(t0))], None, None), Wait::Sweep(s(0.3)), "gathering first looks");
        let two = [(Phase::Settled, Some(t0)), (Phase::Settled, Some(t0 + s(0.4)))];
        assert_eq!(next(&two, None, Some(30)), Wait::Sweep(s(0.4)), "one page serves both");
        assert_eq!(next(&two, None, Some(60)), Wait::Sweep(Duration::ZERO), "two pages: no saving");
    }

    #[test]
    fn choosing_how_to_look() {
        // (due, expected to vanish, region total) -> plan
        let table: &[(usize, usize, Option<u32>, Plan)] = &[
            (0, 0, None, Plan::ById),
            (1, 0, None, Plan::ById),
            (2, 0, None, Plan::Pages { pages: None }),
            (1, 1, Some(10), Plan::ById),
            (2, 2, Some(10), Plan::Pages { pages: Some(1) }),
            (2, 0, Some(50), Plan::Pages { pages: Some(1) }),
            (2, 0, Some(51), Plan::ById),
            (3, 0, Some(51), Plan::Pages { pages: Some(2) }),
            // Restart with 10,000 settled segments: 200 pages instead of 10,000 looks.
            (10_000, 0, Some(10_000), Plan::Pages { pages: Some(200) }),
            // Releases in a large region: each must be confirmed by ID anyway.
            (30, 30, Some(1000), Plan::ById),
            (20, 0, Some(1000), Plan::ById),
            (21, 0, Some(1000), Plan::Pages { pages: Some(20) }),
        ];
        for (due, vanish, total, want) in table {
            assert_eq!(choose(*due, *vanish, *total), *want, "due {due}, vanish {vanish}, total {total:?}");
        }
    }

    #[test]
    fn holding_a_sweep_for_a_shared_page() {
        let max = s(1.0);
        assert_eq!(hold_for(Some(s(0.4)), Some(30), max), Some(s(0.4)));
        assert_eq!(hold_for(Some(s(1.5)), Some(30), max), None, "too long a wait");
        assert_eq!(hold_for(Some(s(0.4)), Some(60), max), None, "two pages: no saving");
        assert_eq!(hold_for(Some(s(0.4)), None, max), None, "size unknown");
        assert_eq!(hold_for(None, Some(30), max), None, "nothing else due");
    }

    #[test]
    fn learning_a_duration_converges_to_one_look() {
        let mut d = Durations::new(s(2.0), s(1.0));
        assert_eq!(d.first_look(), FirstLook { after: s(2.0), probe: false }, "the prior before anything is known");
        // A 5 s release polled every 2 s: seen at 2 and 4, gone at 6.
        d.still_changing_after(s(2.0));
        d.still_changing_after(s(4.0));
        d.finished_by(s(6.0));
        assert_eq!(d.first_look(), FirstLook { after: s(5.0), probe: true }, "one probe halfway between 4 and 6");
        assert_eq!(
            d.first_look(),
            FirstLook { after: s(6.0), probe: false },
            "the others at the upper bound meanwhile"
        );
        d.finished_by(s(5.0));
        d.probe_done();
        assert_eq!(d.first_look(), FirstLook { after: s(5.0), probe: false }, "close bounds: the upper one, no probe");
        assert_eq!(d.expected(), s(5.0));
    }

    #[test]
    fn a_missed_probe_raises_the_lower_bound_and_a_slower_cloud_is_followed() {
        let mut d = Durations::new(s(2.0), s(1.0));
        d.finished_by(s(3.0));
        assert_eq!(d.first_look(), FirstLook { after: s(1.5), probe: true }, "no lower bound yet: halfway from zero");
        d.still_changing_after(s(1.5));
        d.probe_done();
        assert_eq!(d.first_look(), FirstLook { after: s(2.25), probe: true });
        d.still_changing_after(s(2.25));
        d.probe_done();
        assert_eq!(d.first_look(), FirstLook { after: s(3.0), probe: false }, "within tolerance: the upper bound");
        // The cloud slows down: changes still under way past the bound put the first look just
        // past the longest seen.
        for _ in 0..SAMPLES {
            d.still_changing_after(s(8.0));
            d.finished_by(s(9.0));
        }
        assert_eq!(d.first_look(), FirstLook { after: s(8.25), probe: false });
    }

    #[test]
    fn looks_at_or_past_the_bound_do_not_push_a_probes_finding_out() {
        let mut d = Durations::new(s(2.0), s(1.0));
        d.still_changing_after(s(4.0));
        d.finished_by(s(6.0));
        d.finished_by(s(5.1));
        // A storm's others, looked at on the old bound and later, behind one another.
        for i in 0..(2 * SAMPLES) {
            d.finished_by(s(6.0 + 0.05 * i as f64));
        }
        assert_eq!(d.expected(), s(5.1));
    }

    #[test]
    fn a_change_that_outlasted_the_bound_moves_it() {
        // A storm: one release noted late ended 2.0 s after it was noted, another noted early was
        // still under way at 2.1 s.
        let mut d = Durations::new(s(2.0), s(1.0));
        d.finished_by(s(2.0));
        d.still_changing_after(s(2.1));
        assert_eq!(d.first_look(), FirstLook { after: s(2.35), probe: false }, "just past the longest seen");
        assert_eq!(d.expected(), s(2.35));
    }
}
