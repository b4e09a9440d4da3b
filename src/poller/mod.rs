//! Shared, batched polling. One task per (credentials, region) knows every segment some object is
//! waiting on, looks at them when their change is due (by ID when few are due, by region pages when
//! many are), learns how long allocations and releases take, and wakes an object's reconcile when
//! its segment changes. Reconciles never call DescribeEipSegment themselves: they read the last
//! observation here, or register and wait to be woken.

pub mod plan;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::debug;

use crate::cloud::model::{Segment, SegmentStatus};
use crate::cloud::{CloudError, ErrorClass, VpcClient};
use plan::{Durations, PAGE_SIZE, Plan};

/// Whose segments, where: one poller task each.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Key {
    /// Names the credentials (not their value): the operator's own, or a Secret.
    pub credentials: String,
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

/// A change this operator started, whose end the poller waits for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Change {
    Allocating,
    Releasing,
}

#[derive(Clone, Copy, Debug)]
pub struct PollerConfig {
    /// First look at a change before anything is learned, and the interval of later looks.
    pub poll: Duration,
    /// Drift checks of settled segments.
    pub drift: Duration,
    /// How long a sweep may wait so that one page serves the next due segment too (only when the
    /// region fits in one page): at most one poll interval of delay for one look saved.
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
            hold: poll,
            gather: Duration::from_millis(300),
            backoff_base: Duration::from_secs(1),
            backoff_max,
            parallel_looks: 8,
        }
    }
}

/// While a first change is being timed, others wait at most this many first-look intervals.
const SCOUTED_WAIT_FACTOR: u32 = 8;

/// After this long, a change that shows no sign of having begun (the segment still Allocated after
/// a release, or absent after an allocation) is reported to the object instead of awaited.
const CHANGE_VISIBLE_WITHIN: Duration = Duration::from_secs(120);

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
    client: VpcClient,
    watched: HashMap<String, Watched>,
    /// The region's TotalCount at the last page.
    total: Option<u32>,
    /// Presence seen by the last page scan, for objects that register after their page went by.
    scanned: HashMap<String, Observation>,
    allocations: Durations,
    releases: Durations,
    failures: u32,
    paused_until: Option<Instant>,
}

struct Watched {
    targets: Vec<WakeTarget>,
    /// The change awaited and when it began; `learn` when this operator started it (so its
    /// duration is meaningful).
    change: Option<(Change, Instant, bool)>,
    /// Observations sent before this are stale: they predate this operator's last change.
    not_before: Instant,
    last: Option<Observation>,
    due: Option<Instant>,
    /// An object asked and found nothing usable: wake it on the next observation.
    waiting: bool,
    /// Keep checking a settled segment for drift.
    drift: bool,
    /// Absent from a multi-page scan: only a look by ID can tell.
    confirm_by_id: bool,
    /// Its first look probes below the learned duration.
    probe: bool,
}

fn durations_of(st: &RegionState, change: Change) -> &Durations {
    match change {
        Change::Allocating => &st.allocations,
        Change::Releasing => &st.releases,
    }
}

fn durations_of_mut(st: &mut RegionState, change: Change) -> &mut Durations {
    match change {
        Change::Allocating => &mut st.allocations,
        Change::Releasing => &mut st.releases,
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn changing_status(status: &SegmentStatus) -> Option<Change> {
    match status {
        SegmentStatus::Allocating => Some(Change::Allocating),
        SegmentStatus::Releasing => Some(Change::Releasing),
        _ => None,
    }
}

impl Poller {
    /// The poller and the stream of objects to wake.
    pub fn new(config: PollerConfig) -> (Arc<Poller>, mpsc::UnboundedReceiver<WakeTarget>) {
        let (wake, woken) = mpsc::unbounded_channel();
        (Arc::new(Poller { config, epoch: Instant::now(), regions: Mutex::default(), wake }), woken)
    }

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

    fn entry<'a>(&self, st: &'a mut RegionState, segment_id: &str, target: WakeTarget) -> &'a mut Watched {
        let epoch = self.epoch;
        let entry = st.watched.entry(segment_id.to_string()).or_insert_with(|| Watched {
            targets: Vec::new(),
            change: None,
            not_before: epoch,
            last: None,
            due: None,
            waiting: false,
            drift: false,
            confirm_by_id: false,
            probe: false,
        });
        if !entry.targets.contains(&target) {
            entry.targets.push(target);
        }
        entry
    }

    /// What the cloud last said about the segment, if that is recent enough to act on; otherwise
    /// `None`, and the object is woken once it is known. `drift`: keep checking it once settled.
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
        let scanned = st.scanned.remove(segment_id);
        let drift_every = self.config.drift;
        let entry = self.entry(&mut st, segment_id, target);
        entry.drift = drift;
        let usable = entry.last.clone().or(scanned).filter(|o| o.at >= entry.not_before);
        match usable {
            Some(obs) => {
                if matches!(obs.seen, Seen::Failed(_)) {
                    // Reported once; the next look's outcome wakes the object again.
                    entry.last = None;
                    entry.waiting = true;
                } else {
                    entry.waiting = false;
                    if entry.last.is_none() {
                        entry.last = Some(obs.clone());
                    }
                    let settled = matches!(&obs.seen, Seen::Present(s) if changing_status(&s.status).is_none());
                    if settled && drift && entry.due.is_none() {
                        entry.due = Some(obs.at + drift_every);
                    }
                    if !drift && entry.change.is_none() {
                        entry.due = None;
                    }
                }
                Some(obs)
            }
            None => {
                entry.waiting = true;
                if entry.change.is_none() || entry.due.is_none() {
                    let now = Instant::now();
                    entry.due = Some(entry.due.map_or(now, |d| d.min(now)));
                }
                drop(st);
                region.notify.notify_one();
                None
            }
        }
    }

    /// This operator's call started a change (its answer has arrived): earlier observations are
    /// stale, and the first look goes when such changes usually end.
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
        // Until one such change has been seen to end, one segment (the first) is polled to learn
        // how long it takes; the others wait for that instead of each polling blindly.
        let scouted = !durations_of(&st, change).known()
            && st
                .watched
                .iter()
                .any(|(id, w)| id != segment_id && matches!(w.change, Some((c, _, true)) if c == change));
        let (first_look, probe) = if scouted {
            (durations_of(&st, change).expected().saturating_mul(SCOUTED_WAIT_FACTOR), false)
        } else {
            let look = durations_of_mut(&mut st, change).first_look();
            (look.after, look.probe)
        };
        st.scanned.remove(segment_id);
        if change == Change::Allocating {
            // A new segment joins the region's size (known from the last scan).
            st.total = st.total.map(|t| t.saturating_add(1));
        }
        // A probe this entry held for an earlier change is given up.
        let entry = self.entry(&mut st, segment_id, target);
        if let (true, Some((earlier, ..))) = (std::mem::take(&mut entry.probe), entry.change) {
            durations_of_mut(&mut st, earlier).probe_done();
        }
        let entry = st.watched.get_mut(segment_id).expect("just inserted");
        entry.probe = probe;
        entry.change = Some((change, now, true));
        entry.not_before = now;
        entry.last = None;
        entry.waiting = true;
        entry.drift = change == Change::Allocating;
        entry.confirm_by_id = false;
        entry.due = Some(now + first_look);
        drop(st);
        region.notify.notify_one();
    }

    /// Forgets what is known and looks again at once (the cloud's answer contradicted it).
    pub fn refresh(self: &Arc<Self>, key: &Key, client: &VpcClient, segment_id: &str, target: WakeTarget) {
        let region = self.region(key, client);
        let mut st = lock(&region.state);
        let now = Instant::now();
        st.scanned.remove(segment_id);
        let entry = self.entry(&mut st, segment_id, target);
        entry.not_before = now;
        entry.last = None;
        entry.waiting = true;
        entry.confirm_by_id = true;
        entry.due = Some(now);
        drop(st);
        region.notify.notify_one();
    }

    /// No object needs the segment watched any more, under whichever credentials it was.
    pub fn forget_everywhere(&self, segment_id: &str) {
        let regions: Vec<Arc<Region>> = lock(&self.regions).values().cloned().collect();
        for region in regions {
            let mut st = lock(&region.state);
            if let Some(w) = st.watched.remove(segment_id) {
                if let (true, Some((change, ..))) = (w.probe, w.change) {
                    durations_of_mut(&mut st, change).probe_done();
                }
            }
            st.scanned.remove(segment_id);
        }
    }

    async fn run(self: Arc<Self>, key: Key, region: Arc<Region>) {
        loop {
            let now = Instant::now();
            let (next, first_looks, second) = {
                let st = lock(&region.state);
                let mut dues: Vec<Instant> = st.watched.values().filter_map(|w| w.due).collect();
                dues.sort();
                let first_looks = st
                    .watched
                    .values()
                    .any(|w| w.waiting && w.last.is_none() && w.change.is_none() && w.due.is_some_and(|d| d <= now));
                let next = dues.first().copied().map(|d| st.paused_until.map_or(d, |p| d.max(p)));
                let second = dues.iter().copied().find(|d| *d > now);
                (next, first_looks, second)
            };
            match next {
                None => {
                    region.notify.notified().await;
                    continue;
                }
                Some(at) if at > now => {
                    tokio::select! {
                        _ = tokio::time::sleep_until(at) => {}
                        _ = region.notify.notified() => {}
                    }
                    continue;
                }
                Some(_) => {}
            }
            if first_looks {
                tokio::time::sleep(self.config.gather).await;
            } else {
                let total = lock(&region.state).total;
                if let Some(wait) =
                    plan::hold_for(second.map(|s| s.saturating_duration_since(now)), total, self.config.hold)
                {
                    tokio::time::sleep(wait).await;
                }
            }
            self.sweep(&key, &region).await;
        }
    }

    /// Looks at every due segment in the cheapest way, then records what was seen.
    async fn sweep(&self, key: &Key, region: &Region) {
        let now = Instant::now();
        // Settled segments due for a drift check soon come along, so that one scan serves them all.
        let drift_slack = now + self.config.drift / 10;
        let (client, due, by_id_only, vanishing, total) = {
            let st = lock(&region.state);
            let mut due: Vec<String> =
                st.watched.iter().filter(|(_, w)| w.due.is_some_and(|d| d <= now)).map(|(id, _)| id.clone()).collect();
            if !due.is_empty() {
                let settled_soon = st
                    .watched
                    .iter()
                    .filter(|(_, w)| {
                        w.change.is_none() && w.drift && w.due.is_some_and(|d| d > now && d <= drift_slack)
                    })
                    .map(|(id, _)| id.clone());
                due.extend(settled_soon.collect::<Vec<_>>());
            }
            let by_id_only: Vec<String> = due.iter().filter(|id| st.watched[*id].confirm_by_id).cloned().collect();
            let vanishing =
                due.iter().filter(|id| matches!(st.watched[*id].change, Some((Change::Releasing, ..)))).count();
            (st.client.clone(), due, by_id_only, vanishing, st.total)
        };
        if due.is_empty() {
            return;
        }
        let others = due.len() - by_id_only.len();
        let plan = plan::choose(others, vanishing, total);
        debug!(region = %key.region, due = due.len(), ?plan, "sweep");
        let mut by_id = by_id_only;
        match plan {
            Plan::ById => by_id = due,
            Plan::Pages { .. } => {
                let rest: Vec<String> = due.into_iter().filter(|id| !by_id.contains(id)).collect();
                match self.scan(&key.region, &client).await {
                    Ok(scan) => {
                        let wake = {
                            let mut st = lock(&region.state);
                            st.failures = 0;
                            self.apply_scan(&mut st, scan, &rest)
                        };
                        self.wake_all(wake);
                    }
                    Err((at, e)) => self.failed(region, &rest, at, e),
                }
            }
        }
        let region_name = key.region.clone();
        let looks = futures::stream::iter(by_id)
            .map(|id| {
                let client = client.clone();
                let region_name = region_name.clone();
                async move {
                    let at = Instant::now();
                    let result = client.describe_segment(&region_name, &id).await;
                    (id, at, result)
                }
            })
            .buffer_unordered(self.config.parallel_looks.max(1))
            .collect::<Vec<_>>()
            .await;
        let looked: Vec<String> = looks.iter().map(|(id, ..)| id.clone()).collect();
        for (id, at, result) in looks {
            match result {
                Ok(found) => {
                    let seen = found.map_or(Seen::Absent, |s| Seen::Present(kept(s)));
                    let wake = {
                        let mut st = lock(&region.state);
                        st.failures = 0;
                        self.observe(&mut st, &id, Observation { at, seen })
                    };
                    self.wake_all(wake);
                }
                Err(e) => self.failed(region, std::slice::from_ref(&id), at, e),
            }
        }
        // A look whose answer was stale (a change began meanwhile) is not repeated at once.
        let mut st = lock(&region.state);
        let later = Instant::now() + self.config.poll;
        for id in looked {
            if let Some(w) = st.watched.get_mut(&id) {
                if w.due.is_some_and(|d| d <= now) {
                    w.due = Some(later);
                }
            }
        }
    }

    /// Every page of the region. The pages are one snapshot only when there is one page.
    async fn scan(&self, region: &str, client: &VpcClient) -> Result<Scan, (Instant, CloudError)> {
        let mut scan = Scan { seen: Vec::new(), total: None, complete_snapshot: false };
        let mut pages = 0;
        for page_number in 1.. {
            let at = Instant::now();
            let page = client.describe_segments(region, None, page_number, PAGE_SIZE).await.map_err(|e| (at, e))?;
            pages += 1;
            let got = page.segments.len();
            scan.seen.extend(page.segments.into_iter().map(|s| (at, kept(s))));
            scan.total = Some(page.total_count);
            if got == 0 || scan.seen.len() >= page.total_count as usize || got < PAGE_SIZE as usize {
                scan.complete_snapshot = pages == 1 && got == page.total_count as usize;
                break;
            }
        }
        Ok(scan)
    }

    fn apply_scan(&self, st: &mut RegionState, scan: Scan, due: &[String]) -> Vec<WakeTarget> {
        let mut wake = Vec::new();
        st.total = scan.total.or(st.total);
        st.scanned.clear();
        let snapshot_at = scan.seen.first().map(|(at, _)| *at);
        for (at, seg) in scan.seen {
            let id = seg.instance_id.clone();
            let obs = Observation { at, seen: Seen::Present(seg) };
            if st.watched.contains_key(&id) {
                wake.extend(self.observe(st, &id, obs));
            } else {
                st.scanned.insert(id, obs);
            }
        }
        let now = Instant::now();
        for id in due {
            let Some(w) = st.watched.get_mut(id) else { continue };
            if w.due.is_some_and(|d| d > now) || w.last.as_ref().is_some_and(|o| snapshot_at.is_some_and(|s| o.at >= s))
            {
                continue; // seen in this scan
            }
            match (scan.complete_snapshot, snapshot_at) {
                (true, Some(at)) => wake.extend(self.observe(st, id, Observation { at, seen: Seen::Absent })),
                _ => {
                    w.confirm_by_id = true;
                    w.due = Some(now);
                }
            }
        }
        wake
    }

    /// Records one observation; returns the objects to wake.
    fn observe(&self, st: &mut RegionState, id: &str, obs: Observation) -> Vec<WakeTarget> {
        let now = Instant::now();
        let poll = self.config.poll;
        let drift_every = self.config.drift;
        let Some(w) = st.watched.get_mut(id) else { return Vec::new() };
        if obs.at < w.not_before {
            return Vec::new();
        }
        w.confirm_by_id = false;
        let status = match &obs.seen {
            Seen::Present(s) => Some(s.status.clone()),
            _ => None,
        };
        let mut report = true;
        let mut learned: Option<(Change, Duration, bool)> = None;
        let was_probe = std::mem::take(&mut w.probe);
        match (w.change, &obs.seen) {
            (Some((change, since, learn)), Seen::Present(_) | Seen::Absent) => {
                let elapsed = obs.at.saturating_duration_since(since);
                let begun_or_done = match (change, status.as_ref()) {
                    (Change::Allocating, Some(SegmentStatus::Allocating)) => Some(false),
                    (Change::Allocating, Some(_)) => Some(true),
                    (Change::Releasing, Some(SegmentStatus::Releasing)) => Some(false),
                    (Change::Releasing, None) => Some(true),
                    // Not visibly begun yet (the cloud's read side may lag the call).
                    _ => None,
                };
                match begun_or_done {
                    Some(true) => {
                        w.change = None;
                        if learn {
                            learned = Some((change, elapsed, true));
                        }
                    }
                    Some(false) => {
                        if learn {
                            learned = Some((change, elapsed, false));
                        }
                        // The object that started the change awaits its end, not news of it.
                        report = !learn && w.waiting && w.last.is_none();
                    }
                    None => report = elapsed >= CHANGE_VISIBLE_WITHIN,
                }
            }
            (None, Seen::Present(seg)) => {
                if let Some(change) = changing_status(&seg.status) {
                    w.change = Some((change, obs.at, false));
                }
            }
            _ => {}
        }
        let changed = match (&w.last, &obs.seen) {
            (Some(Observation { seen: Seen::Present(a), .. }), Seen::Present(b)) => a.status != b.status,
            (Some(Observation { seen: Seen::Absent, .. }), Seen::Absent) => false,
            _ => true,
        };
        w.due = match (&obs.seen, w.change) {
            (Seen::Failed(_), _) => w.due,
            (_, Some(_)) => Some(now + poll),
            (Seen::Present(_), None) if w.drift => Some(obs.at + drift_every),
            _ => None,
        };
        // The region's size between scans: a segment seen to vanish leaves it.
        let vanished = matches!(obs.seen, Seen::Absent)
            && (matches!(w.last, Some(Observation { seen: Seen::Present(_), .. }))
                || matches!(learned, Some((Change::Releasing, _, true))));
        let wake = report && (changed || w.waiting);
        let targets = if wake {
            w.waiting = false;
            w.targets.clone()
        } else {
            Vec::new()
        };
        w.last = Some(obs);
        if vanished {
            st.total = st.total.map(|t| t.saturating_sub(1));
        }
        if let Some((change, elapsed, finished)) = learned {
            let durations = durations_of_mut(st, change);
            if was_probe {
                durations.probe_done();
            }
            let first_learned = finished && !durations.known();
            if finished {
                durations.finished_by(elapsed)
            } else {
                durations.still_changing_after(elapsed)
            }
            if first_learned {
                // The changes that waited for the first to be timed are due when it says.
                let first_look = durations.expected();
                for w in st.watched.values_mut() {
                    if let (Some((c, since, true)), None) = (w.change, &w.last) {
                        if c == change {
                            let due = (since + first_look).max(now);
                            w.due = Some(w.due.map_or(due, |d| d.min(due)));
                        }
                    }
                }
            }
        }
        targets
    }

    /// A failed look: the objects waiting on it hear of it; the region backs off (the cloud's
    /// TimeLeft, when throttled, is the floor).
    fn failed(&self, region: &Region, ids: &[String], at: Instant, e: CloudError) {
        let e = Arc::new(e);
        let wake = {
            let mut st = lock(&region.state);
            st.failures = st.failures.saturating_add(1);
            let exponent = st.failures.saturating_sub(1).min(16);
            let mut backoff = self.config.backoff_base.saturating_mul(1 << exponent).min(self.config.backoff_max);
            if let Some(hint) = e.retry_after() {
                backoff = backoff.max(hint);
            }
            if e.class() == ErrorClass::Terminal {
                backoff = self.config.backoff_max;
            }
            let resume = Instant::now() + backoff;
            if e.is_throttling() {
                st.paused_until = Some(resume);
            }
            // Objects hear of a failure they asked about, and of one that persists.
            let persistent = st.failures >= 3;
            let mut wake = Vec::new();
            for id in ids {
                let Some(w) = st.watched.get_mut(id) else { continue };
                w.due = Some(resume);
                let reported = matches!(w.last, Some(Observation { seen: Seen::Failed(_), .. }));
                if w.waiting || (persistent && !reported) {
                    w.waiting = false;
                    w.last = Some(Observation { at, seen: Seen::Failed(e.clone()) });
                    wake.extend(w.targets.iter().cloned());
                }
            }
            wake
        };
        debug!(error = %e, "look failed");
        self.wake_all(wake);
    }

    fn wake_all(&self, targets: Vec<WakeTarget>) {
        for t in targets {
            let _ = self.wake.send(t);
        }
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

struct Scan {
    seen: Vec<(Instant, Segment)>,
    total: Option<u32>,
    /// One page held the whole region: what it lacks is gone.
    complete_snapshot: bool,
}
