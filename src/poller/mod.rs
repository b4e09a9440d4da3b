//! Shared, batched polling. One task per (account, region) knows every segment some object is
//! waiting on, looks at them when they are due (by ID when few are due, by region pages when many
//! are), learns how long allocations and releases take, and wakes an object's reconcile when its
//! segment changes. Reconciles never call DescribeEipSegment themselves: they read the last
//! observation here, or register and wait to be woken.
//!
//! The decisions (each segment's [`plan::Phase`] and what a look makes of it, when it is due, how
//! to look) are pure, in [`plan`]; this module gathers, performs the looks and wakes.

pub mod plan;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::debug;

use crate::cloud::model::{Segment, SegmentStatus};
use crate::cloud::{CloudError, ErrorClass, VpcClient};
pub use plan::Change;
use plan::{Durations, PAGE_SIZE, Phase, Plan, Saw};

/// Whose segments, where: one poller task each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// The Alibaba Cloud account ID the client acts for, as STS GetCallerIdentity proved it before
    /// registering. Every observation under a key is therefore that account's answer, whichever
    /// credentials (the operator's own, or a Secret's) asked for it.
    pub account: String,
    pub region: String,
}

/// The object to wake when its segment changes.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct WakeTarget {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug)]
pub enum Seen {
    Present(Segment),
    /// Not returned by a look that proves absence (by ID, or one page holding the whole region).
    Absent,
    Failed(Arc<CloudError>),
}

#[derive(Clone, Debug)]
pub struct Observation {
    /// When the look was sent: the cloud's state is at least this recent.
    pub at: Instant,
    pub seen: Seen,
}

#[derive(Clone, Copy, Debug)]
pub struct PollerConfig {
    /// First look at a change before anything is learned, and the interval of later looks.
    pub poll: Duration,
    /// Drift checks of settled segments.
    pub drift: Duration,
    /// How long a sweep may wait so that one page serves the next due segment too (only when the
    /// region fits in one page): a quarter of the poll interval, so that a storm's changes, which
    /// end a little apart, share pages without their objects hearing of them late.
    pub hold: Duration,
    /// How long a first look waits for other registrations (many objects starting at once).
    pub gather: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    /// Concurrent looks by ID within one sweep.
    pub parallel_looks: usize,
}

impl PollerConfig {
    pub fn new(poll: Duration, drift: Duration, backoff_max: Duration) -> Self {
        PollerConfig {
            poll,
            drift,
            hold: poll / 4,
            gather: Duration::from_millis(300),
            backoff_base: Duration::from_secs(1),
            backoff_max,
            parallel_looks: 8,
        }
    }
}

pub struct Poller {
    config: PollerConfig,
    epoch: Instant,
    regions: Mutex<HashMap<Key, Arc<Region>>>,
    wake: mpsc::UnboundedSender<WakeTarget>,
}

struct Region {
    state: Mutex<RegionState>,
    notify: Notify,
}

struct RegionState {
    /// The client last given for this key: the poller's looks go through it.
    client: VpcClient,
    watched: HashMap<String, Watched>,
    /// The region's TotalCount at the last page, followed between scans.
    total: Option<u32>,
    /// Presence seen by the last page scan, for objects that register after their page went by.
    scanned: HashMap<String, Observation>,
    /// When the last page scan of the region began: `scanned` holds what it found unwatched.
    scanned_at: Option<Instant>,
    allocations: Durations,
    releases: Durations,
    failures: u32,
    paused_until: Option<Instant>,
}

impl RegionState {
    fn durations(&self, change: Change) -> &Durations {
        match change {
            Change::Allocating => &self.allocations,
            Change::Releasing => &self.releases,
        }
    }

    fn durations_mut(&mut self, change: Change) -> &mut Durations {
        match change {
            Change::Allocating => &mut self.allocations,
            Change::Releasing => &mut self.releases,
        }
    }

    /// The segment is watched no more; a probe it was taking ends with it.
    fn unwatch(&mut self, segment_id: &str) {
        if let Some(change) = self.watched.remove(segment_id).and_then(|w| w.phase.probe()) {
            self.durations_mut(change).probe_done();
        }
    }

    /// The segment's record, created (awaiting its first look) if none is.
    fn entry(&mut self, segment_id: &str, epoch: Instant) -> &mut Watched {
        self.watched.entry(segment_id.to_string()).or_insert_with(|| Watched::new(epoch))
    }

    /// Another of this operator's changes of the kind is under way on another segment.
    fn others_in_flight(&self, segment_id: &str, change: Change) -> bool {
        self.watched
            .iter()
            .any(|(id, w)| id != segment_id && w.phase.underway().is_some_and(|u| u.ours && u.change == change))
    }
}

/// One object's registration on a segment.
struct Registration {
    target: WakeTarget,
    /// It wants the segment drift-checked once settled.
    drift: bool,
}

/// What is kept of a watched segment's last look. Of a present segment, only what objects read
/// (its status, CIDR and size), not its whole listing: thousands of segments are watched at once.
#[derive(Clone)]
struct LastLook {
    at: Instant,
    seen: Kept,
}

#[derive(Clone)]
enum Kept {
    Present { status: SegmentStatus, cidr: Box<str>, ip_count: Option<u32> },
    Absent,
    Failed(Arc<CloudError>),
}

impl LastLook {
    fn of(obs: Observation) -> LastLook {
        let seen = match obs.seen {
            Seen::Present(s) => Kept::Present { status: s.status, cidr: s.segment.into(), ip_count: s.ip_count },
            Seen::Absent => Kept::Absent,
            Seen::Failed(e) => Kept::Failed(e),
        };
        LastLook { at: obs.at, seen }
    }

    /// The look as objects read it, of the segment `id`.
    fn observation(&self, id: &str) -> Observation {
        let seen = match &self.seen {
            Kept::Present { status, cidr, ip_count } => Seen::Present(Segment {
                instance_id: id.to_string(),
                status: status.clone(),
                segment: cidr.to_string(),
                ip_count: *ip_count,
                region_id: String::new(),
                zone: String::new(),
                name: String::new(),
                description: String::new(),
                creation_time: String::new(),
            }),
            Kept::Absent => Seen::Absent,
            Kept::Failed(e) => Seen::Failed(e.clone()),
        };
        Observation { at: self.at, seen }
    }

    /// What the plan reads of it; `None` for a failure, which says nothing of the segment.
    fn saw(&self) -> Option<Saw> {
        match &self.seen {
            Kept::Present { status, .. } => Some(Saw::Present(status.clone())),
            Kept::Absent => Some(Saw::Absent),
            Kept::Failed(_) => None,
        }
    }

    fn failed(&self) -> bool {
        matches!(self.seen, Kept::Failed(_))
    }
}

/// A watched segment: who is registered on it, its phase, and what objects can read.
struct Watched {
    registrations: Vec<Registration>,
    phase: Phase,
    /// Observations sent before this are stale: they predate this operator's last change or
    /// fresh look.
    not_before: Instant,
    /// What objects read (a failure only until one has read it).
    last: Option<LastLook>,
    due: Option<Instant>,
    /// An object asked and found nothing usable: wake it on the next observation.
    waiting: bool,
}

impl Watched {
    fn new(epoch: Instant) -> Self {
        Watched {
            // Nearly always one object: room for it alone (a first push would make room for four).
            registrations: Vec::with_capacity(1),
            phase: Phase::Awaiting,
            not_before: epoch,
            last: None,
            due: None,
            waiting: false,
        }
    }

    /// Registers the object (again); `drift`: its wish for drift checks, when it says one.
    fn register(&mut self, target: WakeTarget, drift: Option<bool>) {
        match self.registrations.iter_mut().find(|r| r.target == target) {
            Some(r) => r.drift = drift.unwrap_or(r.drift),
            None => self.registrations.push(Registration { target, drift: drift.unwrap_or(false) }),
        }
    }

    /// What was known predates `now`: the objects wait for a look sent after it.
    fn outdated(&mut self, now: Instant) {
        self.not_before = now;
        self.last = None;
        self.waiting = true;
    }

    fn targets(&self) -> Vec<WakeTarget> {
        self.registrations.iter().map(|r| r.target.clone()).collect()
    }

    /// The drift-check interval, while some registered object wants drift checks.
    fn drift(&self, every: Duration) -> Option<Duration> {
        self.registrations.iter().any(|r| r.drift).then_some(every)
    }

    fn before(&self) -> plan::Before {
        plan::Before {
            phase: self.phase,
            last: self.last.as_ref().and_then(LastLook::saw),
            waiting: self.waiting,
            not_before: self.not_before,
        }
    }
}

/// What a look saw, as the plan reads it; `None` for a failure, which says nothing of the segment.
fn saw(seen: &Seen) -> Option<Saw> {
    match seen {
        Seen::Present(s) => Some(Saw::Present(s.status.clone())),
        Seen::Absent => Some(Saw::Absent),
        Seen::Failed(_) => None,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Poller {
    /// The poller and the stream of objects to wake.
    pub fn new(config: PollerConfig) -> (Arc<Poller>, mpsc::UnboundedReceiver<WakeTarget>) {
        let (wake, woken) = mpsc::unbounded_channel();
        (Arc::new(Poller { config, epoch: Instant::now(), regions: Mutex::default(), wake }), woken)
    }

    /// The key's region, its task started on first use; `client` becomes the one its looks use.
    fn region(self: &Arc<Self>, key: &Key, client: &VpcClient) -> Arc<Region> {
        let mut regions = lock(&self.regions);
        if let Some(r) = regions.get(key) {
            lock(&r.state).client = client.clone();
            return r.clone();
        }
        let region = Arc::new(Region {
            state: Mutex::new(RegionState {
                client: client.clone(),
                watched: HashMap::new(),
                total: None,
                scanned: HashMap::new(),
                scanned_at: None,
                allocations: Durations::new(self.config.poll, Duration::from_secs(1)),
                releases: Durations::new(self.config.poll, Duration::from_secs(1)),
                failures: 0,
                paused_until: None,
            }),
            notify: Notify::new(),
        });
        regions.insert(key.clone(), region.clone());
        tokio::spawn(self.clone().run(key.clone(), region.clone()));
        region
    }

    /// What the cloud last said about the segment, if that is recent enough to act on; otherwise
    /// `None`, and the object is woken once it is known. Registers `target` on the segment until
    /// [`Poller::forget`]; `drift`: it wants the segment checked for drift once settled.
    pub fn look(
        self: &Arc<Self>,
        key: &Key,
        client: &VpcClient,
        segment_id: &str,
        target: WakeTarget,
        drift: bool,
    ) -> Option<Observation> {
        let region = self.region(key, client);
        let mut st = lock(&region.state);
        st.entry(segment_id, self.epoch).register(target.clone(), Some(drift));
        self.take_scanned(&mut st, segment_id, &target);
        let now = Instant::now();
        let drift_every = self.config.drift;
        let w = st.entry(segment_id, self.epoch);
        let Some(obs) = w.last.as_ref().filter(|o| o.at >= w.not_before).map(|o| o.observation(segment_id)) else {
            w.waiting = true;
            w.due = plan::wanted(&w.phase, w.due, now);
            drop(st);
            region.notify.notify_one();
            return None;
        };
        if matches!(obs.seen, Seen::Failed(_)) {
            // Reported once; the next look's outcome wakes the object again.
            w.last = None;
            w.waiting = true;
        } else {
            w.waiting = false;
            w.due = plan::read(&w.phase, w.due, obs.at, w.drift(drift_every));
        }
        Some(obs)
    }

    /// A page scan that went by before the segment was watched is its first look. The object
    /// asking reads the answer now; any other registered one is woken.
    fn take_scanned(&self, st: &mut RegionState, segment_id: &str, asking: &WakeTarget) {
        let Some(obs) = st.scanned.remove(segment_id) else { return };
        if st.entry(segment_id, self.epoch).last.is_some() {
            return;
        }
        let mut wake = self.observe(st, segment_id, obs);
        wake.retain(|t| t != asking);
        self.wake_all(wake);
    }

    /// This operator's call started a change (its answer has arrived): earlier observations are
    /// stale, and the first look goes when such changes usually end. Registers `target`.
    pub fn changing(
        self: &Arc<Self>,
        key: &Key,
        client: &VpcClient,
        segment_id: &str,
        change: Change,
        target: WakeTarget,
    ) {
        let region = self.region(key, client);
        let mut st = lock(&region.state);
        let now = Instant::now();
        // A probe this segment held for an earlier change is given up.
        if let Some(earlier) = st.watched.get(segment_id).and_then(|w| w.phase.probe()) {
            st.durations_mut(earlier).probe_done();
        }
        let others = st.others_in_flight(segment_id, change);
        let first = plan::first_look(st.durations_mut(change), others);
        st.scanned.remove(segment_id);
        if change == Change::Allocating {
            // A new segment joins the region's size (known from the last scan).
            st.total = st.total.map(|t| t.saturating_add(1));
        }
        let w = st.entry(segment_id, self.epoch);
        w.register(target, Some(change == Change::Allocating));
        (w.phase, w.due) = plan::started(change, now, first);
        debug!(segment = segment_id, ?change, after = ?first.after, probe = first.probe, "change started");
        w.outdated(now);
        drop(st);
        region.notify.notify_one();
    }

    /// Forgets what is known and looks again by ID at once (the cloud's answer contradicted it).
    /// Registers `target`.
    pub fn refresh(self: &Arc<Self>, key: &Key, client: &VpcClient, segment_id: &str, target: WakeTarget) {
        let region = self.region(key, client);
        let mut st = lock(&region.state);
        let now = Instant::now();
        st.scanned.remove(segment_id);
        let w = st.entry(segment_id, self.epoch);
        w.register(target, None);
        (w.phase, w.due) = plan::confirm_by_id(&w.phase, now);
        w.outdated(now);
        drop(st);
        region.notify.notify_one();
    }

    /// The last observation predates a refusal that contradicts it: the segment is looked at again
    /// by ID, and the answer kept for the object's next pass. Nobody is woken early for it, unless
    /// the segment changed.
    pub fn look_again(self: &Arc<Self>, key: &Key, client: &VpcClient, segment_id: &str, target: WakeTarget) {
        let region = self.region(key, client);
        let mut st = lock(&region.state);
        let now = Instant::now();
        st.scanned.remove(segment_id);
        let w = st.entry(segment_id, self.epoch);
        w.register(target, None);
        w.not_before = now;
        w.due = Some(now);
        drop(st);
        region.notify.notify_one();
    }

    /// A change the object awaits that this poller has not seen begin (an allocation accepted
    /// before a restart, not yet visible): looked at on the poll pace until it ends. A change
    /// already awaited is left as it is, with its timing.
    pub fn expect(
        self: &Arc<Self>,
        key: &Key,
        client: &VpcClient,
        segment_id: &str,
        change: Change,
        target: WakeTarget,
    ) {
        let region = self.region(key, client);
        let mut st = lock(&region.state);
        let now = Instant::now();
        let poll = self.config.poll;
        let w = st.entry(segment_id, self.epoch);
        w.register(target, None);
        if w.phase.underway().is_some_and(|u| u.change == change) {
            return;
        }
        w.phase = plan::Phase::Changing(plan::Underway { change, since: now, ours: false, probe: false });
        w.due = Some(now + poll);
        drop(st);
        region.notify.notify_one();
    }

    /// Per key scanned within the last two drift intervals, the segments its last page scan
    /// showed that no object watches. An older scan says nothing: what it showed may have been
    /// released or taken on since. No call of its own.
    pub fn unwatched_segments(&self) -> Vec<(Key, Vec<Segment>)> {
        let regions: Vec<(Key, Arc<Region>)> =
            lock(&self.regions).iter().map(|(k, r)| (k.clone(), r.clone())).collect();
        regions
            .into_iter()
            .filter_map(|(key, region)| {
                let st = lock(&region.state);
                let segments = st
                    .scanned
                    .values()
                    .filter_map(|obs| match &obs.seen {
                        Seen::Present(segment) => Some(segment.clone()),
                        _ => None,
                    })
                    .collect();
                let fresh = st.scanned_at.is_some_and(|at| at.elapsed() <= self.config.drift * 2);
                fresh.then_some((key, segments))
            })
            .collect()
    }

    /// The object no longer needs the segment watched under this key. Other objects registered
    /// on it stay registered; the segment's record goes with the last of them.
    pub fn forget(&self, key: &Key, segment_id: &str, target: &WakeTarget) {
        let Some(region) = lock(&self.regions).get(key).cloned() else { return };
        let mut st = lock(&region.state);
        let Some(w) = st.watched.get_mut(segment_id) else { return };
        w.registrations.retain(|r| r.target != *target);
        if w.registrations.is_empty() {
            st.unwatch(segment_id);
        }
    }

    /// Forgets every registration of the objects `gone` says are gone, in every region: an object
    /// removed without finishing (its finalizer stripped by hand) no longer has its segments looked at.
    pub fn forget_targets(&self, gone: impl Fn(&WakeTarget) -> bool) {
        let regions: Vec<Arc<Region>> = lock(&self.regions).values().cloned().collect();
        for region in regions {
            let mut st = lock(&region.state);
            let mut emptied = Vec::new();
            for (id, w) in st.watched.iter_mut() {
                let before = w.registrations.len();
                w.registrations.retain(|r| !gone(&r.target));
                if before > 0 && w.registrations.is_empty() {
                    emptied.push(id.clone());
                }
            }
            emptied.iter().for_each(|id| st.unwatch(id));
        }
    }

    /// The region's task: waits until a segment is due (or a registration comes), then sweeps.
    async fn run(self: Arc<Self>, key: Key, region: Arc<Region>) {
        let holds = plan::Holds { gather: self.config.gather, hold: self.config.hold };
        loop {
            let wait = {
                let st = lock(&region.state);
                let segments = st.watched.values().map(|w| (&w.phase, w.due));
                plan::next_sweep(segments, st.paused_until, st.total, Instant::now(), holds)
            };
            match wait {
                plan::Wait::Idle => region.notify.notified().await,
                plan::Wait::Until(at) => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = region.notify.notified() => {}
                    }
                }
                plan::Wait::Sweep(after) => {
                    tokio::time::sleep(after).await;
                    self.sweep(&key, &region).await;
                }
            }
        }
    }

    /// Looks at every due segment in the cheapest way, then records what was seen.
    async fn sweep(&self, key: &Key, region: &Region) {
        let now = Instant::now();
        // Settled segments due for a drift check soon come along, so that one scan serves them all.
        let slack = now + self.config.drift / 10;
        let (client, due, total) = {
            let st = lock(&region.state);
            let segments = st.watched.iter().map(|(id, w)| (id.as_str(), &w.phase, w.due));
            (st.client.clone(), plan::sweep(segments, now, slack), st.total)
        };
        if due.is_empty() {
            return;
        }
        let plan = plan::choose(due.others.len(), due.vanishing, total);
        debug!(region = %key.region, by_id = due.by_id.len(), others = due.others.len(), ?plan, "sweep");
        let mut by_id = due.by_id;
        match plan {
            Plan::ById => by_id.extend(due.others),
            Plan::Pages { .. } => self.read_pages(&key.region, region, &client, &due.others).await,
        }
        // In the order they fell due: when the quota makes looks wait, the changes that ended
        // first are confirmed first.
        {
            let st = lock(&region.state);
            by_id.sort_by_key(|id| st.watched.get(id).and_then(|w| w.due));
        }
        self.look_by_id(&key.region, region, &client, by_id, now).await;
    }

    /// Every page of the region, recorded for the watched segments on them and for the `due`
    /// ones they lack.
    async fn read_pages(&self, region_id: &str, region: &Region, client: &VpcClient, due: &[String]) {
        match self.scan(region_id, client).await {
            Ok(scan) => {
                let wake = {
                    let mut st = lock(&region.state);
                    st.failures = 0;
                    self.apply_scan(&mut st, scan, due)
                };
                self.wake_all(wake);
            }
            Err((at, e)) => self.failed(region, due, at, e),
        }
    }

    /// Looks at each segment by ID (a few at a time) and records each answer as it comes, so that
    /// its objects hear of it before the rest of the batch is back. A look whose answer was stale
    /// (a change began meanwhile) is not repeated at once.
    async fn look_by_id(&self, region_id: &str, region: &Region, client: &VpcClient, ids: Vec<String>, swept: Instant) {
        futures::stream::iter(ids)
            .map(|id| async move {
                let (at, result) = client.look_at_segment(region_id, &id).await;
                (id, at, result)
            })
            .buffer_unordered(self.config.parallel_looks.max(1))
            .for_each(|(id, at, result)| {
                self.record(region, &id, at, result);
                let mut st = lock(&region.state);
                if let Some(w) = st.watched.get_mut(&id)
                    && w.due.is_some_and(|d| d <= swept)
                {
                    w.due = Some(Instant::now() + self.config.poll);
                }
                futures::future::ready(())
            })
            .await;
    }

    /// Records the answer to one look by ID, sent at `at`.
    fn record(&self, region: &Region, id: &str, at: Instant, result: Result<Option<Segment>, CloudError>) {
        match result {
            Ok(found) => {
                let seen = found.map_or(Seen::Absent, |s| Seen::Present(kept(s)));
                let wake = {
                    let mut st = lock(&region.state);
                    st.failures = 0;
                    self.observe(&mut st, id, Observation { at, seen })
                };
                self.wake_all(wake);
            }
            Err(e) => self.failed(region, &[id.to_string()], at, e),
        }
    }

    /// Every page of the region. The pages are one snapshot only when there is one page.
    async fn scan(&self, region: &str, client: &VpcClient) -> Result<Scan, (Instant, CloudError)> {
        let mut scan = Scan { started: Instant::now(), seen: Vec::new(), total: None, complete_snapshot: false };
        for page_number in 1.. {
            let at = Instant::now();
            let page = client.describe_segments(region, None, page_number, PAGE_SIZE).await.map_err(|e| (at, e))?;
            let got = page.segments.len();
            scan.seen.reserve(scan_room(page.total_count, scan.seen.len(), got));
            let looks = page.segments.into_iter().map(|s| {
                let id = s.instance_id.clone().into_boxed_str();
                (id, LastLook::of(Observation { at, seen: Seen::Present(s) }))
            });
            scan.seen.extend(looks);
            scan.total = Some(page.total_count);
            if got == 0 || scan.seen.len() >= page.total_count as usize || got < PAGE_SIZE as usize {
                scan.complete_snapshot = page_number == 1 && got == page.total_count as usize;
                break;
            }
        }
        Ok(scan)
    }

    /// Records a scan: what it shows of watched segments, what it shows of the others for later
    /// registrations, and what it lacks of the `due` ones.
    fn apply_scan(&self, st: &mut RegionState, scan: Scan, due: &[String]) -> Vec<WakeTarget> {
        let mut wake = Vec::new();
        st.total = scan.total.or(st.total);
        st.scanned.clear();
        st.scanned_at = Some(scan.started);
        let mut shown = HashSet::new();
        for (id, look) in &scan.seen {
            let obs = look.observation(id);
            if st.watched.contains_key(id.as_ref()) {
                wake.extend(self.observe(st, id, obs));
                shown.insert(id.as_ref());
            } else {
                st.scanned.insert(id.to_string(), obs);
            }
        }
        for id in due.iter().filter(|id| !shown.contains(id.as_str())) {
            wake.extend(self.absent_from_scan(st, id, scan.started, scan.complete_snapshot));
        }
        wake
    }

    /// A due segment the scan started at `at` lacks: gone if the scan was one snapshot of the
    /// whole region, else only a look by ID can tell. A change begun after the scan started is
    /// not judged by it.
    fn absent_from_scan(&self, st: &mut RegionState, id: &str, at: Instant, complete: bool) -> Vec<WakeTarget> {
        if st.watched.get(id).is_none_or(|w| w.not_before > at) {
            return Vec::new();
        }
        if complete {
            return self.observe(st, id, Observation { at, seen: Seen::Absent });
        }
        if let Some(w) = st.watched.get_mut(id) {
            (w.phase, w.due) = plan::confirm_by_id(&w.phase, Instant::now());
        }
        Vec::new()
    }

    /// Records one look at a watched segment; returns the objects to wake.
    fn observe(&self, st: &mut RegionState, id: &str, obs: Observation) -> Vec<WakeTarget> {
        let now = Instant::now();
        // Past a learned duration the end is near; until one is learned, changes are timed on the
        // poll pace.
        let learned =
            st.watched.get(id).and_then(|w| w.phase.underway()).is_some_and(|u| st.durations(u.change).known());
        let relook = if learned { self.config.poll / 4 } else { self.config.poll };
        let Some(w) = st.watched.get_mut(id) else { return Vec::new() };
        let Some(saw) = saw(&obs.seen) else { return Vec::new() };
        let pace = plan::Pace { now, poll: self.config.poll, relook, drift: w.drift(self.config.drift) };
        let Some(next) = plan::observed(&w.before(), &plan::Look { at: obs.at, saw }, &pace) else {
            return Vec::new();
        };
        w.phase = next.phase;
        w.due = next.due;
        w.last = Some(LastLook::of(obs));
        let wake = if next.wake {
            w.waiting = false;
            w.targets()
        } else {
            Vec::new()
        };
        if next.vanished {
            st.total = st.total.map(|t| t.saturating_sub(1));
        }
        if let Some(change) = next.probe_spent {
            st.durations_mut(change).probe_done();
        }
        if let Some(learned) = next.learned {
            learn(st, learned, now);
        }
        wake
    }

    /// A failed look: the objects waiting on it hear of it; the region backs off.
    fn failed(&self, region: &Region, ids: &[String], at: Instant, e: CloudError) {
        debug!(error = %e, "look failed");
        let e = Arc::new(e);
        let wake = {
            let mut st = lock(&region.state);
            st.failures = st.failures.saturating_add(1);
            let failures = st.failures;
            let resume = Instant::now() + self.backoff(failures, &e);
            if e.is_throttling() {
                st.paused_until = Some(resume);
            }
            let mut wake = Vec::new();
            for id in ids {
                let Some(w) = st.watched.get_mut(id) else { continue };
                w.due = Some(resume);
                let reported = w.last.as_ref().is_some_and(LastLook::failed);
                if plan::failure_reported(w.waiting, reported, failures) {
                    w.waiting = false;
                    w.last = Some(LastLook { at, seen: Kept::Failed(e.clone()) });
                    wake.extend(w.targets());
                }
            }
            wake
        };
        self.wake_all(wake);
    }

    /// The region's pause after its `failures`-th consecutive failure: the operator's one
    /// exponential backoff, with the cloud's TimeLeft (when throttled) as the floor; the longest
    /// for a terminal error, which only a change of configuration mends.
    fn backoff(&self, failures: u32, e: &CloudError) -> Duration {
        if e.class() == ErrorClass::Terminal {
            return self.config.backoff_max;
        }
        let (base, max) = (self.config.backoff_base, self.config.backoff_max);
        crate::backoff::delay(base, max, failures, rand::random::<f64>(), e.retry_after())
    }

    fn wake_all(&self, targets: Vec<WakeTarget>) {
        for t in targets {
            let _ = self.wake.send(t);
        }
    }
}

/// Adds what a look taught about a change's duration. When it is the first end of its kind, this
/// operator's changes that waited for it are due when it says.
fn learn(st: &mut RegionState, learned: plan::Learned, now: Instant) {
    let durations = st.durations_mut(learned.change);
    debug!(change = ?learned.change, elapsed = ?learned.elapsed, finished = learned.finished, "learned");
    let first_timed = learned.finished && !durations.known();
    if learned.finished {
        durations.finished_by(learned.elapsed);
    } else {
        durations.still_changing_after(learned.elapsed);
    }
    if !first_timed {
        return;
    }
    let expected = durations.expected();
    for w in st.watched.values_mut() {
        w.due = plan::timed(&w.phase, w.last.is_some(), w.due, learned.change, expected, now);
    }
}

/// What objects use of a segment; the rest is not held for thousands of them.
fn kept(seg: Segment) -> Segment {
    Segment {
        instance_id: seg.instance_id,
        status: seg.status,
        segment: seg.segment,
        ip_count: seg.ip_count,
        region_id: String::new(),
        zone: String::new(),
        name: String::new(),
        description: String::new(),
        creation_time: String::new(),
    }
}

/// The most room a scan makes at once: a TotalCount that lies must not reserve gigabytes.
const SCAN_ROOM_AT_MOST: usize = 20_000;

/// Room to make for the rest of a scan once a page told the region's total: the whole region at
/// once rather than a vector grown to twice it, but no more than the cap (and the page itself).
fn scan_room(total: u32, seen: usize, got: usize) -> usize {
    (total as usize).saturating_sub(seen).clamp(got, SCAN_ROOM_AT_MOST.max(got))
}

struct Scan {
    /// When the first page was asked for.
    started: Instant,
    /// Each segment shown, by ID, as far as objects read it (ten thousand at once).
    seen: Vec<(Box<str>, LastLook)>,
    total: Option<u32>,
    /// One page held the whole region: what it lacks is gone.
    complete_snapshot: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::ClientConfig;
    use crate::cloud::credentials::{Credentials, Secret, StaticCredentials};

    #[test]
    fn a_scan_makes_room_for_the_region_but_not_for_a_lying_total() {
        assert_eq!(scan_room(10_000, 50, 50), 9_950, "the rest of the region at once");
        assert_eq!(scan_room(10, 0, 50), 50, "at least the page at hand");
        assert_eq!(scan_room(u32::MAX, 0, 50), SCAN_ROOM_AT_MOST, "a total no region has");
        assert_eq!(scan_room(0, 0, 100_000), 100_000, "an oversized page still fits");
    }

    /// A client whose looks fail at once on loopback: these tests are about registrations.
    fn client() -> VpcClient {
        let creds =
            Credentials { access_key_id: "id".into(), access_key_secret: Secret::new("secret"), security_token: None };
        let config = ClientConfig {
            endpoint_override: Some("http://127.0.0.1:1".into()),
            sts_endpoint: None,
            allow_insecure_endpoint: true,
            timeout: Duration::from_secs(1),
        };
        VpcClient::new(config, Arc::new(StaticCredentials(creds))).unwrap()
    }

    fn target(name: &str) -> WakeTarget {
        WakeTarget { namespace: "ns".into(), name: name.into() }
    }

    /// The registered objects' names and the segment's drift interval, if it is watched.
    fn registered(poller: &Poller, key: &Key, id: &str) -> Option<(Vec<String>, Option<Duration>)> {
        let region = lock(&poller.regions).get(key).cloned()?;
        let st = lock(&region.state);
        let w = st.watched.get(id)?;
        Some((w.registrations.iter().map(|r| r.target.name.clone()).collect(), w.drift(poller.config.drift)))
    }

    #[tokio::test]
    async fn a_segment_is_watched_while_any_object_is_registered_on_it() {
        let drift = Duration::from_secs(60);
        let (poller, _woken) = Poller::new(PollerConfig::new(Duration::from_secs(1), drift, Duration::from_secs(5)));
        let key = Key { account: "1234567890123456".into(), region: "cn-hangzhou".into() };
        let vpc = client();
        poller.look(&key, &vpc, "eipsg-1", target("a"), true);
        poller.look(&key, &vpc, "eipsg-1", target("b"), false);
        poller.look(&key, &vpc, "eipsg-1", target("a"), true);
        assert_eq!(registered(&poller, &key, "eipsg-1"), Some((vec!["a".into(), "b".into()], Some(drift))));

        let elsewhere = Key { account: "6543210987654321".into(), ..key.clone() };
        poller.forget(&elsewhere, "eipsg-1", &target("a"));
        poller.forget(&key, "eipsg-2", &target("a"));
        assert_eq!(
            registered(&poller, &key, "eipsg-1").map(|(names, _)| names.len()),
            Some(2),
            "another key, another segment"
        );

        poller.forget(&key, "eipsg-1", &target("a"));
        assert_eq!(registered(&poller, &key, "eipsg-1"), Some((vec!["b".into()], None)), "b wants no drift checks");
        poller.forget(&key, "eipsg-1", &target("b"));
        assert_eq!(registered(&poller, &key, "eipsg-1"), None, "the record goes with its last object");
    }
}
