//! RRSA (ACK pod identity): the pod's OIDC token, re-read from its file at every refresh, traded for
//! temporary credentials with STS AssumeRoleWithOIDC; refreshed before they expire.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use serde::Deserialize;

use crate::cloud::credentials::{CredentialProvider, Credentials, Secret};
use crate::cloud::error::ErrorClass;
use crate::cloud::model::ErrorBody;
use crate::cloud::{CloudError, signer};

pub const ENV_ROLE_ARN: &str = "ALIBABA_CLOUD_ROLE_ARN";
pub const ENV_OIDC_PROVIDER_ARN: &str = "ALIBABA_CLOUD_OIDC_PROVIDER_ARN";
pub const ENV_OIDC_TOKEN_FILE: &str = "ALIBABA_CLOUD_OIDC_TOKEN_FILE";
pub const ENV_ROLE_SESSION_NAME: &str = "ALIBABA_CLOUD_ROLE_SESSION_NAME";
pub const ENV_STS_REGION: &str = "ALIBABA_CLOUD_STS_REGION";

#[derive(Clone, Debug)]
pub struct StsConfig {
    /// Replaces sts.aliyuncs.com (or sts.<region>.aliyuncs.com).
    pub endpoint_override: Option<String>,
    pub allow_insecure_endpoint: bool,
    pub timeout: Duration,
    /// Refresh when this little validity remains (the SDK's 180 s).
    pub refresh_before: Duration,
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

#[derive(Clone, Debug)]
pub struct RrsaSettings {
    pub role_arn: String,
    pub oidc_provider_arn: String,
    pub token_file: PathBuf,
    pub session_name: String,
    pub endpoint: String,
}

impl RrsaSettings {
    /// From the variables ACK's pod-identity webhook injects; `None` when they are not set.
    pub fn from_env(config: &StsConfig) -> Option<RrsaSettings> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let endpoint = config.endpoint_override.clone().unwrap_or_else(|| match var(ENV_STS_REGION) {
            Some(region) => format!("https://sts.{region}.aliyuncs.com"),
            None => "https://sts.aliyuncs.com".into(),
        });
        Some(RrsaSettings {
            role_arn: var(ENV_ROLE_ARN)?,
            oidc_provider_arn: var(ENV_OIDC_PROVIDER_ARN)?,
            token_file: var(ENV_OIDC_TOKEN_FILE)?.into(),
            session_name: var(ENV_ROLE_SESSION_NAME).unwrap_or_else(|| "eipsegment-operator".into()),
            endpoint,
        })
    }
}

pub struct RrsaCredentials {
    settings: RrsaSettings,
    config: StsConfig,
    http: reqwest::Client,
    cached: tokio::sync::Mutex<Option<(Credentials, DateTime<Utc>)>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AssumeRoleBody {
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

impl RrsaCredentials {
    pub fn new(settings: RrsaSettings, config: StsConfig) -> Result<Self, String> {
        let endpoint = &settings.endpoint;
        if endpoint.starts_with("http://") && !config.allow_insecure_endpoint {
            return Err(format!("STS endpoint {endpoint:?} is plain http: allow it explicitly or use https"));
        }
        if !endpoint.starts_with("http://") && !endpoint.starts_with("https://") {
            return Err(format!("STS endpoint {endpoint:?} is not an http(s) URL"));
        }
        crate::cloud::client::install_crypto_provider();
        let http = reqwest::Client::builder().timeout(config.timeout).build().map_err(|e| e.to_string())?;
        Ok(RrsaCredentials { settings, config, http, cached: tokio::sync::Mutex::new(None) })
    }

    async fn assume_role(&self) -> Result<(Credentials, DateTime<Utc>), CloudError> {
        let token = tokio::fs::read_to_string(&self.settings.token_file).await.map_err(|e| {
            CloudError::Credentials(format!("cannot read the OIDC token file {}: {e}", self.settings.token_file.display()))
        })?;
        let query = [
            ("Action", "AssumeRoleWithOIDC".to_string()),
            ("Version", "2015-04-01".to_string()),
            ("Format", "JSON".to_string()),
            ("Timestamp", Utc::now().format("%Y-%m-%dT%H:%M:%SZ").to_string()),
        ];
        let form = [
            ("RoleArn", self.settings.role_arn.clone()),
            ("OIDCProviderArn", self.settings.oidc_provider_arn.clone()),
            ("OIDCToken", token.trim().to_string()),
            ("RoleSessionName", self.settings.session_name.clone()),
            ("DurationSeconds", self.config.duration_seconds.to_string()),
        ];
        let encode = |pairs: &[(&str, String)]| {
            pairs.iter().map(|(k, v)| format!("{k}={}", signer::percent_encode(v))).collect::<Vec<_>>().join("&")
        };
        let url = format!("{}/?{}", self.settings.endpoint.trim_end_matches('/'), encode(&query));
        let response = self
            .http
            .post(url)
            .header("Content-Type", "application/x-www-form-urlencoded")
            .body(encode(&form))
            .send()
            .await
            .map_err(|e| sts_error(0, if e.is_timeout() { "Timeout" } else { "ConnectionFailed" }, &e.to_string(), ""))?;
        let status = response.status().as_u16();
        let bytes = response.bytes().await.map_err(|e| sts_error(0, "TransportError", &e.to_string(), ""))?;
        if !(200..300).contains(&status) {
            let body: ErrorBody = serde_json::from_slice(&bytes).unwrap_or_default();
            let code = if body.code.is_empty() { format!("HTTP{status}") } else { body.code };
            return Err(sts_error(status, &code, &body.message, &body.request_id));
        }
        let body: AssumeRoleBody = serde_json::from_slice(&bytes)
            .map_err(|e| sts_error(status, "MalformedResponse", &format!("AssumeRoleWithOIDC answer: {e}"), ""))?;
        let expiration = DateTime::parse_from_rfc3339(&body.credentials.expiration)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|e| sts_error(status, "MalformedResponse", &format!("Expiration {:?}: {e}", body.credentials.expiration), ""))?;
        let credentials = Credentials {
            access_key_id: body.credentials.access_key_id,
            access_key_secret: Secret::new(body.credentials.access_key_secret),
            security_token: Some(Secret::new(body.credentials.security_token)),
        };
        tracing::info!(access_key_id = %credentials.access_key_id, %expiration, "obtained STS credentials through RRSA");
        Ok((credentials, expiration))
    }
}

fn sts_error(http_status: u16, code: &str, message: &str, request_id: &str) -> CloudError {
    CloudError::Sts { http_status, code: code.to_string(), message: message.to_string(), request_id: request_id.to_string() }
}

/// How an STS failure is read: passing for throttling, server errors and transport, else terminal.
pub fn sts_error_class(http_status: u16, code: &str) -> ErrorClass {
    if http_status == 0 || http_status >= 500 || code.starts_with("Throttling") || code == "MalformedResponse" {
        ErrorClass::Transient
    } else {
        ErrorClass::Terminal
    }
}

impl CredentialProvider for RrsaCredentials {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CloudError>> {
        Box::pin(async move {
            // One refresh at a time; the others wait for it and share its result.
            let mut cached = self.cached.lock().await;
            let now = Utc::now();
            if let Some((credentials, expiration)) = cached.as_ref() {
                let left = (*expiration - now).to_std().unwrap_or_default();
                if left > self.config.refresh_before {
                    return Ok(credentials.clone());
                }
            }
            match self.assume_role().await {
                Ok(fresh) => {
                    let credentials = fresh.0.clone();
                    *cached = Some(fresh);
                    Ok(credentials)
                }
                // Credentials that have not expired yet still serve while STS is failing.
                Err(e) => match cached.as_ref() {
                    Some((credentials, expiration)) if *expiration > now + chrono::Duration::seconds(5) => {
                        tracing::warn!(error = %e, "refreshing STS credentials failed; using the current ones until they expire");
                        Ok(credentials.clone())
                    }
                    _ => Err(e),
                },
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sts_failures_are_passing_only_when_sts_is() {
        assert_eq!(sts_error_class(0, "Timeout"), ErrorClass::Transient);
        assert_eq!(sts_error_class(503, "ServiceUnavailable"), ErrorClass::Transient);
        assert_eq!(sts_error_class(400, "Throttling.User"), ErrorClass::Transient);
        assert_eq!(sts_error_class(400, "AuthenticationFail.OIDCToken.Expired"), ErrorClass::Terminal);
        assert_eq!(sts_error_class(404, "EntityNotExist.Role"), ErrorClass::Terminal);
    }

    #[test]
    fn plain_http_sts_needs_the_opt_in() {
        let settings = RrsaSettings {
            role_arn: "r".into(),
            oidc_provider_arn: "p".into(),
            token_file: "/nonexistent".into(),
            session_name: "s".into(),
            endpoint: "http://127.0.0.1:1".into(),
        };
        assert!(RrsaCredentials::new(settings.clone(), StsConfig::default()).is_err());
        let allowed = StsConfig { allow_insecure_endpoint: true, ..StsConfig::default() };
        assert!(RrsaCredentials::new(settings, allowed).is_ok());
    }

    #[tokio::test]
    async fn an_unreadable_token_file_is_a_clear_error() {
        let settings = RrsaSettings {
            role_arn: "r".into(),
            oidc_provider_arn: "p".into(),
            token_file: "/nonexistent/token".into(),
            session_name: "s".into(),
            endpoint: "https://sts.aliyuncs.com".into(),
        };
        let provider = RrsaCredentials::new(settings, StsConfig::default()).unwrap();
        let e = provider.credentials().await.unwrap_err();
        assert_eq!(e.class(), ErrorClass::Terminal);
        assert!(e.to_string().contains("/nonexistent/token"), "{e}");
    }
}
