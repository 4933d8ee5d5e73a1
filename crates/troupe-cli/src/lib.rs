//! The `troupe` command: `troupe server` runs a server; every other
//! subcommand is the console, which talks to a server over Zenoh.
//!
//! The pattern commands speak to the publishers and responders of
//! instances: `publish` and `respond` as an instance (the one a server
//! started this process as, or one attached for the occasion), `subscribe`
//! and `request` from outside. The channel commands (`troupe channel
//! ls|listen|send|ping`) reach the realm's named channels by name alone,
//! and the object commands (`troupe objects|describe|call|attr`) its remote
//! objects by id. `troupe logs` and `troupe logdump` read, follow and dump
//! the realm's log records. `troupe status` prints, follows and changes
//! the realm's status tree. The device commands (`troupe
//! devices|get|set|monitor`) reach the properties of the realm's device
//! services by `DEVICE/PROPERTY`.
//!
//! Exit status: 0 on success; 1 when the command worked but the instance did
//! not succeed (`wait` on an instance that ended in error, `exec` of an app
//! that failed gives the app's own code) or the other side of a pattern
//! failed (a publisher went away without ending its stream, a responder
//! failed a request or died with it pending, a channel's owner failed a
//! message or went away with it pending, a pinged channel is not there); 2
//! for errors (bad arguments, unreachable server, unknown application,
//! instance or channel, timeout).

mod args;
mod channel;
mod console;
mod devices;
mod logs;
mod objects;
mod patterns;
mod status;
mod table;

pub use args::Cli;
use clap::Parser;

/// Parses the command line, runs the command, and returns the exit status.
pub fn main() -> i32 {
    let cli = Cli::parse();
    if matches!(cli.command, args::Command::Server(_)) {
        // Still one thread: no runtime, no Zenoh yet.
        troupe_server::tune_zenoh_runtime();
    }
    // The console keeps Zenoh's warnings (such as each failed connection
    // attempt) to itself: its own errors are one line.
    let default_filter = if matches!(cli.command, args::Command::Server(_)) {
        "info,zenoh=warn"
    } else {
        // The subscriber's own warning of missed messages is the console's.
        "warn,zenoh=error,troupe::pubsub=error"
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("TROUPE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_filter));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
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
