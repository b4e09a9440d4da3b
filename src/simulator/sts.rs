//! The simulated STS `AssumeRoleWithOIDC` (ACK RRSA): an unsigned request that trades the pod's OIDC
//! token for temporary credentials, which the gateway then accepts with their SecurityToken.

use base64::Engine;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use rand::Rng;
use serde::{Deserialize, Serialize};

use super::auth::AccessKey;
use super::world::{ApiError, Params};

pub const ACTION: &str = "AssumeRoleWithOIDC";
pub const VERSION: &str = "2015-04-01";

/// The identity provider and role RRSA may assume; adjustable through the admin API.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", default)]
pub struct StsConfig {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    pub issuer: String,
    /// Lifetime of issued credentials; `None` honours DurationSeconds (tests shorten it).
    pub credential_seconds: Option<i64>,
    /// Tokens issued before this Unix time are refused (a rotated, revoked token).
    pub reject_tokens_issued_before: Option<i64>,
}

impl Default for StsConfig {
    fn default() -> Self {
        StsConfig {
            role_arn: format!("acs:ram::{}:role/eipsegment-operator", super::DEFAULT_ACCOUNT),
            oidc_provider_arn: format!("acs:ram::{}:oidc-provider/ack-rrsa-simulator", super::DEFAULT_ACCOUNT),
            issuer: "https://oidc-ack.cn-hangzhou.aliyuncs.com/simulator".into(),
            credential_seconds: None,
            reject_tokens_issued_before: None,
        }
    }
}

fn err(http_status: u16, code: &'static str, message: impl Into<String>) -> ApiError {
    ApiError { http_status, code, message: message.into() }
}

#[derive(Deserialize)]
struct Claims {
    iss: Option<String>,
    aud: Option<serde_json::Value>,
    exp: Option<i64>,
    iat: Option<i64>,
    sub: Option<String>,
}

fn claims(token: &str) -> Option<Claims> {
    let mut parts = token.split('.');
    let (_, payload, _) = (parts.next()?, parts.next()?, parts.next()?);
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn random(rng: &mut impl Rng, len: usize) -> String {
    const CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..len).map(|_| CHARS[rng.random_range(0..CHARS.len())] as char).collect()
}

/// Checks the request and, on success, returns the answer and the temporary key to accept.
pub fn assume_role_with_oidc(
    config: &StsConfig,
    params: &Params,
    now: DateTime<Utc>,
    rng: &mut impl Rng,
) -> Result<(serde_json::Value, String, AccessKey), ApiError> {
    if params.get("Version") != VERSION {
        return Err(err(400, "InvalidVersion", "Specified parameter Version is not valid."));
    }
    for name in ["RoleArn", "OIDCProviderArn", "OIDCToken"] {
        if params.get(name).is_empty() {
            return Err(err(400, "MissingParameter", format!("The input parameter \"{name}\" that is mandatory for processing this request is not supplied.")));
        }
    }
    let duration: i64 = match params.get("DurationSeconds") {
        "" => 3600,
        d => match d.parse() {
            Ok(d @ 900..=43200) => d,
            _ => return Err(err(400, "InvalidParameter.DurationSeconds", "The parameter DurationSeconds must be 900 to 43200.")),
        },
    };
    if params.get("OIDCProviderArn") != config.oidc_provider_arn {
        return Err(err(404, "EntityNotExist.OIDCProvider", "The specified OIDC provider does not exist."));
    }
    if params.get("RoleArn") != config.role_arn {
        return Err(err(404, "EntityNotExist.Role", "The specified Role does not exist."));
    }
    let claims = claims(params.get("OIDCToken")).ok_or_else(|| err(400, "InvalidParameter.OIDCToken", "The OIDC token is not a well-formed JWT."))?;
    if claims.iss.as_deref() != Some(config.issuer.as_str()) {
        return Err(err(400, "AuthenticationFail.OIDCToken.IssuerError", "The issuer of the OIDC token does not match the OIDC provider."));
    }
    let audience_ok = match &claims.aud {
        Some(serde_json::Value::String(a)) => a == "sts.aliyuncs.com",
        Some(serde_json::Value::Array(a)) => a.iter().any(|v| v == "sts.aliyuncs.com"),
        _ => false,
    };
    if !audience_ok {
        return Err(err(400, "AuthenticationFail.OIDCToken.AudienceError", "The audience of the OIDC token is not sts.aliyuncs.com."));
    }
    if claims.exp.is_none_or(|exp| exp <= now.timestamp()) {
        return Err(err(400, "AuthenticationFail.OIDCToken.Expired", "The OIDC token has expired."));
    }
    if let (Some(before), Some(iat)) = (config.reject_tokens_issued_before, claims.iat) {
        if iat < before {
            return Err(err(400, "AuthenticationFail.OIDCToken.Invalid", "The OIDC token is no longer valid."));
        }
    }
    let lifetime = config.credential_seconds.unwrap_or(duration);
    let expiration = now + ChronoDuration::seconds(lifetime);
    let access_key_id = format!("STS.{}", random(rng, 24));
    let secret = random(rng, 40);
    let token = format!("CAIS{}", random(rng, 120));
    let session = match params.get("RoleSessionName") {
        "" => "eipsegment-operator",
        s => s,
    };
    let role_name = config.role_arn.rsplit('/').next().unwrap_or_default();
    let answer = serde_json::json!({
        "SourceIdentity": claims.sub.unwrap_or_default(),
        "AssumedRoleUser": {
            "Arn": format!("acs:ram::{}:assumed-role/{role_name}/{session}", super::DEFAULT_ACCOUNT),
            "AssumedRoleId": format!("3{}:{session}", random(rng, 16)),
        },
        "Credentials": {
            "AccessKeyId": access_key_id,
            "AccessKeySecret": secret,
            "SecurityToken": token,
            "Expiration": expiration.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        },
    });
    let key = AccessKey { secret, account: super::DEFAULT_ACCOUNT.into(), security_token: Some(token), expires_at: Some(expiration) };
    Ok((answer, access_key_id, key))
}
