//! The simulated STS: `AssumeRoleWithOIDC` (ACK RRSA), an unsigned request that trades the pod's OIDC
//! token for temporary credentials, which the gateway then accepts only with their SecurityToken and
//! until they expire; and `GetCallerIdentity`, signed like a VPC call, which tells a caller which
//! account and identity its credentials act for.
//!
//! STS shares the VPC listener: a request is STS's when its Action is an STS action or its Version
//! is STS's (2015-04-01). The token's claims are checked (shape, issuer, audience, expiry, and after a
//! rotation its issue time); its signature is not.

use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use sha2::{Digest, Sha256};

use super::auth::{AccessKey, Caller, Principal};
use super::world::{ApiError, Params};

pub const ACTION: &str = "AssumeRoleWithOIDC";
/// The signed STS action that reports the caller's identity.
pub const GET_CALLER_IDENTITY: &str = "GetCallerIdentity";
pub const VERSION: &str = "2015-04-01";
/// The audience ACK projects RRSA tokens for.
pub const AUDIENCE: &str = "sts.aliyuncs.com";
pub const MIN_DURATION_SECONDS: i64 = 900;
pub const MAX_DURATION_SECONDS: i64 = 43200;
pub const DEFAULT_DURATION_SECONDS: i64 = 3600;

pub const DEFAULT_ROLE_ARN: &str = "acs:ram::1234567890123456:role/eipsegment-operator";
pub const DEFAULT_OIDC_PROVIDER_ARN: &str = "acs:ram::1234567890123456:oidc-provider/ack-rrsa-simulator";
pub const DEFAULT_ISSUER: &str = "https://oidc-ack.cn-hangzhou.aliyuncs.com/simulator";

/// Whether a request is for STS rather than the VPC API.
pub fn is_sts_request(action: &str, version: &str) -> bool {
    action == ACTION || action == GET_CALLER_IDENTITY || version == VERSION
}

/// A RAM role's ID: digits, fixed per role ARN, as the cloud gives a role one ID for its lifetime.
pub fn role_id(role_arn: &str) -> String {
    let digest = Sha256::digest(role_arn.as_bytes());
    let n = digest.iter().take(8).fold(0u64, |n, b| n << 8 | u64::from(*b));
    format!("3{:017}", n % 100_000_000_000_000_000)
}

/// The body of a GetCallerIdentity answer (without RequestId), in the real API's field names.
/// UserId is only reported for an account's own keys, RoleId only for a role, as the API documents.
pub fn caller_identity(caller: &Caller) -> serde_json::Value {
    let account = &caller.account;
    match &caller.principal {
        Principal::Account => serde_json::json!({
            "AccountId": account,
            "UserId": account,
            "PrincipalId": account,
            "Arn": format!("acs:ram::{account}:root"),
            "IdentityType": "Account",
        }),
        Principal::AssumedRole { role_name, role_id, session } => serde_json::json!({
            "AccountId": account,
            "RoleId": role_id,
            "PrincipalId": format!("{role_id}:{session}"),
            "Arn": format!("acs:ram::{account}:assumed-role/{role_name}/{session}"),
            "IdentityType": "AssumedRoleUser",
        }),
    }
}

/// The RAM setup the simulated STS trusts; read and changed through `/__admin/sts`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default, deny_unknown_fields)]
pub struct StsConfig {
    /// Roles that trust the provider, `acs:ram::<account>:role/<name>`; issued credentials act for
    /// the role's account.
    pub role_arns: Vec<String>,
    /// The one registered OIDC provider, `acs:ram::<account>:oidc-provider/<name>`.
    pub oidc_provider_arn: String,
    /// The provider's issuer URL: a token's `iss` must equal it.
    pub issuer: String,
    /// Lifetime of issued credentials in seconds, overriding DurationSeconds (and allowed below its
    /// 900 s minimum, so that tests can watch credentials expire); `None` honours DurationSeconds.
    pub credential_seconds: Option<i64>,
    /// Tokens issued (`iat`) before this Unix time are refused, as after a rotation.
    pub reject_tokens_issued_before: Option<i64>,
    /// Answer every STS request with ServiceUnavailable (HTTP 503).
    pub unavailable: bool,
    /// Delay every STS answer by this many milliseconds.
    pub delay_ms: u64,
}

impl Default for StsConfig {
    fn default() -> Self {
        StsConfig {
            role_arns: vec![DEFAULT_ROLE_ARN.into()],
            oidc_provider_arn: DEFAULT_OIDC_PROVIDER_ARN.into(),
            issuer: DEFAULT_ISSUER.into(),
            credential_seconds: None,
            reject_tokens_issued_before: None,
            unavailable: false,
            delay_ms: 0,
        }
    }
}

impl StsConfig {
    /// The configuration with the fields present in `patch` replaced (a field set to `null` is
    /// cleared); the fields left out keep their values.
    pub fn patched(&self, patch: &[u8]) -> Result<StsConfig, String> {
        let patch: serde_json::Value = if patch.is_empty() {
            serde_json::json!({})
        } else {
            serde_json::from_slice(patch).map_err(|e| format!("invalid JSON: {e}"))?
        };
        let serde_json::Value::Object(fields) = patch else {
            return Err("expected a JSON object".into());
        };
        let mut merged = serde_json::to_value(self).map_err(|e| e.to_string())?;
        for (k, v) in fields {
            merged[k] = v;
        }
        let config: StsConfig =
            serde_json::from_value(merged).map_err(|e| format!("invalid STS configuration: {e}"))?;
        config.validate()?;
        Ok(config)
    }

    pub fn validate(&self) -> Result<(), String> {
        for role in &self.role_arns {
            parse_arn(role, "role")
                .ok_or_else(|| format!("{role:?} is not a role ARN (acs:ram::<account>:role/<name>)"))?;
        }
        parse_arn(&self.oidc_provider_arn, "oidc-provider").ok_or_else(|| {
            format!(
                "{:?} is not an OIDC provider ARN (acs:ram::<account>:oidc-provider/<name>)",
                self.oidc_provider_arn
            )
        })?;
        if self.issuer.is_empty() {
            return Err("the issuer must not be empty".into());
        }
        if self.credential_seconds.is_some_and(|s| s < 1) {
            return Err("credentialSeconds must be at least 1".into());
        }
        Ok(())
    }

    /// The accounts the roles belong to (the gateway must know them).
    pub fn accounts(&self) -> Vec<String> {
        self.role_arns.iter().filter_map(|r| parse_arn(r, "role")).map(|(account, _)| account.to_string()).collect()
    }
}

/// `acs:ram::<account digits>:<kind>/<name>` → (account, name).
pub fn parse_arn<'a>(arn: &'a str, kind: &str) -> Option<(&'a str, &'a str)> {
    let rest = arn.strip_prefix("acs:ram::")?;
    let (account, resource) = rest.split_once(':')?;
    let name = resource.strip_prefix(kind)?.strip_prefix('/')?;
    let name_ok =
        !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || "._-".contains(c));
    (!account.is_empty() && account.chars().all(|c| c.is_ascii_digit()) && name_ok).then_some((account, name))
}

/// Temporary credentials the simulator handed out (for the admin API; no secret or token).
#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Issued {
    pub access_key_id: String,
    pub account: String,
    pub role_arn: String,
    pub role_session_name: String,
    pub subject: String,
    pub issued_at: DateTime<Utc>,
    pub expiration: DateTime<Utc>,
}

/// What a successful AssumeRoleWithOIDC produced: the answer body, the key to accept, and the record.
pub struct Grant {
    pub answer: serde_json::Value,
    pub access_key_id: String,
    pub key: AccessKey,
    pub issued: Issued,
}

fn err(http_status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { http_status, code, message: message.into() }
}

fn invalid_token(message: impl Into<String>) -> ApiError {
    err(401, "AuthenticationFail.OIDCToken.Invalid", message)
}

#[derive(Deserialize)]
struct Header {
    alg: Option<String>,
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    iat: Option<i64>,
    sub: Option<String>,
}

fn decode_part<T: serde::de::DeserializeOwned>(part: &str) -> Result<T, ApiError> {
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(part.trim_end_matches('='))
        .map_err(|_| invalid_token("Cannot decode base64 encoded response(format invalided)."))?;
    serde_json::from_slice(&bytes).map_err(|_| invalid_token("The Jwt content is invalid that cannot be recognized."))
}

/// The token's claims, once it has the shape of a JWT with an asymmetric algorithm.
fn claims(token: &str) -> Result<Claims, ApiError> {
    if token.is_empty() {
        return Err(invalid_token("The OIDCToken can not empty."));
    }
    if token.len() < 4 || token.len() > 20_000 {
        return Err(invalid_token("The OIDCToken must be 4 to 20000 characters long."));
    }
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 || parts.iter().any(|p| p.is_empty()) {
        return Err(invalid_token("The number of Jwt field should be divided into 3 parts with '.' ."));
    }
    let header: Header = decode_part(parts[0])?;
    let alg = header.alg.unwrap_or_default();
    if !["RS", "PS", "ES"].iter().any(|family| alg.starts_with(family)) {
        return Err(invalid_token(format!("The algorithm {alg} that be specified in Jwt header is unknown.")));
    }
    decode_part(parts[1])
}

fn audience_contains(aud: &Option<serde_json::Value>, want: &str) -> bool {
    match aud {
        Some(serde_json::Value::String(a)) => a == want,
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| v == want),
        _ => false,
    }
}

fn random(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

fn timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// An AssumeRoleWithOIDC request whose parameters are well formed.
struct RoleRequest<'a> {
    role_arn: &'a str,
    account: &'a str,
    role_name: &'a str,
    provider_arn: &'a str,
    duration_seconds: i64,
    /// Empty when the caller named none.
    session: &'a str,
}

/// Checks an AssumeRoleWithOIDC request and, on success, grants temporary credentials.
pub fn assume_role_with_oidc(
    config: &StsConfig,
    params: &Params,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<Grant, ApiError> {
    let request = role_request(params)?;
    check_trust(config, &request)?;
    let (claims, exp) = accepted_claims(config, params.get("OIDCToken"), now)?;
    Ok(grant(config, &request, claims, exp, now, rng))
}

/// The request's parameters, checked in the order STS checks them.
fn role_request(params: &Params) -> Result<RoleRequest<'_>, ApiError> {
    if params.get("Version") != VERSION {
        return Err(err(400, "InvalidVersion", "Specified parameter Version is not valid."));
    }
    for name in ["RoleArn", "OIDCProviderArn"] {
        if params.get(name).is_empty() {
            return Err(err(
                400,
                "MissingParameter",
                format!(
                    "The input parameter \"{name}\" that is mandatory for processing this request is not supplied."
                ),
            ));
        }
    }
    let duration_seconds = duration_seconds(params.get("DurationSeconds"))?;
    let session = params.get("RoleSessionName");
    let session_ok =
        (2..=64).contains(&session.len()) && session.chars().all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c));
    if !session.is_empty() && !session_ok {
        return Err(err(400, "InvalidParameter.RoleSessionName", "The parameter RoleSessionName is wrongly formed."));
    }
    let role_arn = params.get("RoleArn");
    let Some((account, role_name)) = parse_arn(role_arn, "role") else {
        return Err(err(400, "InvalidParameter.RoleArn", "The parameter RoleArn is wrongly formed."));
    };
    let provider_arn = params.get("OIDCProviderArn");
    if parse_arn(provider_arn, "oidc-provider").is_none() {
        return Err(err(400, "InvalidParameter.OIDCProviderArn", "The parameter OIDCProviderArn is wrongly formed."));
    }
    Ok(RoleRequest { role_arn, account, role_name, provider_arn, duration_seconds, session })
}

/// DurationSeconds, the default when absent.
fn duration_seconds(value: &str) -> Result<i64, ApiError> {
    match value {
        "" => Ok(DEFAULT_DURATION_SECONDS),
        d => match d.parse::<i64>() {
            Ok(d) if (MIN_DURATION_SECONDS..=MAX_DURATION_SECONDS).contains(&d) => Ok(d),
            _ => Err(err(
                400,
                "InvalidParameter.DurationSeconds",
                format!(
                    "The parameter DurationSeconds must be between {MIN_DURATION_SECONDS} and {MAX_DURATION_SECONDS}."
                ),
            )),
        },
    }
}

/// The provider must be the registered one, and the role one that trusts it.
fn check_trust(config: &StsConfig, request: &RoleRequest<'_>) -> Result<(), ApiError> {
    if request.provider_arn != config.oidc_provider_arn {
        return Err(err(401, "AuthenticationFail.NoPermission", "No such OIDC Provider registered."));
    }
    if !config.role_arns.iter().any(|r| r == request.role_arn) {
        return Err(err(404, "EntityNotExist.Role", format!("The role not exists: {}.", request.role_arn)));
    }
    Ok(())
}

/// The token's claims and expiry, once its issuer, audience, expiry and issue time pass.
fn accepted_claims(config: &StsConfig, token: &str, now: DateTime<Utc>) -> Result<(Claims, i64), ApiError> {
    let claims = claims(token)?;
    if claims.iss.as_deref() != Some(config.issuer.as_str()) {
        return Err(invalid_token("The issuer of the OIDCToken does not match the issuer URL of the OIDC provider."));
    }
    if !audience_contains(&claims.aud, AUDIENCE) {
        return Err(err(401, "AuthenticationFail.OIDCToken.AudienceNotMatch", "Invalid audience."));
    }
    let Some(exp) = claims.exp else {
        return Err(invalid_token("The OIDCToken has no exp claim."));
    };
    if exp <= now.timestamp() {
        return Err(err(401, "AuthenticationFail.OIDCToken.Expired", "This JsonWebToken is expired."));
    }
    if let Some(before) = config.reject_tokens_issued_before
        && claims.iat.is_none_or(|iat| iat < before)
    {
        return Err(invalid_token(
            "The OIDCToken has been revoked: it was issued before the provider's last rotation.",
        ));
    }
    Ok((claims, exp))
}

/// New credentials for the role: the answer, the key the gateway will accept, and their record.
fn grant(
    config: &StsConfig,
    request: &RoleRequest<'_>,
    claims: Claims,
    exp: i64,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Grant {
    let RoleRequest { role_arn, account, role_name, .. } = *request;
    // Whole seconds, as the answer states it: the key stops working exactly when the client is told.
    let expiration = DateTime::from_timestamp(now.timestamp(), 0).unwrap_or(now)
        + ChronoDuration::seconds(config.credential_seconds.unwrap_or(request.duration_seconds));
    let access_key_id = format!("STS.{}", random(rng, 24));
    let secret = random(rng, 40);
    let token = format!("CAIS{}", random(rng, 200));
    let session =
        if request.session.is_empty() { format!("oidc-{}", now.timestamp()) } else { request.session.to_string() };
    let subject = claims.sub.clone().unwrap_or_default();
    let answer = serde_json::json!({
        "SourceIdentity": "",
        "AssumedRoleUser": {
            "Arn": format!("acs:ram::{account}:assumed-role/{role_name}/{session}"),
            "AssumedRoleId": format!("{}:{session}", role_id(role_arn)),
        },
        "OIDCTokenInfo": token_info(claims, exp),
        "Credentials": {
            "AccessKeyId": access_key_id,
            "AccessKeySecret": secret,
            "SecurityToken": token,
            "Expiration": timestamp(expiration),
        },
    });
    let principal = Principal::AssumedRole {
        role_name: role_name.to_string(),
        role_id: role_id(role_arn),
        session: session.clone(),
    };
    let key = AccessKey {
        secret,
        account: account.to_string(),
        security_token: Some(token),
        expires_at: Some(expiration),
        principal,
    };
    let issued = Issued {
        access_key_id: access_key_id.clone(),
        account: account.to_string(),
        role_arn: role_arn.to_string(),
        role_session_name: session,
        subject,
        issued_at: now,
        expiration,
    };
    Grant { answer, access_key_id, key, issued }
}

/// The answer's `OIDCTokenInfo`: what STS read from the token.
fn token_info(claims: Claims, exp: i64) -> serde_json::Value {
    let client_ids = match &claims.aud {
        Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str()).collect::<Vec<_>>().join(","),
        Some(serde_json::Value::String(a)) => a.clone(),
        _ => String::new(),
    };
    serde_json::json!({
        "Subject": claims.sub.unwrap_or_default(),
        "Issuer": claims.iss.unwrap_or_default(),
        "ClientIds": client_ids,
        "ExpirationTime": DateTime::from_timestamp(exp, 0).map(timestamp).unwrap_or_default(),
        "IssuanceTime": claims.iat.and_then(|t| DateTime::from_timestamp(t, 0)).map(timestamp).unwrap_or_default(),
        "VerificationInfo": "Success",
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    fn b64(v: serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string())
    }

    fn token(claims: serde_json::Value) -> String {
        format!("{}.{}.c2lnbmF0dXJl", b64(serde_json::json!({"alg": "RS256", "kid": "k1"})), b64(claims))
    }

    fn now() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).unwrap()
    }

    fn good_claims() -> serde_json::Value {
        serde_json::json!({"iss": DEFAULT_ISSUER, "aud": [AUDIENCE], "sub": "system:serviceaccount:ns:sa", "iat": 1_799_999_000, "exp": 1_800_003_600})
    }

    fn request(overrides: &[(&str, &str)]) -> Params {
        let mut p = Params::default();
        let good = token(good_claims());
        for (k, v) in [
            ("Action", ACTION),
            ("Version", VERSION),
            ("Format", "JSON"),
            ("RoleArn", DEFAULT_ROLE_ARN),
            ("OIDCProviderArn", DEFAULT_OIDC_PROVIDER_ARN),
            ("OIDCToken", good.as_str()),
            ("RoleSessionName", "eipsegment-operator"),
        ] {
            p.0.insert(k.into(), v.into());
        }
        for (k, v) in overrides {
            p.0.insert(k.to_string(), v.to_string());
        }
        p
    }

    fn code(config: &StsConfig, params: &Params) -> &'static str {
        match assume_role_with_oidc(config, params, now(), &mut StdRng::seed_from_u64(1)) {
            Ok(_) => "Success",
            Err(e) => e.code,
        }
    }

    #[test]
    fn grants_credentials_for_a_good_token() {
        let grant =
            assume_role_with_oidc(&StsConfig::default(), &request(&[]), now(), &mut StdRng::seed_from_u64(1)).unwrap();
        let c = &grant.answer["Credentials"];
        assert!(c["AccessKeyId"].as_str().unwrap().starts_with("STS."));
        assert_eq!(c["Expiration"], "2027-01-15T09:00:00Z", "3600 s after {}", now());
        assert_eq!(grant.key.security_token.as_deref(), c["SecurityToken"].as_str());
        assert_eq!(grant.key.account, "1234567890123456");
        assert_eq!(
            grant.answer["AssumedRoleUser"]["Arn"],
            "acs:ram::1234567890123456:assumed-role/eipsegment-operator/eipsegment-operator"
        );
        assert_eq!(grant.answer["OIDCTokenInfo"]["Subject"], "system:serviceaccount:ns:sa");
        assert_eq!(grant.issued.expiration, now() + ChronoDuration::seconds(3600));
    }

    #[test]
    fn lifetime_follows_duration_seconds_unless_overridden() {
        let grant = |config: &StsConfig, d: &str| {
            assume_role_with_oidc(config, &request(&[("DurationSeconds", d)]), now(), &mut StdRng::seed_from_u64(1))
                .unwrap()
                .issued
                .expiration
        };
        assert_eq!(grant(&StsConfig::default(), "900"), now() + ChronoDuration::seconds(900));
        let short = StsConfig { credential_seconds: Some(3), ..StsConfig::default() };
        assert_eq!(grant(&short, "3600"), now() + ChronoDuration::seconds(3));
    }

    #[test]
    fn every_refusal_has_its_code() {
        let config = StsConfig::default();
        let expired = token(serde_json::json!({"iss": DEFAULT_ISSUER, "aud": AUDIENCE, "exp": 1_799_999_999}));
        let other_audience =
            token(serde_json::json!({"iss": DEFAULT_ISSUER, "aud": ["kubernetes.default.svc"], "exp": 1_800_003_600}));
        let other_issuer =
            token(serde_json::json!({"iss": "https://elsewhere", "aud": AUDIENCE, "exp": 1_800_003_600}));
        let no_exp = token(serde_json::json!({"iss": DEFAULT_ISSUER, "aud": AUDIENCE}));
        let hs256 = format!("{}.{}.sig", b64(serde_json::json!({"alg": "HS256"})), b64(good_claims()));
        let not_json = format!(
            "{}.{}.sig",
            b64(serde_json::json!({"alg": "RS256"})),
            base64::engine::general_purpose::URL_SAFE_NO_PAD.encode("nope")
        );
        let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
            (vec![], "Success"),
            (vec![("Version", "2016-04-28")], "InvalidVersion"),
            (vec![("RoleArn", "")], "MissingParameter"),
            (vec![("DurationSeconds", "899")], "InvalidParameter.DurationSeconds"),
            (vec![("DurationSeconds", "43201")], "InvalidParameter.DurationSeconds"),
            (vec![("DurationSeconds", "an hour")], "InvalidParameter.DurationSeconds"),
            (vec![("RoleSessionName", "has space")], "InvalidParameter.RoleSessionName"),
            (vec![("RoleArn", "arn:aws:iam::123:role/x")], "InvalidParameter.RoleArn"),
            (vec![("RoleArn", "acs:ram::1234567890123456:user/x")], "InvalidParameter.RoleArn"),
            (vec![("RoleArn", "acs:ram::1234567890123456:role/someone-else")], "EntityNotExist.Role"),
            (vec![("OIDCProviderArn", "acs:ram::1234567890123456:role/x")], "InvalidParameter.OIDCProviderArn"),
            (
                vec![("OIDCProviderArn", "acs:ram::1234567890123456:oidc-provider/other")],
                "AuthenticationFail.NoPermission",
            ),
            (vec![("OIDCToken", "")], "AuthenticationFail.OIDCToken.Invalid"),
            (vec![("OIDCToken", "not-a-jwt")], "AuthenticationFail.OIDCToken.Invalid"),
            (vec![("OIDCToken", "a.b.c")], "AuthenticationFail.OIDCToken.Invalid"),
            (vec![("OIDCToken", &hs256)], "AuthenticationFail.OIDCToken.Invalid"),
            (vec![("OIDCToken", &not_json)], "AuthenticationFail.OIDCToken.Invalid"),
            (vec![("OIDCToken", &other_issuer)], "AuthenticationFail.OIDCToken.Invalid"),
            (vec![("OIDCToken", &no_exp)], "AuthenticationFail.OIDCToken.Invalid"),
            (vec![("OIDCToken", &other_audience)], "AuthenticationFail.OIDCToken.AudienceNotMatch"),
            (vec![("OIDCToken", &expired)], "AuthenticationFail.OIDCToken.Expired"),
        ];
        for (overrides, want) in cases {
            assert_eq!(code(&config, &request(&overrides)), want, "{overrides:?}");
        }
    }

    #[test]
    fn tokens_from_before_a_rotation_are_refused() {
        let config = StsConfig { reject_tokens_issued_before: Some(1_799_999_500), ..StsConfig::default() };
        assert_eq!(code(&config, &request(&[])), "AuthenticationFail.OIDCToken.Invalid");
        let fresh = token(
            serde_json::json!({"iss": DEFAULT_ISSUER, "aud": AUDIENCE, "iat": 1_799_999_600, "exp": 1_800_003_600}),
        );
        assert_eq!(code(&config, &request(&[("OIDCToken", &fresh)])), "Success");
    }

    #[test]
    fn a_second_role_acts_for_its_own_account() {
        let other = "acs:ram::6543210987654321:role/segments";
        let config = StsConfig { role_arns: vec![DEFAULT_ROLE_ARN.into(), other.into()], ..StsConfig::default() };
        let grant =
            assume_role_with_oidc(&config, &request(&[("RoleArn", other)]), now(), &mut StdRng::seed_from_u64(1))
                .unwrap();
        assert_eq!(grant.key.account, "6543210987654321");
        assert_eq!(config.accounts(), vec!["1234567890123456", "6543210987654321"]);
    }

    #[test]
    fn admin_patches_keep_the_fields_left_out() {
        let base = StsConfig::default();
        let patched = base.patched(br#"{"credentialSeconds": 4}"#).unwrap();
        assert_eq!(patched, StsConfig { credential_seconds: Some(4), ..base.clone() });
        assert_eq!(patched.patched(br#"{"credentialSeconds": null}"#).unwrap(), base);
        assert!(base.patched(br#"{"credentialSecs": 4}"#).is_err(), "unknown fields are refused");
        assert!(base.patched(br#"{"credentialSeconds": 0}"#).is_err());
        assert!(base.patched(br#"{"roleArns": ["acs:ram::1:user/x"]}"#).is_err());
        assert!(base.patched(b"[]").is_err());
    }

    #[test]
    fn parses_arns() {
        assert_eq!(parse_arn(DEFAULT_ROLE_ARN, "role"), Some(("1234567890123456", "eipsegment-operator")));
        assert_eq!(
            parse_arn(DEFAULT_OIDC_PROVIDER_ARN, "oidc-provider"),
            Some(("1234567890123456", "ack-rrsa-simulator"))
        );
        assert_eq!(parse_arn("acs:ram::12ab:role/x", "role"), None);
        assert_eq!(parse_arn("acs:ram::123:role/", "role"), None);
        assert_eq!(parse_arn("acs:ram::123:roles/x", "role"), None);
    }

    #[test]
    fn tells_sts_from_vpc() {
        assert!(is_sts_request("AssumeRoleWithOIDC", "2015-04-01"));
        assert!(is_sts_request("AssumeRoleWithOIDC", "2016-04-28"), "routed to STS, which refuses the version");
        assert!(is_sts_request("GetCallerIdentity", "2015-04-01"));
        assert!(is_sts_request("GetCallerIdentity", ""), "a V3 request carries its version in a header");
        assert!(!is_sts_request("DescribeEipSegment", "2016-04-28"));
    }

    #[test]
    fn caller_identity_has_the_real_fields_for_each_kind_of_key() {
        let root = Caller { access_key_id: "LTAI".into(), account: "123".into(), principal: Principal::Account };
        assert_eq!(
            caller_identity(&root),
            serde_json::json!({"AccountId": "123", "UserId": "123", "PrincipalId": "123",
                "Arn": "acs:ram::123:root", "IdentityType": "Account"})
        );
        let grant =
            assume_role_with_oidc(&StsConfig::default(), &request(&[]), now(), &mut StdRng::seed_from_u64(1)).unwrap();
        let caller = Caller {
            access_key_id: grant.access_key_id.clone(),
            account: grant.key.account.clone(),
            principal: grant.key.principal.clone(),
        };
        let identity = caller_identity(&caller);
        assert_eq!(identity["IdentityType"], "AssumedRoleUser");
        assert_eq!(identity["Arn"], grant.answer["AssumedRoleUser"]["Arn"], "the ARN AssumeRoleWithOIDC reported");
        assert_eq!(identity["PrincipalId"], grant.answer["AssumedRoleUser"]["AssumedRoleId"]);
        assert_eq!(identity["AccountId"], "1234567890123456");
        assert!(identity.get("UserId").is_none(), "{identity}");
        let role = identity["RoleId"].as_str().unwrap();
        assert_eq!((role.len(), role.chars().all(|c| c.is_ascii_digit())), (18, true), "{role}");
        assert_eq!(role, role_id(DEFAULT_ROLE_ARN), "one ID per role, whatever the grant");
        assert_ne!(role_id(DEFAULT_ROLE_ARN), role_id("acs:ram::1234567890123456:role/other"));
    }
}
