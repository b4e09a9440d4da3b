//! What ties an object to its segment: the segment ID, the account it lives in, the credentials
//! source, and the ClientTokens actually used. Status holds them for people; annotations hold them
//! too, because backups and re-applied manifests keep metadata but not status, and the UID (from
//! which new tokens would derive) changes on a restore.

use std::collections::BTreeMap;
use std::fmt;

use eipsegment_api::EipSegmentStatus;

pub const SEGMENT_ID: &str = "eipsegment.io/segment-id";
pub const ACCOUNT_ID: &str = "eipsegment.io/account-id";
pub const CREDENTIALS_SOURCE: &str = "eipsegment.io/credentials-source";
pub const ALLOCATION_TOKEN: &str = "eipsegment.io/allocation-token";
pub const RELEASE_TOKEN: &str = "eipsegment.io/release-token";

/// The annotations the operator keeps, in the order it writes them.
pub const ANNOTATIONS: [&str; 5] = [SEGMENT_ID, ACCOUNT_ID, CREDENTIALS_SOURCE, ALLOCATION_TOKEN, RELEASE_TOKEN];
/// The operator's proof that it wrote the others (an HMAC under a key it keeps): without it, an
/// annotation counts only where status records the same.
pub const PROOF: &str = "eipsegment.io/identity-proof";

/// ClientTokens derive from the object's UID, never its name: a recreated object gets new ones.
pub fn allocation_token(uid: &str) -> String {
    format!("alloc-{uid}")
}

pub fn release_token(uid: &str) -> String {
    format!("release-{uid}")
}

/// The identity as the annotations hold it; every field optional.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub struct Identity {
    pub segment_id: Option<String>,
    pub account_id: Option<String>,
    pub credentials_source: Option<String>,
    pub allocation_token: Option<String>,
    pub release_token: Option<String>,
}

impl Identity {
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Identity {
        let get = |key: &str| annotations.get(key).map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        Identity {
            segment_id: get(SEGMENT_ID),
            account_id: get(ACCOUNT_ID),
            credentials_source: get(CREDENTIALS_SOURCE),
            allocation_token: get(ALLOCATION_TOKEN),
            release_token: get(RELEASE_TOKEN),
        }
    }

    /// Each annotation with its value (None: absent).
    pub fn annotations(&self) -> [(&'static str, Option<&str>); 5] {
        [
            (SEGMENT_ID, self.segment_id.as_deref()),
            (ACCOUNT_ID, self.account_id.as_deref()),
            (CREDENTIALS_SOURCE, self.credentials_source.as_deref()),
            (ALLOCATION_TOKEN, self.allocation_token.as_deref()),
            (RELEASE_TOKEN, self.release_token.as_deref()),
        ]
    }

    /// Sets the part `annotation` names (one of [`ANNOTATIONS`]).
    pub fn set(&mut self, annotation: &str, value: &str) {
        let field = match annotation {
            SEGMENT_ID => &mut self.segment_id,
            ACCOUNT_ID => &mut self.account_id,
            CREDENTIALS_SOURCE => &mut self.credentials_source,
            ALLOCATION_TOKEN => &mut self.allocation_token,
            RELEASE_TOKEN => &mut self.release_token,
            _ => return,
        };
        *field = Some(value.to_string());
    }

    pub fn is_empty(&self) -> bool {
        self.annotations().iter().all(|(_, value)| value.is_none())
    }

    /// The identity status records.
    pub fn of_status(status: &EipSegmentStatus) -> Identity {
        Identity {
            segment_id: status.segment_instance_id.clone(),
            account_id: status.account_id.clone(),
            credentials_source: status.credentials_source.clone(),
            allocation_token: status.allocation_token.clone(),
            release_token: status.release_token.clone(),
        }
    }

    /// This identity, with each part it lacks taken from `other`.
    pub fn or(self, other: &Identity) -> Identity {
        Identity {
            segment_id: self.segment_id.or_else(|| other.segment_id.clone()),
            account_id: self.account_id.or_else(|| other.account_id.clone()),
            credentials_source: self.credentials_source.or_else(|| other.credentials_source.clone()),
            allocation_token: self.allocation_token.or_else(|| other.allocation_token.clone()),
            release_token: self.release_token.or_else(|| other.release_token.clone()),
        }
    }
}

/// Fills what status lacks from the annotations: status is the operator's own record and wins
/// where both speak; annotations speak for a restored object. Returns whether they supplied the
/// segment or the allocation token, i.e. whether this is a restored identity.
pub fn restore_into(status: &mut EipSegmentStatus, annotations: &Identity) -> bool {
    let restored = (status.segment_instance_id.is_none() && annotations.segment_id.is_some())
        || (status.allocation_token.is_none() && annotations.allocation_token.is_some());
    let fill = |field: &mut Option<String>, value: &Option<String>| {
        if field.is_none() {
            field.clone_from(value);
        }
    };
    fill(&mut status.segment_instance_id, &annotations.segment_id);
    fill(&mut status.account_id, &annotations.account_id);
    fill(&mut status.credentials_source, &annotations.credentials_source);
    fill(&mut status.allocation_token, &annotations.allocation_token);
    fill(&mut status.release_token, &annotations.release_token);
    restored
}

/// Where an object's credentials come from.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Source {
    /// The operator's own (environment, RRSA).
    Operator,
    /// A Secret in the object's namespace.
    Secret(String),
}

impl Source {
    pub fn parse(value: &str) -> Option<Source> {
        match value.split_once('/') {
            None if value == "Operator" => Some(Source::Operator),
            Some(("Secret", name)) if !name.is_empty() => Some(Source::Secret(name.to_string())),
            _ => None,
        }
    }

    pub fn secret(&self) -> Option<&str> {
        match self {
            Source::Secret(name) => Some(name),
            Source::Operator => None,
        }
    }
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Operator => f.write_str("Operator"),
            Source::Secret(name) => write!(f, "Secret/{name}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_round_trip() {
        for s in [Source::Operator, Source::Secret("team-keys".into())] {
            assert_eq!(Source::parse(&s.to_string()), Some(s));
        }
        assert_eq!(Source::parse("Secret/"), None);
        assert_eq!(Source::parse("operator"), None);
    }

    #[test]
    fn status_wins_and_annotations_restore() {
        let annotations = Identity {
            segment_id: Some("eipsg-old".into()),
            account_id: Some("111".into()),
            credentials_source: Some("Operator".into()),
            allocation_token: Some("alloc-old-uid".into()),
            release_token: None,
        };
        let mut restored = EipSegmentStatus::default();
        assert!(restore_into(&mut restored, &annotations));
        assert_eq!(Identity::of_status(&restored), annotations);

        let mut recorded = EipSegmentStatus {
            segment_instance_id: Some("eipsg-own".into()),
            allocation_token: Some("alloc-own".into()),
            ..Default::default()
        };
        restore_into(&mut recorded, &annotations);
        assert_eq!(recorded.segment_instance_id.as_deref(), Some("eipsg-own"), "status wins");
        assert_eq!(recorded.allocation_token.as_deref(), Some("alloc-own"));
        assert_eq!(recorded.account_id.as_deref(), Some("111"), "what status lacks is filled");

        let mut fresh = EipSegmentStatus::default();
        assert!(!restore_into(&mut fresh, &Identity::default()));
    }

    #[test]
    fn blank_annotations_are_absent() {
        let map =
            BTreeMap::from([(SEGMENT_ID.to_string(), " ".to_string()), (ACCOUNT_ID.to_string(), "42".to_string())]);
        let id = Identity::from_annotations(&map);
        assert_eq!((id.segment_id, id.account_id.as_deref()), (None, Some("42")));
    }
}
