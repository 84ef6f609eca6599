/// Requests allocate on the HTTP workers and are freed on the audit writer's and the reader's
/// threads; glibc's allocator serialises that hand-over on its arena locks and consolidates
/// under load, where mimalloc frees to the owning thread's heap without a lock.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// mimalloc v3's option numbers (`mi_option_e` in the `mimalloc.h` that libmimalloc-sys 0.1.49
/// builds): whether arenas are committed as a whole up front, and how long freed memory waits
/// before it goes back to the operating system.
const MI_OPTION_ARENA_EAGER_COMMIT: libmimalloc_sys::mi_option_t = 4;
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Memory freed is given back at once and arenas are committed as they are used. Kept reads
/// turn over all the time under traffic spread over a large population; with mimalloc's
/// defaults (a second's delay, arenas committed whole) the pages they freed stayed with the
/// process: peak RSS 181 MiB over 100,000 patients, 117 MiB with these settings in place from
/// the start, at the same throughput (`benches/RESULTS.md`).
extern "C" fn give_freed_memory_back() {
    // SAFETY: runs before `main`, on the only thread there is (the options are not thread
    // safe), and allocates nothing, so no arena exists yet with the defaults' behaviour.
    unsafe {
        libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        libmimalloc_sys::mi_option_set(MI_OPTION_ARENA_EAGER_COMMIT, 0);
    }
}

/// Set as the process starts, before Rust's runtime allocates: an arena made before the
/// options are set keeps the defaults' behaviour.
#[cfg(target_os = "linux")]
#[used]
#[unsafe(link_section = ".init_array")]
static SET_ALLOCATOR_OPTIONS: extern "C" fn() = give_freed_memory_back;

#[tokio::main]
async fn main() {
    #[cfg(not(target_os = "linux"))]
    give_freed_memory_back();
    if let Err(e) = gp_online_gateway::cli::run().await {
        eprintln!("error: {e:#}");
        std::process::exit(1);
    }
}
