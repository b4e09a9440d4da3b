//! The Argo CD health check for EipSegment under a real Lua 5.1: `tests/argocd/run_health_tests.py`
//! runs `health.lua` against every case of its `health_test.yaml`, as Argo CD's own
//! resource-customization tests do (the object as the global `obj`, the returned status and message
//! compared), and fails if a line of the script runs in no case.
//!
//! Needs `lua5.1`/`luac5.1` and a Python 3 with PyYAML. When Lua is missing it is installed with
//! apt-get if we are root; when PyYAML is missing it goes into a venv under
//! `$HOME/.cache/eipsegment-operator/`. If either cannot be had, the tests fail: they never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;

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
