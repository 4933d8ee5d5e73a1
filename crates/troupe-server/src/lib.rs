//! The per-host troupe server, as a library.
//!
//! A server reads one configuration ([`Config`]), opens a Zenoh runtime in
//! router mode on its `listen` endpoints, and serves the control requests of
//! [`troupe_protocol::control`]: it starts the configured applications as
//! instances, watches them through their lifecycle, keeps their output, result
//! and key-value store, and publishes every state change as an event.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! let config = troupe_server::Config::embedded();
//! let server = troupe_server::RunningServer::start(config).await?;
//! println!("server {} on {}", server.name(), server.endpoint());
//! server.shutdown().await;
//! # Ok(()) }
//! ```
//!
//! The binary `troupe server` is a thin wrapper around [`run`]; tests start
//! servers in-process on free loopback ports.

pub mod config;
mod control;
mod guardian;
mod instance;
mod logs;
mod output;
mod runner;
mod status;

pub use config::{Config, ConfigError};
pub use output::LogFile;

/// The variable through which Zenoh reads the settings of its runtimes
/// (once, at its first use in a process).
pub const ZENOH_RUNTIME_VAR: &str = "ZENOH_RUNTIME";

/// The settings a server process gives Zenoh's runtimes (see
/// [`tune_zenoh_runtime`]): two transmit threads instead of one. A server is
/// the router of its clients, and one thread writing every link held back
/// a fan-out through it: 64 KiB messages to 10 subscribers went about 10%
/// faster with two (BENCHMARKS.md, "troupe's patterns", 7).
pub const ZENOH_RUNTIME: &str = "(tx: (worker_threads: 2))";

static TUNED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Gives this process's Zenoh runtimes the server's settings
/// ([`ZENOH_RUNTIME`]), unless the user set `ZENOH_RUNTIME`, whose settings
/// then win. Call it first thing in `main` of a process that runs a
/// server, before any other thread starts (it sets an environment variable)
/// and before Zenoh is used. The instances the server starts do not inherit
/// what it set. Returns whether it set anything.
pub fn tune_zenoh_runtime() -> bool {
    if std::env::var_os(ZENOH_RUNTIME_VAR).is_some() {
        return false;
    }
    std::env::set_var(ZENOH_RUNTIME_VAR, ZENOH_RUNTIME);
    TUNED.store(true, Ordering::Relaxed);
    true
}

/// Whether [`tune_zenoh_runtime`] set `ZENOH_RUNTIME` in this process.
pub(crate) fn tuned() -> bool {
    TUNED.load(Ordering::Relaxed)
}

use instance::{Cmd, Shared};
use std::future::Future;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use troupe_protocol::StateEvent;

/// The stopping time of an attached application that is not configured.
pub(crate) const ATTACHED_STOPPING_TIME: Duration = Duration::from_secs(10);

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// The Zenoh runtime could not be opened (an endpoint in use, say).
    #[error("cannot open the zenoh runtime on {listen}: {reason}")]
    Zenoh {
        /// The listen endpoints.
        listen: String,
        /// Zenoh's explanation.
        reason: String,
    },
    /// Another live server of the realm has the same name.
    #[error("a server named {name:?} is already running in realm {realm:?}")]
    NameTaken {
        /// The name.
        name: String,
        /// The realm.
        realm: String,
    },
    /// The guardian process (which ends instances if the server dies) could
    /// not be started.
    #[error("cannot start the guardian process: {0}")]
    Guardian(#[source] std::io::Error),
}

/// A server that runs; [`RunningServer::shutdown`] ends it.
#[derive(Debug)]
pub struct RunningServer {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    token: Option<zenoh::liveliness::LivelinessToken>,
}

/// The endpoint an instance should connect to, given a listen endpoint:
/// wildcard addresses become loopback.
fn client_endpoint(listen: &str) -> String {
    listen
        .replace("/0.0.0.0:", "/127.0.0.1:")
        .replace("/[::]:", "/[::1]:")
}

fn zenoh_config(config: &Config) -> Result<zenoh::Config, String> {
    let mut zc = zenoh::Config::default();
    let list = |v: &[String]| serde_json::to_string(v).unwrap_or_else(|_| "[]".into());
    zc.insert_json5("mode", r#""router""#)
        .and_then(|_| zc.insert_json5("listen/endpoints", &list(&config.listen)))
        .and_then(|_| zc.insert_json5("connect/endpoints", &list(&config.connect)))
        .and_then(|_| zc.insert_json5("scouting/multicast/enabled", "false"))
        .map_err(|e| e.to_string())?;
    Ok(zc)
}

impl RunningServer {
    /// Starts a server on `config`. It runs on the current tokio runtime
    /// until [`RunningServer::shutdown`].
    ///
    /// # Errors
    /// [`ServerError`] when the runtime cannot listen, the name is taken, or
    /// the guardian cannot be spawned.
    pub async fn start(config: Config) -> Result<Self, ServerError> {
        let listen = config.listen.join(", ");
        let zerr = |reason: String| ServerError::Zenoh {
            listen: listen.clone(),
            reason: troupe_protocol::tidy_zenoh_message(&reason),
        };
        let zc = zenoh_config(&config).map_err(zerr)?;
        let session = zenoh::open(zc).await.map_err(|e| zerr(e.to_string()))?;
        let keys = troupe_protocol::keys::Keys::new(config.realm.clone());

        if !config.connect.is_empty() {
            // Joined to other servers: refuse a name that is already in use.
            let replies = session
                .liveliness()
                .get(keys.server_alive(&config.name))
                .timeout(Duration::from_millis(500))
                .await
                .map_err(|e| zerr(e.to_string()))?;
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_secs(1), replies.recv_async())
                .await
                .map(|r| r.map(|r| r.into_result().map_err(|_| ())))
                .map(|r| r.ok().unwrap_or(Err(())))
            {
                let _ = session.close().await;
                return Err(ServerError::NameTaken {
                    name: config.name.clone(),
                    realm: config.realm.clone(),
                });
            }
        }

        let guardian = guardian::Guardian::spawn().map_err(ServerError::Guardian)?;
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        let endpoint = client_endpoint(
            config
                .listen
                .first()
                .map(String::as_str)
                .unwrap_or(troupe_protocol::DEFAULT_ENDPOINT),
        );
        let shared = Arc::new(Shared::new(
            config,
            session.clone(),
            endpoint,
            guardian,
            events_tx,
        ));

        let queryable = session
            .declare_queryable(keys.control(shared.name()))
            .await
            .map_err(|e| zerr(e.to_string()))?;
        let token = session
            .liveliness()
            .declare_token(keys.server_alive(shared.name()))
            .await
            .map_err(|e| zerr(e.to_string()))?;
        let mut tasks = vec![
            tokio::spawn(publish_events(session.clone(), events_rx)),
            tokio::spawn(control::serve(shared.clone(), queryable)),
        ];
        // The status tree: a server that joins others first reads theirs.
        let join = !shared.config.connect.is_empty();
        let (status, status_task) = status::start(&session, &keys, shared.name(), join)
            .await
            .map_err(|e| {
                tasks.iter().for_each(JoinHandle::abort);
                zerr(e.to_string())
            })?;
        let _ = shared.status.set(status);
        tasks.push(status_task);
        // The latest log records of this server's instances.
        let logs_task = logs::start(&session, &keys, shared.name(), shared.logs.clone())
            .await
            .map_err(|e| {
                tasks.iter().for_each(JoinHandle::abort);
                zerr(e.to_string())
            })?;
        tasks.push(logs_task);
        tracing::info!(
            server = shared.name(),
            realm = shared.keys.realm(),
            listen = %shared.config.listen.join(", "),
            apps = shared.config.apps.len(),
            "troupe server started"
        );
        Ok(Self {
            shared,
            tasks,
            token: Some(token),
        })
    }

    /// The server's name.
    pub fn name(&self) -> &str {
        self.shared.name()
    }

    /// The endpoint clients on this host connect to (the first listen
    /// endpoint, wildcard addresses made loopback).
    pub fn endpoint(&self) -> &str {
        &self.shared.endpoint
    }

    /// The realm.
    pub fn realm(&self) -> &str {
        self.shared.keys.realm()
    }

    /// Stops every live instance (each with its own `stopping_time`, then a
    /// kill), waits for them, and closes the runtime.
    pub async fn shutdown(mut self) {
        let shared = self.shared.clone();
        shared.shutting_down.store(true, Ordering::SeqCst);
        // Set before the registry is read: a start that takes the registry
        // lock later is refused; one that took it earlier is in `live`.
        let live: Vec<_> = shared.registry().live().cloned().collect();
        tracing::info!(
            server = shared.name(),
            live = live.len(),
            "troupe server shutting down"
        );
        let longest = shared
            .config
            .apps
            .iter()
            .map(|a| a.stopping_time)
            .chain([ATTACHED_STOPPING_TIME])
            .max()
            .unwrap_or_default()
            + Duration::from_secs(5);
        for inst in &live {
            inst.command(Cmd::Stop);
        }
        let all_ended = futures::future::join_all(live.iter().map(|inst| {
            let mut rx = inst.watch();
            async move {
                let _ = rx.wait_for(|i| i.state.is_terminal()).await;
            }
        }));
        if tokio::time::timeout(longest, all_ended).await.is_err() {
            tracing::warn!("some instances did not end in time; the guardian kills them");
        }
        // Let the last events go out before the runtime closes.
        tokio::time::sleep(Duration::from_millis(50)).await;
        shared.guardian.close();
        // Closing Zenoh is bounded too: a shutdown must end.
        let close = async {
            if let Some(token) = self.token.take() {
                let _ = token.undeclare().await;
            }
            let _ = shared.session.close().await;
        };
        if tokio::time::timeout(Duration::from_secs(5), close)
            .await
            .is_err()
        {
            tracing::warn!("the zenoh runtime did not close within 5 s");
        }
        for t in self.tasks.drain(..) {
            t.abort();
        }
    }
}

/// Runs a server on `config` until `shutdown` completes, then shuts it down.
///
/// # Errors
/// [`ServerError`] when the server cannot start.
pub async fn run(config: Config, shutdown: impl Future<Output = ()>) -> Result<(), ServerError> {
    let server = RunningServer::start(config).await?;
    shutdown.await;
    server.shutdown().await;
    Ok(())
}

/// Publishes state events, in the order their sequence numbers were drawn.
async fn publish_events(
    session: zenoh::Session,
    mut rx: mpsc::UnboundedReceiver<(String, StateEvent)>,
) {
    while let Some((key, event)) = rx.recv().await {
        let Ok(bytes) = serde_json::to_vec(&event) else {
            continue;
        };
        let put = session
            .put(key, bytes)
            .congestion_control(zenoh::qos::CongestionControl::Block);
        if let Err(e) = put.await {
            tracing::warn!("cannot publish a state event: {e}");
        }
    }
}
