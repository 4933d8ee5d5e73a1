//! The `troupe` command: `troupe server` runs a server; every other
//! subcommand is the console, which talks to a server over Zenoh.
//!
//! Exit status: 0 on success; 1 when the command worked but the instance did
//! not succeed (`wait` on an instance that ended in error, `exec` of an app
//! that failed gives the app's own code); 2 for errors (bad arguments,
//! unreachable server, unknown application or instance, timeout).

mod args;
mod console;
mod table;

pub use args::Cli;
use clap::Parser;

/// Parses the command line, runs the command, and returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    let default_level = if matches!(cli.command, args::Command::Server(_)) {
        "info"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TROUPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(format!("{default_level},zenoh=warn")));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("troupe: error: cannot start the runtime: {e}");
            return 2;
        }
    };
    let code = rt.block_on(console::run(cli));
    use std::io::Write;
    let _ = std::io::stdout().flush();
    code
}
