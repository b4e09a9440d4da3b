use clap::Parser;
use eipsegment_operator::cli;

// jemalloc keeps the resident size near the live heap: with glibc's per-thread arenas, a cache of
// thousands of small objects left the operator's RSS half again as large as its heap.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    cli::main(cli::Cli::parse()).await
}
