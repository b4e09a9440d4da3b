//! The operator's proof that it wrote an object's identity annotations. Annotations are kept in
//! backups and re-applied manifests, which is why they carry the identity; but anyone who may edit
//! an object may write them, so the operator believes one only when it proves it wrote it: the
//! object carries `eipsegment.io/identity-proof`, an HMAC-SHA256 of the annotations it covers with
//! the object's namespace and name, under a key the operator keeps in a Secret of its own
//! namespace (back it up with the objects, as sealed-secrets' key is). A copy to another object, or
//! an edited value, proves nothing. An annotation equal to what status records is the operator's
//! own as well: status is written by the operator alone.

use std::collections::BTreeMap;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, PostParams};
use sha2::Sha256;

use crate::crd::EipSegmentStatus;
use crate::lifecycle::identity::{ANNOTATIONS, Identity, PROOF};

/// The Secret's key holding the HMAC key.
const KEY_FIELD: &str = "key";
const KEY_BYTES: usize = 32;
const VERSION: &str = "v1";

/// The key proofs are made with.
#[derive(Clone)]
pub struct IdentityKey {
    key: Vec<u8>,
}

impl std::fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IdentityKey(..)")
    }
}

/// What an object's annotations say that the operator can prove, and which ones it cannot.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Proven {
    pub identity: Identity,
    pub unproven: Vec<String>,
}

impl IdentityKey {
    pub fn new(key: Vec<u8>) -> Result<IdentityKey, KeyError> {
        if key.len() < KEY_BYTES {
            return Err(KeyError::TooShort(key.len()));
        }
        Ok(IdentityKey { key })
    }

    /// A fresh random key.
    pub fn generate() -> IdentityKey {
        IdentityKey { key: rand::random::<[u8; KEY_BYTES]>().to_vec() }
    }

    fn mac(&self, namespace: &str, name: &str, covered: &[(&str, &str)]) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes a key of any length");
        mac.update(format!("eipsegment.io identity {VERSION}\n{namespace}\n{name}\n").as_bytes());
        for (key, value) in covered {
            mac.update(format!("{key}={value}\n").as_bytes());
        }
        mac
    }

    /// The proof of the identity's annotations on the object `namespace/name`: the annotations it
    /// covers (short names) and their MAC.
    pub fn proof(&self, namespace: &str, name: &str, identity: &Identity) -> String {
        let covered: Vec<(&str, &str)> =
            identity.annotations().into_iter().filter_map(|(key, value)| Some((key, value?))).collect();
        let tag = URL_SAFE_NO_PAD.encode(self.mac(namespace, name, &covered).finalize().into_bytes());
        let keys: Vec<&str> = covered.iter().map(|(key, _)| short(key)).collect();
        format!("{VERSION}:{}:{tag}", keys.join(","))
    }

    /// The identity annotations of `namespace/name` that the operator proves it wrote.
    pub fn read(
        &self,
        namespace: &str,
        name: &str,
        annotations: &BTreeMap<String, String>,
        status: Option<&EipSegmentStatus>,
    ) -> Proven {
        let present = Identity::from_annotations(annotations);
        let signed = self.signed(namespace, name, annotations, &present);
        let recorded = status.map(Identity::of_status).unwrap_or_default();
        let mut proven = Proven::default();
        for ((key, value), (_, in_status)) in present.annotations().into_iter().zip(recorded.annotations()) {
            let Some(value) = value else { continue };
            if signed.contains(&key) || in_status == Some(value) {
                proven.identity.set(key, value);
            } else {
                proven.unproven.push(key.to_string());
            }
        }
        proven
    }

    /// The annotations a valid proof covers (none without one).
    fn signed(
        &self,
        namespace: &str,
        name: &str,
        annotations: &BTreeMap<String, String>,
        present: &Identity,
    ) -> Vec<&'static str> {
        let Some((keys, tag)) = annotations.get(PROOF).and_then(|p| parse(p)) else { return Vec::new() };
        let values = present.annotations();
        let covered: Option<Vec<(&'static str, &str)>> = keys
            .iter()
            .map(|k| values.iter().find(|(key, _)| short(key) == *k).and_then(|(key, value)| Some((*key, (*value)?))))
            .collect();
        let Some(covered) = covered else { return Vec::new() };
        match self.mac(namespace, name, &covered).verify_slice(&tag) {
            Ok(()) => covered.into_iter().map(|(key, _)| key).collect(),
            Err(_) => Vec::new(),
        }
    }
}

fn short(key: &str) -> &str {
    key.trim_start_matches("eipsegment.io/")
}

/// `v1:segment-id,account-id:<MAC>` into the covered short names and the MAC.
fn parse(proof: &str) -> Option<(Vec<&str>, Vec<u8>)> {
    let mut parts = proof.trim().splitn(3, ':');
    let (version, keys, tag) = (parts.next()?, parts.next()?, parts.next()?);
    if version != VERSION || keys.is_empty() {
        return None;
    }
    let keys: Vec<&str> = keys.split(',').collect();
    let known = keys.iter().all(|k| ANNOTATIONS.iter().any(|a| short(a) == *k));
    known.then_some(())?;
    Some((keys, URL_SAFE_NO_PAD.decode(tag).ok()?))
}

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("the identity key is {0} bytes; at least 32 are needed")]
    TooShort(usize),
    #[error("the identity key Secret {0} has no data field `key`")]
    NoKeyField(String),
    #[error("cannot {verbs} the identity key Secret {secret}: this identity needs {grant}")]
    Kube {
        secret: String,
        verbs: &'static str,
        grant: String,
        #[source]
        source: Box<kube::Error>,
    },
}

/// The key in Secret `namespace/name`, made (at random) when there is none. Two replicas starting
/// together both try; the one whose create fails reads the other's. An apiserver that cannot be
/// reached yet (a control plane restarting with the operator) is waited for, and so, for a shorter
/// while, is a refusal: an apiserver just started, or a RoleBinding installed with the operator's
/// Deployment, refuses until its authorizer has caught up.
pub async fn load_or_create(client: kube::Client, namespace: &str, name: &str) -> Result<IdentityKey, KeyError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let mut failures = 0;
    loop {
        match try_load_or_create(&api, namespace, name).await {
            Err(KeyError::Kube { source, .. }) if failures < tries_for(&source) => {
                failures += 1;
                let wait = crate::backoff::delay(Duration::from_secs(1), Duration::from_secs(15), failures, 0.0, None);
                tracing::warn!(secret = name, error = %source, ?wait, "the identity key cannot be read yet; trying again");
                tokio::time::sleep(wait).await;
            }
            other => return other,
        }
    }
}

/// How often a failure is tried again before the operator gives up (and its Pod is restarted): about
/// five minutes for an apiserver that does not answer, one for a refusal, none for anything else.
fn tries_for(e: &kube::Error) -> u32 {
    match e {
        kube::Error::Api(status) if status.code >= 500 || status.code == 429 => 25,
        kube::Error::Api(status) if status.code == 401 || status.code == 403 => 7,
        kube::Error::Api(_) => 0,
        kube::Error::HyperError(_) | kube::Error::Service(_) => 25,
        _ => 0,
    }
}

async fn try_load_or_create(api: &Api<Secret>, namespace: &str, name: &str) -> Result<IdentityKey, KeyError> {
    let failed = |source| KeyError::Kube {
        secret: format!("{namespace}/{name}"),
        verbs: "read or create",
        grant: format!("get on that Secret and create on Secrets in namespace {namespace} (the chart grants both)"),
        source: Box::new(source),
    };
    if let Some(secret) = api.get_opt(name).await.map_err(failed)? {
        return key_of(&secret, namespace, name);
    }
    let fresh = IdentityKey::generate();
    let secret = Secret {
        metadata: kube::api::ObjectMeta { name: Some(name.into()), ..Default::default() },
        data: Some(BTreeMap::from([(KEY_FIELD.to_string(), k8s_openapi::ByteString(fresh.key.clone()))])),
        type_: Some("Opaque".into()),
        ..Default::default()
    };
    match api.create(&PostParams::default(), &secret).await {
        Ok(_) => Ok(fresh),
        Err(kube::Error::Api(e)) if e.code == 409 => key_of(&api.get(name).await.map_err(failed)?, namespace, name),
        Err(e) => Err(failed(e)),
    }
}

/// The key in Secret `namespace/name`, if it exists; never made (the audit only reads).
pub async fn load(client: kube::Client, namespace: &str, name: &str) -> Result<Option<IdentityKey>, KeyError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let failed = |source| KeyError::Kube {
        secret: format!("{namespace}/{name}"),
        verbs: "read",
        grant: "get on that Secret, to tell the operator's identity annotations from forged ones".into(),
        source: Box::new(source),
    };
    match api.get_opt(name).await.map_err(failed)? {
        Some(secret) => key_of(&secret, namespace, name).map(Some),
        None => Ok(None),
    }
}

fn key_of(secret: &Secret, namespace: &str, name: &str) -> Result<IdentityKey, KeyError> {
    let key = secret
        .data
        .as_ref()
        .and_then(|d| d.get(KEY_FIELD))
        .ok_or(KeyError::NoKeyField(format!("{namespace}/{name}")))?;
    IdentityKey::new(key.0.clone())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::identity::{ACCOUNT_ID, ALLOCATION_TOKEN, CREDENTIALS_SOURCE, SEGMENT_ID};

    fn identity() -> Identity {
        Identity {
            segment_id: Some("eipsg-1".into()),
            account_id: Some("111".into()),
            allocation_token: Some("alloc-u1".into()),
            ..Default::default()
        }
    }

    fn annotated(identity: &Identity, proof: Option<String>) -> BTreeMap<String, String> {
        let mut map: BTreeMap<String, String> =
            identity.annotations().into_iter().filter_map(|(k, v)| Some((k.to_string(), v?.to_string()))).collect();
        map.extend(proof.map(|p| (PROOF.to_string(), p)));
        map
    }

    #[test]
    fn a_proof_holds_for_its_object_only() {
        let key = IdentityKey::generate();
        let proof = key.proof("team-a", "web", &identity());
        let map = annotated(&identity(), Some(proof));
        assert_eq!(key.read("team-a", "web", &map, None), Proven { identity: identity(), unproven: vec![] });
        // Copied to another name or namespace, or checked with another key: nothing is proven.
        for (ns, name, key) in
            [("team-b", "web", &key), ("team-a", "api", &key), ("team-a", "web", &IdentityKey::generate())]
        {
            let read = key.read(ns, name, &map, None);
            assert_eq!(read.identity, Identity::default());
            assert_eq!(read.unproven, [SEGMENT_ID, ACCOUNT_ID, ALLOCATION_TOKEN]);
        }
    }

    #[test]
    fn an_edited_or_added_annotation_is_not_proven() {
        let key = IdentityKey::generate();
        let mut map = annotated(&identity(), Some(key.proof("ns", "web", &identity())));
        map.insert(CREDENTIALS_SOURCE.into(), "Operator".into());
        let read = key.read("ns", "web", &map, None);
        assert_eq!((read.identity, read.unproven), (identity(), vec![CREDENTIALS_SOURCE.to_string()]));
        map.insert(SEGMENT_ID.into(), "eipsg-victim".into());
        let read = key.read("ns", "web", &map, None);
        assert_eq!(read.identity, Identity::default(), "a covered value edited: the proof proves nothing");
    }

    #[test]
    fn what_status_records_is_the_operators_own() {
        let key = IdentityKey::generate();
        let status = EipSegmentStatus { segment_instance_id: Some("eipsg-1".into()), ..Default::default() };
        let map = annotated(&identity(), None);
        let read = key.read("ns", "web", &map, Some(&status));
        assert_eq!(read.identity.segment_id.as_deref(), Some("eipsg-1"));
        assert_eq!(read.unproven, [ACCOUNT_ID, ALLOCATION_TOKEN]);
    }

    #[test]
    fn malformed_proofs_prove_nothing() {
        let key = IdentityKey::generate();
        for proof in [
            "",
            "v1",
            "v1::",
            "v2:segment-id:AAAA",
            "v1:segment-id:%%%",
            "v1:owner:AAAA",
            "v1:segment-id,release-token:AAAA",
        ] {
            let read = key.read("ns", "web", &annotated(&identity(), Some(proof.into())), None);
            assert_eq!(read.identity, Identity::default(), "{proof:?}");
        }
        assert!(IdentityKey::new(vec![0; 16]).is_err(), "short keys are refused");
    }
}
