use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not glibc's malloc: a request's buffers are freed on the log
/// writer's thread and the workers', and glibc's arenas made those frees
/// contend (futex wake-ups in the hit path's profile). See bench/RESULTS.md.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    gateway::cli::run(gateway::cli::Cli::parse())
}
