//! The server's configuration file: one TOML file, parsed and checked into
//! typed structs.
//!
//! The file holds the server keys at the top and one `[[app]]` table per
//! application; [`EXAMPLE`] documents every key with its default. Every
//! refusal is a [`ConfigError`] naming the file, the line and the key, be it a
//! TOML syntax error, an unknown key, a wrong type or a value that makes no
//! sense (an invalid name, a duplicate application, a duration without unit).
//!
//! ```
//! use std::path::Path;
//! use troupe_server::config::{Config, RestartPolicy};
//!
//! let text = r#"
//! name = "host-1"
//!
//! [[app]]
//! name = "web"
//! executable = "python3"
//! args = ["-m", "http.server"]
//! restart = "on-failure"
//! "#;
//! let config = Config::parse(text, "troupe.toml", Path::new("/etc/troupe")).unwrap();
//! assert_eq!(config.app("web").unwrap().restart, RestartPolicy::OnFailure);
//!
//! let err = Config::parse("[[app]]\nname = \"web\"\nexecutable = 3\n", "t.toml", Path::new("/")).unwrap_err();
//! assert_eq!(err.to_string(), "t.toml:3: app[0].executable: expected a string, found an integer");
//! ```
//!
//! How it works: the text is first deserialized into a tree of values that
//! remembers the byte span of every key and value (see `tree` below), then
//! read key by key, so that each check knows where its key is.

use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use tree::{Entry, Item, Node};
use troupe_protocol::{validate_name, DEFAULT_ENDPOINT, DEFAULT_REALM};

/// The example configuration shipped with troupe; `troupe server` runs on it
/// when given no file. It documents every key with its default.
pub const EXAMPLE: &str = include_str!("../../../examples/troupe.toml");

/// The source name of the [`EXAMPLE`] configuration in errors.
const EMBEDDED: &str = "<embedded>";

const SERVER_KEYS: &[&str] = &[
    "name",
    "listen",
    "connect",
    "realm",
    "max_instances",
    "log_dir",
    "keep_terminated",
    "output_ring",
    "app",
];

const APP_KEYS: &[&str] = &[
    "name",
    "description",
    "executable",
    "args",
    "env",
    "working_dir",
    "multiple",
    "starting_time",
    "stopping_time",
    "stop_signal",
    "restart",
    "restart_delay",
    "restart_max_delay",
    "max_restarts",
    "restart_window",
    "stream",
    "log",
    "stop_command",
    "error_command",
];

const LOG_KEYS: &[&str] = &["max_size", "max_files"];

/// A server configuration, checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it was read from: the file path as given, or `"<embedded>"`.
    pub source: String,
    /// The server name; by default the host name.
    pub name: String,
    /// Zenoh endpoints to listen on, as `"<protocol>/<address>"`.
    pub listen: Vec<String>,
    /// Zenoh endpoints to connect to.
    pub connect: Vec<String>,
    /// The realm, first chunk of every key expression.
    pub realm: String,
    /// The most instances alive at once on this server (`None`: no limit).
    pub max_instances: Option<u32>,
    /// Where application output logs go, if anywhere.
    pub log_dir: Option<PathBuf>,
    /// How many terminated instances are still answered for.
    pub keep_terminated: usize,
    /// How many output lines are kept per instance for late attachers (>= 1).
    pub output_ring: usize,
    /// The applications, in file order.
    pub apps: Vec<AppConfig>,
}

/// One configured application (an `[[app]]` table).
#[derive(Debug, Clone, PartialEq)]
pub struct AppConfig {
    /// The application name, unique on its server.
    pub name: String,
    /// Free text.
    pub description: String,
    /// The program to run (looked up in `PATH` unless it contains a `/`).
    pub executable: String,
    /// The arguments, one element per argument, never split.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// The instances' current directory (absolute if the file's was).
    pub working_dir: Option<PathBuf>,
    /// How many instances may live at once (`None`: no limit).
    pub multiple: Option<u32>,
    /// When an instance counts as running.
    pub starting_time: StartingTime,
    /// How long a stopping instance has before it is killed.
    pub stopping_time: Duration,
    /// The signal that asks an instance to stop (never SIGKILL or SIGSTOP).
    pub stop_signal: Signal,
    /// When an instance is restarted.
    pub restart: RestartPolicy,
    /// The delay before the first restart; it doubles at each restart.
    pub restart_delay: Duration,
    /// The longest delay between restarts (>= `restart_delay`).
    pub restart_max_delay: Duration,
    /// At most this many restarts within `restart_window`.
    pub max_restarts: u32,
    /// The window over which restarts are counted.
    pub restart_window: Duration,
    /// Whether output lines are published.
    pub stream: bool,
    /// Whether, and how, output is written to files under the server's `log_dir`.
    pub log: Option<LogConfig>,
    /// A command run to stop an instance, instead of sending `stop_signal`.
    pub stop_command: Option<CommandLine>,
    /// A command run when an instance ends in error.
    pub error_command: Option<CommandLine>,
}

/// When a started instance counts as running.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StartingTime {
    /// Once it has been alive this long.
    After(Duration),
    /// When the instance itself says it runs.
    Manual,
}

impl StartingTime {
    /// The value as written in a configuration: `"500ms"` or `"manual"`.
    pub fn describe(&self) -> String {
        match self {
            StartingTime::After(d) => humantime::format_duration(*d).to_string(),
            StartingTime::Manual => "manual".to_string(),
        }
    }
}

/// When an instance that ended is started again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RestartPolicy {
    /// Never.
    Never,
    /// When it ended in error (non-zero exit or death by a signal), unless stopped.
    OnFailure,
    /// Whenever it ended, unless stopped.
    Always,
}

impl RestartPolicy {
    /// The policy as written in a configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            RestartPolicy::Never => "never",
            RestartPolicy::OnFailure => "on-failure",
            RestartPolicy::Always => "always",
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How an application's output is written to rotated files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogConfig {
    /// A file is rotated when it reaches this size, in bytes (default 10 MB).
    pub max_size: u64,
    /// How many files are kept, the current one included (default 5, >= 1).
    pub max_files: u32,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            max_size: 10_000_000,
            max_files: 5,
        }
    }
}

/// A command given as a list: the program, then its arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandLine {
    /// The program.
    pub executable: String,
    /// Its arguments.
    pub args: Vec<String>,
}

/// Why a configuration was refused: where, and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", place(.file, *.line, .key))]
pub struct ConfigError {
    /// The file, as given (or `"<embedded>"`).
    pub file: String,
    /// The line (from 1) of the offending key; 0 when there is none.
    pub line: usize,
    /// The path of the offending key, such as `app[2].starting_time`; empty when there is none.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

/// `file:line: key: `, leaving out a line 0 and an empty key.
fn place(file: &str, line: usize, key: &str) -> String {
    let mut s = file.to_string();
    if line > 0 {
        s.push_str(&format!(":{line}"));
    }
    s.push_str(": ");
    if !key.is_empty() {
        s.push_str(key);
        s.push_str(": ");
    }
    s
}

impl ConfigError {
    fn new(file: &str, line: usize, key: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line,
            key: key.to_string(),
            message: message.into(),
        }
    }
}

type Result<T, E = ConfigError> = std::result::Result<T, E>;

impl Config {
    /// Reads and checks the configuration file at `path`. Relative paths in it
    /// are relative to the file's directory.
    ///
    /// # Errors
    /// A [`ConfigError`] if the file cannot be read (line 0) or is refused.
    pub fn load(path: &Path) -> Result<Config> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::new(&source, 0, "", format!("cannot read the file: {e}")))?;
        let dir = match path.parent() {
            Some(dir) if !dir.as_os_str().is_empty() => {
                std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
            }
            _ => current_dir(),
        };
        Self::parse(&text, &source, &dir)
    }

    /// Checks the configuration `text`, read from `source` (used in errors);
    /// relative paths in it are joined to `base_dir`.
    ///
    /// # Errors
    /// A [`ConfigError`] naming the line and key at fault.
    pub fn parse(text: &str, source: &str, base_dir: &Path) -> Result<Config> {
        parse(text, source, base_dir, host_name)
    }

    /// The [`EXAMPLE`] configuration, relative paths being relative to the
    /// current directory. If the host name is not a valid server name, the
    /// server is named after a cleaned-up version of it.
    ///
    /// # Panics
    /// If the shipped example is broken, which a unit test rules out.
    pub fn embedded() -> Config {
        let default_name = || host_name().or_else(|_| Ok(clean_name(&raw_host_name())));
        match parse(EXAMPLE, EMBEDDED, &current_dir(), default_name) {
            Ok(config) => config,
            Err(e) => panic!("the embedded example configuration is broken: {e}"),
        }
    }

    /// The application named `name`, if configured.
    pub fn app(&self, name: &str) -> Option<&AppConfig> {
        self.apps.iter().find(|a| a.name == name)
    }
}

fn current_dir() -> PathBuf {
    std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."))
}

fn raw_host_name() -> String {
    gethostname::gethostname().to_string_lossy().into_owned()
}

/// The host name, if it is a valid server name: the default `name`.
fn host_name() -> Result<String, String> {
    let host = raw_host_name();
    match validate_name("server", &host) {
        Ok(()) => Ok(host),
        Err(e) => Err(format!(
            "the host name cannot be the server name ({e}): set `name` at the top of the file"
        )),
    }
}

/// A valid name made of `raw`: invalid bytes become `-`, a leading `.` or `-`
/// and repeated dots go, the rest is cut at 64 bytes.
fn clean_name(raw: &str) -> String {
    let mut name = String::new();
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.') {
            c
        } else {
            '-'
        };
        if (name.is_empty() && matches!(c, '.' | '-')) || (c == '.' && name.ends_with('.')) {
            continue;
        }
        name.push(c);
    }
    name.truncate(troupe_protocol::names::MAX_NAME_LEN);
    if validate_name("server", &name).is_ok() {
        name
    } else {
        "troupe".to_string()
    }
}

fn parse(
    text: &str,
    source: &str,
    base_dir: &Path,
    default_name: impl FnOnce() -> Result<String, String>,
) -> Result<Config> {
    let root: Node = toml::from_str(text).map_err(|e| syntax_error(source, text, &e))?;
    let root = Value {
        loc: Loc {
            file: source,
            text,
            path: String::new(),
            line: 1,
        },
        node: root,
    };
    let mut top = root.table()?;
    top.check_keys(SERVER_KEYS)?;

    let name = match top.take("name") {
        Some(v) => v.name("server")?,
        None => default_name().map_err(|m| ConfigError::new(source, 0, "name", m))?,
    };
    let listen_loc = top.peek_loc("listen");
    let listen = match top.take("listen") {
        Some(v) => v.endpoints()?,
        None => vec![DEFAULT_ENDPOINT.to_string()],
    };
    let connect = opt(top.take("connect"), Value::endpoints)?.unwrap_or_default();
    if let (Some(loc), true, true) = (listen_loc, listen.is_empty(), connect.is_empty()) {
        return Err(loc.err(
            "no endpoint to listen on and none to connect to: the server would be unreachable",
        ));
    }
    let realm = match top.take("realm") {
        Some(v) => v.name("realm")?,
        None => DEFAULT_REALM.to_string(),
    };
    let max_instances = opt(top.take("max_instances"), Value::count_or_unlimited)?.flatten();
    let log_dir = opt(top.take("log_dir"), |v| v.path(base_dir))?;
    let keep_terminated = opt(top.take("keep_terminated"), |v| v.usize_at_least(0))?.unwrap_or(100);
    let output_ring = opt(top.take("output_ring"), |v| v.usize_at_least(1))?.unwrap_or(1000);

    let mut apps: Vec<AppConfig> = Vec::new();
    let mut first_line: HashMap<String, usize> = HashMap::new();
    if let Some(v) = top.take("app") {
        if let Node::Table(_) = v.node {
            return Err(v.loc.err("expected an array of tables: write [[app]], with double brackets, above each application"));
        }
        for v in v.array()? {
            let mut t = v.table()?;
            let name_line = t.peek_loc("name").map_or(t.loc.line, |l| l.line);
            let app = app(&mut t, base_dir, log_dir.is_some())?;
            if let Some(first) = first_line.get(&app.name) {
                return Err(ConfigError::new(
                    source,
                    name_line,
                    &format!("{}.name", t.loc.path),
                    format!(
                        "duplicate application name {:?} (first defined at line {first})",
                        app.name
                    ),
                ));
            }
            first_line.insert(app.name.clone(), name_line);
            apps.push(app);
        }
    }

    Ok(Config {
        source: source.to_string(),
        name,
        listen,
        connect,
        realm,
        max_instances,
        log_dir,
        keep_terminated,
        output_ring,
        apps,
    })
}

/// Reads one `[[app]]` table.
fn app(t: &mut Table<'_>, base_dir: &Path, has_log_dir: bool) -> Result<AppConfig> {
    t.check_keys(APP_KEYS)?;
    let name = t.required("name")?.name("app")?;
    let description = opt(t.take("description"), Value::string)?.unwrap_or_default();
    let executable = t.required("executable")?.word()?;
    let args = opt(t.take("args"), Value::words)?.unwrap_or_default();
    let env = opt(t.take("env"), Value::env)?.unwrap_or_default();
    let working_dir = opt(t.take("working_dir"), |v| v.path(base_dir))?;
    let multiple = opt(t.take("multiple"), Value::count_or_unlimited)?.unwrap_or(Some(1));
    let starting_time = opt(t.take("starting_time"), Value::starting_time)?
        .unwrap_or(StartingTime::After(Duration::ZERO));
    let stopping_time =
        opt(t.take("stopping_time"), Value::duration)?.unwrap_or(Duration::from_secs(10));
    let stop_signal = opt(t.take("stop_signal"), Value::signal)?.unwrap_or(Signal::SIGTERM);
    let restart = opt(t.take("restart"), Value::restart)?.unwrap_or(RestartPolicy::Never);
    let delay_loc = t.peek_loc("restart_delay");
    let restart_delay =
        opt(t.take("restart_delay"), Value::duration)?.unwrap_or(Duration::from_secs(1));
    let max_delay_loc = t.peek_loc("restart_max_delay");
    let restart_max_delay =
        opt(t.take("restart_max_delay"), Value::duration)?.unwrap_or(Duration::from_secs(30));
    if restart_max_delay < restart_delay {
        // Only a configured restart_delay can exceed the default restart_max_delay.
        let hint = if max_delay_loc.is_none() {
            "; set restart_max_delay too"
        } else {
            ""
        };
        let loc = max_delay_loc.or(delay_loc).unwrap_or_else(|| t.loc.clone());
        return Err(loc.err(format!(
            "restart_max_delay ({}) is shorter than restart_delay ({}){hint}",
            humantime::format_duration(restart_max_delay),
            humantime::format_duration(restart_delay),
        )));
    }
    let max_restarts = opt(t.take("max_restarts"), |v| v.u32_at_least(0))?.unwrap_or(5);
    let restart_window = match t.take("restart_window") {
        Some(v) => {
            let loc = v.loc.clone();
            let window = v.duration()?;
            if window.is_zero() {
                return Err(loc.err("must be longer than 0s"));
            }
            window
        }
        None => Duration::from_secs(60),
    };
    let stream = opt(t.take("stream"), Value::boolean)?.unwrap_or(true);
    let log = match t.take("log") {
        Some(v) => {
            let loc = v.loc.clone();
            let log = v.log()?;
            if log.is_some() && !has_log_dir {
                return Err(loc.err("logging to files needs the server's `log_dir`: set it at the top of the file, or remove this key"));
            }
            log
        }
        None => None,
    };
    let stop_command = opt(t.take("stop_command"), Value::command)?;
    let error_command = opt(t.take("error_command"), Value::command)?;
    Ok(AppConfig {
        name,
        description,
        executable,
        args,
        env,
        working_dir,
        multiple,
        starting_time,
        stopping_time,
        stop_signal,
        restart,
        restart_delay,
        restart_max_delay,
        max_restarts,
        restart_window,
        stream,
        log,
        stop_command,
        error_command,
    })
}

fn opt<'a, T>(v: Option<Value<'a>>, f: impl FnOnce(Value<'a>) -> Result<T>) -> Result<Option<T>> {
    v.map(f).transpose()
}

/// A TOML syntax error (or a value the tree cannot hold), on one line.
fn syntax_error(file: &str, text: &str, e: &toml::de::Error) -> ConfigError {
    let line = e.span().map_or(0, |s| line_of(text, s.start));
    let message = e
        .message()
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ");
    let key = text
        .lines()
        .nth(line.wrapping_sub(1))
        .and_then(|l| l.split_once('='))
        .map(|(k, _)| k.trim())
        .filter(|k| {
            !k.is_empty()
                && k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        })
        .unwrap_or("");
    ConfigError::new(file, line, key, format!("invalid TOML: {message}"))
}

/// The line (from 1) of the byte at `offset`.
fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

/// A key path segment, quoted unless it is a bare TOML key.
fn segment(key: &str) -> String {
    if !key.is_empty()
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-'))
    {
        key.to_string()
    } else {
        format!("{key:?}")
    }
}

/// Where a value is: the file, its text, the key path and the line.
#[derive(Clone)]
struct Loc<'a> {
    file: &'a str,
    text: &'a str,
    path: String,
    line: usize,
}

impl<'a> Loc<'a> {
    fn err(&self, message: impl Into<String>) -> ConfigError {
        ConfigError::new(self.file, self.line, &self.path, message)
    }

    fn line(&self, span: &tree::Span) -> usize {
        span.as_ref()
            .map_or(self.line, |s| line_of(self.text, s.start))
    }

    fn key(&self, entry: &Entry) -> Loc<'a> {
        let key = segment(&entry.key);
        Loc {
            file: self.file,
            text: self.text,
            path: if self.path.is_empty() {
                key
            } else {
                format!("{}.{key}", self.path)
            },
            line: self.line(if entry.key_span.is_some() {
                &entry.key_span
            } else {
                &entry.value.span
            }),
        }
    }

    fn index(&self, i: usize, item: &Item) -> Loc<'a> {
        Loc {
            file: self.file,
            text: self.text,
            path: format!("{}[{i}]", self.path),
            line: self.line(&item.span),
        }
    }
}

/// A value and where it is.
struct Value<'a> {
    loc: Loc<'a>,
    node: Node,
}

/// A table whose keys are taken one by one.
struct Table<'a> {
    loc: Loc<'a>,
    entries: Vec<Entry>,
}

impl<'a> Table<'a> {
    /// Refuses the first key (in file order) that is not in `known`.
    fn check_keys(&self, known: &[&str]) -> Result<()> {
        let Some(entry) = self
            .entries
            .iter()
            .find(|e| !known.contains(&e.key.as_str()))
        else {
            return Ok(());
        };
        let loc = self.loc.key(entry);
        let mut message = "unknown key".to_string();
        let close = known
            .iter()
            .map(|k| (edit_distance(k, &entry.key), k))
            .filter(|&(d, _)| d <= (entry.key.len() / 3).max(1))
            .min();
        if let Some((_, close)) = close {
            message.push_str(&format!(", did you mean `{close}`?"));
        } else if known == SERVER_KEYS && APP_KEYS.contains(&entry.key.as_str()) {
            message.push_str(": application keys go in an [[app]] table");
        } else if known == APP_KEYS && SERVER_KEYS.contains(&entry.key.as_str()) {
            message.push_str(": server keys must come before the first [[app]] table");
        } else {
            message.push_str(&format!("; expected one of: {}", known.join(", ")));
        }
        Err(loc.err(message))
    }

    fn peek_loc(&self, key: &str) -> Option<Loc<'a>> {
        self.entries
            .iter()
            .find(|e| e.key == key)
            .map(|e| self.loc.key(e))
    }

    fn take(&mut self, key: &str) -> Option<Value<'a>> {
        let i = self.entries.iter().position(|e| e.key == key)?;
        let entry = self.entries.remove(i);
        Some(Value {
            loc: self.loc.key(&entry),
            node: entry.value.node,
        })
    }

    fn required(&mut self, key: &str) -> Result<Value<'a>> {
        self.take(key).ok_or_else(|| {
            let path = format!("{}.{key}", self.loc.path);
            ConfigError::new(
                self.loc.file,
                self.loc.line,
                &path,
                format!("missing required key `{key}`"),
            )
        })
    }
}

impl<'a> Value<'a> {
    fn type_error(&self, expected: &str) -> ConfigError {
        self.loc
            .err(format!("expected {expected}, found {}", self.node.kind()))
    }

    fn table(self) -> Result<Table<'a>> {
        match self.node {
            Node::Table(entries) => Ok(Table {
                loc: self.loc,
                entries,
            }),
            _ => Err(self.type_error("a table")),
        }
    }

    fn array(self) -> Result<Vec<Value<'a>>> {
        match self.node {
            Node::Array(items) => Ok(items
                .into_iter()
                .enumerate()
                .map(|(i, item)| Value {
                    loc: self.loc.index(i, &item),
                    node: item.node,
                })
                .collect()),
            _ => Err(self.type_error("an array")),
        }
    }

    fn string(self) -> Result<String> {
        match self.node {
            Node::String(s) => Ok(s),
            _ => Err(self.type_error("a string")),
        }
    }

    fn boolean(self) -> Result<bool> {
        match self.node {
            Node::Boolean(b) => Ok(b),
            _ => Err(self.type_error("true or false")),
        }
    }

    fn integer(self, min: i64, max: i64) -> Result<i64> {
        match self.node {
            Node::Integer(n) if n < min => Err(self.loc.err(format!("must be at least {min}"))),
            Node::Integer(n) if n > max => Err(self.loc.err(format!("must be at most {max}"))),
            Node::Integer(n) => Ok(n),
            _ => Err(self.type_error("an integer")),
        }
    }

    fn u32_at_least(self, min: u32) -> Result<u32> {
        // The range is checked: the cast cannot truncate.
        self.integer(min.into(), u32::MAX.into()).map(|n| n as u32)
    }

    fn usize_at_least(self, min: u32) -> Result<usize> {
        let max = i64::try_from(usize::MAX).unwrap_or(i64::MAX);
        self.integer(min.into(), max).map(|n| n as usize)
    }

    /// A valid name for a `kind` of thing.
    fn name(self, kind: &str) -> Result<String> {
        let loc = self.loc.clone();
        let name = self.string()?;
        validate_name(kind, &name).map_err(|e| loc.err(e.to_string()))?;
        Ok(name)
    }

    /// A string that can be a program or an argument: no NUL byte.
    fn arg(self) -> Result<String> {
        let loc = self.loc.clone();
        let s = self.string()?;
        if s.contains('\0') {
            return Err(loc.err("must not contain a NUL character"));
        }
        Ok(s)
    }

    /// A program name: not empty, no NUL byte.
    fn word(self) -> Result<String> {
        let loc = self.loc.clone();
        let s = self.arg()?;
        if s.is_empty() {
            return Err(loc.err("must not be empty"));
        }
        Ok(s)
    }

    fn words(self) -> Result<Vec<String>> {
        if !matches!(self.node, Node::Array(_)) {
            return Err(self.type_error("an array of strings, one per argument"));
        }
        self.array()?.into_iter().map(Value::arg).collect()
    }

    fn command(self) -> Result<CommandLine> {
        let loc = self.loc.clone();
        let mut words = self.words()?.into_iter();
        let Some(executable) = words.next() else {
            return Err(loc.err("must not be empty: write [\"program\", \"argument\", ...]"));
        };
        if executable.is_empty() {
            return Err(loc.err("the program (first element) must not be empty"));
        }
        Ok(CommandLine {
            executable,
            args: words.collect(),
        })
    }

    fn endpoints(self) -> Result<Vec<String>> {
        if !matches!(self.node, Node::Array(_)) {
            return Err(self.type_error(&format!(
                "an array of endpoints, such as [\"{DEFAULT_ENDPOINT}\"]"
            )));
        }
        let mut endpoints = Vec::new();
        for v in self.array()? {
            let loc = v.loc.clone();
            let s = v.string()?;
            let valid = s.split_once('/').is_some_and(|(proto, address)| {
                !proto.is_empty()
                    && proto.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                    && !address.is_empty()
            });
            if !valid {
                return Err(loc.err(format!(
                    "invalid endpoint {s:?}: expected \"<protocol>/<address>\", such as \"{DEFAULT_ENDPOINT}\""
                )));
            }
            endpoints.push(s);
        }
        Ok(endpoints)
    }

    fn env(self) -> Result<BTreeMap<String, String>> {
        if !matches!(self.node, Node::Table(_)) {
            return Err(self.type_error("a table, such as { NAME = \"value\" }"));
        }
        let mut t = self.table()?;
        let mut env = BTreeMap::new();
        for entry in std::mem::take(&mut t.entries) {
            let loc = t.loc.key(&entry);
            let key = entry.key;
            if key.is_empty() || key.contains(['=', '\0']) {
                return Err(loc
                    .err("an environment variable name must not be empty nor contain '=' or NUL"));
            }
            let value = Value {
                loc,
                node: entry.value.node,
            }
            .arg()?;
            env.insert(key, value);
        }
        Ok(env)
    }

    fn path(self, base_dir: &Path) -> Result<PathBuf> {
        let loc = self.loc.clone();
        let s = self.arg()?;
        if s.is_empty() {
            return Err(loc.err("must not be empty"));
        }
        Ok(base_dir.join(s))
    }

    /// A count of at least 1, or `"unlimited"` (`None`).
    fn count_or_unlimited(self) -> Result<Option<u32>> {
        match &self.node {
            Node::String(s) if s == "unlimited" => Ok(None),
            Node::Integer(0) => Err(self
                .loc
                .err("must be at least 1 (write \"unlimited\" for no limit)")),
            Node::Integer(_) => self.u32_at_least(1).map(Some),
            _ => Err(self.type_error("a number or \"unlimited\"")),
        }
    }

    fn duration(self) -> Result<Duration> {
        match &self.node {
            Node::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                self.loc.err(format!(
                    "invalid duration {s:?} ({e}): write e.g. \"500ms\", \"10s\" or \"1m 30s\""
                ))
            }),
            Node::Integer(n) => Err(self.loc.err(format!(
                "a duration needs a unit: write e.g. \"{n}s\" or \"{n}ms\", in quotes"
            ))),
            Node::Float(x) => Err(self.loc.err(format!(
                "a duration needs a unit: write e.g. \"{x}s\", in quotes"
            ))),
            _ => Err(self.type_error("a duration such as \"10s\"")),
        }
    }

    fn starting_time(self) -> Result<StartingTime> {
        match &self.node {
            Node::String(s) if s == "manual" => Ok(StartingTime::Manual),
            Node::String(_) | Node::Integer(_) | Node::Float(_) => {
                self.duration().map(StartingTime::After)
            }
            _ => Err(self.type_error("a duration such as \"500ms\" or \"manual\"")),
        }
    }

    fn restart(self) -> Result<RestartPolicy> {
        let loc = self.loc.clone();
        match self.string()?.as_str() {
            "never" => Ok(RestartPolicy::Never),
            "on-failure" => Ok(RestartPolicy::OnFailure),
            "always" => Ok(RestartPolicy::Always),
            other => Err(loc.err(format!(
                "unknown restart policy {other:?}: expected \"never\", \"on-failure\" or \"always\""
            ))),
        }
    }

    fn signal(self) -> Result<Signal> {
        let signal = match &self.node {
            Node::String(s) => {
                let upper = s.trim().to_ascii_uppercase();
                let full = if upper.starts_with("SIG") {
                    upper
                } else {
                    format!("SIG{upper}")
                };
                Signal::from_str(&full).map_err(|_| {
                    self.loc.err(format!(
                        "unknown signal {s:?}: write e.g. \"TERM\", \"INT\" or \"HUP\""
                    ))
                })?
            }
            Node::Integer(n) => i32::try_from(*n)
                .ok()
                .and_then(|n| Signal::try_from(n).ok())
                .ok_or_else(|| self.loc.err(format!("{n} is not a signal number")))?,
            _ => return Err(self.type_error("a signal name such as \"TERM\", or its number")),
        };
        match signal {
            Signal::SIGKILL => Err(self.loc.err(
                "SIGKILL cannot be the stop signal: the server sends it anyway once stopping_time is over",
            )),
            Signal::SIGSTOP => Err(self.loc.err("SIGSTOP cannot be the stop signal: it suspends the process")),
            signal => Ok(signal),
        }
    }

    /// `true`, `false` or `{ max_size = .., max_files = .. }`.
    fn log(self) -> Result<Option<LogConfig>> {
        match self.node {
            Node::Boolean(true) => Ok(Some(LogConfig::default())),
            Node::Boolean(false) => Ok(None),
            Node::Table(_) => {
                let mut t = self.table()?;
                t.check_keys(LOG_KEYS)?;
                let mut log = LogConfig::default();
                if let Some(v) = t.take("max_size") {
                    log.max_size = v.size()?;
                }
                if let Some(v) = t.take("max_files") {
                    log.max_files = v.u32_at_least(1)?;
                }
                Ok(Some(log))
            }
            _ => Err(self.type_error(
                "true, false or a table such as { max_size = \"10MB\", max_files = 5 }",
            )),
        }
    }

    /// A size in bytes, more than 0: `"10MB"`, `"512KiB"` or an integer.
    fn size(self) -> Result<u64> {
        let size = match &self.node {
            Node::String(s) => s
                .trim()
                .parse::<bytesize::ByteSize>()
                .map(|b| b.as_u64())
                .map_err(|_| {
                    self.loc.err(format!(
                        "invalid size {s:?}: write e.g. \"10MB\", \"512KiB\" or a number of bytes"
                    ))
                })?,
            Node::Integer(n) => {
                u64::try_from(*n).map_err(|_| self.loc.err("must be at least 1 byte"))?
            }
            _ => return Err(self.type_error("a size such as \"10MB\"")),
        };
        if size == 0 {
            return Err(self.loc.err("must be at least 1 byte"));
        }
        Ok(size)
    }
}

/// The Levenshtein distance between two short strings.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let next = (row[j + 1] + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = row[j + 1];
            row[j + 1] = next;
        }
    }
    row[b.len()]
}

/// A TOML document as a tree that keeps the byte span of every key and value.
///
/// `toml::Spanned<T>` cannot be used for every value: the tables that TOML
/// creates implicitly (`a` in `a.b = 1` or in `[a.b]`) have no span, and
/// `Spanned` fails on them. So this module speaks the protocol by which toml
/// hands spans to `Spanned` (a struct with private names, below) and accepts a
/// plain value where no span comes. Should toml change that protocol, values
/// simply come without spans and errors point at the enclosing table.
mod tree {
    use serde::de::{self, Deserialize, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
    use std::fmt;
    use std::ops::Range;

    const SPANNED: &str = "$__serde_spanned_private_Spanned";
    const START: &str = "$__serde_spanned_private_start";
    const END: &str = "$__serde_spanned_private_end";
    const VALUE: &str = "$__serde_spanned_private_value";
    const FIELDS: &[&str] = &[START, END, VALUE];
    /// The key under which toml hands a date-time as a one-entry map.
    const DATETIME: &str = "$__toml_private_datetime";

    /// A byte range in the text, when known.
    pub(super) type Span = Option<Range<usize>>;

    /// A value and its span.
    #[derive(Debug)]
    pub(super) struct Item {
        pub(super) span: Span,
        pub(super) node: Node,
    }

    /// A TOML value whose children carry their spans.
    #[derive(Debug)]
    pub(super) enum Node {
        String(String),
        Integer(i64),
        Float(f64),
        Boolean(bool),
        Datetime,
        Array(Vec<Item>),
        Table(Vec<Entry>),
    }

    impl Node {
        /// The kind of value, for messages: "a string", "an integer", ...
        pub(super) fn kind(&self) -> &'static str {
            match self {
                Node::String(_) => "a string",
                Node::Integer(_) => "an integer",
                Node::Float(_) => "a float",
                Node::Boolean(_) => "a boolean",
                Node::Datetime => "a date-time",
                Node::Array(_) => "an array",
                Node::Table(_) => "a table",
            }
        }
    }

    /// A key, its span and its value, in file order.
    #[derive(Debug)]
    pub(super) struct Entry {
        pub(super) key: String,
        pub(super) key_span: Span,
        pub(super) value: Item,
    }

    struct Key {
        name: String,
        span: Span,
    }

    impl<'de> Deserialize<'de> for Node {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_any(NodeVisitor)
        }
    }

    impl<'de> Deserialize<'de> for Item {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_struct(SPANNED, FIELDS, ItemVisitor)
        }
    }

    impl<'de> Deserialize<'de> for Key {
        fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
            d.deserialize_struct(SPANNED, FIELDS, KeyVisitor)
        }
    }

    /// Reads the span protocol's `end` and `value` once its `start` key is read.
    fn spanned<'de, T: Deserialize<'de>, A: MapAccess<'de>>(
        mut map: A,
    ) -> Result<(Range<usize>, T), A::Error> {
        let start: usize = map.next_value()?;
        if map.next_key::<String>()?.as_deref() != Some(END) {
            return Err(de::Error::custom("malformed spanned value"));
        }
        let end: usize = map.next_value()?;
        if map.next_key::<String>()?.as_deref() != Some(VALUE) {
            return Err(de::Error::custom("malformed spanned value"));
        }
        Ok((start..end, map.next_value()?))
    }

    /// Reads the entries of a table, `first` being its first key if already read.
    fn table<'de, A: MapAccess<'de>>(first: Option<Key>, mut map: A) -> Result<Node, A::Error> {
        let mut entries = Vec::new();
        let mut pending = first;
        loop {
            let key = match pending.take() {
                Some(key) => key,
                None => match map.next_key::<Key>()? {
                    Some(key) => key,
                    None => break,
                },
            };
            if key.name == DATETIME && entries.is_empty() {
                map.next_value::<IgnoredAny>()?;
                return Ok(Node::Datetime);
            }
            let value: Item = map.next_value()?;
            entries.push(Entry {
                key: key.name,
                key_span: key.span,
                value,
            });
        }
        Ok(Node::Table(entries))
    }

    struct NodeVisitor;

    impl<'de> Visitor<'de> for NodeVisitor {
        type Value = Node;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a TOML value")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Node, E> {
            Ok(Node::Boolean(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Node, E> {
            Ok(Node::Integer(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Node, E> {
            i64::try_from(v)
                .map(Node::Integer)
                .map_err(|_| E::custom("integer out of range"))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Node, E> {
            Ok(Node::Float(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Node, E> {
            Ok(Node::String(v.to_owned()))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Node, E> {
            Ok(Node::String(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Node, A::Error> {
            let mut items = Vec::new();
            while let Some(item) = seq.next_element()? {
                items.push(item);
            }
            Ok(Node::Array(items))
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Node, A::Error> {
            table(None, map)
        }
    }

    /// A value in the span protocol, or a plain one (an implicit table).
    struct ItemVisitor;

    impl ItemVisitor {
        fn plain<E>(node: Result<Node, E>) -> Result<Item, E> {
            node.map(|node| Item { span: None, node })
        }
    }

    impl<'de> Visitor<'de> for ItemVisitor {
        type Value = Item;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a TOML value")
        }
        fn visit_bool<E: de::Error>(self, v: bool) -> Result<Item, E> {
            Self::plain(NodeVisitor.visit_bool(v))
        }
        fn visit_i64<E: de::Error>(self, v: i64) -> Result<Item, E> {
            Self::plain(NodeVisitor.visit_i64(v))
        }
        fn visit_u64<E: de::Error>(self, v: u64) -> Result<Item, E> {
            Self::plain(NodeVisitor.visit_u64(v))
        }
        fn visit_f64<E: de::Error>(self, v: f64) -> Result<Item, E> {
            Self::plain(NodeVisitor.visit_f64(v))
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Item, E> {
            Self::plain(NodeVisitor.visit_str(v))
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Item, E> {
            Self::plain(NodeVisitor.visit_string(v))
        }
        fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<Item, A::Error> {
            Self::plain(NodeVisitor.visit_seq(seq))
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Item, A::Error> {
            match map.next_key::<Key>()? {
                Some(key) if key.name == START => {
                    let (span, node) = spanned(map)?;
                    Ok(Item {
                        span: Some(span),
                        node,
                    })
                }
                first => Self::plain(table(first, map)),
            }
        }
    }

    /// A key in the span protocol, or a plain one.
    struct KeyVisitor;

    impl<'de> Visitor<'de> for KeyVisitor {
        type Value = Key;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a key")
        }
        fn visit_str<E: de::Error>(self, v: &str) -> Result<Key, E> {
            Ok(Key {
                name: v.to_owned(),
                span: None,
            })
        }
        fn visit_string<E: de::Error>(self, v: String) -> Result<Key, E> {
            Ok(Key {
                name: v,
                span: None,
            })
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Key, A::Error> {
            if map.next_key::<String>()?.as_deref() != Some(START) {
                return Err(de::Error::custom("malformed spanned key"));
            }
            let (span, name) = spanned(map)?;
            Ok(Key {
                name,
                span: Some(span),
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BASE: &str = "/base";

    fn parse(text: &str) -> Config {
        match Config::parse(text, "t.toml", Path::new(BASE)) {
            Ok(c) => c,
            Err(e) => panic!("refused: {e}"),
        }
    }

    /// Parses `text`, expects a refusal at `line` for `key`, returns the message.
    fn refused(text: &str, line: usize, key: &str) -> String {
        let e = Config::parse(text, "t.toml", Path::new(BASE)).expect_err("accepted");
        assert_eq!((e.line, e.key.as_str()), (line, key), "{e}");
        assert_eq!(e.file, "t.toml");
        assert!(!e.to_string().contains('\n'), "{e}");
        e.message
    }

    /// An app table with `extra` lines, after `name = "test"`.
    fn app(extra: &str) -> String {
        format!("name = \"test\"\n\n[[app]]\nname = \"a\"\nexecutable = \"true\"\n{extra}\n")
    }

    #[test]
    fn the_embedded_example_parses() {
        let c = Config::parse(EXAMPLE, EMBEDDED, Path::new(BASE)).unwrap();
        let names: Vec<&str> = c.apps.iter().map(|a| a.name.as_str()).collect();
        assert_eq!(
            names,
            ["hello", "ticker", "sleeper", "failing", "cat", "env"]
        );
        assert_eq!(c.listen, [DEFAULT_ENDPOINT]);
        assert_eq!(c.log_dir, None);
        let ticker = c.app("ticker").unwrap();
        assert_eq!(
            (ticker.multiple, ticker.stopping_time),
            (None, Duration::from_secs(2))
        );
        let failing = c.app("failing").unwrap();
        assert_eq!(failing.restart, RestartPolicy::OnFailure);
        assert_eq!(failing.restart_delay, Duration::from_millis(500));
        assert_eq!(
            (failing.max_restarts, failing.restart_window),
            (2, Duration::from_secs(30))
        );
        assert_eq!(c.app("sleeper").unwrap().starting_time.describe(), "1s");
        assert_eq!(c.app("hello").unwrap().args.len(), 3);
        assert!(c
            .apps
            .iter()
            .all(|a| a.log.is_none() && !a.executable.contains('/')));
        let embedded = Config::embedded();
        assert_eq!(
            (embedded.source.as_str(), embedded.apps.len()),
            (EMBEDDED, 6)
        );
    }

    #[test]
    fn defaults() {
        let c = parse(&app(""));
        assert_eq!(c.name, "test");
        assert_eq!(c.listen, [DEFAULT_ENDPOINT]);
        assert!(c.connect.is_empty());
        assert_eq!(c.realm, DEFAULT_REALM);
        assert_eq!((c.max_instances, c.log_dir.clone()), (None, None));
        assert_eq!((c.keep_terminated, c.output_ring), (100, 1000));
        let a = &c.apps[0];
        let expected = AppConfig {
            name: "a".into(),
            description: String::new(),
            executable: "true".into(),
            args: vec![],
            env: BTreeMap::new(),
            working_dir: None,
            multiple: Some(1),
            starting_time: StartingTime::After(Duration::ZERO),
            stopping_time: Duration::from_secs(10),
            stop_signal: Signal::SIGTERM,
            restart: RestartPolicy::Never,
            restart_delay: Duration::from_secs(1),
            restart_max_delay: Duration::from_secs(30),
            max_restarts: 5,
            restart_window: Duration::from_secs(60),
            stream: true,
            log: None,
            stop_command: None,
            error_command: None,
        };
        assert_eq!(a, &expected);
        assert_eq!(a.starting_time.describe(), "0s");
        assert_eq!(c.app("a"), Some(a));
        assert_eq!(c.app("b"), None);
        assert!(parse("name = \"x\"").apps.is_empty());
    }

    #[test]
    fn the_name_defaults_to_the_host_name() {
        match (Config::parse("", "t.toml", Path::new(BASE)), host_name()) {
            (Ok(c), Ok(host)) => assert_eq!(c.name, host),
            (Err(e), Err(_)) => assert!(e.message.contains("set `name`") && e.key == "name", "{e}"),
            (r, h) => panic!("{r:?} {h:?}"),
        }
        let e = super::parse("", "t.toml", Path::new(BASE), || {
            host_name_error("bad host")
        })
        .unwrap_err();
        assert_eq!(e.to_string(), "t.toml: name: bad host");
    }

    fn host_name_error(m: &str) -> Result<String, String> {
        Err(m.to_string())
    }

    #[test]
    fn clean_names_are_valid() {
        assert_eq!(clean_name("my host.local"), "my-host.local");
        assert_eq!(clean_name("-..a..b"), "a.b");
        assert_eq!(clean_name("ééé"), "troupe");
        assert_eq!(clean_name(&"x".repeat(100)).len(), 64);
    }

    #[test]
    fn server_keys() {
        let c = parse(
            "name = \"s1\"\nlisten = [\"tcp/0.0.0.0:7447\", \"unixsock-stream//tmp/t.sock\"]\n\
             connect = [\"tcp/10.0.0.1:7447\"]\nrealm = \"lab\"\nmax_instances = 8\n\
             log_dir = \"logs\"\nkeep_terminated = 0\noutput_ring = 1\n",
        );
        assert_eq!(
            c.listen,
            ["tcp/0.0.0.0:7447", "unixsock-stream//tmp/t.sock"]
        );
        assert_eq!(c.connect, ["tcp/10.0.0.1:7447"]);
        assert_eq!((c.realm.as_str(), c.max_instances), ("lab", Some(8)));
        assert_eq!(c.log_dir, Some(PathBuf::from("/base/logs")));
        assert_eq!((c.keep_terminated, c.output_ring), (0, 1));
        assert_eq!(
            parse("name = \"s\"\nmax_instances = \"unlimited\"").max_instances,
            None
        );
        assert_eq!(
            parse("name = \"s\"\nlog_dir = \"/var/log/t\"").log_dir,
            Some(PathBuf::from("/var/log/t"))
        );
    }

    #[test]
    fn app_keys() {
        let c = parse(&app(
            "description = \"d\"\nargs = [\"a b\", \"\", \"c\"]\nenv = { X = \"1\", \"A.B\" = \"two words\" }\n\
             working_dir = \"run\"\nmultiple = 3\nstarting_time = \"manual\"\nstopping_time = \"1m 30s\"\n\
             stop_signal = \"int\"\nrestart = \"always\"\nrestart_delay = \"2s\"\nrestart_max_delay = \"2s\"\n\
             max_restarts = 0\nrestart_window = \"5m\"\nstream = false\n\
             stop_command = [\"kill-it\", \"--now\"]\nerror_command = [\"report\"]\n",
        ));
        let a = &c.apps[0];
        assert_eq!(a.args, ["a b", "", "c"]);
        assert_eq!(a.env.get("A.B").map(String::as_str), Some("two words"));
        assert_eq!(a.working_dir, Some(PathBuf::from("/base/run")));
        assert_eq!(
            (a.multiple, a.starting_time),
            (Some(3), StartingTime::Manual)
        );
        assert_eq!(a.starting_time.describe(), "manual");
        assert_eq!(a.stopping_time, Duration::from_secs(90));
        assert_eq!(
            (a.stop_signal, a.restart),
            (Signal::SIGINT, RestartPolicy::Always)
        );
        assert_eq!(a.restart.to_string(), "always");
        assert_eq!(
            (a.restart_delay, a.restart_max_delay),
            (Duration::from_secs(2), Duration::from_secs(2))
        );
        assert_eq!(
            (a.max_restarts, a.restart_window, a.stream),
            (0, Duration::from_secs(300), false)
        );
        let stop = a.stop_command.clone().unwrap();
        assert_eq!(
            (stop.executable.as_str(), stop.args.as_slice()),
            ("kill-it", ["--now".to_string()].as_slice())
        );
        assert_eq!(a.error_command.clone().unwrap().args, Vec::<String>::new());
    }

    #[test]
    fn args_with_spaces_stay_one_argument() {
        let c = parse(&app("args = [\"-c\", 'echo \"a b\"; sleep 1', \"x y\"]"));
        assert_eq!(c.apps[0].args, ["-c", "echo \"a b\"; sleep 1", "x y"]);
        refused(&app("args = \"-c echo\""), 6, "app[0].args");
    }

    #[test]
    fn multiple_unlimited_and_zero() {
        assert_eq!(
            parse(&app("multiple = \"unlimited\"")).apps[0].multiple,
            None
        );
        assert_eq!(parse(&app("multiple = 1")).apps[0].multiple, Some(1));
        let m = refused(&app("multiple = 0"), 6, "app[0].multiple");
        assert!(m.contains("unlimited"), "{m}");
        refused(&app("multiple = -2"), 6, "app[0].multiple");
        refused(&app("multiple = \"lots\""), 6, "app[0].multiple");
        refused(&app("multiple = 5000000000"), 6, "app[0].multiple");
    }

    #[test]
    fn signals() {
        for (text, signal) in [
            ("\"TERM\"", Signal::SIGTERM),
            ("\"SIGHUP\"", Signal::SIGHUP),
            ("\"usr1\"", Signal::SIGUSR1),
            ("2", Signal::SIGINT),
        ] {
            assert_eq!(
                parse(&app(&format!("stop_signal = {text}"))).apps[0].stop_signal,
                signal
            );
        }
        for bad in [
            "\"KILL\"",
            "\"SIGSTOP\"",
            "9",
            "\"NOPE\"",
            "0",
            "1000",
            "true",
        ] {
            refused(
                &app(&format!("stop_signal = {bad}")),
                6,
                "app[0].stop_signal",
            );
        }
    }

    #[test]
    fn durations() {
        let a = &parse(&app("starting_time = \"500ms\"\nstopping_time = \"0s\"")).apps[0];
        assert_eq!(
            a.starting_time,
            StartingTime::After(Duration::from_millis(500))
        );
        assert_eq!(a.starting_time.describe(), "500ms");
        assert_eq!(a.stopping_time, Duration::ZERO);
        let m = refused(&app("stopping_time = 10"), 6, "app[0].stopping_time");
        assert!(m.contains("\"10s\""), "{m}");
        refused(
            &app("\nstarting_time = \"soon\""),
            7,
            "app[0].starting_time",
        );
        refused(&app("starting_time = 1.5"), 6, "app[0].starting_time");
        refused(
            &app("restart_delay = \"10 parsecs\""),
            6,
            "app[0].restart_delay",
        );
        refused(&app("restart_window = \"0s\""), 6, "app[0].restart_window");
        refused(&app("restart_window = []"), 6, "app[0].restart_window");
    }

    #[test]
    fn restart_max_delay_must_not_be_shorter_than_restart_delay() {
        let m = refused(
            &app("restart_max_delay = \"1s\"\nrestart_delay = \"2s\""),
            6,
            "app[0].restart_max_delay",
        );
        assert_eq!(
            m,
            "restart_max_delay (1s) is shorter than restart_delay (2s)"
        );
        let m = refused(&app("\nrestart_delay = \"1m\""), 7, "app[0].restart_delay");
        assert!(m.contains("set restart_max_delay"), "{m}");
        refused(&app("restart = \"sometimes\""), 6, "app[0].restart");
    }

    #[test]
    fn logs() {
        let with_dir = |extra: &str| format!("log_dir = \"logs\"\n{}", app(extra));
        assert_eq!(
            parse(&with_dir("log = true")).apps[0].log,
            Some(LogConfig::default())
        );
        assert_eq!(parse(&with_dir("log = false")).apps[0].log, None);
        let log = parse(&with_dir("log = { max_size = \"512KiB\", max_files = 2 }")).apps[0].log;
        assert_eq!(
            log,
            Some(LogConfig {
                max_size: 512 * 1024,
                max_files: 2
            })
        );
        let log = parse(&with_dir("[app.log]\nmax_size = 1000")).apps[0].log;
        assert_eq!(
            log,
            Some(LogConfig {
                max_size: 1000,
                max_files: 5
            })
        );
        assert_eq!(parse(&app("log = false")).apps[0].log, None);
        let m = refused(&app("\nlog = true"), 7, "app[0].log");
        assert!(m.contains("log_dir"), "{m}");
        refused(&app("log = { max_size = \"10MB\" }"), 6, "app[0].log");
        refused(
            &with_dir("log = { max_size = \"10MB\", max_file = 5 }"),
            7,
            "app[0].log.max_file",
        );
        refused(
            &with_dir("log = { max_size = \"ten\" }"),
            7,
            "app[0].log.max_size",
        );
        refused(
            &with_dir("log = { max_size = 0 }"),
            7,
            "app[0].log.max_size",
        );
        refused(
            &with_dir("log = { max_files = 0 }"),
            7,
            "app[0].log.max_files",
        );
        refused(&with_dir("log = \"yes\""), 7, "app[0].log");
    }

    #[test]
    fn unknown_keys() {
        let m = refused("name = \"s\"\nlisten_on = []\n", 2, "listen_on");
        assert_eq!(m, "unknown key, did you mean `listen`?");
        let m = refused("name = \"s\"\nfoo = 1\n", 2, "foo");
        assert!(m.contains("expected one of: name, listen"), "{m}");
        let m = refused("name = \"s\"\n\nexecutable = \"x\"\n", 3, "executable");
        assert!(m.contains("[[app]]"), "{m}");
        let m = refused(&app("exectuable = \"x\""), 6, "app[0].exectuable");
        assert_eq!(m, "unknown key, did you mean `executable`?");
        let m = refused(&app("\nlog_dir = \"x\""), 7, "app[0].log_dir");
        assert!(m.contains("before the first [[app]]"), "{m}");
        refused(&app("[app.extra]\nx = 1"), 6, "app[0].extra");
        refused(&app("foo.bar = 1"), 6, "app[0].foo");
        // Unknown keys are reported before missing ones.
        refused(
            "[[app]]\nname = \"a\"\nexecutble = \"x\"\n",
            3,
            "app[0].executble",
        );
    }

    #[test]
    fn wrong_types() {
        let m = refused(&app("stream = \"yes\""), 6, "app[0].stream");
        assert_eq!(m, "expected true or false, found a string");
        refused(&app("description = 1"), 6, "app[0].description");
        refused(&app("args = [\"a\",\n  2]"), 7, "app[0].args[1]");
        refused(&app("env = [\"A=1\"]"), 6, "app[0].env");
        refused(&app("env = { A = 1 }"), 6, "app[0].env.A");
        refused(&app("stop_command = \"kill\""), 6, "app[0].stop_command");
        refused("listen = \"tcp/1.2.3.4:5\"", 1, "listen");
        refused("name = 1", 1, "name");
        refused("name = \"s\"\noutput_ring = \"many\"", 2, "output_ring");
        refused("name = \"s\"\nkeep_terminated = -1", 2, "keep_terminated");
        let m = refused("name = \"s\"\n[app]\nname = \"a\"", 2, "app");
        assert!(m.contains("[[app]]"), "{m}");
        refused("name = \"s\"\napp = [1]", 2, "app[0]");
        refused(
            &app("\nstarting_time = 1979-05-27T07:32:00Z"),
            7,
            "app[0].starting_time",
        );
    }

    #[test]
    fn syntax_errors() {
        let m = refused(
            "name = \"s\"\n\n[[app]]\nname = \"a\nexecutable = \"x\"\n",
            4,
            "name",
        );
        assert!(m.starts_with("invalid TOML: "), "{m}");
        refused("name = \"s\"\nname = \"t\"\n", 2, "name");
        refused("name = \"s\"\n[[app]\n", 2, "");
    }

    #[test]
    fn invalid_values() {
        let m = refused(
            &app("\n[[app]]\nname = \"b/c\"\nexecutable = \"x\""),
            8,
            "app[1].name",
        );
        assert!(m.starts_with("invalid app name \"b/c\""), "{m}");
        refused("name = \"my host\"", 1, "name");
        refused("name = \"s\"\nrealm = \"a*\"", 2, "realm");
        refused(
            "name = \"s\"\nlisten = [\"tcp/a:1\", \"localhost:7447\"]",
            2,
            "listen[1]",
        );
        refused("name = \"s\"\nconnect = [\"/x\"]", 2, "connect[0]");
        refused("name = \"s\"\nlisten = []", 2, "listen");
        assert!(
            parse("name = \"s\"\nlisten = []\nconnect = [\"tcp/r:7447\"]")
                .listen
                .is_empty()
        );
        refused("name = \"s\"\nmax_instances = 0", 2, "max_instances");
        refused("name = \"s\"\noutput_ring = 0", 2, "output_ring");
        refused("name = \"s\"\nlog_dir = \"\"", 2, "log_dir");
        refused(
            &app("executable = \"\"").replace("executable = \"true\"\n", ""),
            5,
            "app[0].executable",
        );
        refused(&app("env = { \"A=B\" = \"1\" }"), 6, "app[0].env.\"A=B\"");
        refused(
            &app("[app.env]\nOK = \"1\"\n\"\" = \"2\""),
            8,
            "app[0].env.\"\"",
        );
        refused(&app("args = [\"a\\u0000b\"]"), 6, "app[0].args[0]");
        refused(&app("stop_command = []"), 6, "app[0].stop_command");
        refused(
            &app("error_command = [\"\", \"x\"]"),
            6,
            "app[0].error_command",
        );
    }

    #[test]
    fn missing_keys_point_at_the_app() {
        let m = refused(
            "name = \"s\"\n\n[[app]]\nname = \"a\"\n",
            3,
            "app[0].executable",
        );
        assert_eq!(m, "missing required key `executable`");
        refused(
            "name = \"s\"\n[[app]]\nexecutable = \"x\"\n",
            2,
            "app[0].name",
        );
    }

    #[test]
    fn duplicate_app_names() {
        let text = "name = \"s\"\n[[app]]\nname = \"ticker\"\nexecutable = \"x\"\n\n[[app]]\n  name = \"ticker\"\nexecutable = \"y\"\n";
        let e = Config::parse(text, "examples/bad.toml", Path::new(BASE)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "examples/bad.toml:7: app[1].name: duplicate application name \"ticker\" (first defined at line 3)"
        );
    }

    #[test]
    fn load_reads_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("troupe.toml");
        std::fs::write(&path, app("working_dir = \"w\"")).unwrap();
        let c = Config::load(&path).unwrap();
        assert_eq!(c.source, path.display().to_string());
        assert_eq!(c.apps[0].working_dir, Some(dir.path().join("w")));
        let missing = dir.path().join("nope.toml");
        let e = Config::load(&missing).unwrap_err();
        assert_eq!((e.line, e.key.as_str()), (0, ""));
        assert!(
            e.to_string()
                .starts_with(&format!("{}: cannot read the file: ", missing.display())),
            "{e}"
        );
    }

    #[test]
    fn no_input_panics() {
        let mut texts: Vec<String> = (0..EXAMPLE.len())
            .filter(|&i| EXAMPLE.is_char_boundary(i))
            .map(|i| EXAMPLE[..i].to_string())
            .collect();
        for (from, to) in [
            ("\"", ""),
            ("=", ""),
            ("[", "{"),
            ("\n", " "),
            ("s\"", "\""),
            ("1", "-1"),
            ("app", "ap"),
        ] {
            texts.push(EXAMPLE.replacen(from, to, 3));
            texts.push(EXAMPLE.replace(from, to));
        }
        texts.extend(
            [
                "a.b.c.d = 1",
                "[[app]]\n[[app]]",
                "app = [[]]",
                "x = 99999999999999999999",
                "= 1",
                "\u{0}",
            ]
            .map(String::from),
        );
        for text in &texts {
            let _ = Config::parse(text, "t.toml", Path::new(BASE));
        }
    }
}
