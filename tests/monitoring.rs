//! The chart's monitoring, checked with the tools that will read it. The alerts: the chart's own
//! rendering of templates/prometheusrule.yaml goes through `promtool check rules` and the unit tests
//! of tests/monitoring/alerts.test.yaml (`promtool test rules`), which make every alert fire and then
//! resolve; promtool is Prometheus' own, built by tests/tools/build-promtool.sh. The dashboard:
//! tests/monitoring/dashboard-check (tests/tools/build-dashboard-check.sh) reads it strictly with
//! the Grafana Foundation SDK's types of Grafana's dashboard schema and parses its queries with
//! Prometheus' PromQL parser; every metric it queries must be one the operator serves.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use eipsegment_test_support::tool;
use serde_yaml::Value;

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const CHART: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/charts/eipsegment-operator");
const DASHBOARD: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/charts/eipsegment-operator/dashboards/eipsegment-operator.json");
const ALERT_TESTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/monitoring/alerts.test.yaml");

/// The runbook URL the unit tests expect in runbook_url (see the head of alerts.test.yaml).
const RUNBOOK_URL: &str = "https://git.example.com/platform/eipsegment-operator/blob/main/deploy/RUNBOOK.md";

/// The alerts of the chart, as the contract names them.
const ALERTS: &[&str] = &[
    "EipSegmentDeletionBlocked",
    "EipSegmentTerminalErrors",
    "EipSegmentCloudThrottling",
    "EipSegmentUnownedSegments",
    "EipSegmentNoLeader",
    "EipSegmentOperatorDown",
    "EipSegmentNotReady",
    "EipSegmentBlocked",
    "EipSegmentSegmentMissing",
];

/// Every series name the operator serves on /metrics (histograms as their _bucket, _sum and _count),
/// read off its own encoder with one call, one reconcile and one object of each kind counted, and
/// Prometheus' own `up`.
fn served() -> BTreeSet<String> {
    use eipsegment_operator::cloud::Action;
    use eipsegment_operator::cloud::client::CallObserver;
    use eipsegment_operator::telemetry::{Census, Metrics, ObjectCensus, ReadyLabels, SyncedLabels};
    struct One;
    impl Census for One {
        fn take(&self) -> ObjectCensus {
            let region = || "cn-hangzhou".to_string();
            let mut c = ObjectCensus::default();
            c.by_ready.insert(ReadyLabels { region: region(), ready: "True".into(), reason: "Allocated".into() }, 1);
            c.by_synced.insert(SyncedLabels { region: region(), class: "Succeeded".into() }, 1);
            c.pending_deletions.insert(region(), (1, 1.0));
            c.pending_allocations.insert(region(), 1);
            c.unowned_segments.insert(region(), 1);
            c
        }
    }
    let metrics = Metrics::default();
    metrics.count_with(std::sync::Arc::new(One));
    metrics.observe(Action::DescribeEipSegment, "cn-hangzhou", "Throttling", true, std::time::Duration::from_millis(5));
    metrics.reconciled("success");
    metrics.reconcile_took(std::time::Duration::from_millis(5));
    metrics.release_confirmed(std::time::Duration::from_secs(5));
    let mut names: BTreeSet<String> = metrics
        .encode()
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect();
    names.insert("up".into());
    names
}

/// What the dashboard must show at least: objects by Ready reason and Synced class, deletions and
/// the oldest one's age, allocations, unowned segments, cloud calls, their latency, throttling, the
/// leader and reconciles.
const ON_THE_DASHBOARD: &[&str] = &[
    "eipsegment_objects",
    "eipsegment_objects_synced",
    "eipsegment_pending_deletions",
    "eipsegment_oldest_pending_deletion_seconds",
    "eipsegment_pending_allocations",
    "eipsegment_unowned_segments",
    "eipsegment_cloud_calls_total",
    "eipsegment_cloud_call_duration_seconds_bucket",
    "eipsegment_cloud_throttled_total",
    "eipsegment_leader",
    "eipsegment_reconciles_total",
];

/// Runs one of tests/tools/ and returns the path it prints (a built tool, cached).
fn run(program: &str, args: &[&str], dir: &Path) -> Output {
    Command::new(program).args(args).current_dir(dir).output().unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// The `.spec` of the chart's PrometheusRule for release eipsegment-operator in eipsegment-system,
/// as a Prometheus rule file.
fn rendered_rules(sets: &[&str]) -> String {
    let mut cmd = Command::new(tool("build-helm.sh"));
    cmd.args(["template", "eipsegment-operator", CHART, "--namespace", "eipsegment-system"]).args([
        "--show-only",
        "templates/prometheusrule.yaml",
        "--set",
        "prometheusRule.enabled=true",
        "--set",
        "image.allowPlaceholder=true",
    ]);
    for s in sets {
        cmd.args(["--set", s]);
    }
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "helm template: {}", text(&out));
    let rule: Value = serde_yaml::from_slice(&out.stdout).unwrap();
    assert_eq!(rule["kind"], "PrometheusRule");
    serde_yaml::to_string(&rule["spec"]).unwrap()
}

/// A directory holding rules.yaml (the rendering) and a copy of the unit tests beside it.
fn rules_dir(sets: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("rules.yaml"), rendered_rules(sets)).unwrap();
    std::fs::copy(ALERT_TESTS, dir.path().join("alerts.test.yaml")).unwrap();
    dir
}

fn runbook_url() -> String {
    format!("prometheusRule.runbookUrl={RUNBOOK_URL}")
}

#[test]
fn the_rendered_rules_pass_promtool_check_rules() {
    let dir = rules_dir(&[&runbook_url()]);
    let out = run(&tool("build-promtool.sh"), &["check", "rules", "rules.yaml"], dir.path());
    assert!(out.status.success(), "promtool check rules:\n{}", text(&out));
    assert!(text(&out).contains(&format!("SUCCESS: {} rules found", ALERTS.len())), "{}", text(&out));
}

#[test]
fn every_alert_fires_and_resolves_in_the_promtool_unit_tests() {
    let dir = rules_dir(&[&runbook_url()]);
    let out = run(&tool("build-promtool.sh"), &["test", "rules", "alerts.test.yaml"], dir.path());
    assert!(out.status.success(), "promtool test rules:\n{}", text(&out));
    assert!(text(&out).contains("SUCCESS") && !text(&out).contains("FAILED"), "{}", text(&out));
}

/// The unit tests cover what the chart renders: each alert of the rendering is expected firing at
/// some time and not firing at a later time of the same test group.
#[test]
fn the_unit_tests_cover_every_rendered_alert() {
    let rules: Value = serde_yaml::from_str(&rendered_rules(&[])).unwrap();
    let rendered: BTreeSet<&str> = rules["groups"]
        .as_sequence()
        .unwrap()
        .iter()
        .flat_map(|g| g["rules"].as_sequence().unwrap())
        .map(|r| r["alert"].as_str().unwrap())
        .collect();
    assert_eq!(rendered, ALERTS.iter().copied().collect());
    let tests: Value = serde_yaml::from_str(&std::fs::read_to_string(ALERT_TESTS).unwrap()).unwrap();
    let mut fire_then_resolve = BTreeSet::new();
    for group in tests["tests"].as_sequence().unwrap() {
        let cases = group["alert_rule_test"].as_sequence().unwrap();
        for (i, fired) in cases.iter().enumerate() {
            let firing = fired["exp_alerts"].as_sequence().is_some_and(|a| !a.is_empty());
            let resolved_later = cases[i + 1..].iter().any(|later| {
                later["alertname"] == fired["alertname"]
                    && later["exp_alerts"].as_sequence().is_some_and(|a| a.is_empty())
                    && minutes(&later["eval_time"]) > minutes(&fired["eval_time"])
            });
            if firing && resolved_later {
                fire_then_resolve.insert(fired["alertname"].as_str().unwrap());
            }
        }
    }
    assert_eq!(fire_then_resolve, rendered, "alerts that fire and then resolve in alerts.test.yaml");
}

/// An eval_time of the unit tests ("31m", "1h"), in minutes.
fn minutes(v: &Value) -> u64 {
    let s = v.as_str().unwrap();
    let (number, unit) = s.split_at(s.len() - 1);
    let n: u64 = number.parse().unwrap_or_else(|_| panic!("eval_time {s:?}"));
    match unit {
        "m" => n,
        "h" => n * 60,
        _ => panic!("eval_time {s:?}: minutes or hours"),
    }
}

/// The unit tests depend on the values: with other thresholds they fail, so they test the rendering.
#[test]
fn the_unit_tests_fail_on_other_thresholds() {
    let dir = rules_dir(&[
        &runbook_url(),
        "prometheusRule.deletionBlockedSeconds=3600",
        "prometheusRule.unownedFor=2h",
        "prometheusRule.notReadyFor=2h",
        "prometheusRule.blockedFor=30m",
    ]);
    let out = run(&tool("build-promtool.sh"), &["test", "rules", "alerts.test.yaml"], dir.path());
    let report = text(&out);
    assert!(!out.status.success(), "promtool accepted other thresholds:\n{report}");
    for alert in ["EipSegmentDeletionBlocked", "EipSegmentUnownedSegments", "EipSegmentNotReady", "EipSegmentBlocked"] {
        assert!(report.contains(&format!("alertname: {alert}")), "{alert} not reported:\n{report}");
    }
    // Without runbookUrl the expected runbook_url annotations are missing.
    let dir = rules_dir(&[]);
    let out = run(&tool("build-promtool.sh"), &["test", "rules", "alerts.test.yaml"], dir.path());
    assert!(!out.status.success() && text(&out).contains("runbook_url"), "{}", text(&out));
}

/// What dashboard-check reports of a dashboard, or its error.
fn check_dashboard(path: &Path) -> Result<serde_json::Value, String> {
    let out = run(&tool("build-dashboard-check.sh"), &[path.to_str().unwrap()], Path::new(ROOT));
    if out.status.success() { Ok(serde_json::from_slice(&out.stdout).unwrap()) } else { Err(text(&out)) }
}

fn is_served(metric: &str) -> bool {
    static SERVED: std::sync::OnceLock<BTreeSet<String>> = std::sync::OnceLock::new();
    SERVED.get_or_init(served).contains(metric)
}

/// The dashboard by Grafana's schema, querying only served metrics, showing what it must, with a
/// Prometheus data source variable; Err says what is wrong.
fn dashboard_problems(path: &Path) -> Result<(), String> {
    let report = check_dashboard(path)?;
    let variables = report["variables"].as_array().unwrap();
    if !variables.iter().any(|v| v["type"] == "datasource" && v["name"] == "datasource") {
        return Err("no data source variable `datasource`".into());
    }
    let panels = report["panels"].as_array().ok_or("no panels")?;
    let mut titles = BTreeSet::new();
    let mut queried = BTreeSet::new();
    for panel in panels {
        let title = panel["title"].as_str().unwrap();
        if !titles.insert(title) {
            return Err(format!("two panels titled {title:?}"));
        }
        for query in panel["queries"].as_array().unwrap() {
            for metric in query["metrics"].as_array().unwrap() {
                let metric = metric.as_str().unwrap();
                if !is_served(metric) {
                    return Err(format!("panel {title:?} queries {metric}, which the operator does not serve"));
                }
                queried.insert(metric.to_string());
            }
        }
    }
    for v in variables {
        for metric in v["metrics"].as_array().into_iter().flatten().map(|m| m.as_str().unwrap()) {
            if !is_served(metric) {
                return Err(format!("variable {} queries {metric}, which the operator does not serve", v["name"]));
            }
        }
    }
    let missing: Vec<&&str> = ON_THE_DASHBOARD.iter().filter(|m| !queried.contains(**m)).collect();
    if !missing.is_empty() {
        return Err(format!("no panel shows {missing:?}"));
    }
    Ok(())
}

#[test]
fn the_dashboard_follows_grafanas_schema_and_shows_the_operators_metrics() {
    dashboard_problems(Path::new(DASHBOARD)).unwrap();
    let report = check_dashboard(Path::new(DASHBOARD)).unwrap();
    // Latency as quantiles of the histogram.
    let latency = report["panels"].as_array().unwrap().iter().find(|p| p["title"] == "Cloud call latency").unwrap();
    let exprs: Vec<&str> = latency["queries"].as_array().unwrap().iter().map(|q| q["expr"].as_str().unwrap()).collect();
    for quantile in ["0.5", "0.9", "0.99"] {
        assert!(exprs.iter().any(|e| e.starts_with(&format!("histogram_quantile({quantile},"))), "{exprs:?}");
    }
}

/// A copy of the dashboard with `edit` applied, for the checks to refuse.
fn broken(dir: &Path, name: &str, edit: impl FnOnce(&mut serde_json::Value)) -> PathBuf {
    let mut board: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(DASHBOARD).unwrap()).unwrap();
    edit(&mut board);
    let path = dir.join(format!("{name}.json"));
    std::fs::write(&path, serde_json::to_string_pretty(&board).unwrap()).unwrap();
    path
}

/// The first panel that is not a row.
fn first_panel(board: &mut serde_json::Value) -> &mut serde_json::Value {
    board["panels"].as_array_mut().unwrap().iter_mut().find(|p| p["type"] != "row").unwrap()
}

#[test]
fn a_broken_dashboard_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.json");
    let whole = std::fs::read_to_string(DASHBOARD).unwrap();
    std::fs::write(&truncated, &whole[..whole.len() / 2]).unwrap();
    let cases: Vec<(PathBuf, &str)> = vec![
        (truncated, "not a dashboard"),
        (broken(dir.path(), "unknown-field", |b| first_panel(b)["titel"] = "x".into()), "unexpected field 'titel'"),
        (
            broken(dir.path(), "unknown-option", |b| first_panel(b)["options"]["legend"]["shownLegend"] = true.into()),
            "unexpected field 'shownLegend'",
        ),
        (broken(dir.path(), "mistyped", |b| first_panel(b)["gridPos"]["w"] = "12".into()), "gridPos.w"),
        (broken(dir.path(), "panel-type", |b| first_panel(b)["type"] = "timeseries2".into()), "no panel type"),
        (
            broken(dir.path(), "query-field", |b| first_panel(b)["targets"][0]["exp"] = "up".into()),
            "unexpected field 'exp'",
        ),
        (
            broken(dir.path(), "promql", |b| first_panel(b)["targets"][0]["expr"] = "sum by (region (up)".into()),
            "not PromQL",
        ),
        (
            broken(dir.path(), "variable", |b| {
                first_panel(b)["targets"][0]["expr"] = r#"eipsegment_objects{region=~"$zone"}"#.into()
            }),
            "$zone is no variable",
        ),
        (
            broken(dir.path(), "datasource", |b| first_panel(b)["datasource"]["uid"] = "prometheus-prod".into()),
            "not a data source variable",
        ),
        (
            broken(dir.path(), "unknown-metric", |b| {
                first_panel(b)["targets"][0]["expr"] = r#"sum(eipsegment_objects_total{job=~"$job"})"#.into()
            }),
            "eipsegment_objects_total, which the operator does not serve",
        ),
        (
            broken(dir.path(), "variable-metric", |b| {
                b["templating"]["list"][1]["query"]["query"] = "label_values(eipsegment_up, job)".into()
            }),
            "eipsegment_up, which the operator does not serve",
        ),
        (
            broken(dir.path(), "loki-datasource", |b| b["templating"]["list"][0]["query"] = "loki".into()),
            "not prometheus",
        ),
        (
            broken(dir.path(), "no-datasource-variable", |b| {
                b["templating"]["list"].as_array_mut().unwrap().retain(|v| v["type"] != "datasource")
            }),
            "no data source variable",
        ),
        (
            broken(dir.path(), "missing-panel", |b| {
                b["panels"].as_array_mut().unwrap().retain(|p| p["title"] != "Unowned segments")
            }),
            "eipsegment_unowned_segments",
        ),
    ];
    for (path, want) in cases {
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        let err = dashboard_problems(&path).expect_err(&name);
        assert!(err.contains(want), "{name}: expected {want:?} in {err}");
    }
}

#[test]
fn the_alerts_query_only_what_the_operator_serves() {
    let names = served();
    for want in
        ["eipsegment_objects", "eipsegment_cloud_call_duration_seconds_bucket", "eipsegment_cloud_throttled_total"]
    {
        assert!(names.contains(want), "{want} not among the served {names:?}");
    }
    let rules = rendered_rules(&[]);
    let queried: BTreeSet<&str> = rules
        .match_indices("eipsegment_")
        .map(|(at, _)| {
            let rest = &rules[at..];
            &rest[..rest.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(rest.len())]
        })
        .collect();
    assert!(queried.len() >= 5, "the rules name only {queried:?}");
    let unknown: Vec<&&str> = queried.iter().filter(|m| !is_served(m)).collect();
    assert!(unknown.is_empty(), "the alerts query metrics the operator does not serve: {unknown:?}");
}

const RUNBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/deploy/RUNBOOK.md");

/// How EipSegmentNotReady names its section and anchor, as Prometheus renders them per alert: the
/// Ready reason's own, or "Not ready" for a cloud status the operator does not know (the promtool
/// unit tests render both branches).
const NOT_READY_SECTION: &str =
    r#"{{ if eq $labels.reason "CloudStatus" }}Not ready{{ else }}{{ $labels.reason }}{{ end }}"#;
const NOT_READY_ANCHOR: &str =
    r#"{{ if eq $labels.reason "CloudStatus" }}not-ready{{ else }}{{ $labels.reason | toLower }}{{ end }}"#;

/// deploy/RUNBOOK.md's headings: every anchor GitHub gives them, and the level-3 headings under
/// "## Alerts" and under "## Ready reasons".
struct Runbook {
    anchors: BTreeSet<String>,
    alert_sections: BTreeSet<String>,
    reason_sections: BTreeSet<String>,
}

/// GitHub's anchor of a heading: lower case, punctuation dropped (hyphens and underscores kept),
/// spaces as hyphens.
fn github_anchor(heading: &str) -> String {
    heading
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

fn runbook() -> Runbook {
    let text = std::fs::read_to_string(RUNBOOK).expect("deploy/RUNBOOK.md");
    let mut book =
        Runbook { anchors: BTreeSet::new(), alert_sections: BTreeSet::new(), reason_sections: BTreeSet::new() };
    let (mut part, mut fenced) = (String::new(), false);
    let mut seen: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        }
        let Some((hashes, heading)) = line.split_once(' ').filter(|(h, _)| !fenced && h.chars().all(|c| c == '#'))
        else {
            continue;
        };
        // A repeated anchor gets -1, -2, … on GitHub.
        let anchor = github_anchor(heading);
        let n = seen.entry(anchor.clone()).or_default();
        book.anchors.insert(if *n == 0 { anchor } else { format!("{anchor}-{n}") });
        *n += 1;
        match hashes.len() {
            2 => part = heading.to_string(),
            3 if part == "Alerts" => {
                book.alert_sections.insert(heading.to_string());
            }
            3 if part == "Ready reasons" => {
                book.reason_sections.insert(heading.to_string());
            }
            _ => {}
        }
    }
    book
}

/// Each rendered alert's section (from its description) and runbook_url anchor.
fn alert_links() -> Vec<(String, String, String)> {
    let rules: Value = serde_yaml::from_str(&rendered_rules(&[&runbook_url()])).unwrap();
    let mut links = Vec::new();
    for rule in rules["groups"].as_sequence().unwrap().iter().flat_map(|g| g["rules"].as_sequence().unwrap()) {
        let name = rule["alert"].as_str().unwrap().to_string();
        let description = rule["annotations"]["description"].as_str().unwrap();
        let (_, section) = description.split_once("Runbook: deploy/RUNBOOK.md, section \"").expect(&name);
        let section = section.strip_suffix("\".").unwrap_or_else(|| panic!("{name}: {description}"));
        let url = rule["annotations"]["runbook_url"].as_str().unwrap();
        let anchor = url.strip_prefix(&format!("{RUNBOOK_URL}#")).unwrap_or_else(|| panic!("{name}: {url}"));
        links.push((name, section.to_string(), anchor.to_string()));
    }
    links
}

/// Every alert's runbook link lands on a heading of deploy/RUNBOOK.md, the one its description
/// names; EipSegmentNotReady's, for every Ready reason, on that reason's.
#[test]
fn every_alert_links_a_section_of_the_runbook() {
    let book = runbook();
    let reasons = eipsegment_operator::lifecycle::conditions::READY_REASONS;
    for (name, section, anchor) in alert_links() {
        let landings: Vec<(String, String)> = if name == "EipSegmentNotReady" {
            assert_eq!((section.as_str(), anchor.as_str()), (NOT_READY_SECTION, NOT_READY_ANCHOR));
            let each_reason = reasons.iter().map(|r| (r.to_string(), r.to_lowercase()));
            each_reason.chain([("Not ready".to_string(), "not-ready".to_string())]).collect()
        } else {
            vec![(section, anchor)]
        };
        for (section, anchor) in landings {
            assert!(book.anchors.contains(&anchor), "{name}: #{anchor} is no heading of deploy/RUNBOOK.md");
            assert_eq!(github_anchor(&section), anchor, "{name}: section {section:?} is not at #{anchor}");
        }
    }
}

/// deploy/RUNBOOK.md has a section under "Alerts" for each alert and under "Ready reasons" for each
/// Ready reason the operator writes, and none for an alert or a reason that does not exist.
#[test]
fn the_runbook_has_a_section_for_each_alert_and_ready_reason_and_no_other() {
    let book = runbook();
    let named: BTreeSet<String> = alert_links()
        .into_iter()
        .map(|(_, section, _)| if section == NOT_READY_SECTION { "Not ready".to_string() } else { section })
        .collect();
    assert_eq!(named.len(), ALERTS.len(), "one section per alert: {named:?}");
    assert_eq!(book.alert_sections, named, "the sections under \"## Alerts\" and the alerts' sections");
    let reasons: BTreeSet<String> =
        eipsegment_operator::lifecycle::conditions::READY_REASONS.iter().map(|r| r.to_string()).collect();
    assert_eq!(book.reason_sections, reasons, "the sections under \"## Ready reasons\" and READY_REASONS");
}

#[test]
fn github_anchors_follow_githubs_rules() {
    assert_eq!(github_anchor("Deletion blocked"), "deletion-blocked");
    assert_eq!(github_anchor("AdoptionTargetNotFound"), "adoptiontargetnotfound");
    assert_eq!(github_anchor("Retain and billing"), "retain-and-billing");
    assert_eq!(
        github_anchor("What delete does, and what the operator promises"),
        "what-delete-does-and-what-the-operator-promises"
    );
    assert_eq!(github_anchor("4. Install the chart"), "4-install-the-chart");
}
