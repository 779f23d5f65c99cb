//! The `quiver` command line: benchmarks, ground truth and (later) the server.

mod cli;

fn main() -> std::process::ExitCode {
    cli::run()
}
