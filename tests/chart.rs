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
    let out = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/tools/build-helm.sh"))
        .output()
        .expect("build-helm.sh");
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
    if out.status.success() {
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into())
    }
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
                        out.push((
                            scope.clone(),
                            g.as_str().unwrap().into(),
                            r.as_str().unwrap().into(),
                            v.as_str().unwrap().into(),
                        ));
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
/// through a server-side dry run (the ServiceMonitor one only when its CRD exists: not here).
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
    ("rrsa", &["rrsa.enabled=true", "rrsa.roleName=eipsegment-operator"]),
    (
        "credentials secret",
        &["credentials.secretName=alibaba-keys", "vpcEndpoint=https://vpc-vpc.cn-hangzhou.aliyuncs.com"],
    ),
];

const RELEASE_NS: &str = "eipsegment-system";

type Grant = (String, String, String, String);

fn grant(scope: &str, group: &str, resource: &str, verbs: &[&str]) -> Vec<Grant> {
    verbs.iter().map(|v| (scope.to_string(), group.to_string(), resource.to_string(), v.to_string())).collect()
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

fn lease_grants() -> Vec<Grant> {
    grant(RELEASE_NS, "coordination.k8s.io", "leases", &["get", "create", "patch"])
}

fn secret_grants(scope: &str) -> Vec<Grant> {
    grant(scope, "", "secrets", &["get"])
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
        cmd.args(["lint", "--strict", CHART, "--namespace", RELEASE_NS]);
        for s in *sets {
            cmd.args(["--set", s]);
        }
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
    for absent in ["--namespace", "--vpc-endpoint", "--secret-credentials", "--allow-insecure-endpoint"] {
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

#[test]
fn rbac_is_exactly_what_each_mode_needs() {
    let namespaced = |extra: fn(&str) -> Vec<Grant>| -> Vec<Grant> {
        ["team-a", "team-b"].iter().flat_map(|ns| [operator_grants(ns), extra(ns)].concat()).collect()
    };
    let nothing = |_: &str| Vec::new();
    let cases: Vec<(&str, &[&str], Vec<Grant>)> = vec![
        ("default", &[], [operator_grants("*"), lease_grants()].concat()),
        ("namespaced", &["watchNamespaces={team-a,team-b}"], [namespaced(nothing), lease_grants()].concat()),
        ("one namespace", &["watchNamespaces={team-a}"], [operator_grants("team-a"), lease_grants()].concat()),
        ("leader election off", &["leaderElection.enabled=false"], operator_grants("*")),
        (
            "secret references",
            &["credentials.secretReferences.enabled=true"],
            [operator_grants("*"), secret_grants("*"), lease_grants()].concat(),
        ),
        (
            "secret references, namespaced",
            &["watchNamespaces={team-a,team-b}", "credentials.secretReferences.enabled=true"],
            [namespaced(secret_grants), lease_grants()].concat(),
        ),
        (
            "secret references, namespaced, no leader election",
            &[
                "watchNamespaces={team-a,team-b}",
                "credentials.secretReferences.enabled=true",
                "leaderElection.enabled=false",
            ],
            namespaced(secret_grants),
        ),
        ("rrsa", &["rrsa.enabled=true", "rrsa.roleName=r"], [operator_grants("*"), lease_grants()].concat()),
        ("credentials secret", &["credentials.secretName=k"], [operator_grants("*"), lease_grants()].concat()),
    ];
    for (mode, sets, want) in cases {
        let docs = documents(&template(sets).unwrap());
        assert_eq!(sorted(grants(&docs)), sorted(want), "{mode}: granted rights");
        let cluster_wide = !sets.iter().any(|s| s.starts_with("watchNamespaces"));
        assert_eq!(of_kind(&docs, "ClusterRole").len(), usize::from(cluster_wide), "{mode}: ClusterRoles");
        assert_eq!(
            of_kind(&docs, "ClusterRoleBinding").len(),
            usize::from(cluster_wide),
            "{mode}: ClusterRoleBindings"
        );
        // Every binding names a role of this rendering, in its own namespace, for the release's
        // ServiceAccount (eipsegment-system/eipsegment-operator, the identity the test control plane uses).
        let sa = of_kind(&docs, "ServiceAccount")[0];
        assert_eq!(
            (sa["metadata"]["namespace"].as_str(), sa["metadata"]["name"].as_str()),
            (Some(RELEASE_NS), Some("eipsegment-operator"))
        );
        for binding in docs.iter().filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding") {
            let role_kind = if binding["kind"] == "RoleBinding" { "Role" } else { "ClusterRole" };
            assert_eq!(binding["roleRef"]["kind"], role_kind, "{mode}");
            assert!(
                docs.iter().any(|d| d["kind"] == role_kind
                    && d["metadata"]["name"] == binding["roleRef"]["name"]
                    && d["metadata"]["namespace"] == binding["metadata"]["namespace"]),
                "{mode}: {binding:?} refers to no rendered {role_kind}"
            );
            let subjects = binding["subjects"].as_sequence().unwrap();
            assert_eq!(subjects.len(), 1, "{mode}");
            assert_eq!(
                (subjects[0]["kind"].as_str(), subjects[0]["name"].as_str(), subjects[0]["namespace"].as_str()),
                (Some("ServiceAccount"), Some("eipsegment-operator"), Some(RELEASE_NS)),
                "{mode}"
            );
        }
        let bound = docs.iter().filter(|d| d["kind"] == "RoleBinding" || d["kind"] == "ClusterRoleBinding").count();
        assert_eq!(
            bound,
            docs.iter().filter(|d| d["kind"] == "Role" || d["kind"] == "ClusterRole").count(),
            "{mode}: one binding per role"
        );
    }
}

#[test]
fn arguments_follow_the_values() {
    let docs = documents(&template(&["watchNamespaces={team-a,team-b}"]).unwrap());
    assert!(has_arg(&docs, "--namespace=team-a,team-b"), "{:?}", args(&docs));
    let docs = documents(&template(&["watchNamespaces={team-a}"]).unwrap());
    assert!(has_arg(&docs, "--namespace=team-a"), "{:?}", args(&docs));

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
    let out = Command::new(helm()).args(["template", "ops", CHART, "--namespace", "platform"]).output().unwrap();
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
            "logFormat=text",
            "metrics.port=9090",
            "extraArgs={--poll-seconds=5}",
        ])
        .unwrap(),
    );
    for want in [
        "--vpc-endpoint=https://vpc-vpc.cn-hangzhou.aliyuncs.com",
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

#[test]
fn invalid_values_are_refused_by_the_schema() {
    for (set, path) in [
        ("logFormat=xml", "/logFormat"),
        ("replicaCount=0", "/replicaCount"),
        ("surprise=1", "'surprise'"),
        ("leaderElection.enable=false", "'enable'"), // a typo is not silently ignored
        ("rrsa.rolename=r", "'rolename'"),
        ("vpcEndpoint=http://plain", "/vpcEndpoint"),
        ("watchNamespaces={Not_A_Namespace}", "/watchNamespaces"),
        ("image.pullPolicy=Sometimes", "/image/pullPolicy"),
        ("image.repository=", "/image/repository"),
        ("metrics.port=70000", "/metrics/port"),
        ("metrics.serviceMonitor.interval=often", "/metrics/serviceMonitor/interval"),
    ] {
        let err = template(&[set]).expect_err(set);
        assert!(err.contains("values don't meet the specifications of the schema"), "{set}: {err}");
        assert!(err.contains(path), "{set}: the message should name {path}: {err}");
    }
}

#[test]
fn every_mode_passes_a_server_side_dry_run() {
    let c = Cluster::shared();
    for ns in ["team-a", "team-b"] {
        let _ = c.kubectl_as(c.admin_kubeconfig(), &["create", "namespace", ns], None);
    }
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
    assert_eq!(kinds, ["ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"]);
    assert_eq!(
        (docs[0]["metadata"]["namespace"].as_str(), docs[0]["metadata"]["name"].as_str()),
        (Some(ns.as_str()), Some(sa.as_str()))
    );
    assert_eq!(sorted(grants(&docs)), sorted([operator_grants("*"), lease_grants()].concat()));
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

#[test]
fn the_installed_chart_runs_the_operator_with_its_own_arguments_and_identity() {
    let c = Cluster::shared();
    // `helm install` for real (the Deployment stays unscheduled: no kubelet runs here). The control
    // plane already holds the same RBAC from deploy/rbac/, which the release adopts.
    let out = Command::new(helm())
        .args([
            "upgrade",
            "--install",
            "eipsegment-operator",
            CHART,
            "--namespace",
            "eipsegment-system",
            "--take-ownership",
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
    let docs = documents(&String::from_utf8(installed.stdout).unwrap());
    let deployment = c.kubectl(&[
        "get",
        "deployment",
        "eipsegment-operator",
        "-n",
        "eipsegment-system",
        "-o",
        "jsonpath={.spec.replicas}",
    ]);
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
    let op = Operator::start_with_env(
        c,
        &sim,
        &ns,
        &extra,
        &[("POD_NAME", "chart-replica"), ("POD_NAMESPACE", "eipsegment-system")],
    );
    c.apply(&segment_yaml(&ns, "from-chart", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
    let obj = eventually("Ready", Duration::from_secs(60), || c.get(&ns, "from-chart").filter(is_ready));
    let id = obj["status"]["segmentInstanceId"].as_str().unwrap().to_string();
    c.kubectl(&["delete", "eipsegment", "from-chart", "-n", &ns, "--timeout=60s"]);
    assert!(sim.segment(&id).is_none());
    // The chart's --log-format=json: every log line is a JSON object.
    let log = op.log_text();
    assert!(
        log.lines().filter(|l| !l.trim().is_empty()).all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "non-JSON log lines"
    );
    assert_eq!(op.metric("eipsegment_leader"), Some(1.0));
}
