//! The platform's tenancy policy: per namespace (by name or label selector), whether it may use
//! the operator's own credentials, allocate (and how large a segment), adopt, and let an adoption
//! release its segment. Read from a file (`--tenancy-policy`, the chart renders it from values);
//! the lifecycle asks it as an [`Allowance`] before anything new is taken on.
//!
//! ```yaml
//! profile: shared            # single-team (everything allowed) or shared (the safe defaults)
//! default: {adopt: false}    # namespaces no rule matches: the profile, with these changes
//! rules:                     # the first rule that matches a namespace decides
//!   - name: platform
//!     namespaces: [platform-network]
//!     namespaceSelector: {matchLabels: {eipsegment.io/tier: platform}}
//!     operatorCredentials: true
//!     minEipMask: 24
//!     adopt: true
//! ```

use std::collections::BTreeMap;
use std::path::Path;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::core::{Selector, SelectorExt};
use serde::Deserialize;

use crate::lifecycle::Allowance;

/// Every field a rule can set; unset ones come from `default`, then from the profile.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Grant {
    pub operator_credentials: Option<bool>,
    pub allocate: Option<bool>,
    pub min_eip_mask: Option<u8>,
    pub adopt: Option<bool>,
    pub adopt_with_delete: Option<bool>,
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum Profile {
    /// One team owns the cluster: every namespace may do everything, as without a policy.
    #[default]
    SingleTeam,
    /// Many teams: a namespace brings its own credentials, allocates at most a /28, adopts nothing.
    Shared,
}

#[derive(Clone, Debug, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct RuleFile {
    name: String,
    #[serde(default)]
    namespaces: Vec<String>,
    namespace_selector: Option<LabelSelector>,
    operator_credentials: Option<bool>,
    allocate: Option<bool>,
    min_eip_mask: Option<u8>,
    adopt: Option<bool>,
    adopt_with_delete: Option<bool>,
}

#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct PolicyFile {
    #[serde(default)]
    profile: Profile,
    #[serde(default)]
    default: Grant,
    #[serde(default)]
    rules: Vec<RuleFile>,
}

struct Rule {
    name: String,
    namespaces: Vec<String>,
    selector: Option<Selector>,
    grant: Grant,
}

/// The policy in force.
#[derive(Default)]
pub struct Tenancy {
    base: Allowance,
    rules: Vec<Rule>,
}

#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    #[error("cannot read the tenancy policy {0}")]
    Read(String, #[source] std::io::Error),
    #[error("the tenancy policy {0} is not valid")]
    Parse(String, #[source] serde_yaml::Error),
    #[error("tenancy rule {0:?}: {1}")]
    Rule(String, String),
}

impl Tenancy {
    pub fn from_file(path: &Path) -> Result<Tenancy, PolicyError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| PolicyError::Read(shown.clone(), e))?;
        Tenancy::parse(&text).map_err(|e| match e {
            PolicyError::Parse(_, e) => PolicyError::Parse(shown, e),
            other => other,
        })
    }

    pub fn parse(text: &str) -> Result<Tenancy, PolicyError> {
        let file: PolicyFile = serde_yaml::from_str(text).map_err(|e| PolicyError::Parse(String::new(), e))?;
        let base = grant(&profile(file.profile), &file.default, "default");
        let rules = file.rules.into_iter().map(rule).collect::<Result<_, _>>()?;
        Ok(Tenancy { base, rules })
    }

    /// Whether any rule matches by labels (then the operator watches Namespaces).
    pub fn needs_labels(&self) -> bool {
        self.rules.iter().any(|r| r.selector.is_some())
    }

    /// What `namespace` may do; `labels` are its labels, when known (a rule by selector does not
    /// match a namespace whose labels are unknown).
    pub fn allowance(&self, namespace: &str, labels: Option<&BTreeMap<String, String>>) -> Allowance {
        let matches = |r: &&Rule| {
            r.namespaces.iter().any(|n| n == namespace)
                || r.selector.as_ref().is_some_and(|s| labels.is_some_and(|l| s.matches(l)))
        };
        match self.rules.iter().find(matches) {
            Some(r) => grant(&self.base, &r.grant, &r.name),
            None => self.base.clone(),
        }
    }
}

fn profile(profile: Profile) -> Allowance {
    match profile {
        Profile::SingleTeam => Allowance::default(),
        Profile::Shared => Allowance {
            rule: "default".into(),
            operator_credentials: false,
            allocate: true,
            min_eip_mask: 28,
            adopt: false,
            adopt_with_delete: false,
        },
    }
}

fn grant(base: &Allowance, g: &Grant, name: &str) -> Allowance {
    Allowance {
        rule: name.to_string(),
        operator_credentials: g.operator_credentials.unwrap_or(base.operator_credentials),
        allocate: g.allocate.unwrap_or(base.allocate),
        min_eip_mask: g.min_eip_mask.unwrap_or(base.min_eip_mask),
        adopt: g.adopt.unwrap_or(base.adopt),
        adopt_with_delete: g.adopt_with_delete.unwrap_or(base.adopt_with_delete),
    }
}

fn rule(file: RuleFile) -> Result<Rule, PolicyError> {
    let invalid = |why: &str| PolicyError::Rule(file.name.clone(), why.to_string());
    if file.namespaces.is_empty() && file.namespace_selector.is_none() {
        return Err(invalid("names no namespaces and has no namespaceSelector: it would match nothing"));
    }
    let selector = match file.namespace_selector.clone() {
        Some(s) => Some(Selector::try_from(s).map_err(|e| invalid(&e.to_string()))?),
        None => None,
    };
    let grant = Grant {
        operator_credentials: file.operator_credentials,
        allocate: file.allocate,
        min_eip_mask: file.min_eip_mask,
        adopt: file.adopt,
        adopt_with_delete: file.adopt_with_delete,
    };
    Ok(Rule { name: file.name, namespaces: file.namespaces, selector, grant })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHARED: &str = r#"
profile: shared
default: {minEipMask: 27}
rules:
  - name: platform
    namespaces: [platform]
    operatorCredentials: true
    minEipMask: 24
    adopt: true
    adoptWithDelete: true
  - name: labelled
    namespaceSelector: {matchLabels: {tier: trusted}}
    adopt: true
"#;

    #[test]
    fn the_first_matching_rule_decides_and_the_rest_comes_from_the_default() {
        let t = Tenancy::parse(SHARED).unwrap();
        let platform = t.allowance("platform", None);
        assert_eq!(
            (platform.rule.as_str(), platform.operator_credentials, platform.min_eip_mask),
            ("platform", true, 24)
        );
        let trusted = BTreeMap::from([("tier".to_string(), "trusted".to_string())]);
        let labelled = t.allowance("team-b", Some(&trusted));
        assert_eq!((labelled.rule.as_str(), labelled.adopt, labelled.adopt_with_delete), ("labelled", true, false));
        assert_eq!(labelled.min_eip_mask, 27, "unset: the default's");
        let other = t.allowance("team-c", None);
        assert_eq!((other.rule.as_str(), other.operator_credentials, other.adopt), ("default", false, false));
        assert_eq!(t.allowance("team-b", None).rule, "default", "unknown labels match no selector");
        assert!(t.needs_labels());
    }

    #[test]
    fn without_a_policy_everything_is_allowed() {
        let t = Tenancy::parse("{}").unwrap();
        assert_eq!(t.allowance("any", None), Allowance::default());
        assert!(!t.needs_labels());
    }

    #[test]
    fn a_mistyped_or_empty_rule_is_refused() {
        assert!(Tenancy::parse("rules: [{name: x, namespaces: [a], alocate: false}]").is_err(), "unknown field");
        assert!(matches!(Tenancy::parse("rules: [{name: x, allocate: false}]"), Err(PolicyError::Rule(..))));
        assert!(Tenancy::parse("profile: open").is_err());
    }
}
