//! Objects waiting for a place within a client-side quota: one queue per (account, region,
//! action), first come first served, each object asleep until the place of its turn frees up.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, mpsc};
use tokio::time::Instant;
use tracing::debug;
use vpc_api::model::Action;

use super::admission::{Admission, Admit};
use super::settings::Quota;
use crate::cloud::CloudError;
use crate::poller::WakeTarget;

/// One queue: the calls of one action with the credentials of one account in one region.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QueueName {
    pub account: String,
    pub region: String,
    pub action: Action,
}

impl fmt::Display for QueueName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}/{}", self.account, self.region, self.action)
    }
}

/// What an object's request for a place comes to.
#[derive(Debug)]
pub enum Turn {
    /// A place is the object's: its call may go out.
    Go(Admission),
    /// Its turn comes `after` this; `why` says so to the user.
    Wait { after: Duration, why: String },
    /// No credentials to ask with.
    Failed(CloudError),
}

/// Why an object waits before its call: the client-side quota, and what it is.
pub fn queued_message(action: Action, quota: Option<Quota>) -> String {
    let quota = quota.map(|q| format!(" ({q} per credentials and region)")).unwrap_or_default();
    format!("waiting for a place within the quota of {action}{quota}; other objects are ahead")
}

/// The queues of every quota, and the alarms that wake their objects.
#[derive(Default)]
pub struct Queues {
    waiting: Mutex<Waiting>,
    /// An alarm was set: the timer of [`Queues::ring`] looks again.
    alarm_set: Notify,
}

/// Objects waiting for a place within a client-side quota, and when they wake.
#[derive(Default)]
struct Waiting {
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
    turns: HashMap<String, InLine>,
}

/// One object's place in line.
#[derive(Clone, Copy)]
struct InLine {
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
        let turn = self.turns.entry(uid.to_string()).or_insert(InLine { order: next, placed: false, alarm: None });
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

impl Waiting {
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

impl Queues {
    /// The object's turn in the queue `name`, from the quota's `answer` to its request: a place
    /// granted is held (those behind count on the places left); none free queues the object,
    /// asleep until its turn, and says why.
    pub fn turn(&self, name: &QueueName, uid: &str, target: &WakeTarget, answer: Admit, quota: Option<Quota>) -> Turn {
        let (queue, action) = (name.to_string(), name.action);
        match answer {
            Admit::Granted(admission) => {
                debug!(object = %target.name, %action, "a place within the quota");
                self.placed(&queue, uid);
                Turn::Go(admission)
            }
            Admit::NotYet { after, frees } => {
                let after = self.queue(&queue, uid, target, after, &frees, quota);
                debug!(object = %target.name, %action, ?after, "queued for a place within the quota");
                Turn::Wait { after, why: queued_message(action, quota) }
            }
            Admit::Failed(e) => Turn::Failed(e),
        }
    }

    /// Whether the object sleeps on an alarm yet to ring: its own timer is not needed.
    pub fn asleep(&self, uid: &str) -> bool {
        lock(&self.waiting).asleep(uid, Instant::now())
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
    /// The object sleeps until then on the queue's alarm, which [`Queues::ring`] sounds.
    fn queue(
        &self,
        queue: &str,
        uid: &str,
        target: &WakeTarget,
        after: Duration,
        frees: &[Duration],
        quota: Option<Quota>,
    ) -> Duration {
        let mut waiting = lock(&self.waiting);
        let ahead = waiting.by_quota.entry(queue.to_string()).or_default().join(uid);
        let wake = Self::wake_after(ahead, after, frees, quota);
        waiting.alarm(queue, uid, target, Instant::now() + wake);
        self.alarm_set.notify_one();
        wake
    }

    fn wake_after(ahead: usize, after: Duration, frees: &[Duration], quota: Option<Quota>) -> Duration {
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
    fn placed(&self, queue: &str, uid: &str) {
        if let Some(queue) = lock(&self.waiting).by_quota.get_mut(queue) {
            queue.place(uid);
        }
    }

    /// The object made its call, or no longer waits for a place.
    pub fn leave(&self, uid: &str) {
        lock(&self.waiting).leave(uid);
    }

    /// Wakes each queued object as its alarm rings, through `wake`, until that closes.
    pub async fn ring(&self, wake: mpsc::UnboundedSender<WakeTarget>) {
        loop {
            let (due, next) = lock(&self.waiting).ring(Instant::now());
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_queue_takes_a_windows_quota_at_each_edge_first_come_first_served() {
        let queues = Queues::default();
        let quota = Some(Quota { calls: 60, window: Duration::from_secs(60) });
        let ms = Duration::from_millis;
        // The window's 60 places free up 10 ms apart from 1 s on.
        let frees: Vec<Duration> = (0..60).map(|i| ms(1000 + 10 * i)).collect();
        let next = frees[0];
        let queue = |uid: &str| queues.queue("acct/r/Release", uid, &target(uid), next, &frees, quota);
        let afters: Vec<Duration> = (0..130).map(|i| queue(&format!("o{i}"))).collect();
        assert!((0..60).all(|i| afters[i] == frees[i]), "each as the place after those ahead of it frees");
        assert!(afters[60..66].iter().all(|a| *a == frees[59]), "a tenth of a window more, should a place free up");
        assert!((66..126).all(|i| afters[i] == frees[(i - 60).min(59)] + ms(60_650)), "a window later");
        assert_eq!(afters[129], frees[9] + ms(121_300));
        assert_eq!(queue("o100"), afters[100], "a turn is kept");
        assert_eq!(
            queues.queue("acct/other/Release", "o100", &target("o100"), next, &frees, quota),
            next,
            "queues are separate"
        );
        for i in 0..60 {
            queues.leave(&format!("o{i}"));
        }
        assert_eq!(queue("o100"), frees[40], "those ahead made their calls");
        for i in 60..70 {
            queues.placed("acct/r/Release", &format!("o{i}"));
        }
        assert_eq!(queue("o100"), frees[30], "a place held is counted by the quota, not ahead");
        assert_eq!(queue("o60"), frees[0], "a pass stopped before its call keeps its turn");
        assert_eq!(queue("o100"), frees[31], "and is ahead again");
        assert_eq!(
            queues.queue("acct/r/Release", "late", &target("late"), next, &[], None),
            next,
            "no quota, no turns"
        );
        assert_eq!(
            queues.queue("acct/held/Release", "o0", &target("o0"), ms(5), &[], quota),
            ms(5),
            "held: when the hold ends"
        );

        // Mid-window: five places free soon, the rest a window on.
        let frees: Vec<Duration> = (0..60).map(|i| if i < 5 { ms(100 * (i + 1)) } else { ms(59_000 + i) }).collect();
        let afters: Vec<Duration> = (0..20)
            .map(|i| queues.queue("acct/mid/Release", &format!("m{i}"), &target("m"), frees[0], &frees, quota))
            .collect();
        assert_eq!(afters[..5], frees[..5], "the places freeing soon go to the first");
        assert!(afters[5..11].iter().all(|a| *a == frees[4]), "a tenth more wake as the last of them frees");
        assert!((11..20).all(|i| afters[i] == frees[i]), "the rest as their places in the next window free");
    }

    fn target(name: &str) -> WakeTarget {
        WakeTarget { namespace: "ns".into(), name: name.into() }
    }

    #[test]
    fn a_queue_is_named_by_account_region_and_action() {
        let name =
            QueueName { account: "111".into(), region: "cn-hangzhou".into(), action: Action::ReleaseEipSegmentAddress };
        assert_eq!(name.to_string(), "111/cn-hangzhou/ReleaseEipSegmentAddress");
    }

    #[test]
    fn a_waiting_object_is_told_the_quota_it_waits_for() {
        let quota = Some(Quota { calls: 60, window: Duration::from_secs(60) });
        assert_eq!(
            queued_message(Action::ReleaseEipSegmentAddress, quota),
            "waiting for a place within the quota of ReleaseEipSegmentAddress (60 calls per 60 s per credentials and \
             region); other objects are ahead"
        );
        assert!(!queued_message(Action::DescribeEipSegment, None).contains('('));
    }
}
