//! What the run holds against what it did, gathered once the faults have stopped and the objects
//! are gone: the cloud's history and state in both accounts and its call counters, the cluster's
//! events, and the secrets found in every output (lists, /metrics, events, the operator log).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::path::Path;

use serde_json::{Value, json};
use vpc_simulator::{DEFAULT_ACCOUNT, OTHER_ACCOUNT};

use crate::hygiene::{LogScan, Needles, scan_log};
use crate::run::Run;
use crate::supervisor::{Http, SupervisorReport};
use eipsegment_test_support::{Cluster, Simulator};

pub struct Evidence {
    /// Every segment of the run's two accounts (`GET /__admin/history?account=`).
    pub history: Vec<Value>,
    /// The IDs of the segments left in the cloud in those accounts.
    pub present: HashSet<String>,
    /// Per account: allocated, releases accepted, left in the cloud.
    pub per_account: BTreeMap<&'static str, Value>,
    /// How many segments the cloud holds in all accounts.
    pub all_segments: usize,
    /// The simulator's answers, by action and outcome.
    pub counters: Value,
    /// The cluster's events (in the namespaces that stayed), counted by reason, and the reasons
    /// of those about each object (by UID).
    pub event_reasons: BTreeMap<String, u64>,
    pub events_by_uid: HashMap<String, BTreeSet<String>>,
    pub log: LogScan,
    /// Secrets found in any output, sorted, without duplicates.
    pub secret_findings: Vec<String>,
}

impl Evidence {
    pub fn gather(
        c: &Cluster,
        http: &Http,
        sim: &Simulator,
        needles: &Needles,
        log_path: &Path,
        run: &Run,
        sup: &SupervisorReport,
    ) -> Evidence {
        let (history, present, per_account) = accounts(http, sim);
        let all_segments =
            http.admin(sim, "GET", "history", None)["segments"].as_array().cloned().unwrap_or_default().len();
        let counters = http.admin(sim, "GET", "counters", None);
        let events_json = c.kubectl(&["get", "events", "-A", "-o", "json"]);
        let mut secret_findings = sup.secret_findings.clone();
        secret_findings.extend(run.secret_findings.iter().cloned());
        needles.scan("events (kubectl get events -A)", &events_json, &mut secret_findings);
        let log = scan_log(log_path, needles, &mut secret_findings);
        if log.trace == 0 {
            secret_findings.push(format!(
                "no TRACE line in {}: the check of the most verbose logging proves nothing",
                log_path.display()
            ));
        }
        secret_findings.sort();
        secret_findings.dedup();
        let events = events(&events_json);
        let event_reasons = event_reasons(&events);
        let events_by_uid = events_by_uid(&events);
        Evidence {
            history,
            present,
            per_account,
            all_segments,
            counters,
            event_reasons,
            events_by_uid,
            log,
            secret_findings,
        }
    }
}

/// The cloud, account by account: the history of its segments, the IDs of those left, and its figures.
fn accounts(http: &Http, sim: &Simulator) -> (Vec<Value>, HashSet<String>, BTreeMap<&'static str, Value>) {
    let mut history: Vec<Value> = Vec::new();
    let mut present_ids: HashSet<String> = HashSet::new();
    let mut per_account = BTreeMap::new();
    for account in [DEFAULT_ACCOUNT, OTHER_ACCOUNT] {
        let h = http.admin(sim, "GET", &format!("history?account={account}"), None)["segments"]
            .as_array()
            .cloned()
            .expect("history segments");
        let s = http.admin(sim, "GET", &format!("state?account={account}"), None);
        let ids: Vec<String> = s["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["instanceId"].as_str().map(String::from))
            .collect();
        let released: usize = h.iter().map(|s| s["releaseAcceptedAtMs"].as_array().map_or(0, Vec::len)).sum();
        per_account
            .insert(account, json!({"allocated": h.len(), "releasesAccepted": released, "leftInCloud": ids.len()}));
        history.extend(h);
        present_ids.extend(ids);
    }
    (history, present_ids, per_account)
}

fn events(events_json: &str) -> Vec<Value> {
    serde_json::from_str::<Value>(events_json).ok().and_then(|v| v["items"].as_array().cloned()).unwrap_or_default()
}

fn event_reasons(events: &[Value]) -> BTreeMap<String, u64> {
    let mut reasons: BTreeMap<String, u64> = BTreeMap::new();
    for e in events {
        *reasons.entry(e["reason"].as_str().unwrap_or_default().to_string()).or_default() +=
            e["count"].as_u64().unwrap_or(1);
    }
    reasons
}

fn events_by_uid(events: &[Value]) -> HashMap<String, BTreeSet<String>> {
    let mut by_uid: HashMap<String, BTreeSet<String>> = HashMap::new();
    for e in events {
        if let (Some(uid), Some(reason)) = (e["involvedObject"]["uid"].as_str(), e["reason"].as_str()) {
            by_uid.entry(uid.to_string()).or_default().insert(reason.to_string());
        }
    }
    by_uid
}
