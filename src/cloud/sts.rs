//! RRSA (ACK pod identity): the pod's OIDC token, re-read from its file at every refresh, traded for
//! temporary credentials with STS AssumeRoleWithOIDC, cached, and renewed before they expire.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::cloud::credentials::{CredentialProvider, Credentials, Secret};
use crate::cloud::error::{Refusal, bodyless_code, classify_sts};
use crate::cloud::model::ErrorBody;
use crate::cloud::{CloudError, signer};

pub const ENV_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
pub const ENV_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
pub const ENV_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
pub const ENV_ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
pub const ENV_STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";
/// `true` selects the VPC endpoint `sts-vpc.<region>.aliyuncs.com` (with a region), as the SDKs do.
pub const ENV_VPC_ENDPOINT_ENABLED: &str = "ALIBABA_CLOUD_VPC_ENDPOINT_ENABLED";

pub const DEFAULT_SESSION_NAME: &str = "eipsegment-operator";
const ACTION: &str = "AssumeRoleWithOIDC";
const VERSION: &str = "2015-04-01";

/// How the operator talks to STS.
#[derive(Clone, Debug)]
pub struct StsConfig {
    /// Replaces sts.aliyuncs.com (or sts.<region>.aliyuncs.com): a URL, or a bare host for https.
    pub endpoint_override: Option<String>,
    /// Allow a plain-http endpoint (a simulator or a test only).
    pub allow_insecure_endpoint: bool,
    pub timeout: Duration,
    /// Renew when this little validity remains (the SDKs' 180 s); at most half the credentials'
    /// lifetime is used, so that short-lived credentials are not renewed on every call.
    pub refresh_before: Duration,
    /// Asked lifetime of the credentials, 900 to 43200 s.
    pub duration_seconds: u32,
}

impl Default for StsConfig {
    fn default() -> Self {
        StsConfig {
            endpoint_override: None,
            allow_insecure_endpoint: false,
            timeout: Duration::from_secs(10),
            refresh_before: Duration::from_secs(180),
            duration_seconds: 3600,
        }
    }
}

/// The public STS endpoint: central, regional, or regional over the VPC network.
pub fn default_endpoint(region: Option<&str>, vpc: bool) -> String {
    match region.filter(|r| !r.is_empty()) {
        Some(region) if vpc => format!("https://sts-vpc.{region}.aliyuncs.com"),
        Some(region) => format!("https://sts.{region}.aliyuncs.com"),
        None => "https://sts.aliyuncs.com".into(),
    }
}

/// Where RRSA finds its role, provider and token.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RrsaSettings {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    pub token_file: PathBuf,
    pub session_name: String,
    pub endpoint: String,
}

impl RrsaSettings {
    /// From the variables ACK's pod-identity webhook injects: `Ok(None)` when none of the three
    /// required ones is set, an error when only some are.
    pub fn from_env(config: &StsConfig) -> Result<Option<RrsaSettings>, String> {
        Self::from_lookup(config, |name| std::env::var(name).ok())
    }

    pub fn from_lookup(
        config: &StsConfig,
        lookup: impl Fn(&str) -> Option<String>,
    ) -> Result<Option<RrsaSettings>, String> {
        let var = |name: &str| lookup(name).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        let required = [ENV_ROLE_ARN, ENV_OIDC_PROVIDER_ARN, ENV_OIDC_TOKEN_FILE];
        let (role_arn, oidc_provider_arn, token_file) = match required.map(var) {
            [Some(role), Some(provider), Some(file)] => (role, provider, file),
            [None, None, None] => return Ok(None),
            partial => {
                let missing: Vec<&str> =
                    required.iter().zip(&partial).filter(|(_, v)| v.is_none()).map(|(n, _)| *n).collect();
                return Err(format!("RRSA is partly configured: {} not set", missing.join(", ")));
            }
        };
        let vpc = var(ENV_VPC_ENDPOINT_ENABLED).is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let endpoint = match &config.endpoint_override {
            Some(e) => e.clone(),
            None => default_endpoint(var(ENV_STS_REGION).as_deref(), vpc),
        };
        Ok(Some(RrsaSettings {
            role_arn,
            oidc_provider_arn,
            token_file: token_file.into(),
            session_name: var(ENV_ROLE_SESSION_NAME).unwrap_or_else(|| DEFAULT_SESSION_NAME.into()),
            endpoint,
        }))
    }
}

/// Credentials obtained from STS, with when they stop working.
#[derive(Clone)]
struct Cached {
    credentials: Credentials,
    expiration: DateTime<Utc>,
    obtained: DateTime<Utc>,
}

#[derive(Default)]
struct State {
    cached: Option<Cached>,
    last_failure: Option<DateTime<Utc>>,
}

/// What to do with the credentials in hand.
#[derive(Debug, PartialEq, Eq)]
enum Plan {
    Use,
    Refresh,
}

/// When to renew, given the credentials' lifetime: `refresh_before`, at most half the lifetime.
fn refresh_threshold(lifetime: chrono::Duration, refresh_before: Duration) -> chrono::Duration {
    let refresh_before = chrono::Duration::from_std(refresh_before).unwrap_or(chrono::Duration::MAX);
    refresh_before.min(lifetime / 2)
}

/// Credentials this close to expiry are not sent any more (clock skew, time in flight).
fn safety_margin(threshold: chrono::Duration) -> chrono::Duration {
    chrono::Duration::seconds(5).min(threshold / 2)
}

/// After a failed refresh, how long still-valid credentials serve before STS is asked again.
fn failure_backoff(threshold: chrono::Duration) -> chrono::Duration {
    (threshold / 10).clamp(chrono::Duration::milliseconds(100), chrono::Duration::seconds(10))
}

impl Cached {
    fn threshold(&self, refresh_before: Duration) -> chrono::Duration {
        refresh_threshold(self.expiration - self.obtained, refresh_before)
    }

    fn usable(&self, now: DateTime<Utc>, refresh_before: Duration) -> bool {
        self.expiration - now > safety_margin(self.threshold(refresh_before))
    }
}

fn plan(state: &State, now: DateTime<Utc>, refresh_before: Duration) -> Plan {
    let Some(cached) = &state.cached else {
        return Plan::Refresh;
    };
    let threshold = cached.threshold(refresh_before);
    if cached.expiration - now > threshold {
        return Plan::Use;
    }
    let recently_failed = state.last_failure.is_some_and(|f| now - f < failure_backoff(threshold));
    if recently_failed && cached.usable(now, refresh_before) { Plan::Use } else { Plan::Refresh }
}

/// STS's `Expiration` (`2026-11-26T19:00:00Z`, or any RFC 3339 time).
pub fn parse_expiration(value: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(value.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| format!("Expiration {value:?} is not an RFC 3339 time: {e}"))
}

/// Refreshing RRSA credentials. Concurrent callers share one refresh; a failed refresh leaves
/// still-valid credentials in service.
pub struct RrsaCredentials {
    settings: RrsaSettings,
    config: StsConfig,
    http: reqwest::Client,
    state: tokio::sync::Mutex<State>,
}

impl fmt::Debug for RrsaCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cached = self
            .state
            .try_lock()
            .ok()
            .and_then(|s| s.cached.as_ref().map(|c| (c.credentials.access_key_id.clone(), c.expiration)));
        f.debug_struct("RrsaCredentials")
            .field("settings", &self.settings)
            .field("cached", &cached)
            .finish_non_exhaustive()
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleBody {
    #[serde(default)]
    request_id: String,
    credentials: StsCredentials,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct StsCredentials {
    access_key_id: String,
    access_key_secret: String,
    security_token: String,
    expiration: String,
}

fn sts_error(http_status: u16, code: &str, message: impl Into<String>, request_id: &str) -> CloudError {
    CloudError::Sts { http_status, code: code.to_string(), message: message.into(), request_id: request_id.to_string() }
}

/// The endpoint as a URL: a bare host means https; plain http only when allowed.
fn endpoint_url(endpoint: &str, allow_insecure: bool) -> Result<String, String> {
    let url = if endpoint.contains("://") { endpoint.to_string() } else { format!("https://{endpoint}") };
    if url.starts_with("http://") && !allow_insecure {
        return Err(format!(
            "STS endpoint {endpoint:?} is plain http: allow it explicitly (for a simulator or a test) or use https"
        ));
    }
    if !url.starts_with("http://") && !url.starts_with("https://") {
        return Err(format!("STS endpoint {endpoint:?} is not an http(s) URL"));
    }
    Ok(url.trim_end_matches('/').to_string())
}

/// A serde error without the value it choked on (which could be a secret).
fn shape_error(e: &serde_json::Error) -> String {
    format!("{:?} error at line {} column {}", e.classify(), e.line(), e.column())
}

impl RrsaCredentials {
    pub fn new(mut settings: RrsaSettings, config: StsConfig) -> Result<Self, String> {
        settings.endpoint = endpoint_url(&settings.endpoint, config.allow_insecure_endpoint)?;
        if !(900..=43200).contains(&config.duration_seconds) {
            return Err(format!("STS DurationSeconds {} is outside 900..=43200", config.duration_seconds));
        }
        crate::cloud::client::install_crypto_provider();
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("eipsegment-operator/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| format!("cannot build the STS HTTP client: {e}"))?;
        Ok(RrsaCredentials { settings, config, http, state: tokio::sync::Mutex::new(State::default()) })
    }

    pub fn settings(&self) -> &RrsaSettings {
        &self.settings
    }

    /// One AssumeRoleWithOIDC call with the token as the file holds it now.
    async fn assume_role(&self) -> Result<Cached, CloudError> {
        let token = self.read_token().await?;
        let obtained = Utc::now();
        let (status, bytes) = self.exchange(&token, obtained).await?;
        if !(200..300).contains(&status) {
            return Err(self.refusal(status, &bytes, &token));
        }
        let cached = credentials_of(status, &bytes, obtained)?;
        let (access_key_id, expiration) = (&cached.credentials.access_key_id, cached.expiration);
        tracing::info!(%access_key_id, %expiration, role = %self.settings.role_arn, "obtained STS credentials through RRSA");
        Ok(cached)
    }

    /// The pod's OIDC token, as its file holds it now (the kubelet rotates it).
    async fn read_token(&self) -> Result<String, CloudError> {
        let path = &self.settings.token_file;
        let token = tokio::fs::read_to_string(path)
            .await
            .map_err(|e| CloudError::Credentials(format!("cannot read the OIDC token file {}: {e}", path.display())))?;
        let token = token.trim();
        if token.is_empty() {
            return Err(CloudError::Credentials(format!("the OIDC token file {} is empty", path.display())));
        }
        Ok(token.to_string())
    }

    /// Sends the token to STS; the answer's HTTP status and body.
    async fn exchange(&self, token: &str, at: DateTime<Utc>) -> Result<(u16, bytes::Bytes), CloudError> {
        let query = [
            ("Action", ACTION.to_string()),
            ("Version", VERSION.to_string()),
            ("Format", "JSON".to_string()),
            ("Timestamp", at.format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ];
        let form = [
            ("RoleArn", self.settings.role_arn.clone()),
            ("OIDCProviderArn", self.settings.oidc_provider_arn.clone()),
            ("OIDCToken", token.to_string()),
            ("RoleSessionName", self.settings.session_name.clone()),
            ("DurationSeconds", self.config.duration_seconds.to_string()),
        ];
        let encode = |pairs: &[(&str, String)]| {
            pairs.iter().map(|(k, v)| format!("{k}={}", signer::percent_encode(v))).collect::<Vec<_>>().join("&")
        };
        let response = self
            .http
            .post(format!("{}/?{}", self.settings.endpoint, encode(&query)))
            .header("Content-Type", "application/x-www-form-urlencoded")
            .header("Accept", "application/json")
            .body(encode(&form))
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| sts_error(0, "TransportError", e.to_string(), ""))?;
        Ok((status, bytes))
    }

    /// A request that never had its answer.
    fn transport_error(&self, e: &reqwest::Error) -> CloudError {
        let code = if e.is_timeout() {
            "Timeout"
        } else if e.is_connect() {
            "ConnectionFailed"
        } else {
            "TransportError"
        };
        sts_error(0, code, format!("{e} (after at most {:?})", self.config.timeout), "")
    }

    /// STS's refusal, without the token should it echo it, and naming the token's file when the
    /// token is what it refused.
    fn refusal(&self, status: u16, bytes: &[u8], token: &str) -> CloudError {
        let body: ErrorBody = serde_json::from_slice(bytes).unwrap_or_default();
        let code = if body.code.is_empty() { bodyless_code(status) } else { body.code };
        // An echoed token must not reach a log or a status.
        let mut message = body.message.replace(token, "<redacted OIDC token>");
        if classify_sts(&code, status).refusal == Refusal::OidcTokenRefused {
            message = format!("{message} (token read from {})", self.settings.token_file.display());
        }
        sts_error(status, &code, message, &body.request_id)
    }
}

/// The credentials a successful answer holds, and when they expire.
fn credentials_of(status: u16, bytes: &[u8], obtained: DateTime<Utc>) -> Result<Cached, CloudError> {
    let body: AssumeRoleBody = serde_json::from_slice(bytes).map_err(|e| {
        let detail = format!("unreadable AssumeRoleWithOIDC answer: {}", shape_error(&e));
        sts_error(status, "MalformedResponse", detail, "")
    })?;
    let expiration = parse_expiration(&body.credentials.expiration)
        .map_err(|e| sts_error(status, "MalformedResponse", e, &body.request_id))?;
    let credentials = Credentials {
        access_key_id: body.credentials.access_key_id,
        access_key_secret: Secret::new(body.credentials.access_key_secret),
        security_token: Some(Secret::new(body.credentials.security_token)),
    };
    Ok(Cached { credentials, expiration, obtained })
}

impl CredentialProvider for RrsaCredentials {
    fn token_refused(&self, access_key_id: &str) {
        // A refresh under way holds the lock and brings fresh credentials anyway.
        if let Ok(mut state) = self.state.try_lock()
            && state.cached.as_ref().is_some_and(|c| c.credentials.access_key_id == access_key_id)
        {
            tracing::info!("the cloud refused the STS token before its expiration; fetching new credentials");
            state.cached = None;
        }
    }

    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CloudError>> {
        Box::pin(async move {
            // One refresh at a time; callers arriving meanwhile wait and then use its result.
            let mut state = self.state.lock().await;
            let refresh_before = self.config.refresh_before;
            if plan(&state, Utc::now(), refresh_before) == Plan::Use
                && let Some(cached) = &state.cached
            {
                return Ok(cached.credentials.clone());
            }
            match self.assume_role().await {
                Ok(fresh) => {
                    let credentials = fresh.credentials.clone();
                    *state = State { cached: Some(fresh), last_failure: None };
                    Ok(credentials)
                }
                Err(e) => {
                    let now = Utc::now();
                    state.last_failure = Some(now);
                    match &state.cached {
                        Some(cached) if cached.usable(now, refresh_before) => {
                            tracing::warn!(error = %e, expiration = %cached.expiration, "renewing STS credentials failed; the current ones serve until they expire");
                            Ok(cached.credentials.clone())
                        }
                        _ => Err(e),
                    }
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cloud::ErrorClass;
    use std::collections::HashMap;

    fn at(s: &str) -> DateTime<Utc> {
        parse_expiration(s).unwrap()
    }

    #[test]
    fn parses_sts_expirations() {
        assert_eq!(at("2026-11-26T19:00:00Z").timestamp(), 1_795_719_600);
        assert_eq!(at("2026-11-26T19:00:00.250Z").timestamp_millis(), 1_795_719_600_250);
        assert_eq!(at("2026-11-27T03:00:00+08:00"), at("2026-11-26T19:00:00Z"));
        assert_eq!(at(" 2026-11-26T19:00:00Z\n"), at("2026-11-26T19:00:00Z"));
        for bad in ["", "2026-11-26 19:00:00", "2026-11-26T19:00:00", "1795719600", "2026-13-01T00:00:00Z"] {
            let e = parse_expiration(bad).unwrap_err();
            assert!(e.contains("Expiration"), "{bad:?}: {e}");
        }
    }

    fn cached(obtained: &str, expiration: &str) -> Cached {
        Cached {
            credentials: Credentials {
                access_key_id: "STS.x".into(),
                access_key_secret: Secret::new("s"),
                security_token: Some(Secret::new("t")),
            },
            expiration: at(expiration),
            obtained: at(obtained),
        }
    }

    #[test]
    fn renews_when_180_seconds_or_less_remain() {
        let state = State { cached: Some(cached("2026-11-26T18:00:00Z", "2026-11-26T19:00:00Z")), last_failure: None };
        let before = Duration::from_secs(180);
        assert_eq!(plan(&State::default(), at("2026-11-26T18:00:00Z"), before), Plan::Refresh);
        assert_eq!(plan(&state, at("2026-11-26T18:56:59Z"), before), Plan::Use);
        assert_eq!(plan(&state, at("2026-11-26T18:57:00Z"), before), Plan::Refresh);
        assert_eq!(plan(&state, at("2026-11-26T19:30:00Z"), before), Plan::Refresh);
    }

    #[test]
    fn short_lived_credentials_are_renewed_at_half_their_life() {
        // Four-second credentials with the 180 s default: renewed after two seconds, not every call.
        let state = State { cached: Some(cached("2026-11-26T18:00:00Z", "2026-11-26T18:00:04Z")), last_failure: None };
        let before = Duration::from_secs(180);
        assert_eq!(plan(&state, at("2026-11-26T18:00:01.900Z"), before), Plan::Use);
        assert_eq!(plan(&state, at("2026-11-26T18:00:02Z"), before), Plan::Refresh);
    }

    #[test]
    fn after_a_failed_renewal_valid_credentials_serve_for_a_while() {
        let mut state =
            State { cached: Some(cached("2026-11-26T18:00:00Z", "2026-11-26T19:00:00Z")), last_failure: None };
        let before = Duration::from_secs(180);
        state.last_failure = Some(at("2026-11-26T18:58:00Z"));
        // Backoff: 18 s, capped at 10 s.
        assert_eq!(plan(&state, at("2026-11-26T18:58:09Z"), before), Plan::Use);
        assert_eq!(plan(&state, at("2026-11-26T18:58:10Z"), before), Plan::Refresh);
        // Too close to expiry to be sent: ask STS whatever the backoff says.
        state.last_failure = Some(at("2026-11-26T18:59:54Z"));
        assert_eq!(plan(&state, at("2026-11-26T18:59:56Z"), before), Plan::Refresh);
        assert!(state.cached.as_ref().unwrap().usable(at("2026-11-26T18:59:54Z"), before));
        assert!(!state.cached.as_ref().unwrap().usable(at("2026-11-26T18:59:55Z"), before));
    }

    fn lookup(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        move |name| map.get(name).cloned()
    }

    const RRSA: [(&str, &str); 3] = [
        (ENV_ROLE_ARN, "acs:ram::1234567890123456:role/eipsegment-operator"),
        (ENV_OIDC_PROVIDER_ARN, "acs:ram::1234567890123456:oidc-provider/ack-rrsa-c1"),
        (ENV_OIDC_TOKEN_FILE, "/var/run/secrets/ack.alibabacloud.com/rrsa-tokens/token"),
    ];

    #[test]
    fn settings_from_the_webhook_variables() {
        let config = StsConfig::default();
        assert_eq!(RrsaSettings::from_lookup(&config, lookup(&[])), Ok(None));
        let s = RrsaSettings::from_lookup(&config, lookup(&RRSA)).unwrap().unwrap();
        assert_eq!(s.endpoint, "https://sts.aliyuncs.com");
        assert_eq!(s.session_name, DEFAULT_SESSION_NAME);
        assert_eq!(s.token_file, PathBuf::from(RRSA[2].1));

        let mut vars = RRSA.to_vec();
        vars.extend([(ENV_STS_REGION, "cn-shanghai"), (ENV_ROLE_SESSION_NAME, "pod-1")]);
        let s = RrsaSettings::from_lookup(&config, lookup(&vars)).unwrap().unwrap();
        assert_eq!((s.endpoint.as_str(), s.session_name.as_str()), ("https://sts.cn-shanghai.aliyuncs.com", "pod-1"));
        vars.push((ENV_VPC_ENDPOINT_ENABLED, "true"));
        let s = RrsaSettings::from_lookup(&config, lookup(&vars)).unwrap().unwrap();
        assert_eq!(s.endpoint, "https://sts-vpc.cn-shanghai.aliyuncs.com");
        let overridden = StsConfig { endpoint_override: Some("http://127.0.0.1:9".into()), ..StsConfig::default() };
        let s = RrsaSettings::from_lookup(&overridden, lookup(&vars)).unwrap().unwrap();
        assert_eq!(s.endpoint, "http://127.0.0.1:9");

        let e = RrsaSettings::from_lookup(&config, lookup(&RRSA[..2])).unwrap_err();
        assert!(e.contains(ENV_OIDC_TOKEN_FILE) && !e.contains(ENV_ROLE_ARN), "{e}");
        let blank = [RRSA[0], RRSA[1], (ENV_OIDC_TOKEN_FILE, " ")];
        assert!(RrsaSettings::from_lookup(&config, lookup(&blank)).is_err());
    }

    #[test]
    fn sts_failures_take_the_sts_table_s_class() {
        // The table itself is tested where it lives (vpc_api::errors); here, that an STS error asks it.
        let class = |http_status: u16, code: &str| sts_error(http_status, code, "", "").class();
        assert_eq!(class(0, "ConnectionFailed"), ErrorClass::Transient);
        assert_eq!(class(503, "ServiceUnavailable"), ErrorClass::Transient);
        assert_eq!(class(401, "AuthenticationFail.OIDCToken.Invalid"), ErrorClass::Terminal);
        let e = sts_error(401, "AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired.", "R1");
        assert_eq!(
            (e.class(), e.code(), e.request_id()),
            (ErrorClass::Terminal, "AuthenticationFail.OIDCToken.Expired", Some("R1"))
        );
        assert_eq!(sts_error(0, "Timeout", "", "").class(), ErrorClass::Transient);
    }

    fn settings(endpoint: &str, token_file: &str) -> RrsaSettings {
        RrsaSettings {
            role_arn: "acs:ram::1:role/r".into(),
            oidc_provider_arn: "acs:ram::1:oidc-provider/p".into(),
            token_file: token_file.into(),
            session_name: "s".into(),
            endpoint: endpoint.into(),
        }
    }

    #[test]
    fn endpoints_need_https_unless_allowed() {
        assert!(RrsaCredentials::new(settings("http://127.0.0.1:1", "/t"), StsConfig::default()).is_err());
        let allowed = StsConfig { allow_insecure_endpoint: true, ..StsConfig::default() };
        assert!(RrsaCredentials::new(settings("http://127.0.0.1:1", "/t"), allowed).is_ok());
        let bare =
            RrsaCredentials::new(settings("sts-vpc.cn-beijing.aliyuncs.com/", "/t"), StsConfig::default()).unwrap();
        assert_eq!(bare.settings().endpoint, "https://sts-vpc.cn-beijing.aliyuncs.com");
        assert!(RrsaCredentials::new(settings("ftp://sts", "/t"), StsConfig::default()).is_err());
        let short = StsConfig { duration_seconds: 899, ..StsConfig::default() };
        assert!(RrsaCredentials::new(settings("https://sts.aliyuncs.com", "/t"), short).is_err());
    }

    #[tokio::test]
    async fn an_unreadable_or_empty_token_file_is_a_clear_terminal_error() {
        let provider =
            RrsaCredentials::new(settings("https://sts.aliyuncs.com", "/nonexistent/token"), StsConfig::default())
                .unwrap();
        let e = provider.credentials().await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Terminal);
        assert!(e.to_string().contains("/nonexistent/token"), "{e}");

        let empty = tempfile::NamedTempFile::new().unwrap();
        let provider = RrsaCredentials::new(
            settings("https://sts.aliyuncs.com", empty.path().to_str().unwrap()),
            StsConfig::default(),
        )
        .unwrap();
        let e = provider.credentials().await.unwrap_err();
        assert!(e.to_string().contains("is empty"), "{e}");
    }

    #[test]
    fn shape_errors_do_not_quote_values() {
        let parsed = serde_json::from_str::<StsCredentials>(
            r#"{"AccessKeyId":"STS.a","AccessKeySecret":12345678,"SecurityToken":"t","Expiration":"x"}"#,
        );
        let Err(e) = parsed else { panic!("a number is not a secret string") };
        assert!(e.to_string().contains("12345678"), "serde quotes it: {e}");
        assert!(!shape_error(&e).contains("12345678"));
    }
}
