//! When an object comes back: the lifecycle's pace turned into a duration, with per-object
//! backoff (reset by any other pace), places in the client-side quota's queue, and the gauges
//! that count objects by state. Everything here is keyed by the object's UID, so one object's
//! finish touches nothing of another's.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;

use crate::cloud::ErrorClass;
use crate::cloud::limits::Quota;
use crate::lifecycle::Pace;
use crate::poller::WakeTarget;
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
    queued: Mutex<Queues>,
    /// An alarm was set: the timer of [`Pacing::ring`] looks again.
    alarm_set: Notify,
    counted: Mutex<HashMap<String, Counted>>,
}

/// Objects waiting for a place within a client-side quota, and when they wake.
#[derive(Default)]
struct Queues {
    /// Per (account, region, action).
    by_quota: HashMap<String, Queue>,
    /// Queued objects asleep until their turn, by when (then in the order set). One timer wakes
    /// them through the channel the poller's wakes take: a requeue each in the controller's queue
    /// cost half a KiB an object, and a storm queues thousands.
    alarms: BTreeMap<(Instant, u64), WakeTarget>,
    alarms_set: u64,
}

/// Objects in the order they first asked for a place.
#[derive(Default)]
struct Queue {
    next_turn: u64,
    turns: HashMap<String, Turn>,
}

#[derive(Clone, Copy)]
struct Turn {
    order: u64,
    /// Holds a place (its call not yet made): counted by the quota, not ahead of anyone.
    placed: bool,
    /// Its alarm, while it sleeps until its turn.
    alarm: Option<(Instant, u64)>,
}

impl Queue {
    /// Keeps the object's turn if it has one; how many without a place are ahead of it.
    fn join(&mut self, uid: &str) -> usize {
        let next = self.next_turn;
        let turn = self.turns.entry(uid.to_string()).or_insert(Turn { order: next, placed: false, alarm: None });
        turn.placed = false;
        let order = turn.order;
        if order == next {
            self.next_turn += 1;
        }
        self.turns.values().filter(|t| t.order < order && !t.placed).count()
    }

    fn place(&mut self, uid: &str) {
        if let Some(turn) = self.turns.get_mut(uid) {
            turn.placed = true;
        }
    }
}

impl Queues {
    /// Wakes the object at `at` instead of at any earlier alarm of its turn.
    fn alarm(&mut self, queue: &str, uid: &str, target: &WakeTarget, at: Instant) {
        let Some(turn) = self.by_quota.get_mut(queue).and_then(|q| q.turns.get_mut(uid)) else { return };
        if let Some(before) = turn.alarm.take() {
            self.alarms.remove(&before);
        }
        self.alarms_set += 1;
        let key = (at, self.alarms_set);
        turn.alarm = Some(key);
        self.alarms.insert(key, target.clone());
    }

    /// The object asleep on an alarm yet to ring.
    fn asleep(&self, uid: &str, now: Instant) -> bool {
        self.by_quota.values().any(|q| q.turns.get(uid).and_then(|t| t.alarm).is_some_and(|(at, _)| at > now))
    }

    fn leave(&mut self, uid: &str) {
        let alarms = &mut self.alarms;
        self.by_quota.retain(|_, queue| {
            if let Some(alarm) = queue.turns.remove(uid).and_then(|t| t.alarm) {
                alarms.remove(&alarm);
            }
            !queue.turns.is_empty()
        });
    }

    /// Takes the alarms due by `now`; when the next one is due.
    fn ring(&mut self, now: Instant) -> (Vec<WakeTarget>, Option<Instant>) {
        let later = self.alarms.split_off(&(now, u64::MAX));
        let due = std::mem::replace(&mut self.alarms, later);
        (due.into_values().collect(), self.alarms.first_key_value().map(|((at, _), _)| *at))
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Pacing {
    pub fn new(metrics: Arc<Metrics>) -> Pacing {
        Pacing {
            metrics,
            failures: Mutex::default(),
            queued: Mutex::default(),
            alarm_set: Notify::new(),
            counted: Mutex::default(),
        }
    }

    /// How long until the object's next pass; `None` for a settled object, which waits for a
    /// change, a wake from the poller, or its turn in the rolling resync.
    pub fn after(&self, uid: &str, pace: Pace, timings: &Timings) -> Option<Duration> {
        let after = match pace {
            Pace::Backoff { class, hint } => {
                let failures = {
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
            Pace::Queued(_) if lock(&self.queued).asleep(uid, Instant::now()) => return None,
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

    /// When an object that found no free place within the quota tries again, `after` being when
    /// the next place frees up and `frees` when each held place does: in its turn, first come
    /// first served, each window taking as many as its quota lets through. An object with `ahead`
    /// before it in this window wakes as the place after theirs frees, so that a window's places
    /// are spent as they open, and those that cannot have one stay asleep until theirs (the
    /// window's calls go out when the last one's places free).
    ///
    /// Those within a tenth of a window's quota past its edge (the places freeing in the next half
    /// window) wake as its last place frees: an object ahead of them may have had a place given
    /// back earlier, or be asleep on a turn counted before, and the place its turn held would
    /// otherwise go unused. Waking early costs them a pass; missing it would cost everyone a window.
    ///
    /// The object sleeps until then on the queue's alarm, which [`Pacing::ring`] sounds.
    pub fn queue(
        &self,
        queue: &str,
        uid: &str,
        target: &WakeTarget,
        after: Duration,
        frees: &[Duration],
        quota: Option<Quota>,
    ) -> Duration {
        let mut queues = lock(&self.queued);
        let ahead = queues.by_quota.entry(queue.to_string()).or_default().join(uid);
        let wake = Self::turn(ahead, after, frees, quota);
        queues.alarm(queue, uid, target, Instant::now() + wake);
        self.alarm_set.notify_one();
        wake
    }

    fn turn(ahead: usize, after: Duration, frees: &[Duration], quota: Option<Quota>) -> Duration {
        let (Some(quota), Some(first)) = (quota, frees.first()) else { return after };
        let calls = quota.calls as usize;
        let tenth = calls.div_ceil(10);
        let edge = frees.iter().take_while(|f| **f < *first + quota.memory() / 2).count();
        let wake = if ahead < edge {
            frees[ahead]
        } else if ahead < edge + tenth {
            frees[edge - 1]
        } else {
            let windows = (ahead - tenth) / calls;
            let in_window = ahead - windows * calls;
            *frees.get(in_window).unwrap_or(&frees[frees.len() - 1]) + quota.memory() * windows as u32
        };
        wake.max(after)
    }

    /// The object holds a place: those behind it count on the places left. It keeps its turn
    /// until its call is made, should its pass be stopped first.
    pub fn placed(&self, queue: &str, uid: &str) {
        if let Some(queue) = lock(&self.queued).by_quota.get_mut(queue) {
            queue.place(uid);
        }
    }

    /// The object made its call, or no longer waits for a place.
    pub fn unqueue(&self, uid: &str) {
        lock(&self.queued).leave(uid);
    }

    /// Wakes each queued object as its alarm rings, through `wake`, until that closes.
    pub async fn ring(&self, wake: mpsc::UnboundedSender<WakeTarget>) {
        loop {
            let (due, next) = lock(&self.queued).ring(Instant::now());
            for target in due {
                if wake.send(target).is_err() {
                    return;
                }
            }
            // An alarm set meanwhile leaves a permit: the wait ends at once and looks again.
            match next {
                Some(at) => tokio::select! {
                    _ = tokio::time::sleep_until(at) => {}
                    _ = self.alarm_set.notified() => {}
                },
                None => self.alarm_set.notified().await,
            }
        }
    }

    /// Counts the object as ready and/or releasing in the gauges.
    pub fn count(&self, uid: &str, now: Counted) {
        let mut counted = lock(&self.counted);
        let before = counted.insert(uid.to_string(), now).unwrap_or_default();
        self.publish(before, now);
    }

    /// The object is gone: nothing of it is kept.
    pub fn forget(&self, uid: &str) {
        lock(&self.failures).remove(uid);
        self.unqueue(uid);
        let mut counted = lock(&self.counted);
        if let Some(before) = counted.remove(uid) {
            self.publish(before, Counted::default());
        }
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

    #[test]
    fn backoff_per_class_resets_on_success() {
        let t = Timings::default();
        let pacing = Pacing::new(Arc::new(Metrics::default()));
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

    #[test]
    fn a_queue_takes_a_windows_quota_at_each_edge_first_come_first_served() {
        let pacing = Pacing::new(Arc::new(Metrics::default()));
        let quota = Some(Quota { calls: 60, window: Duration::from_secs(60) });
        let ms = Duration::from_millis;
        // The window's 60 places free up 10 ms apart from 1 s on.
        let frees: Vec<Duration> = (0..60).map(|i| ms(1000 + 10 * i)).collect();
        let next = frees[0];
        let queue = |uid: &str| pacing.queue("acct/r/Release", uid, &target(uid), next, &frees, quota);
        let afters: Vec<Duration> = (0..130).map(|i| queue(&format!("o{i}"))).collect();
        assert!((0..60).all(|i| afters[i] == frees[i]), "each as the place after those ahead of it frees");
        assert!(afters[60..66].iter().all(|a| *a == frees[59]), "a tenth of a window more, should a place free up");
        assert!((66..126).all(|i| afters[i] == frees[(i - 60).min(59)] + ms(60_650)), "a window later");
        assert_eq!(afters[129], frees[9] + ms(121_300));
        assert_eq!(queue("o100"), afters[100], "a turn is kept");
        assert_eq!(
            pacing.queue("acct/other/Release", "o100", &target("o100"), next, &frees, quota),
            next,
            "queues are separate"
        );
        for i in 0..60 {
            pacing.unqueue(&format!("o{i}"));
        }
        assert_eq!(queue("o100"), frees[40], "those ahead made their calls");
        for i in 60..70 {
            pacing.placed("acct/r/Release", &format!("o{i}"));
        }
        assert_eq!(queue("o100"), frees[30], "a place held is counted by the quota, not ahead");
        assert_eq!(queue("o60"), frees[0], "a pass stopped before its call keeps its turn");
        assert_eq!(queue("o100"), frees[31], "and is ahead again");
        assert_eq!(
            pacing.queue("acct/r/Release", "late", &target("late"), next, &[], None),
            next,
            "no quota, no turns"
        );
        assert_eq!(
            pacing.queue("acct/held/Release", "o0", &target("o0"), ms(5), &[], quota),
            ms(5),
            "held: when the hold ends"
        );

        // Mid-window: five places free soon, the rest a window on.
        let frees: Vec<Duration> = (0..60).map(|i| if i < 5 { ms(100 * (i + 1)) } else { ms(59_000 + i) }).collect();
        let afters: Vec<Duration> = (0..20)
            .map(|i| pacing.queue("acct/mid/Release", &format!("m{i}"), &target("m"), frees[0], &frees, quota))
            .collect();
        assert_eq!(afters[..5], frees[..5], "the places freeing soon go to the first");
        assert!(afters[5..11].iter().all(|a| *a == frees[4]), "a tenth more wake as the last of them frees");
        assert!((11..20).all(|i| afters[i] == frees[i]), "the rest as their places in the next window free");
    }

    fn target(name: &str) -> WakeTarget {
        WakeTarget { namespace: "ns".into(), name: name.into() }
    }

    #[tokio::test(start_paused = true)]
    async fn queued_objects_sleep_on_the_queues_alarms_and_wake_in_turn() {
        let t = Timings::default();
        let pacing = Arc::new(Pacing::new(Arc::new(Metrics::default())));
        let (wake, mut woken) = mpsc::unbounded_channel();
        let ring = tokio::spawn({
            let pacing = pacing.clone();
            async move { pacing.ring(wake).await }
        });
        let quota = Some(Quota { calls: 2, window: Duration::from_secs(10) });
        let frees = [Duration::from_secs(1), Duration::from_secs(2)];
        let started = Instant::now();
        for name in ["a", "b", "c"] {
            pacing.queue("acct/r/Release", name, &target(name), frees[0], &frees, quota);
        }
        assert_eq!(pacing.after("a", Pace::Queued(frees[0]), &t), None, "no timer of its own");
        pacing.queue("acct/r/Release", "b", &target("b"), frees[0], &frees, quota);
        pacing.unqueue("c");
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
        let pacing = Pacing::new(metrics.clone());
        pacing.count("a", Counted { ready: true, releasing: false });
        pacing.count("b", Counted { ready: false, releasing: true });
        pacing.count("c", Counted { ready: true, releasing: false });
        assert_eq!((metrics.objects_ready.get(), metrics.releases_in_flight.get()), (2, 1));
        pacing.forget("c");
        pacing.forget("b");
        assert_eq!((metrics.objects_ready.get(), metrics.releases_in_flight.get()), (1, 0));
    }
}
