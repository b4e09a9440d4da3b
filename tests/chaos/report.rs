//! The report of a run: the checks, what each fault met, each namespace's checks and figures, and
//! the figures as tables, a timeline of each violation (the object, its segments, the operator's
//! lines about them), and all of it as JSON, written to `target/chaos/<profile>-seed<seed>.*` with
//! the cloud's history and the operator log.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use vpc_simulator::{DEFAULT_ACCOUNT, OTHER_ACCOUNT};

use crate::checks::{CHECKS, Findings, Violation};
use crate::delivery::Delivery;
use crate::evidence::Evidence;
use crate::plan::{Cred, Plan, Profile, faults};
use crate::run::{Run, Tracked};
use crate::supervisor::SupervisorReport;
use crate::tenants::{self, NamespaceRow, PER_NAMESPACE};
use crate::{Chaos, Drain, fmt_ms};

/// The width of the names column of the checks table, and the least one of the figures table.
const NAME_WIDTH: usize = 48;
/// The events whose counts the figures show.
const SELECTED_EVENTS: [&str; 9] = [
    "HandedOver",
    "NotOwner",
    "ClaimRefused",
    "AccountMismatch",
    "Retained",
    "Adopted",
    "NothingToRelease",
    "UnprovenIdentity",
    "PolicyRefused",
];

pub struct Report<'r> {
    pub profile: &'r Profile,
    pub seed: u64,
    pub plan: &'r Plan,
    pub t0_ms: u64,
    pub total_seconds: f64,
    pub run: &'r Run<'r>,
    pub sup: &'r SupervisorReport,
    pub chaos: &'r Chaos,
    pub drain: &'r Drain,
    pub evidence: &'r Evidence,
    pub findings: &'r Findings,
    pub delivery: &'r Delivery,
    pub log_path: &'r Path,
}

impl Report<'_> {
    /// Prints the tables and the timelines of what went wrong, and writes them to files with the
    /// JSON report. Returns the tables.
    pub fn publish(&self) -> String {
        let table = self.tables();
        println!("\n{table}");
        let details = self.timelines();
        if !self.findings.violations.is_empty() {
            println!("violations:{details}");
        }
        self.write(&table, &details);
        table
    }

    fn violations(&self) -> &[Violation] {
        &self.findings.violations
    }

    fn check_values(&self) -> Vec<(&'static str, usize)> {
        CHECKS.iter().map(|&k| (k, self.violations().iter().filter(|v| v.check == k).count())).collect()
    }

    // ---- Tables ----

    fn tables(&self) -> String {
        let calls = calls(&self.evidence.counters);
        let mut table = self.checks_table();
        table += &self.faults_table();
        table += &namespaces_table(&self.namespace_rows());
        let mut figures = self.object_figures();
        figures.extend(self.segment_figures());
        figures.extend(self.operator_figures());
        figures.extend(self.fault_figures(&calls));
        figures.extend(self.time_figures());
        table += &figures_table(&figures);
        table += "cloud calls by outcome:\n";
        for (action, (_, detail)) in &calls {
            table += &format!("  {action}: {detail}\n");
        }
        table
    }

    fn checks_table(&self) -> String {
        let w = NAME_WIDTH;
        let line = format!("+{}+{}+\n", "-".repeat(w + 2), "-".repeat(12));
        let mut table = format!("chaos run: profile {}, seed {}\n", self.profile.name, self.seed);
        table += &line;
        table += &format!("| {:<w$} | {:>10} |\n", "check (each must be 0)", "value");
        table += &line;
        for (k, v) in &self.check_values() {
            table += &format!("| {:<w$} | {:>10} |\n", k, v);
        }
        table += &line;
        table
    }

    /// The faults: planned, happened, met.
    fn faults_table(&self) -> String {
        let rows = &self.delivery.rows;
        let kw = rows.iter().map(|r| r.kind.len()).max().unwrap_or(10).max(5);
        let pw = rows.iter().map(|r| r.planned.len()).max().unwrap_or(7).max(7);
        let mut table = format!("\n{:<kw$} | {:>pw$} | {:>8} | what it met\n", "fault", "planned", "happened");
        table += &format!("{}-+-{}-+-{}-+-{}\n", "-".repeat(kw), "-".repeat(pw), "-".repeat(8), "-".repeat(40));
        for r in rows {
            table += &format!("{:<kw$} | {:>pw$} | {:>8} | {}\n", r.kind, r.planned, r.happened, r.met);
        }
        table
    }

    fn namespace_rows(&self) -> Vec<NamespaceRow> {
        tenants::rows(self.run, self.evidence, self.violations())
    }

    /// The victims' objects (the hostile tenant's are in the namespaces table).
    fn object_figures(&self) -> Vec<(String, String)> {
        let objects: Vec<&Tracked> = self.run.objects.iter().filter(|o| o.hostile.is_none()).collect();
        let with_cred = |c: Cred| objects.iter().filter(|o| o.cred == c).count();
        vec![
            (
                "objects created (Retain), adopters among them".into(),
                format!(
                    "{} ({}), {}",
                    objects.len(),
                    objects.iter().filter(|o| o.retain).count(),
                    objects.iter().filter(|o| o.adopts.is_some()).count()
                ),
            ),
            (
                "objects with credentials from keys-a / keys-b / their own".into(),
                format!("{} / {} / {}", with_cred(Cred::KeysA), with_cred(Cred::KeysB), with_cred(Cred::Own)),
            ),
            (
                "objects restored (incarnations in all)".into(),
                format!("{} ({})", self.restored(), objects.iter().map(|o| o.incarnations.len()).sum::<usize>()),
            ),
            ("names reused after their object was gone".into(), self.run.names_reused.to_string()),
            (
                "deletions asked during chaos / after".into(),
                format!("{} / {}", self.chaos.deleted_during_chaos, self.drain.remaining),
            ),
        ]
    }

    fn segment_figures(&self) -> Vec<(String, String)> {
        let account_figure = |a: &str| {
            let v = &self.evidence.per_account[a];
            format!("{} / {} / {}", v["allocated"], v["releasesAccepted"], v["leftInCloud"])
        };
        let f = &self.findings.figures;
        vec![
            (
                "segments allocated / releases accepted".into(),
                format!("{} / {}", self.segments_allocated(), self.releases_accepted()),
            ),
            (format!("account {DEFAULT_ACCOUNT}: allocated / releases / left"), account_figure(DEFAULT_ACCOUNT)),
            (format!("account {OTHER_ACCOUNT}: allocated / releases / left"), account_figure(OTHER_ACCOUNT)),
            ("objects deleted before any allocation".into(), f.deleted_before_allocation.to_string()),
            ("segments created after their deletion was asked".into(), f.allocated_after_delete.to_string()),
            ("segments released more than once".into(), f.released_twice.to_string()),
            (
                "Retain segments kept in the cloud (by a Retain adopter)".into(),
                format!("{} ({})", f.retained_kept, f.kept_by_adopter),
            ),
            (
                "releases while a refused adopter still named the segment".into(),
                f.released_under_refused_adopter.to_string(),
            ),
            ("segments removed out of band".into(), f.out_of_band.to_string()),
        ]
    }

    fn operator_figures(&self) -> Vec<(String, String)> {
        let sup = self.sup;
        vec![
            ("operator SIGKILLs".into(), sup.kills.len().to_string()),
            (
                "SIGKILLs <= 2 s after the cloud accepted an allocation or release".into(),
                self.kills_near_calls().to_string(),
            ),
            ("operator starts".into(), (sup.starts + 1).to_string()),
            (
                "kube-apiserver restarts".into(),
                if self.chaos.apiserver.is_null() {
                    "0".into()
                } else {
                    format!("1 (down {}s)", self.plan.apiserver_down_s)
                },
            ),
        ]
    }

    /// The simulator's faults, its answers by action, and the events the faults led to.
    fn fault_figures(&self, calls: &BTreeMap<String, (u64, String)>) -> Vec<(String, String)> {
        let mut figures: Vec<(String, String)> = Vec::new();
        for (k, v) in &self.delivery.injected {
            figures.push((format!("faults injected: {k}"), v.to_string()));
        }
        figures.push(("faults injected: delays (20%, 100-4000 ms)".into(), "not counted".into()));
        for (action, (total, _)) in calls {
            figures.push((format!("cloud calls answered: {action}"), total.to_string()));
        }
        figures.push((
            "events (namespaces that stayed): ".to_string() + &SELECTED_EVENTS.join(", "),
            SELECTED_EVENTS
                .iter()
                .map(|r| self.evidence.event_reasons.get(*r).copied().unwrap_or(0).to_string())
                .collect::<Vec<_>>()
                .join(", "),
        ));
        figures
    }

    fn time_figures(&self) -> Vec<(String, String)> {
        let drain = self.drain;
        let log = &self.evidence.log;
        let within = |s: Option<f64>| s.map_or("not within 120 s".to_string(), |s| format!("{s:.1} s"));
        vec![
            ("total duration".into(), format!("{:.1} s", self.total_seconds)),
            (
                "start to faults stopping".into(),
                format!("{:.1} s", (drain.faults_stopped_ms - self.t0_ms) as f64 / 1000.0),
            ),
            (
                "faults stopped to all objects gone / and Secrets, namespaces".into(),
                format!("{} / {}", within(drain.objects_drain), within(drain.all_drain)),
            ),
            (
                "operator log lines (TRACE), size".into(),
                format!("{} ({}), {:.1} MB", log.lines, log.trace, log.bytes as f64 / 1e6),
            ),
            ("lists, /metrics scrapes checked for secrets".into(), format!("{}, {}", self.run.lists, self.sup.scrapes)),
        ]
    }

    // ---- Figures from the cloud's history ----

    fn segments_allocated(&self) -> usize {
        self.evidence.history.iter().filter(|s| s["allocationToken"].is_string()).count()
    }

    fn releases_accepted(&self) -> usize {
        self.evidence.history.iter().map(|s| s["releaseAcceptedAtMs"].as_array().map_or(0, Vec::len)).sum()
    }

    /// Kills that came at most 2 s after the cloud accepted an allocation or a release.
    fn kills_near_calls(&self) -> usize {
        let accepted: Vec<u64> = self
            .evidence
            .history
            .iter()
            .flat_map(|s| {
                s["createdAtMs"]
                    .as_u64()
                    .into_iter()
                    .chain(s["releaseAcceptedAtMs"].as_array().into_iter().flatten().filter_map(Value::as_u64))
            })
            .collect();
        self.sup.kills.iter().filter(|k| accepted.iter().any(|&a| a <= k.at_ms && k.at_ms - a <= 2000)).count()
    }

    fn restored(&self) -> usize {
        self.run.objects.iter().filter(|o| o.incarnations.len() > 1).count()
    }

    // ---- Timelines of what went wrong ----

    fn timelines(&self) -> String {
        let mut details = String::new();
        for v in self.violations() {
            details += &format!("\n[{}] {}\n", v.check, v.what);
            if let Some(o) = &v.object {
                details += &self.object_line(o);
            }
            for s in &v.segments {
                details += &self.segment_line(s);
            }
            if let Some(o) = &v.object {
                details += &self.log_excerpt(o, &v.segments);
            }
        }
        details
    }

    fn object_line(&self, o: &Tracked) -> String {
        let at = |ms: u64| fmt_ms(self.t0_ms, ms);
        format!(
            "  object {}/{} wave {} retain {} adopts {:?} credentials {:?}: created {}, delete asked {} ({}), seen gone {}; \
             incarnations {:?}; status named {:?}; tokens {:?}; accounts {:?}; errors {:?}; Ready reasons {:?}\n",
            o.namespace,
            o.name,
            o.wave + 1,
            o.retain,
            o.adopts,
            o.cred,
            at(o.created_ms),
            o.delete_ms.map_or("never".into(), at),
            o.deleted_by.unwrap_or("-"),
            o.gone_ms.map_or("never".into(), at),
            o.incarnations.iter().map(|i| (&i.uid, i.removed_ms.map(at))).collect::<Vec<_>>(),
            o.segments_seen,
            o.tokens_seen,
            o.accounts_seen,
            o.errors_seen,
            o.reasons_seen
        )
    }

    fn segment_line(&self, s: &Value) -> String {
        let at = |ms: u64| fmt_ms(self.t0_ms, ms);
        let rel: Vec<String> = s["releaseAcceptedAtMs"]
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_u64).map(at).collect())
            .unwrap_or_default();
        format!(
            "  segment {} account {} token {}: created {}, releases accepted {:?}, gone {}\n",
            s["instanceId"].as_str().unwrap_or("?"),
            s["ownerAccount"].as_str().unwrap_or("?"),
            s["allocationToken"],
            s["createdAtMs"].as_u64().map_or("?".into(), at),
            rel,
            s["goneAtMs"].as_u64().map_or("never".into(), at)
        )
    }

    /// The operator's last lines about the object (any incarnation) and these segments, from a
    /// second before its creation to 5 s after it was seen gone.
    fn log_excerpt(&self, o: &Tracked, segments: &[Value]) -> String {
        let mut keys: Vec<String> = o.incarnations.iter().map(|i| i.uid.clone()).collect();
        keys.extend(segments.iter().filter_map(|s| s["instanceId"].as_str().map(String::from)));
        let window = (o.created_ms.saturating_sub(1000), o.gone_ms.unwrap_or(u64::MAX).saturating_add(5000));
        log_lines(self.log_path, &o.name, &keys, window, 80).iter().map(|l| format!("    | {l}\n")).collect()
    }

    // ---- Files ----

    /// The JSON report, the cloud's history, the tables with the timelines, and a copy of the
    /// operator log (the cluster directory goes with this process).
    fn write(&self, table: &str, details: &str) {
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target").join("chaos");
        std::fs::create_dir_all(&dir).unwrap();
        let stem = format!("{}-seed{}", self.profile.name, self.seed);
        let json_path = dir.join(format!("{stem}.json"));
        std::fs::write(&json_path, serde_json::to_string_pretty(&self.json()).unwrap()).unwrap();
        std::fs::write(
            dir.join(format!("{stem}.history.json")),
            serde_json::to_string_pretty(&self.evidence.history).unwrap(),
        )
        .unwrap();
        let violations = if self.violations().is_empty() { String::new() } else { format!("violations:{details}") };
        std::fs::write(dir.join(format!("{stem}.txt")), format!("{table}{violations}")).unwrap();
        let kept = dir.join(format!("{stem}.operator.log"));
        let _ = std::fs::copy(self.log_path, &kept);
        println!("chaos: report in {}, operator log in {}", json_path.display(), kept.display());
    }

    fn json(&self) -> Value {
        let (run, sup) = (self.run, self.sup);
        json!({
            "profile": self.profile,
            "seed": self.seed,
            "faults": faults(self.profile),
            "checks": self.check_values().iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "faultKinds": self.delivery.rows.iter().map(|r| (r.key.to_string(), json!({
                "kind": r.kind, "planned": r.planned, "happened": r.happened, "met": r.met, "detail": r.detail,
            }))).collect::<serde_json::Map<_, _>>(),
            "figures": self.figures_json(),
            "apiserverRestart": self.chaos.apiserver,
            "startedAtMs": self.t0_ms,
            "faultsStoppedAtMs": self.drain.faults_stopped_ms,
            "kills": sup.kills,
            "unexpectedExits": sup.unexpected_exits,
            "violations": self.violations(),
            "namespaces": run.namespaces,
            "secrets": run.fates,
            "switches": run.switches,
            "adoptions": run.adoptions,
            "restores": run.restores,
            "hostileActs": run.hostile.acts,
            "perNamespace": self.namespace_rows(),
            "postponed": run.postponed,
            "objects": run.objects,
            "plan": self.plan,
        })
    }

    fn figures_json(&self) -> Value {
        let (run, sup, evidence, drain) = (self.run, self.sup, self.evidence, self.drain);
        json!({
            "objectsCreated": run.objects.len(),
            "retainObjects": run.objects.iter().filter(|o| o.retain).count(),
            "objectsRestored": self.restored(),
            "namesReused": run.names_reused,
            "deletionsDuringChaos": self.chaos.deleted_during_chaos,
            "deletionsAfterFaults": drain.remaining,
            "segmentsAllocated": self.segments_allocated(),
            "releasesAccepted": self.releases_accepted(),
            "accounts": evidence.per_account,
            "segments": self.findings.figures,
            "killsWithin2sOfAcceptedMutation": self.kills_near_calls(),
            "kills": sup.kills.len(),
            "operatorStarts": sup.starts + 1,
            "faultsInjected": self.delivery.injected.iter().map(|(k, v)| (k.to_string(), json!(v))).collect::<serde_json::Map<_, _>>(),
            "malformedAnswers": self.delivery.malformed,
            "events": evidence.event_reasons,
            "cloudCalls": evidence.counters,
            "totalSeconds": self.total_seconds,
            "chaosSeconds": (self.chaos.end_ms - self.t0_ms) as f64 / 1000.0,
            "drainSeconds": drain.objects_drain,
            "drainAllSeconds": drain.all_drain,
            "operatorLogLines": evidence.log.lines,
            "operatorLogBytes": evidence.log.bytes,
            "operatorLogTraceLines": evidence.log.trace,
            "listsChecked": run.lists,
            "metricsScrapesChecked": sup.scrapes,
        })
    }
}

/// The simulator's answers by action: how many, and how many of each outcome.
fn calls(counters: &Value) -> BTreeMap<String, (u64, String)> {
    counters
        .as_object()
        .unwrap()
        .iter()
        .map(|(action, outcomes)| {
            let o = outcomes.as_object().unwrap();
            let total = o.values().filter_map(Value::as_u64).sum();
            let detail = o.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
            (action.clone(), (total, detail))
        })
        .collect()
}

/// Each namespace: its rule, objects and segments, and the checks that concern it.
fn namespaces_table(rows: &[NamespaceRow]) -> String {
    let mut header = vec![
        "namespace (tenancy rule)".to_string(),
        "objects".into(),
        "segments / releases / left".into(),
        "released once".into(),
    ];
    header.extend(PER_NAMESPACE.iter().map(|(_, title)| title.to_string()));
    let mut lines = vec![header];
    for r in rows {
        let mut line = vec![
            format!("{} ({})", r.namespace, r.rule),
            r.objects.to_string(),
            format!("{} / {} / {}", r.allocated, r.releases, r.left),
            format!("{} of {}", r.released_once, r.to_release),
        ];
        line.extend(PER_NAMESPACE.iter().map(|(c, _)| r.checks[c].to_string()));
        lines.push(line);
    }
    let widths: Vec<usize> = (0..lines[0].len()).map(|i| lines.iter().map(|l| l[i].len()).max().unwrap_or(0)).collect();
    let format_line = |l: &Vec<String>| {
        let cells: Vec<String> = l.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
        cells.join(" | ").trim_end().to_string() + "\n"
    };
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    let mut table = "\nper namespace (the checks among them each 0; released once: of the segments every keeper of \
                     which is gone, none with Retain)\n"
        .to_string();
    table += &format_line(&lines[0]);
    table += &(rule.join("-+-") + "\n");
    lines[1..].iter().for_each(|l| table += &format_line(l));
    table
}

fn figures_table(figures: &[(String, String)]) -> String {
    let fw = figures.iter().map(|(k, _)| k.len()).max().unwrap_or(10).max(NAME_WIDTH);
    let vw = figures.iter().map(|(_, v)| v.len()).max().unwrap_or(10).max(10);
    let fline = format!("+{}+{}+\n", "-".repeat(fw + 2), "-".repeat(vw + 2));
    let mut table = format!("\n{fline}| {:<fw$} | {:>vw$} |\n{fline}", "figure", "value");
    for (k, v) in figures {
        table += &format!("| {k:<fw$} | {v:>vw$} |\n");
    }
    table += &fline;
    table
}

/// The operator's own lines (not TRACE, nor the DEBUG lines of each fact gathered and each pass
/// ended) about this object or its segments within `window` (epoch ms), with the harness's restart
/// markers, for a timeline.
fn log_lines(log: &Path, name: &str, keys: &[String], window: (u64, u64), limit: usize) -> Vec<String> {
    let Ok(f) = std::fs::File::open(log) else { return vec![] };
    let at_ms = |ts: &str| chrono::DateTime::parse_from_rfc3339(ts.trim()).ok().map(|d| d.timestamp_millis() as u64);
    let object = format!("object={name}");
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut reader = BufReader::new(f);
    while reader.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
        let line = String::from_utf8_lossy(&buf).trim_end().to_string();
        buf.clear();
        let (ts, wanted) = if let Some(marker) = line.strip_prefix("---- chaos:") {
            (marker.rsplit(" at ").next().and_then(|t| at_ms(t.trim_end_matches('-'))), true)
        } else {
            let about = line.split(' ').any(|w| w == object) || keys.iter().any(|k| line.contains(k.as_str()));
            (
                line.split(' ').next().and_then(at_ms),
                about
                    && line.contains("eipsegment_operator")
                    && !line.contains(" TRACE ")
                    && !line.contains(": gathering object=")
                    && !line.contains("controller: reconciled object="),
            )
        };
        if wanted && ts.is_some_and(|t| t >= window.0 && t <= window.1) {
            out.push(line.chars().take(400).collect());
        }
    }
    if out.len() > limit { out.split_off(out.len() - limit) } else { out }
}
