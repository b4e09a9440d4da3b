#[tokio::main]
async fn main() -> std::io::Result<()> {
    vpc_simulator::run(vpc_simulator::Args::from_command_line()).await
}
