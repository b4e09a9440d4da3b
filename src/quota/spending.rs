//! What each (action, credentials, region) has spent of its quota. Work that waits spends the
//! quota at once, and never more than `calls` in any `window`, so that neither a fixed window nor a
//! token bucket of that size refuses it. A throttling answer holds the action for the cloud's
//! TimeLeft and teaches where its window is.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use vpc_api::model::Action;

use super::admission::{Admission, Admit};
use super::settings::Quota;

/// The hold after a throttling answer without a TimeLeft hint (a hint is at most `LONGEST_HINT`).
const THROTTLED_HOLD: Duration = Duration::from_secs(1);

type Key = (Action, String, String);

/// A place taken within a quota, until its call is sent.
#[derive(Debug)]
pub struct Ticket {
    key: Key,
    id: u64,
}

/// What one (action, credentials, region) has spent.
#[derive(Default)]
struct Spending {
    /// Each call that still counts, by ticket: when it was let through, then when it was sent.
    sent: Vec<(u64, Instant)>,
    next_id: u64,
    /// After a throttling answer, nothing goes out before this.
    held_until: Option<Instant>,
}

impl Spending {
    fn held(&mut self, now: Instant) -> Result<(), Duration> {
        if let Some(until) = self.held_until {
            if until > now {
                return Err(until - now);
            }
            self.held_until = None;
        }
        Ok(())
    }

    fn try_spend(&mut self, quota: Quota, now: Instant) -> Result<u64, Duration> {
        self.held(now)?;
        self.sent.retain(|(_, t)| now.saturating_duration_since(*t) < quota.memory());
        if self.sent.len() >= quota.calls as usize {
            let oldest = self.sent.iter().map(|(_, t)| *t).min().unwrap_or(now);
            return Err((oldest + quota.memory()).saturating_duration_since(now).max(Duration::from_millis(1)));
        }
        self.next_id += 1;
        self.sent.push((self.next_id, now));
        Ok(self.next_id)
    }

    /// When each place held now frees up, soonest first; nothing frees before a hold ends.
    fn frees(&self, quota: Quota, now: Instant) -> Vec<Duration> {
        let held = self.held_until.map_or(Duration::ZERO, |until| until.saturating_duration_since(now));
        let mut frees: Vec<Duration> =
            self.sent.iter().map(|(_, t)| (*t + quota.memory()).saturating_duration_since(now).max(held)).collect();
        frees.sort();
        frees
    }

    /// The ticket's call will not be sent: its place is free again.
    fn give_back(&mut self, id: u64) {
        self.sent.retain(|(i, _)| *i != id);
    }

    /// The call of this ticket goes out now: it counts from now, whatever came between (a status
    /// write) since its place was taken.
    fn stamp(&mut self, id: u64, now: Instant) {
        if let Some((_, t)) = self.sent.iter_mut().find(|(i, _)| *i == id) {
            *t = (*t).max(now);
        }
    }

    /// The cloud refused a call for `left` more. A hint longer than one call's share is the rest of
    /// a window: the cloud's count starts afresh when it ends, and so does this one, which puts the
    /// following windows on the cloud's edge. A shorter hint is a refill: from then on calls go out
    /// one share apart, as the cloud's tokens come.
    fn throttled(&mut self, quota: Option<Quota>, left: Duration, now: Instant) {
        let until = now + left;
        self.held_until = Some(self.held_until.map_or(until, |held| held.max(until)));
        let Some(quota) = quota else { return };
        self.sent.clear();
        if left <= quota.share() * 2 {
            let first_free = until.checked_sub(quota.memory()).unwrap_or(now);
            self.sent.extend((0..quota.calls).map(|i| (0, first_free + quota.share() * i)));
        }
    }
}

#[derive(Clone, Default)]
pub struct Quotas {
    per_action: HashMap<Action, Quota>,
    spent: Arc<Mutex<HashMap<Key, Spending>>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn key(action: Action, access_key_id: &str, region: &str) -> Key {
    (action, access_key_id.to_string(), region.to_string())
}

impl Quotas {
    pub fn new(quotas: &[(Action, Quota)]) -> Self {
        Quotas { per_action: quotas.iter().copied().collect(), spent: Arc::default() }
    }

    /// Waits until a call of `action` with these credentials in this region is within its quota,
    /// to be sent at once.
    pub async fn wait(&self, action: Action, access_key_id: &str, region: &str) {
        while let Err(left) = self.try_acquire(action, access_key_id, region) {
            tokio::time::sleep(left).await;
        }
    }

    /// Takes a place for one `action` call within the quota if one is free now, without waiting:
    /// work that must wait its turn is requeued instead of holding a worker.
    pub fn admit(&self, action: Action, access_key_id: &str, region: &str) -> Admit {
        match self.try_acquire(action, access_key_id, region) {
            Ok(ticket) => Admit::Granted(Admission::new(ticket.map(|t| (t, self.clone())))),
            Err(after) => Admit::NotYet { after, frees: self.frees(action, access_key_id, region) },
        }
    }

    /// Takes a place within the quota if one is free now (a ticket to stamp when the call is sent,
    /// for a limited action); otherwise says how long until one may be.
    pub fn try_acquire(&self, action: Action, access_key_id: &str, region: &str) -> Result<Option<Ticket>, Duration> {
        self.try_acquire_at(action, access_key_id, region, Instant::now())
    }

    fn try_acquire_at(
        &self,
        action: Action,
        access_key_id: &str,
        region: &str,
        now: Instant,
    ) -> Result<Option<Ticket>, Duration> {
        let mut spent = lock(&self.spent);
        let key = key(action, access_key_id, region);
        match self.quota(action) {
            Some(quota) => {
                let id = spent.entry(key.clone()).or_default().try_spend(quota, now)?;
                Ok(Some(Ticket { key, id }))
            }
            None => spent.get_mut(&key).map_or(Ok(()), |s| s.held(now)).map(|()| None),
        }
    }

    /// When each place of `action` held now frees up, soonest first (empty when it is unlimited or
    /// nothing is held).
    pub fn frees(&self, action: Action, access_key_id: &str, region: &str) -> Vec<Duration> {
        self.frees_at(action, access_key_id, region, Instant::now())
    }

    fn frees_at(&self, action: Action, access_key_id: &str, region: &str, now: Instant) -> Vec<Duration> {
        let Some(quota) = self.quota(action) else { return Vec::new() };
        let spent = lock(&self.spent);
        spent.get(&key(action, access_key_id, region)).map_or_else(Vec::new, |s| s.frees(quota, now))
    }

    /// The ticket's call is being sent.
    pub fn stamp(&self, ticket: &Ticket) {
        self.stamp_at(ticket, Instant::now());
    }

    /// The ticket's call will not be sent (the pass stopped before it): its place goes to another.
    pub fn give_back(&self, ticket: Ticket) {
        if let Some(spending) = lock(&self.spent).get_mut(&ticket.key) {
            spending.give_back(ticket.id);
        }
    }

    fn stamp_at(&self, ticket: &Ticket, now: Instant) {
        if let Some(spending) = lock(&self.spent).get_mut(&ticket.key) {
            spending.stamp(ticket.id, now);
        }
    }

    /// The quota of `action`, if it is limited.
    pub fn quota(&self, action: Action) -> Option<Quota> {
        self.per_action.get(&action).copied()
    }

    /// The cloud throttled `action`, with its TimeLeft `hint` if it gave one: its window outranks
    /// ours, so no call of it goes out before the hint (a second without one, at most a minute).
    pub fn throttled(&self, action: Action, access_key_id: &str, region: &str, hint: Option<Duration>) {
        let left = hint.unwrap_or(THROTTLED_HOLD).min(crate::cloud::error::LONGEST_HINT);
        self.throttled_at(action, access_key_id, region, left, Instant::now());
    }

    fn throttled_at(&self, action: Action, access_key_id: &str, region: &str, left: Duration, now: Instant) {
        // An unlimited action still waits out the cloud's hint.
        let quota = self.quota(action);
        lock(&self.spent).entry(key(action, access_key_id, region)).or_default().throttled(quota, left, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const RELEASE: Action = Action::ReleaseEipSegmentAddress;

    fn quotas(calls: u32, seconds: u64) -> Quotas {
        Quotas::new(&[(RELEASE, Quota { calls, window: Duration::from_secs(seconds) })])
    }

    fn secs(s: f64) -> Duration {
        Duration::from_secs_f64(s)
    }

    /// How many of `wanted` calls at `at` are let through.
    fn spend(q: &Quotas, at: Instant, wanted: u32) -> u32 {
        (0..wanted).filter(|_| q.try_acquire_at(RELEASE, "ak", "r", at).is_ok()).count() as u32
    }

    #[test]
    fn the_whole_quota_at_once_then_the_next_window() {
        let q = quotas(60, 60);
        let t0 = Instant::now();
        assert_eq!(spend(&q, t0, 100), 60, "a storm spends the quota at once");
        let wait = q.try_acquire_at(RELEASE, "ak", "r", t0 + secs(1.0)).unwrap_err();
        assert_eq!(wait, secs(59.65), "until the first call leaves the window, with its margin");
        assert_eq!(spend(&q, t0 + secs(60.6), 1), 0, "the margin holds the window's edge");
        assert_eq!(spend(&q, t0 + secs(60.65), 100), 60, "the next window, whole");
        // Never more than the quota in any window: what a token bucket of the same size allows.
        assert_eq!(spend(&q, t0 + secs(120.0), 1), 0);
    }

    #[test]
    fn a_call_counts_from_when_it_is_sent() {
        // Between its place and its call, a pass writes the object's status: the cloud counts the
        // call when it arrives.
        let q = quotas(2, 10);
        let t0 = Instant::now();
        let early = q.try_acquire_at(RELEASE, "ak", "r", t0).unwrap().unwrap();
        assert!(q.try_acquire_at(RELEASE, "ak", "r", t0).unwrap().is_some());
        q.stamp_at(&early, t0 + secs(3.0));
        assert!(q.try_acquire_at(RELEASE, "ak", "r", t0 + secs(10.2)).is_ok(), "the unstamped place is free");
        let wait = q.try_acquire_at(RELEASE, "ak", "r", t0 + secs(10.2)).unwrap_err();
        assert_eq!(wait, secs(2.95), "the stamped one counts from its call");
    }

    #[test]
    fn the_places_held_free_up_in_the_order_they_were_spent() {
        let q = quotas(3, 10);
        let t0 = Instant::now();
        for at in [2.0, 0.0, 1.0] {
            assert_eq!(spend(&q, t0 + secs(at), 1), 1);
        }
        let frees = q.frees_at(RELEASE, "ak", "r", t0 + secs(5.0));
        assert_eq!(frees, [secs(5.15), secs(6.15), secs(7.15)], "soonest first, each with the window's margin");
        assert!(q.frees_at(RELEASE, "other", "r", t0).is_empty(), "per key");
    }

    #[test]
    fn a_place_whose_call_is_not_sent_goes_to_another() {
        let q = quotas(1, 60);
        let t0 = Instant::now();
        let unused = q.try_acquire_at(RELEASE, "ak", "r", t0).unwrap().unwrap();
        assert!(q.try_acquire_at(RELEASE, "ak", "r", t0).is_err());
        q.give_back(unused);
        assert!(q.try_acquire_at(RELEASE, "ak", "r", t0).is_ok());
    }

    #[test]
    fn quotas_are_per_action_credentials_and_region() {
        let q = quotas(1, 60);
        let t0 = Instant::now();
        assert!(q.try_acquire_at(RELEASE, "ak", "r", t0).is_ok());
        assert!(q.try_acquire_at(RELEASE, "ak", "r", t0).is_err());
        assert!(q.try_acquire_at(RELEASE, "ak", "other-region", t0).is_ok());
        assert!(q.try_acquire_at(RELEASE, "other-key", "r", t0).is_ok());
        assert!(q.try_acquire_at(Action::DescribeEipSegment, "ak", "r", t0).is_ok(), "unlimited");
    }

    #[test]
    fn a_window_hint_puts_the_next_windows_on_the_clouds_edge() {
        // Another client spent the cloud's window; ours thinks 10 are free.
        let q = quotas(60, 60);
        let t0 = Instant::now();
        assert_eq!(spend(&q, t0, 50), 50);
        q.throttled_at(RELEASE, "ak", "r", secs(20.0), t0 + secs(1.0));
        assert!(q.try_acquire_at(RELEASE, "ak", "r", t0 + secs(20.9)).is_err(), "held for the hint");
        let edge = t0 + secs(21.0);
        assert_eq!(spend(&q, edge, 100), 60, "the cloud's window reopens whole");
        assert_eq!(spend(&q, edge + secs(60.0), 1), 0);
        assert_eq!(spend(&q, edge + secs(60.65), 100), 60, "and the next one a window later");
    }

    #[test]
    fn a_refill_hint_spreads_calls_one_share_apart() {
        // A token bucket smaller than the quota: its hint is the time to the next token.
        let q = quotas(60, 60);
        let t0 = Instant::now();
        assert_eq!(spend(&q, t0, 10), 10);
        q.throttled_at(RELEASE, "ak", "r", secs(1.0), t0);
        assert_eq!(spend(&q, t0 + secs(0.9), 1), 0, "held");
        let mut let_through = 0;
        for tenth in 10..=600 {
            let_through += spend(&q, t0 + secs(f64::from(tenth) / 10.0), 5);
        }
        // One per second from the hint on: 60 in the next minute, never a burst.
        assert!((59..=61).contains(&let_through), "{let_through}");
    }

    #[test]
    fn an_unlimited_action_still_waits_out_a_throttling_hint() {
        let q = Quotas::new(&[]);
        let t0 = Instant::now();
        q.throttled_at(Action::DescribeEipSegment, "ak", "r", secs(2.0), t0);
        assert!(q.try_acquire_at(Action::DescribeEipSegment, "ak", "r", t0 + secs(1.0)).is_err());
        assert!(q.try_acquire_at(Action::DescribeEipSegment, "ak", "r", t0 + secs(2.0)).is_ok());
    }

    #[test]
    fn a_throttling_answer_holds_for_its_hint_a_second_without_one_a_minute_at_most() {
        for (hint, held) in [(None, secs(1.0)), (Some(secs(3.0)), secs(3.0)), (Some(secs(600.0)), secs(60.0))] {
            let q = quotas(60, 60);
            q.throttled(RELEASE, "ak", "r", hint);
            let wait = q.try_acquire(RELEASE, "ak", "r").unwrap_err();
            assert!(wait <= held && wait > held - secs(0.5), "{hint:?}: held {wait:?}");
        }
    }

    #[test]
    fn an_admission_holds_its_place_until_spent_or_dropped() {
        let q = quotas(1, 60);
        let Admit::Granted(admission) = q.admit(RELEASE, "ak", "r") else { panic!("a free place") };
        let Admit::NotYet { after, frees } = q.admit(RELEASE, "ak", "r") else { panic!("the only place is taken") };
        assert!(frees.len() == 1 && after > secs(59.0), "{after:?} {frees:?}");
        drop(admission);
        let Admit::Granted(admission) = q.admit(RELEASE, "ak", "r") else { panic!("given back when dropped") };
        admission.spend();
        assert!(matches!(q.admit(RELEASE, "ak", "r"), Admit::NotYet { .. }), "spent, it stays taken");
        assert!(matches!(q.admit(Action::DescribeEipSegment, "ak", "r"), Admit::Granted(_)), "unlimited");
    }

    #[tokio::test]
    async fn waiting_returns_once_a_place_is_free() {
        let q = Quotas::new(&[(RELEASE, Quota { calls: 2, window: Duration::from_millis(200) })]);
        let started = Instant::now();
        for _ in 0..3 {
            q.wait(RELEASE, "ak", "r").await;
        }
        assert!(started.elapsed() >= Duration::from_millis(200), "the third waits for the window");
    }
}
