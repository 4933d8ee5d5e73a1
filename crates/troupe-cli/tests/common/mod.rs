//! Helpers for the end-to-end tests: they run the real `troupe` binary as
//! separate processes, each with a deadline, and a [`ServerProcess`] that is
//! terminated (then killed) by pid when dropped.

#![allow(dead_code)] // Each test file uses its own part of the helpers.

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The longest any single console command may take in a test.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(20);

/// The `troupe` binary under test.
pub fn troupe_bin() -> &'static str {
    env!("CARGO_BIN_EXE_troupe")
}

/// A `troupe` command with a clean environment for troupe: no endpoint and
/// no instance identity inherited from whoever runs the tests.
pub fn troupe_command() -> Command {
    let mut cmd = Command::new(troupe_bin());
    for var in [
        "TROUPE_ENDPOINT",
        "TROUPE_SERVER",
        "TROUPE_APP",
        "TROUPE_INSTANCE",
        "TROUPE_REALM",
        "TROUPE_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.stdin(Stdio::null());
    cmd
}

/// What a finished command did.
#[derive(Debug)]
pub struct Output {
    /// The exit code (`None`: ended by a signal).
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
    /// How long it ran.
    pub elapsed: Duration,
}

impl Output {
    /// Panics with everything known unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(self.code, Some(code), "unexpected exit status: {self:#?}");
        self
    }

    /// Panics unless the command exited 0; returns its trimmed stdout.
    #[track_caller]
    pub fn ok(&self) -> &str {
        self.expect_code(0);
        self.stdout.trim()
    }

    /// Panics unless stderr is exactly one non-empty line.
    #[track_caller]
    pub fn expect_one_line_error(&self) -> &Self {
        let lines: Vec<&str> = self
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert_eq!(lines.len(), 1, "stderr is not one line: {self:#?}");
        assert!(lines[0].starts_with("troupe: error: "), "{self:#?}");
        self
    }

    /// The one line of a failed command's stderr, once its exit code is
    /// `code` (panics otherwise).
    #[track_caller]
    pub fn one_line_error(&self, code: i32) -> &str {
        self.expect_code(code).expect_one_line_error();
        self.stderr.trim()
    }
}

/// Runs `cmd` to its end, feeding it `stdin`, killing it after `timeout`
/// (which fails the test).
#[track_caller]
pub fn run_with(mut cmd: Command, stdin: Option<&str>, timeout: Duration) -> Output {
    if stdin.is_some() {
        cmd.stdin(Stdio::piped());
    }
    cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
    let start = Instant::now();
    let mut child = cmd.spawn().expect("spawn troupe");
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        let text = text.to_string();
        std::thread::spawn(move || {
            let _ = pipe.write_all(text.as_bytes());
        });
    }
    let out = drain(child.stdout.take().expect("piped stdout"));
    let err = drain(child.stderr.take().expect("piped stderr"));
    let status = wait_deadline(&mut child, timeout);
    let elapsed = start.elapsed();
    let output = Output {
        code: status.and_then(|s| s.code()),
        stdout: out.join().unwrap_or_default(),
        stderr: err.join().unwrap_or_default(),
        elapsed,
    };
    assert!(
        status.is_some(),
        "command {cmd:?} still ran after {timeout:?} (killed): {output:#?}"
    );
    output
}

fn drain(mut pipe: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = pipe.read_to_end(&mut buf);
        String::from_utf8_lossy(&buf).into_owned()
    })
}

/// Waits for `child` until `timeout`; on expiry kills and reaps it and
/// returns `None`.
pub fn wait_deadline(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let end = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < end => std::thread::sleep(Duration::from_millis(10)),
            _ => {
                let _ = child.kill();
                let _ = child.wait();
                return None;
            }
        }
    }
}

/// Sends `signal` to process `pid` (and to nothing else).
pub fn signal(pid: u32, signal: Signal) {
    let pid = i32::try_from(pid).expect("pid fits");
    let _ = kill(Pid::from_raw(pid), signal);
}

/// A `troupe` command running in the background whose stdout lines arrive on
/// a channel; killed and reaped when dropped.
pub struct Background {
    child: Child,
    lines: mpsc::Receiver<String>,
    stderr: Option<std::thread::JoinHandle<String>>,
}

impl Background {
    /// Starts `cmd` with piped output.
    pub fn spawn(mut cmd: Command) -> Background {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn troupe");
        let (tx, lines) = mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || lines_to(out, |l| tx.send(l).is_ok()));
        let stderr = Some(drain(child.stderr.take().expect("piped stderr")));
        Background {
            child,
            lines,
            stderr,
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line, if one comes before `deadline`.
    pub fn next_line(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.lines.recv_timeout(left).ok()
    }

    /// Waits (bounded) for the process to end; returns its exit status and
    /// its stderr, or `None` if it still runs after `timeout` (then it is
    /// killed).
    pub fn finish(mut self, timeout: Duration) -> (Option<ExitStatus>, String) {
        let status = wait_deadline(&mut self.child, timeout);
        let stderr = self
            .stderr
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// Hands the lines of `pipe` to `send`, until the pipe ends or `send` says
/// that nobody takes them any more.
fn lines_to(pipe: impl Read, mut send: impl FnMut(String) -> bool) {
    for line in BufReader::new(pipe).lines() {
        let Ok(line) = line else { break };
        if !send(line) {
            break;
        }
    }
}

/// How long [`Running::finish`] waits for each last line once the command
/// has ended (its pipes then close, so the rest comes quickly).
const LAST_LINE: Duration = Duration::from_secs(2);

/// A `troupe` command running in the background, its stdout and stderr read
/// line by line with every wait bounded; killed and reaped (by pid) when
/// dropped, even when the test fails.
///
/// Its stdout lines are taken one at a time, when the test asks: a test
/// that stops asking makes the command block on its stdout once the pipe is
/// full. Its stderr lines are collected as they come.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    out: mpsc::Receiver<String>,
    err: mpsc::Receiver<String>,
    stderr: Vec<String>,
}

/// How a [`Running`] command ended.
#[derive(Debug)]
pub struct Ended {
    /// The exit code (`None`: ended by a signal, or killed at the timeout).
    pub code: Option<i32>,
    /// The stdout lines not read before.
    pub stdout: Vec<String>,
    /// Every stderr line, the ones read before too.
    pub stderr: Vec<String>,
    /// From the call of [`Running::finish`].
    pub elapsed: Duration,
}

impl Ended {
    /// Whether a stderr line contains `needle`.
    pub fn stderr_has(&self, needle: &str) -> bool {
        self.stderr.iter().any(|l| l.contains(needle))
    }

    /// The one stderr line, an error, once the exit code is `code` (panics
    /// otherwise).
    #[track_caller]
    pub fn one_line_error(&self, code: i32) -> &str {
        assert_eq!(self.code, Some(code), "{self:#?}");
        assert_eq!(self.stderr.len(), 1, "stderr is not one line: {self:#?}");
        assert!(self.stderr[0].starts_with("troupe: error: "), "{self:#?}");
        &self.stderr[0]
    }
}

impl Running {
    /// Starts `cmd` with its stdin, stdout and stderr piped: see
    /// [`Running::write`] and [`Running::close_stdin`].
    pub fn spawn(cmd: Command) -> Running {
        Self::start(cmd, true)
    }

    /// Starts `cmd` with its stdout and stderr piped; its stdin stays as
    /// `cmd` says (none, for a [`troupe_command`]).
    pub fn spawn_keeping_stdin(cmd: Command) -> Running {
        Self::start(cmd, false)
    }

    fn start(mut cmd: Command, pipe_stdin: bool) -> Running {
        if pipe_stdin {
            cmd.stdin(Stdio::piped());
        }
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("spawn troupe");
        let stdin = child.stdin.take();
        // A rendezvous channel: a line is taken from the pipe only when the
        // test takes the previous one.
        let (tx, out) = mpsc::sync_channel(0);
        let stdout = child.stdout.take().expect("piped stdout");
        std::thread::spawn(move || lines_to(stdout, |l| tx.send(l).is_ok()));
        let (tx, err) = mpsc::channel();
        let stderr = child.stderr.take().expect("piped stderr");
        std::thread::spawn(move || lines_to(stderr, |l| tx.send(l).is_ok()));
        Running {
            child,
            stdin,
            out,
            err,
            stderr: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Writes `text` to the command's stdin.
    #[track_caller]
    pub fn write(&mut self, text: &str) {
        let stdin = self.stdin.as_mut().expect("stdin piped and still open");
        stdin.write_all(text.as_bytes()).expect("write stdin");
        stdin.flush().expect("flush stdin");
    }

    /// Closes the command's stdin (its end of input).
    pub fn close_stdin(&mut self) {
        self.stdin = None;
    }

    /// Whether the command still runs.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// The next stdout line, if one comes before `deadline`.
    pub fn line(&self, deadline: Instant) -> Option<String> {
        let left = deadline.saturating_duration_since(Instant::now());
        self.out.recv_timeout(left).ok()
    }

    /// The next stdout line within `within`, or a panic that says what was
    /// expected and what the command wrote on stderr.
    #[track_caller]
    pub fn expect_line(&mut self, what: &str, within: Duration) -> String {
        match self.line(Instant::now() + within) {
            Some(line) => line,
            None => {
                self.take_stderr();
                panic!(
                    "no {what} on stdout within {within:?}; stderr: {:#?}",
                    self.stderr
                )
            }
        }
    }

    /// The first stdout line that starts with `prefix`, waiting at most
    /// `within`; the lines before it are skipped.
    #[track_caller]
    pub fn expect_line_starting(&mut self, prefix: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        let mut skipped = Vec::new();
        loop {
            match self.line(deadline) {
                Some(line) if line.starts_with(prefix) => return line,
                Some(line) => skipped.push(line),
                None => {
                    self.take_stderr();
                    panic!(
                        "no line {prefix:?} on stdout within {within:?}; skipped {skipped:#?}; stderr {:#?}",
                        self.stderr
                    )
                }
            }
        }
    }

    /// Collects the stderr lines that came so far.
    fn take_stderr(&mut self) {
        while let Ok(line) = self.err.try_recv() {
            self.stderr.push(line);
        }
    }

    /// The first stderr line containing `needle`, waiting at most `within`.
    #[track_caller]
    pub fn expect_stderr(&mut self, needle: &str, within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.stderr.iter().find(|l| l.contains(needle)) {
                return line.clone();
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.err.recv_timeout(left) {
                Ok(line) => self.stderr.push(line),
                Err(_) => {
                    let status = self.child.try_wait();
                    panic!(
                        "no {needle:?} on stderr within {within:?} (status {status:?}): {:#?}",
                        self.stderr
                    )
                }
            }
        }
    }

    /// Closes stdin and waits (bounded) for the command to end, reading its
    /// stdout meanwhile; panics if it still runs after `timeout` (then it is
    /// killed and reaped).
    #[track_caller]
    pub fn finish(mut self, timeout: Duration) -> Ended {
        self.close_stdin();
        let start = Instant::now();
        let mut stdout = Vec::new();
        let status = loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                break Some(status);
            }
            if start.elapsed() > timeout {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            if let Ok(line) = self.out.recv_timeout(Duration::from_millis(10)) {
                stdout.push(line);
            }
        };
        let elapsed = start.elapsed();
        // The pipes close when the process ends: the rest comes quickly.
        // Bounded all the same, should a descendant keep a pipe open.
        let end = Instant::now() + COMMAND_TIMEOUT;
        let wait = || LAST_LINE.min(end.saturating_duration_since(Instant::now()));
        while let Ok(line) = self.out.recv_timeout(wait()) {
            stdout.push(line);
        }
        while let Ok(line) = self.err.recv_timeout(wait()) {
            self.stderr.push(line);
        }
        let ended = Ended {
            code: status.and_then(|s| s.code()),
            stdout,
            stderr: std::mem::take(&mut self.stderr),
            elapsed,
        };
        assert!(
            status.is_some(),
            "still running after {timeout:?} (killed): {ended:#?}"
        );
        ended
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if self.running() {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

static SERVERS: AtomicU32 = AtomicU32::new(0);

/// A `troupe server` process on a free loopback port, with a unique name.
/// Dropping it sends SIGTERM, waits up to 15 s, then sends SIGKILL, and reaps
/// it.
pub struct ServerProcess {
    child: Child,
    endpoint: String,
    name: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl ServerProcess {
    /// Starts `troupe server` on the configuration file `config` (the
    /// embedded example when `None`) and waits until `troupe apps` answers.
    #[track_caller]
    pub fn start(config: Option<&Path>) -> ServerProcess {
        let mut last = String::new();
        // A free port may be taken before the server binds it: try again.
        for _ in 0..3 {
            match Self::try_start(config) {
                Ok(server) => return server,
                Err(e) => last = e,
            }
        }
        panic!("the troupe server did not start: {last}");
    }

    fn try_start(config: Option<&Path>) -> Result<ServerProcess, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let port = troupe_testkit::free_port();
        let endpoint = format!("tcp/127.0.0.1:{port}");
        let n = SERVERS.fetch_add(1, Ordering::SeqCst);
        let name = format!("e2e-{}-{n}", std::process::id());
        let log = dir.path().join("server.log");
        let log_file = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut cmd = troupe_command();
        cmd.arg("server");
        if let Some(config) = config {
            cmd.arg("--config").arg(config);
        }
        cmd.args(["--listen", &endpoint, "--name", &name])
            .env("TROUPE_LOG", "info,zenoh=warn")
            // The server's own Zenoh settings (see server_binary.rs).
            .env_remove("ZENOH_RUNTIME")
            .stdout(log_file.try_clone().map_err(|e| e.to_string())?)
            .stderr(log_file);
        let child = cmd.spawn().map_err(|e| e.to_string())?;
        let mut server = ServerProcess {
            child,
            endpoint,
            name,
            log,
            _dir: dir,
        };
        let end = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(Some(status)) = server.child.try_wait() {
                return Err(format!("it exited ({status}): {}", server.log_text()));
            }
            let out = run_with(server.console(&["apps"]), None, COMMAND_TIMEOUT);
            if out.code == Some(0) {
                return Ok(server);
            }
            if Instant::now() > end {
                return Err(format!(
                    "`troupe apps` still fails after 20 s: {out:?}; log: {}",
                    server.log_text()
                ));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The endpoint clients connect to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server wrote so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A console command `troupe -e ENDPOINT ARGS...`, not yet run.
    pub fn console(&self, args: &[&str]) -> Command {
        let mut cmd = troupe_command();
        cmd.args(["-e", &self.endpoint]).args(args);
        cmd
    }

    /// Runs a console command to its end (bounded).
    #[track_caller]
    pub fn run(&self, args: &[&str]) -> Output {
        run_with(self.console(args), None, COMMAND_TIMEOUT)
    }

    /// `troupe ps --json`, parsed.
    #[track_caller]
    pub fn ps(&self) -> Vec<serde_json::Value> {
        let out = self.run(&["ps", "--json"]);
        serde_json::from_str(out.ok())
            .unwrap_or_else(|e| panic!("ps --json is not JSON ({e}): {out:#?}"))
    }

    /// The `ps --json` entry of instance `id`.
    #[track_caller]
    pub fn instance(&self, id: &str) -> serde_json::Value {
        self.ps()
            .into_iter()
            .find(|i| i["id"].as_u64().map(|n| n.to_string()).as_deref() == Some(id))
            .unwrap_or_else(|| panic!("no instance {id} in ps --json"))
    }

    /// The state of instance `id`, from `ps --json`.
    #[track_caller]
    pub fn state(&self, id: &str) -> String {
        self.instance(id)["state"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    }

    /// Waits (bounded) until instance `id` is in `state`.
    #[track_caller]
    pub fn wait_state(&self, id: &str, state: &str) {
        let mut seen = String::new();
        let res = troupe_testkit::wait_until(
            &format!("instance {id} {state}"),
            Duration::from_secs(20),
            || {
                seen = self.state(id);
                seen == state
            },
        );
        if let Err(e) = res {
            panic!("{e} (last seen: {seen})");
        }
    }

    /// Sends SIGTERM and waits (bounded) for the server to exit.
    pub fn terminate(mut self, timeout: Duration) -> Option<ExitStatus> {
        signal(self.pid(), Signal::SIGTERM);
        wait_deadline(&mut self.child, timeout)
    }

    /// Sends SIGKILL and reaps the server.
    pub fn kill9(&mut self) {
        signal(self.pid(), Signal::SIGKILL);
        let _ = wait_deadline(&mut self.child, Duration::from_secs(15));
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if !matches!(self.child.try_wait(), Ok(None)) {
            return;
        }
        signal(self.child.id(), Signal::SIGTERM);
        if wait_deadline(&mut self.child, Duration::from_secs(15)).is_none()
            && !std::thread::panicking()
        {
            eprintln!("the troupe server ignored SIGTERM for 15 s: killed");
        }
    }
}

/// Writes `text` to `name` in `dir` and returns the path.
pub fn write_config(dir: &Path, name: &str, text: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write the configuration");
    path
}

/// Every descendant of `pid` (children, their children...), from /proc.
pub fn descendants_of(pid: u32) -> Vec<u32> {
    let mut all = Vec::new();
    let mut todo = vec![pid];
    while let Some(p) = todo.pop() {
        for c in troupe_testkit::children_of(p) {
            all.push(c);
            todo.push(c);
        }
    }
    all
}
