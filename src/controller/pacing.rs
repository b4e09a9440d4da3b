//! When an object comes back: the lifecycle's pace turned into a duration, with per-object
//! backoff (reset by any other pace), asleep while the quota's queue holds it, and the gauges
//! that count objects by state. Everything here is keyed by the object's UID, so one object's
//! finish touches nothing of another's.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use crate::cloud::ErrorClass;
use crate::lifecycle::Pace;
use crate::quota::Queues;
use crate::telemetry::Metrics;

/// Objects waiting on the poller are woken when their segment changes; this is only the safety net
/// should a wake be lost.
pub const UNWOKEN_RECHECK: Duration = Duration::from_secs(60);

/// How the intervals are set; configurable from the command line.
#[derive(Clone, Copy, Debug)]
pub struct Timings {
    pub poll: Duration,
    pub resync: Duration,
    pub transient_base: Duration,
    pub transient_max: Duration,
    pub blocked_base: Duration,
    pub blocked_max: Duration,
    pub terminal_base: Duration,
    pub terminal_max: Duration,
    /// How long the cloud is taken to remember a ClientToken's answer.
    pub token_memory: Duration,
}

impl Default for Timings {
    fn default() -> Self {
        Timings {
            poll: Duration::from_secs(2),
            resync: Duration::from_secs(600),
            transient_base: Duration::from_secs(1),
            transient_max: Duration::from_secs(120),
            blocked_base: Duration::from_secs(30),
            blocked_max: Duration::from_secs(600),
            terminal_base: Duration::from_secs(120),
            terminal_max: Duration::from_secs(1800),
            token_memory: Duration::from_secs(3600),
        }
    }
}

impl Timings {
    /// The backoff after `failures` consecutive failures of this class (≥ 1), with `jitter` in
    /// [0, 1) and the cloud's TimeLeft hint as a floor.
    pub fn backoff(&self, class: ErrorClass, failures: u32, jitter: f64, hint: Option<Duration>) -> Duration {
        let (base, max) = match class {
            ErrorClass::Transient | ErrorClass::Gone => (self.transient_base, self.transient_max),
            ErrorClass::Blocked => (self.blocked_base, self.blocked_max),
            ErrorClass::Terminal => (self.terminal_base, self.terminal_max),
        };
        crate::backoff::delay(base, max, failures, jitter, hint)
    }
}

/// What an object is counted as in the gauges.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counted {
    pub ready: bool,
    pub releasing: bool,
}

pub struct Pacing {
    metrics: Arc<Metrics>,
    failures: Mutex<HashMap<String, u32>>,
    /// The quota's queues, where an object may sleep until its turn.
    queues: Arc<Queues>,
    /// By UID: the object's namespace, and what it is counted as.
    counted: Mutex<HashMap<String, (String, Counted)>>,
    /// The UIDs of objects gone lately: a pass that was under way when its object went counts it
    /// no more (UIDs are never reused).
    gone: Mutex<Gone>,
}

/// The last [`Gone::KEPT`] UIDs forgotten, oldest first.
#[derive(Default)]
struct Gone {
    order: std::collections::VecDeque<String>,
    uids: HashSet<String>,
}

impl Gone {
    /// More than the passes that can be under way at once, by far.
    const KEPT: usize = 4096;

    fn insert(&mut self, uid: &str) {
        if !self.uids.insert(uid.to_string()) {
            return;
        }
        self.order.push_back(uid.to_string());
        if self.order.len() > Gone::KEPT
            && let Some(oldest) = self.order.pop_front()
        {
            self.uids.remove(&oldest);
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pacing {
    pub fn new(metrics: Arc<Metrics>, queues: Arc<Queues>) -> Pacing {
        Pacing { metrics, failures: Mutex::default(), queues, counted: Mutex::default(), gone: Mutex::default() }
    }

    /// How long until the object's next pass; `None` for a settled object, which waits for a
    /// change, a wake from the poller, or its turn in the rolling resync.
    pub fn after(&self, uid: &str, pace: Pace, timings: &Timings) -> Option<Duration> {
        let after = match pace {
            Pace::Backoff { class, hint } => {
                let failures = if lock(&self.gone).uids.contains(uid) {
                    1
                } else {
                    let mut map = lock(&self.failures);
                    let n = map.entry(uid.to_string()).or_insert(0);
                    *n = n.saturating_add(1);
                    *n
                };
                timings.backoff(class, failures, rand::random::<f64>(), hint)
            }
            Pace::Woken => self.succeeded(uid, UNWOKEN_RECHECK),
            Pace::Looking => UNWOKEN_RECHECK,
            Pace::Settled => {
                self.succeeded(uid, Duration::ZERO);
                return None;
            }
            Pace::Resync => self.succeeded(uid, timings.resync),
            // Waiting for its turn in a quota's queue, it sleeps until the queue's alarm.
            Pace::Queued(_) if self.queues.asleep(uid) => return None,
            Pace::Queued(after) => after,
        };
        Some(after)
    }

    fn succeeded(&self, uid: &str, after: Duration) -> Duration {
        lock(&self.failures).remove(uid);
        after
    }

    pub fn after_kube_error(&self, uid: &str, timings: &Timings) -> Duration {
        let retry = Pace::Backoff { class: ErrorClass::Transient, hint: None };
        self.after(uid, retry, timings).unwrap_or(timings.transient_base)
    }

    /// Counts the object (of `namespace`) as ready and/or releasing in the gauges.
    pub fn count(&self, uid: &str, namespace: &str, now: Counted) {
        if lock(&self.gone).uids.contains(uid) {
            return;
        }
        let mut counted = lock(&self.counted);
        let before = counted.insert(uid.to_string(), (namespace.to_string(), now)).map(|(_, c)| c).unwrap_or_default();
        self.publish(before, now);
    }

    /// The object is gone: nothing of it is kept.
    pub fn forget(&self, uid: &str) {
        lock(&self.gone).insert(uid);
        lock(&self.failures).remove(uid);
        self.queues.leave(uid);
        let mut counted = lock(&self.counted);
        if let Some((_, before)) = counted.remove(uid) {
            self.publish(before, Counted::default());
        }
    }

    /// Forgets every object of a namespace `in_scope` accepts that `present` (a fresh listing's
    /// UIDs) does not hold.
    pub fn keep_only(&self, present: &HashSet<String>, in_scope: impl Fn(&str) -> bool) {
        let gone: Vec<String> = lock(&self.counted)
            .iter()
            .filter(|(uid, (namespace, _))| in_scope(namespace) && !present.contains(*uid))
            .map(|(uid, _)| uid.clone())
            .collect();
        gone.iter().for_each(|uid| self.forget(uid));
    }

    /// Moves the gauges by one object's change (under the lock of `counted`).
    fn publish(&self, before: Counted, now: Counted) {
        let step = |was: bool, is: bool| i64::from(is) - i64::from(was);
        self.metrics.objects_ready.inc_by(step(before.ready, now.ready));
        self.metrics.releases_in_flight.inc_by(step(before.releasing, now.releasing));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::Action;
    use crate::poller::WakeTarget;
    use crate::quota::{Admit, QueueName, Quota};
    use tokio::sync::mpsc;
    use tokio::time::Instant;

    fn pacing() -> Pacing {
        Pacing::new(Arc::new(Metrics::default()), Arc::default())
    }

    /// A pass that was under way when its object went (a Delete event, a listing without it) ends
    /// after the forgetting: it counts the object no more, and keeps no backoff for it.
    #[test]
    fn a_pass_ending_after_its_object_went_counts_it_no_more() {
        let pacing = pacing();
        let ready = Counted { ready: true, releasing: false };
        pacing.count("a", "ns", ready);
        pacing.count("b", "ns", ready);
        pacing.forget("a");
        pacing.count("a", "ns", ready);
        assert_eq!(pacing.metrics.objects_ready.get(), 1);
        let blocked = Pace::Backoff { class: ErrorClass::Blocked, hint: None };
        pacing.after("a", blocked, &Timings::default());
        assert!(!lock(&pacing.failures).contains_key("a"));
        // Only the last ones are kept.
        (0..Gone::KEPT).for_each(|i| pacing.forget(&format!("other-{i}")));
        pacing.count("a", "ns", ready);
        assert_eq!(pacing.metrics.objects_ready.get(), 2);
    }

    #[test]
    fn backoff_per_class_resets_on_success() {
        let t = Timings::default();
        let pacing = pacing();
        let blocked = Pace::Backoff { class: ErrorClass::Blocked, hint: None };
        let first = pacing.after("a", blocked, &t);
        let second = pacing.after("a", blocked, &t);
        let (first, second) = (first.unwrap(), second.unwrap());
        assert!(first <= Duration::from_secs(30) && first >= Duration::from_secs(24), "{first:?}");
        assert!(second >= Duration::from_secs(48), "doubles: {second:?}");
        let after = |uid: &str, pace: Pace| pacing.after(uid, pace, &t).unwrap();
        assert!(after("b", blocked) <= Duration::from_secs(30), "per object");
        assert_eq!(after("a", Pace::Looking), UNWOKEN_RECHECK);
        assert!(after("a", blocked) >= Duration::from_secs(96), "waiting for a look is no success");
        assert_eq!(after("a", Pace::Woken), UNWOKEN_RECHECK);
        assert_eq!(pacing.after("a", Pace::Settled, &t), None, "no timer of its own");
        assert!(after("a", blocked) <= Duration::from_secs(30), "reset by settling");
        assert_eq!(after("a", Pace::Resync), t.resync);
        let hinted = Pace::Backoff { class: ErrorClass::Transient, hint: Some(Duration::from_secs(7)) };
        assert!(after("c", hinted) >= Duration::from_secs(7));
        assert_eq!(t.backoff(ErrorClass::Terminal, 30, 0.0, None), t.terminal_max);
    }

    fn target(name: &str) -> WakeTarget {
        WakeTarget { namespace: "ns".into(), name: name.into() }
    }

    #[tokio::test(start_paused = true)]
    async fn queued_objects_sleep_on_the_queues_alarms_and_wake_in_turn() {
        let t = Timings::default();
        let queues = Arc::new(Queues::default());
        let pacing = Pacing::new(Arc::new(Metrics::default()), queues.clone());
        let (wake, mut woken) = mpsc::unbounded_channel();
        let ring = tokio::spawn({
            let queues = queues.clone();
            async move { queues.ring(wake).await }
        });
        let quota = Some(Quota { calls: 2, window: Duration::from_secs(10) });
        let frees = [Duration::from_secs(1), Duration::from_secs(2)];
        let name = QueueName { account: "acct".into(), region: "r".into(), action: Action::ReleaseEipSegmentAddress };
        let queue = |uid: &str| {
            let answer = Admit::NotYet { after: frees[0], frees: frees.to_vec() };
            queues.turn(&name, uid, &target(uid), answer, quota)
        };
        let started = Instant::now();
        for name in ["a", "b", "c"] {
            queue(name);
        }
        assert_eq!(pacing.after("a", Pace::Queued(frees[0]), &t), None, "no timer of its own");
        queue("b");
        queues.leave("c");
        let mut order = Vec::new();
        for _ in 0..2 {
            let woke = woken.recv().await.unwrap();
            order.push((woke.name, started.elapsed().as_secs()));
        }
        assert_eq!(
            order,
            [("a".to_string(), 1), ("b".to_string(), 2)],
            "each at its turn, once: b's alarm moved, c left"
        );
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(woken.try_recv().is_err(), "nobody else");
        assert_eq!(pacing.after("a", Pace::Queued(frees[0]), &t), Some(frees[0]), "once rung, a requeue again");
        ring.abort();
    }

    #[test]
    fn gauges_follow_objects_and_forget_them() {
        let metrics = Arc::new(Metrics::default());
        let pacing = Pacing::new(metrics.clone(), Arc::default());
        pacing.count("a", "ns", Counted { ready: true, releasing: false });
        pacing.count("b", "ns", Counted { ready: false, releasing: true });
        pacing.count("c", "ns", Counted { ready: true, releasing: false });
        assert_eq!((metrics.objects_ready.get(), metrics.releases_in_flight.get()), (2, 1));
        pacing.forget("c");
        pacing.forget("b");
        assert_eq!((metrics.objects_ready.get(), metrics.releases_in_flight.get()), (1, 0));
    }

    #[test]
    fn a_listing_forgets_only_the_objects_of_its_scope_it_does_not_hold() {
        let metrics = Arc::new(Metrics::default());
        let pacing = Pacing::new(metrics.clone(), Arc::default());
        pacing.count("kept", "a", Counted { ready: true, releasing: false });
        pacing.count("removed", "a", Counted { ready: false, releasing: true });
        pacing.count("elsewhere", "b", Counted { ready: true, releasing: false });
        let listing: HashSet<String> = ["kept".to_string()].into();
        pacing.keep_only(&listing, |ns| ns == "a");
        assert_eq!((metrics.objects_ready.get(), metrics.releases_in_flight.get()), (2, 0));
        pacing.keep_only(&listing, |_| true);
        assert_eq!((metrics.objects_ready.get(), metrics.releases_in_flight.get()), (1, 0));
    }
}
