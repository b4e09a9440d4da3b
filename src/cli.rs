//! Command line: `run` the operator, `audit` the cloud for segments no EipSegment names, or print
//! the `crd`.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::audit::report::{COULD_NOT_TELL, Report};
use crate::cloud::sts::StsConfig;
use crate::cloud::{ClientConfig, ReadOnlyVpc, VpcClient, credentials};
use crate::controller::Timings;
use crate::controller::{self, Context, SecretCredentials, WatchScope};
use crate::fence::Fence;
use crate::leadership::{self, LeaseConfig};
use crate::poller::{Poller, PollerConfig};
use crate::proof;
use crate::quota::{Quota, QuotaSettings, Quotas};
use crate::telemetry::{self, Metrics};
use crate::tenancy::Tenancy;

#[derive(Parser, Debug)]
#[command(
    name = "eipsegment-operator",
    version,
    about = "Manages Alibaba Cloud EIP segments as Kubernetes EipSegment resources"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

// Parsed once at start-up: the size of the run options does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the controller.
    Run(RunArgs),
    /// List the segments of the credentials' account that no EipSegment in the cluster names
    /// (read-only).
    #[command(after_help = "Exit status: 0 when no segment is unowned, 1 when some are, 2 when the audit \
could not tell (an error, or a listing that does not prove itself).")]
    Audit(AuditArgs),
    /// Print the EipSegment CustomResourceDefinition as YAML.
    Crd,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
pub enum OutputFormat {
    Table,
    Json,
}

/// Where the cloud is and how the operator's own credentials reach it: shared by every command
/// that calls it.
#[derive(clap::Args, Debug, Clone)]
pub struct CloudArgs {
    /// VPC API endpoint for every region (a private endpoint, or a simulator); default: Alibaba's per-region endpoint.
    #[arg(long, env = "EIPSEG_VPC_ENDPOINT")]
    pub vpc_endpoint: Option<String>,
    /// STS endpoint, for GetCallerIdentity (which account the credentials act for) and RRSA (default:
    /// sts.aliyuncs.com, or sts.<ALIBABA_CLOUD_STS_REGION>.aliyuncs.com for RRSA).
    #[arg(long, env = "EIPSEG_STS_ENDPOINT")]
    pub sts_endpoint: Option<String>,
    /// Renew RRSA credentials when this many seconds of validity remain.
    #[arg(long, env = "EIPSEG_STS_REFRESH_BEFORE_SECONDS", default_value_t = 180)]
    pub sts_refresh_before_seconds: u64,
    /// Allow plain-http --vpc-endpoint and --sts-endpoint (a local simulator or a test only).
    #[arg(long, env = "EIPSEG_ALLOW_INSECURE_ENDPOINT")]
    pub allow_insecure_endpoint: bool,
    /// Timeout of each cloud call, in seconds.
    #[arg(long, env = "EIPSEG_CALL_TIMEOUT_SECONDS", default_value_t = 10.0)]
    pub call_timeout_seconds: f64,
}

#[derive(Parser, Debug)]
pub struct AuditArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// A region to audit, repeated or comma-separated (default: every region an EipSegment in the
    /// cluster names).
    #[arg(long = "region", value_delimiter = ',', value_parser = region_id)]
    pub regions: Vec<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,
    #[command(flatten)]
    pub identity_key: IdentityKeyArgs,
}

/// A region ID as the CRD accepts it (cn-hangzhou, ap-southeast-1).
fn region_id(value: &str) -> Result<String, String> {
    let mut parts = value.split('-');
    let first_ok = parts.next().is_some_and(|p| p.len() >= 2 && p.bytes().all(|b| b.is_ascii_lowercase()));
    let rest: Vec<&str> = parts.collect();
    let rest_ok = !rest.is_empty()
        && rest.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()));
    if first_ok && rest_ok && value.len() <= 64 {
        Ok(value.to_string())
    } else {
        Err(format!("{value:?} is not a region ID (for example cn-hangzhou)"))
    }
}

#[derive(Parser, Debug)]
pub struct RunArgs {
    #[command(flatten)]
    pub cloud: CloudArgs,
    /// Watch only these namespaces, comma-separated or repeated (default: all namespaces).
    #[arg(long = "namespace", env = "EIPSEG_NAMESPACES", value_delimiter = ',')]
    pub namespaces: Vec<String>,
    /// Log format.
    #[arg(long, env = "EIPSEG_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
    /// Log filter in tracing's EnvFilter syntax.
    #[arg(long, env = "RUST_LOG", default_value = "info")]
    pub log_level: String,
    /// Seconds before the first look at an allocation or release while its usual duration is not yet
    /// learned, and between later looks at one that is still under way.
    #[arg(long, env = "EIPSEG_POLL_SECONDS", default_value_t = 2.0)]
    pub poll_seconds: f64,
    /// Seconds between drift checks of settled segments (region-wide pages when many are due).
    #[arg(long, env = "EIPSEG_RESYNC_SECONDS", default_value_t = 600.0)]
    pub resync_seconds: f64,
    /// First retry after a passing error (throttling, 5xx, a timeout) or while another object of
    /// the namespace is to take the segment over; doubles, with jitter.
    #[arg(long, env = "EIPSEG_TRANSIENT_RETRY_SECONDS", default_value_t = 1.0)]
    pub transient_retry_seconds: f64,
    /// Longest wait between retries after passing errors (throttling, 5xx, timeouts).
    #[arg(long, env = "EIPSEG_TRANSIENT_RETRY_MAX_SECONDS", default_value_t = 120.0)]
    pub transient_retry_max_seconds: f64,
    /// Seconds the cloud is taken to remember a ClientToken's answer: a refusal of a pending
    /// allocation's replay proves nothing was created only within this time of the first request.
    /// Shorter is safer (such a refusal then leaves the object for a person to resolve).
    #[arg(long, env = "EIPSEG_TOKEN_MEMORY_SECONDS", default_value_t = 3600.0)]
    pub token_memory_seconds: f64,
    /// First retry after a blocked release (doubles up to 10 minutes).
    #[arg(long, env = "EIPSEG_BLOCKED_RETRY_SECONDS", default_value_t = 30.0)]
    pub blocked_retry_seconds: f64,
    /// First retry after a terminal error (doubles up to 30 minutes).
    #[arg(long, env = "EIPSEG_TERMINAL_RETRY_SECONDS", default_value_t = 120.0)]
    pub terminal_retry_seconds: f64,
    /// Address of /metrics, /healthz and /readyz.
    #[arg(long, env = "EIPSEG_METRICS_ADDR", default_value = "0.0.0.0:8080")]
    pub metrics_addr: std::net::SocketAddr,
    /// Let objects take credentials from a Secret in their own namespace (spec.credentialsSecretRef,
    /// or the namespace's default credentials Secret). Needs `get` on Secrets in the served namespaces.
    #[arg(long, env = "EIPSEG_SECRET_CREDENTIALS")]
    pub secret_credentials: bool,
    /// Name of a namespace's default credentials Secret.
    #[arg(long, env = "EIPSEG_NAMESPACE_CREDENTIALS_SECRET", default_value = "eipsegment-credentials")]
    pub namespace_credentials_secret: String,
    /// Elect a leader among replicas on a Lease; only the holder reconciles.
    #[arg(long, env = "EIPSEG_LEADER_ELECT")]
    pub leader_elect: bool,
    /// Name of the Lease.
    #[arg(long, env = "EIPSEG_LEASE_NAME", default_value = "eipsegment-operator")]
    pub lease_name: String,
    /// Namespace of the Lease (the pod's own, from the downward API).
    #[arg(long, env = "POD_NAMESPACE", default_value = "eipsegment-system")]
    pub lease_namespace: String,
    /// Seconds a lease stays valid without renewal: the longest a hand-over takes.
    #[arg(long, env = "EIPSEG_LEASE_DURATION_SECONDS", default_value_t = 15)]
    pub lease_duration_seconds: u64,
    /// Seconds before expiry at which the holder renews.
    #[arg(long, env = "EIPSEG_LEASE_GRACE_SECONDS", default_value_t = 5)]
    pub lease_grace_seconds: u64,
    /// Quota of ReleaseEipSegmentAddress calls, CALLS/SECONDS per credentials and region, as the
    /// cloud's flow control counts them (Alibaba documents 60 per 60 s). A storm spends it at once.
    #[arg(long, env = "EIPSEG_RELEASE_QUOTA", default_value = "60/60")]
    pub release_quota: Quota,
    /// Quota of AllocateEipSegmentAddress calls, likewise.
    #[arg(long, env = "EIPSEG_ALLOCATE_QUOTA", default_value = "60/60")]
    pub allocate_quota: Quota,
    /// Quota of DescribeEipSegment calls, likewise.
    #[arg(long, env = "EIPSEG_DESCRIBE_QUOTA", default_value = "20/1")]
    pub describe_quota: Quota,
    /// Quota of DescribeEipAddresses calls (the member EIPs of a segment), likewise.
    #[arg(long, env = "EIPSEG_DESCRIBE_ADDRESSES_QUOTA", default_value = "600/60")]
    pub describe_addresses_quota: Quota,
    /// Per-namespace mode: the RoleBinding (in each served namespace) that grants this operator its
    /// rights carries a finalizer; this names it, and the operator removes the finalizer once the
    /// namespace is being deleted and no EipSegment is left in it.
    #[arg(long, env = "EIPSEG_RBAC_GUARD_ROLEBINDING", requires = "namespaces")]
    pub rbac_guard_rolebinding: Option<String>,
    /// Objects reconciled at once.
    #[arg(long, env = "EIPSEG_CONCURRENCY", default_value_t = 16)]
    pub concurrency: u16,
    /// The tenancy policy (YAML): what each namespace may do with which credentials. Without one,
    /// every namespace may do everything (a cluster of one team).
    #[arg(long, env = "EIPSEG_TENANCY_POLICY")]
    pub tenancy_policy: Option<std::path::PathBuf>,
    #[command(flatten)]
    pub identity_key: IdentityKeyArgs,
}

/// Where the key that proves the identity annotations is kept.
#[derive(clap::Args, Debug, Clone)]
pub struct IdentityKeyArgs {
    /// Secret holding the key that proves the identity annotations are the operator's, in the
    /// operator's namespace (POD_NAMESPACE); made when absent. Back it up with the EipSegments:
    /// without it, restored objects' annotations prove nothing.
    #[arg(long, env = "EIPSEG_IDENTITY_KEY_SECRET", default_value = "eipsegment-identity-key")]
    pub identity_key_secret: String,
    /// The operator's namespace, where the key is kept (the pod's own, from the downward API).
    #[arg(long = "identity-key-namespace", env = "POD_NAMESPACE", default_value = "eipsegment-system")]
    pub identity_key_namespace: String,
}

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("invalid VPC client configuration")]
    Client(#[from] crate::cloud::client::ClientConfigError),
    #[error("cannot reach Kubernetes")]
    Kube(#[from] kube::Error),
    #[error("invalid credential configuration: {0}")]
    Credentials(String),
    #[error("leader election failed")]
    Lease(#[from] kube_lease_manager::LeaseManagerError),
    #[error("cannot serve metrics")]
    Metrics(#[from] std::io::Error),
    #[error("invalid duration {0}: must be a positive number of seconds")]
    Duration(f64),
    #[error(transparent)]
    Audit(#[from] crate::audit::AuditError),
    #[error(transparent)]
    Tenancy(#[from] crate::tenancy::PolicyError),
    #[error(transparent)]
    IdentityKey(#[from] crate::proof::KeyError),
    #[error(
        "the tenancy policy selects namespaces by label, but the namespaces could not be listed within a minute: \
         grant get, list and watch on namespaces (the chart does when a rule has a namespaceSelector)"
    )]
    NamespaceWatch,
}

fn seconds(v: f64) -> Result<Duration, RunError> {
    Duration::try_from_secs_f64(v).ok().filter(|d| !d.is_zero()).ok_or(RunError::Duration(v))
}

pub fn init_logging(format: LogFormat, filter: &str) {
    let filter =
        tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(ansi);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder.init(),
    }
}

pub async fn run(args: RunArgs) -> Result<(), RunError> {
    init_logging(args.log_format, &args.log_level);
    crate::cloud::client::install_crypto_provider();
    let timings = timings(&args)?;
    let metrics = Arc::new(Metrics::default());
    let vpc = vpc_client(&args.cloud, &quota_settings(&args))?.with_observer(metrics.clone());
    let client = kube::Client::try_default().await?;
    let listener = telemetry::bind(args.metrics_addr).await?;
    tracing::info!(addr = %listener.local_addr()?, "serving /metrics, /healthz, /readyz");
    tokio::spawn(telemetry::serve(listener, metrics.clone()));
    let namespaces = if args.namespaces.is_empty() { "<all>".to_string() } else { args.namespaces.join(",") };
    tracing::info!(%namespaces, endpoint = args.cloud.vpc_endpoint.as_deref().unwrap_or("<per region>"), "starting");
    if let Some(binding) = &args.rbac_guard_rolebinding {
        let guard = controller::guard::run(client.clone(), args.namespaces.clone(), binding.clone(), GUARD_EVERY);
        tokio::spawn(guard);
    }
    let tenancy = args.tenancy_policy.as_deref().map(Tenancy::from_file).transpose()?.unwrap_or_default();
    let key = &args.identity_key;
    let identity = proof::load_or_create(client.clone(), &key.identity_key_namespace, &key.identity_key_secret).await?;
    let (poller, woken) = Poller::new(PollerConfig::new(timings.poll, timings.resync, timings.transient_max));
    let mut context = Context::new(client.clone(), vpc, timings, metrics.clone(), poller, identity);
    if args.secret_credentials {
        context.secret_credentials =
            Some(SecretCredentials { namespace_default: args.namespace_credentials_secret.clone() });
    }
    if tenancy.needs_labels() {
        let (labels, follow) = controller::watch_namespaces(client.clone());
        tokio::spawn(follow);
        let listed = tokio::time::timeout(NAMESPACES_LISTED_WITHIN, labels.wait_until_ready()).await;
        listed.ok().and_then(Result::ok).ok_or(RunError::NamespaceWatch)?;
        context.namespace_labels = Some(labels);
    }
    context.tenancy = tenancy;
    let scope = WatchScope { namespaces: args.namespaces.clone(), concurrency: args.concurrency };
    if args.leader_elect {
        let lease = lease_config(&args);
        let fence = Arc::new(Fence::new(client.clone(), &lease, metrics.clone()));
        context.fence = Some(fence.clone());
        return run_as_leader(lease, fence, client, Arc::new(context), scope, woken, metrics).await;
    }
    let ctx = Arc::new(context);
    metrics.leader.set(1);
    controller::run(ctx, scope, woken, termination()).await;
    tracing::info!("stopped");
    Ok(())
}

/// How long the namespaces' first list may take before the operator gives up (a missing right is
/// retried by the watch for good, and would otherwise hang the start).
const NAMESPACES_LISTED_WITHIN: Duration = Duration::from_secs(60);

/// How often the per-namespace RoleBinding guard looks.
const GUARD_EVERY: Duration = Duration::from_secs(5);

fn timings(args: &RunArgs) -> Result<Timings, RunError> {
    Ok(Timings {
        poll: seconds(args.poll_seconds)?,
        resync: seconds(args.resync_seconds)?,
        blocked_base: seconds(args.blocked_retry_seconds)?,
        terminal_base: seconds(args.terminal_retry_seconds)?,
        transient_base: seconds(args.transient_retry_seconds)?,
        transient_max: seconds(args.transient_retry_max_seconds)?,
        token_memory: seconds(args.token_memory_seconds)?,
        ..Timings::default()
    })
}

/// The VPC client on the operator's own credentials, with its quotas.
fn vpc_client(args: &CloudArgs, quotas: &QuotaSettings) -> Result<VpcClient, RunError> {
    let timeout = seconds(args.call_timeout_seconds)?;
    let sts_endpoint =
        args.sts_endpoint.as_ref().map(|e| if e.contains("://") { e.clone() } else { format!("https://{e}") });
    let vpc_config = ClientConfig {
        endpoint_override: args.vpc_endpoint.clone(),
        sts_endpoint,
        allow_insecure_endpoint: args.allow_insecure_endpoint,
        timeout,
    };
    let sts = StsConfig {
        endpoint_override: args.sts_endpoint.clone(),
        allow_insecure_endpoint: args.allow_insecure_endpoint,
        timeout,
        refresh_before: Duration::from_secs(args.sts_refresh_before_seconds),
        ..StsConfig::default()
    };
    let credentials = credentials::default_chain(sts).map_err(RunError::Credentials)?;
    Ok(VpcClient::new(vpc_config, credentials)?.with_quotas(Quotas::new(&quotas.per_action())))
}

fn quota_settings(args: &RunArgs) -> QuotaSettings {
    QuotaSettings {
        release: args.release_quota,
        allocate: args.allocate_quota,
        describe: args.describe_quota,
        describe_addresses: args.describe_addresses_quota,
    }
}

fn lease_config(args: &RunArgs) -> LeaseConfig {
    LeaseConfig {
        name: args.lease_name.clone(),
        namespace: args.lease_namespace.clone(),
        identity: leadership::default_identity(),
        duration: Duration::from_secs(args.lease_duration_seconds),
        grace: Duration::from_secs(args.lease_grace_seconds),
    }
}

/// With leader election: a standby is healthy and ready while it waits; the holder reconciles
/// until terminated, until it loses the lease, or until the apiserver refuses its fence. It then
/// gives the lease up at once, unless the apiserver said the lease is another's.
async fn run_as_leader(
    lease: LeaseConfig,
    fence: Arc<Fence>,
    client: kube::Client,
    ctx: Arc<Context>,
    scope: WatchScope,
    woken: tokio::sync::mpsc::UnboundedReceiver<crate::poller::WakeTarget>,
    metrics: Arc<Metrics>,
) -> Result<(), RunError> {
    metrics.ready.store(true, std::sync::atomic::Ordering::Relaxed);
    tracing::info!(lease = %lease.name, namespace = %lease.namespace, identity = %lease.identity, "waiting for the lease");
    let mut leadership = tokio::select! {
        l = leadership::acquire(client, &lease) => l?,
        _ = termination() => return Ok(()),
    };
    tracing::info!(identity = %lease.identity, "holding the lease; reconciling");
    if let Err(e) = fence.arm().await {
        tracing::warn!(error = %crate::error_chain(&e), "could not prepare the lease for fencing");
    }
    metrics.leader.set(1);
    metrics.ready.store(false, std::sync::atomic::Ordering::Relaxed);
    let (lost_tx, lost_rx) = tokio::sync::oneshot::channel::<()>();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        tokio::select! {
            _ = leadership.lost() => { let _ = lost_tx.send(()); }
            _ = stop_rx => {}
        }
        leadership
    });
    let deposed = fence.clone();
    let shutdown = async move {
        tokio::select! {
            _ = termination() => tracing::info!("terminating"),
            _ = lost_rx => tracing::warn!("lease lost; stopping"),
            _ = deposed.deposed() => tracing::warn!("the apiserver refused the fence: the lease is another's; stopping"),
        }
    };
    controller::run(ctx, scope, woken, shutdown).await;
    metrics.leader.set(0);
    let _ = stop_tx.send(());
    if let Ok(leadership) = watcher.await {
        leadership.release(&fence).await;
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn termination() {
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(s) => s,
            Err(_) => return std::future::pending().await,
        };
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = tokio::signal::ctrl_c().await;
}

/// Runs the command; what it returns is the process's exit status.
pub async fn main(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Crd => {
            print!("{}", crate::crd::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Run(args) => match run(args).await {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("eipsegment-operator: {}", crate::error_chain(&e));
                ExitCode::FAILURE
            }
        },
        Command::Audit(args) => ExitCode::from(audit(args).await),
    }
}

/// Prints the audit as asked; returns its exit code.
async fn audit(args: AuditArgs) -> u8 {
    init_logging(LogFormat::Text, &std::env::var("RUST_LOG").unwrap_or_else(|_| "warn".into()));
    let report = match audit_report(&args).await {
        Ok(report) => report,
        Err(e) => {
            eprintln!("eipsegment-operator audit: could not tell: {}", crate::error_chain(&e));
            return COULD_NOT_TELL;
        }
    };
    match args.output {
        OutputFormat::Table => print!("{}", report.table()),
        OutputFormat::Json => println!("{}", report.json()),
    }
    for region in &report.regions {
        if let Some(e) = &region.error {
            eprintln!("eipsegment-operator audit: {}: could not tell: {e}", region.region);
        }
    }
    report.exit_code()
}

/// The cloud only through its read-only view; Kubernetes only by listing EipSegments.
async fn audit_report(args: &AuditArgs) -> Result<Report, RunError> {
    crate::cloud::client::install_crypto_provider();
    let vpc = ReadOnlyVpc::new(vpc_client(&args.cloud, &QuotaSettings::default())?);
    let client = kube::Client::try_default().await?;
    let key = &args.identity_key;
    // No key yet: no operator ever proved an annotation, and only status counts.
    let identity = proof::load(client.clone(), &key.identity_key_namespace, &key.identity_key_secret)
        .await?
        .unwrap_or_else(proof::IdentityKey::generate);
    let objects = crate::audit::list_objects(client).await?;
    Ok(crate::audit::run(&vpc, &objects, &args.regions, &identity).await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLOUD: [&str; 7] = [
        "--vpc-endpoint",
        "http://127.0.0.1:1",
        "--sts-endpoint",
        "http://127.0.0.1:2",
        "--allow-insecure-endpoint",
        "--call-timeout-seconds",
        "3",
    ];

    fn cloud_of(command: Command) -> CloudArgs {
        match command {
            Command::Run(args) => args.cloud,
            Command::Audit(args) => args.cloud,
            Command::Crd => panic!("crd has no cloud options"),
        }
    }

    #[test]
    fn run_and_audit_read_the_cloud_options_alike() {
        for command in ["run", "audit"] {
            let argv = ["eipsegment-operator", command].into_iter().chain(CLOUD);
            let cloud = cloud_of(Cli::try_parse_from(argv).unwrap().command);
            assert_eq!(cloud.vpc_endpoint.as_deref(), Some("http://127.0.0.1:1"), "{command}");
            assert_eq!(cloud.sts_endpoint.as_deref(), Some("http://127.0.0.1:2"), "{command}");
            assert!(cloud.allow_insecure_endpoint, "{command}");
            assert_eq!(cloud.call_timeout_seconds, 3.0, "{command}");
            assert_eq!(cloud.sts_refresh_before_seconds, 180, "{command}");
        }
    }

    #[test]
    fn quotas_default_to_the_documented_figures_and_refuse_nonsense() {
        let run = |args: &[&str]| {
            let argv = ["eipsegment-operator", "run"].iter().chain(args).copied();
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Run(a) => quota_settings(&a),
                _ => panic!("not run"),
            })
        };
        assert_eq!(run(&[]).unwrap(), QuotaSettings::default());
        let raised = run(&["--release-quota", "1200/60"]).unwrap();
        assert_eq!(raised.release, Quota { calls: 1200, window: Duration::from_secs(60) });
        assert_eq!(raised, QuotaSettings { release: raised.release, ..QuotaSettings::default() }, "only the release's");
        let e = run(&["--allocate-quota", "0/60"]).unwrap_err().to_string();
        assert!(e.contains("expected CALLS/SECONDS"), "{e}");
    }

    #[test]
    fn audit_regions_and_output() {
        let parse = |args: &[&str]| {
            let argv = ["eipsegment-operator", "audit"].iter().chain(args).copied();
            Cli::try_parse_from(argv).map(|cli| match cli.command {
                Command::Audit(a) => (a.regions, matches!(a.output, OutputFormat::Json)),
                _ => panic!("not audit"),
            })
        };
        assert_eq!(parse(&[]).unwrap(), (vec![], false));
        let regions = parse(&["--region", "cn-hangzhou,ap-southeast-1", "--region", "us-east-1", "--output", "json"]);
        assert_eq!(regions.unwrap(), (vec!["cn-hangzhou".into(), "ap-southeast-1".into(), "us-east-1".into()], true));
        for bad in ["Hangzhou", "cn", "cn-", "c-hangzhou", "cn-hang_zhou", "-cn-hangzhou", ""] {
            let e = parse(&[&format!("--region={bad}")]).unwrap_err();
            assert!(e.to_string().contains("is not a region ID"), "{bad}: {e}");
        }
        assert!(parse(&["--output", "yaml"]).is_err());
    }
}
