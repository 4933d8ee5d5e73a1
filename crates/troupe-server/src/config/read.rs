//! Reading the configuration: the spanned tree of the text (see `tree`) is
//! read key by key into a [`Config`], each check placing its error at the line
//! and key path of the value at fault.

use super::tree::{document, Entry, Item, Node, SyntaxError};
use super::{
    AppConfig, CommandLine, Config, ConfigError, LogConfig, RestartPolicy, Result, StartingTime,
};
use nix::sys::signal::Signal;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;
use troupe_protocol::device::{DeviceSettings, FirstUpdate};
use troupe_protocol::{validate_name, InstanceMode, DEFAULT_ENDPOINT, DEFAULT_REALM};

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
    "mode",
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
    "device",
];

const LOG_KEYS: &[&str] = &["max_size", "max_files"];

const DEVICE_KEYS: &[&str] = &DeviceSettings::KEYS;

/// Checks the configuration `text`, read from `source`, joining relative paths
/// to `base_dir`; `default_name` gives the server name when `name` is not set.
pub(super) fn parse(
    text: &str,
    source: &str,
    base_dir: &Path,
    default_name: impl FnOnce() -> Result<String, String>,
) -> Result<Config> {
    let root = document(text).map_err(|e| syntax_error(source, text, &e))?;
    let root = Value {
        loc: Loc {
            file: source,
            text,
            path: String::new(),
            line: 1,
        },
        node: Node::Table(root),
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
    let mode = opt(t.take("mode"), Value::mode)?.unwrap_or_default();
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
    let device = opt(t.take("device"), Value::device)?;
    Ok(AppConfig {
        name,
        description,
        executable,
        args,
        env,
        mode,
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
        device,
    })
}

fn opt<'a, T>(v: Option<Value<'a>>, f: impl FnOnce(Value<'a>) -> Result<T>) -> Result<Option<T>> {
    v.map(f).transpose()
}

/// A TOML syntax error (or a value the tree cannot hold), on one line.
fn syntax_error(file: &str, text: &str, e: &SyntaxError) -> ConfigError {
    let line = e.span.as_ref().map_or(0, |s| line_of(text, s.start));
    let message = e
        .message
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

    /// Where the value of `entry` is: the line of its key.
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
            line: line_of(self.text, entry.key_span.start),
        }
    }

    /// Where element `i` of an array is: the line of `item`.
    fn index(&self, i: usize, item: &Item) -> Loc<'a> {
        Loc {
            file: self.file,
            text: self.text,
            path: format!("{}[{i}]", self.path),
            line: line_of(self.text, item.span.start),
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
        } else if known == DEVICE_KEYS && APP_KEYS.contains(&entry.key.as_str()) {
            message.push_str(": application keys must come before the [app.device] table");
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

    fn mode(self) -> Result<InstanceMode> {
        let loc = self.loc.clone();
        let name = self.string()?;
        InstanceMode::parse(&name).ok_or_else(|| {
            loc.err(format!(
                "unknown mode {name:?}: expected \"peer\" or \"client\""
            ))
        })
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

    /// An `[app.device]` table: the settings of a device service, each
    /// optional (the program may give those left unset).
    fn device(self) -> Result<DeviceSettings> {
        if !matches!(self.node, Node::Table(_)) {
            return Err(self.type_error(
                "a table such as [app.device] with name = \"power\" and server_id = \"ps1\"",
            ));
        }
        let mut t = self.table()?;
        t.check_keys(DEVICE_KEYS)?;
        let name = opt(t.take("name"), |v| v.name("device service"))?;
        let server_id = opt(t.take("server_id"), |v| v.name("server id"))?;
        let prefix = opt(t.take("prefix"), |v| v.name("prefix"))?;
        let selector_aware = opt(t.take("selector_aware"), Value::boolean)?;
        let first_update = opt(t.take("first_update"), |v| {
            let loc = v.loc.clone();
            let s = v.string()?;
            FirstUpdate::parse(&s).ok_or_else(|| {
                loc.err(format!(
                    "unknown first-update policy {s:?}: expected \"none\" or \"current\""
                ))
            })
        })?;
        Ok(DeviceSettings {
            name,
            server_id,
            prefix,
            selector_aware,
            first_update,
        })
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
