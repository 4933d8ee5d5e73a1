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
//! How it works: the `tree` module parses the text, with toml's spanned
//! document API (`toml::de::DeTable`), into a tree that keeps the byte span of
//! every key and value; the `read` module then reads that tree key by key, so
//! that each check knows the line of its key.

use nix::sys::signal::Signal;
use read::parse;
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;
use troupe_protocol::device::DeviceSettings;
use troupe_protocol::validate_name;
use troupe_protocol::InstanceMode;

mod read;
#[cfg(test)]
mod tests;
mod tree;

/// The example configuration shipped with troupe; `troupe server` runs on it
/// when given no file. It documents every key with its default.
pub const EXAMPLE: &str = include_str!("../../../../examples/troupe.toml");

/// The source name of the [`EXAMPLE`] configuration in errors.
const EMBEDDED: &str = "<embedded>";

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
    /// Where application output logs go, if anywhere; a relative path in the
    /// file is joined to the file's directory.
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
    /// How the instances join the fabric, passed in `TROUPE_MODE`: peers
    /// (default) or clients of the server.
    pub mode: InstanceMode,
    /// The instances' current directory; a relative one in the file is joined
    /// to the file's directory.
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
    /// The settings of the device service the app runs (an `[app.device]`
    /// table), each set or not; passed to its instances in `TROUPE_DEVICE`.
    pub device: Option<DeviceSettings>,
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
