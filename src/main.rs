/// Requests allocate on the HTTP workers and are freed on the audit writer's and the reader's
/// threads; glibc's allocator serialises that hand-over on its arena locks and consolidates
/// under load, where mimalloc frees to the owning thread's heap without a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() {
    if let Err(e) = gp_online_gateway::cli::run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
