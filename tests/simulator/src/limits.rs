//! The gateway's flow control per account and action: Alibaba's fixed windows, or a token bucket,
//! so that a client's own limiter can be measured against either shape.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// One action's limit, per account. In JSON the fields tell the shapes apart:
/// `{"calls","perSeconds"}` is a fixed window, `{"capacity","perSecond"}` a token bucket.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged, rename_all_fields = "camelCase", try_from = "LimitFields")]
pub enum RateLimit {
    /// At most `calls` per `per_seconds`; a window opens at the first call accepted after the
    /// previous window closed.
    FixedWindow { calls: u32, per_seconds: f64 },
    /// Holds at most `capacity` calls and gains `per_second` of a call each second; starts full.
    TokenBucket { capacity: u32, per_second: f64 },
}

impl RateLimit {
    /// The limit if it can be enforced; otherwise what is wrong with it.
    pub fn validated(self) -> Result<RateLimit, String> {
        match self {
            RateLimit::FixedWindow { per_seconds, .. } if !(per_seconds.is_finite() && per_seconds > 0.0) => {
                Err(format!("a window of {per_seconds} seconds: it must be positive and finite"))
            }
            RateLimit::TokenBucket { capacity: 0, .. } => Err("a token bucket's capacity must be at least 1".into()),
            RateLimit::TokenBucket { per_second, .. } if !(per_second.is_finite() && per_second > 0.0) => {
                Err(format!("a refill of {per_second} calls per second: it must be positive and finite"))
            }
            limit => Ok(limit),
        }
    }

    /// The `Limit:` of the throttling header.
    fn size(self) -> u32 {
        match self {
            RateLimit::FixedWindow { calls, .. } => calls,
            RateLimit::TokenBucket { capacity, .. } => capacity,
        }
    }
}

/// A limit as the admin route receives it: exactly one shape's pair of fields.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct LimitFields {
    calls: Option<u32>,
    per_seconds: Option<f64>,
    capacity: Option<u32>,
    per_second: Option<f64>,
}

impl TryFrom<LimitFields> for RateLimit {
    type Error = String;

    fn try_from(f: LimitFields) -> Result<RateLimit, String> {
        let limit = match f {
            LimitFields { calls: Some(calls), per_seconds: Some(per_seconds), capacity: None, per_second: None } => {
                RateLimit::FixedWindow { calls, per_seconds }
            }
            LimitFields { calls: None, per_seconds: None, capacity: Some(capacity), per_second: Some(per_second) } => {
                RateLimit::TokenBucket { capacity, per_second }
            }
            _ => {
                return Err(
                    r#"a limit is {"calls","perSeconds"} (a fixed window) or {"capacity","perSecond"} (a token bucket)"#
                        .into(),
                );
            }
        };
        limit.validated()
    }
}

/// A refused call: the limit, and the milliseconds until a call may pass.
#[derive(Debug, PartialEq, Eq)]
pub struct Refusal {
    pub limit: u32,
    pub left_ms: u64,
}

/// Where one account's calls of one action stand.
enum Usage {
    Window { opened: Instant, calls: u32 },
    Bucket { tokens: f64, refilled: Instant },
}

/// Tokens short of a whole one by less than this count as whole, and a TimeLeft over a whole
/// millisecond by less than this fraction is not rounded up: a call that waited the TimeLeft it
/// was told must pass, whatever the floating-point noise of the refill.
const TOKEN_SLACK: f64 = 1e-9;
const TIME_LEFT_NOISE: f64 = 1e-12;

/// The limits in force and every account's usage of them. Refused calls use nothing.
#[derive(Default)]
pub struct Limiter {
    limits: HashMap<String, RateLimit>,
    usage: HashMap<(String, String), Usage>,
}

impl Limiter {
    pub fn new(limits: HashMap<String, RateLimit>) -> Limiter {
        Limiter { limits, usage: HashMap::new() }
    }

    pub fn limits(&self) -> &HashMap<String, RateLimit> {
        &self.limits
    }

    /// New limits, with every window and bucket started afresh.
    pub fn replace(&mut self, limits: HashMap<String, RateLimit>) {
        self.limits = limits;
        self.usage.clear();
    }

    /// Counts a call of `action` by `account` at `now`, or refuses it.
    pub fn admit(&mut self, account: &str, action: &str, now: Instant) -> Result<(), Refusal> {
        let Some(&limit) = self.limits.get(action) else {
            return Ok(());
        };
        let usage = self.usage.entry((account.to_string(), action.to_string())).or_insert_with(|| match limit {
            RateLimit::FixedWindow { .. } => Usage::Window { opened: now, calls: 0 },
            RateLimit::TokenBucket { capacity, .. } => Usage::Bucket { tokens: capacity.into(), refilled: now },
        });
        let left_ms = match (limit, usage) {
            (RateLimit::FixedWindow { calls, per_seconds }, Usage::Window { opened, calls: used }) => {
                window_call(calls, per_seconds, opened, used, now)
            }
            (RateLimit::TokenBucket { capacity, per_second }, Usage::Bucket { tokens, refilled }) => {
                bucket_call(capacity, per_second, tokens, refilled, now)
            }
            // Usage is cleared whenever the limits change, so its shape is the limit's.
            _ => None,
        };
        match left_ms {
            None => Ok(()),
            Some(left_ms) => Err(Refusal { limit: limit.size(), left_ms }),
        }
    }
}

/// Counts the call in its window; when the window is full, the milliseconds left in it.
fn window_call(calls: u32, per_seconds: f64, opened: &mut Instant, used: &mut u32, now: Instant) -> Option<u64> {
    let window = Duration::try_from_secs_f64(per_seconds).unwrap_or(Duration::MAX);
    if now.duration_since(*opened) >= window {
        (*opened, *used) = (now, 0);
    }
    if *used >= calls {
        let left = window.saturating_sub(now.duration_since(*opened));
        return Some(u64::try_from(left.as_millis()).unwrap_or(u64::MAX));
    }
    *used += 1;
    None
}

/// Takes a token for the call; when none is whole, the milliseconds until one is (at least 1).
fn bucket_call(capacity: u32, per_second: f64, tokens: &mut f64, refilled: &mut Instant, now: Instant) -> Option<u64> {
    let gained = now.duration_since(*refilled).as_secs_f64() * per_second;
    (*tokens, *refilled) = ((*tokens + gained).min(capacity.into()), now);
    if *tokens + TOKEN_SLACK >= 1.0 {
        *tokens = (*tokens - 1.0).max(0.0);
        return None;
    }
    let left_ms = ((1.0 - *tokens) / per_second * 1000.0 * (1.0 - TIME_LEFT_NOISE)).ceil();
    // `as` saturates: a refill too slow to wait for is u64::MAX milliseconds away.
    Some((left_ms as u64).max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    const ACCOUNT: &str = "1234567890123456";
    const OTHER: &str = "6543210987654321";
    const ACTION: &str = "ReleaseEipSegmentAddress";

    fn limiter(limit: RateLimit) -> Limiter {
        Limiter::new(HashMap::from([(ACTION.to_string(), limit)]))
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// How many of `n` calls at the same instant pass.
    fn passed(limiter: &mut Limiter, account: &str, n: usize, at: Instant) -> usize {
        (0..n).filter(|_| limiter.admit(account, ACTION, at).is_ok()).count()
    }

    #[test]
    fn a_bucket_lets_its_capacity_through_then_one_call_per_refill() {
        let mut bucket = limiter(RateLimit::TokenBucket { capacity: 3, per_second: 2.0 });
        let t0 = Instant::now();
        assert_eq!(passed(&mut bucket, ACCOUNT, 3, t0), 3, "it starts full");
        assert_eq!(bucket.admit(ACCOUNT, ACTION, t0), Err(Refusal { limit: 3, left_ms: 500 }));
        assert_eq!(bucket.admit(ACCOUNT, ACTION, t0 + ms(499)), Err(Refusal { limit: 3, left_ms: 1 }));
        assert_eq!(bucket.admit(ACCOUNT, ACTION, t0 + ms(500)), Ok(()), "after the TimeLeft it was told");
        assert_eq!(bucket.admit(ACCOUNT, ACTION, t0 + ms(500)), Err(Refusal { limit: 3, left_ms: 500 }));
        assert_eq!(bucket.admit(ACCOUNT, ACTION, t0 + ms(1250)), Ok(()), "refused calls took no token");
        assert_eq!(bucket.admit(ACCOUNT, ACTION, t0 + ms(1250)), Err(Refusal { limit: 3, left_ms: 250 }));
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(passed(&mut bucket, ACCOUNT, 10, later), 3, "never more than its capacity");
    }

    #[test]
    fn a_bucket_rounds_its_time_left_up_to_whole_milliseconds() {
        let mut thirds = limiter(RateLimit::TokenBucket { capacity: 1, per_second: 3.0 });
        let t0 = Instant::now();
        assert_eq!(passed(&mut thirds, ACCOUNT, 1, t0), 1);
        assert_eq!(thirds.admit(ACCOUNT, ACTION, t0).unwrap_err().left_ms, 334);
        assert_eq!(thirds.admit(ACCOUNT, ACTION, t0 + ms(333)).unwrap_err().left_ms, 1);
        assert_eq!(thirds.admit(ACCOUNT, ACTION, t0 + ms(334)), Ok(()));

        let mut fast = limiter(RateLimit::TokenBucket { capacity: 1, per_second: 1e6 });
        assert_eq!(passed(&mut fast, ACCOUNT, 1, t0), 1);
        assert_eq!(fast.admit(ACCOUNT, ACTION, t0).unwrap_err().left_ms, 1, "at least 1 ms");
    }

    #[test]
    fn each_account_has_its_own_bucket_and_window() {
        for limit in [
            RateLimit::TokenBucket { capacity: 2, per_second: 0.1 },
            RateLimit::FixedWindow { calls: 2, per_seconds: 60.0 },
        ] {
            let mut limiter = limiter(limit);
            let t0 = Instant::now();
            assert_eq!(passed(&mut limiter, ACCOUNT, 5, t0), 2, "{limit:?}");
            assert_eq!(passed(&mut limiter, OTHER, 5, t0), 2, "{limit:?}");
            assert_eq!(limiter.admit(ACCOUNT, "DescribeEipSegment", t0), Ok(()), "other actions are not limited");
        }
    }

    #[test]
    fn a_fixed_window_opens_at_the_first_call_after_the_last_one_closed() {
        let mut window = limiter(RateLimit::FixedWindow { calls: 2, per_seconds: 10.0 });
        let t0 = Instant::now();
        let s = Duration::from_secs;
        assert_eq!(passed(&mut window, ACCOUNT, 1, t0), 1);
        assert_eq!(passed(&mut window, ACCOUNT, 1, t0 + s(1)), 1);
        assert_eq!(window.admit(ACCOUNT, ACTION, t0 + s(2)), Err(Refusal { limit: 2, left_ms: 8000 }));
        assert_eq!(passed(&mut window, ACCOUNT, 2, t0 + s(12)), 2, "a new window from 12 s");
        assert_eq!(window.admit(ACCOUNT, ACTION, t0 + s(21)), Err(Refusal { limit: 2, left_ms: 1000 }));
        assert_eq!(passed(&mut window, ACCOUNT, 3, t0 + s(22)), 2, "refused calls did not count");
    }

    #[test]
    fn new_limits_start_afresh() {
        let mut limiter = limiter(RateLimit::FixedWindow { calls: 1, per_seconds: 60.0 });
        let t0 = Instant::now();
        assert_eq!(passed(&mut limiter, ACCOUNT, 2, t0), 1);
        limiter.replace(HashMap::from([(ACTION.to_string(), RateLimit::TokenBucket { capacity: 2, per_second: 1.0 })]));
        assert_eq!(passed(&mut limiter, ACCOUNT, 3, t0), 2, "a full bucket, not the old window");
        limiter.replace(HashMap::new());
        assert_eq!(passed(&mut limiter, ACCOUNT, 5, t0), 5);
    }

    #[test]
    fn json_tells_the_shapes_apart_by_their_fields() {
        let parse = |s: &str| serde_json::from_str::<RateLimit>(s);
        assert_eq!(
            parse(r#"{"calls":60,"perSeconds":60}"#).unwrap(),
            RateLimit::FixedWindow { calls: 60, per_seconds: 60.0 }
        );
        assert_eq!(
            parse(r#"{"capacity":60,"perSecond":1}"#).unwrap(),
            RateLimit::TokenBucket { capacity: 60, per_second: 1.0 }
        );
        for limit in [
            RateLimit::FixedWindow { calls: 5, per_seconds: 1.5 },
            RateLimit::TokenBucket { capacity: 7, per_second: 0.5 },
        ] {
            assert_eq!(parse(&serde_json::to_string(&limit).unwrap()).unwrap(), limit);
        }
        assert_eq!(
            serde_json::to_value(RateLimit::TokenBucket { capacity: 7, per_second: 0.5 }).unwrap(),
            serde_json::json!({"capacity": 7, "perSecond": 0.5})
        );
        for bad in [
            r#"{"calls":60}"#,
            r#"{"calls":60,"perSeconds":60,"capacity":1}"#,
            r#"{"calls":60,"perSecond":1}"#,
            r#"{"capacity":60,"perSecond":1,"burst":2}"#,
            r#"{"capacity":0,"perSecond":1}"#,
            r#"{"capacity":1,"perSecond":0}"#,
            r#"{"capacity":1,"perSecond":-2}"#,
            r#"{"calls":1,"perSeconds":0}"#,
            r#"{}"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
