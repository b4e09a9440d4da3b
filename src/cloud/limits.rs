//! Client-side rate limits per (credentials, region, action), below Alibaba's documented flow
//! control, so that a burst of work (a delete storm) waits here instead of meeting `Throttling`.

use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::cloud::Action;

/// A sustained rate with a burst on top.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ActionRate {
    pub per_second: f64,
    pub burst: u32,
}

/// The defaults. ReleaseEipSegmentAddress is documented at 60 calls per 60 s: 0.9/s with a burst
/// of 5 stays within 60 in any minute. The others have no published figure; these are modest.
pub fn default_rates() -> Vec<(Action, ActionRate)> {
    vec![
        (Action::ReleaseEipSegmentAddress, ActionRate { per_second: 0.9, burst: 5 }),
        (Action::AllocateEipSegmentAddress, ActionRate { per_second: 1.0, burst: 5 }),
        (Action::DescribeEipSegment, ActionRate { per_second: 20.0, burst: 20 }),
        (Action::DescribeEipAddresses, ActionRate { per_second: 10.0, burst: 10 }),
    ]
}

#[derive(Clone, Default)]
pub struct RateLimits {
    per_action: HashMap<Action, Arc<DefaultKeyedRateLimiter<(String, String)>>>,
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
            let period = Duration::try_from_secs_f64(1.0 / rate.per_second).ok().filter(|p| !p.is_zero()).ok_or_else(invalid)?;
            let burst = NonZeroU32::new(rate.burst).ok_or_else(invalid)?;
            let quota = Quota::with_period(period).ok_or_else(invalid)?.allow_burst(burst);
            per_action.insert(*action, Arc::new(RateLimiter::keyed(quota)));
        }
        Ok(RateLimits { per_action })
    }

    /// Waits until a call of `action` with these credentials in this region is within its rate.
    pub async fn wait(&self, action: Action, access_key_id: &str, region: &str) {
        if let Some(limiter) = self.per_action.get(&action) {
            limiter.until_key_ready(&(access_key_id.to_string(), region.to_string())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_burst_then_the_sustained_rate() {
        let limits = RateLimits::new(&[(Action::ReleaseEipSegmentAddress, ActionRate { per_second: 10.0, burst: 3 })]).unwrap();
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

    #[test]
    fn nonsense_rates_are_refused() {
        assert!(RateLimits::new(&[(Action::DescribeEipSegment, ActionRate { per_second: 0.0, burst: 1 })]).is_err());
        assert!(RateLimits::new(&[(Action::DescribeEipSegment, ActionRate { per_second: 1.0, burst: 0 })]).is_err());
        assert!(RateLimits::new(&default_rates()).is_ok());
    }
}
