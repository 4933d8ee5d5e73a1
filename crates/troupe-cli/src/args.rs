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
    /// Publish each line of standard input as a text message, until its end.
    ///
    /// The messages go out as the publisher NAME of this instance. Inside an
    /// instance started by a server (the TROUPE_* environment) that is the
    /// instance itself; elsewhere the console attaches to the server under
    /// --app (default "console") and prints on stderr which instance it is,
    /// for `troupe subscribe ID NAME`. Lines that are not UTF-8 go out as
    /// bytes.
    ///
    /// The end of standard input ends the stream: subscribers then exit 0.
    /// Ctrl-C, SIGTERM and a stop of the instance end it too, after the lines
    /// read so far. A publisher that dies without ending its stream (kill -9)
    /// makes its subscribers fail.
    ///
    /// Exit status: 0 once the stream is ended; 2 on errors (bad name,
    /// unreachable server, fewer subscribers than --subscribers within
    /// --wait).
    Publish(PublishArgs),
    /// Print the messages of a publisher of an instance until its stream ends.
    ///
    /// One line per message on stdout: text as it is, JSON compact, numeric
    /// arrays as JSON arrays, bytes as text when they are UTF-8, else in hex;
    /// line breaks inside a message are shown as \n. With --json, one JSON
    /// object per line: {"content": "text", "header": ..., "body": ...}, with
    /// "header_base64"/"body_base64" instead for bytes that are not UTF-8.
    /// It waits up to --wait for the publisher to appear. Messages this
    /// subscriber missed because it did not keep up (plain publishers only)
    /// are counted in a warning on stderr.
    ///
    /// Exit status: 0 at the end of the stream (or Ctrl-C); 1 when the
    /// publisher went away without ending it; 2 on errors (unknown instance,
    /// no such publisher within --wait, ...).
    Subscribe(SubscribeArgs),
    /// Answer the requests to a responder NAME until stopped.
    ///
    /// Serves as the responder NAME of this instance (see `publish` for how
    /// the instance is chosen), with --echo (the request back, unchanged) or
    /// --reply TEXT. Prints one line per request served on stdout:
    /// "request N from WHO: MESSAGE". Runs until Ctrl-C, SIGTERM or a stop of
    /// the instance.
    ///
    /// Exit status: 0 when stopped; 2 on errors.
    Respond(RespondArgs),
    /// Send a text request to a responder of an instance and print the answer.
    ///
    /// Prints every part of the answer, each as `subscribe` prints a message
    /// (but line breaks as they are), or with --json as JSON objects. The
    /// whole answer must come within --timeout, which includes the wait for
    /// the responder to appear.
    ///
    /// Exit status: 0 when answered; 1 when the responder failed the request
    /// or died with it pending; 2 on errors (unknown instance, timeout, ...).
    Request(RequestArgs),
    /// Named channels of the realm: list them, own one, send to one, ping
    /// one.
    ///
    /// A channel belongs to the realm, not to a server: its name is unique
    /// across every connected server, and reaching it takes the name alone.
    /// Its owner receives synchronous messages (the sender waits for the
    /// reply) and asynchronous ones (bounded per sender, never lost in
    /// silence).
    Channel {
        /// What to do.
        #[command(subcommand)]
        action: ChannelAction,
    },
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

/// Who `publish` and `respond` speak as.
#[derive(Debug, Args)]
pub struct Identity {
    /// Attach to the server as an instance of this application. Default: the
    /// instance this process is, when a server started it; else "console".
    #[arg(long, value_name = "APP")]
    pub app: Option<String>,
}

/// `publish`.
#[derive(Debug, Args)]
pub struct PublishArgs {
    /// The publisher's name.
    pub name: String,
    /// Synchronise on N subscribers: wait for them before the first line,
    /// then never run ahead of the slowest (nobody misses a message).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub subscribers: Option<u32>,
    /// Longest wait for the subscribers, for a slow one to catch up, and for
    /// them to confirm the end.
    #[arg(long, value_name = "D", default_value = "60s", value_parser = duration)]
    pub wait: Duration,
    /// Identity.
    #[command(flatten)]
    pub identity: Identity,
}

/// `subscribe`.
#[derive(Debug, Args)]
pub struct SubscribeArgs {
    /// Instance id, or application name (its newest instance).
    pub target: String,
    /// The publisher's name.
    pub name: String,
    /// Longest wait for the publisher to appear.
    #[arg(long, value_name = "D", default_value = "60s", value_parser = duration)]
    pub wait: Duration,
    /// How many received messages may wait to be printed before the next
    /// ones are dropped (plain publishers only).
    #[arg(long, value_name = "N", default_value_t = 10_000, value_parser = clap::value_parser!(u32).range(1..))]
    pub queue: u32,
    /// Print each message as a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// How `respond` answers.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct Answer {
    /// Answer each request with itself.
    #[arg(long)]
    pub echo: bool,
    /// Answer each request with TEXT.
    #[arg(long, value_name = "TEXT")]
    pub reply: Option<String>,
}

/// `respond`.
#[derive(Debug, Args)]
pub struct RespondArgs {
    /// The responder's name.
    pub name: String,
    /// The answer.
    #[command(flatten)]
    pub answer: Answer,
    /// How many workers serve the requests.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=256))]
    pub workers: u32,
    /// Identity.
    #[command(flatten)]
    pub identity: Identity,
}

/// `request`.
#[derive(Debug, Args)]
pub struct RequestArgs {
    /// Instance id, or application name (its newest instance).
    pub target: String,
    /// The responder's name.
    pub name: String,
    /// The request (text).
    pub message: String,
    /// Longest wait for the whole answer, the wait for the responder
    /// included.
    #[arg(long, value_name = "D", default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
    /// Print each part of the answer as a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `troupe channel ...`.
#[derive(Debug, Subcommand)]
pub enum ChannelAction {
    /// List the channels of the realm: name, owner, age, connected clients,
    /// asynchronous bound, largest message.
    ///
    /// A name listed twice is being contested: the younger claim is marked
    /// "losing" and gives the name up. With no channel, prints nothing on
    /// stdout (`[]` with --json) and says so on stderr.
    ///
    /// Exit status: 0; 2 on errors (unreachable server).
    #[command(visible_alias = "list")]
    Ls(JsonFlag),
    /// Own the channel NAME and print what comes in, until stopped.
    ///
    /// One line per event on stdout: "sync from WHO: MESSAGE", "async from
    /// WHO: MESSAGE", "disconnected: WHO (client ID)"; line breaks inside a
    /// message are shown as \n. Each synchronous message is answered with
    /// itself (--echo), with TEXT (--reply), or else with an empty message,
    /// after its line is printed. Says on stderr once it listens. Runs until
    /// Ctrl-C, SIGTERM (or, inside an instance, a stop of the instance).
    ///
    /// Exit status: 0 when stopped; 2 on errors (the name is taken, or lost
    /// later to an older claim; unreachable server).
    Listen(ListenArgs),
    /// Send a text message to the channel NAME and print the reply.
    ///
    /// With --async, sends it asynchronously and prints nothing. --timeout
    /// bounds everything after the connection to the server, the wait for
    /// the channel to appear included.
    ///
    /// Exit status: 0 when answered (or sent); 1 when the owner failed the
    /// message or went away with it pending; 2 on errors (no such channel
    /// within --timeout, no reply in time, a message larger than the channel
    /// accepts, ...).
    Send(ChannelSendArgs),
    /// Check that the owner of the channel NAME is alive and receiving.
    ///
    /// Prints "NAME: alive (0.4 ms)" with the round trip. The answer comes
    /// from the owner's receive loop, so an owner that is alive but does not
    /// receive does not answer.
    ///
    /// Exit status: 0 when it answered; 1 when there is no such channel, its
    /// owner is gone, or it did not answer within --timeout; 2 on errors
    /// (bad name, unreachable server).
    Ping(ChannelPingArgs),
}

/// How `channel listen` answers synchronous messages.
#[derive(Debug, Args)]
#[group(required = false, multiple = false)]
pub struct ChannelAnswer {
    /// Answer each synchronous message with itself.
    #[arg(long)]
    pub echo: bool,
    /// Answer each synchronous message with TEXT.
    #[arg(long, value_name = "TEXT")]
    pub reply: Option<String>,
}

/// `channel listen`.
#[derive(Debug, Args)]
pub struct ListenArgs {
    /// The channel's name.
    pub name: String,
    /// The answer (default: an empty message).
    #[command(flatten)]
    pub answer: ChannelAnswer,
    /// How many asynchronous messages each sender may have in flight.
    #[arg(long, value_name = "N", default_value_t = 4096, value_parser = clap::value_parser!(u32).range(1..))]
    pub async_bound: u32,
    /// The largest message accepted, header and body: bytes, or with a
    /// suffix KiB or MiB.
    #[arg(long, value_name = "BYTES", default_value = "1MiB", value_parser = bytes)]
    pub max_message: usize,
}

/// `channel send`.
#[derive(Debug, Args)]
pub struct ChannelSendArgs {
    /// The channel's name.
    pub name: String,
    /// The message (text).
    pub message: String,
    /// Send asynchronously: no reply, nothing printed.
    #[arg(long = "async")]
    pub no_reply: bool,
    /// Longest wait for the channel to appear, then for room to send or for
    /// the reply.
    #[arg(long, value_name = "D", default_value = "30s", value_parser = duration)]
    pub timeout: Duration,
}

/// `channel ping`.
#[derive(Debug, Args)]
pub struct ChannelPingArgs {
    /// The channel's name.
    pub name: String,
    /// Longest wait for the channel and for its answer.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
}

/// A size in bytes: "65536", "64KiB", "1MiB" (at least 1).
pub fn bytes(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (digits, unit) = t.split_at(split);
    let unit_size: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" | "K" | "k" => 1 << 10,
        "MiB" | "M" => 1 << 20,
        _ => {
            return Err(format!(
                "unknown unit {unit:?} (write bytes such as \"65536\", \"64KiB\" or \"1MiB\")"
            ))
        }
    };
    let n: usize = digits.parse().map_err(|_| {
        format!("{s:?} is not a size (write bytes such as \"65536\", \"64KiB\" or \"1MiB\")")
    })?;
    match n.checked_mul(unit_size) {
        Some(0) => Err("a size must be at least 1 byte".into()),
        Some(n) => Ok(n),
        None => Err(format!("{s} is too large")),
    }
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn sizes_parse_with_units() {
        assert_eq!(bytes("100"), Ok(100));
        assert_eq!(bytes("64KiB"), Ok(65536));
        assert_eq!(bytes("1MiB"), Ok(1 << 20));
        assert_eq!(bytes("2 M"), Ok(2 << 20));
        assert!(bytes("0").is_err());
        assert!(bytes("1GB").is_err());
        assert!(bytes("KiB").is_err());
        assert!(bytes("-5").is_err());
    }
}
