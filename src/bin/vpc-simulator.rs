#[tokio::main]
async fn main() -> std::io::Result<()> {
    eipsegment_operator::simulator::run(eipsegment_operator::simulator::Args::from_command_line()).await
}
