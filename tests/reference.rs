//! The reference pages against the code they describe, both ways, without a cluster:
//! - crds/README.md's generated part is what the CRD (crds/eipsegment.io_eipsegments.yaml) says
//!   (`make reference` writes it again);
//! - every flag and environment variable of `run` and `audit` (clap) is in the operations guide's
//!   tables, and every flag those tables name exists;
//! - every metric the operator serves is in the guide's metrics table, and every metric there is
//!   served;
//! - every `eipsegment.io/` annotation and finalizer, every Ready reason and every event reason of
//!   the code is in crds/README.md, and each one listed there exists in the code.
//!
//! The chart's values are checked against their README in tests/chart.rs (helm-docs).

use std::collections::BTreeSet;
use std::path::Path;

use clap::CommandFactory;
use eipsegment_operator::cli::Cli;
use eipsegment_operator::cloud::Action;
use eipsegment_operator::cloud::client::CallObserver;
use eipsegment_operator::lifecycle::conditions::READY_REASONS;
use eipsegment_operator::telemetry::{Census, Metrics, ObjectCensus};
use serde_yaml::Value;

const REPO: &str = env!("CARGO_MANIFEST_DIR");
const BEGIN: &str =
    "<!-- BEGIN generated from crds/eipsegment.io_eipsegments.yaml by tests/reference.rs: `make reference` -->";
const END: &str = "<!-- END generated -->";

fn read(path: &str) -> String {
    std::fs::read_to_string(Path::new(REPO).join(path)).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The text of a Markdown section: from its heading to the next heading of the same or a higher level.
fn section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let start = doc.find(&format!("\n{heading}\n")).unwrap_or_else(|| panic!("no section {heading:?}")) + 1;
    let body = &doc[start + heading.len()..];
    let end = body
        .match_indices("\n#")
        .find(|(i, _)| {
            let rest = &body[i + 1..];
            let hashes = rest.chars().take_while(|c| *c == '#').count();
            hashes <= level && rest[hashes..].starts_with(' ') && !in_fence(&body[..*i])
        })
        .map_or(body.len(), |(i, _)| i);
    &body[..end]
}

/// Whether a position follows an odd number of code fences (it is inside a code block).
fn in_fence(before: &str) -> bool {
    before.lines().filter(|l| l.trim_start().starts_with("```")).count() % 2 == 1
}

/// The backquoted words of a table's first column, in the rows of a section.
fn first_column(section: &str) -> BTreeSet<String> {
    section
        .lines()
        .filter(|l| l.starts_with("| `"))
        .flat_map(|l| {
            let cell = l.trim_start_matches('|').split(" | ").next().unwrap_or("");
            cell.split('`').skip(1).step_by(2).map(String::from).collect::<Vec<_>>()
        })
        .collect()
}

fn words_like(text: &str, start: &str, allowed: impl Fn(char) -> bool) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (i, _) in text.match_indices(start) {
        let before = text[..i].chars().next_back();
        if before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-') {
            continue;
        }
        let rest = &text[i + start.len()..];
        let end = rest.find(|c: char| !allowed(c)).unwrap_or(rest.len());
        found.insert(format!("{start}{}", &rest[..end]));
    }
    found
}

fn differences(what: &str, code: &BTreeSet<String>, docs: &BTreeSet<String>, page: &str) -> Vec<String> {
    let mut out = Vec::new();
    for c in code.difference(docs) {
        out.push(format!("{what} {c} is in the code but not in {page}"));
    }
    for d in docs.difference(code) {
        out.push(format!("{what} {d} is in {page} but not in the code"));
    }
    out
}

// ---- The API reference, generated from the CRD -------------------------------------------------

fn cell(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        if !out.is_empty() {
            out.push_str(if line.starts_with("- ") { "<br>" } else { " " });
        }
        out.push_str(line);
    }
    out.replace('|', "\\|")
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => {
            let f = n.as_f64().unwrap_or_default();
            if f.fract() == 0.0 { format!("{}", f as i64) } else { n.to_string() }
        }
        other => serde_yaml::to_string(other).unwrap_or_default().trim().to_string(),
    }
}

/// The type column: the type and its format, and for arrays the items' type.
fn type_of(schema: &Value) -> String {
    let base = schema["type"].as_str().unwrap_or("any").to_string();
    let with_format = match schema["format"].as_str() {
        Some(f) => format!("{base} ({f})"),
        None => base,
    };
    if with_format == "array" { format!("[]{}", type_of(&schema["items"])) } else { with_format }
}

/// What the apiserver checks of one field, as a sentence.
fn constraints(schema: &Value, required: bool) -> String {
    let mut parts = Vec::new();
    if required {
        parts.push("Required.".to_string());
    }
    if let Some(values) = schema["enum"].as_sequence() {
        let values: Vec<String> = values.iter().map(|v| format!("`{}`", scalar(v))).collect();
        parts.push(format!("One of {}.", values.join(", ")));
    }
    match (schema.get("minimum"), schema.get("maximum")) {
        (Some(min), Some(max)) => parts.push(format!("From {} to {}.", scalar(min), scalar(max))),
        (Some(min), None) => parts.push(format!("At least {}.", scalar(min))),
        (None, Some(max)) => parts.push(format!("At most {}.", scalar(max))),
        (None, None) => {}
    }
    match (schema.get("minLength"), schema.get("maxLength")) {
        (Some(min), Some(max)) => parts.push(format!("{} to {} characters.", scalar(min), scalar(max))),
        (None, Some(max)) => parts.push(format!("At most {} characters.", scalar(max))),
        _ => {}
    }
    if let Some(p) = schema["pattern"].as_str() {
        parts.push(format!("Matches `{p}`."));
    }
    if let Some(d) = schema.get("default") {
        parts.push(format!("Default `{}`.", scalar(d)));
    }
    if let Some(keys) = schema["x-kubernetes-list-map-keys"].as_sequence() {
        let keys: Vec<String> = keys.iter().map(|k| format!("`{}`", scalar(k))).collect();
        parts.push(format!("A map list keyed on {}.", keys.join(", ")));
    }
    for rule in schema["x-kubernetes-validations"].as_sequence().into_iter().flatten() {
        parts.push(format!("Refused: \"{}\".", rule["message"].as_str().unwrap_or("")));
    }
    parts.join(" ")
}

/// One row per field under `prefix`, depth first, in the schema's (alphabetical) order.
fn field_rows(schema: &Value, prefix: &str, rows: &mut Vec<String>) {
    let required: BTreeSet<&str> =
        schema["required"].as_sequence().into_iter().flatten().filter_map(Value::as_str).collect();
    let Some(props) = schema["properties"].as_mapping() else { return };
    for (name, field) in props {
        let name = name.as_str().unwrap();
        let path = format!("{prefix}{name}");
        let description = cell(field["description"].as_str().unwrap_or(""));
        let checks = cell(&constraints(field, required.contains(name)));
        let text = [description, checks].into_iter().filter(|s| !s.is_empty()).collect::<Vec<_>>().join(" ");
        rows.push(format!("| `{path}` | {} | {text} |", type_of(field)));
        if field["type"] == "array" {
            field_rows(&field["items"], &format!("{path}[]."), rows);
        } else {
            field_rows(field, &format!("{path}."), rows);
        }
    }
}

/// The printer columns of a version.
fn columns(version: &Value, out: &mut Vec<String>) {
    out.push("### Columns".into());
    out.push(String::new());
    out.push("`kubectl get` shows the columns of priority 0; `-o wide` adds the others.".into());
    out.push(String::new());
    out.push("| column | priority | JSONPath | description |".into());
    out.push("|---|---|---|---|".into());
    for c in version["additionalPrinterColumns"].as_sequence().into_iter().flatten() {
        let priority = c.get("priority").map_or("0".to_string(), scalar);
        out.push(format!(
            "| {} | {priority} | `{}` | {} |",
            scalar(&c["name"]),
            scalar(&c["jsonPath"]).replace('|', "\\|"),
            cell(c["description"].as_str().unwrap_or(""))
        ));
    }
}

/// The table of a part's fields (spec or status), with what the part says of itself.
fn fields(part: &str, field: &Value, out: &mut Vec<String>) {
    out.push(String::new());
    out.push(format!("### {}", if part == "spec" { "Spec" } else { "Status" }));
    out.push(String::new());
    if let Some(d) = field["description"].as_str() {
        out.push(cell(d).replace("\\|", "|"));
        out.push(String::new());
    }
    let checks = constraints(field, false);
    if !checks.is_empty() {
        out.push(format!("Across fields: {checks}"));
        out.push(String::new());
    }
    out.push("| field | type | description |".into());
    out.push("|---|---|---|".into());
    let mut rows = Vec::new();
    field_rows(field, &format!("{part}."), &mut rows);
    out.extend(rows);
}

fn crd_reference(crd: &Value) -> String {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let list = |v: &Value| -> String {
        let items: Vec<String> = v.as_sequence().into_iter().flatten().map(|s| format!("`{}`", scalar(s))).collect();
        if items.is_empty() { "none".into() } else { items.join(", ") }
    };
    let mut out = vec![BEGIN.to_string(), String::new()];
    for version in spec["versions"].as_sequence().expect("versions") {
        let schema = &version["schema"]["openAPIV3Schema"];
        out.push(format!("## {} {}", names["kind"].as_str().unwrap(), version["name"].as_str().unwrap()));
        out.push(String::new());
        out.push("| group | version | kind | plural | short names | categories | scope | served | storage |".into());
        out.push("|---|---|---|---|---|---|---|---|---|".into());
        out.push(format!(
            "| `{}` | `{}` | `{}` | `{}` | {} | {} | {} | {} | {} |",
            scalar(&spec["group"]),
            scalar(&version["name"]),
            scalar(&names["kind"]),
            scalar(&names["plural"]),
            list(&names["shortNames"]),
            list(&names["categories"]),
            scalar(&spec["scope"]),
            scalar(&version["served"]),
            scalar(&version["storage"]),
        ));
        out.push(String::new());
        if let Some(d) = schema["description"].as_str() {
            out.push(cell(d).replace("\\|", "|"));
            out.push(String::new());
        }
        columns(version, &mut out);
        for part in ["spec", "status"] {
            fields(part, &schema["properties"][part], &mut out);
        }
        let whole = constraints(schema, false);
        if !whole.is_empty() {
            out.push(String::new());
            out.push(format!("Across spec and status: {whole}"));
        }
    }
    out.push(String::new());
    out.push(END.to_string());
    out.join("\n")
}

#[test]
fn the_api_reference_is_generated_from_the_crd() {
    let crd: Value = serde_yaml::from_str(&read("crds/eipsegment.io_eipsegments.yaml")).expect("the CRD");
    let want = crd_reference(&crd);
    let page = read("crds/README.md");
    let (start, end) = match (page.find(BEGIN), page.find(END)) {
        (Some(s), Some(e)) => (s, e + END.len()),
        _ => panic!("crds/README.md has no generated part between {BEGIN:?} and {END:?}"),
    };
    if std::env::var_os("EIPSEG_WRITE_REFERENCE").is_some() {
        let updated = format!("{}{want}{}", &page[..start], &page[end..]);
        std::fs::write(Path::new(REPO).join("crds/README.md"), updated).unwrap();
        return;
    }
    assert!(
        page[start..end] == want,
        "crds/README.md is out of date with the CRD: run `make reference`\n--- generated:\n{want}"
    );
    // Every field of the CRD has a row, and a row says what it is.
    for line in want.lines().filter(|l| l.starts_with("| `spec.") || l.starts_with("| `status.")) {
        let description = line.rsplit(" | ").next().unwrap().trim_end_matches(" |").trim();
        assert!(!description.is_empty() && description != "|", "a field without a description: {line}");
    }
}

#[test]
fn the_generator_sees_every_field() {
    let crd: Value = serde_yaml::from_str(&read("crds/eipsegment.io_eipsegments.yaml")).unwrap();
    let text = crd_reference(&crd);
    for field in [
        "spec.regionId",
        "spec.credentialsSecretRef.name",
        "status.addresses[].ipAddress",
        "status.conditions[].reason",
    ] {
        assert!(text.contains(&format!("| `{field}` |")), "{field} has no row");
    }
    assert!(text.contains("Required."), "spec.regionId is required");
    assert!(text.contains("From 24 to 28."), "eipMask's range");
}

// ---- Flags ---------------------------------------------------------------------------------------

/// Each long flag of a subcommand, with its environment variable.
fn clap_flags(sub: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let cmd = Cli::command();
    let sub = cmd.find_subcommand(sub).unwrap_or_else(|| panic!("no subcommand {sub}"));
    let mut flags = BTreeSet::new();
    let mut envs = BTreeSet::new();
    for arg in sub.get_arguments() {
        if let Some(long) = arg.get_long() {
            flags.insert(format!("--{long}"));
        }
        if let Some(env) = arg.get_env() {
            envs.insert(env.to_string_lossy().into_owned());
        }
    }
    flags.remove("--help");
    (flags, envs)
}

fn flags_in(text: &str) -> BTreeSet<String> {
    words_like(text, "--", |c| c.is_ascii_lowercase() || c == '-')
}

#[test]
fn every_flag_of_run_and_audit_is_in_the_operations_guide_and_back() {
    let guide = read("deploy/OPERATIONS.md");
    let mut problems = Vec::new();
    // `run`: the table of "Running the binary yourself", flags and their environment variables.
    let run_table = section(&guide, "## Running the binary yourself");
    let rows: Vec<&str> = run_table.lines().filter(|l| l.starts_with("| `--")).collect();
    let cells = |i: usize| -> String {
        rows.iter().map(|r| r.trim_start_matches('|').split(" | ").nth(i).unwrap_or("")).collect::<Vec<_>>().join(" ")
    };
    let (flags, envs) = clap_flags("run");
    problems.extend(differences("run flag", &flags, &flags_in(&cells(0)), "the guide's table of run flags"));
    let documented_envs: BTreeSet<String> = cells(1)
        .split('`')
        .skip(1)
        .step_by(2)
        .filter(|w| !w.is_empty() && w.chars().all(|c| c.is_ascii_uppercase() || c == '_'))
        .map(String::from)
        .collect();
    problems.extend(differences("run environment variable", &envs, &documented_envs, "the guide's table of run flags"));
    // `audit`: its usage line and flag table.
    let audit = section(&guide, "## Orphan audit");
    let audit_rows: String = audit.lines().filter(|l| l.starts_with("| `--")).collect::<Vec<_>>().join("\n");
    let (audit_flags, _) = clap_flags("audit");
    problems.extend(differences("audit flag", &audit_flags, &flags_in(&audit_rows), "the guide's audit flag table"));
    let usage = audit.split("```").nth(1).expect("the audit's usage block");
    problems.extend(differences("audit flag", &audit_flags, &flags_in(usage), "the guide's audit usage line"));
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- Metrics -------------------------------------------------------------------------------------

struct NoObjects;

impl Census for NoObjects {
    fn take(&self) -> ObjectCensus {
        ObjectCensus::default()
    }
}

/// Every metric the operator serves, as scraped: counters with their `_total`. A family shows once
/// it has a series: one call, throttled, one reconcile and one fence refusal give each a series.
fn served_metrics() -> BTreeSet<String> {
    let metrics = Metrics::default();
    metrics.count_with(std::sync::Arc::new(NoObjects));
    metrics.observe(Action::DescribeEipSegment, "cn-hangzhou", "Throttling.User", true, std::time::Duration::ZERO);
    metrics.reconciled("success");
    metrics.fence_refused("deposed");
    let text = metrics.encode();
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let (name, kind) = (parts.next().unwrap(), parts.next().unwrap_or(""));
            if kind == "counter" { format!("{name}_total") } else { name.to_string() }
        })
        .collect()
}

#[test]
fn every_metric_is_in_the_operations_guide_and_back() {
    let served = served_metrics();
    assert!(served.len() >= 15, "the census gauges are missing: {served:?}");
    let guide = read("deploy/OPERATIONS.md");
    let table = section(&guide, "### Metrics");
    let documented: BTreeSet<String> =
        first_column(table).into_iter().map(|m| m.split('{').next().unwrap().to_string()).collect();
    let problems = differences("metric", &served, &documented, "the guide's metrics table");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---- Annotations, finalizers, reasons, events -----------------------------------------------------

/// The product's source files, each cut where its tests begin.
fn product_sources() -> Vec<(String, String)> {
    fn walk(dir: &Path, out: &mut Vec<(String, String)>) {
        for entry in std::fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") && !path.ends_with("tests.rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                let product = text.split("#[cfg(test)]").next().unwrap();
                // Comments only tell: examples in them are not the code's keys.
                let product =
                    product.lines().filter(|l| !l.trim_start().starts_with("//")).collect::<Vec<_>>().join("\n");
                out.push((path.display().to_string(), product));
            }
        }
    }
    let mut out = Vec::new();
    walk(&Path::new(REPO).join("src"), &mut out);
    assert!(out.len() > 20, "the product's sources: {}", out.len());
    out
}

/// `eipsegment.io/<key>` as the code writes them (a key ending in `-` is a prefix).
fn keys_in(text: &str) -> BTreeSet<String> {
    words_like(text, "eipsegment.io/", |c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        .into_iter()
        .filter(|k| k != "eipsegment.io/" && !k.starts_with("eipsegment.io/v1"))
        .collect()
}

#[test]
fn every_annotation_and_finalizer_is_in_the_api_reference_and_back() {
    let code: BTreeSet<String> = product_sources().iter().flat_map(|(_, text)| keys_in(text)).collect();
    for must in ["eipsegment.io/segment-id", "eipsegment.io/identity-proof", "eipsegment.io/release"] {
        assert!(code.contains(must), "{must} not found in src/: {code:?}");
    }
    let page = read("crds/README.md");
    let documented = keys_in(section(&page, "## Annotations and finalizers"));
    let problems = differences("key", &code, &documented, "crds/README.md's annotations and finalizers");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn every_ready_reason_is_in_the_api_reference_and_back() {
    let code: BTreeSet<String> = READY_REASONS.iter().map(|r| r.to_string()).collect();
    let page = read("crds/README.md");
    let documented = first_column(section(&page, "### Ready"));
    let problems = differences("Ready reason", &code, &documented, "crds/README.md's Ready reasons");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The reasons of the events the lifecycle decides: literal words in `Event::normal(…)` and
/// `Event::warning(…)`, in `(event, action)` pairs, in `event.reason = …`, and the words of
/// `Act::reason`.
fn event_reasons() -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let word = |s: &str| -> Option<String> {
        let s = s.trim_start();
        let w = s.strip_prefix('"')?.split('"').next()?;
        (w.chars().next()?.is_ascii_uppercase() && w.chars().all(|c| c.is_ascii_alphabetic())).then(|| w.to_string())
    };
    for (path, text) in product_sources() {
        if !path.contains("/src/lifecycle/") {
            continue;
        }
        for opener in ["Event::normal(", "Event::warning(", "event.reason = ", "let event = ("] {
            for (i, _) in text.match_indices(opener) {
                found.extend(word(&text[i + opener.len()..]));
            }
        }
        for (i, _) in text.match_indices(", (\"") {
            found.extend(word(&text[i + 3..]));
        }
        if let Some(start) = text.find("fn reason(self") {
            let body = &text[start..start + text[start..].find("\n    }\n").unwrap()];
            for (i, _) in body.match_indices("=> ") {
                found.extend(word(&body[i + 3..]));
            }
        }
    }
    found
}

#[test]
fn every_event_is_in_the_api_reference_and_back() {
    let mut code = event_reasons();
    for must in
        ["Retained", "Released", "ReleaseRequested", "Drifted", "PolicyRefused", "ReleaseBlocked", "AccountMismatch"]
    {
        assert!(code.contains(must), "event {must} not found in src/lifecycle/: {code:?}");
    }
    // The Ready reasons Allocated and Adopted are also the events of a segment turning Ready
    // (`Event::normal(reason, …)` in apply.rs, where the reason is one of the two).
    code.extend(["Allocated".to_string(), "Adopted".to_string()]);
    let page = read("crds/README.md");
    let documented = first_column(section(&page, "### Events"));
    let problems = differences("event", &code, &documented, "crds/README.md's events");
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}
