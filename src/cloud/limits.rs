//! Client-side rate limits per (credentials, region, action), below Alibaba's documented flow
//! control, so that a burst of work (a delete storm) waits here instead of meeting `Throttling`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use std::sync::Mutex;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::cloud::Action;

/// A sustained rate with a burst on top.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActionRate {
    pub per_second: f64,
    pub burst: u32,
}

/// The defaults. ReleaseEipSegmentAddress is documented at 60 calls per 60 s: 0.95/s with a burst
/// of 2 makes at most 59 calls in any minute, one short of the limit to absorb clock and latency
/// differences, and a delete storm runs at 95 % of the speed the cloud allows. The others have no published figure; these are modest.
pub fn default_rates() -> Vec<(Action, ActionRate)> {
    vec![
        (Action::ReleaseEipSegmentAddress, ActionRate { per_second: 0.95, burst: 2 }),
        (Action::AllocateEipSegmentAddress, ActionRate { per_second: 1.0, burst: 5 }),
        (Action::DescribeEipSegment, ActionRate { per_second: 20.0, burst: 20 }),
        (Action::DescribeEipAddresses, ActionRate { per_second: 10.0, burst: 10 }),
    ]
}

type LimitKey = (String, String);

#[derive(Clone, Default)]
pub struct RateLimits {
    per_action: HashMap<Action, (Arc<DefaultKeyedRateLimiter<LimitKey>>, Duration)>,
    /// After a throttling answer, calls of that action wait until the cloud's TimeLeft has passed.
    held: Arc<Mutex<HashMap<(Action, LimitKey), std::time::Instant>>>,
}

#[derive(Debug, thiserror::Error)]
#[error("invalid rate for {action}: {rate:?} (a positive rate and burst are needed)")]
pub struct InvalidRate {
    pub action: Action,
    pub rate: ActionRate,
}

impl RateLimits {
    pub fn new(rates: &[(Action, ActionRate)]) -> Result<Self, InvalidRate> {
        let mut per_action = HashMap::new();
        for (action, rate) in rates {
            let invalid = || InvalidRate { action: *action, rate: *rate };
            let period =
                Duration::try_from_secs_f64(1.0 / rate.per_second).ok().filter(|p| !p.is_zero()).ok_or_else(invalid)?;
            let burst = NonZeroU32::new(rate.burst).ok_or_else(invalid)?;
            let quota = Quota::with_period(period).ok_or_else(invalid)?.allow_burst(burst);
            per_action.insert(*action, (Arc::new(RateLimiter::keyed(quota)), period));
        }
        Ok(RateLimits { per_action, held: Arc::default() })
    }

    /// Waits until a call of `action` with these credentials in this region is within its rate.
    pub async fn wait(&self, action: Action, access_key_id: &str, region: &str) {
        let key = (access_key_id.to_string(), region.to_string());
        if let Some(left) = self.held_for(action, &key) {
            tokio::time::sleep(left).await;
        }
        if let Some((limiter, _)) = self.per_action.get(&action) {
            limiter.until_key_ready(&key).await;
        }
    }

    /// Takes a place within the rate if one is free now; otherwise says how long until one may be.
    pub fn try_acquire(&self, action: Action, access_key_id: &str, region: &str) -> Result<(), Duration> {
        let key = (access_key_id.to_string(), region.to_string());
        if let Some(left) = self.held_for(action, &key) {
            return Err(left);
        }
        match self.per_action.get(&action) {
            None => Ok(()),
            Some((limiter, _)) => {
                limiter.check_key(&key).map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
            }
        }
    }

    /// The sustained spacing of calls of `action`, if it is limited.
    pub fn period(&self, action: Action) -> Option<Duration> {
        self.per_action.get(&action).map(|(_, period)| *period)
    }

    /// The cloud throttled `action`: no call of it goes out before `left` has passed.
    pub fn hold(&self, action: Action, access_key_id: &str, region: &str, left: Duration) {
        let until = std::time::Instant::now() + left;
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let entry = held.entry((action, (access_key_id.to_string(), region.to_string()))).or_insert(until);
        *entry = (*entry).max(until);
    }

    fn held_for(&self, action: Action, key: &LimitKey) -> Option<Duration> {
        let mut held = self.held.lock().unwrap_or_else(|p| p.into_inner());
        let full_key = (action, key.clone());
        let until = *held.get(&full_key)?;
        let left = until.saturating_duration_since(std::time::Instant::now());
        if left.is_zero() {
            held.remove(&full_key);
            return None;
        }
        Some(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_then_the_sustained_rate() {
        let limits =
            RateLimits::new(&[(Action::ReleaseEipSegmentAddress, ActionRate { per_second: 10.0, burst: 3 })]).unwrap();
        let started = std::time::Instant::now();
        for _ in 0..3 {
            limits.wait(Action::ReleaseEipSegmentAddress, "ak", "cn-hangzhou").await;
        }
        assert!(started.elapsed() < Duration::from_millis(50), "the burst waits");
        for _ in 0..3 {
            limits.wait(Action::ReleaseEipSegmentAddress, "ak", "cn-hangzhou").await;
        }
        assert!(started.elapsed() >= Duration::from_millis(250), "past the burst, calls are spaced");
        // Other regions, credentials and unlimited actions do not wait.
        let other = std::time::Instant::now();
        limits.wait(Action::ReleaseEipSegmentAddress, "ak", "cn-beijing").await;
        limits.wait(Action::ReleaseEipSegmentAddress, "other", "cn-hangzhou").await;
        limits.wait(Action::DescribeEipSegment, "ak", "cn-hangzhou").await;
        assert!(other.elapsed() < Duration::from_millis(50));
    }

    #[tokio::test]
    async fn trying_takes_a_place_or_says_how_long() {
        let limits =
            RateLimits::new(&[(Action::ReleaseEipSegmentAddress, ActionRate { per_second: 2.0, burst: 1 })]).unwrap();
        assert_eq!(limits.try_acquire(Action::ReleaseEipSegmentAddress, "ak", "r"), Ok(()));
        let wait = limits.try_acquire(Action::ReleaseEipSegmentAddress, "ak", "r").unwrap_err();
        assert!(wait > Duration::from_millis(400) && wait <= Duration::from_millis(500), "{wait:?}");
        assert_eq!(limits.try_acquire(Action::DescribeEipSegment, "ak", "r"), Ok(()), "unlimited action");
        assert_eq!(limits.period(Action::ReleaseEipSegmentAddress), Some(Duration::from_millis(500)));
    }

    #[tokio::test]
    async fn throttling_holds_the_action_for_its_time_left() {
        let limits = RateLimits::new(&default_rates()).unwrap();
        limits.hold(Action::AllocateEipSegmentAddress, "ak", "r", Duration::from_millis(300));
        let wait = limits.try_acquire(Action::AllocateEipSegmentAddress, "ak", "r").unwrap_err();
        assert!(wait > Duration::from_millis(200), "{wait:?}");
        assert_eq!(limits.try_acquire(Action::AllocateEipSegmentAddress, "other", "r"), Ok(()), "other credentials");
        let started = std::time::Instant::now();
        limits.wait(Action::AllocateEipSegmentAddress, "ak", "r").await;
        assert!(started.elapsed() >= Duration::from_millis(200));
        assert_eq!(limits.try_acquire(Action::AllocateEipSegmentAddress, "ak", "r"), Ok(()), "the hold has passed");
    }

    #[test]
    fn nonsense_rates_are_refused() {
        assert!(RateLimits::new(&[(Action::DescribeEipSegment, ActionRate { per_second: 0.0, burst: 1 })]).is_err());
        assert!(RateLimits::new(&[(Action::DescribeEipSegment, ActionRate { per_second: 1.0, burst: 0 })]).is_err());
        assert!(RateLimits::new(&default_rates()).is_ok());
    }
}
