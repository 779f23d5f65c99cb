//! Command-line parsing and dispatch (clap). `anyhow` errors live only here:
//! every failure prints its context chain and exits non-zero.

/// `println!` that ends the process quietly when stdout is closed (e.g.
/// piped into `head`) instead of panicking.
macro_rules! out {
    ($($t:tt)*) => {{
        use std::io::Write as _;
        if writeln!(std::io::stdout().lock(), $($t)*).is_err() {
            std::process::exit(0);
        }
    }};
}

mod bench;
mod bench_filter;
mod build_args;
mod bulk;
mod client;
mod crash_writer;
mod gt;
mod health;
mod index;
mod load;
mod mixed;
mod serve;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// quiver: approximate-nearest-neighbour vector search.
#[derive(Parser)]
#[command(name = "quiver", version, about)]
struct Cli {
    /// Log filter (tracing env-filter syntax), e.g. `info` or `quiver=debug`.
    #[arg(long, global = true, env = "QUIVER_LOG", default_value = "info")]
    log: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Build an index over a dataset and sweep search settings: recall, QPS, latency.
    Bench(bench::BenchArgs),
    /// Compute exact k-nearest-neighbour ground truth.
    Gt(gt::GtArgs),
    /// Build an index and write it to disk (a directory for `--index spann`),
    /// or with `--data --collection` a collection for `quiver serve` to open.
    Index(build_args::IndexArgs),
    /// Run the gRPC server over a data directory until SIGINT/SIGTERM.
    Serve(serve::ServeArgs),
    /// Stream a dataset file into a running server's collection.
    Import(client::ImportArgs),
    /// Run queries against a running server: recall, QPS, latency percentiles.
    Query(client::QueryArgs),
    /// Check a running server's gRPC health: exit 0 when SERVING.
    Health(health::HealthArgs),
    /// Run a bounded mixed search/upsert load against a running server.
    Load(load::LoadArgs),
    /// Import a dataset at full speed while searching it: search latency
    /// (client and server time_us) per phase, ingest rate, graph catch-up.
    Mixed(mixed::MixedArgs),
    /// Test helper: write a deterministic workload to a collection until killed.
    #[command(hide = true)]
    CrashWriter(crash_writer::CrashWriterArgs),
}

pub fn run() -> ExitCode {
    let cli = Cli::parse();
    // `serve` starts logging itself, once its configuration names the format.
    if !matches!(cli.command, Command::Serve(_)) {
        init_logging(&cli.log, false);
    }
    let result = match cli.command {
        Command::Bench(a) => bench::run(a),
        Command::Gt(a) => gt::run(a),
        Command::Index(a) => index::run(a),
        Command::Serve(a) => serve::run(a, &cli.log),
        Command::CrashWriter(a) => crash_writer::run(a),
        Command::Import(a) => client::import(a),
        Command::Query(a) => client::query(a),
        Command::Health(a) => health::run(a),
        Command::Load(a) => load::run(a),
        Command::Mixed(a) => mixed::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Logs to stderr under the env-filter `filter`: text lines, or one JSON
/// object per line.
pub(crate) fn init_logging(filter: &str, json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| "info".into());
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

/// Parses `"a,b,c"` into numbers, naming the flag on error.
pub(crate) fn parse_list(s: &str) -> Result<Vec<usize>, String> {
    s.split(',')
        .map(|p| p.trim().parse::<usize>().map_err(|e| format!("{p:?}: {e}")))
        .collect()
}

/// A rayon pool with `threads` workers (0 = all cores).
pub(crate) fn pool(threads: usize) -> anyhow::Result<rayon::ThreadPool> {
    Ok(rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()?)
}
