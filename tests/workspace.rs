//! The rooms the compiler keeps: what each crate of the workspace may depend on, and what the
//! product carries. Dependencies are read with `cargo tree` as each crate alone resolves them.

use std::process::Command;

/// Crates that run, reach or time the outside world.
const IO_CRATES: &[&str] = &[
    "tokio",
    "mio",
    "hyper",
    "hyper-util",
    "reqwest",
    "kube-client",
    "kube-runtime",
    "tower",
    "rustls",
    "chrono",
    "tracing",
];

/// The crate names (without versions) in `package`'s graph of normal dependencies.
fn dependencies(package: &str) -> Vec<String> {
    let out = Command::new(env!("CARGO"))
        .args(["tree", "--offline", "--locked", "-e", "normal", "--prefix", "none", "--format", "{p}", "-p", package])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run cargo tree");
    assert!(out.status.success(), "cargo tree -p {package}: {}", String::from_utf8_lossy(&out.stderr));
    let mut names: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next().map(str::to_string))
        .collect();
    names.sort();
    names.dedup();
    names
}

fn assert_free_of_io(package: &str) {
    let deps = dependencies(package);
    assert!(deps.len() > 3, "cargo tree -p {package} listed too little: {deps:?}");
    let io: Vec<&String> = deps.iter().filter(|d| IO_CRATES.contains(&d.as_str())).collect();
    assert!(io.is_empty(), "{package} depends on {io:?}");
}

#[test]
fn the_lifecycle_core_depends_on_no_io() {
    assert_free_of_io("eipsegment-lifecycle");
    let deps = dependencies("eipsegment-lifecycle");
    assert!(deps.contains(&"kube-core".to_string()), "the resource's types come from kube-core: {deps:?}");
}

#[test]
fn the_resource_types_and_the_api_vocabulary_depend_on_no_io() {
    assert_free_of_io("eipsegment-api");
    assert_free_of_io("vpc-api");
}

#[test]
fn the_product_does_not_depend_on_its_test_beds() {
    let deps = dependencies("eipsegment-operator");
    for test_bed in ["vpc-simulator", "eipsegment-test-support"] {
        assert!(!deps.iter().any(|d| d == test_bed), "the operator depends on {test_bed}");
    }
    // The simulator's vocabulary is the only crate it shares with the operator.
    let simulator = dependencies("vpc-simulator");
    assert!(simulator.contains(&"vpc-api".to_string()));
    for product in ["eipsegment-operator", "eipsegment-api", "eipsegment-lifecycle"] {
        assert!(!simulator.iter().any(|d| d == product), "the simulator depends on {product}");
    }
}

/// Strings only the simulator holds: its documented fake keys and its own source paths.
const SIMULATOR_MARKS: &[&str] = &[
    "SimulatorDefaultSecretNotForProduction",
    "SimulatorOtherSecretNotForProduction",
    "LTAI5tSimulatorDefaultKey",
    "vpc_simulator",
    "tests/simulator/src",
];

fn assert_no_simulator_in(binary: &std::path::Path) {
    let bytes = std::fs::read(binary).unwrap_or_else(|e| panic!("read {}: {e}", binary.display()));
    // The test itself must be able to fail: the simulator's binary carries every mark.
    for mark in SIMULATOR_MARKS {
        let found = bytes.windows(mark.len()).any(|w| w == mark.as_bytes());
        assert!(!found, "{} carries {mark:?}", binary.display());
    }
}

#[test]
fn the_operator_binary_carries_no_simulator_code_or_keys() {
    let simulator = eipsegment_test_support::simulator_binary();
    let bytes = std::fs::read(&simulator).unwrap();
    for mark in SIMULATOR_MARKS {
        assert!(bytes.windows(mark.len()).any(|w| w == mark.as_bytes()), "the simulator lacks {mark:?}");
    }
    assert_no_simulator_in(std::path::Path::new(env!("CARGO_BIN_EXE_eipsegment-operator")));
    // The image's static release binary, where this machine has built one.
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("target");
    for release in ["release", "x86_64-unknown-linux-gnu/release"] {
        let binary = target.join(release).join("eipsegment-operator");
        if binary.exists() {
            assert_no_simulator_in(&binary);
        }
    }
}
