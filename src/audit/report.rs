//! What the audit found, as a table for people or as JSON for programs, and the exit code.
//!
//! The JSON shape (version 1; fields are only ever added):
//! ```json
//! {"version": 1, "account": "1234567890123456", "complete": true, "unowned": 1,
//!  "regions": [{"region": "cn-hangzhou", "error": null, "segments": [
//!    {"segmentId": "eipsg-…", "cidr": "161.0.0.0/28", "ipCount": 16,
//!     "creationTime": "2026-03-01T10:00:00Z", "status": "Allocated",
//!     "verdict": "owned|unowned|possiblyPending|releasing",
//!     "owners": [{"namespace": "team", "name": "web"}],
//!     "pendingAllocations": [{"namespace": "team", "name": "new", "requestedAt": "…"}],
//!     "otherAccounts": [{"namespace": "team", "name": "old", "accountId": "…"}]}]}]}
//! ```
//! `complete` is false when some region could not be listed (its `error` says why, its `segments`
//! is empty); `unowned` is then null, never a count that could pass for the whole account's (the
//! listed regions' segments still carry their verdicts). `ipCount` and `requestedAt` may be null.

use std::io::Write;

use serde::Serialize;

use crate::audit::classify::{Finding, ObjectRef, Verdict};

pub const VERSION: u32 = 1;

/// The exit codes: none unowned, some unowned, could not tell.
pub const NONE_UNOWNED: u8 = 0;
pub const SOME_UNOWNED: u8 = 1;
pub const COULD_NOT_TELL: u8 = 2;

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub version: u32,
    pub account: String,
    pub complete: bool,
    /// Unowned segments, when every region was listed.
    pub unowned: Option<usize>,
    pub regions: Vec<RegionReport>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RegionReport {
    pub region: String,
    pub error: Option<String>,
    pub segments: Vec<SegmentReport>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentReport {
    pub segment_id: String,
    pub cidr: String,
    pub ip_count: Option<u32>,
    pub creation_time: String,
    pub status: String,
    pub verdict: &'static str,
    pub owners: Vec<ObjectName>,
    pub pending_allocations: Vec<PendingAllocation>,
    pub other_accounts: Vec<OtherAccount>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ObjectName {
    pub namespace: String,
    pub name: String,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PendingAllocation {
    pub namespace: String,
    pub name: String,
    pub requested_at: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OtherAccount {
    pub namespace: String,
    pub name: String,
    pub account_id: String,
}

impl From<&ObjectRef> for ObjectName {
    fn from(o: &ObjectRef) -> Self {
        ObjectName { namespace: o.namespace.clone(), name: o.name.clone() }
    }
}

/// One region's outcome: its findings, or why its listing proves nothing.
pub type RegionOutcome = (String, Result<Vec<Finding>, String>);

impl Report {
    pub fn new(account: &str, regions: Vec<RegionOutcome>) -> Report {
        let regions: Vec<RegionReport> =
            regions.into_iter().map(|(region, outcome)| region_report(region, outcome)).collect();
        let complete = regions.iter().all(|r| r.error.is_none());
        let unowned = count(&regions, "unowned");
        Report {
            version: VERSION,
            account: account.to_string(),
            complete,
            unowned: complete.then_some(unowned),
            regions,
        }
    }

    /// Could not tell wins: an incomplete audit never passes for a clean or a merely dirty one.
    pub fn exit_code(&self) -> u8 {
        match self.unowned {
            None => COULD_NOT_TELL,
            Some(0) => NONE_UNOWNED,
            Some(_) => SOME_UNOWNED,
        }
    }

    pub fn json(&self) -> String {
        serde_json::to_string_pretty(self).unwrap_or_default()
    }

    /// The table (REGION, SEGMENT ID, CIDR, CREATED, STATUS, VERDICT/OWNER), then one line per
    /// region that could not be listed and a summary.
    pub fn table(&self) -> String {
        let mut out = if self.regions.iter().all(|r| r.segments.is_empty()) { String::new() } else { self.rows() };
        for region in &self.regions {
            if let Some(e) = &region.error {
                out.push_str(&format!("{}: could not tell: {e}\n", region.region));
            }
        }
        out.push_str(&self.summary());
        out.push('\n');
        out
    }

    fn rows(&self) -> String {
        let mut tw = tabwriter::TabWriter::new(Vec::new()).padding(3);
        let _ = writeln!(tw, "REGION\tSEGMENT ID\tCIDR\tCREATED\tSTATUS\tVERDICT/OWNER");
        for region in &self.regions {
            for s in &region.segments {
                let row = [&region.region, &s.segment_id, &s.cidr, &s.creation_time, &s.status];
                let cells: Vec<&str> = row.iter().map(|c| if c.is_empty() { "-" } else { c.as_str() }).collect();
                let _ = writeln!(tw, "{}\t{}", cells.join("\t"), verdict_text(s));
            }
        }
        let mut out = tw.into_inner().map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        out.push('\n');
        out
    }

    /// The counts, or, when a region could not be listed, that the audit could not tell (and the
    /// counts of the regions listed, as theirs alone).
    fn summary(&self) -> String {
        let listed = self.regions.iter().filter(|r| r.error.is_none()).count();
        let counts = format!(
            "{} owned, {} unowned, {} possibly pending allocations, {} releasing",
            count(&self.regions, "owned"),
            count(&self.regions, "unowned"),
            count(&self.regions, "possiblyPending"),
            count(&self.regions, "releasing"),
        );
        let total = self.regions.len();
        match (self.complete, listed) {
            (true, _) => format!("account {}: all {total} region(s) listed; {counts}", self.account),
            (false, 0) => format!(
                "account {}: COULD NOT TELL whether any segment is unowned: no region of {total} could be listed",
                self.account
            ),
            (false, _) => format!(
                "account {}: COULD NOT TELL whether any segment is unowned: {} of {total} regions could not be \
                 listed; in the {listed} listed: {counts}",
                self.account,
                total - listed
            ),
        }
    }
}

fn count(regions: &[RegionReport], verdict: &str) -> usize {
    regions.iter().flat_map(|r| &r.segments).filter(|s| s.verdict == verdict).count()
}

fn region_report(region: String, outcome: Result<Vec<Finding>, String>) -> RegionReport {
    match outcome {
        Ok(findings) => RegionReport { region, error: None, segments: findings.iter().map(segment_report).collect() },
        Err(e) => RegionReport { region, error: Some(e), segments: Vec::new() },
    }
}

fn segment_report(f: &Finding) -> SegmentReport {
    let s = &f.segment;
    let mut report = SegmentReport {
        segment_id: s.instance_id.clone(),
        cidr: s.segment.clone(),
        ip_count: s.ip_count,
        creation_time: s.creation_time.clone(),
        status: s.status.as_str().to_string(),
        verdict: "",
        owners: Vec::new(),
        pending_allocations: Vec::new(),
        other_accounts: Vec::new(),
    };
    report.verdict = match &f.verdict {
        Verdict::Owned(by) => {
            report.owners = by.iter().map(ObjectName::from).collect();
            "owned"
        }
        Verdict::Releasing => "releasing",
        Verdict::PossiblyPending(candidates) => {
            report.pending_allocations = candidates
                .iter()
                .map(|c| PendingAllocation {
                    namespace: c.object.namespace.clone(),
                    name: c.object.name.clone(),
                    requested_at: c.requested_at.clone(),
                })
                .collect();
            "possiblyPending"
        }
        Verdict::Unowned { elsewhere } => {
            report.other_accounts = elsewhere
                .iter()
                .map(|(o, account)| OtherAccount {
                    namespace: o.namespace.clone(),
                    name: o.name.clone(),
                    account_id: account.clone(),
                })
                .collect();
            "unowned"
        }
    };
    report
}

fn names<'a>(objects: impl Iterator<Item = (&'a str, &'a str)>) -> String {
    objects.map(|(ns, name)| format!("{ns}/{name}")).collect::<Vec<_>>().join(", ")
}

fn verdict_text(s: &SegmentReport) -> String {
    match s.verdict {
        "owned" => format!("owned by {}", names(s.owners.iter().map(|o| (o.namespace.as_str(), o.name.as_str())))),
        "releasing" => "releasing, named by no EipSegment (not counted: a release cannot be undone)".to_string(),
        "possiblyPending" => {
            let since: Vec<String> = s
                .pending_allocations
                .iter()
                .map(|p| match &p.requested_at {
                    Some(at) => format!("{}/{} (requested {at})", p.namespace, p.name),
                    None => format!("{}/{} (restored, requested at an unknown time)", p.namespace, p.name),
                })
                .collect();
            format!("possibly the pending allocation of {} (not counted)", since.join(", "))
        }
        _ if s.other_accounts.is_empty() => "UNOWNED".to_string(),
        _ => {
            let named: Vec<String> = s
                .other_accounts
                .iter()
                .map(|o| format!("{}/{} for account {}", o.namespace, o.name, o.account_id))
                .collect();
            format!("UNOWNED (named only by {})", named.join(", "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::classify::Candidate;
    use crate::cloud::model::{Segment, SegmentStatus};

    fn finding(id: &str, status: SegmentStatus, verdict: Verdict) -> Finding {
        let segment = Segment {
            instance_id: id.into(),
            status,
            segment: "161.0.0.0/28".into(),
            ip_count: Some(16),
            region_id: "cn-hangzhou".into(),
            zone: String::new(),
            name: String::new(),
            description: String::new(),
            creation_time: "2026-03-01T10:00:00Z".into(),
        };
        Finding { segment, created: None, verdict }
    }

    fn object(name: &str) -> ObjectRef {
        ObjectRef { namespace: "team".into(), name: name.into() }
    }

    fn report(extra: Vec<RegionOutcome>) -> Report {
        let findings = vec![
            finding("eipsg-owned", SegmentStatus::Allocated, Verdict::Owned(vec![object("web")])),
            finding(
                "eipsg-stray",
                SegmentStatus::Allocated,
                Verdict::Unowned { elsewhere: vec![(object("old"), "42".into())] },
            ),
            finding(
                "eipsg-new",
                SegmentStatus::Allocating,
                Verdict::PossiblyPending(vec![Candidate { object: object("new"), requested_at: None }]),
            ),
            finding("eipsg-going", SegmentStatus::Releasing, Verdict::Releasing),
        ];
        let mut regions = vec![("cn-hangzhou".to_string(), Ok(findings))];
        regions.extend(extra);
        Report::new("1234567890123456", regions)
    }

    #[test]
    fn exit_codes() {
        assert_eq!(report(vec![]).exit_code(), SOME_UNOWNED);
        assert_eq!(report(vec![("cn-beijing".into(), Err("page 2 malformed".into()))]).exit_code(), COULD_NOT_TELL);
        assert_eq!(Report::new("1", vec![("cn-beijing".into(), Ok(vec![]))]).exit_code(), NONE_UNOWNED);
        let not_counted = vec![
            finding("eipsg-going", SegmentStatus::Released, Verdict::Releasing),
            finding("eipsg-new", SegmentStatus::Allocated, Verdict::PossiblyPending(vec![])),
        ];
        assert_eq!(Report::new("1", vec![("cn-beijing".into(), Ok(not_counted))]).exit_code(), NONE_UNOWNED);
        assert_eq!(Report::new("1", vec![("cn-beijing".into(), Err("x".into()))]).exit_code(), COULD_NOT_TELL);
    }

    #[test]
    fn the_table_says_each_verdict_and_what_could_not_be_told() {
        let table = report(vec![("cn-beijing".into(), Err("DescribeEipSegment failed".into()))]).table();
        let lines: Vec<&str> = table.lines().collect();
        let header: Vec<&str> = lines[0].split("   ").map(str::trim).filter(|c| !c.is_empty()).collect();
        assert_eq!(header, ["REGION", "SEGMENT ID", "CIDR", "CREATED", "STATUS", "VERDICT/OWNER"]);
        let row = |id: &str| lines.iter().find(|l| l.contains(id)).copied().unwrap_or_default();
        assert!(row("eipsg-owned").ends_with("owned by team/web"), "{table}");
        assert!(row("eipsg-stray").ends_with("UNOWNED (named only by team/old for account 42)"), "{table}");
        assert!(row("eipsg-new").contains("possibly the pending allocation of team/new (restored"), "{table}");
        assert!(row("eipsg-going").contains("Releasing") && row("eipsg-going").contains("not counted"), "{table}");
        // Columns line up: every row's CIDR starts where the header's does.
        let at = lines[0].find("CIDR").unwrap();
        assert!(lines[1..5].iter().all(|l| l[at..].starts_with("161.0.0.0/28")), "{table}");
        assert!(table.contains("cn-beijing: could not tell: DescribeEipSegment failed"), "{table}");
        let summary = "COULD NOT TELL whether any segment is unowned: 1 of 2 regions could not be listed; in the 1 \
                       listed: 1 owned, 1 unowned, 1 possibly pending allocations, 1 releasing";
        assert!(table.ends_with(&format!("account 1234567890123456: {summary}\n")), "{table}");
        let complete = report(vec![]).table();
        assert!(complete.ends_with("account 1234567890123456: all 1 region(s) listed; 1 owned, 1 unowned, 1 possibly pending allocations, 1 releasing\n"), "{complete}");
    }

    #[test]
    fn an_audit_that_could_not_tell_never_says_0_unowned() {
        let nothing_listed = Report::new("1", vec![("cn-beijing".into(), Err("no RequestId".into()))]);
        let table = nothing_listed.table();
        assert_eq!(
            table,
            "cn-beijing: could not tell: no RequestId\naccount 1: COULD NOT TELL whether any segment is unowned: no region of 1 could be listed\n"
        );
        let v: serde_json::Value = serde_json::from_str(&nothing_listed.json()).unwrap();
        assert_eq!((&v["complete"], &v["unowned"]), (&serde_json::json!(false), &serde_json::Value::Null));
    }

    #[test]
    fn the_json_shape_is_the_documented_one() {
        let v: serde_json::Value = serde_json::from_str(&report(vec![]).json()).unwrap();
        assert_eq!(
            (v["version"].as_u64(), v["complete"].as_bool(), v["unowned"].as_u64()),
            (Some(1), Some(true), Some(1))
        );
        assert_eq!(v["regions"][0]["region"], "cn-hangzhou");
        let segments = v["regions"][0]["segments"].as_array().unwrap();
        let mut keys: Vec<&str> = segments[0].as_object().unwrap().keys().map(String::as_str).collect();
        keys.sort();
        let mut want = vec![
            "segmentId",
            "cidr",
            "ipCount",
            "creationTime",
            "status",
            "verdict",
            "owners",
            "pendingAllocations",
            "otherAccounts",
        ];
        want.sort();
        assert_eq!(keys, want);
        let verdicts: Vec<&str> = segments.iter().map(|s| s["verdict"].as_str().unwrap()).collect();
        assert_eq!(verdicts, ["owned", "unowned", "possiblyPending", "releasing"]);
        assert_eq!(segments[0]["owners"], serde_json::json!([{"namespace": "team", "name": "web"}]));
        assert_eq!(
            segments[1]["otherAccounts"],
            serde_json::json!([{"namespace": "team", "name": "old", "accountId": "42"}])
        );
        assert_eq!(
            segments[2]["pendingAllocations"],
            serde_json::json!([{"namespace": "team", "name": "new", "requestedAt": null}])
        );
        assert_eq!(v["regions"][0]["error"], serde_json::Value::Null);
    }
}
