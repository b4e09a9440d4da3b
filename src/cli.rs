//! Command line: `run` the operator, or print the `crd`.

use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::cloud::{ClientConfig, VpcClient, credentials};
use crate::controller::{self, Context, WatchScope};
use crate::decide::Timings;
use crate::telemetry::{self, Metrics};

#[derive(Parser, Debug)]
#[command(name = "eipsegment-operator", version, about = "Manages Alibaba Cloud EIP segments as Kubernetes EipSegment resources")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// Print the EipSegment CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Parser, Debug)]
pub struct RunArgs {
    /// VPC API endpoint for every region (a private endpoint, or a simulator); default: Alibaba's per-region endpoint.
    #[arg(long, env = "EIPSEG_VPC_ENDPOINT")]
    pub vpc_endpoint: Option<String>,
    /// Allow a plain-http --vpc-endpoint (a local simulator or a test only).
    #[arg(long, env = "EIPSEG_ALLOW_INSECURE_ENDPOINT")]
    pub allow_insecure_endpoint: bool,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "EIPSEG_NAMESPACE")]
    pub namespace: Option<String>,
    /// Log format.
    #[arg(long, env = "EIPSEG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter in tracing's EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
    /// Seconds between looks at a segment that is allocating or releasing.
    #[arg(long, env = "EIPSEG_POLL_SECONDS", default_value_t = 2.0)]
    pub poll_seconds: f64,
    /// Seconds between drift checks of a settled segment.
    #[arg(long, env = "EIPSEG_RESYNC_SECONDS", default_value_t = 600.0)]
    pub resync_seconds: f64,
    /// First retry after a blocked release (doubles up to 10 minutes).
    #[arg(long, env = "EIPSEG_BLOCKED_RETRY_SECONDS", default_value_t = 30.0)]
    pub blocked_retry_seconds: f64,
    /// First retry after a terminal error (doubles up to 30 minutes).
    #[arg(long, env = "EIPSEG_TERMINAL_RETRY_SECONDS", default_value_t = 120.0)]
    pub terminal_retry_seconds: f64,
    /// Timeout of each cloud call, in seconds.
    #[arg(long, env = "EIPSEG_CALL_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub call_timeout_seconds: f64,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "EIPSEG_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Objects reconciled at once.
    #[arg(long, env = "EIPSEG_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid VPC client configuration")]
    Client(#[from] crate::cloud::client::ClientConfigError),
    #[error("cannot reach Kubernetes")]
    Kube(#[from] kube::Error),
    #[error("cannot serve metrics")]
    Metrics(#[from] std::io::Error),
    #[error("invalid duration {0}: must be a positive number of seconds")]
    Duration(f64),
}

fn seconds(v: f64) -> Result<Duration, RunError> {
    Duration::try_from_secs_f64(v).ok().filter(|d| !d.is_zero()).ok_or(RunError::Duration(v))
}

pub fn init_logging(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    init_logging(args.log_format, &args.log_level);
    crate::cloud::client::install_crypto_provider();
    let defaults = Timings::default();
    let timings = Timings {
        poll: seconds(args.poll_seconds)?,
        resync: seconds(args.resync_seconds)?,
        blocked_base: seconds(args.blocked_retry_seconds)?,
        terminal_base: seconds(args.terminal_retry_seconds)?,
        ..defaults
    };
    let vpc_config = ClientConfig {
        endpoint_override: args.vpc_endpoint.clone(),
        allow_insecure_endpoint: args.allow_insecure_endpoint,
        timeout: seconds(args.call_timeout_seconds)?,
    };
    let credentials = credentials::from_env_or_missing();
    let metrics = Arc::new(Metrics::default());
    let vpc = VpcClient::new(vpc_config, credentials)?.with_observer(metrics.clone());
    let client = kube::Client::try_default().await?;
    let listener = telemetry::bind(args.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    tokio::spawn(telemetry::serve(listener, metrics.clone()));
    tracing::info!(namespace = args.namespace.as_deref().unwrap_or("<all>"), endpoint = args.vpc_endpoint.as_deref().unwrap_or("<per region>"), "starting");
    let ctx = Arc::new(Context::new(client, vpc, timings, metrics));
    controller::run(ctx, WatchScope { namespace: args.namespace, concurrency: args.concurrency }).await;
    tracing::info!("stopped");
    Ok(())
}

pub async fn main(cli: Cli) -> Result<(), RunError> {
    match cli.command {
        Command::Crd => {
            print!("{}", crate::crd::crd_yaml());
            Ok(())
        }
        Command::Run(args) => run(args).await,
    }
}

