//! The cloud's history (both accounts) held against what the run did. A segment is *named* by the
//! object whose allocation token created it (any of its incarnations' UIDs: a restored object keeps
//! the token of its annotations) and by every adopter whose `spec.segmentInstanceId` is its ID.
//! Its *keepers* are the namers whose wish the operator must honour: the allocator, and the
//! victims' adopters of its namespace or that took it over (status named it); another namespace's
//! adopter neither holds a release back nor keeps a segment, and the hostile tenant keeps nothing.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use serde_json::Value;

use crate::evidence::Evidence;
use crate::fmt_ms;
use crate::run::{Run, SECRET_FINALIZER_PREFIX, Tracked};
use crate::supervisor::SupervisorReport;

pub const LEAKED: &str = "leaked segments";
pub const PREMATURE: &str = "premature releases";
pub const SECOND: &str = "second allocations";
pub const ACCOUNTS: &str = "segments outside their object's account";
pub const CREDENTIALS_LOST: &str = "credentials Secrets gone while in use";
pub const RESTORE_REFUSED: &str = "restored objects refused their own segment";
pub const STUCK: &str = "stuck after the faults stopped";
pub const PANICS: &str = "operator panics";
pub const EXITS: &str = "operator exits the run did not cause";
pub const HYGIENE: &str = "secret hygiene";
pub const NOT_DELIVERED: &str = "chaos not delivered";
pub const RELEASED_TWICE: &str = "segments released more than once";
pub const HOSTILE_HOLDS: &str = "victim segments the hostile tenant held";
pub const HOSTILE_CREDENTIALS: &str = "hostile objects acting with others' keys";
pub const HELD_BACK: &str = "releases held back by another namespace";
pub const IDENTITY_MISJUDGED: &str = "identity annotations misjudged";

pub const CHECKS: [&str; 16] = [
    LEAKED,
    PREMATURE,
    RELEASED_TWICE,
    SECOND,
    ACCOUNTS,
    CREDENTIALS_LOST,
    RESTORE_REFUSED,
    STUCK,
    PANICS,
    EXITS,
    HOSTILE_HOLDS,
    HOSTILE_CREDENTIALS,
    HELD_BACK,
    IDENTITY_MISJUDGED,
    HYGIENE,
    NOT_DELIVERED,
];

#[derive(Default, serde::Serialize)]
pub struct Violation {
    pub check: &'static str,
    pub what: String,
    pub object: Option<Tracked>,
    pub segments: Vec<Value>,
}

/// Figures the segment checks find on the way.
#[derive(Default, Debug, serde::Serialize)]
pub struct SegmentFigures {
    pub released_twice: usize,
    pub out_of_band: usize,
    pub retained_kept: usize,
    pub allocated_after_delete: usize,
    pub deleted_before_allocation: usize,
    /// Segments a Retain adopter kept though the object that allocated them had the Delete policy.
    pub kept_by_adopter: usize,
    /// Releases accepted while an adopter that never took the segment over still named it.
    pub released_under_refused_adopter: usize,
}

pub struct Cloud<'h> {
    /// Every segment of both accounts, as `GET /__admin/history?account=` gives them.
    pub history: &'h [Value],
    /// The IDs of the segments in the cloud at the end (`GET /__admin/state?account=`).
    pub present: &'h HashSet<String>,
}

/// Every check's violations, in the report's order, and what the checks found on the way.
pub struct Findings {
    pub violations: Vec<Violation>,
    pub figures: SegmentFigures,
    /// Restored objects refused their segment by an object that took it over while they were gone.
    pub taken_in_the_gap: usize,
}

/// Every check but whether the chaos was delivered (`delivery`): the segments in the cloud, what
/// is stuck, the restores, the credentials, then the operator's panics, exits and outputs.
pub fn all(run: &Run, evidence: &Evidence, sup: &SupervisorReport, t0: u64) -> Findings {
    let final_objects = run.present.clone().unwrap_or_default();
    let cloud = Cloud { history: &evidence.history, present: &evidence.present };
    let (mut v, figures) = segments(run, &cloud, &final_objects, t0);
    if evidence.all_segments != evidence.history.len() {
        v.push(Violation {
            check: ACCOUNTS,
            what: format!(
                "the cloud holds {} segments in all, {} of them in the run's two accounts",
                evidence.all_segments,
                evidence.history.len()
            ),
            ..Default::default()
        });
    }
    let segments_of = |o: &Tracked| named_segments(&evidence.history, o);
    v.extend(stuck(run, &final_objects, &segments_of, t0));
    let (refused_restores, taken_in_the_gap) = restores(run, t0);
    for mut r in refused_restores {
        r.segments = r.object.as_ref().map(&segments_of).unwrap_or_default();
        v.push(r);
    }
    for (what, k) in run.credentials_lost.values() {
        let o = &run.objects[*k];
        v.push(Violation {
            check: CREDENTIALS_LOST,
            what: what.clone(),
            object: Some(o.clone()),
            segments: segments_of(o),
        });
    }
    v.extend(crate::tenants::checks(run, evidence));
    v.extend(operator(evidence, sup, t0));
    Findings { violations: v, figures, taken_in_the_gap }
}

/// The segments of the history an object named: allocated with one of its tokens, named by its
/// status, or adopted.
fn named_segments(history: &[Value], o: &Tracked) -> Vec<Value> {
    let tokens = o.tokens();
    history
        .iter()
        .filter(|s| {
            s["allocationToken"].as_str().is_some_and(|t| tokens.contains(t))
                || s["instanceId"]
                    .as_str()
                    .is_some_and(|id| o.segments_seen.contains(id) || o.adopts.as_deref() == Some(id))
        })
        .cloned()
        .collect()
}

/// The operator's panics, the exits the run did not cause, and the secrets in its outputs.
fn operator(evidence: &Evidence, sup: &SupervisorReport, t0: u64) -> Vec<Violation> {
    let mut v = Vec::new();
    for p in &evidence.log.panics {
        v.push(Violation { check: PANICS, what: p.clone(), ..Default::default() });
    }
    for e in &sup.unexpected_exits {
        v.push(Violation {
            check: EXITS,
            what: format!("pid {} exited at {}: {}", e.pid, fmt_ms(t0, e.at_ms), e.status),
            ..Default::default()
        });
    }
    for f in &evidence.secret_findings {
        v.push(Violation { check: HYGIENE, what: f.clone(), ..Default::default() });
    }
    v
}

fn releases(seg: &Value) -> Vec<u64> {
    seg["releaseAcceptedAtMs"].as_array().map(|a| a.iter().filter_map(Value::as_u64).collect()).unwrap_or_default()
}

/// The object whose token allocated the segment.
pub fn allocator<'r>(run: &'r Run, seg: &Value) -> Option<&'r Tracked> {
    let uid = seg["allocationToken"].as_str()?.strip_prefix("alloc-")?;
    run.by_uid.get(uid).map(|&k| &run.objects[k])
}

/// The namers of a segment that keep it: its allocator, and the victims' adopters of the
/// allocator's namespace or that took it over (their status named it).
pub fn keepers<'r>(run: &'r Run, id: &str, allocator: &'r Tracked) -> Vec<&'r Tracked> {
    let adopters = run.objects.iter().filter(|a| a.adopts.as_deref() == Some(id) && a.hostile.is_none());
    let keeps = |a: &&Tracked| a.namespace == allocator.namespace || a.first_named.contains_key(id);
    std::iter::once(allocator).chain(adopters.filter(keeps)).collect()
}

/// When an object surely existed: the allocator from before its create (its segment came later),
/// an adopter once a list showed it.
fn since(o: &Tracked) -> u64 {
    if o.adopts.is_some() { o.incarnations.first().map_or(u64::MAX, |i| i.seen_ms) } else { o.created_ms }
}

pub fn segments(
    run: &Run,
    cloud: &Cloud,
    final_objects: &HashSet<String>,
    t0: u64,
) -> (Vec<Violation>, SegmentFigures) {
    let mut checks = SegmentChecks {
        run,
        final_objects,
        t0,
        v: Vec::new(),
        f: SegmentFigures::default(),
        per_object: BTreeMap::new(),
    };
    let by_segment: HashMap<&str, &Value> =
        cloud.history.iter().filter_map(|s| Some((s["instanceId"].as_str()?, s))).collect();
    for seg in cloud.history {
        checks.segment(seg, cloud.present);
    }
    checks.one_segment_per_object();
    for (k, o) in run.objects.iter().enumerate() {
        checks.object(k, o, &by_segment);
    }
    (checks.v, checks.f)
}

/// The segment checks as they go through the cloud's history, then through the objects.
struct SegmentChecks<'a> {
    run: &'a Run<'a>,
    final_objects: &'a HashSet<String>,
    t0: u64,
    v: Vec<Violation>,
    f: SegmentFigures,
    /// The segments each object's tokens allocated, by the object's position.
    per_object: BTreeMap<usize, Vec<&'a Value>>,
}

/// A violation about one segment and the object that allocated it.
fn about(check: &'static str, what: String, o: &Tracked, seg: &Value) -> Violation {
    Violation { check, what, object: Some(o.clone()), segments: vec![seg.clone()] }
}

impl<'a> SegmentChecks<'a> {
    fn segment(&mut self, seg: &'a Value, in_cloud: &HashSet<String>) {
        let id = seg["instanceId"].as_str().unwrap_or_default();
        let present = in_cloud.contains(id);
        let rel = releases(seg);
        let out_of_band = seg["removedOutOfBand"].as_bool() == Some(true);
        self.f.out_of_band += usize::from(out_of_band);
        let Some(o) = allocator(self.run, seg) else {
            self.v.push(unknown_token(seg, id, present));
            return;
        };
        if o.adopts.is_some() {
            self.v.push(about(
                SECOND,
                format!("{id} was allocated with the token of {}, which only adopts", o.name),
                o,
                seg,
            ));
        }
        if rel.len() > 1 {
            self.f.released_twice += 1;
            let what = format!("{id} ({}) had {} releases accepted", o.name, rel.len());
            self.v.push(about(RELEASED_TWICE, what, o, seg));
        }
        self.per_object.entry(self.run.by_uid[o.uid()]).or_default().push(seg);
        let adopters: Vec<&Tracked> = self.run.objects.iter().filter(|a| a.adopts.as_deref() == Some(id)).collect();
        let keeping = keepers(self.run, id, o);
        if present && !out_of_band {
            self.left_in_cloud(seg, id, o, &keeping);
        }
        self.created_after_gone(seg, id, o);
        let owner = seg["ownerAccount"].as_str().unwrap_or_default();
        if !o.accounts_seen.is_empty() && !o.accounts_seen.contains(owner) {
            let what = format!("{id} lives in account {owner}; {} recorded {:?}", o.name, o.accounts_seen);
            self.v.push(about(ACCOUNTS, what, o, seg));
        }
        for r in rel {
            self.release(seg, id, o, r, &adopters, &keeping);
        }
    }

    /// Kept for a Retain keeper, else a leak once every keeper is gone.
    fn left_in_cloud(&mut self, seg: &Value, id: &str, o: &Tracked, keeping: &[&Tracked]) {
        let left: Vec<&str> =
            keeping.iter().filter(|n| self.final_objects.contains(n.uid())).map(|n| n.name.as_str()).collect();
        if keeping.iter().any(|n| n.retain) {
            self.f.retained_kept += 1;
            self.f.kept_by_adopter += usize::from(!o.retain);
        } else if left.is_empty() {
            let names: Vec<&str> = keeping.iter().map(|n| n.name.as_str()).collect();
            let what = format!("{id} is still in the cloud; every object that keeps it ({names:?}) is gone");
            self.v.push(about(LEAKED, what, o, seg));
        }
    }

    fn created_after_gone(&mut self, seg: &Value, id: &str, o: &Tracked) {
        let created = seg["createdAtMs"].as_u64().unwrap_or(0);
        if o.delete_ms.is_some_and(|d| created > d) {
            self.f.allocated_after_delete += 1;
        }
        if let Some(gone) = o.gone_ms.filter(|&g| created > g) {
            let (t0, name) = (self.t0, &o.name);
            let what = format!(
                "{id} was created at {}, after {name} was seen gone at {}",
                fmt_ms(t0, created),
                fmt_ms(t0, gone)
            );
            self.v.push(about(SECOND, what, o, seg));
        }
    }

    /// A release accepted at `r` is premature while a keeper had not been asked to go, or when no
    /// keeper with the Delete policy had.
    fn release(&mut self, seg: &Value, id: &str, o: &Tracked, r: u64, adopters: &[&Tracked], keeping: &[&Tracked]) {
        let live: Vec<&str> = keeping.iter().filter(|n| n.live_at(r, since(n))).map(|n| n.name.as_str()).collect();
        let asked = keeping.iter().any(|n| !n.retain && n.delete_ms.is_some_and(|d| d <= r));
        let why = if !live.is_empty() {
            Some(format!("{live:?} named it and had not been asked to go"))
        } else if !asked {
            Some("no object with deletionPolicy Delete that named it had been asked to go".to_string())
        } else {
            None
        };
        if let Some(why) = why {
            let what = format!("release of {id} ({}) accepted at {}: {why}", o.name, fmt_ms(self.t0, r));
            self.v.push(about(PREMATURE, what, o, seg));
        }
        let refused = adopters.iter().any(|a| a.segments_seen.is_empty() && a.delete_ms.is_none_or(|d| d > r));
        self.f.released_under_refused_adopter += usize::from(refused && live.is_empty());
    }

    /// One segment per object, across its incarnations.
    fn one_segment_per_object(&mut self) {
        for (&k, segs) in &self.per_object {
            if segs.len() > 1 {
                let o = &self.run.objects[k];
                let tokens: BTreeSet<&str> = segs.iter().filter_map(|s| s["allocationToken"].as_str()).collect();
                self.v.push(Violation {
                    check: SECOND,
                    what: format!(
                        "{} ({} incarnation(s)) has {} segments, tokens {tokens:?}",
                        o.name,
                        o.incarnations.len(),
                        segs.len()
                    ),
                    object: Some(o.clone()),
                    segments: segs.iter().map(|s| (*s).clone()).collect(),
                });
            }
        }
    }

    /// What the object's status and annotations named, held against its own tokens and its target
    /// (the hostile tenant's objects: in `tenants`).
    fn object(&mut self, k: usize, o: &Tracked, by_segment: &HashMap<&str, &Value>) {
        if o.adopts.is_none() && !self.per_object.contains_key(&k) {
            self.f.deleted_before_allocation += usize::from(o.delete_ms.is_some());
        }
        if o.hostile.is_some() {
            return;
        }
        let own = o.tokens();
        for sid in &o.segments_seen {
            self.status_segment(o, sid, &own, by_segment);
        }
        let foreign: Vec<&String> = o.tokens_seen.iter().filter(|t| !own.contains(*t)).collect();
        if !foreign.is_empty() {
            self.v.push(Violation {
                check: SECOND,
                what: format!("{} named allocation token(s) {foreign:?}, none of its incarnations' ({own:?})", o.name),
                object: Some(o.clone()),
                segments: Vec::new(),
            });
        }
        if o.accounts_seen.len() > 1 {
            self.v.push(Violation {
                check: ACCOUNTS,
                what: format!("{} recorded more than one account: {:?}", o.name, o.accounts_seen),
                object: Some(o.clone()),
                segments: Vec::new(),
            });
        }
    }

    /// A segment the object's status named: an adopter's target, else one of its own tokens'.
    fn status_segment(&mut self, o: &Tracked, sid: &str, own: &BTreeSet<String>, by_segment: &HashMap<&str, &Value>) {
        let seg = by_segment.get(sid);
        let token = seg.and_then(|s| s["allocationToken"].as_str());
        let wrong = match &o.adopts {
            Some(target) => (target != sid).then(|| format!("{}'s status named {sid}; it adopts {target}", o.name)),
            None => token.is_none_or(|t| !own.contains(t)).then(|| {
                format!("{}'s status named {sid}, allocated with ClientToken {token:?}, none of its own", o.name)
            }),
        };
        if let Some(what) = wrong {
            self.v.push(Violation {
                check: SECOND,
                what,
                object: Some(o.clone()),
                segments: seg.map(|s| vec![(*s).clone()]).unwrap_or_default(),
            });
        }
    }
}

/// A segment whose ClientToken names no object of the run: a leak if still in the cloud, else a
/// second allocation.
fn unknown_token(seg: &Value, id: &str, present: bool) -> Violation {
    let token = seg["allocationToken"].as_str();
    let (check, what) = if present {
        (LEAKED, format!("{id} is in the cloud with ClientToken {token:?}, which names no object of the run"))
    } else {
        (SECOND, format!("{id} was allocated with ClientToken {token:?}, which names no object of the run"))
    };
    Violation { check, what, object: None, segments: vec![seg.clone()] }
}

/// Who a Secret finalizer of the operator stands for.
fn holder(run: &Run, finalizer: &str, t0: u64) -> String {
    let Some(uid) = finalizer.strip_prefix(SECRET_FINALIZER_PREFIX) else {
        return format!("{finalizer} (not the operator's)");
    };
    let Some(&k) = run.by_uid.get(uid) else { return format!("{finalizer}: no object of the run has UID {uid}") };
    let o = &run.objects[k];
    let inc = o.incarnations.iter().find(|i| i.uid == uid).expect("indexed UID");
    match (inc.removed_ms, o.gone_ms) {
        (Some(removed), _) => format!(
            "{finalizer}: the incarnation of {}/{} removed behind the operator for a restore at {} (the object lives on as \
             {}/{}, UID {})",
            inc.namespace,
            o.name,
            fmt_ms(t0, removed),
            o.namespace,
            o.name,
            o.uid()
        ),
        (None, Some(gone)) => format!("{finalizer}: {}/{}, gone since {}", o.namespace, o.name, fmt_ms(t0, gone)),
        (None, None) => format!("{finalizer}: {}/{}, still there", o.namespace, o.name),
    }
}

/// Objects, Secrets and namespaces whose deletion was asked and that are still there.
pub fn stuck(
    run: &Run,
    final_objects: &HashSet<String>,
    per_object: &dyn Fn(&Tracked) -> Vec<Value>,
    t0: u64,
) -> Vec<Violation> {
    let mut v = Vec::new();
    for o in run.objects.iter().filter(|o| final_objects.contains(o.uid())) {
        let status = &o.last["status"];
        let ready = status["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready")).cloned();
        v.push(Violation {
            check: STUCK,
            what: format!(
                "{}/{} still exists: Ready {} ({}), lastError {}",
                o.namespace,
                o.name,
                ready.as_ref().map_or(Value::Null, |r| r["reason"].clone()),
                ready.as_ref().and_then(|r| r["message"].as_str()).unwrap_or_default(),
                status["lastError"]
            ),
            object: Some(o.clone()),
            segments: per_object(o),
        });
    }
    for f in run.fates.iter().filter(|f| f.gone_ms.is_none()) {
        let holders: Vec<String> = f.last_finalizers.iter().map(|h| holder(run, h, t0)).collect();
        v.push(Violation {
            check: STUCK,
            what: format!(
                "Secret {}/{} (deletion asked {} at {}) is still there, held by {holders:?}",
                f.namespace,
                f.name,
                f.by,
                fmt_ms(t0, f.delete_ms)
            ),
            ..Default::default()
        });
    }
    for ns in run.namespaces.iter().filter(|n| n.delete_ms.is_some() && n.gone_ms.is_none()) {
        let left: Vec<String> = run
            .fates
            .iter()
            .filter(|f| f.namespace == ns.name && f.gone_ms.is_none())
            .map(|f| f.name.clone())
            .chain(
                run.objects
                    .iter()
                    .filter(|o| o.namespace == ns.name && final_objects.contains(o.uid()))
                    .map(|o| o.name.clone()),
            )
            .collect();
        v.push(Violation {
            check: STUCK,
            what: format!(
                "namespace {} (deletion asked at {}) is still there; of the run's, {left:?} are left in it",
                ns.name,
                fmt_ms(t0, ns.delete_ms.unwrap_or_default())
            ),
            ..Default::default()
        });
    }
    v
}

/// A restored object whose earlier incarnation held a segment (its status named it) and whose
/// identity annotations name it comes back as its holder, unless another object took the segment
/// over while it was gone. Refused (SegmentInUse before its deletion was asked) by an object that
/// had not: a violation. Returns the violations and how many were refused by an object that had.
pub fn restores(run: &Run, t0: u64) -> (Vec<Violation>, usize) {
    let mut v = Vec::new();
    let mut taken_in_the_gap = 0;
    for r in &run.restores {
        let o = &run.objects[r.object];
        let Some(segment) = &r.segment else { continue };
        let held = o.incarnations.iter().any(|i| i.uid == r.old_uid && i.segments.contains(segment));
        let refused = o.incarnations.iter().any(|i| i.uid == r.new_uid && i.reasons.contains("SegmentInUse"));
        if !held || !refused {
            continue;
        }
        let others: Vec<&Tracked> = run
            .objects
            .iter()
            .filter(|x| !std::ptr::eq(*x, o))
            .filter(|x| x.adopts.as_ref() == Some(segment) || x.segments_seen.contains(segment))
            .collect();
        let taken =
            others.iter().find_map(|x| x.first_named.get(segment).filter(|&&t| t <= r.reapplied_ms).map(|t| (x, t)));
        if let Some((x, t)) = taken {
            taken_in_the_gap += 1;
            println!(
                "chaos: {}/{} was refused {segment} after its restore: {} took it over at {}, while it was gone",
                o.namespace,
                o.name,
                x.name,
                fmt_ms(t0, *t)
            );
            continue;
        }
        let claimants: Vec<String> = others
            .iter()
            .map(|x| {
                let named = x.first_named.get(segment).map_or("never".to_string(), |&t| fmt_ms(t0, t));
                format!("{}/{} (status first named it {named})", x.namespace, x.name)
            })
            .collect();
        v.push(Violation {
            check: RESTORE_REFUSED,
            what: format!(
                "{}/{} held {segment} and was re-applied at {} with it in its identity annotations, then refused it \
                 (SegmentInUse) though no other object had taken it over by then; others naming it: {claimants:?}",
                o.namespace,
                o.name,
                fmt_ms(t0, r.reapplied_ms)
            ),
            object: Some(o.clone()),
            segments: Vec::new(),
        });
    }
    (v, taken_in_the_gap)
}
