//! The Argo CD health check (`deploy/argocd/…/health.lua`) under a real Lua 5.1, case by case from
//! its `health_test.yaml`, as Argo CD's own resource-customization tests run them: the object as the
//! global `obj`, the script's returned table compared on status and message.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_yaml::Value;

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/argocd/resource_customizations/eipsegment.io/EipSegment")
}

/// Lua 5.1 from Debian's package, installed when missing (CI runs as root).
fn lua() -> &'static str {
    const LUA: &str = "lua5.1";
    if Command::new(LUA).arg("-v").output().is_err() {
        let ok = Command::new("sh")
            .args(["-c", "(apt-get install -y -qq lua5.1 || (apt-get update -qq && apt-get install -y -qq lua5.1)) >/dev/null"])
            .status()
            .is_ok_and(|s| s.success());
        assert!(ok, "lua5.1 is missing and could not be installed with apt-get");
    }
    LUA
}

/// A YAML value as a Lua table constructor; null becomes absent, as in Argo CD's conversion.
fn to_lua(v: &Value) -> String {
    match v {
        Value::Null => "nil".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => quote(s),
        Value::Sequence(items) => format!("{{{}}}", items.iter().map(to_lua).collect::<Vec<_>>().join(", ")),
        Value::Mapping(map) => {
            let fields: Vec<String> = map
                .iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| format!("[{}] = {}", quote(k.as_str().unwrap_or_default()), to_lua(v)))
                .collect();
            format!("{{{}}}", fields.join(", "))
        }
        Value::Tagged(t) => to_lua(&t.value),
    }
}

fn quote(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[test]
fn health_check_gives_the_expected_status_and_message_for_every_case() {
    let lua = lua();
    let tests: Value = serde_yaml::from_str(&std::fs::read_to_string(dir().join("health_test.yaml")).unwrap()).unwrap();
    let cases = tests["tests"].as_sequence().unwrap();
    assert!(cases.len() >= 8, "too few cases");
    let mut seen = std::collections::BTreeSet::new();
    for case in cases {
        let input = case["inputPath"].as_str().unwrap();
        let obj: Value = serde_yaml::from_str(&std::fs::read_to_string(dir().join(input)).unwrap()).unwrap();
        let program = format!(
            "obj = {}\nlocal hs = assert(loadfile({}))()\nio.write(hs.status, \"\\n\", hs.message or \"\")\n",
            to_lua(&obj),
            quote(dir().join("health.lua").to_str().unwrap())
        );
        let out = Command::new(lua).args(["-e", &program]).output().unwrap();
        assert!(out.status.success(), "{input}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8(out.stdout).unwrap();
        let (status, message) = text.split_once('\n').unwrap();
        assert_eq!(status, case["healthStatus"]["status"].as_str().unwrap(), "{input}");
        assert_eq!(message, case["healthStatus"]["message"].as_str().unwrap(), "{input}");
        seen.insert(status.to_string());
    }
    assert_eq!(seen.into_iter().collect::<Vec<_>>(), ["Degraded", "Healthy", "Progressing"]);
}
