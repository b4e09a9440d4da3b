//! A simulator inside the test process, reached over real HTTP on loopback, with its admin API.

use clap::Parser;
use std::time::Duration;

use eipsegment_operator::cloud::{Action, Admission, Admit, VpcClient};
use serde_json::{Value, json};
use vpc_simulator::{self as simulator, Args};

pub struct Sim {
    pub url: String,
    pub admin: reqwest::Client,
}

impl Sim {
    /// Starts one with these flags (after the program name).
    pub async fn start(flags: &[&str]) -> Sim {
        eipsegment_operator::cloud::client::install_crypto_provider();
        let argv = std::iter::once("vpc-simulator").chain(flags.iter().copied());
        let (url, _task) = simulator::start_in_process(Args::parse_from(argv)).await.unwrap();
        Sim { url, admin: reqwest::Client::new() }
    }

    pub async fn admin(&self, method: reqwest::Method, path: &str, body: Value) -> Value {
        let resp = self.admin.request(method, format!("{}/__admin/{path}", self.url)).json(&body).send().await.unwrap();
        let status = resp.status();
        let body: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "admin {path}: {status} {body}");
        body
    }

    /// A client of the operator's with these keys, against this simulator.
    pub fn client_with(&self, id: &str, secret: &str, timeout: Duration) -> VpcClient {
        crate::vpc_client(&self.url, id, secret, timeout)
    }

    /// A client with the default account's keys.
    pub fn client(&self) -> VpcClient {
        self.client_with(simulator::DEFAULT_ACCESS_KEY_ID, simulator::DEFAULT_ACCESS_KEY_SECRET, Duration::from_secs(5))
    }

    /// A segment laid in the simulator's world as the admin API's body describes it; its ID.
    pub async fn seed(&self, body: Value) -> String {
        self.admin(reqwest::Method::POST, "segments", body).await["instanceId"].as_str().unwrap().to_string()
    }

    pub async fn counters(&self) -> Value {
        self.admin(reqwest::Method::GET, "counters", json!({})).await
    }

    pub async fn count(&self, action: &str, outcome: &str) -> u64 {
        self.counters().await[action][outcome].as_u64().unwrap_or(0)
    }
}

/// A place within the client's rate for one mutating call, waiting for it as long as the rate says.
pub async fn admission(client: &VpcClient, action: Action, region: &str) -> Admission {
    loop {
        match client.admit(action, region).await {
            Admit::Granted(a) => return a,
            Admit::NotYet { after, .. } => tokio::time::sleep(after).await,
            Admit::Failed(e) => panic!("no admission: {e}"),
        }
    }
}
