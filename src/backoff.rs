//! The one exponential backoff of the operator, for objects' retries and the poller's failed looks.

use std::time::Duration;

/// `base` doubled per consecutive failure after the first (`failures` ≥ 1), capped at `max`, less up
/// to 20 % from `jitter` in [0, 1) so that many waiters do not return together; `floor` (the cloud's
/// TimeLeft hint) is never undercut.
pub fn delay(base: Duration, max: Duration, failures: u32, jitter: f64, floor: Option<Duration>) -> Duration {
    let exponent = failures.saturating_sub(1).min(20);
    let raw = base.saturating_mul(1u32 << exponent).min(max);
    let jittered = raw.mul_f64(1.0 - 0.2 * jitter.clamp(0.0, 1.0));
    floor.map_or(jittered, |f| jittered.max(f))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_caps_jitters_and_keeps_the_floor() {
        let s = Duration::from_secs;
        let d = |n, jitter, floor| delay(s(1), s(120), n, jitter, floor);
        assert_eq!([d(0, 0.0, None), d(1, 0.0, None), d(2, 0.0, None), d(5, 0.0, None)], [s(1), s(1), s(2), s(16)]);
        assert_eq!(d(30, 0.0, None), s(120));
        assert_eq!(d(u32::MAX, 0.0, None), s(120));
        let jittered = d(3, 0.99, None);
        assert!(jittered < s(4) && jittered >= Duration::from_millis(3200), "{jittered:?}");
        assert_eq!(d(1, 0.0, Some(s(7))), s(7));
        assert_eq!(d(8, 0.0, Some(s(7))), s(128).min(s(120)));
    }
}
