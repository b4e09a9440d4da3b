//! The Helm chart, checked with the real tools: helm lint, helm template into a server-side dry run
//! on the real apiserver (the monitoring objects against the Prometheus Operator's own CRDs),
//! least-privilege RBAC in every mode, the tuning flags, disruption budget, spread, NetworkPolicy,
//! PrometheusRule and dashboard ConfigMap each values mode renders, deploy/ rendered from it, an
//! install of the rendering that runs the operator with the chart's own arguments and identity, and
//! the per-namespace rendering alone carrying the operator through a namespace deletion. The tenancy
//! policy from the values, read by the operator's own parser; on the real apiserver, the rights for
//! people aggregated into Kubernetes' own roles, and the admission policies refusing the operator's
//! annotations and status to people and what the tenancy policy forbids. The alerts' behaviour and
//! the dashboard's schema are checked in tests/monitoring.rs.

use eipsegment_test_support as support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use clap::Parser;
use eipsegment_operator::cli::{Cli, Command as CliCommand, RunArgs};
use eipsegment_operator::controller::guard::FINALIZER as GUARD_FINALIZER;
use eipsegment_operator::lifecycle::Allowance;
use eipsegment_operator::lifecycle::identity::{ACCOUNT_ID, PROOF, SEGMENT_ID};
use eipsegment_operator::quota::Quota;
use eipsegment_operator::tenancy::Tenancy;
use serde_yaml::Value;
use support::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/eipsegment-operator");

fn helm() -> String {
    tool("build-helm.sh")
}

/// `helm template` with `--set` pairs; Err carries helm's message.
fn template(sets: &[&str]) -> Result<String, String> {
    template_release("eipsegment-operator", RELEASE_NS, sets)
}

fn template_release(release: &str, namespace: &str, sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm());
    cmd.args(["template", release, CHART, "--namespace", namespace]).args(set_args(sets));
    let out = cmd.output().unwrap();
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into())
    }
}

/// The placeholder image, allowed: the suite renders the chart as a local test does (the chart
/// refuses it otherwise; a later `image.allowPlaceholder=false` wins).
const LOCAL_IMAGE: &str = "image.allowPlaceholder=true";

/// helm's value arguments: `--set` pairs, or `--set-json` for those written `json:PATH=JSON` (numbers
/// with a fraction, lists of objects: `--set` would make them strings or flat lists), after
/// [`LOCAL_IMAGE`].
fn set_args(sets: &[&str]) -> Vec<String> {
    std::iter::once(&LOCAL_IMAGE)
        .chain(sets)
        .flat_map(|s| match s.strip_prefix("json:") {
            Some(json) => ["--set-json".to_string(), json.to_string()],
            None => ["--set".to_string(), s.to_string()],
        })
        .collect()
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml).map(|d| Value::deserialize(d).unwrap()).filter(|v| !v.is_null()).collect()
}

use serde::Deserialize;

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// A string list of the rendering (apiGroups, verbs, ...); absent is empty.
fn strings(v: &Value) -> Vec<String> {
    match v {
        Value::Null => Vec::new(),
        Value::Sequence(items) => items.iter().map(|i| i.as_str().expect("a string").to_string()).collect(),
        other => panic!("not a list of strings: {other:?}"),
    }
}

fn is_role(d: &Value) -> bool {
    d["kind"] == "Role" || d["kind"] == "ClusterRole"
}

/// A ClusterRole that Kubernetes aggregates into its built-in view, edit or admin.
fn is_for_people(d: &Value) -> bool {
    d["kind"] == "ClusterRole"
        && d["metadata"]["labels"]
            .as_mapping()
            .is_some_and(|l| l.keys().any(|k| k.as_str().is_some_and(|k| k.starts_with(AGGREGATE_TO))))
}

const AGGREGATE_TO: &str = "rbac.authorization.k8s.io/aggregate-to-";

fn is_binding(d: &Value) -> bool {
    d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding"
}

/// What a rule may say. Anything else (nonResourceURLs, a misspelt resourceNames, which the
/// apiserver would drop, widening the rule) fails the check.
const RULE_KEYS: &[&str] = &["apiGroups", "resources", "verbs", "resourceNames"];

/// The rules of a Role or ClusterRole.
fn rules_of(role: &Value) -> &[Value] {
    let rules = role["rules"].as_sequence().unwrap_or_else(|| panic!("a role without rules: {role:?}"));
    for rule in rules {
        for key in rule.as_mapping().unwrap().keys() {
            assert!(RULE_KEYS.contains(&key.as_str().unwrap()), "rule key {key:?} in {rule:?}");
        }
    }
    rules
}

/// The Role (in the binding's namespace) or ClusterRole of this rendering that a binding refers to.
fn bound_role<'a>(docs: &'a [Value], binding: &Value) -> Option<&'a Value> {
    let kind = binding["roleRef"]["kind"].as_str()?;
    let namespace = if kind == "Role" { binding["metadata"]["namespace"].clone() } else { Value::Null };
    docs.iter().find(|d| {
        d["kind"] == kind
            && d["metadata"]["name"] == binding["roleRef"]["name"]
            && d["metadata"]["namespace"] == namespace
    })
}

/// One right: (scope, apiGroup, resource, verb, resourceNames). The scope is the namespace of the
/// RoleBinding that grants it, or "*" for a ClusterRoleBinding; no resourceNames is every name.
type Grant = (String, String, String, String, Vec<String>);

/// Every right the rendering's bindings grant, where they grant it: a Role or ClusterRole grants
/// nothing by itself.
fn grants(docs: &[Value]) -> Vec<Grant> {
    let mut out = Vec::new();
    for binding in docs.iter().filter(|d| is_binding(d)) {
        let scope = match binding["kind"].as_str() {
            Some("RoleBinding") => binding["metadata"]["namespace"].as_str().unwrap().to_string(),
            _ => "*".to_string(),
        };
        let role = bound_role(docs, binding).unwrap_or_else(|| panic!("{binding:?} refers to no rendered role"));
        for rule in rules_of(role) {
            let mut names = strings(&rule["resourceNames"]);
            names.sort();
            for g in strings(&rule["apiGroups"]) {
                for r in strings(&rule["resources"]) {
                    for v in strings(&rule["verbs"]) {
                        out.push((scope.clone(), g.clone(), r.clone(), v, names.clone()));
                    }
                }
            }
        }
    }
    out
}

fn args(docs: &[Value]) -> Vec<String> {
    let deployment = of_kind(docs, "Deployment")[0];
    deployment["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_string())
        .collect()
}

/// The values modes the chart supports. Each is linted, has its RBAC checked exactly, and goes
/// through a server-side dry run (the monitoring objects once the Prometheus Operator's CRDs are in).
const MODES: &[(&str, &[&str])] = &[
    ("default", &[]),
    ("namespaced", &["watchNamespaces={team-a,team-b}"]),
    ("one namespace", &["watchNamespaces={team-a}"]),
    ("leader election off", &["leaderElection.enabled=false", "replicaCount=1"]),
    ("secret references", &["credentials.secretReferences.enabled=true"]),
    (
        "secret references, namespaced",
        &["watchNamespaces={team-a,team-b}", "credentials.secretReferences.enabled=true"],
    ),
    (
        "rrsa",
        &[
            "rrsa.enabled=true",
            "rrsa.roleName=eipsegment-operator",
            "stsEndpoint=https://sts-vpc.cn-hangzhou.aliyuncs.com",
        ],
    ),
    (
        "credentials secret",
        &["credentials.secretName=alibaba-keys", "vpcEndpoint=https://vpc-vpc.cn-hangzhou.aliyuncs.com"],
    ),
    ("tuning", ALL_TUNING),
    (
        "own affinity and spread",
        &[
            r#"json:affinity={"nodeAffinity":{"requiredDuringSchedulingIgnoredDuringExecution":{"nodeSelectorTerms":[{"matchExpressions":[{"key":"node-role.example.com/platform","operator":"Exists"}]}]}}}"#,
            r#"json:topologySpreadConstraints=[{"maxSkew":1,"topologyKey":"kubernetes.io/hostname","whenUnsatisfiable":"DoNotSchedule","labelSelector":{"matchLabels":{"app.kubernetes.io/name":"eipsegment-operator"}}}]"#,
        ],
    ),
    ("no budget, no spread", &["podDisruptionBudget.enabled=false", "spread.enabled=false"]),
    ("budget in percent", &["podDisruptionBudget.maxUnavailable=50%"]),
    ("network policy, from anywhere", &["networkPolicy.enabled=true"]),
    ("network policy, from Prometheus", &["networkPolicy.enabled=true", METRICS_FROM]),
    (
        "monitoring",
        &[
            "metrics.serviceMonitor.enabled=true",
            "prometheusRule.enabled=true",
            "prometheusRule.labels.release=prometheus",
            "prometheusRule.runbookUrl=https://git.example.com/platform/eipsegment-operator/blob/main/deploy/RUNBOOK.md",
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.annotations.grafana_folder=Operators",
        ],
    ),
    ("shared tenancy", &["tenancy.profile=shared", r#"json:tenancy.default={"minEipMask":27}"#, RULES_BY_NAME]),
    ("tenancy by label, namespaced", &["watchNamespaces={team-a,team-b}", RULES_BY_LABEL]),
    (
        "admission policies off, identity writers",
        &[
            "tenancy.admissionPolicy.enabled=false",
            "tenancy.identityWriters.users={velero}",
            "identityKey.secretName=k",
        ],
    ),
];

/// Every tuning value set, as `--set-json` (fractions stay numbers), with the flag each becomes.
const TUNING: &[(&str, &str, &str)] = &[
    ("pollSeconds", "0.5", "--poll-seconds"),
    ("resyncSeconds", "1200", "--resync-seconds"),
    ("transientRetrySeconds", "2", "--transient-retry-seconds"),
    ("transientRetryMaxSeconds", "60", "--transient-retry-max-seconds"),
    ("blockedRetrySeconds", "45", "--blocked-retry-seconds"),
    ("terminalRetrySeconds", "300", "--terminal-retry-seconds"),
    ("callTimeoutSeconds", "7.5", "--call-timeout-seconds"),
    ("tokenMemorySeconds", "900", "--token-memory-seconds"),
];

/// Every quota value set, with the flag each becomes.
const QUOTAS: &[(&str, &str, &str)] = &[
    ("releaseQuota", "30/60", "--release-quota"),
    ("allocateQuota", "120/60", "--allocate-quota"),
    ("describeQuota", "15/1", "--describe-quota"),
    ("describeAddressesQuota", "5/0.5", "--describe-addresses-quota"),
];

const ALL_TUNING: &[&str] = &[
    "json:tuning.pollSeconds=0.5",
    "json:tuning.resyncSeconds=1200",
    "json:tuning.transientRetrySeconds=2",
    "json:tuning.transientRetryMaxSeconds=60",
    "json:tuning.blockedRetrySeconds=45",
    "json:tuning.terminalRetrySeconds=300",
    "json:tuning.callTimeoutSeconds=7.5",
    "json:tuning.tokenMemorySeconds=900",
    "tuning.releaseQuota=30/60",
    "tuning.allocateQuota=120/60",
    "tuning.describeQuota=15/1",
    "tuning.describeAddressesQuota=5/0.5",
];

/// A tenancy rule by namespace name, and one by label (the operator then watches Namespaces).
const RULES_BY_NAME: &str = r#"json:tenancy.rules=[{"name":"platform","namespaces":["platform-network"],"operatorCredentials":true,"minEipMask":24}]"#;
const RULES_BY_LABEL: &str = r#"json:tenancy.rules=[{"name":"trusted","namespaceSelector":{"matchLabels":{"eipsegment.io/tier":"trusted"},"matchExpressions":[{"key":"env","operator":"NotIn","values":["prod"]}]},"adopt":true}]"#;

/// Scrapes only from Prometheus' pods in the monitoring namespace.
const METRICS_FROM: &str = r#"json:networkPolicy.metricsFrom=[{"namespaceSelector":{"matchLabels":{"kubernetes.io/metadata.name":"monitoring"}},"podSelector":{"matchLabels":{"app.kubernetes.io/name":"prometheus"}}}]"#;

const RELEASE_NS: &str = "eipsegment-system";
/// The Secret of the identity key (the chart's default identityKey.secretName).
const KEY_SECRET: &str = "eipsegment-identity-key";

fn grant(scope: &str, group: &str, resource: &str, verbs: &[&str]) -> Vec<Grant> {
    named_grant(scope, group, resource, &[], verbs)
}

fn named_grant(scope: &str, group: &str, resource: &str, names: &[&str], verbs: &[&str]) -> Vec<Grant> {
    let names: Vec<String> = names.iter().map(|n| n.to_string()).collect();
    verbs
        .iter()
        .map(|v| (scope.to_string(), group.to_string(), resource.to_string(), v.to_string(), names.clone()))
        .collect()
}

/// What the operator needs on its own objects and events, in one scope ("*": cluster-wide).
fn operator_grants(scope: &str) -> Vec<Grant> {
    [
        grant(scope, "eipsegment.io", "eipsegments", &["get", "list", "watch", "patch"]),
        grant(scope, "eipsegment.io", "eipsegments/status", &["get", "patch"]),
        grant(scope, "eipsegment.io", "eipsegments/finalizers", &["update"]),
        grant(scope, "events.k8s.io", "events", &["create", "patch"]),
    ]
    .concat()
}

/// The Lease of release `release` in `ns`: kube-lease-manager's verbs, and a watch of it alone.
fn release_lease_grants(ns: &str, release: &str) -> Vec<Grant> {
    [
        grant(ns, "coordination.k8s.io", "leases", &["get", "create", "patch"]),
        named_grant(ns, "coordination.k8s.io", "leases", &[release], &["list", "watch"]),
    ]
    .concat()
}

fn lease_grants() -> Vec<Grant> {
    release_lease_grants(RELEASE_NS, "eipsegment-operator")
}

/// The identity key in the release namespace `ns`: read its Secret, and create it when absent.
fn release_key_grants(ns: &str) -> Vec<Grant> {
    [named_grant(ns, "", "secrets", &[KEY_SECRET], &["get"]), grant(ns, "", "secrets", &["create"])].concat()
}

fn key_grants() -> Vec<Grant> {
    release_key_grants(RELEASE_NS)
}

/// A tenancy rule matches namespaces by label: the operator watches them.
fn namespace_grants() -> Vec<Grant> {
    grant("*", "", "namespaces", &["get", "list", "watch"])
}

/// Read a credentials Secret, and hold it with a finalizer while a segment depends on it.
fn secret_grants(scope: &str) -> Vec<Grant> {
    grant(scope, "", "secrets", &["get", "patch"])
}

/// Per-namespace mode: the RoleBinding the operator guards, and no other.
fn guard_grants(scope: &str, binding: &str) -> Vec<Grant> {
    named_grant(scope, "rbac.authorization.k8s.io", "rolebindings", &[binding], &["get", "patch"])
}

fn sorted(mut v: Vec<Grant>) -> Vec<Grant> {
    v.sort();
    v
}

fn pod_spec(docs: &[Value]) -> &Value {
    &of_kind(docs, "Deployment")[0]["spec"]["template"]["spec"]
}

fn container(docs: &[Value]) -> &Value {
    &pod_spec(docs)["containers"][0]
}

fn has_arg(docs: &[Value], want: &str) -> bool {
    args(docs).iter().any(|a| a == want)
}

fn has_arg_prefix(docs: &[Value], prefix: &str) -> bool {
    args(docs).iter().any(|a| a.starts_with(prefix))
}

#[test]
fn helm_lint_is_clean_in_every_mode() {
    for (mode, sets) in MODES {
        let mut cmd = Command::new(helm());
        cmd.args(["lint", "--strict", CHART, "--namespace", RELEASE_NS]).args(set_args(sets));
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{mode}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn default_rendering_is_hardened_and_highly_available() {
    let docs = documents(&template(&[]).unwrap());
    let deployment = of_kind(&docs, "Deployment")[0];
    let pod = pod_spec(&docs);
    let container = container(&docs);
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["serviceAccountName"], "eipsegment-operator");
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().is_some_and(|s| s >= 30),
        "{:?}",
        pod["terminationGracePeriodSeconds"]
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 65532);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["image"], "eipsegment-operator:0.1.0", "tag defaults to the appVersion");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"], serde_yaml::from_str::<Value>("[ALL]").unwrap());
    for (kind, what) in [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")] {
        assert!(container["resources"][kind][what].is_string(), "resources.{kind}.{what}");
    }
    // Probes on the metrics port, which --metrics-addr binds.
    assert_eq!(container["ports"][0]["name"], "metrics");
    assert_eq!(container["ports"][0]["containerPort"], 8080);
    assert!(has_arg(&docs, "--metrics-addr=0.0.0.0:8080"));
    for (probe, path) in [("livenessProbe", "/healthz"), ("readinessProbe", "/readyz")] {
        assert_eq!(container[probe]["httpGet"]["path"], path);
        assert_eq!(container[probe]["httpGet"]["port"], "metrics");
    }
    // The pod's name and namespace from the downward API (the Lease holder identity and namespace).
    let env = container["env"].as_sequence().unwrap();
    for (name, field) in [("POD_NAME", "metadata.name"), ("POD_NAMESPACE", "metadata.namespace")] {
        assert!(
            env.iter().any(|e| e["name"] == name && e["valueFrom"]["fieldRef"]["fieldPath"] == field),
            "{name} missing: {env:?}"
        );
    }
    assert!(container["envFrom"].is_null(), "no credentials Secret by default");
    for want in [
        "run",
        "--log-format=json",
        "--leader-elect",
        "--lease-name=eipsegment-operator",
        "--lease-namespace=eipsegment-system",
    ] {
        assert!(has_arg(&docs, want), "{:?} lacks {want}", args(&docs));
    }
    for absent in [
        "--namespace",
        "--rbac-guard-rolebinding",
        "--vpc-endpoint",
        "--sts-endpoint",
        "--secret-credentials",
        "--allow-insecure-endpoint",
    ] {
        assert!(!has_arg_prefix(&docs, absent), "{:?} has {absent}", args(&docs));
    }
    // The metrics Service reaches the pods' metrics port; no ServiceMonitor unless asked for.
    let service = of_kind(&docs, "Service")[0];
    let pod_labels = deployment["spec"]["template"]["metadata"]["labels"].as_mapping().unwrap();
    for (k, v) in service["spec"]["selector"].as_mapping().unwrap() {
        assert_eq!(pod_labels.get(k), Some(v), "Service selector {k:?} does not select the pods");
    }
    assert_eq!(service["spec"]["ports"][0]["targetPort"], "metrics");
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
    assert!(of_kind(&docs, "CustomResourceDefinition").is_empty(), "the CRD ships in crds/, not templates/");
}

/// The namespaces a values mode serves (empty: every namespace).
fn watched(sets: &[&str]) -> Vec<String> {
    sets.iter()
        .find_map(|s| s.strip_prefix("watchNamespaces={")?.strip_suffix('}'))
        .map(|list| list.split(',').map(String::from).collect())
        .unwrap_or_default()
}

/// (kind, namespace, name) of every RBAC object of the rendering, sorted.
fn rbac_objects(docs: &[Value]) -> Vec<(String, String, String)> {
    let mut out: Vec<_> = docs
        .iter()
        .filter(|d| is_role(d) || is_binding(d))
        .map(|d| {
            let field = |v: &Value| v.as_str().unwrap_or("").to_string();
            (field(&d["kind"]), field(&d["metadata"]["namespace"]), field(&d["metadata"]["name"]))
        })
        .collect();
    out.sort();
    out
}

/// What the chart renders for the release `eipsegment-operator` in eipsegment-system: cluster-wide,
/// a ClusterRole and its ClusterRoleBinding; per namespace, one ClusterRole bound by a RoleBinding in
/// each served namespace, and for tenancy rules by label, a ClusterRole for Namespaces and its
/// ClusterRoleBinding; the Lease's Role and RoleBinding with leader election; the identity key's
/// Role and RoleBinding; the view and edit ClusterRoles for people.
fn expected_rbac_objects(namespaces: &[String], leader_election: bool, labels: bool) -> Vec<(String, String, String)> {
    let o = |kind: &str, ns: &str, name: &str| (kind.to_string(), ns.to_string(), name.to_string());
    let mut out = if namespaces.is_empty() {
        vec![o("ClusterRole", "", "eipsegment-operator"), o("ClusterRoleBinding", "", "eipsegment-operator")]
    } else {
        let mut v = vec![o("ClusterRole", "", "eipsegment-operator-namespaced")];
        v.extend(namespaces.iter().map(|ns| o("RoleBinding", ns, "eipsegment-operator")));
        if labels {
            v.push(o("ClusterRole", "", "eipsegment-operator-namespaces"));
            v.push(o("ClusterRoleBinding", "", "eipsegment-operator-namespaces"));
        }
        v
    };
    if leader_election {
        out.push(o("Role", RELEASE_NS, "eipsegment-operator-leader-election"));
        out.push(o("RoleBinding", RELEASE_NS, "eipsegment-operator-leader-election"));
    }
    out.push(o("Role", RELEASE_NS, "eipsegment-operator-identity-key"));
    out.push(o("RoleBinding", RELEASE_NS, "eipsegment-operator-identity-key"));
    out.push(o("ClusterRole", "", "eipsegment-operator-view"));
    out.push(o("ClusterRole", "", "eipsegment-operator-edit"));
    out.sort();
    out
}

/// The value of the one `--rbac-guard-rolebinding` argument, if any.
fn guard_flag(docs: &[Value]) -> Option<String> {
    let values: Vec<String> =
        args(docs).iter().filter_map(|a| a.strip_prefix("--rbac-guard-rolebinding=")).map(String::from).collect();
    assert!(values.len() <= 1, "more than one --rbac-guard-rolebinding: {values:?}");
    assert!(!args(docs).iter().any(|a| a == "--rbac-guard-rolebinding"), "the flag without = form: {:?}", args(docs));
    values.into_iter().next()
}

/// What must hold of every rendering, whatever the values: checked on each rule of each role, bound
/// or not.
/// - No wildcard anywhere.
/// - Secrets: `get` and `patch` at most (never list, watch, update or delete); besides, in a Role of
///   the release namespace, `get` on the identity key's Secret alone (--identity-key-secret) and
///   `create` (which cannot be limited to a name).
/// - RBAC objects: only `get` and `patch` on rolebindings, and only on the RoleBinding that
///   --rbac-guard-rolebinding names.
/// - Per-namespace mode (--namespace given): the operator runs with --rbac-guard-rolebinding naming
///   the RoleBinding of every served namespace, and each of those carries exactly the guard's
///   finalizer; cluster-wide, no such flag and no such RoleBinding. Nothing else has finalizers.
/// - The operator's own parser takes the arguments, with the same namespaces and guard.
fn check_rbac_invariants(mode: &str, docs: &[Value]) {
    let guard = guard_flag(docs);
    let release_ns = &of_kind(docs, "Deployment")[0]["metadata"]["namespace"];
    let key_secret = args(docs).iter().find_map(|a| a.strip_prefix("--identity-key-secret=").map(String::from));
    let key_secret = key_secret.expect("--identity-key-secret");
    let namespaces: Vec<String> = args(docs)
        .iter()
        .find_map(|a| a.strip_prefix("--namespace="))
        .map(|l| l.split(',').map(String::from).collect())
        .unwrap_or_default();
    for role in docs.iter().filter(|d| is_role(d)) {
        let name = &role["metadata"]["name"];
        for rule in rules_of(role) {
            let (groups, resources, verbs, names) = (
                strings(&rule["apiGroups"]),
                strings(&rule["resources"]),
                strings(&rule["verbs"]),
                strings(&rule["resourceNames"]),
            );
            for list in [&groups, &resources, &verbs, &names] {
                assert!(!list.iter().any(|x| x.contains('*')), "{mode}: a wildcard in {name:?}: {rule:?}");
            }
            let secrets = groups.iter().any(|g| g.is_empty())
                && resources.iter().any(|r| r == "secrets" || r.starts_with("secrets/"));
            let in_release_namespace = role["kind"] == "Role" && role["metadata"]["namespace"] == *release_ns;
            if secrets && in_release_namespace {
                let key = verbs == ["get"] && names == [key_secret.as_str()];
                assert!(key || (verbs == ["create"] && names.is_empty()), "{mode}: {rule:?} in {name:?}");
            } else if secrets {
                for verb in &verbs {
                    assert!(["get", "patch"].contains(&verb.as_str()), "{mode}: {verb} on Secrets in {name:?}");
                }
            }
            if groups.iter().any(|g| g == "rbac.authorization.k8s.io") {
                assert_eq!(groups, ["rbac.authorization.k8s.io"], "{mode}: {name:?}");
                assert_eq!(resources, ["rolebindings"], "{mode}: only rolebindings, in {name:?}");
                for verb in &verbs {
                    assert!(["get", "patch"].contains(&verb.as_str()), "{mode}: {verb} on rolebindings in {name:?}");
                }
                assert!(!names.is_empty(), "{mode}: rolebindings without resourceNames in {name:?}");
                assert_eq!(
                    Some(names),
                    guard.clone().map(|g| vec![g]),
                    "{mode}: rolebindings other than the guarded one"
                );
            }
        }
    }
    let guarded: Vec<&Value> =
        docs.iter().filter(|d| d["kind"] == "RoleBinding" && d["roleRef"]["kind"] == "ClusterRole").collect();
    let mut guarded_namespaces: Vec<String> =
        guarded.iter().map(|b| b["metadata"]["namespace"].as_str().unwrap().to_string()).collect();
    guarded_namespaces.sort();
    let mut served = namespaces.clone();
    served.sort();
    assert_eq!(guarded_namespaces, served, "{mode}: one guarded RoleBinding per served namespace");
    assert_eq!(guard.is_some(), !namespaces.is_empty(), "{mode}: --rbac-guard-rolebinding only per namespace");
    for binding in &guarded {
        assert_eq!(binding["metadata"]["name"].as_str(), guard.as_deref(), "{mode}: the guard names {binding:?}");
        assert_eq!(strings(&binding["metadata"]["finalizers"]), [GUARD_FINALIZER], "{mode}: {binding:?}");
    }
    for d in docs.iter().filter(|d| !guarded.contains(d)) {
        assert!(d["metadata"]["finalizers"].is_null(), "{mode}: finalizers on {:?}", d["metadata"]);
    }
    let argv = std::iter::once("eipsegment-operator".to_string()).chain(args(docs));
    let parsed =
        Cli::try_parse_from(argv).unwrap_or_else(|e| panic!("{mode}: the operator refuses {:?}: {e}", args(docs)));
    let CliCommand::Run(run) = parsed.command else { panic!("{mode}: not `run`") };
    let RunArgs { namespaces: parsed_namespaces, rbac_guard_rolebinding, .. } = run;
    assert_eq!((parsed_namespaces, rbac_guard_rolebinding), (namespaces, guard), "{mode}: as the operator reads them");
}

/// Per namespace, in team-a and team-b: the operator's rights, the guard's, and `extra`.
fn namespaced_grants(extra: fn(&str) -> Vec<Grant>) -> Vec<Grant> {
    ["team-a", "team-b"]
        .iter()
        .flat_map(|ns| [operator_grants(ns), guard_grants(ns, "eipsegment-operator"), extra(ns)].concat())
        .collect()
}

fn no_grants(_: &str) -> Vec<Grant> {
    Vec::new()
}

/// Each values mode with exactly the rights its rendering must grant.
fn rbac_cases() -> Vec<(&'static str, &'static [&'static str], Vec<Grant>)> {
    vec![
        ("default", &[], [operator_grants("*"), lease_grants()].concat()),
        ("namespaced", &["watchNamespaces={team-a,team-b}"], [namespaced_grants(no_grants), lease_grants()].concat()),
        (
            "one namespace",
            &["watchNamespaces={team-a}"],
            [operator_grants("team-a"), guard_grants("team-a", "eipsegment-operator"), lease_grants()].concat(),
        ),
        ("leader election off", &["leaderElection.enabled=false"], operator_grants("*")),
        (
            "secret references",
            &["credentials.secretReferences.enabled=true"],
            [operator_grants("*"), secret_grants("*"), lease_grants()].concat(),
        ),
        (
            "secret references, namespaced",
            &["watchNamespaces={team-a,team-b}", "credentials.secretReferences.enabled=true"],
            [namespaced_grants(secret_grants), lease_grants()].concat(),
        ),
        (
            "secret references, namespaced, no leader election",
            &[
                "watchNamespaces={team-a,team-b}",
                "credentials.secretReferences.enabled=true",
                "leaderElection.enabled=false",
            ],
            namespaced_grants(secret_grants),
        ),
        (
            "the release namespace served too",
            &["watchNamespaces={eipsegment-system,team-a}"],
            [
                operator_grants(RELEASE_NS),
                guard_grants(RELEASE_NS, "eipsegment-operator"),
                operator_grants("team-a"),
                guard_grants("team-a", "eipsegment-operator"),
                lease_grants(),
            ]
            .concat(),
        ),
        ("rrsa", &["rrsa.enabled=true", "rrsa.roleName=r"], [operator_grants("*"), lease_grants()].concat()),
        ("credentials secret", &["credentials.secretName=k"], [operator_grants("*"), lease_grants()].concat()),
        ("tenancy rules by name", &[RULES_BY_NAME], [operator_grants("*"), lease_grants()].concat()),
        (
            "tenancy rules by label",
            &[RULES_BY_LABEL],
            [operator_grants("*"), namespace_grants(), lease_grants()].concat(),
        ),
        (
            "tenancy rules by label, namespaced",
            &["watchNamespaces={team-a,team-b}", RULES_BY_LABEL],
            [namespaced_grants(no_grants), namespace_grants(), lease_grants()].concat(),
        ),
    ]
}

/// Every binding names a role of this rendering (a Role in its own namespace), for the release's
/// ServiceAccount (eipsegment-system/eipsegment-operator, the identity the test control plane
/// uses); every role is bound, but those for people, which Kubernetes aggregates into its own.
fn check_bindings_are_for_the_release(mode: &str, docs: &[Value]) {
    let sa = of_kind(docs, "ServiceAccount")[0];
    assert_eq!(
        (sa["metadata"]["namespace"].as_str(), sa["metadata"]["name"].as_str()),
        (Some(RELEASE_NS), Some("eipsegment-operator"))
    );
    for binding in docs.iter().filter(|d| is_binding(d)) {
        if binding["kind"] == "ClusterRoleBinding" {
            assert_eq!(binding["roleRef"]["kind"], "ClusterRole", "{mode}");
        }
        assert!(bound_role(docs, binding).is_some(), "{mode}: {binding:?} refers to no rendered role");
        let subjects = binding["subjects"].as_sequence().unwrap();
        assert_eq!(subjects.len(), 1, "{mode}");
        assert_eq!(
            (subjects[0]["kind"].as_str(), subjects[0]["name"].as_str(), subjects[0]["namespace"].as_str()),
            (Some("ServiceAccount"), Some("eipsegment-operator"), Some(RELEASE_NS)),
            "{mode}"
        );
    }
    for role in docs.iter().filter(|d| is_role(d) && !is_for_people(d)) {
        assert!(
            docs.iter().filter(|d| is_binding(d)).any(|b| bound_role(docs, b) == Some(role)),
            "{mode}: {:?} is bound nowhere",
            role["metadata"]["name"]
        );
    }
}

#[test]
fn rbac_is_exactly_what_each_mode_needs() {
    for (mode, sets, want) in rbac_cases() {
        let docs = documents(&template(sets).unwrap());
        // Every mode: the identity key in the release namespace.
        assert_eq!(sorted(grants(&docs)), sorted([want, key_grants()].concat()), "{mode}: granted rights");
        let leader_election = !sets.contains(&"leaderElection.enabled=false");
        let labels = sets.contains(&RULES_BY_LABEL);
        let want_objects = expected_rbac_objects(&watched(sets), leader_election, labels);
        assert_eq!(rbac_objects(&docs), want_objects, "{mode}: RBAC objects");
        check_rbac_invariants(mode, &docs);
        check_bindings_are_for_the_release(mode, &docs);
    }
    for (mode, sets) in MODES {
        check_rbac_invariants(mode, &documents(&template(sets).unwrap()));
    }
}

/// The guard's flag, the RoleBindings it guards and the one rule that lets it patch them name the
/// same object, whatever the release is called.
#[test]
fn the_guard_flag_names_the_rolebindings_that_carry_its_finalizer() {
    let docs = documents(
        &template_release(
            "ops",
            "platform",
            &["watchNamespaces={team-a,team-b}", "credentials.secretReferences.enabled=true"],
        )
        .unwrap(),
    );
    check_rbac_invariants("release ops", &docs);
    assert_eq!(guard_flag(&docs).as_deref(), Some("ops-eipsegment-operator"));
    let mut bindings: Vec<(&str, &str)> = of_kind(&docs, "RoleBinding")
        .iter()
        .map(|b| (b["metadata"]["namespace"].as_str().unwrap(), b["metadata"]["name"].as_str().unwrap()))
        .collect();
    bindings.sort();
    assert_eq!(
        bindings,
        [
            ("platform", "ops-eipsegment-operator-identity-key"),
            ("platform", "ops-eipsegment-operator-leader-election"),
            ("team-a", "ops-eipsegment-operator"),
            ("team-b", "ops-eipsegment-operator"),
        ]
    );
    let want: Vec<Grant> = ["team-a", "team-b"]
        .iter()
        .flat_map(|ns| [operator_grants(ns), secret_grants(ns), guard_grants(ns, "ops-eipsegment-operator")].concat())
        .chain(release_lease_grants("platform", "ops-eipsegment-operator"))
        .chain(release_key_grants("platform"))
        .collect();
    assert_eq!(sorted(grants(&docs)), sorted(want));
    let role: Vec<&Value> = of_kind(&docs, "ClusterRole").into_iter().filter(|r| !is_for_people(r)).collect();
    assert_eq!(role.len(), 1);
    assert_eq!(role[0]["metadata"]["name"], "ops-eipsegment-operator-namespaced");
    // Cluster-wide, the guard has nothing to do: no flag, no finalizer, no rights on rolebindings.
    let docs = documents(&template_release("ops", "platform", &["credentials.secretReferences.enabled=true"]).unwrap());
    check_rbac_invariants("release ops, cluster-wide", &docs);
    assert_eq!(guard_flag(&docs), None);
    assert!(!grants(&docs).iter().any(|g| g.2 == "rolebindings"));
}

#[test]
fn arguments_follow_the_values() {
    // Per namespace: the namespaces, and the RoleBinding whose finalizer the operator guards.
    let docs = documents(&template(&["watchNamespaces={team-a,team-b}"]).unwrap());
    for want in ["--namespace=team-a,team-b", "--rbac-guard-rolebinding=eipsegment-operator"] {
        assert!(has_arg(&docs, want), "{:?} lacks {want}", args(&docs));
    }
    let docs = documents(&template(&["watchNamespaces={team-a}"]).unwrap());
    assert!(has_arg(&docs, "--namespace=team-a"), "{:?}", args(&docs));
    assert!(has_arg(&docs, "--rbac-guard-rolebinding=eipsegment-operator"), "{:?}", args(&docs));

    let docs = documents(&template(&["leaderElection.enabled=false", "replicaCount=1"]).unwrap());
    assert!(!has_arg_prefix(&docs, "--lease") && !has_arg(&docs, "--leader-elect"), "{:?}", args(&docs));
    assert!(docs.iter().all(|d| !d["metadata"]["name"].as_str().unwrap_or("").ends_with("leader-election")));

    let docs = documents(
        &template(&["leaderElection.leaseDurationSeconds=20", "leaderElection.leaseGraceSeconds=4"]).unwrap(),
    );
    assert!(
        has_arg(&docs, "--lease-duration-seconds=20") && has_arg(&docs, "--lease-grace-seconds=4"),
        "{:?}",
        args(&docs)
    );
    // The Lease lives in the release namespace, whatever it is.
    let out = Command::new(helm())
        .args(["template", "ops", CHART, "--namespace", "platform"])
        .args(set_args(&[]))
        .output()
        .unwrap();
    let docs = documents(&String::from_utf8(out.stdout).unwrap());
    assert!(
        has_arg(&docs, "--lease-namespace=platform") && has_arg(&docs, "--lease-name=ops-eipsegment-operator"),
        "{:?}",
        args(&docs)
    );
    let lease_role = docs.iter().find(|d| d["kind"] == "Role").unwrap();
    assert_eq!(lease_role["metadata"]["namespace"], "platform");

    let docs = documents(
        &template(&[
            "credentials.secretReferences.enabled=true",
            "credentials.secretReferences.namespaceDefaultSecret=alibaba",
        ])
        .unwrap(),
    );
    assert!(
        has_arg(&docs, "--secret-credentials") && has_arg(&docs, "--namespace-credentials-secret=alibaba"),
        "{:?}",
        args(&docs)
    );

    let docs = documents(
        &template(&[
            "vpcEndpoint=https://vpc-vpc.cn-hangzhou.aliyuncs.com",
            "stsEndpoint=https://sts-vpc.cn-hangzhou.aliyuncs.com",
            "logFormat=text",
            "metrics.port=9090",
            "extraArgs={--poll-seconds=5}",
        ])
        .unwrap(),
    );
    for want in [
        "--vpc-endpoint=https://vpc-vpc.cn-hangzhou.aliyuncs.com",
        "--sts-endpoint=https://sts-vpc.cn-hangzhou.aliyuncs.com",
        "--log-format=text",
        "--metrics-addr=0.0.0.0:9090",
        "--poll-seconds=5",
    ] {
        assert!(has_arg(&docs, want), "{:?} lacks {want}", args(&docs));
    }
    assert_eq!(container(&docs)["ports"][0]["containerPort"], 9090);
    assert_eq!(of_kind(&docs, "Service")[0]["spec"]["ports"][0]["port"], 9090);
}

#[test]
fn credentials_come_from_a_secret_or_rrsa() {
    // RRSA: the ServiceAccount carries the role for ACK's pod-identity webhook, next to other annotations.
    let docs = documents(
        &template(&[
            "rrsa.enabled=true",
            "rrsa.roleName=eipsegment-operator",
            "serviceAccount.annotations.team=platform",
        ])
        .unwrap(),
    );
    let annotations = &of_kind(&docs, "ServiceAccount")[0]["metadata"]["annotations"];
    assert_eq!(annotations["pod-identity.alibabacloud.com/role-name"], "eipsegment-operator");
    assert_eq!(annotations["team"], "platform");
    assert!(container(&docs)["envFrom"].is_null());
    let err = template(&["rrsa.enabled=true"]).unwrap_err();
    assert!(err.contains("rrsa.roleName is required"), "{err}");
    // Without RRSA, no pod-identity annotation.
    let docs = documents(&template(&["rrsa.roleName=ignored"]).unwrap());
    assert!(of_kind(&docs, "ServiceAccount")[0]["metadata"]["annotations"].is_null());

    // An AccessKey Secret as environment.
    let docs = documents(&template(&["credentials.secretName=alibaba-keys"]).unwrap());
    assert_eq!(container(&docs)["envFrom"][0]["secretRef"]["name"], "alibaba-keys");
    // Both at once would silently prefer the AccessKey: refused.
    let err = template(&["credentials.secretName=k", "rrsa.enabled=true", "rrsa.roleName=r"]).unwrap_err();
    assert!(err.contains("either credentials.secretName or rrsa.enabled"), "{err}");

    // A ServiceAccount made elsewhere: it must be named.
    let err = template(&["serviceAccount.create=false"]).unwrap_err();
    assert!(err.contains("serviceAccount.name is required"), "{err}");
    let docs = documents(&template(&["serviceAccount.create=false", "serviceAccount.name=existing"]).unwrap());
    assert!(of_kind(&docs, "ServiceAccount").is_empty());
    assert_eq!(pod_spec(&docs)["serviceAccountName"], "existing");
    assert_eq!(of_kind(&docs, "ClusterRoleBinding")[0]["subjects"][0]["name"], "existing");
}

#[test]
fn the_service_monitor_scrapes_the_metrics_service() {
    let docs = documents(
        &template(&["metrics.serviceMonitor.enabled=true", "metrics.serviceMonitor.labels.release=prometheus"])
            .unwrap(),
    );
    let monitor = of_kind(&docs, "ServiceMonitor")[0];
    let service = of_kind(&docs, "Service")[0];
    assert_eq!(monitor["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(monitor["metadata"]["labels"]["release"], "prometheus");
    let service_labels = service["metadata"]["labels"].as_mapping().unwrap();
    for (k, v) in monitor["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(service_labels.get(k), Some(v), "ServiceMonitor selector {k:?} does not select the Service");
    }
    assert_eq!(monitor["spec"]["endpoints"][0]["port"], service["spec"]["ports"][0]["name"]);
}

/// The pods' own labels: what a selector of the chart must match.
fn pod_labels(docs: &[Value]) -> &serde_yaml::Mapping {
    of_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["labels"].as_mapping().unwrap()
}

fn selects_the_pods(docs: &[Value], match_labels: &Value) -> bool {
    let labels = pod_labels(docs);
    match_labels.as_mapping().is_some_and(|m| !m.is_empty() && m.iter().all(|(k, v)| labels.get(k) == Some(v)))
}

#[test]
fn a_disruption_budget_keeps_a_replica_through_voluntary_evictions() {
    let docs = documents(&template(&[]).unwrap());
    let budgets = of_kind(&docs, "PodDisruptionBudget");
    assert_eq!(budgets.len(), 1);
    let budget = budgets[0];
    assert_eq!(budget["apiVersion"], "policy/v1");
    assert_eq!(budget["metadata"]["namespace"], RELEASE_NS);
    assert_eq!(budget["spec"]["maxUnavailable"], 1);
    assert!(budget["spec"]["minAvailable"].is_null(), "maxUnavailable only: one replica must not block a drain");
    assert!(selects_the_pods(&docs, &budget["spec"]["selector"]["matchLabels"]), "{budget:?}");

    let docs = documents(&template(&["podDisruptionBudget.maxUnavailable=50%"]).unwrap());
    assert_eq!(of_kind(&docs, "PodDisruptionBudget")[0]["spec"]["maxUnavailable"], "50%");
    let docs = documents(&template(&["podDisruptionBudget.enabled=false"]).unwrap());
    assert!(of_kind(&docs, "PodDisruptionBudget").is_empty());
}

#[test]
fn replicas_spread_over_nodes_and_zones_unless_told_otherwise() {
    let docs = documents(&template(&[]).unwrap());
    let pod = pod_spec(&docs);
    // Preferences only, so that one node (or nodes without zones) still runs every replica.
    let anti = &pod["affinity"]["podAntiAffinity"];
    assert!(anti["requiredDuringSchedulingIgnoredDuringExecution"].is_null(), "{anti:?}");
    let preferred = anti["preferredDuringSchedulingIgnoredDuringExecution"].as_sequence().unwrap();
    assert_eq!(preferred.len(), 1);
    let term = &preferred[0]["podAffinityTerm"];
    assert_eq!(term["topologyKey"], "kubernetes.io/hostname");
    assert!(selects_the_pods(&docs, &term["labelSelector"]["matchLabels"]), "{term:?}");
    assert!(preferred[0]["weight"].as_u64().is_some_and(|w| (1..=100).contains(&w)));
    let constraints = pod["topologySpreadConstraints"].as_sequence().unwrap();
    assert_eq!(constraints.len(), 1);
    let zone = &constraints[0];
    assert_eq!(zone["topologyKey"], "topology.kubernetes.io/zone");
    assert_eq!(zone["whenUnsatisfiable"], "ScheduleAnyway");
    assert_eq!(zone["maxSkew"], 1);
    assert!(selects_the_pods(&docs, &zone["labelSelector"]["matchLabels"]), "{zone:?}");
    assert_eq!(strings(&zone["matchLabelKeys"]), ["pod-template-hash"]);
    assert_eq!(pod["affinity"].as_mapping().unwrap().len(), 1, "no other affinity by default");

    // An affinity of one's own replaces the default one; the zone spread stays, and the other way round.
    let own_affinity = MODES.iter().find(|(m, _)| *m == "own affinity and spread").unwrap().1;
    let docs = documents(&template(&own_affinity[..1]).unwrap());
    let pod = pod_spec(&docs);
    assert!(pod["affinity"]["podAntiAffinity"].is_null(), "{:?}", pod["affinity"]);
    assert_eq!(
        pod["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"][0]["matchExpressions"]
            [0]["key"],
        "node-role.example.com/platform"
    );
    assert_eq!(pod["topologySpreadConstraints"][0]["topologyKey"], "topology.kubernetes.io/zone");
    let docs = documents(&template(&own_affinity[1..]).unwrap());
    let pod = pod_spec(&docs);
    let constraints = pod["topologySpreadConstraints"].as_sequence().unwrap();
    assert_eq!(constraints.len(), 1);
    assert_eq!(constraints[0]["topologyKey"], "kubernetes.io/hostname");
    assert_eq!(constraints[0]["whenUnsatisfiable"], "DoNotSchedule");
    assert_eq!(pod["affinity"]["podAntiAffinity"]["preferredDuringSchedulingIgnoredDuringExecution"][0]["weight"], 100);

    let docs = documents(&template(&["spread.enabled=false"]).unwrap());
    let pod = pod_spec(&docs);
    assert!(pod["affinity"].is_null() && pod["topologySpreadConstraints"].is_null(), "{pod:?}");
}

/// Every tuning value with the flag it becomes: timings as numbers, quotas as strings.
fn all_tuning() -> impl Iterator<Item = &'static (&'static str, &'static str, &'static str)> {
    TUNING.iter().chain(QUOTAS)
}

/// The `run` flags of the rendering that tune timings and quotas.
fn tuning_flags(docs: &[Value]) -> Vec<String> {
    args(docs).into_iter().filter(|a| all_tuning().any(|(_, _, flag)| a.starts_with(&format!("{flag}=")))).collect()
}

#[test]
fn tuning_values_become_flags_exactly_when_set() {
    let as_set: Vec<String> = TUNING
        .iter()
        .map(|(key, value, _)| format!("json:tuning.{key}={value}"))
        .chain(QUOTAS.iter().map(|(key, value, _)| format!("tuning.{key}={value}")))
        .collect();
    assert_eq!(ALL_TUNING, as_set, "ALL_TUNING sets each value of TUNING and QUOTAS");
    // Unset: the binary's own defaults, no flag at all.
    assert_eq!(tuning_flags(&documents(&template(&[]).unwrap())), Vec::<String>::new());
    assert_eq!(tuning_flags(&documents(&template(&["json:tuning.pollSeconds=null"]).unwrap())), Vec::<String>::new());
    // Each alone renders its own flag only, with the value as given.
    for (set, (_, value, flag)) in as_set.iter().zip(all_tuning()) {
        assert_eq!(tuning_flags(&documents(&template(&[set]).unwrap())), [format!("{flag}={value}")], "{set}");
    }
    let docs = documents(&template(&["tuning.resyncSeconds=900"]).unwrap());
    assert_eq!(tuning_flags(&docs), ["--resync-seconds=900"], "an integer from --set");
    // All at once, as the operator's own parser reads them.
    let docs = documents(&template(ALL_TUNING).unwrap());
    let want: Vec<String> = all_tuning().map(|(_, value, flag)| format!("{flag}={value}")).collect();
    assert_eq!(tuning_flags(&docs), want);
    let argv = std::iter::once("eipsegment-operator".to_string()).chain(args(&docs));
    let CliCommand::Run(run) = Cli::try_parse_from(argv).unwrap().command else { panic!("not `run`") };
    let parsed = [
        run.poll_seconds,
        run.resync_seconds,
        run.transient_retry_seconds,
        run.transient_retry_max_seconds,
        run.blocked_retry_seconds,
        run.terminal_retry_seconds,
        run.cloud.call_timeout_seconds,
        run.token_memory_seconds,
    ];
    let given: Vec<f64> = TUNING.iter().map(|(_, value, _)| value.parse().unwrap()).collect();
    assert_eq!(parsed.to_vec(), given);
    let quotas = [run.release_quota, run.allocate_quota, run.describe_quota, run.describe_addresses_quota];
    let given: Vec<Quota> = QUOTAS.iter().map(|(_, value, _)| value.parse().unwrap()).collect();
    assert_eq!(quotas.to_vec(), given);
    assert!(has_arg(&docs, "--concurrency=16"), "concurrency stays a top-level value");
}

#[test]
fn the_network_policy_admits_only_the_metrics_port() {
    assert!(of_kind(&documents(&template(&[]).unwrap()), "NetworkPolicy").is_empty(), "off by default");
    let docs = documents(&template(&["networkPolicy.enabled=true", "metrics.port=9090"]).unwrap());
    let policies = of_kind(&docs, "NetworkPolicy");
    assert_eq!(policies.len(), 1);
    let spec = &policies[0]["spec"];
    assert_eq!(policies[0]["apiVersion"], "networking.k8s.io/v1");
    assert!(selects_the_pods(&docs, &spec["podSelector"]["matchLabels"]), "{spec:?}");
    assert_eq!(strings(&spec["policyTypes"]), ["Ingress"], "egress (apiserver, cloud endpoints) is left alone");
    assert!(spec["egress"].is_null());
    let ingress = spec["ingress"].as_sequence().unwrap();
    assert_eq!(ingress.len(), 1);
    assert_eq!(ingress[0]["ports"], serde_yaml::from_str::<Value>("[{port: 9090, protocol: TCP}]").unwrap());
    assert_eq!(container(&docs)["ports"][0]["containerPort"], 9090, "the port the pods listen on");
    assert!(ingress[0]["from"].is_null(), "no peers given: from anywhere");

    let docs = documents(&template(&["networkPolicy.enabled=true", METRICS_FROM]).unwrap());
    let from = &of_kind(&docs, "NetworkPolicy")[0]["spec"]["ingress"][0]["from"];
    let want: serde_json::Value = serde_json::from_str(METRICS_FROM.split_once('=').unwrap().1).unwrap();
    assert_eq!(serde_json::to_value(from).unwrap(), want);
}

/// The alerts of the contract: name, expression with the default thresholds (and the default
/// release's job), `for`, and the section of deploy/RUNBOOK.md and its anchor (EipSegmentNotReady's:
/// its Ready reason's, as Prometheus renders them; tests/monitoring.rs checks both resolve).
const ALERTS: &[(&str, &str, Option<&str>, &str, &str)] = &[
    (
        "EipSegmentDeletionBlocked",
        "max by (region) (eipsegment_oldest_pending_deletion_seconds) > 1800",
        None,
        "Deletion blocked",
        "deletion-blocked",
    ),
    (
        "EipSegmentTerminalErrors",
        r#"sum by (region) (eipsegment_objects_synced{class="Terminal"}) > 0"#,
        Some("10m"),
        "Terminal errors",
        "terminal-errors",
    ),
    (
        "EipSegmentCloudThrottling",
        "sum by (action) (rate(eipsegment_cloud_throttled_total[5m])) > 0.05",
        Some("15m"),
        "Throttling",
        "throttling",
    ),
    (
        "EipSegmentUnownedSegments",
        "sum by (region) (eipsegment_unowned_segments) > 0",
        Some("1h"),
        "Unowned segments",
        "unowned-segments",
    ),
    (
        "EipSegmentNoLeader",
        r#"max(eipsegment_leader{job="eipsegment-operator-metrics"}) < 1"#,
        Some("5m"),
        "No leader",
        "no-leader",
    ),
    (
        "EipSegmentOperatorDown",
        r#"absent(up{job="eipsegment-operator-metrics"} == 1)"#,
        Some("5m"),
        "Operator down",
        "operator-down",
    ),
    (
        "EipSegmentNotReady",
        r#"sum by (region, reason) (eipsegment_objects{ready!="True", reason!~"None|AllocationQueued|Releasing|ReleaseQueued|Released|ReleaseBlocked|ReleaseFailed|SegmentMissing"}) > 0"#,
        Some("1h"),
        r#"{{ if eq $labels.reason "CloudStatus" }}Not ready{{ else }}{{ $labels.reason }}{{ end }}"#,
        r#"{{ if eq $labels.reason "CloudStatus" }}not-ready{{ else }}{{ $labels.reason | toLower }}{{ end }}"#,
    ),
    (
        "EipSegmentBlocked",
        r#"sum by (region) (eipsegment_objects_synced{class="Blocked"}) - (sum by (region) (eipsegment_objects{reason="ReleaseBlocked"}) or sum by (region) (eipsegment_objects_synced{class="Blocked"}) * 0) > 0"#,
        Some("15m"),
        "Blocked",
        "blocked",
    ),
    (
        "EipSegmentSegmentMissing",
        r#"sum by (region) (eipsegment_objects{reason="SegmentMissing"}) > 0"#,
        Some("5m"),
        "Segment missing",
        "segment-missing",
    ),
];

/// The alerting rules of a rendering, by alert name.
fn alert_rules(docs: &[Value]) -> Vec<&Value> {
    let rule = of_kind(docs, "PrometheusRule");
    assert_eq!(rule.len(), 1);
    let groups = rule[0]["spec"]["groups"].as_sequence().unwrap();
    groups.iter().flat_map(|g| g["rules"].as_sequence().unwrap()).collect()
}

#[test]
fn the_prometheus_rule_carries_the_contracts_alerts_with_their_runbook() {
    assert!(of_kind(&documents(&template(&[]).unwrap()), "PrometheusRule").is_empty(), "opt-in");
    let docs =
        documents(&template(&["prometheusRule.enabled=true", "prometheusRule.labels.release=prometheus"]).unwrap());
    let prometheus_rule = of_kind(&docs, "PrometheusRule")[0];
    assert_eq!(prometheus_rule["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(prometheus_rule["metadata"]["labels"]["release"], "prometheus");
    assert_eq!(prometheus_rule["metadata"]["namespace"], RELEASE_NS);
    let rules = alert_rules(&docs);
    let names: Vec<&str> = rules.iter().map(|r| r["alert"].as_str().unwrap()).collect();
    assert_eq!(names, ALERTS.iter().map(|a| a.0).collect::<Vec<_>>());
    for (rule, (name, expr, for_, section, _)) in rules.iter().zip(ALERTS) {
        let one_line = rule["expr"].as_str().unwrap().split_whitespace().collect::<Vec<_>>().join(" ");
        assert_eq!(one_line, *expr, "{name}");
        assert_eq!(rule["for"].as_str(), *for_, "{name}");
        assert!(["warning", "critical"].contains(&rule["labels"]["severity"].as_str().unwrap_or("")), "{name}");
        let summary = rule["annotations"]["summary"].as_str().unwrap();
        let description = rule["annotations"]["description"].as_str().unwrap();
        assert!(summary.len() > 20 && !summary.contains('\n'), "{name}: {summary:?}");
        // What it means and what to do first, then where the runbook says more.
        assert!(description.contains("First "), "{name}: no first step in {description:?}");
        assert!(
            description.ends_with(&format!("Runbook: deploy/RUNBOOK.md, section \"{section}\".")),
            "{name}: {description:?}"
        );
        assert!(rule["annotations"]["runbook_url"].is_null(), "{name}: no runbookUrl, no runbook_url");
    }
    // The job the alerts select is the one Prometheus gives the ServiceMonitor's targets: the
    // metrics Service's name, whatever the release is called.
    let docs = documents(
        &template_release("ops", "platform", &["prometheusRule.enabled=true", "metrics.serviceMonitor.enabled=true"])
            .unwrap(),
    );
    let service = of_kind(&docs, "Service")[0]["metadata"]["name"].as_str().unwrap().to_string();
    assert_eq!(service, "ops-eipsegment-operator-metrics");
    assert!(of_kind(&docs, "ServiceMonitor")[0]["spec"]["jobLabel"].is_null(), "the job stays the Service's name");
    for rule in alert_rules(&docs).iter().filter(|r| r["expr"].as_str().unwrap().contains("job=")) {
        assert!(rule["expr"].as_str().unwrap().contains(&format!("job=\"{service}\"")), "{rule:?}");
    }
    // Thresholds and durations from the values; runbook_url with the section's anchor.
    let url = "https://git.example.com/platform/eipsegment-operator/blob/main/deploy/RUNBOOK.md";
    let docs = documents(
        &template(&[
            "prometheusRule.enabled=true",
            "prometheusRule.deletionBlockedSeconds=600",
            "prometheusRule.terminalFor=30m",
            "json:prometheusRule.throttledPerSecond=0.5",
            "prometheusRule.unownedFor=6h",
            "prometheusRule.notReadyFor=3h",
            "prometheusRule.blockedFor=45m",
            &format!("prometheusRule.runbookUrl={url}"),
        ])
        .unwrap(),
    );
    let rules = alert_rules(&docs);
    let by_name = |name: &str| *rules.iter().find(|r| r["alert"] == name).unwrap();
    assert!(by_name("EipSegmentDeletionBlocked")["expr"].as_str().unwrap().ends_with("> 600"));
    assert_eq!(by_name("EipSegmentTerminalErrors")["for"], "30m");
    assert!(by_name("EipSegmentCloudThrottling")["expr"].as_str().unwrap().ends_with("> 0.5"));
    assert_eq!(by_name("EipSegmentUnownedSegments")["for"], "6h");
    assert_eq!(by_name("EipSegmentNotReady")["for"], "3h");
    assert_eq!(by_name("EipSegmentBlocked")["for"], "45m");
    for (name, _, _, _, anchor) in ALERTS {
        assert_eq!(by_name(name)["annotations"]["runbook_url"], format!("{url}#{anchor}").as_str(), "{name}");
    }
}

/// The ConfigMaps of the rendering but the tenancy policy's.
fn dashboards(docs: &[Value]) -> Vec<&Value> {
    of_kind(docs, "ConfigMap").into_iter().filter(|m| m["metadata"]["name"] != "eipsegment-operator-tenancy").collect()
}

#[test]
fn the_dashboard_config_map_holds_the_charts_dashboard() {
    assert!(dashboards(&documents(&template(&[]).unwrap())).is_empty(), "opt-in");
    let docs = documents(&template(&["grafanaDashboard.enabled=true"]).unwrap());
    let maps = dashboards(&docs);
    assert_eq!(maps.len(), 1);
    assert_eq!(maps[0]["metadata"]["labels"]["grafana_dashboard"], "1", "the Grafana chart's sidecar label");
    assert!(maps[0]["metadata"]["annotations"].is_null());
    let data = maps[0]["data"].as_mapping().unwrap();
    assert_eq!(data.len(), 1);
    let file = std::fs::read_to_string(Path::new(CHART).join("dashboards/eipsegment-operator.json")).unwrap();
    assert_eq!(data.get("eipsegment-operator.json").and_then(Value::as_str), Some(file.as_str()), "the file as is");

    let docs = documents(
        &template(&[
            "grafanaDashboard.enabled=true",
            "grafanaDashboard.labels.dashboards=platform",
            "grafanaDashboard.annotations.grafana_folder=Operators",
        ])
        .unwrap(),
    );
    let metadata = &dashboards(&docs)[0]["metadata"];
    assert_eq!(metadata["labels"]["dashboards"], "platform");
    assert_eq!(metadata["labels"]["grafana_dashboard"], "1", "the default label stays unless replaced");
    assert_eq!(metadata["annotations"]["grafana_folder"], "Operators");
}

#[test]
fn invalid_values_are_refused_by_the_schema() {
    for (set, path) in [
        ("logFormat=xml", "/logFormat"),
        ("replicaCount=0", "/replicaCount"),
        ("surprise=1", "'surprise'"),
        ("leaderElection.enable=false", "'enable'"), // a typo is not silently ignored
        ("rrsa.rolename=r", "'rolename'"),
        ("vpcEndpoint=http://plain", "/vpcEndpoint"),
        ("stsEndpoint=http://plain", "/stsEndpoint"),
        ("stsEndpoint=sts.aliyuncs.com", "/stsEndpoint"),
        ("watchNamespaces={Not_A_Namespace}", "/watchNamespaces"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("image.repository=", "/image/repository"),
        ("metrics.port=70000", "/metrics/port"),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
        // Tuning: a positive number or null, nothing else.
        ("tuning.pollSeconds=0", "/tuning/pollSeconds"),
        ("tuning.resyncSeconds=-600", "/tuning/resyncSeconds"),
        ("json:tuning.callTimeoutSeconds=-0.5", "/tuning/callTimeoutSeconds"),
        ("tuning.releaseQuota=fast", "/tuning/releaseQuota"),
        ("tuning.releaseQuota=0/60", "/tuning/releaseQuota"),
        ("tuning.describeQuota=20/0", "/tuning/describeQuota"),
        ("tuning.describeQuota=20/0.0", "/tuning/describeQuota"),
        ("json:tuning.allocateQuota=60", "/tuning/allocateQuota"),
        ("tuning.describeAddressesQuota=10", "/tuning/describeAddressesQuota"),
        ("tuning.pollSecond=1", "'pollSecond'"),
        ("tuning.concurrency=4", "'concurrency'"),
        ("podDisruptionBudget.maxUnavailable=0", "/podDisruptionBudget/maxUnavailable"),
        ("podDisruptionBudget.maxUnavailable=half", "/podDisruptionBudget/maxUnavailable"),
        ("spread.enable=false", "'enable'"),
        ("json:topologySpreadConstraints={}", "/topologySpreadConstraints"),
        (r#"json:networkPolicy.metricsFrom=[{"podSelektor":{}}]"#, "'podSelektor'"),
        ("json:networkPolicy.metricsFrom=[{}]", "/networkPolicy/metricsFrom/0"),
        ("prometheusRule.terminalFor=ten", "/prometheusRule/terminalFor"),
        ("prometheusRule.deletionBlockedSeconds=0", "/prometheusRule/deletionBlockedSeconds"),
        ("prometheusRule.runbookUrl=deploy/RUNBOOK.md", "/prometheusRule/runbookUrl"),
        ("prometheusRule.runbookUrl=https://x.example/RUNBOOK.md#not-ready", "/prometheusRule/runbookUrl"),
        ("grafanaDashboard.label.a=b", "'label'"),
        // Tenancy: the operator refuses an unknown field of its policy file, so the schema does.
        ("tenancy.profile=open", "/tenancy/profile"),
        (r#"json:tenancy.rules=[{"name":"x","namespaces":["a"],"alocate":false}]"#, "'alocate'"),
        (r#"json:tenancy.rules=[{"namespaces":["a"]}]"#, "missing property 'name'"),
        (r#"json:tenancy.default={"minEipMask":23}"#, "/tenancy/default/minEipMask"),
        (r#"json:tenancy.default={"adopt":"yes"}"#, "/tenancy/default/adopt"),
        (
            r#"json:tenancy.rules=[{"name":"x","namespaceSelector":{"matchExpressions":[{"key":"a","operator":"Equals"}]}}]"#,
            "/tenancy/rules/0/namespaceSelector/matchExpressions/0/operator",
        ),
        ("tenancy.admissionPolicy.enable=false", "'enable'"),
        ("tenancy.identityWriters.group={x}", "'group'"),
        ("identityKey.secretName=Bad_Name", "/identityKey/secretName"),
        ("image.allowPlaceholder=yes", "/image/allowPlaceholder"),
        ("prometheusRule.notReadyFor=an hour", "/prometheusRule/notReadyFor"),
        ("prometheusRule.blockedFor=15", "/prometheusRule/blockedFor"),
    ] {
        let err = template(&[set]).expect_err(set);
        assert!(err.contains("values don't meet the specifications of the schema"), "{set}: {err}");
        assert!(err.contains(path), "{set}: the message should name {path}: {err}");
    }
}

/// The placeholder repository names no published image: the chart refuses it, saying what to set,
/// unless the values say it is a local test; a real repository needs no such value.
#[test]
fn the_placeholder_image_renders_only_for_a_local_test() {
    let err = template(&["image.allowPlaceholder=false"]).expect_err("the placeholder image rendered");
    for says in ["image.repository is the placeholder", "make image", "image.allowPlaceholder=true"] {
        assert!(err.contains(says), "the refusal should say {says:?}: {err}");
    }
    let image = |docs: &[Value]| container(docs)["image"].as_str().unwrap().to_string();
    let local = documents(&template(&[]).unwrap());
    assert_eq!(image(&local), "eipsegment-operator:0.1.0");
    let published =
        ["image.allowPlaceholder=false", "image.repository=registry.example.com/platform/eipsegment-operator"];
    let docs = documents(&template(&published).unwrap());
    assert_eq!(image(&docs), "registry.example.com/platform/eipsegment-operator:0.1.0");
}

/// Chart.yaml's kubeVersion is the supported range, 1.33 to 1.37, at both ends.
#[test]
fn the_chart_installs_only_on_supported_kubernetes_versions() {
    for (version, installs) in
        [("1.32.9", false), ("1.33.0", true), ("1.35.1", true), ("1.37.2", true), ("1.37.99", true), ("1.38.0", false)]
    {
        let out = Command::new(helm())
            .args(["template", "eipsegment-operator", CHART, "--kube-version", version])
            .args(set_args(&[]))
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.success(), installs, "Kubernetes {version}: {err}");
        if !installs {
            assert!(err.contains("is incompatible with Kubernetes"), "Kubernetes {version}: {err}");
        }
    }
}

const EXAMPLES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/examples");

/// `helm lint --strict` and `helm template` with one of deploy/examples/values-*.yaml alone, as a
/// reader would install it (no value of this suite's: the examples name a real registry).
fn render_example(file: &str) -> Vec<Value> {
    let values = format!("{EXAMPLES}/{file}");
    let out = Command::new(helm())
        .args(["lint", "--strict", CHART, "--namespace", RELEASE_NS, "-f", &values])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{file}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let out = Command::new(helm())
        .args(["template", "eipsegment-operator", CHART, "--namespace", RELEASE_NS, "-f", &values])
        .output()
        .unwrap();
    assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
    documents(&String::from_utf8(out.stdout).unwrap())
}

/// Each values example renders what it says, and the apiserver accepts every object of it.
#[test]
fn every_values_example_renders_what_it_says_and_passes_a_server_side_dry_run() {
    let c = dry_run_cluster();
    let mut files: Vec<String> = std::fs::read_dir(EXAMPLES)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().to_string())
        .filter(|f| f.starts_with("values-"))
        .collect();
    files.sort();
    assert_eq!(files, ["values-air-gapped.yaml", "values-per-namespace.yaml", "values-production.yaml"]);
    for file in &files {
        let docs = render_example(file);
        says_what_it_does(file, &docs);
        let yaml: String = docs.iter().map(|d| format!("---\n{}", serde_yaml::to_string(d).unwrap())).collect();
        let (ok, out, err) = c.kubectl_as(c.admin_kubeconfig(), &["apply", "--dry-run=server", "-f", "-"], Some(&yaml));
        assert!(ok, "{file}: {err}");
        assert_eq!(out.lines().count(), docs.len(), "{file}: every object went through:\n{out}");
    }
}

/// What each values example is for, in the rendering.
fn says_what_it_does(file: &str, docs: &[Value]) {
    assert!(!container(docs)["image"].as_str().unwrap().starts_with("eipsegment-operator:"), "{file}: a real registry");
    match file {
        "values-per-namespace.yaml" => {
            let bindings: Vec<&str> = of_kind(docs, "RoleBinding")
                .iter()
                .filter(|b| b["metadata"]["name"] == "eipsegment-operator")
                .map(|b| b["metadata"]["namespace"].as_str().unwrap())
                .collect();
            assert_eq!(bindings, ["team-a", "team-b"], "{file}");
            assert!(of_kind(docs, "ClusterRoleBinding").is_empty(), "{file}: nothing bound cluster-wide");
            assert!(has_arg(docs, "--secret-credentials"), "{file}: {:?}", args(docs));
        }
        "values-air-gapped.yaml" => {
            for want in [
                "--vpc-endpoint=https://vpc-vpc.cn-hangzhou.aliyuncs.com",
                "--sts-endpoint=https://sts-vpc.cn-hangzhou.aliyuncs.com",
            ] {
                assert!(has_arg(docs, want), "{file}: {want} in {:?}", args(docs));
            }
            assert_eq!(pod_spec(docs)["imagePullSecrets"][0]["name"], "internal-registry", "{file}");
        }
        "values-production.yaml" => {
            for kind in ["PodDisruptionBudget", "NetworkPolicy", "ServiceMonitor", "PrometheusRule"] {
                assert_eq!(of_kind(docs, kind).len(), 1, "{file}: {kind}");
            }
            let account = &of_kind(docs, "ServiceAccount")[0]["metadata"]["annotations"];
            assert_eq!(account["pod-identity.alibabacloud.com/role-name"], "eipsegment-operator", "{file}");
            let url = alert_rules(docs)[0]["annotations"]["runbook_url"].as_str().unwrap();
            assert!(url.contains("/deploy/RUNBOOK.md#"), "{file}: {url}");
        }
        other => panic!("{other}: say what it is for"),
    }
}

/// `make release`'s packaging (deploy/release.sh without the image build): the chart with the
/// release's version as its version, appVersion and image tag, the repository's chart untouched,
/// checksums that verify; a version that is not SemVer is refused.
#[test]
fn the_release_packages_the_chart_with_its_version_stamped() {
    let out = tempfile::tempdir().unwrap();
    let release = |version: &str| {
        Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/release.sh"))
            .args(["--skip-image", "--version", version, "--out", out.path().to_str().unwrap()])
            .env("HELM", helm())
            .output()
            .unwrap()
    };
    let refused = release("v1.2");
    assert!(!refused.status.success() && String::from_utf8_lossy(&refused.stderr).contains("not SemVer"));
    let made = release("1.2.3-rc.1");
    assert!(made.status.success(), "{}", String::from_utf8_lossy(&made.stderr));
    let package = out.path().join("eipsegment-operator-1.2.3-rc.1.tgz");
    let package = package.to_str().unwrap();
    let shown = Command::new(helm()).args(["show", "chart", package]).output().unwrap();
    let chart: Value = serde_yaml::from_slice(&shown.stdout).unwrap();
    let ours: Value = serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART}/Chart.yaml")).unwrap()).unwrap();
    assert_eq!((&chart["version"], &chart["appVersion"]), (&"1.2.3-rc.1".into(), &"1.2.3-rc.1".into()));
    assert_eq!(chart["kubeVersion"], ours["kubeVersion"]);
    assert_eq!(ours["version"], "0.1.0", "the repository's chart is left as it is");
    let repository = "image.repository=registry.example.com/platform/eipsegment-operator";
    let rendered = Command::new(helm()).args(["template", "r", package, "--set", repository]).output().unwrap();
    let docs = documents(&String::from_utf8(rendered.stdout).unwrap());
    assert_eq!(container(&docs)["image"], "registry.example.com/platform/eipsegment-operator:1.2.3-rc.1");
    let placeholder = Command::new(helm()).args(["template", "r", package]).output().unwrap();
    assert!(!placeholder.status.success(), "the packaged chart refuses the placeholder image too");
    let sums = Command::new("sha256sum").args(["-c", "SHA256SUMS"]).current_dir(out.path()).output().unwrap();
    assert!(sums.status.success() && String::from_utf8_lossy(&sums.stdout).contains(": OK"), "{sums:?}");
}

/// The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs (tests/tools/prometheus-operator-crds.sh),
/// applied once to the shared control plane and Established, so that the apiserver validates the
/// chart's monitoring objects against their schemas.
fn install_monitoring_crds(c: &Cluster) {
    static INSTALLED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
    INSTALLED.get_or_init(|| {
        let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/prometheus-operator-crds.sh"))
            .output()
            .expect("prometheus-operator-crds.sh");
        assert!(out.status.success(), "the Prometheus Operator's CRDs: {}", String::from_utf8_lossy(&out.stderr));
        let dir = Path::new(String::from_utf8(out.stdout).unwrap().trim()).to_path_buf();
        for kind in ["servicemonitors", "prometheusrules"] {
            let file = dir.join(format!("monitoring.coreos.com_{kind}.yaml"));
            // Server-side: the CRDs are too large for client-side apply's annotation.
            c.kubectl(&["apply", "--server-side", "-f", file.to_str().unwrap()]);
            c.kubectl(&[
                "wait",
                "--for=condition=Established",
                "--timeout=60s",
                &format!("crd/{kind}.monitoring.coreos.com"),
            ]);
        }
    });
}

/// The shared control plane, ready for server-side dry runs of any rendering: the monitoring CRDs
/// installed and the namespaces the per-namespace modes serve created.
fn dry_run_cluster() -> &'static Cluster {
    let c = Cluster::shared();
    install_monitoring_crds(c);
    for ns in ["team-a", "team-b"] {
        let _ = c.kubectl_as(c.admin_kubeconfig(), &["create", "namespace", ns], None);
    }
    c
}

#[test]
fn every_mode_passes_a_server_side_dry_run() {
    let c = dry_run_cluster();
    for (mode, sets) in MODES {
        let rendered = template(sets).unwrap();
        let (ok, out, err) =
            c.kubectl_as(c.admin_kubeconfig(), &["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
        assert!(ok, "{mode}: {err}");
        // "created" or, once another test installed the chart, "configured"/"unchanged".
        assert!(
            out.lines()
                .any(|l| l.starts_with("deployment.apps/eipsegment-operator ") && l.ends_with("(server dry run)")),
            "{mode}: {out}"
        );
        assert_eq!(out.lines().count(), documents(&rendered).len(), "{mode}: every object went through:\n{out}");
    }
    // The apiserver checks the monitoring objects against the CRDs' schemas: a mangled rule is refused.
    let mut rule = documents(&template(&["prometheusRule.enabled=true"]).unwrap())
        .into_iter()
        .find(|d| d["kind"] == "PrometheusRule")
        .unwrap();
    rule["spec"]["groups"][0]["rules"][1]["for"] = Value::from("ten minutes");
    let (ok, _, err) = c.kubectl_as(
        c.admin_kubeconfig(),
        &["apply", "--dry-run=server", "-f", "-"],
        Some(&serde_yaml::to_string(&rule).unwrap()),
    );
    assert!(!ok && err.contains("spec.groups[0].rules[1].for"), "a rule with `for: ten minutes` went through: {err}");
}

#[test]
fn deploy_rbac_is_the_identity_the_test_control_plane_uses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = std::fs::read_to_string(root.join("tests/controlplane/cluster.sh")).unwrap();
    let var = |name: &str| {
        script
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}=")))
            .map(|v| v.split_whitespace().next().unwrap().to_string())
            .unwrap()
    };
    let (ns, sa) = (var("operator_ns"), var("operator_sa"));
    let docs = documents(&std::fs::read_to_string(root.join("deploy/rbac/operator.yaml")).unwrap());
    let kinds: Vec<&str> = docs.iter().map(|d| d["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "Role", "RoleBinding", "RoleBinding"]
    );
    assert_eq!(
        (docs[0]["metadata"]["namespace"].as_str(), docs[0]["metadata"]["name"].as_str()),
        (Some(ns.as_str()), Some(sa.as_str()))
    );
    assert_eq!(sorted(grants(&docs)), sorted([operator_grants("*"), lease_grants(), key_grants()].concat()));
    // The scoped identity's key rights, which cluster.sh grants as the chart does.
    assert!(script.contains(&format!("identity_key_secret={KEY_SECRET} ")), "cluster.sh names another key Secret");
}

#[test]
fn deploy_applies_with_kustomize() {
    let c = Cluster::shared();
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let (ok, out, err) = c.kubectl_as(c.admin_kubeconfig(), &["apply", "-k", deploy, "--dry-run=server"], None);
    assert!(ok, "{err}");
    for want in [
        "customresourcedefinition.apiextensions.k8s.io/eipsegments.eipsegment.io",
        "deployment.apps/eipsegment-operator",
        "clusterrole.rbac.authorization.k8s.io/eipsegment-operator",
    ] {
        assert!(out.contains(want), "{want} missing from:\n{out}");
    }
}

#[test]
fn deploy_and_the_chart_crd_are_up_to_date() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    assert_eq!(
        std::fs::read_to_string(root.join("crds/eipsegment.io_eipsegments.yaml")).unwrap(),
        std::fs::read_to_string(root.join("charts/eipsegment-operator/crds/eipsegment.io_eipsegments.yaml")).unwrap(),
        "the chart's CRD differs from crds/: copy it"
    );
    let fresh = tempfile::tempdir().unwrap();
    let out = Command::new(root.join("tests/tools/render-deploy.sh")).arg(fresh.path()).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for file in ["eipsegment-operator.yaml", "rbac/operator.yaml"] {
        let want = std::fs::read_to_string(fresh.path().join(file)).unwrap();
        let have = std::fs::read_to_string(root.join("deploy").join(file)).unwrap();
        assert!(want == have, "deploy/{file} is stale: run tests/tools/render-deploy.sh");
    }
}

/// `helm install` for real (the Deployment stays unscheduled: no kubelet runs here), then the
/// release's manifest as installed. The control plane already holds the same RBAC from
/// deploy/rbac/, which the release adopts. Without the admission policies: cluster-wide, they would
/// refuse the other operator identities of this shared control plane their own annotations and
/// status (the policies' tests install them for their own namespaces).
fn helm_install(c: &Cluster) -> Vec<Value> {
    let out = Command::new(helm())
        .args([
            "upgrade",
            "--install",
            "eipsegment-operator",
            CHART,
            "--namespace",
            "eipsegment-system",
            "--take-ownership",
            "--set",
            "tenancy.admissionPolicy.enabled=false",
            "--set",
            LOCAL_IMAGE,
            "--kubeconfig",
            c.admin_kubeconfig(),
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "helm install: {}", String::from_utf8_lossy(&out.stderr));
    let installed = Command::new(helm())
        .args([
            "get",
            "manifest",
            "eipsegment-operator",
            "-n",
            "eipsegment-system",
            "--kubeconfig",
            c.admin_kubeconfig(),
        ])
        .output()
        .unwrap();
    documents(&String::from_utf8(installed.stdout).unwrap())
}

fn installed_replicas(c: &Cluster) -> String {
    c.kubectl(&[
        "get",
        "deployment",
        "eipsegment-operator",
        "-n",
        "eipsegment-system",
        "-o",
        "jsonpath={.spec.replicas}",
    ])
}

/// The chart's arguments for the operator run here as a process (the harness gives `run` and the
/// metrics address): the tenancy policy from the rendering's ConfigMap, in a file of its own.
fn host_args(c: &Cluster, ns: &str, docs: &[Value]) -> Vec<String> {
    let policy = c.dir.join(format!("tenancy-policy-{ns}.yaml"));
    std::fs::write(&policy, tenancy_policy_file(docs)).unwrap();
    let mut chart_args = args(docs);
    chart_args.retain(|a| a != "run" && !a.starts_with("--metrics-addr") && !a.starts_with("--tenancy-policy"));
    chart_args.push(format!("--tenancy-policy={}", policy.display()));
    chart_args
}

/// The operator with the chart's arguments, then what only a test needs: the simulator, a free
/// port, its own Lease and namespace (other tests share this control plane).
fn start_with_installed_args(c: &Cluster, sim: &Simulator, ns: &str, docs: &[Value]) -> Operator {
    let mut chart_args = host_args(c, ns, docs);
    chart_args.retain(|a| !a.starts_with("--lease-name"));
    chart_args.push(format!("--lease-name=chart-{ns}"));
    let extra: Vec<&str> = chart_args.iter().map(String::as_str).collect();
    Operator::start_with_env(
        c,
        sim,
        ns,
        &extra,
        &[("POD_NAME", "chart-replica"), ("POD_NAMESPACE", "eipsegment-system")],
    )
}

/// An object is allocated and, once deleted, released.
fn allocate_and_release(c: &Cluster, sim: &Simulator, ns: &str) {
    c.apply(&segment_yaml(ns, "from-chart", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let obj = eventually("Ready", Duration::from_secs(60), || c.get(ns, "from-chart").filter(is_ready));
    let id = obj["status"]["segmentInstanceId"].as_str().unwrap().to_string();
    c.kubectl(&["delete", "eipsegment", "from-chart", "-n", ns, "--timeout=60s"]);
    assert!(sim.segment(&id).is_none());
}

/// Held by the tests that write release `eipsegment-operator` in eipsegment-system: its
/// cluster-scoped objects are one set on the shared control plane, and an apply that read one absent
/// would race the other's create.
static SYSTEM_RELEASE: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn system_release() -> std::sync::MutexGuard<'static, ()> {
    SYSTEM_RELEASE.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[test]
fn the_installed_chart_runs_the_operator_with_its_own_arguments_and_identity() {
    let c = Cluster::shared();
    let docs = {
        let _release = system_release();
        helm_install(c)
    };
    assert_eq!(installed_replicas(c), "2");
    let ns = c.namespace("chart");
    let sim = Simulator::start(&[]);
    let op = start_with_installed_args(c, &sim, &ns, &docs);
    allocate_and_release(c, &sim, &ns);
    // The chart's --log-format=json: every log line is a JSON object.
    let log = op.log_text();
    assert!(
        log.lines().filter(|l| !l.trim().is_empty()).all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "non-JSON log lines"
    );
    assert_eq!(op.metric("eipsegment_leader"), Some(1.0));
}

/// The ServiceAccount the guarded release runs as, created by the test (not by the chart).
const GUARDED_SA: &str = "guarded-operator";
/// The RoleBinding the guarded release renders in its one namespace, and guards.
const GUARDED_BINDING: &str = "guarded-eipsegment-operator";
/// A finalizer of the test's own: it keeps the object once the operator is done with it, so that
/// the RoleBinding's finalizer can be seen to stay while an EipSegment is left.
const HOLD: &str = "chart-test.eipsegment.io/hold";

/// The per-namespace rendering of release `guarded`, serving `ns` alone with Secret-referenced
/// credentials, under a ServiceAccount the chart does not create.
fn render_guarded(ns: &str) -> Vec<Value> {
    let rendered = template_release(
        "guarded",
        RELEASE_NS,
        &[
            &format!("watchNamespaces={{{ns}}}"),
            "serviceAccount.create=false",
            &format!("serviceAccount.name={GUARDED_SA}"),
            "credentials.secretReferences.enabled=true",
            "leaderElection.enabled=false",
            "replicaCount=1",
        ],
    )
    .unwrap();
    let docs = documents(&rendered);
    check_rbac_invariants("guarded", &docs);
    assert_eq!(guard_flag(&docs).as_deref(), Some(GUARDED_BINDING));
    docs
}

/// Applies the rendering's RBAC only (no kubelet runs here, so the operator runs as a process) and
/// returns the path of a kubeconfig with a token of the rendering's ServiceAccount.
fn install_rbac_with_its_identity(c: &Cluster, ns: &str, docs: &[Value]) -> String {
    let rbac: Vec<String> = docs
        .iter()
        .filter(|d| (is_role(d) || is_binding(d)) && !is_for_people(d))
        .map(|d| serde_yaml::to_string(d).unwrap())
        .collect();
    assert_eq!(rbac.len(), 4, "a ClusterRole and one RoleBinding, the identity key's Role and RoleBinding: {rbac:?}");
    c.apply(&rbac.join("---\n")).unwrap();
    c.kubectl(&["create", "serviceaccount", GUARDED_SA, "-n", RELEASE_NS]);
    c.service_account_kubeconfig(RELEASE_NS, GUARDED_SA, ns)
}

/// `kubectl auth can-i` for the identity of `kubeconfig`.
fn can_i(c: &Cluster, kubeconfig: &str, verb: &str, what: &str, namespace: &str) -> bool {
    let (_, out, err) = c.kubectl_as(kubeconfig, &["auth", "can-i", verb, what, "-n", namespace], None);
    match out.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("can-i {verb} {what} -n {namespace}: {other} {err}"),
    }
}

fn guarded_binding_ref() -> String {
    format!("rolebindings.rbac.authorization.k8s.io/{GUARDED_BINDING}")
}

/// The identity may do what the rendering grants in `ns`, and nothing more.
fn assert_can_i_agrees_with_the_rendering(c: &Cluster, kubeconfig: &str, ns: &str) {
    let binding_ref = guarded_binding_ref();
    let key_ref = format!("secrets/{KEY_SECRET}");
    for (verb, what, namespace, want) in [
        ("list", "eipsegments.eipsegment.io", ns, true),
        ("patch", "eipsegments.eipsegment.io", ns, true),
        ("list", "eipsegments.eipsegment.io", "default", false),
        ("get", "secrets", ns, true),
        ("patch", "secrets", ns, true),
        ("list", "secrets", ns, false),
        ("watch", "secrets", ns, false),
        ("create", "secrets", ns, false),
        ("delete", "secrets", ns, false),
        ("get", "secrets", "default", false),
        ("get", binding_ref.as_str(), ns, true),
        ("patch", binding_ref.as_str(), ns, true),
        ("delete", binding_ref.as_str(), ns, false),
        ("patch", "rolebindings.rbac.authorization.k8s.io/another", ns, false),
        ("list", "rolebindings.rbac.authorization.k8s.io", ns, false),
        ("patch", binding_ref.as_str(), "default", false),
        ("get", key_ref.as_str(), RELEASE_NS, true),
        ("create", "secrets", RELEASE_NS, true),
        ("get", "secrets/another", RELEASE_NS, false),
        ("patch", key_ref.as_str(), RELEASE_NS, false),
    ] {
        assert_eq!(can_i(c, kubeconfig, verb, what, namespace), want, "can-i {verb} {what} -n {namespace}");
    }
}

/// The operator with the rendering's arguments, as its identity (the harness gives the same
/// namespace, a free metrics port and the simulator).
fn start_as_rendered(c: &Cluster, sim: &Simulator, ns: &str, docs: &[Value], kubeconfig: &str) -> Operator {
    let chart_args = host_args(c, ns, docs);
    assert!(chart_args.contains(&format!("--namespace={ns}")), "{chart_args:?}");
    let extra: Vec<&str> = chart_args.iter().map(String::as_str).filter(|a| !a.starts_with("--namespace=")).collect();
    Operator::start_with_env(c, sim, ns, &extra, &[("KUBECONFIG", kubeconfig)])
}

fn create_credentials_secret(c: &Cluster, ns: &str) {
    c.kubectl(&[
        "create",
        "secret",
        "generic",
        "eipsegment-credentials",
        "-n",
        ns,
        &format!("--from-literal=ALIBABA_CLOUD_ACCESS_KEY_ID={ACCESS_KEY_ID}"),
        &format!("--from-literal=ALIBABA_CLOUD_ACCESS_KEY_SECRET={ACCESS_KEY_SECRET}"),
    ]);
}

/// The credentials Secret's finalizers; None once it is gone.
fn secret_finalizers(c: &Cluster, ns: &str) -> Option<Vec<String>> {
    let (ok, out, err) = c.kubectl_as(
        c.admin_kubeconfig(),
        &["get", "secret", "eipsegment-credentials", "-n", ns, "-o", "jsonpath={.metadata.finalizers}"],
        None,
    );
    if !ok {
        assert!(err.contains("NotFound"), "{err}");
        return None;
    }
    Some(if out.is_empty() { Vec::new() } else { serde_json::from_str(&out).unwrap() })
}

/// The guarded RoleBinding; None once it is gone.
fn guarded_rolebinding(c: &Cluster, ns: &str) -> Option<serde_json::Value> {
    let (ok, out, err) =
        c.kubectl_as(c.admin_kubeconfig(), &["get", "rolebinding", GUARDED_BINDING, "-n", ns, "-o", "json"], None);
    if !ok {
        assert!(err.contains("NotFound"), "{err}");
        return None;
    }
    Some(serde_json::from_str(&out).unwrap())
}

fn is_deleting(v: &serde_json::Value) -> bool {
    v["metadata"]["deletionTimestamp"].is_string()
}

/// An EipSegment held by [`HOLD`], allocated with the namespace's Secret, which it then holds;
/// the RoleBinding carries the guard's finalizer. Returns the segment's ID.
fn allocate_held_segment(c: &Cluster, ns: &str) -> String {
    c.apply(&format!(
        "apiVersion: eipsegment.io/v1alpha1\nkind: EipSegment\nmetadata:\n  name: guarded\n  namespace: {ns}\n  \
         finalizers: [{HOLD}]\nspec:\n  regionId: cn-hangzhou\n  eipMask: 28\n"
    ))
    .unwrap();
    let obj = wait_ready(c, ns, "guarded");
    let id = segment_id(&obj);
    assert_eq!(obj["status"]["credentialsSource"], "Secret/eipsegment-credentials", "{:?}", obj["status"]);
    let holder = obj["metadata"]["name"].as_str().unwrap().to_string();
    let in_use = format!("eipsegment.io/in-use-by-{holder}");
    eventually("the Secret held", WAIT, || secret_finalizers(c, ns).filter(|f| f.contains(&in_use)));
    assert_eq!(guarded_rolebinding(c, ns).unwrap()["metadata"]["finalizers"], serde_json::json!([GUARD_FINALIZER]));
    id
}

/// The namespace controller marks everything deleted at once; the RoleBinding and the Secret stay,
/// and the operator releases the segment with the Secret's credentials. Done with the object, its
/// finalizer goes and it lets go of the Secret, which then goes.
fn assert_released_before_the_secret_goes(c: &Cluster, sim: &Simulator, ns: &str, id: &str) {
    eventually("the RoleBinding Terminating", WAIT, || guarded_rolebinding(c, ns).filter(is_deleting));
    eventually("the segment released", WAIT, || sim.segment(id).is_none().then_some(()));
    eventually("the operator's finalizer removed", WAIT, || {
        c.get(ns, "guarded").filter(|o| o["metadata"]["finalizers"] == serde_json::json!([HOLD]))
    });
    eventually("the Secret gone", WAIT, || secret_finalizers(c, ns).is_none().then_some(()));
}

/// An EipSegment is left (held by the test): over more than one of the guard's checks, the
/// RoleBinding keeps its finalizer.
fn assert_rolebinding_kept_while_a_segment_is_left(c: &Cluster, ns: &str) {
    std::thread::sleep(Duration::from_secs(12));
    let kept = guarded_rolebinding(c, ns).expect("the RoleBinding stays while an EipSegment is left");
    assert!(is_deleting(&kept) && kept["metadata"]["finalizers"] == serde_json::json!([GUARD_FINALIZER]), "{kept:?}");
}

/// The last EipSegment goes: the operator lets the RoleBinding go, and the namespace finishes.
fn let_the_last_segment_go(c: &Cluster, ns: &str) {
    c.kubectl(&[
        "patch",
        "eipsegment",
        "guarded",
        "-n",
        ns,
        "--type=json",
        "-p",
        r#"[{"op":"remove","path":"/metadata/finalizers"}]"#,
    ]);
    eventually("the RoleBinding gone", WAIT, || guarded_rolebinding(c, ns).is_none().then_some(()));
    eventually("the namespace gone", Duration::from_secs(120), || {
        let (ok, _, err) = c.kubectl_as(c.admin_kubeconfig(), &["get", "namespace", ns], None);
        (!ok && err.contains("NotFound")).then_some(())
    });
}

/// Per-namespace mode on the real apiserver, for an identity that holds nothing but what the
/// rendering grants (the control plane's operator identity also holds deploy/rbac/'s ClusterRole,
/// which would hide a missing right): `kubectl auth can-i` agrees with the rendering; the operator,
/// run with the chart's arguments, allocates with the namespace's credentials Secret and holds it;
/// and deleting the namespace releases the segment before the Secret and the RoleBinding go. The
/// RoleBinding keeps its finalizer while any EipSegment is left, and loses it once none is.
#[test]
fn a_namespace_deletion_keeps_the_per_namespace_rights_until_its_eipsegments_are_gone() {
    let c = Cluster::shared();
    let ns = c.namespace("guarded");
    let docs = render_guarded(&ns);
    let kubeconfig = install_rbac_with_its_identity(c, &ns, &docs);
    assert_can_i_agrees_with_the_rendering(c, &kubeconfig, &ns);

    let sim = Simulator::start(&[]);
    let op = start_as_rendered(c, &sim, &ns, &docs, &kubeconfig);
    create_credentials_secret(c, &ns);
    let id = allocate_held_segment(c, &ns);

    c.kubectl(&["delete", "namespace", &ns, "--wait=false"]);
    assert_released_before_the_secret_goes(c, &sim, &ns, &id);
    assert_rolebinding_kept_while_a_segment_is_left(c, &ns);
    let_the_last_segment_go(c, &ns);
    assert!(op.log_text().contains("its RoleBinding may go"), "the guard did not say it let the RoleBinding go");
    assert!(!can_i(c, &kubeconfig, "patch", &guarded_binding_ref(), &ns), "the right went with the RoleBinding");
    let _ =
        c.kubectl_as(c.admin_kubeconfig(), &["delete", "clusterrole", &format!("{GUARDED_BINDING}-namespaced")], None);
    let key_rbac = format!("{GUARDED_BINDING}-identity-key");
    let _ = c.kubectl_as(c.admin_kubeconfig(), &["delete", "role,rolebinding", &key_rbac, "-n", RELEASE_NS], None);
    let _ = c.kubectl_as(c.admin_kubeconfig(), &["delete", "serviceaccount", GUARDED_SA, "-n", RELEASE_NS], None);
}

/// Where the pods mount the tenancy policy's ConfigMap.
const POLICY_MOUNT: &str = "/etc/eipsegment-operator/tenancy";

/// A shared platform cluster's tenancy, as in values.yaml's example.
const SHARED_TENANCY: &[&str] = &[
    "tenancy.profile=shared",
    r#"json:tenancy.default={"minEipMask":27}"#,
    r#"json:tenancy.rules=[{"name":"platform","namespaces":["platform-network"],"operatorCredentials":true,"minEipMask":24,"adopt":true,"adoptWithDelete":true},{"name":"trusted","namespaceSelector":{"matchLabels":{"eipsegment.io/tier":"trusted"}},"adopt":true}]"#,
];

/// The tenancy policy file the pods read: from the ConfigMap the Deployment mounts read-only at
/// [`POLICY_MOUNT`], the file that --tenancy-policy names.
fn tenancy_policy_file(docs: &[Value]) -> String {
    let mounts = container(docs)["volumeMounts"].as_sequence().expect("volume mounts");
    let mount = mounts.iter().find(|m| m["mountPath"] == POLICY_MOUNT).expect("the policy mounted");
    assert_eq!(mount["readOnly"], true);
    let volumes = pod_spec(docs)["volumes"].as_sequence().expect("volumes");
    let volume = volumes.iter().find(|v| v["name"] == mount["name"]).expect("the mount's volume");
    let name = &volume["configMap"]["name"];
    let map = of_kind(docs, "ConfigMap").into_iter().find(|m| m["metadata"]["name"] == *name).expect("its ConfigMap");
    let flag = args(docs).into_iter().find_map(|a| a.strip_prefix("--tenancy-policy=").map(String::from));
    let flag = flag.expect("--tenancy-policy");
    assert_eq!(Path::new(&flag).parent(), Some(Path::new(POLICY_MOUNT)), "{flag}");
    let file = Path::new(&flag).file_name().unwrap().to_str().unwrap();
    map["data"][file].as_str().expect("the file --tenancy-policy names").to_string()
}

fn pod_annotation<'a>(docs: &'a [Value], key: &str) -> &'a Value {
    &of_kind(docs, "Deployment")[0]["spec"]["template"]["metadata"]["annotations"][key]
}

fn labels(pairs: &[(&str, &str)]) -> std::collections::BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The values become the file the operator reads, as its own parser reads it; the pods carry the
/// file's checksum, so that a new policy rolls them and nothing else does.
#[test]
fn the_tenancy_policy_reaches_the_operator_and_a_change_rolls_the_pods() {
    let docs = documents(&template(&[]).unwrap());
    let single_team = Tenancy::parse(&tenancy_policy_file(&docs)).unwrap();
    assert_eq!(single_team.allowance("any", None), Allowance::default(), "single-team: everything allowed");
    assert!(!single_team.needs_labels());

    let shared_docs = documents(&template(SHARED_TENANCY).unwrap());
    let shared = Tenancy::parse(&tenancy_policy_file(&shared_docs)).unwrap();
    let platform = shared.allowance("platform-network", None);
    assert_eq!(
        (platform.rule.as_str(), platform.operator_credentials, platform.min_eip_mask, platform.adopt_with_delete),
        ("platform", true, 24, true)
    );
    let trusted = shared.allowance("team-b", Some(&labels(&[("eipsegment.io/tier", "trusted")])));
    assert_eq!((trusted.rule.as_str(), trusted.adopt, trusted.min_eip_mask), ("trusted", true, 27));
    let other = shared.allowance("team-c", Some(&labels(&[])));
    assert_eq!(
        (other.rule.as_str(), other.operator_credentials, other.allocate, other.min_eip_mask, other.adopt),
        ("default", false, true, 27, false)
    );
    assert!(shared.needs_labels());

    let checksum = |docs: &[Value]| pod_annotation(docs, "checksum/tenancy-policy").as_str().unwrap().to_string();
    assert_ne!(checksum(&docs), checksum(&shared_docs), "a new policy rolls the pods");
    let unrelated = documents(&template(&["logLevel=debug", "podAnnotations.team=platform"]).unwrap());
    assert_eq!(checksum(&docs), checksum(&unrelated), "only the policy counts");
    assert_eq!(pod_annotation(&unrelated, "team"), "platform", "one's own pod annotations stay");
}

/// The identity key's Secret and the policy file as flags the operator's own parser reads.
#[test]
fn the_identity_key_and_the_policy_file_are_flags_of_the_operator() {
    let parse = |docs: &[Value]| {
        let argv = std::iter::once("eipsegment-operator".to_string()).chain(args(docs));
        let CliCommand::Run(run) = Cli::try_parse_from(argv).unwrap().command else { panic!("not `run`") };
        (run.identity_key.identity_key_secret, run.tenancy_policy)
    };
    let policy = Some(Path::new(POLICY_MOUNT).join("policy.yaml"));
    assert_eq!(parse(&documents(&template(&[]).unwrap())), (KEY_SECRET.to_string(), policy.clone()));
    let docs = documents(&template(&["identityKey.secretName=platform-identity"]).unwrap());
    assert_eq!(parse(&docs), ("platform-identity".to_string(), policy));
    let key = [
        named_grant(RELEASE_NS, "", "secrets", &["platform-identity"], &["get"]),
        grant(RELEASE_NS, "", "secrets", &["create"]),
    ];
    assert_eq!(sorted(grants(&docs)), sorted([operator_grants("*"), lease_grants(), key.concat()].concat()));
    assert!(of_kind(&docs, "Secret").is_empty(), "the operator makes the key's Secret, which outlives the release");
}

/// A rule the operator would refuse, or whose refusals could not say which rule it is (a name given
/// twice), fails the rendering with the reason.
#[test]
fn invalid_tenancy_rules_fail_the_rendering() {
    for (rules, why) in [
        (r#"[{"name":"x"}]"#, r#"tenancy rule "x" names no namespaces and has no namespaceSelector"#),
        (r#"[{"name":"x","namespaces":[]}]"#, r#"tenancy rule "x" names no namespaces"#),
        (r#"[{"name":"x","namespaces":["a"]},{"name":"x","namespaces":["b"]}]"#, r#"tenancy rule "x" is given twice"#),
        (
            r#"[{"name":"x","namespaceSelector":{"matchExpressions":[{"key":"env","operator":"In"}]}}]"#,
            r#"tenancy rule "x": matchExpressions env In needs values"#,
        ),
        (
            r#"[{"name":"x","namespaceSelector":{"matchExpressions":[{"key":"env","operator":"Exists","values":["a"]}]}}]"#,
            r#"tenancy rule "x": matchExpressions env Exists takes no values"#,
        ),
    ] {
        let err = template(&[&format!("json:tenancy.rules={rules}")]).expect_err(rules);
        assert!(err.contains(why), "{rules}: {err}");
        // Even without the admission policies, which share the checks with the policy file.
        let err = template(&[&format!("json:tenancy.rules={rules}"), "tenancy.admissionPolicy.enabled=false"]);
        assert!(err.is_err(), "{rules}");
    }
}

fn named<'a>(docs: &'a [Value], kind: &str, name: &str) -> &'a Value {
    of_kind(docs, kind)
        .into_iter()
        .find(|d| d["metadata"]["name"] == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
}

fn match_conditions(policy: &Value) -> String {
    policy["spec"]["matchConditions"].as_sequence().unwrap().iter().map(|c| c["expression"].as_str().unwrap()).collect()
}

/// Both policies exempt the release's own ServiceAccount, the identity policy also the identity
/// writers; each binding denies, in every namespace, or only in the served ones per namespace.
#[test]
fn the_admission_policies_exempt_the_release_and_bind_where_it_serves() {
    let sets = ["serviceAccount.create=false", "serviceAccount.name=eipseg", "tenancy.identityWriters.users={velero}"];
    let docs = documents(&template_release("ops", "platform", &sets).unwrap());
    for name in ["ops-eipsegment-operator-identity", "ops-eipsegment-operator-tenancy"] {
        let conditions = match_conditions(named(&docs, "ValidatingAdmissionPolicy", name));
        assert!(
            conditions.contains(r#"request.userInfo.username != "system:serviceaccount:platform:eipseg""#),
            "{name}"
        );
        let binding = named(&docs, "ValidatingAdmissionPolicyBinding", name);
        assert_eq!(binding["spec"]["policyName"], name);
        assert_eq!(strings(&binding["spec"]["validationActions"]), ["Deny"]);
        assert!(binding["spec"]["matchResources"].is_null(), "cluster-wide: every namespace");
    }
    let identity = match_conditions(named(&docs, "ValidatingAdmissionPolicy", "ops-eipsegment-operator-identity"));
    assert!(identity.contains(r#"["velero"]"#) && identity.contains(r#"["system:masters"]"#), "{identity}");

    let docs = documents(&template(&["watchNamespaces={team-a,team-b}"]).unwrap());
    for binding in of_kind(&docs, "ValidatingAdmissionPolicyBinding") {
        let selector = &binding["spec"]["matchResources"]["namespaceSelector"]["matchExpressions"][0];
        assert_eq!(selector["key"], "kubernetes.io/metadata.name");
        assert_eq!(selector["operator"], "In");
        assert_eq!(strings(&selector["values"]), ["team-a", "team-b"]);
    }
    let docs = documents(&template(&["tenancy.admissionPolicy.enabled=false"]).unwrap());
    assert!(of_kind(&docs, "ValidatingAdmissionPolicy").is_empty());
    assert!(of_kind(&docs, "ValidatingAdmissionPolicyBinding").is_empty());
}

/// People may read (view) and write (edit, admin) EipSegments, never their status or finalizers.
#[test]
fn the_roles_for_people_never_touch_the_operators_subresources() {
    let docs = documents(&template(&[]).unwrap());
    let people: Vec<&Value> = docs.iter().filter(|d| is_for_people(d)).collect();
    let aggregated = |role: &Value| {
        let mut to: Vec<String> = role["metadata"]["labels"]
            .as_mapping()
            .unwrap()
            .iter()
            .filter_map(|(k, v)| Some(k.as_str()?.strip_prefix(AGGREGATE_TO)?.to_string()).filter(|_| v == "true"))
            .collect();
        to.sort();
        to
    };
    let view = named(&docs, "ClusterRole", "eipsegment-operator-view");
    let edit = named(&docs, "ClusterRole", "eipsegment-operator-edit");
    assert_eq!(people, [view, edit]);
    assert_eq!(aggregated(view), ["admin", "edit", "view"]);
    assert_eq!(aggregated(edit), ["admin", "edit"]);
    // One rule each, on eipsegments alone: (apiGroups, resources, verbs).
    let rule = |role: &Value| {
        let rules = rules_of(role);
        assert_eq!(rules.len(), 1, "{rules:?}");
        assert!(rules[0]["resourceNames"].is_null());
        let rule = &rules[0];
        (strings(&rule["apiGroups"]), strings(&rule["resources"]), strings(&rule["verbs"]))
    };
    let on = |verbs: &[&str]| {
        (
            vec!["eipsegment.io".to_string()],
            vec!["eipsegments".to_string()],
            verbs.iter().map(|v| v.to_string()).collect(),
        )
    };
    assert_eq!(rule(view), on(&["get", "list", "watch"]));
    assert_eq!(rule(edit), on(&["create", "update", "patch", "delete", "deletecollection"]));
}

/// The chart's admission policies and roles for people, as `helm template --show-only` renders them
/// for release `release` serving `namespaces` (so that they bind there alone, beside the other tests
/// of this control plane), with the control plane's operator identity as the release's; applied, and
/// deleted when dropped.
struct Policies<'a> {
    c: &'a Cluster,
    yaml: String,
}

impl<'a> Policies<'a> {
    fn install(c: &'a Cluster, release: &str, namespaces: &[&str], sets: &[&str]) -> Policies<'a> {
        let served = format!("watchNamespaces={{{}}}", namespaces.join(","));
        let mut all = vec!["serviceAccount.create=false", "serviceAccount.name=eipsegment-operator", served.as_str()];
        all.extend(sets);
        let out = Command::new(helm())
            .args(["template", release, CHART, "--namespace", RELEASE_NS])
            .args(["--show-only", "templates/admission-policies.yaml", "--show-only", "templates/user-roles.yaml"])
            .args(set_args(&all))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let yaml = String::from_utf8(out.stdout).unwrap();
        assert!(yaml.contains(&format!("!= \"{}\"", c.env["OPERATOR_USER"])), "the operator's identity is exempt");
        c.apply(&yaml).unwrap();
        Policies { c, yaml }
    }
}

impl Drop for Policies<'_> {
    fn drop(&mut self) {
        let delete = ["delete", "--ignore-not-found", "-f", "-"];
        let _ = self.c.kubectl_as(self.c.admin_kubeconfig(), &delete, Some(&self.yaml));
    }
}

/// kubectl as `user` (None: the admin, in system:masters), authenticated in no other group.
fn kubectl_by(c: &Cluster, user: Option<&str>, args: &[&str], stdin: Option<&str>) -> Result<String, String> {
    let who = user.map(|u| [format!("--as={u}"), "--as-group=system:authenticated".to_string()]);
    let all: Vec<&str> = who.iter().flatten().map(String::as_str).chain(args.iter().copied()).collect();
    let (ok, out, err) = c.kubectl_as(c.admin_kubeconfig(), &all, stdin);
    if ok { Ok(out) } else { Err(err) }
}

fn create_by(c: &Cluster, user: Option<&str>, yaml: &str) -> Result<String, String> {
    kubectl_by(c, user, &["create", "-f", "-"], Some(yaml))
}

/// As [`create_by`], the apiserver's whole admission included, nothing stored.
fn try_create_by(c: &Cluster, user: Option<&str>, yaml: &str) -> Result<String, String> {
    kubectl_by(c, user, &["create", "--dry-run=server", "-f", "-"], Some(yaml))
}

/// `kubectl auth can-i` for `user`, authenticated in no other group.
fn can_by(c: &Cluster, user: &str, args: &[&str]) -> bool {
    let who = format!("--as={user}");
    let asked = [&["auth", "can-i", &who, "--as-group=system:authenticated"][..], args].concat();
    let (_, out, err) = c.kubectl_as(c.admin_kubeconfig(), &asked, None);
    match out.trim() {
        "yes" => true,
        "no" => false,
        other => panic!("can-i {args:?}: {other} {err}"),
    }
}

fn annotate_by(c: &Cluster, user: Option<&str>, ns: &str, args: &[&str]) -> Result<String, String> {
    kubectl_by(c, user, &[&["annotate", "eipsegment", "-n", ns, "--overwrite"][..], args].concat(), None)
}

fn annotated_segment(ns: &str, name: &str, annotations: &[(&str, &str)], spec: &str) -> String {
    let annotations: Vec<String> = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    format!(
        "apiVersion: eipsegment.io/v1alpha1\nkind: EipSegment\nmetadata:\n  name: {name}\n  namespace: {ns}\n  \
         annotations:\n{}spec:\n{spec}",
        annotations.concat()
    )
}

const MASK_28: &str = "  regionId: cn-hangzhou\n  eipMask: 28\n";

/// Why the identity policy refuses the operator's annotations to people.
const ANNOTATIONS_REFUSED: &str = "these annotations record which cloud segment, account and tokens belong to the \
    object, and only the operator writes them; a restore from backup is done by a platform admin, or an identity \
    listed in tenancy.identityWriters";
const STATUS_REFUSED: &str = "status is the operator's record of the cloud segment, and only the operator writes it";

/// Refused by an admission policy, with a message saying each of `why` (in any order).
fn assert_refused(result: Result<String, String>, why: &[&str]) {
    let err = result.expect_err(why[0]);
    assert!(err.contains("denied request: "), "refused, but not by a policy: {err}");
    for part in why {
        assert!(err.contains(part), "refused, but not saying {part:?}: {err}");
    }
}

/// Alice may edit in `ns`, Bob may write status there (which no built-in role grants), Rita restores
/// from backups (an identity writer of the values); returns once the edit role carries EipSegments
/// and the identity policy refuses a forged annotation.
fn people_in(c: &Cluster, ns: &str) {
    c.kubectl(&["create", "rolebinding", "alice-edits", "-n", ns, "--clusterrole=edit", "--user=alice"]);
    c.kubectl(&["create", "rolebinding", "rita-edits", "-n", ns, "--clusterrole=edit", "--user=rita"]);
    let status = "--resource=eipsegments.eipsegment.io/status";
    c.kubectl(&["create", "role", "status-writer", "-n", ns, "--verb=get,patch", status]);
    c.kubectl(&["create", "rolebinding", "bob-writes-status", "-n", ns, "--role=status-writer", "--user=bob"]);
    eventually("edit carrying EipSegments", WAIT, || {
        can_by(c, "alice", &["create", "eipsegments.eipsegment.io", "-n", ns]).then_some(())
    });
    let forged = annotated_segment(ns, "probe", &[(SEGMENT_ID, "eipsg-victim")], MASK_28);
    eventually("the identity policy in force", WAIT, || {
        try_create_by(c, Some("alice"), &forged).err().filter(|e| e.contains(ANNOTATIONS_REFUSED))
    });
}

/// People's rights come from Kubernetes' own roles: with `edit` in one namespace, Alice writes
/// EipSegments there and nowhere else, and never status. The identity policy refuses her the
/// operator's annotations, on creation and on update (adding, changing, removing one), and refuses
/// status to anyone RBAC lets write it; the admin (system:masters) and the identity writers restore
/// objects with their annotations, and the operator writes both.
#[test]
fn people_write_eipsegments_but_never_the_operators_record() {
    let c = Cluster::shared();
    let (ns, elsewhere) = (c.namespace("people"), c.namespace("people-elsewhere"));
    let _policies = Policies::install(c, "people", &[&ns, &elsewhere], &["tenancy.identityWriters.users={rita}"]);
    people_in(c, &ns);
    let alice = Some("alice");
    create_by(c, alice, &segment_yaml(&ns, "web", MASK_28)).unwrap();
    let err = create_by(c, alice, &segment_yaml(&elsewhere, "web", MASK_28)).unwrap_err();
    assert!(err.contains(r#"cannot create resource "eipsegments""#), "{err}");
    for subresource in ["status", "finalizers"] {
        let asked = ["update", "eipsegments.eipsegment.io", "-n", &ns, &format!("--subresource={subresource}")];
        assert!(!can_by(c, "alice", &asked), "edit grants eipsegments/{subresource}");
    }
    let status = ["patch", "eipsegment", "web", "-n", &ns, "--subresource=status", "--type=merge"];
    let forged_status = [&status[..], &["-p", r#"{"status":{"segmentInstanceId":"eipsg-victim"}}"#]].concat();
    let err = kubectl_by(c, alice, &forged_status, None).unwrap_err();
    assert!(err.contains(r#"User "alice" cannot"#) && err.contains(r#"resource "eipsegments/status""#), "{err}");
    assert_refused(kubectl_by(c, Some("bob"), &forged_status, None), &[STATUS_REFUSED]);

    let two = [(SEGMENT_ID, "eipsg-victim"), (ACCOUNT_ID, "1234567890123456")];
    let refused = create_by(c, alice, &annotated_segment(&ns, "forged", &two, MASK_28));
    assert_refused(refused, &["may not create an EipSegment with ", SEGMENT_ID, ACCOUNT_ID, ANNOTATIONS_REFUSED]);
    annotate_by(c, alice, &ns, &["web", "team=web"]).expect("her own annotations");
    let forged = format!("{SEGMENT_ID}=eipsg-victim");
    let added = format!("may not add, change or remove {SEGMENT_ID}: {ANNOTATIONS_REFUSED}");
    assert_refused(annotate_by(c, alice, &ns, &["web", &forged]), &[&added]);
    check_restores(c, &ns);
}

/// The admin and Rita restore objects with their annotations; Alice may then neither change nor
/// remove them, but still edit the rest; the operator writes annotations and status.
fn check_restores(c: &Cluster, ns: &str) {
    let restored = [(SEGMENT_ID, "eipsg-restored"), (ACCOUNT_ID, "1234567890123456"), (PROOF, "v1:segment-id:AAAA")];
    create_by(c, None, &annotated_segment(ns, "restored", &restored, MASK_28)).expect("the admin restores");
    create_by(c, Some("rita"), &annotated_segment(ns, "by-rita", &restored, MASK_28)).expect("an identity writer");
    let alice = Some("alice");
    let changed = format!("may not add, change or remove {SEGMENT_ID}: ");
    assert_refused(annotate_by(c, alice, ns, &["restored", &format!("{SEGMENT_ID}=eipsg-victim")]), &[&changed]);
    let removal = ["restored", &format!("{ACCOUNT_ID}-"), &format!("{PROOF}-")];
    assert_refused(annotate_by(c, alice, ns, &removal), &["may not add, change or remove ", ACCOUNT_ID, PROOF]);
    annotate_by(c, alice, ns, &["restored", "team=restored"]).expect("an update that leaves them as they are");
    let operator = c.operator_kubeconfig();
    let own = format!("{SEGMENT_ID}=eipsg-1");
    let (ok, _, err) = c.kubectl_as(operator, &["annotate", "eipsegment", "web", "-n", ns, &own], None);
    assert!(ok, "the operator's own annotation: {err}");
    let status = r#"{"status":{"segmentInstanceId":"eipsg-1"}}"#;
    let patch = ["patch", "eipsegment", "web", "-n", ns, "--subresource=status", "--type=merge", "-p", status];
    let (ok, _, err) = c.kubectl_as(operator, &patch, None);
    assert!(ok, "the operator's status: {err}");
}

/// The tenancy of the admission test: shared, at most a /27 by default; the platform's namespace
/// allocates anything and adopts with Delete; namespaces labelled trusted, but not prod, adopt; the
/// frozen one adopts but never allocates. Names are filled in by [`tenancy_values`].
const ADMISSION_RULES: &str = r#"[
  {"name": "platform", "namespaces": ["PLATFORM"], "minEipMask": 24, "adopt": true, "adoptWithDelete": true},
  {"name": "trusted", "namespaceSelector": {"matchLabels": {"eipsegment.io/tier": "trusted"},
    "matchExpressions": [{"key": "env", "operator": "NotIn", "values": ["prod"]}]}, "adopt": true},
  {"name": "frozen", "namespaces": ["FROZEN"], "allocate": false, "adopt": true}
]"#;

fn tenancy_values(platform: &str, frozen: &str) -> Vec<String> {
    let rules: serde_json::Value =
        serde_json::from_str(&ADMISSION_RULES.replace("PLATFORM", platform).replace("FROZEN", frozen)).unwrap();
    vec![
        "tenancy.profile=shared".to_string(),
        r#"json:tenancy.default={"minEipMask":27}"#.to_string(),
        format!("json:tenancy.rules={rules}"),
    ]
}

const ADOPT: &str = "  regionId: cn-hangzhou\n  segmentInstanceId: eipsg-adopted\n";
const ADOPT_WITH_DELETE: &str =
    "  regionId: cn-hangzhou\n  segmentInstanceId: eipsg-adopted\n  deletionPolicy: Delete\n";

fn allocate(mask: u8) -> String {
    format!("  regionId: cn-hangzhou\n  eipMask: {mask}\n")
}

/// What the operator itself allows `spec` in a namespace with `allowance` (as its lifecycle does).
fn operator_allows(allowance: &Allowance, spec: &str) -> bool {
    if spec.contains("segmentInstanceId") {
        allowance.adopt && (!spec.contains("deletionPolicy: Delete") || allowance.adopt_with_delete)
    } else {
        let mask: u8 = spec.split("eipMask: ").nth(1).unwrap().trim().parse().unwrap();
        allowance.allocate && mask >= allowance.min_eip_mask
    }
}

/// The tenancy policy from the values, at admission: each refusal names the namespace and the rule,
/// and says what it refuses; what the rule allows passes. The operator's own reading of the chart's
/// policy file names the same rule, and allows the same.
#[test]
fn the_tenancy_policy_refuses_at_admission_what_a_namespace_may_not_ask_for() {
    let c = Cluster::shared();
    let [platform, team, trusted, prod, frozen] =
        ["platform", "team", "trusted", "trusted-prod", "frozen"].map(|n| c.namespace(&format!("tenancy-{n}")));
    let tier = "eipsegment.io/tier=trusted";
    c.kubectl(&["label", "namespace", &trusted, tier, "env=staging"]);
    c.kubectl(&["label", "namespace", &prod, tier, "env=prod"]);
    let before = objects_from_before_the_policy(c, &team);
    let values = tenancy_values(&platform, &frozen);
    let sets: Vec<&str> = values.iter().map(String::as_str).collect();
    let served = [&platform, &team, &trusted, &prod, &frozen].map(String::as_str);
    let _policies = Policies::install(c, "tenancy", &served, &sets);
    let policy = Tenancy::parse(&tenancy_policy_file(&documents(&template(&sets).unwrap()))).unwrap();
    let refused_by_default = segment_yaml(&team, "probe", &allocate(26));
    eventually("the tenancy policy in force", WAIT, || {
        try_create_by(c, None, &refused_by_default).err().filter(|e| e.contains("allows /27 at most"))
    });

    let may_not = |ns: &str, what: &str, rule: &str| format!("namespace {ns} may not {what} (tenancy rule \"{rule}\"");
    let adopt_with_delete = "adopt an EIP segment with deletionPolicy Delete";
    let cases: Vec<(&str, String, Option<String>)> = vec![
        (&team, allocate(28), None),
        (&team, allocate(27), None),
        (&team, allocate(26), Some(may_not(&team, "allocate a /26 EIP segment", "default") + " allows /27 at most)")),
        (&team, ADOPT.into(), Some(may_not(&team, "adopt EIP segments it did not allocate", "default") + ")")),
        (&platform, allocate(24), None),
        (&platform, ADOPT_WITH_DELETE.into(), None),
        (&trusted, ADOPT.into(), None),
        (&trusted, ADOPT_WITH_DELETE.into(), Some(may_not(&trusted, adopt_with_delete, "trusted") + "): ")),
        (
            &trusted,
            allocate(25),
            Some(may_not(&trusted, "allocate a /25 EIP segment", "trusted") + " allows /27 at most)"),
        ),
        (&prod, ADOPT.into(), Some(may_not(&prod, "adopt EIP segments it did not allocate", "default") + ")")),
        (&frozen, allocate(28), Some(may_not(&frozen, "allocate EIP segments", "frozen") + ")")),
        (&frozen, ADOPT.into(), None),
    ];
    for (i, (ns, spec, refusal)) in cases.iter().enumerate() {
        let result = create_by(c, None, &segment_yaml(ns, &format!("case-{i}"), spec));
        let namespace_labels = namespace_labels(c, ns);
        let allowance = policy.allowance(ns, Some(&namespace_labels));
        assert_eq!(operator_allows(&allowance, spec), refusal.is_none(), "the operator decides otherwise: {ns} {spec}");
        match refusal {
            None => assert!(result.is_ok(), "{ns} {spec}: {result:?}"),
            Some(why) => {
                assert_refused(result, &[why]);
                assert!(
                    why.contains(&format!("tenancy rule \"{}\"", allowance.rule)),
                    "{why} (the operator's {allowance:?})"
                );
            }
        }
    }
    check_updates(c, &team, &before);
}

fn namespace_labels(c: &Cluster, ns: &str) -> std::collections::BTreeMap<String, String> {
    let out = c.kubectl(&["get", "namespace", ns, "-o", "jsonpath={.metadata.labels}"]);
    serde_json::from_str(&out).unwrap()
}

/// Objects that break the rules of `team` made before the policy: an allocation of a /24, an adoption
/// with Delete, an adoption with Retain.
fn objects_from_before_the_policy(c: &Cluster, team: &str) -> [&'static str; 3] {
    let objects = [("large", allocate(24)), ("releases", ADOPT_WITH_DELETE.to_string()), ("keeps", ADOPT.to_string())];
    for (name, spec) in &objects {
        create_by(c, None, &segment_yaml(team, name, spec)).unwrap();
    }
    objects.map(|(name, _)| name)
}

/// Updates ask only for what they change: one that leaves spec alone passes whatever the object is,
/// as does Retain on a segment larger than the rule allows now, or keeping an adoption's Delete; an
/// adoption newly set to Delete is refused, but not to the operator; deletions pass.
fn check_updates(c: &Cluster, team: &str, [large, releases, keeps]: &[&str; 3]) {
    for name in [large, releases, keeps] {
        annotate_by(c, None, team, &[name, "team=web"]).expect("an update that leaves spec alone");
    }
    let set_policy = |name: &str, policy: &str| {
        let patch = format!(r#"{{"spec":{{"deletionPolicy":"{policy}"}}}}"#);
        kubectl_by(c, None, &["patch", "eipsegment", name, "-n", team, "--type=merge", "-p", &patch], None)
    };
    set_policy(large, "Retain").expect("Retain asks for nothing new");
    let credentials = r#"{"spec":{"credentialsSecretRef":{"name":"team-keys"}}}"#;
    kubectl_by(c, None, &["patch", "eipsegment", releases, "-n", team, "--type=merge", "-p", credentials], None)
        .expect("an adoption that keeps its Delete");
    let why =
        format!("namespace {team} may not adopt an EIP segment with deletionPolicy Delete (tenancy rule \"default\")");
    assert_refused(set_policy(keeps, "Delete"), &[&why, "set spec.deletionPolicy to Retain"]);
    let patch = r#"{"spec":{"deletionPolicy":"Delete"}}"#;
    let by_operator = ["patch", "eipsegment", keeps, "-n", team, "--type=merge", "-p", patch];
    let (ok, _, err) = c.kubectl_as(c.operator_kubeconfig(), &by_operator, None);
    assert!(ok, "the operator is exempt: {err}");
    for name in [large, releases, keeps] {
        kubectl_by(c, None, &["delete", "eipsegment", name, "-n", team], None).expect("a deletion");
    }
}

/// The chart's README is helm-docs' rendering of values.yaml as checked in (`make reference` writes
/// it), and every value in it has a description (`# --` in values.yaml).
#[test]
fn the_chart_readme_is_generated_from_the_values_and_describes_each() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let built = Command::new(format!("{repo}/tests/tools/build-helm-docs.sh")).output().expect("build-helm-docs.sh");
    assert!(built.status.success(), "building helm-docs failed: {}", String::from_utf8_lossy(&built.stderr));
    let helm_docs = String::from_utf8(built.stdout).unwrap().trim().to_string();
    let out = Command::new(helm_docs)
        .args(["--chart-search-root", "charts", "--dry-run", "--skip-version-footer", "--log-level", "warning"])
        .current_dir(repo)
        .output()
        .expect("helm-docs");
    assert!(out.status.success(), "helm-docs: {}", String::from_utf8_lossy(&out.stderr));
    let generated = String::from_utf8(out.stdout).unwrap();
    let readme = std::fs::read_to_string(format!("{CHART}/README.md")).unwrap();
    assert!(generated == readme, "charts/eipsegment-operator/README.md is out of date: run `make reference`");
    let rows: Vec<&str> =
        readme.lines().skip_while(|l| !l.starts_with("| Key |")).skip(2).take_while(|l| l.starts_with("| ")).collect();
    let values: Value =
        serde_yaml::from_str(&std::fs::read_to_string(format!("{CHART}/values.yaml")).unwrap()).unwrap();
    let mut leaves = Vec::new();
    value_leaves(&values, "", &mut leaves);
    assert!(rows.len() > 50 && leaves.len() > 50, "{} rows, {} values", rows.len(), leaves.len());
    let keys: Vec<&str> = rows.iter().map(|r| r.trim_start_matches("| ").split(" | ").next().unwrap()).collect();
    for row in &rows {
        let description = row.trim_end_matches('|').rsplit(" | ").next().unwrap().trim();
        assert!(!description.is_empty(), "a value without a description (`# --` in values.yaml): {row}");
    }
    // Each value is in a row, itself or the map that holds it (documented as a whole, as resources).
    for leaf in &leaves {
        let documented = keys.iter().any(|k| leaf == k || leaf.starts_with(&format!("{k}.")));
        assert!(documented, "value {leaf} is not in the chart's README");
    }
}

/// The dotted paths of a values tree's leaves (empty maps and lists are leaves).
fn value_leaves(v: &Value, prefix: &str, out: &mut Vec<String>) {
    match v.as_mapping() {
        Some(m) if !m.is_empty() => {
            for (k, child) in m {
                let key = k.as_str().unwrap();
                let path = if prefix.is_empty() { key.to_string() } else { format!("{prefix}.{key}") };
                value_leaves(child, &path, out);
            }
        }
        _ => out.push(prefix.to_string()),
    }
}

/// The overlay the operations guide gives for `kubectl apply -k` (the block after its marker, in a
/// directory beside a checkout named as the guide names it) names the reader's image and
/// credentials Secret, and applies.
#[test]
fn the_guides_kustomize_overlay_sets_the_image_and_credentials() {
    let repo = env!("CARGO_MANIFEST_DIR");
    let guide = std::fs::read_to_string(format!("{repo}/deploy/OPERATIONS.md")).unwrap();
    let marker = "<!-- kustomization: rendered by tests/chart.rs -->";
    let after = &guide[guide.find(marker).expect("the overlay's marker") + marker.len()..];
    let block = after.split("```").nth(1).expect("the overlay's block").trim_start_matches("yaml\n");
    assert!(block.contains("../eipsegment-operator/deploy"), "the overlay names deploy/ beside it");
    let overlay = block.replace("<registry>", "registry.example.com");
    let root = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(repo, root.path().join("eipsegment-operator")).unwrap();
    let dir = root.path().join("overlay");
    std::fs::create_dir(&dir).unwrap();
    std::fs::write(dir.join("kustomization.yaml"), overlay).unwrap();
    let c = Cluster::shared();
    let dir_arg = dir.to_str().unwrap();
    let (ok, out, err) = c.kubectl_as(c.admin_kubeconfig(), &["kustomize", dir_arg], None);
    assert!(ok, "kubectl kustomize: {err}");
    let docs = documents(&out);
    let deployment = of_kind(&docs, "Deployment")[0];
    let container = &deployment["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example.com/eipsegment-operator:0.1.0");
    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "alibaba-credentials");
    let _release = system_release();
    let (ok, _, err) = c.kubectl_as(c.admin_kubeconfig(), &["apply", "-k", dir_arg, "--dry-run=server"], None);
    assert!(ok, "the overlay does not apply: {err}");
}
