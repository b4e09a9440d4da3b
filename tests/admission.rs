//! Bad input. What the schema can judge, the apiserver refuses at admission with a message that
//! names the field and the rule (OpenAPI schema, CEL rules, strict field validation, CEL transition
//! rules on update). What only the cloud can judge (a region it does not serve, a parameter value it
//! refuses) ends in a terminal condition and a Warning event, is retried only at the terminal backoff,
//! and never blocks deletion.

use eipsegment_test_support as support;

use std::time::{Duration, Instant};

use serde_json::Value;
use support::*;

/// How a row reaches the apiserver. Every submission is a server-side dry run, so each row is judged
/// on its own against the same stored objects.
#[derive(Clone, Copy, Debug)]
enum Submit {
    /// `kubectl create --dry-run=server --validate=strict`.
    Create,
    /// `kubectl apply --server-side --dry-run=server`.
    ServerSideApply,
    /// `kubectl replace --dry-run=server --validate=strict` of a stored object (CEL transition rules).
    Replace(Base),
}

/// The stored objects update rows replace.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Base {
    /// Allocates, with every allocation parameter set.
    Allocating,
    /// Adopts an existing segment.
    Adopting,
}

const ALLOCATING_SPEC: &str = "  regionId: cn-hangzhou\n  eipMask: 28\n  bandwidth: 10\n  internetChargeType: PayByBandwidth\n  isp: BGP\n  netmode: public\n  zone: cn-hangzhou-a\n  resourceGroupId: rg-acfmxazb4ph6aiy\n";
const ADOPTING_SPEC: &str = "  regionId: cn-hangzhou\n  segmentInstanceId: eipsg-2zett8ba055tbsxme0001\n";

impl Base {
    fn name(self) -> &'static str {
        match self {
            Base::Allocating => "base-allocating",
            Base::Adopting => "base-adopting",
        }
    }

    fn spec(self) -> &'static str {
        match self {
            Base::Allocating => ALLOCATING_SPEC,
            Base::Adopting => ADOPTING_SPEC,
        }
    }
}

struct Row {
    what: String,
    submit: Submit,
    /// The object's name (only the name rows change it).
    name: String,
    /// The lines under `spec:`; None leaves `spec` out entirely.
    spec: Option<String>,
    /// Lines appended at the top level of the object (typos of `spec`).
    extra_top_level: &'static str,
    /// None: accepted. Some: rejected, and the apiserver's message holds every one of these.
    rejected_with: Option<Vec<&'static str>>,
}

fn row(
    what: impl Into<String>,
    submit: Submit,
    spec: impl Into<String>,
    rejected_with: Option<&[&'static str]>,
) -> Row {
    Row {
        what: what.into(),
        submit,
        name: "row".into(),
        spec: Some(spec.into()),
        extra_top_level: "",
        rejected_with: rejected_with.map(<[_]>::to_vec),
    }
}

fn bad(what: impl Into<String>, spec: impl Into<String>, messages: &[&'static str]) -> Row {
    row(what, Submit::Create, spec, Some(messages))
}

fn good(what: impl Into<String>, spec: impl Into<String>) -> Row {
    row(what, Submit::Create, spec, None)
}

fn bad_update(what: impl Into<String>, base: Base, spec: impl Into<String>, messages: &[&'static str]) -> Row {
    row(what, Submit::Replace(base), spec, Some(messages))
}

fn good_update(what: impl Into<String>, base: Base, spec: impl Into<String>) -> Row {
    row(what, Submit::Replace(base), spec, None)
}

/// A valid allocating spec with `line` added.
fn allocating(line: &str) -> String {
    format!("  regionId: cn-hangzhou\n  eipMask: 28\n{line}")
}

/// The allocating base's spec with one field's line replaced (or removed, when `line` is empty).
fn allocating_base_with(field: &str, line: &str) -> String {
    let mut found = false;
    let spec: String = ALLOCATING_SPEC
        .lines()
        .map(|l| {
            if l.trim_start().starts_with(&format!("{field}:")) {
                found = true;
                if line.is_empty() { String::new() } else { format!("{line}\n") }
            } else {
                format!("{l}\n")
            }
        })
        .collect();
    assert!(found, "the allocating base has no {field}");
    spec
}

fn manifest(ns: &str, name: &str, resource_version: Option<&str>, spec: Option<&str>, extra_top_level: &str) -> String {
    let mut m =
        format!("apiVersion: eipsegment.io/v1alpha1\nkind: EipSegment\nmetadata:\n  name: {name}\n  namespace: {ns}\n");
    if let Some(rv) = resource_version {
        m.push_str(&format!("  resourceVersion: \"{rv}\"\n"));
    }
    if let Some(spec) = spec {
        m.push_str(if spec.is_empty() { "spec: {}\n" } else { "spec:\n" });
        m.push_str(spec);
    }
    m.push_str(extra_top_level);
    m
}

/// `prefix` padded with `a` to `total` characters.
fn long(prefix: &str, total: usize) -> String {
    format!("{prefix}{}", "a".repeat(total - prefix.len()))
}

// A data table of rows, one per spec and its expected verdict: long by nature, not by logic.
#[allow(clippy::too_many_lines)]
fn table() -> Vec<Row> {
    use Base::*;
    vec![
        // ---- Accepted: the rules are not over-broad. --------------------------------------------
        good("minimal allocation", allocating("")),
        good("minimal adoption", ADOPTING_SPEC),
        good("every allocation parameter", ALLOCATING_SPEC),
        good("smallest segment /28, bandwidth 1", allocating("  bandwidth: 1\n")),
        good(
            "largest segment /24, PayByBandwidth at its 500 Mbit/s limit",
            "  regionId: cn-hangzhou\n  eipMask: 24\n  bandwidth: 500\n  internetChargeType: PayByBandwidth\n",
        ),
        good(
            "PayByTraffic at its 200 Mbit/s limit",
            allocating("  bandwidth: 200\n  internetChargeType: PayByTraffic\n"),
        ),
        good("PayByTraffic without a bandwidth", allocating("  internetChargeType: PayByTraffic\n")),
        good("a single-ISP line", allocating("  isp: ChinaMobile_L2\n")),
        good(
            "BGP_FinanceCloud in a finance region",
            "  regionId: cn-shanghai-finance-1\n  eipMask: 28\n  isp: BGP_FinanceCloud\n  zone: cn-shanghai-finance-1z\n",
        ),
        good(
            "a zone named without a dash before its letter",
            "  regionId: ap-southeast-1\n  eipMask: 27\n  zone: ap-southeast-1a\n",
        ),
        good("a region ID of exactly 64 characters", format!("  regionId: {}\n  eipMask: 28\n", long("cn-", 64))),
        good(
            "credentials from a Secret with a dotted name",
            allocating("  credentialsSecretRef:\n    name: alibaba.credentials-1\n"),
        ),
        good("an adopted segment released on deletion", format!("{ADOPTING_SPEC}  deletionPolicy: Delete\n")),
        good("an allocated segment kept on deletion", allocating("  deletionPolicy: Retain\n")),
        good("a null optional field counts as absent", allocating("  bandwidth: null\n")),
        // ---- Missing required fields. -----------------------------------------------------------
        Row { spec: None, ..bad("no spec at all", "", &["spec: Required value"]) },
        Row { spec: Some(String::new()), ..bad("an empty spec", "", &["spec.regionId: Required value"]) },
        bad("no regionId", "  eipMask: 28\n", &["spec.regionId: Required value"]),
        bad(
            "an empty regionId",
            "  regionId: \"\"\n  eipMask: 28\n",
            &["spec.regionId", "should be at least 1 chars long"],
        ),
        bad(
            "neither eipMask nor segmentInstanceId",
            "  regionId: cn-hangzhou\n",
            &["set eipMask to allocate a new segment, or segmentInstanceId to adopt an existing one"],
        ),
        bad(
            "eipMask: null is no eipMask",
            "  regionId: cn-hangzhou\n  eipMask: null\n",
            &["set eipMask to allocate a new segment"],
        ),
        bad(
            "a Secret reference without a name",
            allocating("  credentialsSecretRef: {}\n"),
            &["spec.credentialsSecretRef.name: Required value"],
        ),
        // ---- Allocate and adopt together. -------------------------------------------------------
        bad("eipMask and segmentInstanceId both set", format!("{ADOPTING_SPEC}  eipMask: 28\n"), &["not both"]),
        bad(
            "adopting with a bandwidth",
            format!("{ADOPTING_SPEC}  bandwidth: 10\n"),
            &["describe a new segment: leave them out when adopting"],
        ),
        bad(
            "adopting with an ISP",
            format!("{ADOPTING_SPEC}  isp: BGP\n"),
            &["describe a new segment: leave them out when adopting"],
        ),
        bad(
            "adopting with a zone",
            format!("{ADOPTING_SPEC}  zone: cn-hangzhou-a\n"),
            &["describe a new segment: leave them out when adopting"],
        ),
        bad(
            "adopting with a resource group",
            format!("{ADOPTING_SPEC}  resourceGroupId: rg-acfmxazb4ph6aiy\n"),
            &["describe a new segment: leave them out when adopting"],
        ),
        // ---- Enums. -----------------------------------------------------------------------------
        bad(
            "internetChargeType PayByHour",
            allocating("  internetChargeType: PayByHour\n"),
            &[
                "spec.internetChargeType: Unsupported value: \"PayByHour\": supported values: \"PayByBandwidth\", \"PayByTraffic\"",
            ],
        ),
        bad("isp Pigeon", allocating("  isp: Pigeon\n"), &["spec.isp: Unsupported value: \"Pigeon\"", "\"BGP_PRO\""]),
        bad("isp in the wrong case", allocating("  isp: bgp\n"), &["spec.isp: Unsupported value: \"bgp\""]),
        // 1.33 quotes the value (`Unsupported value: "null": supported values: ...`), 1.34 and 1.37 do not.
        bad(
            "isp: null",
            allocating("  isp: null\n"),
            &["spec.isp: Unsupported value: ", "null", ": supported values: \"BGP\""],
        ),
        bad(
            "netmode hybrid (no current region takes it)",
            allocating("  netmode: hybrid\n"),
            &["spec.netmode: Unsupported value: \"hybrid\": supported values: \"public\""],
        ),
        bad(
            "deletionPolicy Orphan",
            allocating("  deletionPolicy: Orphan\n"),
            &["spec.deletionPolicy: Unsupported value: \"Orphan\": supported values: \"Delete\", \"Retain\""],
        ),
        // ---- Numbers out of range or of the wrong type. -----------------------------------------
        bad(
            "eipMask 23 (a /23 is too large)",
            "  regionId: cn-hangzhou\n  eipMask: 23\n",
            &["spec.eipMask", "should be greater than or equal to 24"],
        ),
        bad(
            "eipMask 29 (a /29 is too small)",
            "  regionId: cn-hangzhou\n  eipMask: 29\n",
            &["spec.eipMask", "should be less than or equal to 28"],
        ),
        bad(
            "eipMask 32",
            "  regionId: cn-hangzhou\n  eipMask: 32\n",
            &["spec.eipMask", "should be less than or equal to 28"],
        ),
        bad(
            "a negative eipMask",
            "  regionId: cn-hangzhou\n  eipMask: -28\n",
            &["spec.eipMask", "should be greater than or equal to 24"],
        ),
        bad(
            "eipMask as a string",
            "  regionId: cn-hangzhou\n  eipMask: \"28\"\n",
            &["spec.eipMask", "must be of type integer"],
        ),
        bad("bandwidth 0", allocating("  bandwidth: 0\n"), &["spec.bandwidth", "should be greater than or equal to 1"]),
        bad(
            "a negative bandwidth",
            allocating("  bandwidth: -5\n"),
            &["spec.bandwidth", "should be greater than or equal to 1"],
        ),
        bad(
            "bandwidth 501",
            allocating("  bandwidth: 501\n"),
            &["spec.bandwidth", "should be less than or equal to 500"],
        ),
        bad(
            "bandwidth beyond 32 bits",
            allocating("  bandwidth: 4294967296\n"),
            &["spec.bandwidth", "should be less than or equal to 500"],
        ),
        bad("a fractional bandwidth", allocating("  bandwidth: 1.5\n"), &["spec.bandwidth", "must be of type integer"]),
        bad(
            "PayByTraffic above 200 Mbit/s",
            allocating("  bandwidth: 201\n  internetChargeType: PayByTraffic\n"),
            &["bandwidth is at most 200 Mbit/s with PayByTraffic"],
        ),
        // ---- Formats. ---------------------------------------------------------------------------
        bad("a region ID in capitals", "  regionId: CN-Hangzhou\n  eipMask: 28\n", &["spec.regionId", "should match"]),
        bad(
            "a region ID with an underscore",
            "  regionId: cn_hangzhou\n  eipMask: 28\n",
            &["spec.regionId", "should match"],
        ),
        bad(
            "a region ID without its area",
            "  regionId: hangzhou\n  eipMask: 28\n",
            &["spec.regionId", "should match"],
        ),
        bad(
            "a region endpoint instead of its ID",
            "  regionId: vpc.cn-hangzhou.aliyuncs.com\n  eipMask: 28\n",
            &["spec.regionId", "should match"],
        ),
        bad(
            "a segment ID of another resource",
            "  regionId: cn-hangzhou\n  segmentInstanceId: eip-2zett8ba055tbsxme0001\n",
            &["spec.segmentInstanceId", "should match '^eipsg-"],
        ),
        bad(
            "a segment ID in capitals",
            "  regionId: cn-hangzhou\n  segmentInstanceId: eipsg-2ZETT8BA055\n",
            &["spec.segmentInstanceId", "should match"],
        ),
        bad("a zone with a space", allocating("  zone: cn hangzhou a\n"), &["spec.zone", "should match"]),
        bad(
            "a resource group name instead of its ID",
            allocating("  resourceGroupId: default\n"),
            &["spec.resourceGroupId", "should match '^rg-"],
        ),
        bad(
            "a Secret name that is not a DNS subdomain",
            allocating("  credentialsSecretRef:\n    name: My_Secret\n"),
            &["spec.credentialsSecretRef.name", "should match"],
        ),
        // ---- Oversized values. ------------------------------------------------------------------
        bad(
            "a region ID of 65 characters",
            format!("  regionId: {}\n  eipMask: 28\n", long("cn-", 65)),
            &["spec.regionId: Too long: may not be more than 64 bytes"],
        ),
        bad(
            "a zone of 65 characters",
            allocating(&format!("  zone: {}\n", long("cn-hangzhou-", 65))),
            &["spec.zone: Too long: may not be more than 64 bytes"],
        ),
        bad(
            "a resource group ID of 65 characters",
            allocating(&format!("  resourceGroupId: {}\n", long("rg-", 65))),
            &["spec.resourceGroupId: Too long: may not be more than 64 bytes"],
        ),
        bad(
            "a segment ID of 65 characters",
            format!("  regionId: cn-hangzhou\n  segmentInstanceId: {}\n", long("eipsg-", 65)),
            &["spec.segmentInstanceId: Too long: may not be more than 64 bytes"],
        ),
        bad(
            "a Secret name of 254 characters",
            allocating(&format!("  credentialsSecretRef:\n    name: {}\n", long("s", 254))),
            &["spec.credentialsSecretRef.name: Too long: may not be more than 253 bytes"],
        ),
        bad(
            "a zone of one megabyte",
            allocating(&format!("  zone: {}\n", long("cn-hangzhou-", 1 << 20))),
            &["spec.zone: Too long: may not be more than 64 bytes"],
        ),
        Row {
            name: long("n", 254),
            ..bad(
                "an object name of 254 characters",
                allocating(""),
                &["metadata.name", "must be no more than 253 characters"],
            )
        },
        // ---- Unknown fields: strict field validation, and server-side apply. --------------------
        bad(
            "an unknown field",
            allocating("  bandwith: 10\n"),
            &["strict decoding error: unknown field \"spec.bandwith\""],
        ),
        bad(
            "a field in the wrong case",
            "  regionId: cn-hangzhou\n  eipmask: 28\n",
            &["unknown field \"spec.eipmask\""],
        ),
        bad(
            "a Secret in another namespace",
            allocating("  credentialsSecretRef:\n    name: creds\n    namespace: other\n"),
            &["unknown field \"spec.credentialsSecretRef.namespace\""],
        ),
        Row {
            extra_top_level: "specs:\n  regionId: cn-hangzhou\n",
            ..bad("a misspelt spec next to the real one", allocating(""), &["unknown field \"specs\""])
        },
        row(
            "an unknown field, by server-side apply",
            Submit::ServerSideApply,
            allocating("  bandwith: 10\n"),
            Some(&[".spec.bandwith: field not declared in schema"]),
        ),
        row("a valid object, by server-side apply", Submit::ServerSideApply, allocating(""), None),
        // ---- Updates: CEL transition rules. -----------------------------------------------------
        good_update("the same spec again", Allocating, ALLOCATING_SPEC),
        good_update("deletionPolicy set", Allocating, format!("{ALLOCATING_SPEC}  deletionPolicy: Retain\n")),
        good_update(
            "a Secret reference added",
            Allocating,
            format!("{ALLOCATING_SPEC}  credentialsSecretRef:\n    name: creds\n"),
        ),
        good_update(
            "an adopted segment switched to Delete",
            Adopting,
            format!("{ADOPTING_SPEC}  deletionPolicy: Delete\n"),
        ),
        bad_update(
            "regionId changed",
            Allocating,
            allocating_base_with("regionId", "  regionId: cn-beijing"),
            // 1.33 and 1.34 name the type (`Invalid value: "string"`), 1.37 the value (`"cn-beijing"`).
            &["spec.regionId: Invalid value: ", "regionId is immutable"],
        ),
        bad_update(
            "regionId removed",
            Allocating,
            allocating_base_with("regionId", ""),
            &["spec.regionId: Required value"],
        ),
        bad_update(
            "eipMask changed",
            Allocating,
            allocating_base_with("eipMask", "  eipMask: 27"),
            &["eipMask is immutable"],
        ),
        bad_update(
            "bandwidth changed",
            Allocating,
            allocating_base_with("bandwidth", "  bandwidth: 20"),
            &["bandwidth is immutable: the operator does not resize a live segment"],
        ),
        bad_update("bandwidth removed", Allocating, allocating_base_with("bandwidth", ""), &["bandwidth is immutable"]),
        bad_update(
            "internetChargeType changed",
            Allocating,
            allocating_base_with("internetChargeType", "  internetChargeType: PayByTraffic"),
            &["internetChargeType is immutable"],
        ),
        bad_update("isp changed", Allocating, allocating_base_with("isp", "  isp: BGP_PRO"), &["isp is immutable"]),
        bad_update("netmode removed", Allocating, allocating_base_with("netmode", ""), &["netmode is immutable"]),
        bad_update(
            "zone changed",
            Allocating,
            allocating_base_with("zone", "  zone: cn-hangzhou-b"),
            &["zone is immutable"],
        ),
        bad_update(
            "resourceGroupId changed",
            Allocating,
            allocating_base_with("resourceGroupId", "  resourceGroupId: rg-other"),
            &["resourceGroupId is immutable"],
        ),
        bad_update(
            "an immutable change hidden behind an allowed one",
            Allocating,
            format!("{}  deletionPolicy: Retain\n", allocating_base_with("eipMask", "  eipMask: 24")),
            &["eipMask is immutable"],
        ),
        bad_update(
            "an allocation turned into an adoption",
            Allocating,
            "  regionId: cn-hangzhou\n  segmentInstanceId: eipsg-2zett8ba055tbsxme0001\n",
            &["eipMask is immutable", "segmentInstanceId is immutable"],
        ),
        bad_update(
            "the adopted segment swapped",
            Adopting,
            "  regionId: cn-hangzhou\n  segmentInstanceId: eipsg-somethingelse\n",
            &["segmentInstanceId is immutable"],
        ),
        bad_update(
            "an adoption turned into an allocation",
            Adopting,
            "  regionId: cn-hangzhou\n  eipMask: 28\n",
            &["segmentInstanceId is immutable", "eipMask is immutable"],
        ),
        bad_update(
            "an adoption given a bandwidth",
            Adopting,
            format!("{ADOPTING_SPEC}  bandwidth: 10\n"),
            &["describe a new segment", "bandwidth is immutable"],
        ),
        bad_update(
            "an invalid value in an update",
            Allocating,
            format!("{ALLOCATING_SPEC}  deletionPolicy: Orphan\n"),
            &["spec.deletionPolicy: Unsupported value: \"Orphan\""],
        ),
        bad_update(
            "an unknown field in an update",
            Allocating,
            format!("{ALLOCATING_SPEC}  bandwith: 10\n"),
            &["unknown field \"spec.bandwith\""],
        ),
    ]
}

/// The apiserver's message, without kubectl's framing of where the input came from.
fn first_line(stderr: &str) -> String {
    let text: String = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>().join(" ");
    if text.chars().count() > 180 { format!("{}…", text.chars().take(180).collect::<String>()) } else { text }
}

/// A stored object the update rows replace, as it was created.
struct StoredBase {
    base: Base,
    resource_version: String,
    generation: Value,
}

/// Creates the objects the update rows change (no operator serves this namespace: no finalizer).
fn store_bases(c: &Cluster, ns: &str) -> Vec<StoredBase> {
    let mut stored = Vec::new();
    for base in [Base::Allocating, Base::Adopting] {
        let (ok, _, err) = c.kubectl_as(
            c.admin_kubeconfig(),
            &["create", "-f", "-"],
            Some(&manifest(ns, base.name(), None, Some(base.spec()), "")),
        );
        assert!(ok, "creating the {base:?} base failed: {err}");
        let obj = c.get(ns, base.name()).unwrap();
        stored.push(StoredBase {
            base,
            resource_version: obj["metadata"]["resourceVersion"].as_str().unwrap().to_string(),
            generation: obj["metadata"]["generation"].clone(),
        });
    }
    stored
}

/// The kubectl arguments of a submission.
fn submit_args(submit: Submit) -> &'static [&'static str] {
    match submit {
        Submit::Create => &["create", "--dry-run=server", "--validate=strict", "-f", "-"],
        Submit::ServerSideApply => {
            &["apply", "--server-side", "--field-manager=admission-test", "--dry-run=server", "-f", "-"]
        }
        Submit::Replace(_) => &["replace", "--dry-run=server", "--validate=strict", "-f", "-"],
    }
}

/// What became of a row: accepted or refused as it expects (with the line to log), or not.
enum Verdict {
    Accepted(String),
    Refused(String),
    Failed(String),
}

/// Submits a row as a dry run; an update row replaces its stored base, at the version stored.
fn submit_row(c: &Cluster, ns: &str, bases: &[StoredBase], r: &Row) -> Verdict {
    let (name, rv) = match r.submit {
        Submit::Replace(base) => {
            (base.name().to_string(), bases.iter().find(|b| b.base == base).map(|b| b.resource_version.as_str()))
        }
        _ => (r.name.clone(), None),
    };
    let doc = manifest(ns, &name, rv, r.spec.as_deref(), r.extra_top_level);
    let (ok, out, err) = c.kubectl_as(c.admin_kubeconfig(), submit_args(r.submit), Some(&doc));
    judge(r, ok, &out, &err)
}

fn judge(r: &Row, ok: bool, out: &str, err: &str) -> Verdict {
    match (&r.rejected_with, ok) {
        (None, true) if out.contains("(server dry run)") => Verdict::Accepted(out.trim().to_string()),
        (None, _) => Verdict::Failed(format!("{}: must be accepted, got: {}", r.what, first_line(err))),
        (Some(_), true) => Verdict::Failed(format!("{}: must be refused, was accepted: {}", r.what, out.trim())),
        (Some(expected), false) => {
            // The refusal comes from the apiserver, not from kubectl's own checks.
            let from_server = err.contains("Error from server") || err.contains("\" is invalid");
            let missing: Vec<&&str> = expected.iter().filter(|e| !err.contains(**e)).collect();
            if !from_server || !missing.is_empty() {
                Verdict::Failed(format!("{}: expected {missing:?} in the apiserver's refusal, got: {err}", r.what))
            } else {
                Verdict::Refused(first_line(err))
            }
        }
    }
}

/// Every row of the table gets the verdict it expects, and the table still holds its many rows.
fn check_every_row(c: &Cluster, ns: &str, bases: &[StoredBase]) {
    let rows = table();
    let (mut failures, mut accepted, mut refused) = (Vec::new(), 0, 0);
    for r in &rows {
        match submit_row(c, ns, bases, r) {
            Verdict::Accepted(line) => {
                accepted += 1;
                eprintln!("accepted  {:<62} {line}", r.what);
            }
            Verdict::Refused(line) => {
                refused += 1;
                eprintln!("refused   {:<62} {line}", r.what);
            }
            Verdict::Failed(failure) => failures.push(failure),
        }
    }
    assert!(failures.is_empty(), "{} of {} rows failed:\n{}", failures.len(), rows.len(), failures.join("\n"));
    assert!(accepted >= 10 && refused >= 60, "the table shrank: {accepted} accepted, {refused} refused");
}

/// Dry runs changed nothing: the bases are as created, and no row was stored.
fn assert_dry_runs_changed_nothing(c: &Cluster, ns: &str, bases: &[StoredBase]) {
    for StoredBase { base, resource_version, generation } in bases {
        let obj = c.get(ns, base.name()).unwrap();
        assert_eq!(&obj["metadata"]["resourceVersion"].as_str().unwrap(), resource_version, "{base:?} was changed");
        assert_eq!(&obj["metadata"]["generation"], generation);
    }
    assert!(c.get(ns, "row").is_none(), "a dry run stored an object");
}

/// Without strict validation an unknown field is not stored (the schema is structural and prunes);
/// with warnings only, kubectl says what it dropped.
fn assert_unknown_fields_pruned_or_warned(c: &Cluster, ns: &str) {
    let kc = c.admin_kubeconfig();
    let doc = manifest(ns, "pruned", None, Some(&allocating("  bandwith: 10\n")), "");
    let (ok, _, err) = c.kubectl_as(kc, &["create", "--validate=false", "-f", "-"], Some(&doc));
    assert!(ok, "{err}");
    let spec = c.get(ns, "pruned").unwrap()["spec"].clone();
    assert_eq!(spec, serde_json::json!({"regionId": "cn-hangzhou", "eipMask": 28}), "the unknown field was kept");
    let doc = manifest(ns, "warned", None, Some(&allocating("  bandwith: 10\n")), "");
    let (ok, _, err) = c.kubectl_as(kc, &["create", "--dry-run=server", "--validate=warn", "-f", "-"], Some(&doc));
    assert!(ok && err.contains("unknown field \"spec.bandwith\""), "no warning for an unknown field: {err}");
}

#[test]
fn the_apiserver_refuses_bad_input_with_clear_messages() {
    let c = Cluster::shared();
    let ns = c.namespace("admission");
    let bases = store_bases(c, &ns);
    check_every_row(c, &ns, &bases);
    assert_dry_runs_changed_nothing(c, &ns, &bases);
    assert_unknown_fields_pruned_or_warned(c, &ns);
    c.kubectl(&["delete", "eipsegments", "--all", "-n", &ns, "--wait=true", "--timeout=30s"]);
}

// ---- What only the cloud can refuse -------------------------------------------------------------

/// Calls of `action` the simulator answered, whatever the outcome.
fn calls(sim: &Simulator, action: &str) -> u64 {
    sim.admin("GET", "counters", Value::Null)[action]
        .as_object()
        .map_or(0, |o| o.values().filter_map(Value::as_u64).sum())
}

fn total_calls(sim: &Simulator) -> u64 {
    let counters = sim.admin("GET", "counters", Value::Null);
    counters.as_object().map_or(0, |actions| actions.keys().map(|a| calls(sim, a)).sum())
}

/// The most attempts a terminal backoff that starts at `base` and doubles (each wait shortened by up
/// to 20% jitter) allows within `window` after the first.
fn terminal_backoff_allows(base: Duration, window: Duration) -> u64 {
    let (mut attempts, mut at, mut wait) = (1, Duration::ZERO, base.mul_f64(0.8));
    while at + wait <= window {
        at += wait;
        wait *= 2;
        attempts += 1;
    }
    attempts
}

/// A spec the schema admits and the cloud refuses, and how the refusal must be reported.
#[derive(Clone, Copy)]
struct Refusal {
    name: &'static str,
    spec: &'static str,
    /// The simulator's action, and the error code it answers.
    call: &'static str,
    code: &'static str,
    /// `status.lastError.action` and the Warning event's reason.
    action: &'static str,
    event: &'static str,
    /// What the condition and the event must tell the user, and what the cloud said.
    advice: &'static str,
    cloud_says: &'static str,
}

/// The terminal backoff the support harness gives the operator (`--terminal-retry-seconds 3`).
const TERMINAL_BASE: Duration = Duration::from_secs(3);
/// How long the refused objects are watched for a retry loop.
const WATCH: Duration = Duration::from_secs(40);

/// Well-formed, so admitted; the simulated cloud serves no such region, and its zones are its own.
const CLOUD_REFUSALS: [Refusal; 3] = [
    Refusal {
        name: "nowhere",
        spec: "  regionId: xx-nowhere-1\n  eipMask: 28\n",
        call: "AllocateEipSegmentAddress",
        code: "InvalidRegion.NotSupport",
        action: "Allocate",
        event: "AllocationFailed",
        advice: "fix spec.regionId",
        cloud_says: "does not support",
    },
    Refusal {
        name: "foreign-zone",
        spec: "  regionId: cn-hangzhou\n  eipMask: 28\n  zone: cn-beijing-a\n",
        call: "AllocateEipSegmentAddress",
        code: "InvalidParameter",
        action: "Allocate",
        event: "AllocationFailed",
        advice: "fix the spec",
        cloud_says: "Zone does not belong to the region",
    },
    // Adoption looks the segment up instead: the look fails the same way.
    Refusal {
        name: "adopt-nowhere",
        spec: "  regionId: xx-nowhere-1\n  segmentInstanceId: eipsg-2zett8ba055tbsxme0001\n",
        call: "DescribeEipSegment",
        code: "Forbidden.RegionNotFound",
        action: "Describe",
        event: "CloudError",
        advice: "fix spec.regionId",
        cloud_says: "region is not found",
    },
];

/// The refused objects, and a valid neighbour, so the refusals are not the operator failing at
/// everything.
fn apply_refused_and_a_valid_neighbour(c: &Cluster, ns: &str) {
    for Refusal { name, spec, .. } in CLOUD_REFUSALS {
        c.apply(&segment_yaml(ns, name, spec)).unwrap();
    }
    c.apply(&segment_yaml(ns, "fine", "  regionId: cn-hangzhou\n  eipMask: 28\n")).unwrap();
}

/// When each case's refused calls were counted, in seconds from `started`, over the whole watch.
fn watch_refused_calls(sim: &Simulator, started: Instant) -> Vec<Vec<f64>> {
    let mut attempts: Vec<Vec<f64>> = vec![Vec::new(); CLOUD_REFUSALS.len()];
    while started.elapsed() < WATCH {
        for (i, case) in CLOUD_REFUSALS.iter().enumerate() {
            let n = sim.count(case.call, case.code) as usize;
            while attempts[i].len() < n {
                attempts[i].push(started.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    attempts
}

/// Each refusal came back only at the terminal backoff: no more attempts than it allows, and
/// growing gaps between them.
fn assert_terminal_backoff(started: Instant, attempts: &[Vec<f64>]) {
    let allowed = terminal_backoff_allows(TERMINAL_BASE, started.elapsed());
    for (Refusal { name, .. }, times) in CLOUD_REFUSALS.iter().zip(attempts) {
        eprintln!(
            "{name}: refused calls at {times:.1?} s (a terminal backoff allows {allowed} in {:?})",
            started.elapsed()
        );
        assert!(!times.is_empty(), "{name}: never attempted");
        assert!(
            times.len() as u64 <= allowed,
            "{name}: {} attempts in {:?} where a terminal backoff allows {allowed}: a retry loop",
            times.len(),
            started.elapsed()
        );
        // The gaps grow: a backoff, not a fixed pace.
        let gaps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
        assert!(gaps.len() >= 2, "{name}: too few retries in {WATCH:?} to see the backoff: {times:?}");
        for pair in gaps.windows(2) {
            assert!(pair[1] > pair[0] * 1.3, "{name}: retries at {times:?} do not back off");
        }
    }
}

/// The status, the Synced condition and a Warning event say what the cloud refused and what to fix.
fn assert_refusal_reported(c: &Cluster, ns: &str, refusal: Refusal) {
    let Refusal { name, code, action, event, advice, cloud_says, .. } = refusal;
    let obj = c.get(ns, name).expect("the refused object");
    assert_eq!(obj["status"]["lastError"]["code"], code, "{name}: {}", obj["status"]);
    let synced = condition(&obj, "Synced").expect("a Synced condition");
    assert_eq!(
        (synced["status"].as_str(), synced["reason"].as_str()),
        (Some("False"), Some("Terminal")),
        "{name}: {synced}"
    );
    let message = synced["message"].as_str().unwrap();
    assert!(
        message.contains(code) && message.contains(advice) && message.contains(cloud_says),
        "{name}: unclear condition message {message:?}"
    );
    assert_eq!(obj["status"]["lastError"]["class"], "Terminal");
    assert_eq!(obj["status"]["lastError"]["action"], action);
    assert!(obj["status"]["segmentInstanceId"].is_null(), "{name}: nothing was allocated");
    assert!(obj["status"]["allocationRequestedAt"].is_null(), "{name}: a refused allocation leaves nothing pending");
    assert!(!is_ready(&obj), "{name}");
    let warnings: Vec<_> = c.events(ns, name).into_iter().filter(|(type_, ..)| type_ == "Warning").collect();
    assert!(
        warnings.iter().any(|(_, reason, note)| reason == event && note.contains(code) && note.contains(advice)),
        "{name}: no Warning event names the problem: {warnings:?}"
    );
}

/// The neighbour alone was allocated, and every refused object still waits on the operator's cleanup.
fn assert_only_the_neighbour_allocated(c: &Cluster, ns: &str, sim: &Simulator) {
    assert!(is_ready(&c.get(ns, "fine").unwrap()), "the valid neighbour is Ready");
    for Refusal { name, .. } in CLOUD_REFUSALS {
        let finalizers = c.get(ns, name).unwrap()["metadata"]["finalizers"].clone();
        assert_eq!(
            finalizers,
            serde_json::json!([eipsegment_operator::crd::FINALIZER]),
            "{name}: the deletion must pass through the operator's cleanup"
        );
    }
    assert_eq!(sim.count("AllocateEipSegmentAddress", "Success"), 1, "only the valid neighbour was allocated");
    assert_eq!(sim.segments().len(), 1);
}

/// Deleting a refused object completes at once: nothing was allocated, so nothing to release.
fn assert_refused_deletions_need_no_cloud(c: &Cluster, ns: &str, sim: &Simulator) {
    let before = total_calls(sim);
    for Refusal { name, .. } in CLOUD_REFUSALS {
        let start = Instant::now();
        c.kubectl(&["delete", "eipsegment", name, "-n", ns, "--timeout=30s"]);
        assert!(c.get(ns, name).is_none());
        eprintln!("{name}: deleted in {:?}", start.elapsed());
    }
    assert_eq!(calls(sim, "ReleaseEipSegmentAddress"), 0, "a refused allocation has nothing to release");
    assert!(
        total_calls(sim) - before <= CLOUD_REFUSALS.len() as u64,
        "deleting refused objects needs no cloud calls beyond the neighbour's polling"
    );
    assert_eq!(sim.segments().len(), 1, "the neighbour's segment is untouched");
}

#[test]
fn what_only_the_cloud_refuses_ends_terminal_without_a_retry_loop() {
    let c = Cluster::shared();
    let ns = c.namespace("cloud-refuses");
    let sim = Simulator::start(&[]);
    let _op = Operator::start(c, &sim, &ns, &[]);
    apply_refused_and_a_valid_neighbour(c, &ns);

    // Watched from the start for a retry loop.
    let started = Instant::now();
    let attempts = watch_refused_calls(&sim, started);
    assert_terminal_backoff(started, &attempts);

    for refusal in CLOUD_REFUSALS {
        assert_refusal_reported(c, &ns, refusal);
    }
    assert_only_the_neighbour_allocated(c, &ns, &sim);
    assert_refused_deletions_need_no_cloud(c, &ns, &sim);

    c.kubectl(&["delete", "eipsegment", "fine", "-n", &ns, "--timeout=60s"]);
    assert!(sim.segments().is_empty(), "the neighbour's segment was released");
}
