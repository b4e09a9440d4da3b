//! Where the client's credentials come from. Secrets are wrapped so that no `Debug`, `Display` or
//! log line can print them.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::cloud::CloudError;
use crate::cloud::sts::{RrsaCredentials, RrsaSettings, StsConfig};

/// A string that never prints.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Credentials {
    pub access_key_id: String,
    pub access_key_secret: Secret,
    /// Set for STS credentials; sent as `SecurityToken`.
    pub security_token: Option<Secret>,
}

pub const ENV_ACCESS_KEY_ID: &str = "ALIBABA_CLOUD_ACCESS_KEY_ID";
pub const ENV_ACCESS_KEY_SECRET: &str = "ALIBABA_CLOUD_ACCESS_KEY_SECRET";
pub const ENV_SECURITY_TOKEN: &str = "ALIBABA_CLOUD_SECURITY_TOKEN";

impl Credentials {
    /// The first link of the official chain: the standard environment variables.
    pub fn from_env() -> Option<Credentials> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The same, from any source of variables.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Option<Credentials> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let id = var(ENV_ACCESS_KEY_ID)?;
        let secret = var(ENV_ACCESS_KEY_SECRET)?;
        let token = var(ENV_SECURITY_TOKEN);
        Some(Credentials { access_key_id: id, access_key_secret: Secret(secret), security_token: token.map(Secret) })
    }
}

/// Gives the credentials for the next call; refreshing ones (STS) renew themselves behind it.
pub trait CredentialProvider: Send + Sync {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CloudError>>;

    /// The cloud refused these credentials' security token (expired or revoked early): temporary
    /// credentials are fetched afresh on the next call.
    fn token_refused(&self, _access_key_id: &str) {}
}

/// Credentials that never change (environment variables, a Secret's keys).
pub struct StaticCredentials(pub Credentials);

impl CredentialProvider for StaticCredentials {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CloudError>> {
        Box::pin(async move { Ok(self.0.clone()) })
    }
}

/// For a process with no credentials configured: every call fails with a terminal error that says so.
pub struct MissingCredentials;

impl CredentialProvider for MissingCredentials {
    fn credentials(&self) -> BoxFuture<'_, Result<Credentials, CloudError>> {
        Box::pin(async {
            Err(CloudError::Credentials(format!(
                "the operator has no credentials of its own: set {ENV_ACCESS_KEY_ID} and {ENV_ACCESS_KEY_SECRET}, use RRSA, or reference a Secret"
            )))
        })
    }
}

/// The official chain as far as an operator needs it: the environment's AccessKey, else RRSA (the
/// variables ACK's pod-identity webhook injects), else none. An error means a configuration that
/// cannot work (RRSA partly set, a plain-http STS endpoint not allowed, a bad DurationSeconds).
pub fn default_chain(sts: StsConfig) -> Result<Arc<dyn CredentialProvider>, String> {
    chain_from(sts, |name| std::env::var(name).ok())
}

/// [`default_chain`] over any source of variables.
pub fn chain_from(
    sts: StsConfig,
    lookup: impl Fn(&str) -> Option<String>,
) -> Result<Arc<dyn CredentialProvider>, String> {
    if let Some(c) = Credentials::from_lookup(&lookup) {
        return Ok(Arc::new(StaticCredentials(c)));
    }
    if let Some(settings) = RrsaSettings::from_lookup(&sts, &lookup)? {
        let provider = RrsaCredentials::new(settings, sts)?;
        let s = provider.settings();
        tracing::info!(role = %s.role_arn, provider = %s.oidc_provider_arn, token_file = %s.token_file.display(), endpoint = %s.endpoint, "using RRSA credentials");
        return Ok(Arc::new(provider));
    }
    Ok(Arc::new(MissingCredentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_never_shows_the_secret_or_token() {
        let c = Credentials {
            access_key_id: "LTAIexample".into(),
            access_key_secret: Secret::new("very-secret-value"),
            security_token: Some(Secret::new("sts-token-value")),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("LTAIexample"));
        assert!(!shown.contains("very-secret-value"));
        assert!(!shown.contains("sts-token-value"));
    }
}
