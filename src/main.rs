use clap::Parser;
use eipsegment_operator::cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::main(cli::Cli::parse()).await
}
