//! The command line.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;
use std::time::Duration;

/// troupe: start, stop and watch applications on every host, and let them talk.
#[derive(Debug, Parser)]
#[command(name = "troupe", version, about, max_term_width = 100)]
pub struct Cli {
    /// The server's endpoint.
    #[arg(short, long, global = true, env = "TROUPE_ENDPOINT", default_value = troupe_protocol::DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// Longest wait for the server to answer one request (e.g. "5s").
    #[arg(long, global = true, default_value = "5s", value_parser = duration)]
    pub request_timeout: Duration,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// A duration such as "500ms", "10s" or "1m 30s".
pub fn duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s)
        .map_err(|e| format!("{e} (write a duration such as \"10s\" or \"500ms\")"))
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run a server on this host.
    Server(ServerArgs),
    /// List the configured applications.
    Apps(JsonFlag),
    /// List the instances, live and recently terminated.
    Ps(JsonFlag),
    /// Start an instance and print its id.
    Start(StartArgs),
    /// Start an instance, stream its output, forward stdin; Ctrl-C stops it.
    /// Exits with the application's exit code.
    Exec(StartArgs),
    /// Attach to an instance's output (Ctrl-C detaches, the instance goes on).
    Connect(Target),
    /// Stop an instance (stop signal, then kill after its stopping time) and
    /// print its terminal state.
    Stop(ActArgs),
    /// Kill an instance's process group and print its terminal state.
    Kill(ActArgs),
    /// Wait for an instance to end and print its terminal state. Exit status
    /// 0 only for success.
    Wait(WaitArgs),
    /// Print an instance's result (waits for the instance to end).
    Result(WaitArgs),
    /// Follow the state events of all instances of the server.
    Watch(JsonFlag),
    /// Show one instance in detail, with its past states.
    Info(InfoArgs),
    /// Read an instance's key-value store: list keys, or print one value.
    Kv(KvArgs),
    /// Inside an instance: talk to the server that started it (for scripts).
    This {
        /// What to do.
        #[command(subcommand)]
        action: ThisAction,
    },
}

/// `troupe server`.
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// Configuration file (default: the example configuration built in).
    #[arg(short, long)]
    pub config: Option<PathBuf>,
    /// Endpoint to listen on, instead of the configured ones (repeatable).
    #[arg(short, long)]
    pub listen: Vec<String>,
    /// Server name, instead of the configured one.
    #[arg(short, long)]
    pub name: Option<String>,
    /// Check the configuration, print a summary, and exit.
    #[arg(long)]
    pub check: bool,
}

/// `--json`.
#[derive(Debug, Args)]
pub struct JsonFlag {
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `start` and `exec`.
#[derive(Debug, Args)]
pub struct StartArgs {
    /// Application name.
    pub app: String,
    /// Arguments appended to the configured ones.
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// An instance: its id, or an application name (its newest instance).
#[derive(Debug, Args)]
pub struct Target {
    /// Instance id, or application name (its newest instance).
    pub target: String,
}

/// `stop` and `kill`.
#[derive(Debug, Args)]
pub struct ActArgs {
    /// Instance id, or application name (its newest instance).
    pub target: String,
    /// Longest wait for the terminal state.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub timeout: Duration,
    /// Print the terminal info as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `wait` and `result`.
#[derive(Debug, Args)]
pub struct WaitArgs {
    /// Instance id, or application name (its newest instance).
    pub target: String,
    /// Longest wait.
    #[arg(long, default_value = "60s", value_parser = duration)]
    pub timeout: Duration,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    /// Instance id, or application name (its newest instance).
    pub target: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
}

/// `kv`.
#[derive(Debug, Args)]
pub struct KvArgs {
    /// Instance id, or application name (its newest instance).
    pub target: String,
    /// The key to print (omit to list the keys).
    pub key: Option<String>,
    /// Wait up to this long for the key to appear.
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub wait: Duration,
}

/// `troupe this ...`: for programs started by a server.
#[derive(Debug, Subcommand)]
pub enum ThisAction {
    /// Say that the instance runs (for `starting_time = "manual"`).
    Running,
    /// Set the instance's result.
    Result {
        /// The result (text).
        value: String,
    },
    /// Store a key in the instance's store.
    Store {
        /// Key.
        key: String,
        /// Value (text).
        value: String,
    },
    /// Remove a key from the instance's store.
    Remove {
        /// Key.
        key: String,
    },
    /// Print who this instance is (server, app, id).
    Whoami,
}
