//! What the quotas are: at most so many calls in any window, per action, as the command line gives
//! them or as Alibaba documents them.

use std::time::Duration;

use vpc_api::model::Action;

/// At most `calls` calls in any `window`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quota {
    pub calls: u32,
    pub window: Duration,
}

impl Quota {
    /// The spacing of calls when the quota is spread evenly over its window.
    pub fn share(&self) -> Duration {
        self.window / self.calls
    }

    /// How long a call counts against the quota after it was sent: the window, 1 % and 50 ms more,
    /// so that the latency between this clock and the cloud's count never puts a call of the next
    /// window into the previous one.
    pub fn memory(&self) -> Duration {
        self.window + self.window / 100 + Duration::from_millis(50)
    }
}

impl std::fmt::Display for Quota {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} calls per {} s", self.calls, self.window.as_secs_f64())
    }
}

#[derive(Debug, thiserror::Error, PartialEq)]
#[error("invalid quota {0:?}: expected CALLS/SECONDS with at least one call in a window of more than 0 s, e.g. 60/60")]
pub struct InvalidQuota(pub String);

impl std::str::FromStr for Quota {
    type Err = InvalidQuota;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let invalid = || InvalidQuota(s.to_string());
        let (calls, seconds) = s.trim().split_once('/').ok_or_else(invalid)?;
        let calls: u32 = calls.trim().parse().ok().filter(|c| *c > 0).ok_or_else(invalid)?;
        let seconds: f64 =
            seconds.trim().parse().ok().filter(|s: &f64| s.is_finite() && *s > 0.0).ok_or_else(invalid)?;
        let window = Duration::try_from_secs_f64(seconds).ok().filter(|w| !w.is_zero()).ok_or_else(invalid)?;
        Ok(Quota { calls, window })
    }
}

/// The quota of each limited action, per credentials and region.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct QuotaSettings {
    pub release: Quota,
    pub allocate: Quota,
    pub describe: Quota,
    pub describe_addresses: Quota,
}

/// The defaults. Alibaba documents ReleaseEipSegmentAddress at 60 calls per 60 s (its API page) and
/// DescribeEipAddresses at 600 per 60 s (the EIP quotas page). The others have no published figure:
/// AllocateEipSegmentAddress gets the release's, DescribeEipSegment a modest 20 per second.
impl Default for QuotaSettings {
    fn default() -> Self {
        let quota = |calls, seconds| Quota { calls, window: Duration::from_secs(seconds) };
        QuotaSettings {
            release: quota(60, 60),
            allocate: quota(60, 60),
            describe: quota(20, 1),
            describe_addresses: quota(600, 60),
        }
    }
}

impl QuotaSettings {
    /// Each limited action with its quota.
    pub fn per_action(&self) -> Vec<(Action, Quota)> {
        vec![
            (Action::ReleaseEipSegmentAddress, self.release),
            (Action::AllocateEipSegmentAddress, self.allocate),
            (Action::DescribeEipSegment, self.describe),
            (Action::DescribeEipAddresses, self.describe_addresses),
        ]
    }

    /// The quota of `action`, if it is limited.
    pub fn of(&self, action: Action) -> Option<Quota> {
        self.per_action().into_iter().find(|(limited, _)| *limited == action).map(|(_, quota)| quota)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotas_parse_and_refuse_nonsense() {
        assert_eq!("60/60".parse(), Ok(Quota { calls: 60, window: Duration::from_secs(60) }));
        assert_eq!("20/0.5".parse(), Ok(Quota { calls: 20, window: Duration::from_millis(500) }));
        for bad in ["", "60", "0/60", "60/0", "60/-1", "x/60", "60/inf", "60/NaN"] {
            assert!(bad.parse::<Quota>().is_err(), "{bad:?}");
        }
        assert_eq!(Quota { calls: 60, window: Duration::from_secs(60) }.to_string(), "60 calls per 60 s");
    }

    #[test]
    fn the_defaults_are_the_documented_figures_for_every_vpc_action() {
        let defaults = QuotaSettings::default();
        assert_eq!(defaults.of(Action::ReleaseEipSegmentAddress), Some("60/60".parse().unwrap()));
        assert_eq!(defaults.of(Action::DescribeEipAddresses), Some("600/60".parse().unwrap()));
        assert_eq!(defaults.of(Action::AllocateEipSegmentAddress), Some("60/60".parse().unwrap()));
        assert_eq!(defaults.of(Action::DescribeEipSegment), Some("20/1".parse().unwrap()));
        assert_eq!(defaults.of(Action::GetCallerIdentity), None, "STS is not limited");
        let limited: Vec<Action> = defaults.per_action().into_iter().map(|(action, _)| action).collect();
        assert!(Action::ALL.iter().all(|action| limited.contains(action)));
    }
}
