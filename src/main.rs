use clap::Parser;
use eipsegment_operator::cli;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match cli::main(cli::Cli::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("eipsegment-operator: {}", eipsegment_operator::error_chain(&e));
            std::process::ExitCode::FAILURE
        }
    }
}
