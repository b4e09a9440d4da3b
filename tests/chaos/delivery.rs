//! Whether the chaos was delivered: the faults the simulator injected, by kind, and for each kind
//! of fault the run does (credential switches, Secret and namespace deletions, malformed answers,
//! duplicate adoptions, restores, the hostile tenant's acts) how many were planned, how many
//! happened, and what they met.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::{Value, json};

use crate::checks::{NOT_DELIVERED, Violation};
use crate::evidence::Evidence;
use crate::hostile::HostileRecord;
use crate::plan::{HostileAct, Plan, PlannedFault, Profile};
use crate::run::{self, Run};
use crate::supervisor::SupervisorReport;
use crate::tenants;

/// One row of the faults table: planned, happened, and what it met.
pub struct FaultRow {
    pub kind: &'static str,
    pub key: &'static str,
    pub planned: String,
    pub happened: usize,
    pub met: String,
    pub detail: Value,
}

pub struct Delivery {
    /// The simulator's faults that it counts, by kind.
    pub injected: [(&'static str, u64); 3],
    /// Malformed answers, by action.
    pub malformed: BTreeMap<String, u64>,
    pub rows: Vec<FaultRow>,
}

impl Delivery {
    pub fn count(run: &Run, plan: &Plan, p: &Profile, evidence: &Evidence, taken_in_the_gap: usize) -> Delivery {
        let counters = evidence.counters.as_object().unwrap();
        let sum_outcome = |outcome: &str| -> u64 { counters.values().map(|o| o[outcome].as_u64().unwrap_or(0)).sum() };
        let injected = [
            ("5xx InternalError", sum_outcome("InternalError")),
            ("dropped connections", sum_outcome("Dropped")),
            ("throttling (Throttling.User)", sum_outcome("Throttling.User")),
        ];
        let malformed: BTreeMap<String, u64> =
            counters.iter().filter_map(|(action, o)| o["Malformed"].as_u64().map(|n| (action.clone(), n))).collect();
        let mut rows = fault_rows(run, plan, &malformed, &evidence.event_reasons, p, taken_in_the_gap);
        rows.extend(hostile_rows(run, plan, evidence));
        Delivery { injected, malformed, rows }
    }

    /// Chaos not delivered: fewer kills than planned, no apiserver restart, a kind of injected
    /// fault that never came, or a fault kind planned that never happened.
    pub fn undelivered(&self, sup: &SupervisorReport, plan: &Plan, apiserver_restarted: bool) -> Vec<Violation> {
        let mut undelivered = Vec::new();
        if sup.kills.len() < plan.kills.len() {
            undelivered.push(format!("{} of {} kills done", sup.kills.len(), plan.kills.len()));
        }
        if !apiserver_restarted {
            undelivered.push("no kube-apiserver restart".to_string());
        }
        for (what, n) in &self.injected {
            if *n == 0 {
                undelivered.push(format!("no fault injected of the kind {what}"));
            }
        }
        for r in &self.rows {
            if r.planned != "0" && r.happened == 0 {
                undelivered.push(format!("{} planned ({}), none happened", r.kind, r.planned));
            }
        }
        undelivered.into_iter().map(|u| Violation { check: NOT_DELIVERED, what: u, ..Default::default() }).collect()
    }
}

/// Per fault kind: how many were planned, how many happened, and what they met.
fn fault_rows(
    run: &Run,
    plan: &Plan,
    malformed: &BTreeMap<String, u64>,
    events: &BTreeMap<String, u64>,
    p: &Profile,
    taken_in_the_gap: usize,
) -> Vec<FaultRow> {
    vec![
        switch_row(run, plan, false),
        switch_row(run, plan, true),
        secret_deletion_row(run, plan),
        namespace_deletion_row(run, plan),
        malformed_row(malformed, p),
        adoption_row(run, events, p),
        restore_row(run, p, taken_in_the_gap),
    ]
}

/// `keys-a` switched to the other account's keys, or to a wrong secret key.
fn switch_row(run: &Run, plan: &Plan, wrong: bool) -> FaultRow {
    let done: Vec<&run::SwitchRecord> = run.switches.iter().filter(|s| s.wrong == wrong).collect();
    let met: Vec<String> = done.iter().flat_map(|s| s.met.iter().map(|(n, c)| format!("{n} ({c})"))).collect();
    let deleted: usize = done.iter().map(|s| s.users_deleted.len()).sum();
    FaultRow {
        kind: if wrong { "keys-a switched to a wrong secret key" } else { "keys-a switched to the other account" },
        key: if wrong { "credentialSwitchWrongKey" } else { "credentialSwitchOtherAccount" },
        planned: plan.planned(|f| matches!(f, PlannedFault::Switch { wrong: w, .. } if *w == wrong)).to_string(),
        happened: done.len(),
        met: format!(
            "{deleted} user(s) deleted during it; {} met it: {met:?}{}",
            met.len(),
            if !wrong && run.substituted > 0 {
                format!("; {} new object(s) took their own credentials meanwhile", run.substituted)
            } else {
                String::new()
            }
        ),
        detail: json!({"switches": done, "substituted": if wrong { 0 } else { run.substituted }}),
    }
}

fn secret_deletion_row(run: &Run, plan: &Plan) -> FaultRow {
    let by_hand: Vec<&run::SecretFate> = run.fates.iter().filter(|f| f.by == "hand").collect();
    let holders: usize = by_hand.iter().map(|f| f.holders.len()).sum();
    FaultRow {
        kind: "credentials Secret in use deleted by hand",
        key: "secretDeletion",
        planned: plan.planned(|f| *f == PlannedFault::DeleteSecret).to_string(),
        happened: by_hand.len(),
        met: format!(
            "{holders} holder(s) when deleted; seen Terminating: {}; gone by the end: {}; created again as an object \
             that took its segment on meanwhile asked: {:?}",
            by_hand.iter().filter(|f| f.terminating_seen).count(),
            by_hand.iter().filter(|f| f.gone_ms.is_some()).count(),
            run.recreated
        ),
        detail: json!({"fates": by_hand, "recreated": run.recreated}),
    }
}

fn namespace_deletion_row(run: &Run, plan: &Plan) -> FaultRow {
    let deleted: Vec<&run::Namespace> = run.namespaces.iter().filter(|n| n.delete_ms.is_some()).collect();
    FaultRow {
        kind: "namespace deleted",
        key: "namespaceDeletion",
        planned: plan.planned(|f| matches!(f, PlannedFault::DeleteNamespace { .. })).to_string(),
        happened: deleted.len(),
        met: format!(
            "{} object(s) and {} Secret(s) in them; gone by the end: {}",
            deleted.iter().map(|n| n.objects_deleted).sum::<usize>(),
            deleted.iter().map(|n| n.secrets_deleted).sum::<usize>(),
            deleted.iter().filter(|n| n.gone_ms.is_some()).count()
        ),
        detail: json!(deleted),
    }
}

fn malformed_row(malformed: &BTreeMap<String, u64>, p: &Profile) -> FaultRow {
    FaultRow {
        kind: "malformed 2xx answer",
        key: "malformedAnswers",
        planned: if p.malformed_rate > 0.0 { format!("{:.0}%", p.malformed_rate * 100.0) } else { "0".into() },
        happened: malformed.values().sum::<u64>() as usize,
        met: format!("{malformed:?} (every shape may be drawn; the simulator counts them by action)"),
        detail: json!(malformed),
    }
}

fn adoption_row(run: &Run, events: &BTreeMap<String, u64>, p: &Profile) -> FaultRow {
    let adopter = |a: &run::AdoptionRecord| &run.objects[a.adopter_k];
    let refused = run.adoptions.iter().filter(|a| adopter(a).reasons_seen.contains("SegmentInUse")).count();
    let took = run.adoptions.iter().filter(|a| adopter(a).segments_seen.contains(&a.segment)).count();
    let handovers = run
        .adoptions
        .iter()
        .filter(|a| {
            let (ad, h) = (adopter(a), &run.objects[a.holder_k]);
            h.delete_ms.is_some_and(|d| ad.delete_ms.is_none_or(|ad| ad > d))
        })
        .count();
    FaultRow {
        kind: "duplicate adoption",
        key: "duplicateAdoptions",
        planned: p.adoptions.to_string(),
        happened: run.adoptions.len(),
        met: format!(
            "{} with Delete, {} in another namespace than the holder; {refused} refused (SegmentInUse); {handovers} \
             holder(s) deleted while the adopter lived; {took} took the segment over; HandedOver events {}",
            run.adoptions.iter().filter(|a| a.delete_policy).count(),
            run.adoptions.iter().filter(|a| a.namespace != a.holder_namespace).count(),
            events.get("HandedOver").copied().unwrap_or(0)
        ),
        detail: json!(run.adoptions),
    }
}

fn restore_row(run: &Run, p: &Profile, taken_in_the_gap: usize) -> FaultRow {
    let new_incarnation =
        |r: &run::RestoreRecord| run.objects[r.object].incarnations.iter().find(|i| i.uid == r.new_uid);
    let back = run
        .restores
        .iter()
        .filter(|r| r.segment.as_ref().is_some_and(|s| new_incarnation(r).is_some_and(|i| i.segments.contains(s))))
        .count();
    let refused_own =
        run.restores.iter().filter(|r| new_incarnation(r).is_some_and(|i| i.reasons.contains("SegmentInUse"))).count();
    FaultRow {
        kind: "restore-style re-creation",
        key: "restores",
        planned: p.restores.to_string(),
        happened: run.restores.len(),
        met: format!(
            "{} kept the finalizer; {} named a segment ({} one a live adopter named), {back} came back to it, \
             {refused_own} were refused it ({taken_in_the_gap} by an object that took it over while they were gone); {} \
             needed more than one removal try; failures {:?}",
            run.restores.iter().filter(|r| r.kept_finalizer).count(),
            run.restores.iter().filter(|r| r.segment.is_some()).count(),
            run.restores.iter().filter(|r| r.contested).count(),
            run.restores.iter().filter(|r| r.tries > 1).count(),
            run.restore_failures
        ),
        detail: json!(run.restores),
    }
}

/// The hostile tenant's acts, by kind: how its objects fared.
fn hostile_rows(run: &Run, plan: &Plan, evidence: &Evidence) -> Vec<FaultRow> {
    let kinds = [
        (HostileAct::CopyIdentity, "hostileCopies"),
        (HostileAct::ForgeIdentity { with_keys: true }, "hostileForgeries"),
        (HostileAct::AdoptWithDelete, "hostileAdoptions"),
        (HostileAct::UnreachableClaim { missing_secret: true }, "hostileClaims"),
    ];
    kinds
        .into_iter()
        .map(|(like, key)| {
            let acts: Vec<&HostileRecord> = run.hostile.acts.iter().filter(|r| r.act.kind() == like.kind()).collect();
            FaultRow {
                kind: like.kind(),
                key,
                planned: plan.planned(|f| matches!(f, PlannedFault::Hostile(a) if a.kind() == like.kind())).to_string(),
                happened: acts.len(),
                met: hostile_met(run, evidence, &acts),
                detail: json!(acts),
            }
        })
        .collect()
}

/// What the hostile tenant's objects showed: Ready reasons, errors, the Warning events about them,
/// and the victims deleted while they lived.
fn hostile_met(run: &Run, evidence: &Evidence, acts: &[&HostileRecord]) -> String {
    let objects: Vec<&run::Tracked> = acts.iter().map(|r| &run.objects[r.object]).collect();
    let reasons: BTreeSet<&String> = objects.iter().flat_map(|o| &o.reasons_seen).collect();
    let errors: BTreeSet<&String> = objects.iter().flat_map(|o| &o.errors_seen).collect();
    let events: BTreeSet<&str> = objects.iter().flat_map(|o| tenants::events_about(evidence, o)).collect();
    let looked_at = objects.iter().filter(|o| tenants::looked_at(evidence, o)).count();
    let victims_deleted = acts
        .iter()
        .filter(|r| {
            let o = &run.objects[r.object];
            let victim = run.by_uid.get(&r.victim_uid).map(|&k| &run.objects[k]);
            victim.and_then(|v| v.delete_ms).is_some_and(|d| o.delete_ms.is_none_or(|od| od > d))
        })
        .count();
    format!(
        "{looked_at} looked at by the operator; Ready reasons {reasons:?}; errors {errors:?}; events {events:?}; \
         {victims_deleted} victim(s) deleted while it lived; segments its status named: {}",
        objects.iter().map(|o| o.segments_seen.len()).sum::<usize>()
    )
}
