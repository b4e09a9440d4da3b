//! A stand-in for the Alibaba Cloud VPC API: the same actions, error codes and JSON shapes, with
//! state that produces every documented error, fault injection, rate limits and an admin API.

pub mod auth;
pub mod gateway;
pub mod limits;
pub mod malformed;
pub mod sts;
pub mod world;

use std::collections::HashMap;
use std::io::Write;
use std::sync::Arc;

use clap::{CommandFactory, Parser};
use rand::SeedableRng;
use rand::rngs::StdRng;

use auth::{AccessKey, Keyring};
use gateway::{Faults, Simulator};
use limits::RateLimit;
use world::{DEFAULT_REGIONS, Timing, World};

/// The documented default credentials, used when none are given; they act for [`DEFAULT_ACCOUNT`].
pub const DEFAULT_ACCESS_KEY_ID: &str = "LTAI5tSimulatorDefaultKey";
pub const DEFAULT_ACCESS_KEY_SECRET: &str = "SimulatorDefaultSecretNotForProduction";
pub const DEFAULT_ACCOUNT: &str = "1234567890123456";
/// A second account, isolated from the default one: neither sees the other's segments, and a
/// release of the other's segment is `Forbidden`.
pub const OTHER_ACCOUNT: &str = "6543210987654321";
/// The documented credentials of [`OTHER_ACCOUNT`], always present.
pub const OTHER_ACCESS_KEY_ID: &str = "LTAI5tSimulatorOtherKey";
pub const OTHER_ACCESS_KEY_SECRET: &str = "SimulatorOtherSecretNotForProduction";

/// A key given with `--account-key ACCOUNT:ACCESS_KEY_ID:ACCESS_KEY_SECRET`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountKey {
    pub account: String,
    pub access_key_id: String,
    pub access_key_secret: String,
}

#[derive(Parser, Debug, Clone)]
#[command(name = "vpc-simulator", version, about = "A simulator of the Alibaba Cloud VPC API's EIP segment actions")]
pub struct Args {
    /// Address to listen on; port 0 picks a free one (the chosen address is printed on stdout).
    #[arg(long, env = "VPC_SIMULATOR_LISTEN", default_value = "127.0.0.1:0")]
    pub listen: String,
    /// Accepted AccessKeyId (default: the documented simulator key).
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_ID")]
    pub access_key_id: Option<String>,
    /// Accepted AccessKeySecret (default: the documented simulator secret).
    #[arg(long, env = "ALIBABA_CLOUD_ACCESS_KEY_SECRET", hide_env_values = true)]
    pub access_key_secret: Option<String>,
    /// Another accepted key, `ACCOUNT:ACCESS_KEY_ID:ACCESS_KEY_SECRET` (the account is digits and is
    /// created if new; the secret may contain `:`), repeatable.
    #[arg(long = "account-key", value_parser = parse_account_key)]
    pub account_keys: Vec<AccountKey>,
    /// Seconds a segment stays Allocating.
    #[arg(long, default_value_t = 2.0)]
    pub allocate_seconds: f64,
    /// Seconds a segment stays Releasing before it disappears.
    #[arg(long, default_value_t = 2.0)]
    pub release_seconds: f64,
    /// A second release attempt for one segment within this many seconds gets TaskConflict.
    #[arg(long, default_value_t = 1.0)]
    pub release_cooldown_seconds: f64,
    /// Seconds after an accepted Allocate before DescribeEipSegment returns the new segment.
    #[arg(long, default_value_t = 0.0)]
    pub visibility_lag_seconds: f64,
    /// Seconds the cloud remembers a ClientToken's answer; after that a repeat is a new request, as
    /// the real API's token memory is not forever. 0 remembers forever.
    #[arg(long, default_value_t = 0.0)]
    pub token_memory_seconds: f64,
    /// Seconds the cloud's clock runs ahead of the host's (negative: behind): its CreationTimes,
    /// its answers' Date header and its check of request timestamps follow it.
    #[arg(long, default_value_t = 0, allow_negative_numbers = true)]
    pub clock_offset_seconds: i64,
    /// Regions the simulated cloud has, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_REGIONS.iter().map(|r| r.to_string()))]
    pub regions: Vec<String>,
    /// Seed of the random choices (IDs, faults), for reproducible runs.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Per-action fixed-window limit, `Action=CALLS/SECONDS`, repeatable (e.g.
    /// ReleaseEipSegmentAddress=60/60).
    #[arg(long = "rate-limit", value_parser = parse_rate_limit)]
    pub rate_limits: Vec<(String, RateLimit)>,
    /// Per-action token bucket, `Action=CAPACITY/REFILL_PER_SECOND`, repeatable (e.g.
    /// ReleaseEipSegmentAddress=60/1); it starts full. An action has one limit: this or --rate-limit.
    #[arg(long = "token-bucket", value_parser = parse_token_bucket)]
    pub token_buckets: Vec<(String, RateLimit)>,
    /// Probability of an InternalError (HTTP 500) answer.
    #[arg(long, default_value_t = 0.0)]
    pub fault_internal_error_rate: f64,
    /// Probability of a dropped connection.
    #[arg(long, default_value_t = 0.0)]
    pub fault_drop_rate: f64,
    /// Probability of a delayed answer.
    #[arg(long, default_value_t = 0.0)]
    pub fault_delay_rate: f64,
    /// Upper bound of an injected delay, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub fault_delay_ms: u64,
    /// Probability of a throttling answer beyond the rate limits.
    #[arg(long, default_value_t = 0.0)]
    pub fault_throttle_rate: f64,
    /// The TimeLeft those throttling answers give, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub fault_throttle_time_left_ms: u64,
    /// A RAM role STS AssumeRoleWithOIDC may assume (`acs:ram::<account>:role/<name>`), repeatable;
    /// its credentials act for the role's account.
    #[arg(long = "rrsa-role", value_parser = parse_role_arn, default_values_t = [sts::DEFAULT_ROLE_ARN.to_string()])]
    pub rrsa_roles: Vec<String>,
    /// The registered OIDC provider (`acs:ram::<account>:oidc-provider/<name>`).
    #[arg(long, value_parser = parse_provider_arn, default_value = sts::DEFAULT_OIDC_PROVIDER_ARN)]
    pub rrsa_provider: String,
    /// The provider's issuer URL; an OIDC token's `iss` must equal it.
    #[arg(long, default_value = sts::DEFAULT_ISSUER)]
    pub rrsa_issuer: String,
    /// Lifetime of issued STS credentials in seconds, instead of the request's DurationSeconds (may
    /// be below its 900 s minimum, for tests).
    #[arg(long, value_parser = clap::value_parser!(i64).range(1..))]
    pub rrsa_credential_seconds: Option<i64>,
}

fn parse_role_arn(value: &str) -> Result<String, String> {
    sts::parse_arn(value, "role")
        .map(|_| value.to_string())
        .ok_or_else(|| "expected acs:ram::<account>:role/<name>".into())
}

fn parse_provider_arn(value: &str) -> Result<String, String> {
    sts::parse_arn(value, "oidc-provider")
        .map(|_| value.to_string())
        .ok_or_else(|| "expected acs:ram::<account>:oidc-provider/<name>".into())
}

/// `ACCOUNT:ACCESS_KEY_ID:ACCESS_KEY_SECRET`; only the first two colons separate.
fn parse_account_key(value: &str) -> Result<AccountKey, String> {
    let mut parts = value.splitn(3, ':');
    let (Some(account), Some(id), Some(secret)) = (parts.next(), parts.next(), parts.next()) else {
        return Err("expected ACCOUNT:ACCESS_KEY_ID:ACCESS_KEY_SECRET".into());
    };
    validate_key(account, id, secret)?;
    Ok(AccountKey { account: account.into(), access_key_id: id.into(), access_key_secret: secret.into() })
}

/// What a key added by flag or admin route must look like: an account of digits (it appears in
/// ARNs), a non-empty ID and secret.
pub fn validate_key(account: &str, access_key_id: &str, secret: &str) -> Result<(), String> {
    if account.is_empty() || !account.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("account {account:?} is not an account ID (digits)"));
    }
    if access_key_id.is_empty() || secret.is_empty() {
        return Err("the AccessKeyId and the AccessKeySecret must not be empty".into());
    }
    Ok(())
}

fn parse_rate_limit(value: &str) -> Result<(String, RateLimit), String> {
    let (action, calls, seconds) = split_limit(value, "Action=CALLS/SECONDS")?;
    let calls = calls.parse().map_err(|_| format!("bad call count {calls:?}"))?;
    let per_seconds = seconds.parse().map_err(|_| format!("bad seconds {seconds:?}"))?;
    Ok((action, RateLimit::FixedWindow { calls, per_seconds }.validated()?))
}

fn parse_token_bucket(value: &str) -> Result<(String, RateLimit), String> {
    let (action, capacity, rate) = split_limit(value, "Action=CAPACITY/REFILL_PER_SECOND")?;
    let capacity = capacity.parse().map_err(|_| format!("bad capacity {capacity:?}"))?;
    let per_second = rate.parse().map_err(|_| format!("bad refill rate {rate:?}"))?;
    Ok((action, RateLimit::TokenBucket { capacity, per_second }.validated()?))
}

/// `Action=A/B` as its three parts.
fn split_limit<'a>(value: &'a str, expected: &str) -> Result<(String, &'a str, &'a str), String> {
    let shape_error = || format!("expected {expected}");
    let (action, rate) = value.split_once('=').ok_or_else(shape_error)?;
    let (a, b) = rate.split_once('/').ok_or_else(shape_error)?;
    if action.is_empty() {
        return Err(shape_error());
    }
    Ok((action.to_string(), a, b))
}

impl Args {
    /// The command line's arguments; a conflict between flags exits with clap's usage error.
    pub fn from_command_line() -> Args {
        let args = Args::parse();
        if let Err(e) = args.limits() {
            Args::command().error(clap::error::ErrorKind::ArgumentConflict, e).exit();
        }
        args
    }

    /// Every action's limit; a later flag for an action replaces an earlier one of the same shape.
    pub fn limits(&self) -> Result<HashMap<String, RateLimit>, String> {
        let windows = self.rate_limits.iter().map(|(action, limit)| (action, limit, "--rate-limit"));
        let buckets = self.token_buckets.iter().map(|(action, limit)| (action, limit, "--token-bucket"));
        let mut limits = HashMap::new();
        let mut flags = HashMap::new();
        for (action, limit, flag) in windows.chain(buckets) {
            if flags.insert(action, flag).is_some_and(|other| other != flag) {
                return Err(format!("{action} is given both --rate-limit and --token-bucket; an action has one limit"));
            }
            limits.insert(action.clone(), *limit);
        }
        Ok(limits)
    }

    pub fn build(&self) -> Result<Simulator, String> {
        let timing = Timing {
            allocate_seconds: self.allocate_seconds,
            release_seconds: self.release_seconds,
            release_cooldown_seconds: self.release_cooldown_seconds,
            visibility_lag_seconds: self.visibility_lag_seconds,
            token_memory_seconds: self.token_memory_seconds,
            clock_offset_seconds: self.clock_offset_seconds,
        };
        let mut world = World::new(self.regions.clone(), timing, StdRng::seed_from_u64(self.seed));
        world.add_account(DEFAULT_ACCOUNT);
        world.add_account(OTHER_ACCOUNT);
        let keyring = self.keyring();
        for (_, account) in keyring.listing() {
            world.add_account(&account);
        }
        let faults = Faults {
            internal_error_rate: self.fault_internal_error_rate,
            drop_rate: self.fault_drop_rate,
            delay_rate: self.fault_delay_rate,
            delay_ms_min: 0,
            delay_ms_max: self.fault_delay_ms,
            throttle_rate: self.fault_throttle_rate,
            throttle_time_left_ms: Some(self.fault_throttle_time_left_ms),
            ..Faults::default()
        };
        let limits = self.limits()?;
        let sts = sts::StsConfig {
            role_arns: self.rrsa_roles.clone(),
            oidc_provider_arn: self.rrsa_provider.clone(),
            issuer: self.rrsa_issuer.clone(),
            credential_seconds: self.rrsa_credential_seconds,
            ..sts::StsConfig::default()
        };
        Ok(Simulator::new(
            world,
            keyring,
            faults,
            limits,
            StdRng::seed_from_u64(self.seed.wrapping_add(1)),
            DEFAULT_ACCOUNT.into(),
        )
        .with_sts(sts))
    }
}

impl Args {
    /// The default account's key (from the flags or the documented default), the other account's
    /// documented key, then every `--account-key`, a later one replacing an earlier one's ID.
    fn keyring(&self) -> Keyring {
        let mut keyring = Keyring::default();
        let id = self.access_key_id.as_deref().unwrap_or(DEFAULT_ACCESS_KEY_ID);
        let secret = self.access_key_secret.as_deref().unwrap_or(DEFAULT_ACCESS_KEY_SECRET);
        keyring.insert(OTHER_ACCESS_KEY_ID, AccessKey::of_account(OTHER_ACCOUNT, OTHER_ACCESS_KEY_SECRET));
        keyring.insert(id, AccessKey::of_account(DEFAULT_ACCOUNT, secret));
        for k in &self.account_keys {
            keyring.insert(&k.access_key_id, AccessKey::of_account(&k.account, &k.access_key_secret));
        }
        keyring
    }
}

fn build(args: &Args) -> std::io::Result<Simulator> {
    args.build().map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))
}

/// Runs the simulator until interrupted.
pub async fn run(args: Args) -> std::io::Result<()> {
    let sim = Arc::new(build(&args)?);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let addr = listener.local_addr()?;
    println!("vpc-simulator listening on http://{addr}");
    std::io::stdout().flush()?;
    tokio::select! {
        r = gateway::serve(listener, sim) => r,
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Starts a simulator on a free loopback port inside this process (for tests); returns its base URL.
pub async fn start_in_process(args: Args) -> std::io::Result<(String, tokio::task::JoinHandle<std::io::Result<()>>)> {
    let sim = Arc::new(build(&args)?);
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    let url = format!("http://{}", listener.local_addr()?);
    Ok((url, tokio::spawn(gateway::serve(listener, sim))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_keys_parse_with_colons_in_the_secret_and_refuse_bad_accounts() {
        let key = parse_account_key("42:LTAIx:a:b").unwrap();
        assert_eq!(
            key,
            AccountKey { account: "42".into(), access_key_id: "LTAIx".into(), access_key_secret: "a:b".into() }
        );
        for bad in ["42:LTAIx", "acct:LTAIx:s", ":LTAIx:s", "42::s", "42:LTAIx:"] {
            assert!(parse_account_key(bad).is_err(), "{bad}");
        }
    }

    fn parsed(flags: &[&str]) -> Result<Args, clap::Error> {
        Args::try_parse_from(std::iter::once("vpc-simulator").chain(flags.iter().copied()))
    }

    #[test]
    fn limits_of_both_shapes_parse_from_their_flags() {
        let args = parsed(&[
            "--token-bucket",
            "ReleaseEipSegmentAddress=60/1",
            "--rate-limit",
            "DescribeEipSegment=2/60",
            "--token-bucket",
            "AllocateEipSegmentAddress=1/0.25",
            "--token-bucket",
            "AllocateEipSegmentAddress=5/0.5",
        ])
        .unwrap();
        let limits = args.limits().unwrap();
        assert_eq!(limits.len(), 3, "{limits:?}");
        assert_eq!(limits["ReleaseEipSegmentAddress"], RateLimit::TokenBucket { capacity: 60, per_second: 1.0 });
        assert_eq!(limits["DescribeEipSegment"], RateLimit::FixedWindow { calls: 2, per_seconds: 60.0 });
        assert_eq!(
            limits["AllocateEipSegmentAddress"],
            RateLimit::TokenBucket { capacity: 5, per_second: 0.5 },
            "the later flag wins"
        );
        assert!(args.build().is_ok());
    }

    #[test]
    fn bad_limits_are_refused_with_what_is_wrong() {
        let refusal = |flag: &str, value: &str| parsed(&[flag, value]).unwrap_err().to_string();
        for (value, says) in [
            ("X=0/1", "capacity must be at least 1"),
            ("X=1/0", "positive and finite"),
            ("X=1/-1", "positive and finite"),
            ("X=1/inf", "positive and finite"),
            ("X=1/NaN", "positive and finite"),
            ("X=-1/1", "bad capacity"),
            ("X=a/1", "bad capacity"),
            ("X=1/a", "bad refill rate"),
            ("X1/1", "expected Action=CAPACITY/REFILL_PER_SECOND"),
            ("X=1", "expected Action=CAPACITY/REFILL_PER_SECOND"),
            ("=1/1", "expected Action=CAPACITY/REFILL_PER_SECOND"),
        ] {
            let error = refusal("--token-bucket", value);
            assert!(error.contains(says), "{value}: {error}");
        }
        for (value, says) in [("X=1/0", "positive and finite"), ("X=1/inf", "positive and finite"), ("X1", "expected")]
        {
            let error = refusal("--rate-limit", value);
            assert!(error.contains(says), "{value}: {error}");
        }
        assert!(parsed(&["--rate-limit", "X=0/60"]).is_ok(), "a window of no calls refuses every call");
    }

    #[test]
    fn an_action_has_one_shape_of_limit() {
        let args = parsed(&[
            "--rate-limit",
            "ReleaseEipSegmentAddress=60/60",
            "--token-bucket",
            "ReleaseEipSegmentAddress=60/1",
        ])
        .unwrap();
        let error = args.limits().unwrap_err();
        assert!(error.contains("ReleaseEipSegmentAddress") && error.contains("both"), "{error}");
        assert_eq!(args.build().err(), Some(error));
    }

    #[test]
    fn both_documented_keys_are_there_and_flags_add_more() {
        let args = Args::parse_from(["vpc-simulator", "--account-key", "777:LTAI7:s7"]);
        let accounts: Vec<(String, String)> = args.keyring().listing();
        assert_eq!(
            accounts,
            [
                ("LTAI5tSimulatorDefaultKey".to_string(), DEFAULT_ACCOUNT.to_string()),
                ("LTAI5tSimulatorOtherKey".into(), OTHER_ACCOUNT.into()),
                ("LTAI7".into(), "777".into()),
            ]
        );
    }
}
