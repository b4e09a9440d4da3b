//! The Helm chart, checked with the real tools: helm lint, helm template into a server-side dry run
//! on the real apiserver, least-privilege RBAC in every mode, deploy/ rendered from it, and an
//! install of the rendering that runs the operator with the chart's own arguments and identity.

mod support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_yaml::Value;
use support::*;

const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/eipsegment-operator");

fn helm() -> String {
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/build-helm.sh")).output().expect("build-helm.sh");
    assert!(out.status.success(), "building helm failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

/// `helm template` with `--set` pairs; Err carries helm's message.
fn template(sets: &[&str]) -> Result<String, String> {
    let mut cmd = Command::new(helm());
    cmd.args(["template", "eipsegment-operator", CHART, "--namespace", "eipsegment-system"]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    if out.status.success() { Ok(String::from_utf8(out.stdout).unwrap()) } else { Err(String::from_utf8_lossy(&out.stderr).into()) }
}

fn documents(yaml: &str) -> Vec<Value> {
    serde_yaml::Deserializer::from_str(yaml).map(|d| Value::deserialize(d).unwrap()).filter(|v| !v.is_null()).collect()
}

use serde::Deserialize;

fn of_kind<'a>(docs: &'a [Value], kind: &str) -> Vec<&'a Value> {
    docs.iter().filter(|d| d["kind"] == kind).collect()
}

/// Every (apiGroup, resource, verb) the rendering grants, with the namespace of a Role ("*" for a ClusterRole).
fn grants(docs: &[Value]) -> Vec<(String, String, String, String)> {
    let mut out = Vec::new();
    for role in docs.iter().filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole") {
        let scope = role["metadata"]["namespace"].as_str().unwrap_or("*").to_string();
        for rule in role["rules"].as_sequence().unwrap() {
            for g in rule["apiGroups"].as_sequence().unwrap() {
                for r in rule["resources"].as_sequence().unwrap() {
                    for v in rule["verbs"].as_sequence().unwrap() {
                        out.push((scope.clone(), g.as_str().unwrap().into(), r.as_str().unwrap().into(), v.as_str().unwrap().into()));
                    }
                }
            }
        }
    }
    out
}

fn grants_on(docs: &[Value], resource: &str) -> Vec<(String, String)> {
    grants(docs).into_iter().filter(|(_, _, r, _)| r == resource).map(|(scope, _, _, verb)| (scope, verb)).collect()
}

fn args(docs: &[Value]) -> Vec<String> {
    let deployment = of_kind(docs, "Deployment")[0];
    deployment["spec"]["template"]["spec"]["containers"][0]["args"].as_sequence().unwrap().iter().map(|a| a.as_str().unwrap().to_string()).collect()
}

#[test]
fn helm_lint_is_clean() {
    let out = Command::new(helm()).args(["lint", "--strict", CHART]).output().unwrap();
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
}

#[test]
fn default_rendering_is_least_privilege_hardened_and_highly_available() {
    let docs = documents(&template(&[]).unwrap());
    let deployment = of_kind(&docs, "Deployment")[0];
    let pod = &deployment["spec"]["template"]["spec"];
    let container = &pod["containers"][0];
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["seccompProfile"]["type"], "RuntimeDefault");
    assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(container["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(container["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert!(container["resources"]["limits"]["memory"].is_string() && container["resources"]["requests"]["cpu"].is_string());
    assert_eq!(container["livenessProbe"]["httpGet"]["path"], "/healthz");
    assert_eq!(container["readinessProbe"]["httpGet"]["path"], "/readyz");
    let a = args(&docs);
    for want in ["run", "--log-format=json", "--leader-elect"] {
        assert!(a.contains(&want.to_string()), "{a:?} lacks {want}");
    }
    // Cluster-wide: no Secrets, no CRD writes, Leases only in the release namespace.
    assert!(grants_on(&docs, "secrets").is_empty());
    assert!(grants_on(&docs, "customresourcedefinitions").is_empty());
    let leases = grants_on(&docs, "leases");
    assert!(!leases.is_empty() && leases.iter().all(|(scope, _)| scope == "eipsegment-system"), "{leases:?}");
    let own: Vec<_> = grants_on(&docs, "eipsegments").into_iter().map(|(_, v)| v).collect();
    assert_eq!(own, ["get", "list", "watch", "patch"]);
    assert_eq!(of_kind(&docs, "Service").len(), 1);
    assert!(of_kind(&docs, "ServiceMonitor").is_empty());
}

#[test]
fn values_switch_rbac_and_arguments() {
    // A list of namespaces: Roles there and nowhere else.
    let docs = documents(&template(&["watchNamespaces={team-a,team-b}", "credentials.secretReferences.enabled=true"]).unwrap());
    assert!(of_kind(&docs, "ClusterRole").is_empty());
    let scopes: std::collections::BTreeSet<String> = grants_on(&docs, "eipsegments").into_iter().map(|(s, _)| s).collect();
    assert_eq!(scopes.into_iter().collect::<Vec<_>>(), ["team-a", "team-b"]);
    let secrets = grants_on(&docs, "secrets");
    assert_eq!(secrets, [("team-a".to_string(), "get".to_string()), ("team-b".to_string(), "get".to_string())], "Secrets: get only, served namespaces only");
    let a = args(&docs);
    assert!(a.contains(&"--namespace=team-a,team-b".to_string()) && a.contains(&"--secret-credentials".to_string()), "{a:?}");

    // Secret references cluster-wide: get, never list or watch.
    let docs = documents(&template(&["credentials.secretReferences.enabled=true"]).unwrap());
    assert_eq!(grants_on(&docs, "secrets"), [("*".to_string(), "get".to_string())]);

    // No leader election: no Lease rights, no flag.
    let docs = documents(&template(&["leaderElection.enabled=false", "replicaCount=1"]).unwrap());
    assert!(grants_on(&docs, "leases").is_empty());
    assert!(!args(&docs).contains(&"--leader-elect".to_string()));

    // RRSA: the ServiceAccount carries the role for ACK's pod-identity webhook.
    let docs = documents(&template(&["rrsa.enabled=true", "rrsa.roleName=eipsegment-operator"]).unwrap());
    assert_eq!(of_kind(&docs, "ServiceAccount")[0]["metadata"]["annotations"]["pod-identity.alibabacloud.com/role-name"], "eipsegment-operator");
    assert!(template(&["rrsa.enabled=true"]).unwrap_err().contains("rrsa.roleName is required"));

    // Credentials Secret as environment; ServiceMonitor on demand.
    let docs = documents(&template(&["credentials.secretName=alibaba-keys", "metrics.serviceMonitor.enabled=true"]).unwrap());
    let container = &of_kind(&docs, "Deployment")[0]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["envFrom"][0]["secretRef"]["name"], "alibaba-keys");
    assert_eq!(of_kind(&docs, "ServiceMonitor").len(), 1);
}

#[test]
fn invalid_values_are_refused_by_the_schema() {
    for (set, expect) in [
        ("logFormat=xml", "logFormat"),
        ("replicaCount=0", "replicaCount"),
        ("surprise=1", "surprise"),
        ("vpcEndpoint=http://plain", "vpcEndpoint"),
        ("watchNamespaces={Not_A_Namespace}", "watchNamespaces"),
    ] {
        let err = template(&[set]).expect_err(set);
        assert!(err.contains(expect), "{set}: {err}");
    }
}

#[test]
fn renderings_pass_a_server_side_dry_run() {
    let c = Cluster::shared();
    for ns in ["team-a", "team-b"] {
        let _ = c.kubectl_as(c.admin_kubeconfig(), &["create", "namespace", ns], None);
    }
    for sets in [
        &[][..],
        &["watchNamespaces={team-a,team-b}", "credentials.secretReferences.enabled=true"][..],
        &["leaderElection.enabled=false", "rrsa.enabled=true", "rrsa.roleName=r", "credentials.secretName=k"][..],
    ] {
        let rendered = template(sets).unwrap();
        let (ok, out, err) = c.kubectl_as(c.admin_kubeconfig(), &["apply", "--dry-run=server", "-f", "-"], Some(&rendered));
        assert!(ok, "{sets:?}: {err}");
        // "created" or, once another test installed the chart, "configured"/"unchanged".
        assert!(out.lines().any(|l| l.starts_with("deployment.apps/eipsegment-operator ") && l.ends_with("(server dry run)")), "{out}");
    }
}

#[test]
fn deploy_applies_with_kustomize() {
    let c = Cluster::shared();
    let deploy = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy");
    let (ok, out, err) = c.kubectl_as(c.admin_kubeconfig(), &["apply", "-k", deploy, "--dry-run=server"], None);
    assert!(ok, "{err}");
    for want in ["customresourcedefinition.apiextensions.k8s.io/eipsegments.eipsegment.io", "deployment.apps/eipsegment-operator", "clusterrole.rbac.authorization.k8s.io/eipsegment-operator"] {
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

#[test]
fn the_installed_chart_runs_the_operator_with_its_own_arguments_and_identity() {
    let c = Cluster::shared();
    // `helm install` for real (the Deployment stays unscheduled: no kubelet runs here). The control
    // plane already holds the same RBAC from deploy/rbac/, which the release adopts.
    let out = Command::new(helm())
        .args(["upgrade", "--install", "eipsegment-operator", CHART, "--namespace", "eipsegment-system", "--take-ownership", "--kubeconfig", c.admin_kubeconfig()])
        .output()
        .unwrap();
    assert!(out.status.success(), "helm install: {}", String::from_utf8_lossy(&out.stderr));
    let installed = Command::new(helm()).args(["get", "manifest", "eipsegment-operator", "-n", "eipsegment-system", "--kubeconfig", c.admin_kubeconfig()]).output().unwrap();
    let docs = documents(&String::from_utf8(installed.stdout).unwrap());
    let deployment = c.kubectl(&["get", "deployment", "eipsegment-operator", "-n", "eipsegment-system", "-o", "jsonpath={.spec.replicas}"]);
    assert_eq!(deployment, "2");
    let ns = c.namespace("chart");
    let sim = Simulator::start(&[]);
    // The chart's arguments, then what only a test needs: the simulator, a free port, its own Lease
    // and namespace (other tests share this control plane).
    let mut chart_args = args(&docs);
    chart_args.retain(|a| a != "run" && !a.starts_with("--metrics-addr") && !a.starts_with("--lease-name"));
    let lease = format!("--lease-name=chart-{ns}");
    let mut extra: Vec<&str> = chart_args.iter().map(String::as_str).collect();
    extra.push(&lease);
    let op = Operator::start_with_env(c, &sim, &ns, &extra, &[("POD_NAME", "chart-replica"), ("POD_NAMESPACE", "eipsegment-system")]);
    c.apply(&segment_yaml(&ns, "from-chart", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let obj = eventually("Ready", Duration::from_secs(60), || c.get(&ns, "from-chart").filter(is_ready));
    let id = obj["status"]["segmentInstanceId"].as_str().unwrap().to_string();
    c.kubectl(&["delete", "eipsegment", "from-chart", "-n", &ns, "--timeout=60s"]);
    assert!(sim.segment(&id).is_none());
    // The chart's --log-format=json: every log line is a JSON object.
    let log = op.log_text();
    assert!(log.lines().filter(|l| !l.trim().is_empty()).all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()), "non-JSON log lines");
    assert_eq!(op.metric("eipsegment_leader"), Some(1.0));
}
