//! The far ends of the transport scenarios, as separate processes: this
//! program re-executed with `--peer KIND PLACEMENT ARGS...`.
//!
//! Every peer connects to an address the bench listens on, pins itself as
//! told, serves until its parent goes away and then exits: its standard
//! input (a pipe from the bench) reaches end of file, its connection
//! closes, or nothing arrives for [`IDLE`]. The bench side, [`Peers`],
//! closes that pipe on drop, waits a bounded time, then kills what is left
//! and reaps it by pid.

use crate::pin::Placement;
use std::io::Read;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// A peer that has received nothing for this long exits.
pub const IDLE: Duration = Duration::from_secs(120);

/// Runs the peer named by `args[0]` (`--peer KIND PLACEMENT ARGS...`).
///
/// # Errors
///
/// Bad arguments, or the peer's transport failed.
pub fn run(args: &[String]) -> anyhow::Result<()> {
    let (kind, placement, rest) = match args {
        [kind, placement, rest @ ..] => (kind.as_str(), Placement::parse(placement)?, rest),
        _ => anyhow::bail!("usage: --peer KIND PLACEMENT ARGS..."),
    };
    // Pinned before any thread starts: every later thread inherits it.
    std::mem::forget(placement.apply()?);
    exit_when_parent_goes();
    match kind {
        "tcp-echo" => crate::tcp::echo(arg(rest, 0)?),
        "tcp-sink" => crate::tcp::sink(arg(rest, 0)?, arg(rest, 1)?.parse()?),
        "zenoh-queryable" => crate::zenoh_raw::queryable(arg(rest, 0)?),
        "zenoh-jsonrpc-queryable" => crate::jsonrpc::queryable(arg(rest, 0)?),
        "zenoh-pong" => crate::zenoh_raw::pong(arg(rest, 0)?, false),
        "zenoh-pong-routed" => crate::zenoh_raw::pong(arg(rest, 0)?, true),
        "zenoh-router" => crate::zenoh_raw::router(arg(rest, 0)?),
        "zenoh-sink" => crate::zenoh_raw::sink(arg(rest, 0)?, arg(rest, 1)?.parse()?),
        "zenoh-status-relay" => crate::status_floor::zenoh_relay(arg(rest, 0)?),
        "zenoh-status-emitter" => crate::status_floor::zenoh_emitter(arg(rest, 0)?, arg(rest, 1)?),
        "tcp-status-relay" => crate::status_floor::tcp_relay(arg(rest, 0)?),
        "tcp-status-emitter" => crate::status_floor::tcp_emitter(arg(rest, 0)?),
        "troupe-status-emitter" => crate::troupe_status::emitter(arg(rest, 0)?),
        "troupe-rep" => crate::troupe_patterns::rep(
            arg(rest, 0)?,
            rest.get(1).map(String::as_str) == Some("serve"),
        ),
        "troupe-pub" => crate::troupe_patterns::publisher(arg(rest, 0)?, arg(rest, 1)?.parse()?),
        "troupe-channel-owner" => crate::troupe_channel::owner(arg(rest, 0)?, arg(rest, 1)?),
        "troupe-object-server" => crate::troupe_object::object_server(arg(rest, 0)?, arg(rest, 1)?),
        "troupe-device-service" => crate::device::device_service(arg(rest, 0)?),
        "zenoh-device-queryable" => crate::device::zenoh_queryable(arg(rest, 0)?),
        "troupe-device-sink" => crate::device::troupe_sink(
            arg(rest, 0)?,
            arg(rest, 1)?,
            arg(rest, 2)?.parse()?,
            arg(rest, 3)?.parse()?,
        ),
        "zenoh-device-sink" => crate::device::zenoh_sink(
            arg(rest, 0)?,
            arg(rest, 1)?.parse()?,
            arg(rest, 2)?.parse()?,
        ),
        "troupe-sink" => crate::troupe_patterns::sink(
            arg(rest, 0)?,
            arg(rest, 1)?.parse()?,
            arg(rest, 2)?.parse()?,
        ),
        #[cfg(feature = "zmq")]
        "zmq-rep" => crate::zmq_peer::rep(arg(rest, 0)?),
        #[cfg(feature = "zmq")]
        "zmq-sink" => crate::zmq_peer::sink(arg(rest, 0)?, arg(rest, 1)?, arg(rest, 2)?.parse()?),
        _ => anyhow::bail!("unknown peer kind {kind:?}"),
    }
}

fn arg(rest: &[String], i: usize) -> anyhow::Result<&str> {
    rest.get(i)
        .map(String::as_str)
        .ok_or_else(|| anyhow::anyhow!("peer argument {} missing", i + 1))
}

/// Exits the process when standard input ends: the bench holds the other
/// end of that pipe, so this happens when the bench closes it or dies.
fn exit_when_parent_goes() {
    std::thread::spawn(|| {
        let mut buf = [0u8; 64];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut buf), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

/// When a peer last received something, for the idle bound of peers whose
/// transport has no receive timeout of its own (Zenoh callbacks).
pub struct Activity {
    start: Instant,
    last_ms: AtomicU64,
}

impl Activity {
    /// The process-wide activity clock.
    pub fn get() -> &'static Activity {
        static A: OnceLock<Activity> = OnceLock::new();
        A.get_or_init(|| Activity {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
        })
    }

    /// Records that something arrived.
    pub fn touch(&self) {
        let ms = self.start.elapsed().as_millis() as u64;
        self.last_ms.store(ms, Ordering::Relaxed);
    }

    /// Time since something last arrived (or since start).
    pub fn idle(&self) -> Duration {
        let last = Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        self.start.elapsed().saturating_sub(last)
    }
}

/// Far-end processes started by the bench; on drop their standard input is
/// closed (they exit), and any still running after a bounded wait is killed;
/// all are reaped.
#[derive(Default)]
pub struct Peers {
    children: Vec<(Child, Option<ChildStdin>)>,
}

impl Peers {
    /// Starts one more peer: `--peer KIND PLACEMENT ARGS...`.
    ///
    /// # Errors
    ///
    /// The program could not be started.
    pub fn spawn(
        &mut self,
        kind: &str,
        placement: Placement,
        args: &[String],
    ) -> anyhow::Result<()> {
        let mut child = Command::new(std::env::current_exe()?)
            .arg("--peer")
            .arg(kind)
            .arg(placement.arg())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()?;
        let stdin = child.stdin.take();
        self.children.push((child, stdin));
        Ok(())
    }

    /// Fails if a peer has already exited (it printed why on stderr).
    ///
    /// # Errors
    ///
    /// A peer exited.
    pub fn check(&mut self) -> anyhow::Result<()> {
        for (child, _) in &mut self.children {
            if let Some(status) = child.try_wait()? {
                anyhow::bail!("peer process {} exited: {status}", child.id());
            }
        }
        Ok(())
    }
}

impl Drop for Peers {
    fn drop(&mut self) {
        for (_, stdin) in &mut self.children {
            drop(stdin.take());
        }
        let end = Instant::now() + Duration::from_secs(3);
        for (child, _) in &mut self.children {
            loop {
                match child.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() < end => {
                        std::thread::sleep(Duration::from_millis(2))
                    }
                    Ok(None) => {
                        let _ = child.kill();
                        let _ = child.wait();
                        break;
                    }
                }
            }
        }
    }
}
