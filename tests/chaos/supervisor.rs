//! The operator, SIGKILLed and started again by its own thread (and started again when it ends on
//! its own, as a Deployment would); /metrics scraped before each kill for the secret check; and HTTP
//! with timeouts for the simulator's admin API and a process that may be dying.

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::hygiene::Needles;
use crate::now_ms;
use eipsegment_test_support::{Operator, Simulator};

pub struct Http {
    rt: tokio::runtime::Runtime,
    client: reqwest::Client,
}

impl Http {
    pub fn new() -> Http {
        eipsegment_operator::cloud::client::install_crypto_provider();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        let client = reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
        Http { rt, client }
    }

    pub fn call(&self, method: &str, url: &str, body: Option<Value>) -> Result<(u16, String), String> {
        self.rt.block_on(async {
            let mut req = self.client.request(reqwest::Method::from_bytes(method.as_bytes()).unwrap(), url);
            if let Some(b) = body {
                req = req.json(&b);
            }
            let resp = req.send().await.map_err(|e| e.to_string())?;
            let status = resp.status().as_u16();
            Ok((status, resp.text().await.map_err(|e| e.to_string())?))
        })
    }

    pub fn admin(&self, sim: &Simulator, method: &str, path: &str, body: Option<Value>) -> Value {
        let (status, text) = self
            .call(method, &format!("{}/__admin/{path}", sim.url), body)
            .unwrap_or_else(|e| panic!("simulator admin {path}: {e}"));
        assert!((200..300).contains(&status), "simulator admin {method} {path}: HTTP {status}: {text}");
        serde_json::from_str(&text).unwrap()
    }
}

// ---- The operator, killed and restarted by its own thread ----------------------------------------

#[derive(Default, serde::Serialize)]
pub struct KillRecord {
    pub at_ms: u64,
    pub pid: u32,
    pub dead_ms: u64,
}

#[derive(Default, serde::Serialize)]
pub struct ExitRecord {
    pub at_ms: u64,
    pub pid: u32,
    pub status: String,
}

#[derive(Default)]
pub struct SupervisorReport {
    pub kills: Vec<KillRecord>,
    pub unexpected_exits: Vec<ExitRecord>,
    pub starts: usize,
    pub scrapes: usize,
    pub secret_findings: Vec<String>,
}

pub struct Supervisor {
    pub op: Arc<Mutex<Operator>>,
    pub needles: Arc<Needles>,
    pub report: SupervisorReport,
    pub http: Http,
    pub stop: Arc<AtomicBool>,
}

impl Supervisor {
    fn mark(&self, op: &Operator, why: &str) {
        if let Ok(mut f) = std::fs::OpenOptions::new().append(true).open(&op.log) {
            let _ = writeln!(
                f,
                "---- chaos: operator start #{} ({why}) at {} ----",
                self.report.starts + 1,
                chrono::Utc::now().to_rfc3339()
            );
        }
    }

    /// Starts the operator again if it ended on its own (as a Deployment would); true if it had.
    fn check_exit(&mut self) -> bool {
        let mut op = self.op.lock().unwrap();
        let pid = op.pid().unwrap_or(0);
        let Some(status) = op.exited() else { return false };
        self.report.unexpected_exits.push(ExitRecord { at_ms: now_ms(), pid, status: status.to_string() });
        eprintln!("chaos: the operator (pid {pid}) exited on its own: {status}; starting it again in 1s");
        op.kill();
        drop(op);
        std::thread::sleep(Duration::from_secs(1));
        let mut op = self.op.lock().unwrap();
        self.mark(&op, "after an exit");
        op.start_again();
        self.report.starts += 1;
        true
    }

    fn sleep(&mut self, d: Duration) {
        let until = Instant::now() + d;
        while Instant::now() < until {
            self.check_exit();
            std::thread::sleep(Duration::from_millis(100).min(until.saturating_duration_since(Instant::now())));
        }
    }

    fn scrape(&mut self) {
        let url = format!("{}/metrics", self.op.lock().unwrap().metrics_url);
        if let Ok((200, text)) = self.http.call("GET", &url, None) {
            self.report.scrapes += 1;
            self.needles.scan(&format!("a /metrics scrape at {}", now_ms()), &text, &mut self.report.secret_findings);
        }
    }

    pub fn run(mut self, kills: Vec<(u64, u64)>, kills_done: Arc<AtomicBool>) -> SupervisorReport {
        for (gap, pause) in kills {
            self.sleep(Duration::from_millis(gap));
            self.scrape();
            let mut op = self.op.lock().unwrap();
            let pid = op.pid().unwrap_or(0);
            let at_ms = now_ms();
            op.kill();
            drop(op);
            std::thread::sleep(Duration::from_millis(pause));
            let mut op = self.op.lock().unwrap();
            self.mark(&op, "after SIGKILL");
            op.start_again();
            self.report.starts += 1;
            self.report.kills.push(KillRecord { at_ms, pid, dead_ms: pause });
        }
        kills_done.store(true, Ordering::SeqCst);
        while !self.stop.load(Ordering::SeqCst) {
            self.sleep(Duration::from_millis(500));
        }
        self.scrape();
        self.report
    }
}

/// The supervisor's thread, as the run sees it.
pub struct Supervising {
    thread: std::thread::JoinHandle<SupervisorReport>,
    stop: Arc<AtomicBool>,
    kills_done: Arc<AtomicBool>,
}

impl Supervisor {
    /// Starts the supervisor's thread, which does these kills (running time before each, time dead
    /// after it), then keeps the operator running until `Supervising::finish`.
    pub fn spawn(op: &Arc<Mutex<Operator>>, needles: &Arc<Needles>, kills: Vec<(u64, u64)>) -> Supervising {
        let stop = Arc::new(AtomicBool::new(false));
        let kills_done = Arc::new(AtomicBool::new(false));
        let s = Supervisor {
            op: op.clone(),
            needles: needles.clone(),
            report: SupervisorReport::default(),
            http: Http::new(),
            stop: stop.clone(),
        };
        let done = kills_done.clone();
        let thread = std::thread::spawn(move || s.run(kills, done));
        Supervising { thread, stop, kills_done }
    }
}

impl Supervising {
    pub fn kills_done(&self) -> bool {
        self.kills_done.load(Ordering::SeqCst)
    }

    /// Stops the thread (after a last /metrics scrape) and returns what it did.
    pub fn finish(self) -> SupervisorReport {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.join().expect("supervisor thread")
    }
}
