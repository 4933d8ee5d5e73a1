//! The control queryable: one Zenoh query per request, one JSON reply.

use crate::instance::{Cmd, Instance, Shared};
use crate::output::{LogFile, OutputRing, PUBLISH_QUEUE};
use crate::runner;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use troupe_protocol::control::{KvValue, ResultValue};
use troupe_protocol::{
    validate_name, AppInfo, ControlError, ErrorKind, Hello, OutputBatch, Request, RequestBody,
    Response, State, PROTOCOL_VERSION,
};

type Reply = Result<serde_json::Value, ControlError>;

/// The longest server-side wait a request may ask for.
const MAX_WAIT: Duration = Duration::from_secs(300);
/// How long a start waits for the spawn attempt before replying.
const START_REPLY: Duration = Duration::from_secs(5);

fn err(kind: ErrorKind, msg: impl Into<String>) -> ControlError {
    ControlError::new(kind, msg)
}

fn json<T: serde::Serialize>(v: T) -> Reply {
    serde_json::to_value(v).map_err(|e| err(ErrorKind::Internal, e.to_string()))
}

/// Serves control queries until the queryable is closed.
pub(crate) async fn serve(
    shared: Arc<Shared>,
    queryable: zenoh::query::Queryable<zenoh::handlers::FifoChannelHandler<zenoh::query::Query>>,
) {
    while let Ok(query) = queryable.recv_async().await {
        let shared = shared.clone();
        tokio::spawn(async move {
            let reply = match query.payload() {
                None => Err(err(ErrorKind::Invalid, "empty control request")),
                Some(p) => match serde_json::from_slice::<Request>(&p.to_bytes()) {
                    Err(e) => Err(err(ErrorKind::Invalid, format!("malformed control request: {e}"))),
                    Ok(req) if req.v != PROTOCOL_VERSION => Err(err(
                        ErrorKind::Version,
                        format!("protocol version {} is not spoken here (server speaks {PROTOCOL_VERSION})", req.v),
                    )),
                    Ok(req) => handle(&shared, req.body).await,
                },
            };
            let response = match reply {
                Ok(v) => Response::Ok(v),
                Err(e) => Response::Err(e),
            };
            let body = serde_json::to_vec(&response).unwrap_or_default();
            let key = shared.keys.control(shared.name());
            if let Err(e) = query.reply(key, body).await {
                tracing::warn!("cannot reply to a control query: {e}");
            }
        });
    }
}

fn instance(shared: &Shared, id: u64) -> Result<Arc<Instance>, ControlError> {
    shared.registry().get(id).ok_or_else(|| {
        err(
            ErrorKind::NotFound,
            format!("no instance {id} on server {}", shared.name()),
        )
    })
}

async fn handle(shared: &Arc<Shared>, body: RequestBody) -> Reply {
    match body {
        RequestBody::Hello => json(Hello {
            server: shared.name().to_string(),
            realm: shared.keys.realm().to_string(),
            zid: shared.session.zid().to_string(),
            version: PROTOCOL_VERSION,
            troupe_version: env!("CARGO_PKG_VERSION").to_string(),
            pid: std::process::id(),
            listen: shared.config.listen.clone(),
            started_ms: shared.started_ms,
        }),
        RequestBody::Apps => {
            let reg = shared.registry();
            let apps: Vec<AppInfo> = shared
                .config
                .apps
                .iter()
                .map(|a| AppInfo {
                    name: a.name.clone(),
                    description: a.description.clone(),
                    executable: a.executable.clone(),
                    args: a.args.clone(),
                    multiple: a.multiple,
                    live: reg.live().filter(|i| i.app == a.name).count() as u32,
                    starting_time: a.starting_time.describe(),
                    restart: a.restart.to_string(),
                    stream: a.stream,
                })
                .collect();
            json(apps)
        }
        RequestBody::Ps => {
            let all = shared.registry().all();
            json(
                all.iter()
                    .map(|i| {
                        let mut info = i.info();
                        info.history.clear();
                        info
                    })
                    .collect::<Vec<_>>(),
            )
        }
        RequestBody::Info { id } => json(instance(shared, id)?.info()),
        RequestBody::Start {
            app,
            args,
            starter,
            starter_server,
        } => start(shared, &app, args, starter, starter_server).await,
        RequestBody::Stop { id } => {
            let inst = instance(shared, id)?;
            let state = inst.state();
            if state.is_terminal() {
                return Err(err(
                    ErrorKind::Refused,
                    format!("instance {id} has already ended ({state})"),
                ));
            }
            inst.command(Cmd::Stop);
            settle(&inst, |s| !matches!(s, State::Starting | State::Running)).await;
            json(inst.info())
        }
        RequestBody::Kill { id } => {
            let inst = instance(shared, id)?;
            let state = inst.state();
            if state.is_terminal() {
                return Err(err(
                    ErrorKind::Refused,
                    format!("instance {id} has already ended ({state})"),
                ));
            }
            inst.command(Cmd::Kill);
            settle(&inst, |s| matches!(s, State::Killing) || s.is_terminal()).await;
            json(inst.info())
        }
        RequestBody::Wait {
            id,
            states,
            timeout_ms,
        } => {
            let inst = instance(shared, id)?;
            let limit = Duration::from_millis(timeout_ms).min(MAX_WAIT);
            let mut rx = inst.watch();
            let waited = tokio::time::timeout(
                limit,
                rx.wait_for(|i| i.state.is_terminal() || states.contains(&i.state)),
            )
            .await
            .map(|r| r.map(|info| info.clone()));
            match waited {
                Ok(Ok(info)) => json(info),
                Ok(Err(_)) => Err(err(ErrorKind::Internal, "the instance's runner is gone")),
                Err(_) => Err(err(
                    ErrorKind::Timeout,
                    format!(
                        "instance {id} still {} after {}",
                        inst.state(),
                        humantime::format_duration(limit)
                    ),
                )),
            }
        }
        RequestBody::Output { id, after_seq } => {
            let inst = instance(shared, id)?;
            let batch: OutputBatch = inst.output.lock().expect("output lock").since(after_seq);
            json(batch)
        }
        RequestBody::Stdin { id, data, close } => {
            let inst = instance(shared, id)?;
            let mut stdin = inst.stdin.lock().await;
            let Some(pipe) = stdin.as_mut() else {
                return Err(err(
                    ErrorKind::Refused,
                    format!("instance {id} has no open standard input"),
                ));
            };
            let write = async {
                pipe.write_all(&data).await?;
                pipe.flush().await
            };
            match tokio::time::timeout(Duration::from_secs(5), write).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    *stdin = None;
                    return Err(err(
                        ErrorKind::Refused,
                        format!("standard input of instance {id} is closed: {e}"),
                    ));
                }
                Err(_) => {
                    return Err(err(
                        ErrorKind::Timeout,
                        format!("instance {id} does not read its standard input"),
                    ));
                }
            }
            if close {
                *stdin = None;
            }
            json(())
        }
        RequestBody::Result { id } => {
            let inst = instance(shared, id)?;
            let data = inst.result.lock().expect("result lock").clone();
            json(ResultValue {
                data,
                state: inst.state(),
            })
        }
        RequestBody::KvGet { id, key, wait_ms } => {
            let inst = instance(shared, id)?;
            let mut rx = inst.kv.subscribe();
            let limit = Duration::from_millis(wait_ms).min(MAX_WAIT);
            let found = tokio::time::timeout(limit, rx.wait_for(|m| m.contains_key(&key)))
                .await
                .map(|r| r.is_ok());
            let value = inst.kv.borrow().get(&key).cloned();
            match (value, found) {
                (Some(value), _) => json(KvValue { value }),
                (None, Err(_)) if wait_ms > 0 => Err(err(
                    ErrorKind::Timeout,
                    format!(
                        "key {key:?} did not appear in instance {id} within {}",
                        humantime::format_duration(limit)
                    ),
                )),
                _ => Err(err(
                    ErrorKind::NotFound,
                    format!("no key {key:?} in instance {id}"),
                )),
            }
        }
        RequestBody::KvKeys { id } => {
            let inst = instance(shared, id)?;
            let keys: Vec<String> = inst.kv.borrow().keys().cloned().collect();
            json(keys)
        }
        RequestBody::KvStore { id, key, value } => {
            let inst = instance(shared, id)?;
            if key.is_empty() {
                return Err(err(ErrorKind::Invalid, "empty key"));
            }
            inst.kv.send_modify(|m| {
                m.insert(key, value);
            });
            json(())
        }
        RequestBody::KvRemove { id, key } => {
            let inst = instance(shared, id)?;
            let mut existed = false;
            inst.kv.send_if_modified(|m| {
                existed = m.remove(&key).is_some();
                existed
            });
            json(existed)
        }
        RequestBody::SetRunning { id } => {
            let inst = instance(shared, id)?;
            inst.command(Cmd::SetRunning);
            settle(&inst, |s| s != State::Starting).await;
            json(inst.info())
        }
        RequestBody::SetResult { id, data } => {
            let inst = instance(shared, id)?;
            *inst.result.lock().expect("result lock") = Some(data);
            inst.update(|i| i.has_result = true);
            json(())
        }
        RequestBody::HandleStop { id } => {
            let inst = instance(shared, id)?;
            inst.handles_stop.store(true, Ordering::SeqCst);
            json(())
        }
        RequestBody::Attach { app, pid } => attach(shared, &app, pid).await,
        RequestBody::Logs {
            level,
            app,
            instance,
            last,
        } => {
            if let Some(app) = &app {
                validate_name("app", app).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
            }
            json(shared.logs.query(level, app.as_deref(), instance, last))
        }
        RequestBody::StatusGet { masks } => crate::status::get(shared, &masks),
        RequestBody::StatusFlush => crate::status::flush(shared),
        RequestBody::Detach { id, state } => {
            let inst = instance(shared, id)?;
            if !inst.info().attached {
                return Err(err(
                    ErrorKind::Refused,
                    format!("instance {id} was started by the server; it cannot detach"),
                ));
            }
            if !matches!(state, State::Success | State::Error | State::Stopped) {
                return Err(err(
                    ErrorKind::Invalid,
                    format!("an application detaches with success, error or stopped, not {state}"),
                ));
            }
            inst.command(Cmd::Detach(state));
            settle(&inst, |s| s.is_terminal()).await;
            json(inst.info())
        }
    }
}

/// Waits briefly for the runner to act on a command, so that the reply
/// shows its effect.
async fn settle(inst: &Instance, done: impl Fn(State) -> bool) {
    let mut rx = inst.watch();
    let _ = tokio::time::timeout(Duration::from_secs(2), rx.wait_for(|i| done(i.state))).await;
}

fn check_capacity(shared: &Shared, reg: &crate::instance::Registry) -> Result<(), ControlError> {
    if shared.is_shutting_down() {
        return Err(err(
            ErrorKind::Refused,
            format!("server {} is shutting down", shared.name()),
        ));
    }
    if let Some(max) = shared.config.max_instances {
        let live = reg.live().count();
        if live >= max as usize {
            return Err(err(
                ErrorKind::Refused,
                format!(
                    "server {} already runs {live} instances (max_instances = {max})",
                    shared.name()
                ),
            ));
        }
    }
    Ok(())
}

async fn start(
    shared: &Arc<Shared>,
    app: &str,
    args: Vec<String>,
    starter: Option<u64>,
    starter_server: Option<String>,
) -> Reply {
    // A starter on another server is linked through its liveliness token,
    // which must be visible from here now.
    let remote = match (starter, starter_server) {
        (Some(id), Some(server)) if server != shared.name() => {
            validate_name("server", &server).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
            let key = shared.keys.instance_alive(&server, id);
            if !runner::token_present(&shared.session, &key).await {
                return Err(err(
                    ErrorKind::NotFound,
                    format!(
                        "no starter instance {id} of server {server} is seen from {}",
                        shared.name()
                    ),
                ));
            }
            Some((server, key))
        }
        _ => None,
    };
    let Some(cfg) = shared.config.app(app).cloned() else {
        let names: Vec<_> = shared.config.apps.iter().map(|a| a.name.as_str()).collect();
        return Err(err(
            ErrorKind::NotFound,
            format!(
                "no application {app:?} on server {} (configured: {})",
                shared.name(),
                names.join(", ")
            ),
        ));
    };
    let inst = {
        let mut reg = shared.registry();
        check_capacity(shared, &reg)?;
        if let Some(max) = cfg.multiple {
            let live: Vec<u64> = reg.live().filter(|i| i.app == app).map(|i| i.id).collect();
            if live.len() >= max as usize {
                let ids: Vec<_> = live.iter().map(u64::to_string).collect();
                return Err(err(
                    ErrorKind::Refused,
                    format!(
                        "application {app} allows {max} live instance{} (multiple = {max}); live: {}",
                        if max == 1 { "" } else { "s" },
                        ids.join(", ")
                    ),
                ));
            }
        }
        if let (Some(s), None) = (starter, &remote) {
            if reg.get(s).is_none() {
                return Err(err(ErrorKind::NotFound, format!("no starter instance {s}")));
            }
        }
        let mut all_args = cfg.args.clone();
        all_args.extend(args.iter().cloned());
        let link = starter.map(|id| (id, remote.as_ref().map(|(server, _)| server.clone())));
        let (inst, cmds) = shared.create(&mut reg, app, args, false, link, |id| {
            output_ring(shared, &cfg, id)
        });
        if let Some((_, key)) = &remote {
            tokio::spawn(runner::follow_remote_starter(
                shared.clone(),
                inst.clone(),
                key.clone(),
            ));
        }
        tokio::spawn(runner::run_managed(
            shared.clone(),
            inst.clone(),
            cfg,
            all_args,
            cmds,
        ));
        inst
    };
    // Reply once the spawn was attempted, so the pid (or the error) is known:
    // the first state entered says so. Not `pid.is_some()`: a process that
    // failed at once and waits to restart has its pid cleared again, and a
    // watch shows only the latest value.
    let mut rx = inst.watch();
    let _ = tokio::time::timeout(START_REPLY, rx.wait_for(|i| !i.history.is_empty())).await;
    json(inst.info())
}

async fn attach(shared: &Arc<Shared>, app: &str, pid: u32) -> Reply {
    validate_name("app", app).map_err(|e| err(ErrorKind::Invalid, e.to_string()))?;
    let stopping_time = shared
        .config
        .app(app)
        .map(|a| a.stopping_time)
        .unwrap_or(crate::ATTACHED_STOPPING_TIME);
    let inst = {
        let mut reg = shared.registry();
        check_capacity(shared, &reg)?;
        let cap = shared.config.output_ring;
        let (inst, cmds) = shared.create(&mut reg, app, Vec::new(), true, None, |id| {
            OutputRing::new(id, cap, None, None)
        });
        tokio::spawn(runner::run_attached(
            shared.clone(),
            inst.clone(),
            pid,
            stopping_time,
            cmds,
        ));
        inst
    };
    let mut rx = inst.watch();
    let _ = tokio::time::timeout(START_REPLY, rx.wait_for(|i| i.state != State::Starting)).await;
    json(inst.info())
}

/// Publishes an instance's output batches in order until the end marker.
async fn publish_output(session: zenoh::Session, key: String, mut rx: mpsc::Receiver<OutputBatch>) {
    let publisher = match session
        .declare_publisher(key.clone())
        .congestion_control(zenoh::qos::CongestionControl::Drop)
        .await
    {
        Ok(p) => p,
        Err(e) => {
            tracing::warn!(%key, "cannot publish output: {e}");
            return;
        }
    };
    while let Some(batch) = rx.recv().await {
        let end = batch.end;
        match serde_json::to_vec(&batch) {
            Ok(bytes) if end => {
                // The end marker must not be dropped: blocking congestion control.
                let put = session
                    .put(key.clone(), bytes)
                    .congestion_control(zenoh::qos::CongestionControl::Block);
                if let Err(e) = put.await {
                    tracing::warn!(%key, "end of output not published: {e}");
                }
            }
            Ok(bytes) => {
                if let Err(e) = publisher.put(bytes).await {
                    tracing::debug!(%key, "output batch not published: {e}");
                }
            }
            Err(e) => tracing::warn!("cannot encode output: {e}"),
        }
        if end {
            break;
        }
    }
    let _ = publisher.undeclare().await;
}

/// The output ring of a new managed instance, with its publisher and log file.
fn output_ring(shared: &Shared, cfg: &crate::config::AppConfig, id: u64) -> OutputRing {
    let publish = cfg.stream.then(|| {
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        let key = shared.keys.output(shared.name(), &cfg.name, id);
        tokio::spawn(publish_output(shared.session.clone(), key, rx));
        tx
    });
    let log = match (&cfg.log, &shared.config.log_dir) {
        (Some(l), Some(dir)) => {
            let path = dir.join(format!("{}.{id}.log", cfg.name));
            LogFile::open(path.clone(), l.max_size, l.max_files)
                .map_err(
                    |e| tracing::warn!(path = %path.display(), "cannot open the log file: {e}"),
                )
                .ok()
        }
        _ => None,
    };
    OutputRing::new(id, shared.config.output_ring, publish, log)
}
