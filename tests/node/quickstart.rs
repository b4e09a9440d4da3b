//! The README's quick start, run as a reader runs it: each shell block after the marker
//! `<!-- quick start: run by tests/node.rs -->`, in order, with bash, from the repository's root,
//! with the cluster's kubectl and helm on the PATH. Only what a reader substitutes is replaced:
//! - `<registry>/eipsegment-operator`: the image the suite built and imported into the node;
//! - `<AccessKeyId>`, `<AccessKeySecret>`: the simulator's key;
//! - Alibaba's endpoints: the simulator's (plain http) is added to `helm install` as `extraArgs`
//!   and to the audit as flags, since the chart's endpoint values take https only.
//!
//! It ends with the segment Ready and then released, and reports how long the reader's path took.

use std::process::Command;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Figures, IMAGE, NS, Node, RELEASE, must};
use eipsegment_test_support::eventually;
use eipsegment_test_support::{ACCESS_KEY_ID, ACCESS_KEY_SECRET};

const MARKER: &str = "<!-- quick start: run by tests/node.rs -->";

/// The marked shell blocks of a Markdown text, in order, each with its lines' indentation removed.
pub fn marked_blocks(markdown: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    for (i, _) in markdown.match_indices(MARKER) {
        let after = &markdown[i + MARKER.len()..];
        let open = after.find("```sh\n").expect("a ```sh block after the quick start's marker");
        assert!(after[..open].trim().is_empty(), "text between the marker and its block: {:?}", &after[..open]);
        let body = &after[open + "```sh\n".len()..];
        let close = body.find("```").expect("the block's end");
        let block: Vec<&str> = body[..close].lines().map(str::trim).collect();
        blocks.push(block.join("\n"));
    }
    blocks
}

/// A block as the test runs it: continuation lines joined, then the substitutions.
fn substituted(block: &str, sim: &str) -> String {
    let joined = block.replace("\\\n", " ");
    let image = IMAGE; // docker.io/library/eipsegment-operator, tagged with the chart's appVersion
    let mut lines = Vec::new();
    for line in joined.lines() {
        let mut line = line
            .replace("<registry>/eipsegment-operator", image)
            .replace("<AccessKeyId>", ACCESS_KEY_ID)
            .replace("<AccessKeySecret>", ACCESS_KEY_SECRET);
        if line.starts_with("helm install ") {
            let endpoints =
                format!(r#"extraArgs=["--vpc-endpoint={sim}","--sts-endpoint={sim}","--allow-insecure-endpoint"]"#);
            line.push_str(&format!(" --set-json '{endpoints}'"));
        }
        if line.contains("/eipsegment-operator audit ") {
            line.push_str(&format!(" --vpc-endpoint {sim} --sts-endpoint {sim} --allow-insecure-endpoint"));
        }
        assert!(!line.contains('<'), "a placeholder the test does not fill: {line}");
        lines.push(line);
    }
    lines.join("\n")
}

impl Node {
    /// Uninstalls the suite's own release (one operator serves a cluster), runs the quick start,
    /// and uninstalls it afterwards.
    pub(super) fn quick_start_as_the_readme_says(&self, f: &mut Figures) {
        let (ok, out, err) = self.helm(&["uninstall", RELEASE, "-n", NS, "--wait", "--timeout", "120s"]);
        assert!(ok, "helm uninstall: {err}{out}");
        eventually("the suite's operator Pods gone, terminating ones too", Duration::from_secs(120), || {
            let pods =
                self.kubectl_json(&["get", "pods", "-n", NS, "-l", "app.kubernetes.io/name=eipsegment-operator"]);
            pods["items"].as_array().unwrap().is_empty().then_some(())
        });
        let before = self.segment_ids();
        let readme = std::fs::read_to_string(super::repo("README.md")).expect("README.md");
        let blocks = marked_blocks(&readme);
        assert!(blocks.len() >= 3, "the README marks {} quick-start blocks", blocks.len());
        let joined = blocks.join("\n");
        for step in ["helm install", "audit", "kubectl apply", "condition=Ready", "kubectl delete"] {
            assert!(joined.contains(step), "the quick start has no `{step}`");
        }
        // The reader's kubectl and helm, by those names.
        let bin = super::repo(&format!("target/node/quickstart-bin-{}", std::process::id()));
        std::fs::create_dir_all(&bin).unwrap();
        for (name, target) in [("kubectl", self.c.env["KUBECTL"].as_str()), ("helm", self.helm.as_str())] {
            let link = format!("{bin}/{name}");
            let _ = std::fs::remove_file(&link);
            std::os::unix::fs::symlink(target, &link).unwrap();
        }
        let path = format!("{bin}:{}", std::env::var("PATH").unwrap_or_default());
        let started = Instant::now();
        for (i, block) in blocks.iter().enumerate() {
            let script = substituted(block, &self.sim.url);
            let block_started = Instant::now();
            let out = Command::new("bash")
                .args(["-euo", "pipefail", "-c", &script])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .env("PATH", &path)
                .env("KUBECONFIG", self.c.admin_kubeconfig())
                .output()
                .expect("bash");
            let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
            assert!(
                out.status.success(),
                "quick-start block {} failed:\n{script}\n--- stdout\n{stdout}\n--- stderr\n{stderr}",
                i + 1
            );
            println!("node: quick-start block {} ({:.1} s):\n{stdout}", i + 1, block_started.elapsed().as_secs_f64());
            if script.contains(" audit ") {
                assert!(stdout.contains("all 1 region(s) listed"), "the audit listed cn-hangzhou: {stdout}");
            }
            if script.contains("condition=Ready") {
                f.add(
                    "README quick start: namespace to a Ready segment",
                    format!("{:.1} s", started.elapsed().as_secs_f64()),
                );
                assert!(stdout.contains("condition met"), "kubectl wait: {stdout}");
            }
        }
        f.add("README quick start: through the release", format!("{:.1} s", started.elapsed().as_secs_f64()));
        let (ok, out, err) =
            self.c.kubectl_as(self.c.admin_kubeconfig(), &["get", "eipsegment", "web-frontend", "-n", "default"], None);
        assert!(!ok && err.contains("NotFound"), "the example is still there after its delete: {out}{err}");
        let new: Vec<String> = self.segment_ids().into_iter().filter(|id| !before.contains(id)).collect();
        assert_eq!(new.len(), 1, "the quick start allocated {new:?}");
        assert!(self.history(&new[0])["goneAtMs"].is_u64(), "the quick start's segment {} was not released", new[0]);
        let (ok, out, err) =
            self.helm(&["uninstall", "eipsegment-operator", "-n", "eipsegment-system", "--wait", "--timeout", "120s"]);
        assert!(ok, "helm uninstall of the quick start: {err}{out}");
        must("rm", &["-rf", &bin]);
    }

    /// Every segment the simulator ever held.
    fn segment_ids(&self) -> Vec<String> {
        let history = self.sim.admin("GET", "history", Value::Null);
        history["segments"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|s| s["instanceId"].as_str().map(String::from))
            .collect()
    }
}
