//! The Argo CD health check for EipSegment, case by case from its `health_test.yaml`, two ways:
//! - through Argo CD's own code: `argocd admin settings resource-overrides health` (the binary of
//!   `tests/tools/build-argocd.sh`) takes the check from an argocd-cm made of
//!   `deploy/argocd/argocd-cm-patch.yaml` and runs gitops-engine's `GetResourceHealth`, the
//!   controller's path, its handling of deleting objects included;
//! - under a real Lua 5.1: `tests/argocd/run_health_tests.py` runs `health.lua` as Argo CD's own
//!   resource-customization tests do (the object as the global `obj`, the returned status, message
//!   and deletionMessage compared) with only the libraries argocd-cm gives a check, and fails if a
//!   line of the script runs in no case.
//!
//! Every Ready reason and error code the lifecycle core (`src/lifecycle/`) writes must have a decided
//! health and a case that shows it.
//!
//! Needs `lua5.1`/`luac5.1` and a Python 3 with PyYAML. When Lua is missing it is installed with
//! apt-get if we are root; when PyYAML is missing it goes into a venv under
//! `$HOME/.cache/eipsegment-operator/`. If either cannot be had, the tests fail: they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

use eipsegment_operator::lifecycle::conditions::READY_REASONS;
use eipsegment_test_support::argocd::argocd_command;
use serde_yaml::Value;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn check_dir() -> PathBuf {
    root().join("deploy/argocd/resource_customizations/eipsegment.io/EipSegment")
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn apt_install(packages: &[&str]) -> Result<(), String> {
    if !is_root() {
        return Err(format!("not root, so cannot apt-get install {}; install it yourself", packages.join(" ")));
    }
    let list = packages.join(" ");
    let script = format!(
        "export DEBIAN_FRONTEND=noninteractive; apt-get install -y -qq {list} || (apt-get update -qq && apt-get install -y -qq {list})"
    );
    let out = Command::new("sh").args(["-c", &script]).output().map_err(|e| format!("sh: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("apt-get install {list} failed:\n{}", String::from_utf8_lossy(&out.stderr)))
    }
}

/// The Python interpreter to run the harness with, once Lua 5.1 is there too.
fn setup() -> &'static str {
    static PYTHON: OnceLock<Result<String, String>> = OnceLock::new();
    let python = PYTHON.get_or_init(|| {
        if !runs("lua5.1", &["-v"]) || !runs("luac5.1", &["-v"]) {
            apt_install(&["lua5.1"])?;
            if !runs("lua5.1", &["-v"]) || !runs("luac5.1", &["-v"]) {
                return Err("lua5.1 was installed but lua5.1 -v or luac5.1 -v still fails".into());
            }
        }
        if !runs("python3", &["--version"]) {
            apt_install(&["python3", "python3-yaml"])?;
        }
        if runs("python3", &["-c", "import yaml"]) {
            return Ok("python3".to_string());
        }
        let home = std::env::var_os("HOME").ok_or("HOME is not set, so there is nowhere for the PyYAML venv")?;
        let venv = Path::new(&home).join(".cache/eipsegment-operator/argocd-venv");
        let python = venv.join("bin/python3").to_string_lossy().into_owned();
        if !runs(&python, &["-c", "import yaml"]) {
            let venv_arg = venv.to_string_lossy().into_owned();
            if !runs("python3", &["-m", "venv", &venv_arg]) {
                return Err(format!("python3 -m venv {venv_arg} failed (Debian: apt-get install python3-venv)"));
            }
            let out = Command::new(&python)
                .args(["-m", "pip", "install", "-q", "pyyaml"])
                .output()
                .map_err(|e| format!("{python}: {e}"))?;
            if !out.status.success() || !runs(&python, &["-c", "import yaml"]) {
                return Err(format!(
                    "pip install pyyaml into {venv_arg} failed:\n{}",
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
        }
        Ok(python)
    });
    match python {
        Ok(python) => python,
        Err(e) => panic!("cannot run the Argo CD health check tests: {e}"),
    }
}

fn harness(args: &[&str]) -> Output {
    let python = setup();
    let script = root().join("tests/argocd/run_health_tests.py");
    Command::new(python).arg(&script).args(args).current_dir(root()).output().expect("run the harness")
}

#[test]
fn every_case_gives_the_expected_status_and_message_and_every_line_runs() {
    let dir = check_dir();
    let tests: Value = serde_yaml::from_str(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap()).unwrap();
    let cases = tests["tests"].as_sequence().expect("health_test.yaml has a tests list");
    assert!(cases.len() >= 8, "only {} cases", cases.len());
    let mut statuses: Vec<&str> = cases.iter().map(|c| c["healthStatus"]["status"].as_str().unwrap()).collect();
    statuses.sort();
    statuses.dedup();
    assert_eq!(statuses, ["Degraded", "Healthy", "Progressing"]);

    let out = harness(&["--coverage", dir.to_str().unwrap()]);
    let report = String::from_utf8_lossy(&out.stdout);
    print!("{report}");
    assert!(out.status.success(), "health check tests failed:\n{report}{}", String::from_utf8_lossy(&out.stderr));
    assert!(
        report.contains(&format!("eipsegment.io/EipSegment: {} cases", cases.len())),
        "not every case ran:\n{report}"
    );
    assert!(report.contains("every line of health.lua ran"), "{report}");
}

/// The harness must catch a wrong expectation, a script error and an unused testdata file, or its
/// passing means nothing.
#[test]
fn the_harness_fails_on_a_wrong_expectation_a_broken_script_and_an_unused_file() {
    let scratch = Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-health-selftest");
    let copy = scratch.join("eipsegment.io/EipSegment");
    let _ = std::fs::remove_dir_all(&scratch);
    std::fs::create_dir_all(copy.join("testdata")).unwrap();
    let dir = check_dir();
    for f in ["health.lua", "health_test.yaml"] {
        std::fs::copy(dir.join(f), copy.join(f)).unwrap();
    }
    for f in std::fs::read_dir(dir.join("testdata")).unwrap() {
        let f = f.unwrap();
        std::fs::copy(f.path(), copy.join("testdata").join(f.file_name())).unwrap();
    }
    let target = copy.to_str().unwrap();
    assert!(harness(&["--coverage", target]).status.success(), "the unchanged copy must pass");

    let tests = std::fs::read_to_string(copy.join("health_test.yaml")).unwrap();
    let wrong = tests.replacen("status: Healthy", "status: Degraded", 1);
    std::fs::write(copy.join("health_test.yaml"), &wrong).unwrap();
    let out = harness(&[target]);
    assert!(
        !out.status.success() && String::from_utf8_lossy(&out.stdout).contains("FAIL"),
        "a wrong expectation passed"
    );
    std::fs::write(copy.join("health_test.yaml"), &tests).unwrap();

    std::fs::write(copy.join("testdata/unused.yaml"), "kind: EipSegment\n").unwrap();
    let out = harness(&[target]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("testdata/unused.yaml: no test uses it"),
        "an unused file passed"
    );
    std::fs::remove_file(copy.join("testdata/unused.yaml")).unwrap();

    // Argo CD gives a health check from argocd-cm no string library.
    let script = std::fs::read_to_string(copy.join("health.lua")).unwrap();
    std::fs::write(copy.join("health.lua"), format!("local _ = string.lower(\"X\")\n{script}")).unwrap();
    let out = harness(&[target]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("attempt to index global 'string'"),
        "the string library was there"
    );
    let _ = std::fs::remove_dir_all(&scratch);
}

/// An argocd-cm holding the health check, as `deploy/argocd/argocd-cm-patch.yaml` patches it in, with
/// `script` in place of the shipped one when given; written into `dir`.
fn argocd_cm(dir: &Path, script: Option<&str>) -> PathBuf {
    let patch: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("deploy/argocd/argocd-cm-patch.yaml")).unwrap())
            .unwrap();
    let mut data = patch["data"].clone();
    if let Some(script) = script {
        data[HEALTH_KEY] = Value::String(script.to_string());
    }
    let cm = serde_yaml::to_string(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "argocd-cm", "namespace": "argocd"},
        "data": serde_json::to_value(&data).unwrap(),
    }))
    .unwrap();
    std::fs::create_dir_all(dir).unwrap();
    let path = dir.join("argocd-cm.yaml");
    std::fs::write(&path, cm).unwrap();
    path
}

const HEALTH_KEY: &str = "resource.customizations.health.eipsegment.io_EipSegment";

/// The health Argo CD gives the object in `input`: its status, and its message (for a deleting
/// object, the check's deletionMessage, or Argo CD's own text when the check gives none).
fn argocd_health(cm: &Path, input: &Path) -> (String, String) {
    let out = argocd_command("argocd")
        .args(["admin", "settings", "resource-overrides", "health"])
        .arg(input)
        .arg("--argocd-cm-path")
        .arg(cm)
        .output()
        .expect("run argocd");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "argocd on {}: {stdout}{}", input.display(), String::from_utf8_lossy(&out.stderr));
    let field = |name: &str| stdout.lines().find_map(|l| l.strip_prefix(name)).map(str::to_string);
    let status = field("STATUS: ").unwrap_or_else(|| panic!("no STATUS from argocd: {stdout}"));
    (status, field("MESSAGE: ").unwrap_or_default())
}

#[test]
fn argo_cds_own_evaluation_gives_every_case_its_expected_health() {
    let dir = check_dir();
    let cm = argocd_cm(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-own-evaluation"), None);
    let tests: Value = serde_yaml::from_str(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap()).unwrap();
    let cases = tests["tests"].as_sequence().unwrap();
    // Two at a time: each run starts Argo CD's settings manager afresh.
    let failures: Vec<String> = cases
        .chunks(cases.len().div_ceil(2))
        .map(|chunk| {
            let (cm, dir) = (cm.clone(), dir.clone());
            let chunk = chunk.to_vec();
            std::thread::spawn(move || {
                let mut failures = Vec::new();
                for case in chunk {
                    let input = case["inputPath"].as_str().unwrap();
                    let want = &case["healthStatus"];
                    let message = want["deletionMessage"].as_str().or(want["message"].as_str()).unwrap_or("");
                    let expected = (want["status"].as_str().unwrap().to_string(), message.to_string());
                    let got = argocd_health(&cm, &dir.join(input));
                    if got != expected {
                        failures.push(format!("{input}: got {got:?}, want {expected:?}"));
                    }
                }
                failures
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    assert!(failures.is_empty(), "Argo CD disagrees with health_test.yaml:\n{}", failures.join("\n"));
}

/// Why the check sets deletionMessage: without it, Argo CD shows any deleting object as Progressing,
/// and a release that needs a person (a member EIP in use) would look like one under way.
#[test]
fn without_a_deletion_message_argo_cd_would_show_a_blocked_release_as_progressing() {
    let script = std::fs::read_to_string(check_dir().join("health.lua")).unwrap();
    let without = script.replace("hs.deletionMessage = hs.message", "");
    assert_ne!(script, without, "health.lua no longer sets deletionMessage as this test expects");
    let cm = argocd_cm(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-without-deletion-message"), Some(&without));
    let (status, message) = argocd_health(&cm, &check_dir().join("testdata/release-blocked.yaml"));
    assert_eq!(status, "Progressing", "{message}");
    assert!(message.starts_with("Pending deletion; blocked by finalizers"), "{message}");
    let shipped = argocd_cm(&Path::new(env!("CARGO_TARGET_TMPDIR")).join("argocd-with-deletion-message"), None);
    let (status, message) = argocd_health(&shipped, &check_dir().join("testdata/release-blocked.yaml"));
    assert_eq!(status, "Degraded", "{message}");
    assert!(message.contains("i-bp1web01"), "{message}");
}

/// The argocd-cm patch users apply carries health.lua word for word.
#[test]
fn the_argocd_cm_patch_carries_the_health_check_word_for_word() {
    let patch: Value =
        serde_yaml::from_str(&std::fs::read_to_string(root().join("deploy/argocd/argocd-cm-patch.yaml")).unwrap())
            .unwrap();
    let script = std::fs::read_to_string(check_dir().join("health.lua")).unwrap();
    assert_eq!(
        patch["data"][HEALTH_KEY].as_str(),
        Some(script.as_str()),
        "regenerate deploy/argocd/argocd-cm-patch.yaml"
    );
}

/// A call's arguments at the top level of its parentheses, from the text just after `name(`.
fn call_arguments(after_open: &str) -> Vec<String> {
    let (mut depth, mut current, mut out) = (0usize, String::new(), Vec::new());
    for ch in after_open.chars() {
        match ch {
            '(' | '[' | '{' => depth += 1,
            ')' | ']' | '}' if depth == 0 => break,
            ')' | ']' | '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(current.trim().to_string());
                current.clear();
                continue;
            }
            _ => {}
        }
        current.push(ch);
    }
    out.push(current.trim().to_string());
    out
}

/// Every call `name(...)` in the lifecycle core's sources (not its definition), as argument lists.
fn lifecycle_calls(name: &str) -> Vec<Vec<String>> {
    let mut calls = Vec::new();
    for file in std::fs::read_dir(root().join("src/lifecycle")).unwrap() {
        let path = file.unwrap().path();
        if path.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let source = std::fs::read_to_string(&path).unwrap();
        let pattern = format!("{name}(");
        for (at, _) in source.match_indices(&pattern) {
            if !source[..at].ends_with("fn ") {
                calls.push(call_arguments(&source[at + pattern.len()..]));
            }
        }
    }
    calls
}

fn literal(arg: &str) -> Option<&str> {
    arg.strip_prefix('"')?.strip_suffix('"')
}

/// The health of each condition the operator writes, in the phase it writes it (and in the other one
/// where a leftover from before the deletion is likely): Ready reasons, Synced classes and the codes
/// the lifecycle core names itself. Every Ready=False reason and every error code the lifecycle core
/// writes must be here, and each row needs a case in health_test.yaml; the cases then say the rest.
/// "Maintaining" stands for a cloud status the operator does not know (its word is the reason).
const MAPPING: &[(&str, &str, bool, &str)] = &[
    // (what, value, deleting, health)
    ("Ready", "Allocated", false, "Healthy"),
    ("Ready", "Adopted", false, "Healthy"),
    ("Ready", "Allocating", false, "Progressing"),
    ("Ready", "Allocating", true, "Progressing"),
    ("Ready", "AllocationQueued", false, "Progressing"),
    ("Ready", "Releasing", true, "Progressing"),
    ("Ready", "ReleaseQueued", true, "Progressing"),
    ("Ready", "ReleaseBlocked", true, "Degraded"),
    ("Ready", "ReleaseFailed", true, "Degraded"),
    ("Ready", "SegmentMissing", false, "Degraded"),
    ("Ready", "SegmentMissing", true, "Progressing"),
    ("Ready", "AdoptionTargetNotFound", false, "Degraded"),
    ("Ready", "SegmentInUse", false, "Degraded"),
    ("Ready", "AccountUnknown", true, "Degraded"),
    ("Ready", "Maintaining", false, "Progressing"),
    ("Ready", "Maintaining", true, "Progressing"),
    ("Synced", "Transient", false, "Progressing"),
    ("Synced", "Transient", true, "Progressing"),
    ("Synced", "Blocked", false, "Degraded"),
    ("Synced", "Blocked", true, "Degraded"),
    ("Synced", "Terminal", false, "Degraded"),
    ("Synced", "Terminal", true, "Degraded"),
    // A failed call on a ready segment: a passing error does not flap it, a person's cause does.
    ("Synced, Ready=True", "Transient", false, "Healthy"),
    ("Synced, Ready=True", "Blocked", false, "Degraded"),
    ("lastError.code", "AccountMismatch", false, "Degraded"),
    ("lastError.code", "SecretTerminating", false, "Degraded"),
];

#[test]
fn every_ready_reason_and_error_class_the_operator_writes_has_a_case_with_its_health() {
    let reasons = lifecycle_ready_reasons();
    assert!(reasons.len() >= 8, "the scan of src/lifecycle found only {reasons:?}");
    let codes = lifecycle_problem_codes();
    assert!(!codes.is_empty(), "the scan of src/lifecycle found no Problem::new");
    for reason in &reasons {
        assert!(MAPPING.iter().any(|m| m.0 == "Ready" && m.1 == reason), "Ready reason {reason}: no health decided");
        // The metrics label it by name only if the core lists it (otherwise as a cloud word).
        assert!(READY_REASONS.contains(&reason.as_str()), "Ready reason {reason}: not in conditions::READY_REASONS");
    }
    for (class, code) in &codes {
        let want = if class == "Transient" { "Progressing" } else { "Degraded" };
        assert!(
            MAPPING.iter().any(|m| m.0 == "lastError.code" && m.1 == code && m.3 == want),
            "{code} ({class}): should be {want}"
        );
    }

    let cases = health_cases();
    for (what, value, deleting, health) in MAPPING {
        let healths: Vec<&str> =
            cases.iter().filter(|(obj, _)| shows(obj, what, value, *deleting)).map(|(_, h)| h.as_str()).collect();
        assert!(!healths.is_empty(), "no case for {what} {value} (deleting: {deleting})");
        assert!(
            healths.iter().all(|h| h == health),
            "{what} {value} (deleting: {deleting}): {healths:?}, want {health}"
        );
    }
}

/// The Ready=False reasons the lifecycle core gives as literals (the others are the cloud's status
/// words).
fn lifecycle_ready_reasons() -> Vec<String> {
    let constants = reason_constants();
    let reason =
        |arg: &str| literal(arg).map(str::to_string).or_else(|| constants.get(arg.strip_prefix("reason::")?).cloned());
    lifecycle_calls("not_ready").iter().filter_map(|a| a.get(1).and_then(|r| reason(r))).collect()
}

/// The lifecycle's Ready reasons by constant name (`pub const NAME: &str = "Value";` in its
/// `conditions::reason`), so that a call naming `reason::NAME` reads as the word it writes.
fn reason_constants() -> std::collections::HashMap<String, String> {
    let source = std::fs::read_to_string(root().join("src/lifecycle/conditions.rs")).unwrap();
    let module = source.split("pub mod reason {").nth(1).and_then(|m| m.split("\n}").next()).unwrap_or_default();
    module
        .lines()
        .filter_map(|line| {
            let (name, value) = line.trim().strip_prefix("pub const ")?.split_once(": &str = ")?;
            Some((name.to_string(), literal(value.strip_suffix(';')?)?.to_string()))
        })
        .collect()
}

/// The (class, code) of each problem the lifecycle core names itself.
fn lifecycle_problem_codes() -> Vec<(String, String)> {
    lifecycle_calls("Problem::new")
        .iter()
        .filter_map(|a| Some((a.first()?.rsplit("::").next()?.to_string(), literal(a.get(1)?)?.to_string())))
        .collect()
}

/// Each case of health_test.yaml: its input object and the health it expects.
fn health_cases() -> Vec<(Value, String)> {
    let dir = check_dir();
    let tests: Value = serde_yaml::from_str(&std::fs::read_to_string(dir.join("health_test.yaml")).unwrap()).unwrap();
    tests["tests"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|c| {
            let input = std::fs::read_to_string(dir.join(c["inputPath"].as_str().unwrap())).unwrap();
            (serde_yaml::from_str(&input).unwrap(), c["healthStatus"]["status"].as_str().unwrap().to_string())
        })
        .collect()
}

fn condition(obj: &Value, kind: &str) -> Option<Value> {
    obj["status"]["conditions"].as_sequence()?.iter().find(|c| c["type"] == kind).cloned()
}

/// Whether the object is a case of a MAPPING row: `what` with `value`, deleting or not, and what
/// `what` names is the condition that decides its health.
fn shows(obj: &Value, what: &str, value: &str, deleting: bool) -> bool {
    let synced_failed = condition(obj, "Synced").filter(|s| s["status"] == "False");
    // A spec the operator has not acted on yet (a deletion moves the generation too).
    let stale = !deleting
        && obj["status"]["observedGeneration"]
            .as_i64()
            .is_some_and(|g| Some(g) < obj["metadata"]["generation"].as_i64());
    let ready = condition(obj, "Ready").is_some_and(|r| r["status"] == "True");
    // Deleting with the Retain policy, nothing is released, whatever the conditions say.
    let adopts = obj["spec"]["segmentInstanceId"].is_string();
    let retained = deleting
        && obj["spec"]["deletionPolicy"].as_str().unwrap_or(if adopts { "Retain" } else { "Delete" }) == "Retain";
    obj["metadata"]["deletionTimestamp"].is_string() == deleting
        && !retained
        && match what {
            // The Ready reason decides only while the last cloud call succeeded.
            "Ready" => {
                !stale && synced_failed.is_none() && condition(obj, "Ready").is_some_and(|r| r["reason"] == value)
            }
            "Synced" => synced_failed.is_some_and(|s| s["reason"] == value) && (deleting || !ready),
            "Synced, Ready=True" => synced_failed.is_some_and(|s| s["reason"] == value) && ready,
            _ => obj["status"]["lastError"]["code"] == value,
        }
}
