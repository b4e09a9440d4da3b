//! The credentials an object acts with: the operator's own, or a Secret in the object's namespace;
//! and the account they act for, which is what every later answer is tied to.

use std::sync::Arc;

use k8s_openapi::api::core::v1::Secret as KubeSecret;
use kube::api::Api;

use crate::cloud::credentials::{Credentials as Keys, ENV_ACCESS_KEY_ID, ENV_ACCESS_KEY_SECRET, ENV_SECURITY_TOKEN};
use crate::cloud::credentials::{Secret, StaticCredentials};
use crate::cloud::model::Action;
use crate::cloud::{CloudError, VpcClient};
use crate::lifecycle::{Credentials, Problem, Source, SourceChoice};

/// Secret-referenced credentials: per object (`spec.credentialsSecretRef`) or per namespace (a
/// Secret of a fixed name), always in the object's own namespace.
#[derive(Clone, Debug)]
pub struct SecretCredentials {
    pub namespace_default: String,
}

/// What the pass acts with once the credentials are known.
pub struct Resolved {
    pub fact: Credentials,
    /// Absent when the credentials could not be read.
    pub client: Option<VpcClient>,
    /// The Secret they came from, as read (for its finalizers).
    pub secret: Option<KubeSecret>,
}

/// The credentials `choice` names for an object of `namespace` in `region`.
pub async fn resolve(ctx: &super::Context, namespace: &str, region: &str, choice: &SourceChoice) -> Resolved {
    let (source, found) = match choice {
        SourceChoice::Exactly(source) => (source.clone(), read(ctx, namespace, source).await),
        SourceChoice::NamespaceDefaultOrOperator => match &ctx.secret_credentials {
            None => (Source::Operator, Ok((ctx.vpc.clone(), None))),
            Some(config) => {
                let default = Source::Secret(config.namespace_default.clone());
                match read(ctx, namespace, &default).await {
                    Err(Missing::NotFound(_)) => (Source::Operator, Ok((ctx.vpc.clone(), None))),
                    other => (default, other),
                }
            }
        },
        SourceChoice::NamespaceDefaultOnly { rule } => namespace_default_only(ctx, namespace, rule).await,
    };
    match found {
        Ok((client, secret)) => {
            let account = client.account().await.map_err(|e| problem_of(&e));
            let terminating = secret.as_ref().is_some_and(|s| s.metadata.deletion_timestamp.is_some());
            let endpoint = client.endpoint(Action::AllocateEipSegmentAddress, region);
            Resolved { fact: Credentials { source, account, terminating, endpoint }, client: Some(client), secret }
        }
        Err(missing) => {
            let problem = problem_of(&CloudError::Credentials(missing.to_string()));
            Resolved {
                fact: Credentials { source, account: Err(problem), terminating: false, endpoint: String::new() },
                client: None,
                secret: None,
            }
        }
    }
}

/// The namespace's default Secret, the only credentials the tenancy policy leaves it.
async fn namespace_default_only(
    ctx: &super::Context,
    namespace: &str,
    rule: &str,
) -> (Source, Result<(VpcClient, Option<KubeSecret>), Missing>) {
    let Some(config) = &ctx.secret_credentials else {
        let why = format!(
            "the tenancy policy (rule {rule:?}) does not let namespace {namespace} use the operator's credentials, and \
             this operator does not read Secrets: enable Secret-referenced credentials"
        );
        return (Source::Operator, Err(Missing::Unusable(why)));
    };
    let default = Source::Secret(config.namespace_default.clone());
    match read(ctx, namespace, &default).await {
        Err(Missing::NotFound(_)) => {
            let why = format!(
                "the tenancy policy (rule {rule:?}) does not let namespace {namespace} use the operator's credentials: \
                 set spec.credentialsSecretRef, or create the namespace's default credentials Secret {}",
                config.namespace_default
            );
            (default, Err(Missing::Unusable(why)))
        }
        other => (default, other),
    }
}

#[derive(Debug, thiserror::Error)]
enum Missing {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Unusable(String),
}

async fn read(
    ctx: &super::Context,
    namespace: &str,
    source: &Source,
) -> Result<(VpcClient, Option<KubeSecret>), Missing> {
    let Source::Secret(name) = source else { return Ok((ctx.vpc.clone(), None)) };
    if ctx.secret_credentials.is_none() {
        return Err(Missing::Unusable(format!(
            "the credentials are in Secret {namespace}/{name}, but this operator does not read Secrets: enable \
             Secret-referenced credentials"
        )));
    }
    let secrets: Api<KubeSecret> = Api::namespaced(ctx.client.clone(), namespace);
    let secret = match secrets.get_opt(name).await {
        Ok(Some(secret)) => secret,
        Ok(None) => {
            return Err(Missing::NotFound(format!(
                "Secret {namespace}/{name}, where this segment's credentials come from, does not exist: create it again \
                 with credentials of the segment's account (no other credentials are used instead)"
            )));
        }
        Err(e) => return Err(Missing::Unusable(format!("cannot read Secret {namespace}/{name}: {e}"))),
    };
    let keys =
        keys_of(&secret).map_err(|missing| Missing::Unusable(format!("Secret {namespace}/{name} has no {missing}")))?;
    Ok((ctx.vpc.with_credentials(Arc::new(StaticCredentials(keys))), Some(secret)))
}

/// The standard variable names as keys, so one Secret serves `envFrom` and references alike.
fn keys_of(secret: &KubeSecret) -> Result<Keys, &'static str> {
    let data = secret.data.clone().unwrap_or_default();
    let text = |key: &str| {
        data.get(key)
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
    };
    let access_key_id = text(ENV_ACCESS_KEY_ID).ok_or(ENV_ACCESS_KEY_ID)?;
    let secret_key = text(ENV_ACCESS_KEY_SECRET).ok_or(ENV_ACCESS_KEY_SECRET)?;
    Ok(Keys {
        access_key_id,
        access_key_secret: Secret::new(secret_key),
        security_token: text(ENV_SECURITY_TOKEN).map(Secret::new),
    })
}

/// A cloud error as the lifecycle needs it: class, code, what to do, and whether it proves an
/// allocation created nothing.
pub fn problem_of(e: &CloudError) -> Problem {
    let c = e.classification();
    let detail = match e {
        CloudError::Api { message, .. } | CloudError::Sts { message, .. } => {
            format!("{}: {} ({message})", e.code(), c.advice)
        }
        CloudError::Credentials(message) => format!("{}: {message}", e.code()),
        _ => format!("{}: {}", e.code(), c.advice),
    };
    Problem {
        class: c.class,
        code: e.code().to_string(),
        detail,
        request_id: e.request_id().map(str::to_string),
        retry_after: e.retry_after(),
        proves_nothing_created: e.proves_nothing_created(),
    }
}
