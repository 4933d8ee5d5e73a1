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
    /// List the remote objects of the realm: id, server (owner), age,
    /// connected clients.
    ///
    /// With no object, prints nothing on stdout (`[]` with --json) and says
    /// so on stderr. Exit status: 0; 2 on errors.
    Objects(JsonFlag),
    /// Show a remote object's methods (with their parameters and return
    /// types) and attributes (read-only or read-write).
    ///
    /// Exit status: 0; 2 on errors (no such object within --timeout, ...).
    Describe(DescribeArgs),
    /// Call a method of a remote object and print its result as JSON.
    ///
    /// PARAMS is JSON: an array for positional parameters ('[1, "a"]'), an
    /// object for named ones ('{"count": 1}'); any other value is the one
    /// positional parameter. Without PARAMS the method gets none. A
    /// JSON-RPC error (method not found, invalid params, the object's own
    /// error) is printed on stderr with its code.
    ///
    /// Exit status: 0 when the object answered with a result; 1 when it
    /// answered with an error or went away with the call pending; 2 on
    /// errors (no such object within --timeout, no answer in time, bad
    /// JSON, ...).
    Call(CallArgs),
    /// Read an attribute of a remote object (print it as JSON), or write it
    /// with VALUE (JSON).
    ///
    /// Exit status as for `call`.
    Attr(AttrArgs),
    /// List the device services of the realm: name, server id, prefix,
    /// whether they publish per selector, first-update policy, devices and
    /// their properties, owner.
    ///
    /// One row per device. With no service, prints nothing on stdout (`[]`
    /// with --json) and says so on stderr. Exit status: 0; 2 on errors.
    Devices(DevicesArgs),
    /// Read a property of a device and print its value as JSON.
    ///
    /// With --json, prints the header too: {"header": {"time_unix_ns",
    /// "selector", "seq", "epoch"}, "value": ...}.
    ///
    /// Exit status: 0; 1 when the device failed the read (its reason on
    /// stderr); 2 on errors (bad address, no service serves the device, no
    /// such property, no answer within --timeout, ...).
    Get(GetArgs),
    /// Write a JSON value to a property of a device.
    ///
    /// VALUE is JSON: 2.5, -1, '"text"', '{"a": [1, 2]}'. Returns once the
    /// service accepted it.
    ///
    /// Exit status: 0; 1 when the device refused the value (its reason on
    /// stderr); 2 on errors (bad JSON or address, no service serves the
    /// device, no such property, no answer within --timeout, ...).
    Set(SetArgs),
    /// Print each update of a property of a device, until Ctrl-C or
    /// SIGTERM.
    ///
    /// One line per update: "TIME [SELECTOR] VALUE" (the value as compact
    /// JSON), or "TIME [SELECTOR] error: MESSAGE" for an error the device
    /// published; errors do not end it. With --json, one JSON object per
    /// update: {"device", "property", "header", "value" or "error"}. Under
    /// a first-update policy `current`, the first line is the current value.
    /// With no service serving the device yet, waits for one.
    ///
    /// Exit status: 0 when stopped; 2 on errors (bad address, no such
    /// property, unreachable server).
    Monitor(MonitorArgs),
    /// Print the log records the servers of the realm keep, merged by time.
    ///
    /// Each server keeps the latest 1000 records (at most 1 MiB) of its
    /// instances. One line per record on stdout: "TIME LEVEL server/app/id
    /// target: message key=value ..." (line breaks shown as \n), or with
    /// --json one JSON object per line. With --follow, then prints new
    /// records as they come, each once, until Ctrl-C or SIGTERM. Records a
    /// source dropped (its queue was full) or that were lost on the way are
    /// counted on stderr: "troupe: N records dropped by server/app/id".
    ///
    /// Exit status: 0; 2 on errors (unreachable server, or it went away
    /// while following).
    Logs(LogsArgs),
    /// Write the new log records of the realm to rotated files, until
    /// Ctrl-C or SIGTERM.
    ///
    /// Writes DIR/troupe.log, one line per record as `logs` prints it (or
    /// JSON with --json); when it reaches --max-size it becomes
    /// troupe.log.1 (and troupe.log.1 troupe.log.2, ...), keeping
    /// --max-files of them. Records dropped or lost are noted on stderr
    /// and, in text, as a line "# N records dropped by server/app/id".
    /// Flushes at least every second and before exiting.
    ///
    /// Exit status: 0 when stopped; 2 on errors (unreachable server, a
    /// file that cannot be written, the server went away).
    Logdump(LogdumpArgs),
    /// The realm's status tree: print it, follow it, set or remove a part.
    ///
    /// The servers keep one JSON tree for the whole realm, updated in parts
    /// by any process. `troupe status [MASK...]` prints the tree, or only the
    /// parts under the MASKs (path prefixes such as "system" or
    /// "system.foo"), one line per leaf: "system.foo.cpu = 0.3" (values as
    /// compact JSON, paths sorted); with --json, the tree as pretty JSON.
    /// With --follow, then prints each update under the MASKs as it comes,
    /// nothing lost in between: "set system.foo = {"cpu":0.3}", "remove
    /// system.foo" (with --json, one JSON object per update), until Ctrl-C
    /// or SIGTERM.
    ///
    /// Exit status: 0; 2 on errors (bad mask, path or JSON, unreachable
    /// server, or it went away while following).
    #[command(args_conflicts_with_subcommands = true)]
    Status(StatusArgs),
    /// Inside an instance: talk to the server that started it (for scripts).
    This {
        /// What to do.
        #[command(subcommand)]
        action: ThisAction,
    },
}

/// `troupe status`.
#[derive(Debug, Args)]
pub struct StatusArgs {
    /// Set or remove a part of the tree (without: print it).
    #[command(subcommand)]
    pub action: Option<StatusAction>,
    /// Path prefixes to print (default: the whole tree).
    #[arg(value_name = "MASK")]
    pub masks: Vec<String>,
    /// Then print each update under the masks until Ctrl-C or SIGTERM.
    #[arg(long)]
    pub follow: bool,
    /// Print the tree as pretty JSON (with --follow: each update as one JSON
    /// object per line).
    #[arg(long)]
    pub json: bool,
}

/// `troupe status set|rm`.
#[derive(Debug, Subcommand)]
pub enum StatusAction {
    /// Merge the JSON VALUE into the tree at PATH, and wait until the server
    /// applied it.
    ///
    /// Objects merge key by key, anything else replaces: `troupe status set
    /// system.foo '{"cpu": 0.3}'` leaves the other keys of system.foo as
    /// they were. Strings are JSON too: '"lab 1"'. PATH is dot-separated
    /// segments of ASCII letters, digits, '_' and '-'.
    ///
    /// Exit status: 0 once applied; 2 on errors (bad path or JSON, a value
    /// over 1 MiB, unreachable server).
    Set {
        /// Where, e.g. system.foo.
        path: String,
        /// A JSON value, e.g. '{"cpu": 0.3}', 12, '"text"'.
        value: String,
    },
    /// Remove the subtree at PATH (and the parents it leaves empty), and wait
    /// until the server applied it. Removing what is not there is no error.
    ///
    /// Exit status: 0 once applied; 2 on errors.
    #[command(visible_alias = "remove")]
    Rm {
        /// Where, e.g. system.foo.
        path: String,
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

/// `describe`.
#[derive(Debug, Args)]
pub struct DescribeArgs {
    /// The object's id.
    pub object: String,
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    /// Longest wait for the object to appear and answer.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
}

/// `call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The object's id.
    pub object: String,
    /// The method's name.
    pub method: String,
    /// The parameters, as JSON.
    #[arg(allow_negative_numbers = true)]
    pub params: Option<String>,
    /// Send a notification: no answer is asked for, nothing is printed.
    #[arg(long)]
    pub notify: bool,
    /// Longest wait for the object to appear and answer.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
}

/// `attr`.
#[derive(Debug, Args)]
pub struct AttrArgs {
    /// The object's id.
    pub object: String,
    /// The attribute's name.
    pub name: String,
    /// The value to write, as JSON (without it, the attribute is read).
    #[arg(allow_negative_numbers = true)]
    pub value: Option<String>,
    /// Longest wait for the object to appear and answer.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
}

/// `devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// Only the services under this prefix (default: every prefix).
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// Where a property is read, written or monitored.
#[derive(Debug, Args)]
pub struct DeviceOptions {
    /// The selector (a cycle, a user...); a service that is not
    /// selector-aware ignores it.
    #[arg(long, value_name = "S")]
    pub selector: Option<String>,
    /// The prefix of the service's keys (default: the realm).
    #[arg(long, value_name = "P")]
    pub prefix: Option<String>,
}

/// `get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The property: DEVICE/PROPERTY.
    #[arg(value_name = "DEVICE/PROPERTY")]
    pub address: String,
    /// Selector and prefix.
    #[command(flatten)]
    pub options: DeviceOptions,
    /// Longest wait for the answer.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
    /// Print the header and the value as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `set`.
#[derive(Debug, Args)]
pub struct SetArgs {
    /// The property: DEVICE/PROPERTY.
    #[arg(value_name = "DEVICE/PROPERTY")]
    pub address: String,
    /// The value, as JSON.
    #[arg(value_name = "JSON", allow_negative_numbers = true)]
    pub value: String,
    /// Selector and prefix.
    #[command(flatten)]
    pub options: DeviceOptions,
    /// Longest wait for the answer.
    #[arg(long, value_name = "D", default_value = "5s", value_parser = duration)]
    pub timeout: Duration,
}

/// `monitor`.
#[derive(Debug, Args)]
pub struct MonitorArgs {
    /// The property: DEVICE/PROPERTY.
    #[arg(value_name = "DEVICE/PROPERTY")]
    pub address: String,
    /// Selector and prefix.
    #[command(flatten)]
    pub options: DeviceOptions,
    /// Print each update as a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// Which log records `logs` and `logdump` take.
#[derive(Debug, Args)]
pub struct LogFilterArgs {
    /// Only records at this level or more severe (trace, debug, info,
    /// warn, error).
    #[arg(long, value_name = "L", value_parser = log_level)]
    pub level: Option<troupe::LogLevel>,
    /// Only records of this application.
    #[arg(long, value_name = "A")]
    pub app: Option<String>,
    /// Only records of this instance id.
    #[arg(long, value_name = "ID")]
    pub instance: Option<u64>,
    /// Only records of this server.
    #[arg(long, value_name = "S")]
    pub server: Option<String>,
}

/// A log level name.
fn log_level(s: &str) -> Result<troupe::LogLevel, String> {
    s.parse()
        .map_err(|e: troupe::log::UnknownLevel| e.to_string())
}

/// `logs`.
#[derive(Debug, Args)]
pub struct LogsArgs {
    /// After the kept records, print the new ones as they come.
    #[arg(short, long)]
    pub follow: bool,
    /// Which records.
    #[command(flatten)]
    pub filter: LogFilterArgs,
    /// Only the latest N of the kept records.
    #[arg(long, value_name = "N")]
    pub last: Option<u64>,
    /// Print each record as a JSON object.
    #[arg(long)]
    pub json: bool,
}

/// `logdump`.
#[derive(Debug, Args)]
pub struct LogdumpArgs {
    /// The directory of the files (created if needed).
    #[arg(long, value_name = "D")]
    pub dir: PathBuf,
    /// Which records.
    #[command(flatten)]
    pub filter: LogFilterArgs,
    /// Rotate the file when it reaches this size: bytes, or with a suffix
    /// KiB or MiB.
    #[arg(long, value_name = "BYTES", default_value = "10MiB", value_parser = bytes)]
    pub max_size: usize,
    /// How many rotated files to keep.
    #[arg(long, value_name = "N", default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..))]
    pub max_files: u32,
    /// Write each record as a JSON object.
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
