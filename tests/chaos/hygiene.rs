//! Secrets the outputs must never hold: both accounts' secret keys and the wrong one the credential
//! switches use, plain and base64 (as a Secret's data holds them), and the operator's Kubernetes
//! token; and the operator log, read line by line (it can be large), for them and for panics.

use std::io::BufRead;
use std::path::Path;

use base64::Engine;
use vpc_simulator::{DEFAULT_ACCESS_KEY_SECRET, OTHER_ACCESS_KEY_SECRET};

use eipsegment_test_support::Cluster;

/// The secret key `keys-a` holds while a switch to a wrong key lasts.
pub const WRONG_ACCESS_KEY_SECRET: &str = "ChaosWrongSecretValue-never-in-outputs";

pub struct Needles(pub Vec<(&'static str, String)>);

impl Needles {
    pub fn new(c: &Cluster) -> Needles {
        let b64 = |v: &str| base64::engine::general_purpose::STANDARD.encode(v);
        let token = std::fs::read_to_string(c.operator_kubeconfig())
            .unwrap()
            .lines()
            .find_map(|l| l.trim().strip_prefix("token:").map(|t| t.trim().to_string()))
            .expect("operator token in its kubeconfig");
        Needles(vec![
            ("the default account's AccessKeySecret", DEFAULT_ACCESS_KEY_SECRET.to_string()),
            ("the default account's AccessKeySecret (base64)", b64(DEFAULT_ACCESS_KEY_SECRET)),
            ("the other account's AccessKeySecret", OTHER_ACCESS_KEY_SECRET.to_string()),
            ("the other account's AccessKeySecret (base64)", b64(OTHER_ACCESS_KEY_SECRET)),
            ("the wrong AccessKeySecret of the switches", WRONG_ACCESS_KEY_SECRET.to_string()),
            ("the wrong AccessKeySecret of the switches (base64)", b64(WRONG_ACCESS_KEY_SECRET)),
            ("operator Kubernetes token", token),
        ])
    }

    /// One finding per secret found in `text`.
    pub fn scan(&self, place: &str, text: &str, findings: &mut Vec<String>) {
        for (what, value) in &self.0 {
            let n = text.matches(value.as_str()).count();
            if n > 0 {
                findings.push(format!("{what} appears {n} time(s) in {place}"));
            }
        }
    }
}

pub struct LogScan {
    pub panics: Vec<String>,
    pub lines: u64,
    pub bytes: u64,
    pub trace: u64,
}

/// Lines that say "panicked", and secrets, in the operator log.
pub fn scan_log(log: &Path, needles: &Needles, findings: &mut Vec<String>) -> LogScan {
    let f = std::fs::File::open(log).expect("operator log");
    let mut reader = std::io::BufReader::with_capacity(1 << 20, f);
    let mut scan = LogScan { panics: Vec::new(), lines: 0, bytes: 0, trace: 0 };
    let mut counts = vec![0u64; needles.0.len()];
    let mut buf = Vec::new();
    while reader.read_until(b'\n', &mut buf).unwrap_or(0) > 0 {
        scan.lines += 1;
        scan.bytes += buf.len() as u64;
        let line = String::from_utf8_lossy(&buf);
        if line.contains("panicked") {
            scan.panics.push(line.trim_end().to_string());
        }
        if line.contains(" TRACE ") {
            scan.trace += 1;
        }
        for (i, (_, v)) in needles.0.iter().enumerate() {
            if line.contains(v.as_str()) {
                counts[i] += 1;
            }
        }
        buf.clear();
    }
    for (i, n) in counts.into_iter().enumerate() {
        if n > 0 {
            findings.push(format!("{} appears on {n} line(s) of the operator log {}", needles.0[i].0, log.display()));
        }
    }
    scan
}
