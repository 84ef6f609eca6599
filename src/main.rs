#[tokio::main]
async fn main() {
    if let Err(e) = gp_online_gateway::cli::run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
