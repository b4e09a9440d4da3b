//! Removals through a real Argo CD (`support::argocd`): auto-sync pruning, Application deletion with
//! the resources finalizer (foreground and background, and with the operator's own RBAC in the same
//! Application, with and without sync waves), the `Prune=false` and `Delete=false` sync options, a
//! release blocked by a member EIP as Argo CD's resource health shows it, and a namespace of segments
//! removed from git. Each case checks what the cloud saw (one accepted release per released segment,
//! none for a kept one, nothing left that no object names) and what Argo CD reports.

use eipsegment_test_support as support;

use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};
use support::argocd::ArgoCd;
use support::*;

const T: Duration = Duration::from_secs(120);

fn argocd() -> &'static ArgoCd {
    static ARGOCD: OnceLock<ArgoCd> = OnceLock::new();
    ARGOCD.get_or_init(|| ArgoCd::start(Cluster::shared()))
}

fn segment(ns: &str, name: &str, annotations: &[(&str, &str)]) -> String {
    let annotations: String = annotations.iter().map(|(k, v)| format!("    {k}: \"{v}\"\n")).collect();
    let annotations = if annotations.is_empty() { String::new() } else { format!("  annotations:\n{annotations}") };
    format!(
        "apiVersion: eipsegment.io/v1alpha1\nkind: EipSegment\nmetadata:\n  name: {name}\n  namespace: {ns}\n{annotations}\
         spec:\n  regionId: cn-hangzhou\n  eipMask: 28\n"
    )
}

/// Waits until Argo CD reports the Application synced to `revision` and of `health`.
fn wait_app(argo: &ArgoCd, app: &str, revision: &str, health: &str) -> Value {
    eventually(&format!("Application {app} Synced and {health} at {revision}"), T, || {
        argo.application(app).filter(|a| {
            a["status"]["sync"]["status"] == "Synced"
                && a["status"]["sync"]["revision"] == revision
                && a["status"]["health"]["status"] == health
        })
    })
}

/// The health Argo CD gives one of the Application's resources, from its resource tree.
fn resource_health(app: &Value, kind: &str, name: &str) -> Option<(String, String)> {
    let resources = app["status"]["resources"].as_array()?;
    let r = resources.iter().find(|r| r["kind"] == kind && r["name"] == name)?;
    let health = &r["health"];
    Some((health["status"].as_str()?.to_string(), health["message"].as_str().unwrap_or("").to_string()))
}

/// The cloud's count of accepted releases of each segment.
fn releases_of(sim: &Simulator, id: &str) -> usize {
    let history = sim.admin("GET", "history", Value::Null);
    let entry = history["segments"].as_array().unwrap().iter().find(|s| s["instanceId"] == id).cloned();
    entry.map_or(0, |s| s["releaseAcceptedAtMs"].as_array().unwrap().len())
}

/// Nothing leaked: every segment the cloud still holds is named by an object that still exists.
fn nothing_leaked(c: &Cluster, sim: &Simulator, ns: &str) {
    let out = c.kubectl(&["get", "eipsegments", "-n", ns, "-o", "json"]);
    let objects: Value = serde_json::from_str(&out).unwrap();
    let named: Vec<&str> =
        objects["items"].as_array().unwrap().iter().filter_map(|o| o["status"]["segmentInstanceId"].as_str()).collect();
    for s in sim.segments() {
        let id = s["instanceId"].as_str().unwrap();
        assert!(named.contains(&id), "segment {id} is held in the cloud but no object names it");
    }
}

fn ready_ids(c: &Cluster, ns: &str, names: &[&str]) -> Vec<String> {
    names.iter().map(|n| segment_id(&wait_ready(c, ns, n))).collect()
}

#[test]
fn a_segment_removed_from_git_is_pruned_and_the_app_is_healthy_only_once_it_is_released() {
    let c = Cluster::shared();
    let argo = argocd();
    let ns = format!("prune-{}", std::process::id());
    let sim = Simulator::start(&["--release-seconds", "8"]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let git = argo.repository("prune");
    git.write("prune/keep.yaml", &segment(&ns, "keep", &[]));
    git.write("prune/drop.yaml", &segment(&ns, "drop", &[]));
    let first = git.commit("two segments");
    argo.create_application("prune", &git, "prune", &ns, None);
    let ids = ready_ids(c, &ns, &["keep", "drop"]);
    wait_app(argo, "prune", &first, "Healthy");

    git.remove("prune/drop.yaml");
    let second = git.commit("drop one");
    argo.refresh("prune");
    // Argo CD's sync ends once it has asked for the deletion; what says the release is still under
    // way is the Application: not Synced, and not Healthy, while the object waits on its finalizer.
    let pruned = eventually("the prune sync", T, || {
        argo.application("prune").filter(|a| {
            a["status"]["operationState"]["syncResult"]["revision"] == second.as_str()
                && a["status"]["operationState"]["phase"] == "Succeeded"
        })
    });
    let results = pruned["status"]["operationState"]["syncResult"]["resources"].to_string();
    assert!(results.contains("pruned"), "{results}");
    let deleting = eventually("the pruned object deleting", T, || {
        c.get(&ns, "drop").filter(|o| o["metadata"]["deletionTimestamp"].is_string())
    });
    assert!(sim.segment(&ids[1]).is_some(), "released before the object was seen deleting: {deleting}");
    // Meanwhile Argo CD's resource tree says what the release is waiting for, and the Application is
    // not Healthy.
    let (status, message) = eventually("Argo CD showing the release", T, || {
        argo.application("prune")
            .filter(|a| a["status"]["health"]["status"] == "Progressing")
            .and_then(|a| resource_health(&a, "EipSegment", "drop"))
            .filter(|(status, _)| status == "Progressing")
    });
    assert!(message.contains(&ids[1]), "{message}");
    assert!(c.get(&ns, "drop").is_some(), "gone before Argo CD showed its release: {status} {message}");
    wait_app(argo, "prune", &second, "Healthy");
    assert!(c.get(&ns, "drop").is_none(), "Argo CD says Synced and Healthy while the object is still there");
    assert!(sim.segment(&ids[1]).is_none(), "the object went but its segment stayed");
    assert_eq!((releases_of(&sim, &ids[1]), releases_of(&sim, &ids[0])), (1, 0));
    assert!(is_ready(&c.get(&ns, "keep").unwrap()));
    nothing_leaked(c, &sim, &ns);
}

#[test]
fn a_release_blocked_by_an_eip_in_use_shows_degraded_naming_the_eip_until_it_is_freed() {
    let c = Cluster::shared();
    let argo = argocd();
    let ns = format!("blocked-{}", std::process::id());
    let sim = Simulator::start(&["--allocate-seconds", "5"]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let git = argo.repository("blocked");
    git.write("blocked/web.yaml", &segment(&ns, "web", &[]));
    git.write("blocked/marker.yaml", &marker(&ns));
    let first = git.commit("a segment");
    argo.create_application("blocked", &git, "blocked", &ns, None);
    // While the cloud allocates (5 s): Progressing, and Argo CD says so.
    eventually("Argo CD showing the allocation", T, || {
        argo.application("blocked")
            .and_then(|a| resource_health(&a, "EipSegment", "web"))
            .filter(|(status, message)| status == "Progressing" && message.contains("being allocated"))
    });
    let id = ready_ids(c, &ns, &["web"]).remove(0);
    let app = wait_app(argo, "blocked", &first, "Healthy");
    let (status, message) = resource_health(&app, "EipSegment", "web").unwrap();
    assert_eq!(status, "Healthy");
    assert!(message.contains(&id), "{message}");

    let member = json!({"members": [{"index": 3, "status": "InUse", "instanceId": "i-argo-web01"}]});
    sim.admin("PATCH", &format!("segments/{id}"), member);
    git.remove("blocked/web.yaml");
    git.commit("remove the segment");
    argo.refresh("blocked");
    let app = eventually("Argo CD showing the blocked release as Degraded", T, || {
        argo.application("blocked").filter(|a| {
            resource_health(a, "EipSegment", "web").is_some_and(|(s, _)| s == "Degraded")
                && a["status"]["health"]["status"] == "Degraded"
        })
    });
    let (_, message) = resource_health(&app, "EipSegment", "web").unwrap();
    assert!(message.contains("i-argo-web01") && message.contains("deletionPolicy"), "{message}");
    println!("Argo CD during the blocked release: {message}");
    assert!(sim.segment(&id).is_some());

    let freed = json!({"members": [{"index": 3, "status": "Available", "instanceId": ""}]});
    sim.admin("PATCH", &format!("segments/{id}"), freed);
    let last = argo.application("blocked").unwrap()["status"]["sync"]["revision"].as_str().unwrap().to_string();
    wait_gone(c, &ns, "web");
    wait_app(argo, "blocked", &last, "Healthy");
    assert!(sim.segment(&id).is_none());
    assert_eq!(releases_of(&sim, &id), 1);
    nothing_leaked(c, &sim, &ns);
}

#[test]
fn deleting_an_application_with_the_resources_finalizer_releases_every_segment() {
    let c = Cluster::shared();
    let argo = argocd();
    for (app, finalizer) in [
        ("fg", "resources-finalizer.argocd.argoproj.io/foreground"),
        ("bg", "resources-finalizer.argocd.argoproj.io/background"),
    ] {
        let ns = format!("appdel-{app}-{}", std::process::id());
        let sim = Simulator::start(&["--release-seconds", "3"]);
        let _op = Operator::start(c, &sim, &ns, &[]);
        let git = argo.repository(app);
        for name in ["one", "two"] {
            git.write(&format!("appdel-{app}/{name}.yaml"), &segment(&ns, name, &[]));
        }
        let revision = git.commit(&format!("segments of {app}"));
        argo.create_application(app, &git, &format!("appdel-{app}"), &ns, Some(finalizer));
        let ids = ready_ids(c, &ns, &["one", "two"]);
        wait_app(argo, app, &revision, "Healthy");

        argo.delete_application(app);
        eventually("the segments deleting", T, || {
            ["one", "two"]
                .iter()
                .all(|n| c.get(&ns, n).is_some_and(|o| o["metadata"]["deletionTimestamp"].is_string()))
                .then_some(())
        });
        assert!(argo.application(app).is_some(), "{app}: the Application went before its segments");
        eventually(&format!("Application {app} gone"), T, || argo.application(app).is_none().then_some(()));
        for (name, id) in ["one", "two"].iter().zip(&ids) {
            assert!(c.get(&ns, name).is_none(), "{app}: the Application went, {name} stayed");
            assert!(sim.segment(id).is_none(), "{app}: {name}'s segment stayed");
            assert_eq!(releases_of(&sim, id), 1, "{app}: {name}");
        }
        nothing_leaked(c, &sim, &ns);
    }
}

#[test]
fn prune_false_keeps_a_segment_from_pruning_and_delete_false_from_the_application_deletion() {
    let c = Cluster::shared();
    let argo = argocd();
    let ns = format!("keep-{}", std::process::id());
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let git = argo.repository("keep");
    let options = "argocd.argoproj.io/sync-options";
    git.write("keep/no-prune.yaml", &segment(&ns, "no-prune", &[(options, "Prune=false")]));
    git.write("keep/no-delete.yaml", &segment(&ns, "no-delete", &[(options, "Delete=false")]));
    git.write("keep/marker.yaml", &marker(&ns));
    let first = git.commit("kept segments");
    argo.create_application("keep", &git, "keep", &ns, Some("resources-finalizer.argocd.argoproj.io"));
    let ids = ready_ids(c, &ns, &["no-prune", "no-delete"]);
    wait_app(argo, "keep", &first, "Healthy");

    git.remove("keep/no-prune.yaml");
    let second = git.commit("no longer in git");
    argo.refresh("keep");
    let app = eventually("the sync that does not prune", T, || {
        argo.application("keep").filter(|a| a["status"]["operationState"]["syncResult"]["revision"] == second.as_str())
    });
    let results = app["status"]["operationState"]["syncResult"]["resources"].as_array().unwrap().clone();
    let kept = results.iter().find(|r| r["name"] == "no-prune").expect("a result for no-prune");
    assert_eq!(kept["status"], "PruneSkipped", "{kept}");
    assert!(kept["message"].as_str().unwrap().contains("no prune"), "{kept}");

    // Deleting the Application: Prune=false does not keep an object from it, Delete=false does.
    argo.delete_application("keep");
    eventually("Application keep gone", T, || argo.application("keep").is_none().then_some(()));
    assert!(c.get(&ns, "no-prune").is_none(), "the Application went and left no-prune");
    assert_eq!((sim.segment(&ids[0]), releases_of(&sim, &ids[0])), (None, 1));
    let kept = c.get(&ns, "no-delete").expect("Delete=false keeps the object");
    assert!(kept["metadata"]["deletionTimestamp"].is_null() && is_ready(&kept), "{kept}");
    assert!(sim.segment(&ids[1]).is_some());
    assert_eq!(releases_of(&sim, &ids[1]), 0);
    nothing_leaked(c, &sim, &ns);
    c.kubectl(&["delete", "eipsegment", "no-delete", "-n", &ns, "--timeout=60s"]);
    assert_eq!((sim.segment(&ids[1]), releases_of(&sim, &ids[1])), (None, 1));
}

#[test]
fn a_namespace_of_segments_removed_from_git_goes_once_every_release_is_confirmed() {
    let c = Cluster::shared();
    let argo = argocd();
    let ns = format!("team-{}", std::process::id());
    let sim = Simulator::start(&["--release-seconds", "3"]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    let git = argo.repository("teams");
    git.write("teams/namespace.yaml", &format!("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {ns}\n"));
    for name in ["n1", "n2"] {
        git.write(&format!("teams/{name}.yaml"), &segment(&ns, name, &[]));
    }
    let first = git.commit("a team's namespace");
    argo.create_application("teams", &git, "teams", "default", None);
    let ids = ready_ids(c, &ns, &["n1", "n2"]);
    wait_app(argo, "teams", &first, "Healthy");

    git.remove("teams");
    git.write("teams/marker.yaml", &marker("default"));
    let second = git.commit("the team is gone");
    argo.refresh("teams");
    eventually("the namespace Terminating", T, || {
        let phase =
            c.kubectl_as(c.admin_kubeconfig(), &["get", "namespace", &ns, "-o", "jsonpath={.status.phase}"], None);
        (phase.1 == "Terminating").then_some(())
    });
    eventually("the namespace gone", T, || {
        (!c.kubectl_as(c.admin_kubeconfig(), &["get", "namespace", &ns], None).0).then_some(())
    });
    wait_app(argo, "teams", &second, "Healthy");
    for id in &ids {
        assert!(sim.segment(id).is_none());
        assert_eq!(releases_of(&sim, id), 1);
    }
    assert!(sim.segments().is_empty(), "segments left: {:?}", sim.segments());
}

/// The operator's ServiceAccount and RBAC as the chart renders them for `release` in `ns`, and the
/// ServiceAccount's name.
fn operator_rbac(release: &str, ns: &str) -> (String, String) {
    let only = ["--show-only", "templates/serviceaccount.yaml", "--show-only", "templates/rbac.yaml"];
    let rendered = helm_template(release, ns, &[&only[..], &["--set", "image.allowPlaceholder=true"]].concat());
    let account = rendered
        .split("\n---")
        .find(|doc| doc.contains("kind: ServiceAccount"))
        .and_then(|doc| doc.lines().find_map(|l| l.trim().strip_prefix("name: ")))
        .expect("a ServiceAccount")
        .to_string();
    (rendered, account)
}

/// Deletes the Application that holds both the operator's RBAC and the EipSegments, and shows how it
/// ends: with the EipSegments in a later sync wave than the operator (the README's layout), Argo CD
/// deletes them first and waits until they are gone, then the operator's rights; in one wave, the
/// rights go at once and the releases cannot be confirmed until a person gives them back.
fn delete_an_application_holding_the_operator(waves: bool) {
    let c = Cluster::shared();
    let argo = argocd();
    let tag = if waves { "waves" } else { "onewave" };
    let ns = format!("stack-{tag}-{}", std::process::id());
    c.kubectl(&["create", "namespace", &ns]);
    let sim = Simulator::start(&["--release-seconds", "5"]);
    let git = argo.repository(&format!("stack-{tag}"));
    let (rbac, account) = operator_rbac(tag, &ns);
    git.write("stack/operator.yaml", &rbac);
    let wave: &[(&str, &str)] = if waves { &[("argocd.argoproj.io/sync-wave", "1")] } else { &[] };
    for name in ["s1", "s2"] {
        git.write(&format!("stack/{name}.yaml"), &segment(&ns, name, wave));
    }
    let revision = git.commit("the operator and its segments");
    argo.create_application(tag, &git, "stack", &ns, Some("resources-finalizer.argocd.argoproj.io"));
    eventually("the operator's ServiceAccount", T, || {
        c.kubectl_as(c.admin_kubeconfig(), &["get", "serviceaccount", &account, "-n", &ns], None).0.then_some(())
    });
    let kubeconfig = c.service_account_kubeconfig(&ns, &account, &ns);
    let key_namespace = ["--identity-key-namespace", &ns];
    let mut op = Operator::start_as(c, &kubeconfig, &sim, &ns, &key_namespace, &[]);
    let ids = ready_ids(c, &ns, &["s1", "s2"]);
    wait_app(argo, tag, &revision, "Healthy");

    argo.delete_application(tag);
    if waves {
        eventually(&format!("Application {tag} gone"), T, || argo.application(tag).is_none().then_some(()));
    } else {
        // The rights went with the segments: nothing can confirm their releases.
        std::thread::sleep(Duration::from_secs(20));
        assert!(argo.application(tag).is_some(), "the Application went although the operator lost its rights");
        let stuck: Vec<&str> = ["s1", "s2"].into_iter().filter(|n| c.get(&ns, n).is_some()).collect();
        assert!(!stuck.is_empty(), "every segment went although the operator lost its rights");
        println!("in one sync wave, {stuck:?} stayed Terminating for 20 s with the operator's rights gone");
        // A person gives the rights back; the deletion then finishes on its own.
        c.apply(&rbac).unwrap();
        op.kill();
        let kubeconfig = c.service_account_kubeconfig(&ns, &account, &ns);
        op = Operator::start_as(c, &kubeconfig, &sim, &ns, &key_namespace, &[]);
        eventually(&format!("Application {tag} gone"), T, || argo.application(tag).is_none().then_some(()));
        let (ok, _, err) =
            c.kubectl_as(c.admin_kubeconfig(), &["delete", "--ignore-not-found", "-f", "-"], Some(&rbac));
        assert!(ok, "removing the operator's rights given back: {err}");
    }
    for (name, id) in ["s1", "s2"].iter().zip(&ids) {
        assert!(c.get(&ns, name).is_none(), "{tag}: {name} stayed");
        assert!(sim.segment(id).is_none(), "{tag}: {name}'s segment stayed");
        assert_eq!(releases_of(&sim, id), 1, "{tag}: {name}");
    }
    drop(op);
}

#[test]
fn an_application_holding_the_operator_finishes_with_the_segments_in_a_later_sync_wave() {
    delete_an_application_holding_the_operator(true);
}

#[test]
fn an_application_holding_the_operator_in_one_sync_wave_waits_for_its_rights() {
    delete_an_application_holding_the_operator(false);
}

/// A ConfigMap that keeps a directory non-empty once its segments are removed from git.
fn marker(ns: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: marker\n  namespace: {ns}\ndata: {{kept: \"yes\"}}\n")
}
