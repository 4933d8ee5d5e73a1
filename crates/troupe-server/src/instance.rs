//! Instances as the server keeps them, the registry, and state transitions.
//!
//! Each instance has one runner task ([`crate::runner`]) that owns its process
//! and is the only writer of its state; others send it commands. Every state
//! change goes through [`Shared::transition`], which numbers it with the
//! server-wide sequence, records it in the instance's history and queues the
//! event for publication in sequence order.

use crate::config::Config;
use crate::guardian::Guardian;
use crate::output::OutputRing;
use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use tokio::process::ChildStdin;
use tokio::sync::{mpsc, watch};
use troupe_protocol::keys::Keys;
use troupe_protocol::{now_ms, InstanceInfo, State, StateChange, StateEvent};

/// How many past states an instance keeps (the first one, and the latest).
const HISTORY: usize = 64;

/// Commands to an instance's runner.
#[derive(Debug)]
pub(crate) enum Cmd {
    /// The application says it runs.
    SetRunning,
    /// Stop (signal or stop command, kill after `stopping_time`).
    Stop,
    /// Kill the process group now.
    Kill,
    /// An attached application ends with this state.
    Detach(State),
}

/// One instance.
#[derive(Debug)]
pub(crate) struct Instance {
    pub(crate) id: u64,
    pub(crate) app: String,
    info: watch::Sender<InstanceInfo>,
    cmd: mpsc::UnboundedSender<Cmd>,
    pub(crate) output: Mutex<OutputRing>,
    pub(crate) kv: watch::Sender<BTreeMap<String, Vec<u8>>>,
    pub(crate) result: Mutex<Option<Vec<u8>>>,
    pub(crate) stdin: tokio::sync::Mutex<Option<ChildStdin>>,
    pub(crate) handles_stop: AtomicBool,
}

impl Instance {
    /// A snapshot of what is known of the instance.
    pub(crate) fn info(&self) -> InstanceInfo {
        self.info.borrow().clone()
    }

    /// The current state.
    pub(crate) fn state(&self) -> State {
        self.info.borrow().state
    }

    /// A receiver of every change to the info.
    pub(crate) fn watch(&self) -> watch::Receiver<InstanceInfo> {
        self.info.subscribe()
    }

    /// Updates the info without a state change (no event).
    pub(crate) fn update(&self, f: impl FnOnce(&mut InstanceInfo)) {
        self.info.send_modify(f);
    }

    /// Sends a command to the runner. Returns false if the runner has ended.
    pub(crate) fn command(&self, cmd: Cmd) -> bool {
        self.cmd.send(cmd).is_ok()
    }
}

/// The instances of the server.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    next_id: u64,
    instances: BTreeMap<u64, Arc<Instance>>,
    terminated: VecDeque<u64>,
}

impl Registry {
    pub(crate) fn get(&self, id: u64) -> Option<Arc<Instance>> {
        self.instances.get(&id).cloned()
    }

    pub(crate) fn all(&self) -> Vec<Arc<Instance>> {
        self.instances.values().cloned().collect()
    }

    pub(crate) fn live(&self) -> impl Iterator<Item = &Arc<Instance>> {
        self.instances.values().filter(|i| !i.state().is_terminal())
    }
}

/// What the server's tasks share.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) config: Config,
    pub(crate) keys: Keys,
    pub(crate) session: zenoh::Session,
    /// The endpoint given to instances as `TROUPE_ENDPOINT`.
    pub(crate) endpoint: String,
    pub(crate) guardian: Guardian,
    pub(crate) registry: Mutex<Registry>,
    /// Held while a sequence number is drawn and its event queued, so that
    /// events are published in sequence order.
    seq: Mutex<u64>,
    events: mpsc::UnboundedSender<(String, StateEvent)>,
    pub(crate) shutting_down: AtomicBool,
    pub(crate) started_ms: u64,
    /// The realm's status tree, set once it is ready (see [`crate::status`]).
    pub(crate) status: std::sync::OnceLock<Arc<crate::status::Status>>,
    /// The latest log records filed under this server (see [`crate::logs`]).
    pub(crate) logs: Arc<crate::logs::Recent>,
}

impl Shared {
    pub(crate) fn new(
        config: Config,
        session: zenoh::Session,
        endpoint: String,
        guardian: Guardian,
        events: mpsc::UnboundedSender<(String, StateEvent)>,
    ) -> Self {
        Self {
            keys: Keys::new(config.realm.clone()),
            config,
            session,
            endpoint,
            guardian,
            registry: Mutex::new(Registry {
                next_id: 1,
                ..Registry::default()
            }),
            seq: Mutex::new(0),
            events,
            shutting_down: AtomicBool::new(false),
            started_ms: now_ms(),
            status: std::sync::OnceLock::new(),
            logs: Arc::default(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.config.name
    }

    pub(crate) fn registry(&self) -> std::sync::MutexGuard<'_, Registry> {
        self.registry.lock().expect("registry lock")
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutting_down.load(Ordering::SeqCst)
    }

    /// Creates an instance in `registry` (whose lock the caller holds, having
    /// checked the limits). Returns it with the receiver of its commands.
    pub(crate) fn create(
        &self,
        registry: &mut Registry,
        app: &str,
        args: Vec<String>,
        attached: bool,
        starter: Option<(u64, Option<String>)>,
        output: impl FnOnce(u64) -> OutputRing,
    ) -> (Arc<Instance>, mpsc::UnboundedReceiver<Cmd>) {
        let id = registry.next_id;
        registry.next_id += 1;
        let (cmd, rx) = mpsc::unbounded_channel();
        let info = InstanceInfo {
            id,
            app: app.to_string(),
            server: self.name().to_string(),
            pid: None,
            state: State::Starting,
            exit_code: None,
            signal: None,
            restarts: 0,
            args,
            created_ms: now_ms(),
            started_ms: None,
            ended_ms: None,
            reason: None,
            attached,
            starter: starter.as_ref().map(|(id, _)| *id),
            starter_server: starter.and_then(|(_, server)| server),
            has_result: false,
            history: Vec::new(),
        };
        let inst = Arc::new(Instance {
            id,
            app: app.to_string(),
            info: watch::channel(info).0,
            cmd,
            output: Mutex::new(output(id)),
            kv: watch::channel(BTreeMap::new()).0,
            result: Mutex::new(None),
            stdin: tokio::sync::Mutex::new(None),
            handles_stop: AtomicBool::new(false),
        });
        registry.instances.insert(id, inst.clone());
        (inst, rx)
    }

    /// Moves `inst` to `state`: applies `f` to its info, records the change
    /// in its history and publishes the event.
    pub(crate) fn transition(
        &self,
        inst: &Instance,
        state: State,
        reason: Option<String>,
        f: impl FnOnce(&mut InstanceInfo),
    ) {
        {
            let mut seq = self.seq.lock().expect("seq lock");
            *seq += 1;
            let seq = *seq;
            let time_ms = now_ms();
            let mut event = None;
            inst.info.send_modify(|info| {
                f(info);
                info.state = state;
                info.reason = reason.clone();
                if state.is_terminal() {
                    info.ended_ms = Some(time_ms);
                }
                if info.history.len() >= HISTORY {
                    info.history.remove(1);
                }
                info.history.push(StateChange {
                    seq,
                    state,
                    time_ms,
                    reason: reason.clone(),
                });
                event = Some(StateEvent {
                    seq,
                    server: info.server.clone(),
                    id: info.id,
                    app: info.app.clone(),
                    state,
                    pid: info.pid,
                    exit_code: info.exit_code,
                    signal: info.signal,
                    restarts: info.restarts,
                    reason: reason.clone(),
                    time_ms,
                });
            });
            let key = self.keys.events(self.name(), &inst.app, inst.id);
            if let Some(ev) = event {
                let _ = self.events.send((key, ev));
            }
        }
        tracing::info!(id = inst.id, app = %inst.app, %state, reason = reason.as_deref().unwrap_or(""), "instance state");
        if state.is_terminal() {
            self.forget_terminated(inst.id);
        }
    }

    /// Keeps at most `keep_terminated` terminated instances.
    fn forget_terminated(&self, id: u64) {
        let mut reg = self.registry();
        reg.terminated.push_back(id);
        while reg.terminated.len() > self.config.keep_terminated {
            if let Some(old) = reg.terminated.pop_front() {
                reg.instances.remove(&old);
            }
        }
    }
}
