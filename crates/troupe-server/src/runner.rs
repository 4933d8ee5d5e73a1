//! The runner of an instance: the one task that owns its process and drives
//! its state machine.
//!
//! A managed instance is a child process in its own process group, spawned
//! with `posix_spawn` (std's `Command` with `process_group(0)` and no
//! `pre_exec`). Stop sends `stop_signal` to the group (or runs `stop_command`,
//! or only publishes `stopping` when the application handles stop requests
//! itself), waits `stopping_time`, then kills the group. When the main
//! process ends, whatever is left of its group is killed, so an instance
//! leaves no process behind.

use crate::config::{AppConfig, CommandLine, RestartPolicy, StartingTime};
use crate::instance::{Cmd, Instance, Shared};
use crate::output::pump;
use nix::sys::signal::{kill, killpg, Signal};
use nix::unistd::Pid;
use std::collections::VecDeque;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;
use troupe_protocol::{env, now_ms, State, Stream};

/// How long the output pumps may take to drain after the process ended (a
/// process that escaped the group may hold the pipes open).
const DRAIN: Duration = Duration::from_secs(2);

/// How the supervision of one process ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ending {
    /// The process ended by itself.
    Exited,
    /// A stop was asked and the process ended within `stopping_time`.
    Stopped,
    /// The process group was killed.
    Killed,
}

/// Resolves an executable name: a path is kept; a bare name is looked up in
/// `PATH`, then beside the server's own executable (so that programs built
/// with troupe are found without installing them). Resolving here also keeps
/// std's `Command` on its `posix_spawn` path.
pub(crate) fn resolve_executable(name: &str, app_path: Option<&str>) -> PathBuf {
    if name.contains('/') {
        return PathBuf::from(name);
    }
    let path = app_path
        .map(str::to_string)
        .or_else(|| std::env::var("PATH").ok())
        .unwrap_or_default();
    let is_exec = |p: &Path| {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
            .unwrap_or(false)
    };
    for dir in path.split(':').filter(|d| !d.is_empty()) {
        let p = Path::new(dir).join(name);
        if is_exec(&p) {
            return p;
        }
    }
    if let Some(dir) = std::env::current_exe()
        .ok()
        .and_then(|e| e.parent().map(Path::to_path_buf))
    {
        let p = dir.join(name);
        if is_exec(&p) {
            return p;
        }
    }
    PathBuf::from(name)
}

/// A people's description of how a process ended.
pub(crate) fn describe_exit(status: &ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(c), _) => format!("exit code {c}"),
        (None, Some(s)) => match Signal::try_from(s) {
            Ok(sig) => format!("killed by signal {s} ({})", sig.as_str()),
            Err(_) => format!("killed by signal {s}"),
        },
        _ => "ended".to_string(),
    }
}

fn signal_group(pgid: u32, sig: Signal) {
    // ESRCH (group already gone) is the normal case after an exit.
    let _ = killpg(Pid::from_raw(pgid as i32), sig);
}

async fn sleep_opt(deadline: Option<Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

fn command(
    shared: &Shared,
    inst: &Instance,
    app: &AppConfig,
    program: &Path,
    args: &[String],
) -> tokio::process::Command {
    let mut cmd = tokio::process::Command::new(program);
    cmd.args(args)
        .envs(&app.env)
        .env(env::ENDPOINT, &shared.endpoint)
        .env(env::SERVER, shared.name())
        .env(env::APP, &inst.app)
        .env(env::INSTANCE, inst.id.to_string())
        .env(env::REALM, shared.keys.realm())
        .env(env::MODE, app.mode.as_str())
        .process_group(0)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(false);
    if let Some(dir) = &app.working_dir {
        cmd.current_dir(dir);
    }
    // The server's own Zenoh settings are not the instances'.
    if crate::tuned() && !app.env.contains_key(crate::ZENOH_RUNTIME_VAR) {
        cmd.env_remove(crate::ZENOH_RUNTIME_VAR);
    }
    match &app.device {
        Some(device) => {
            cmd.env(env::DEVICE, device.to_json());
        }
        // Not one inherited from the server's own environment.
        None if !app.env.contains_key(env::DEVICE) => {
            cmd.env_remove(env::DEVICE);
        }
        None => {}
    }
    cmd
}

/// Runs `stop_command` or `error_command` in its own process group, its
/// output going to the instance's output, for at most `limit`.
async fn run_aux(
    shared: Arc<Shared>,
    inst: Arc<Instance>,
    app: AppConfig,
    line: CommandLine,
    pid: Option<u32>,
    limit: Duration,
) {
    let program = resolve_executable(&line.executable, app.env.get("PATH").map(String::as_str));
    let mut cmd = command(&shared, &inst, &app, &program, &line.args);
    cmd.stdin(Stdio::null());
    if let Some(pid) = pid {
        cmd.env("TROUPE_PID", pid.to_string());
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            inst.output.lock().expect("output lock").push_lines(
                Stream::Err,
                vec![format!("troupe: cannot run {}: {e}", program.display()).into_bytes()],
            );
            return;
        }
    };
    let Some(aux_pid) = child.id() else { return };
    shared.guardian.watch(aux_pid);
    let readers = [
        child
            .stdout
            .take()
            .map(|p| tokio::spawn(pump(inst.clone(), Stream::Out, p))),
        child
            .stderr
            .take()
            .map(|p| tokio::spawn(pump(inst.clone(), Stream::Err, p))),
    ];
    if tokio::time::timeout(limit, child.wait()).await.is_err() {
        inst.output.lock().expect("output lock").push_lines(
            Stream::Err,
            vec![format!(
                "troupe: {} did not end within {}; killed",
                program.display(),
                humantime::format_duration(limit)
            )
            .into_bytes()],
        );
    }
    signal_group(aux_pid, Signal::SIGKILL);
    let _ = child.wait().await;
    shared.guardian.forget(aux_pid);
    for r in readers.into_iter().flatten() {
        let _ = tokio::time::timeout(DRAIN, r).await;
    }
}

/// Marks the output complete and publishes the end marker.
async fn end_output(inst: &Instance) {
    let tx = inst.output.lock().expect("output lock").end();
    if let Some(tx) = tx {
        let _ = tx
            .send(troupe_protocol::OutputBatch {
                id: inst.id,
                lines: Vec::new(),
                end: true,
                dropped_upto: 0,
            })
            .await;
    }
}

/// Ends the instance in a terminal `state`: output first, then the event,
/// then the instances it started (linked to it) are asked to stop.
async fn terminate(shared: &Shared, inst: &Instance, state: State, reason: Option<String>) {
    end_output(inst).await;
    shared.transition(inst, state, reason, |_| {});
    let linked: Vec<_> = shared
        .registry()
        .live()
        .filter(|i| i.info().starter == Some(inst.id))
        .cloned()
        .collect();
    for child in linked {
        tracing::info!(
            id = child.id,
            starter = inst.id,
            "stopping an instance whose starter ended"
        );
        child.command(Cmd::Stop);
    }
}

/// Runs a managed instance to its terminal state.
pub(crate) async fn run_managed(
    shared: Arc<Shared>,
    inst: Arc<Instance>,
    app: AppConfig,
    args: Vec<String>,
    mut cmds: UnboundedReceiver<Cmd>,
) {
    let program = resolve_executable(&app.executable, app.env.get("PATH").map(String::as_str));
    let mut restarts = 0u32;
    let mut delay = app.restart_delay;
    let mut restart_times: VecDeque<Instant> = VecDeque::new();
    let mut restart_reason: Option<String> = None;
    loop {
        let mut child = match command(&shared, &inst, &app, &program, &args).spawn() {
            Ok(c) => c,
            Err(e) => {
                let reason = format!("cannot start {}: {e}", program.display());
                terminate(&shared, &inst, State::Error, Some(reason)).await;
                return;
            }
        };
        let pid = child.id().expect("a child just spawned has a pid");
        shared.guardian.watch(pid);
        let started = Instant::now();
        *inst.stdin.lock().await = child.stdin.take();
        let readers = [
            child
                .stdout
                .take()
                .map(|p| tokio::spawn(pump(inst.clone(), Stream::Out, p))),
            child
                .stderr
                .take()
                .map(|p| tokio::spawn(pump(inst.clone(), Stream::Err, p))),
        ];
        shared.transition(&inst, State::Starting, restart_reason.take(), |i| {
            i.pid = Some(pid);
            i.started_ms = Some(now_ms());
            i.exit_code = None;
            i.signal = None;
            i.restarts = restarts;
        });

        let (status, ending) = supervise(&shared, &inst, &app, &mut child, &mut cmds, pid).await;

        signal_group(pid, Signal::SIGKILL);
        shared.guardian.forget(pid);
        *inst.stdin.lock().await = None;
        for r in readers.into_iter().flatten() {
            if tokio::time::timeout(DRAIN, r).await.is_err() {
                tracing::warn!(id = inst.id, "output still open {DRAIN:?} after the process ended (a process left its group?)");
            }
        }
        inst.update(|i| {
            i.exit_code = status.code();
            i.signal = status.signal();
        });
        let outcome = describe_exit(&status);

        match ending {
            Ending::Stopped => {
                terminate(&shared, &inst, State::Stopped, Some(outcome)).await;
                return;
            }
            Ending::Killed => {
                terminate(&shared, &inst, State::Killed, Some(outcome)).await;
                return;
            }
            Ending::Exited => {}
        }
        let success = status.success();
        if !success {
            if let Some(line) = app.error_command.clone() {
                shared.transition(&inst, State::ProcessingError, Some(outcome.clone()), |_| {});
                run_aux(
                    shared.clone(),
                    inst.clone(),
                    app.clone(),
                    line,
                    Some(pid),
                    app.stopping_time,
                )
                .await;
            }
        }
        let wanted = match app.restart {
            RestartPolicy::Never => false,
            RestartPolicy::OnFailure => !success,
            RestartPolicy::Always => true,
        };
        if !wanted || shared.is_shutting_down() {
            let state = if success {
                State::Success
            } else {
                State::Error
            };
            terminate(&shared, &inst, state, Some(outcome)).await;
            return;
        }
        let now = Instant::now();
        restart_times.retain(|t| now.duration_since(*t) < app.restart_window);
        if restart_times.len() as u32 >= app.max_restarts {
            let reason = format!(
                "{outcome}; gave up after {} restarts within {}",
                restart_times.len(),
                humantime::format_duration(app.restart_window)
            );
            terminate(&shared, &inst, State::Error, Some(reason)).await;
            return;
        }
        if started.elapsed() >= app.restart_max_delay {
            // A stable run resets the back-off.
            delay = app.restart_delay;
        }
        let reason = format!(
            "{outcome}; restarting in {}",
            humantime::format_duration(delay)
        );
        shared.transition(&inst, State::Starting, Some(reason), |i| {
            i.pid = None;
            i.restarts = restarts + 1;
        });
        let wake = Instant::now() + delay;
        loop {
            tokio::select! {
                _ = tokio::time::sleep_until(wake) => break,
                cmd = cmds.recv() => match cmd {
                    Some(Cmd::Stop) => {
                        terminate(&shared, &inst, State::Stopped, Some("stopped while waiting to restart".into())).await;
                        return;
                    }
                    Some(Cmd::Kill) => {
                        terminate(&shared, &inst, State::Killed, Some("killed while waiting to restart".into())).await;
                        return;
                    }
                    Some(_) => {}
                    None => break,
                },
            }
        }
        restarts += 1;
        restart_times.push_back(Instant::now());
        delay = (delay * 2).min(app.restart_max_delay);
        restart_reason = Some(format!("restart {restarts}"));
    }
}

/// Watches one process until it ends; handles running, stop and kill.
async fn supervise(
    shared: &Arc<Shared>,
    inst: &Arc<Instance>,
    app: &AppConfig,
    child: &mut tokio::process::Child,
    cmds: &mut UnboundedReceiver<Cmd>,
    pid: u32,
) -> (ExitStatus, Ending) {
    let mut running = false;
    let running_at = match app.starting_time {
        // Zero means running once spawned: no timer (tokio's have a 1 ms tick).
        StartingTime::After(d) if d.is_zero() => {
            running = true;
            shared.transition(inst, State::Running, None, |_| {});
            None
        }
        StartingTime::After(d) => Some(Instant::now() + d),
        StartingTime::Manual => None,
    };
    let mut ending = Ending::Exited;
    let mut kill_at: Option<Instant> = None;
    let mut cmds_open = true;
    loop {
        tokio::select! {
            status = child.wait() => {
                let status = status.unwrap_or_else(|e| {
                    tracing::error!(id = inst.id, "waiting for the process failed: {e}");
                    ExitStatus::from_raw(255 << 8)
                });
                return (status, ending);
            }
            _ = sleep_opt(running_at), if !running && ending == Ending::Exited && running_at.is_some() => {
                running = true;
                shared.transition(inst, State::Running, None, |_| {});
            }
            _ = sleep_opt(kill_at), if kill_at.is_some() => {
                kill_at = None;
                ending = Ending::Killed;
                let reason = format!("did not stop within {}", humantime::format_duration(app.stopping_time));
                shared.transition(inst, State::Killing, Some(reason), |_| {});
                signal_group(pid, Signal::SIGKILL);
            }
            cmd = cmds.recv(), if cmds_open => match cmd {
                Some(Cmd::SetRunning) => {
                    if !running && ending == Ending::Exited {
                        running = true;
                        shared.transition(inst, State::Running, Some("set by the application".into()), |_| {});
                    }
                }
                Some(Cmd::Stop) => {
                    if ending == Ending::Exited {
                        ending = Ending::Stopped;
                        kill_at = Some(Instant::now() + app.stopping_time);
                        shared.transition(inst, State::Stopping, None, |_| {});
                        if let Some(line) = app.stop_command.clone() {
                            tokio::spawn(run_aux(shared.clone(), inst.clone(), app.clone(), line, Some(pid), app.stopping_time));
                        } else if !inst.handles_stop.load(Ordering::SeqCst) {
                            signal_group(pid, app.stop_signal);
                        }
                    }
                }
                Some(Cmd::Kill) => {
                    if ending != Ending::Killed {
                        ending = Ending::Killed;
                        kill_at = None;
                        shared.transition(inst, State::Killing, None, |_| {});
                        signal_group(pid, Signal::SIGKILL);
                    }
                }
                Some(Cmd::Detach(_)) => {}
                None => cmds_open = false,
            },
        }
    }
}

/// How long an attached application has to declare its liveliness token.
const ATTACH_GRACE: Duration = Duration::from_secs(10);

/// Runs an attached instance (an application that was not started by the
/// server): it lives while its liveliness token does.
pub(crate) async fn run_attached(
    shared: Arc<Shared>,
    inst: Arc<Instance>,
    pid: u32,
    stopping_time: Duration,
    mut cmds: UnboundedReceiver<Cmd>,
) {
    let key = shared.keys.instance_alive(shared.name(), inst.id);
    let tokens = match shared
        .session
        .liveliness()
        .declare_subscriber(&key)
        .history(true)
        .await
    {
        Ok(s) => s,
        Err(e) => {
            terminate(
                &shared,
                &inst,
                State::Error,
                Some(format!("cannot watch the application: {e}")),
            )
            .await;
            return;
        }
    };
    shared.transition(&inst, State::Starting, Some("attached".into()), |i| {
        i.pid = Some(pid);
        i.started_ms = Some(now_ms());
    });
    shared.transition(&inst, State::Running, None, |_| {});
    let connect_by = Instant::now() + ATTACH_GRACE;
    let mut seen = false;
    let mut ending = Ending::Exited;
    let mut kill_at: Option<Instant> = None;
    let mut give_up_at: Option<Instant> = None;
    let mut cmds_open = true;
    let reason = loop {
        tokio::select! {
            sample = tokens.recv_async() => match sample {
                Ok(s) if s.kind() == zenoh::sample::SampleKind::Put => seen = true,
                Ok(_) => break "its connection ended".to_string(),
                Err(_) => break "the server is closing".to_string(),
            },
            _ = tokio::time::sleep_until(connect_by), if !seen => {
                break format!("it did not connect within {}", humantime::format_duration(ATTACH_GRACE));
            }
            _ = sleep_opt(kill_at), if kill_at.is_some() => {
                kill_at = None;
                ending = Ending::Killed;
                shared.transition(&inst, State::Killing, Some("did not stop in time".into()), |_| {});
                let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                give_up_at = Some(Instant::now() + Duration::from_secs(5));
            }
            _ = sleep_opt(give_up_at), if give_up_at.is_some() => break "its connection did not end after the kill".to_string(),
            cmd = cmds.recv(), if cmds_open => match cmd {
                Some(Cmd::Stop) if ending == Ending::Exited => {
                    ending = Ending::Stopped;
                    kill_at = Some(Instant::now() + stopping_time);
                    shared.transition(&inst, State::Stopping, None, |_| {});
                    if !inst.handles_stop.load(Ordering::SeqCst) {
                        let _ = kill(Pid::from_raw(pid as i32), Signal::SIGTERM);
                    }
                }
                Some(Cmd::Kill) if ending != Ending::Killed => {
                    ending = Ending::Killed;
                    kill_at = None;
                    shared.transition(&inst, State::Killing, None, |_| {});
                    let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
                    give_up_at = Some(Instant::now() + Duration::from_secs(5));
                }
                Some(Cmd::Detach(state)) => {
                    let state = match (ending, state) {
                        (Ending::Stopped, _) => State::Stopped,
                        (_, s) => s,
                    };
                    terminate(&shared, &inst, state, Some("detached".into())).await;
                    return;
                }
                Some(_) => {}
                None => cmds_open = false,
            },
        }
    };
    let state = match ending {
        Ending::Exited => State::Error,
        Ending::Stopped => State::Stopped,
        Ending::Killed => State::Killed,
    };
    terminate(&shared, &inst, state, Some(reason)).await;
}

/// How long a remote starter's token may be away (a link that closes and
/// reopens) before the instances it started are stopped.
const STARTER_GRACE: Duration = Duration::from_secs(1);

/// The bound of one liveliness query about a remote starter.
const STARTER_QUERY: Duration = Duration::from_secs(2);

/// Whether a liveliness token is at `key` now (one query, bounded).
pub(crate) async fn token_present(session: &zenoh::Session, key: &str) -> bool {
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let asked = session
        .liveliness()
        .get(key)
        .timeout(STARTER_QUERY)
        .callback(move |reply| {
            let _ = tx.send(reply.result().is_ok());
        })
        .await;
    if asked.is_err() {
        return false;
    }
    let found = tokio::time::timeout(STARTER_QUERY + Duration::from_secs(1), async {
        while let Some(ok) = rx.recv().await {
            if ok {
                return true;
            }
        }
        false
    })
    .await;
    found.unwrap_or(false)
}

/// Stops `inst` when its starter, an instance of another server, goes away:
/// its liveliness token at `key` is withdrawn and still absent after
/// [`STARTER_GRACE`]. Ends when `inst` terminates.
pub(crate) async fn follow_remote_starter(shared: Arc<Shared>, inst: Arc<Instance>, key: String) {
    let (tx, mut changes) = tokio::sync::mpsc::unbounded_channel();
    let sub = shared
        .session
        .liveliness()
        .declare_subscriber(&key)
        .callback(move |sample| {
            let _ = tx.send(sample.kind() == zenoh::sample::SampleKind::Put);
        })
        .await;
    let _sub = match sub {
        Ok(sub) => sub,
        Err(e) => {
            tracing::warn!(id = inst.id, error = %e, "cannot follow the remote starter: stopping");
            inst.command(Cmd::Stop);
            return;
        }
    };
    let mut info = inst.watch();
    // Withdrawn between the check at start and this subscription?
    let mut absent_since = (!token_present(&shared.session, &key).await).then(Instant::now);
    loop {
        if info.borrow().state.is_terminal() {
            return;
        }
        if let Some(since) = absent_since {
            if since.elapsed() >= STARTER_GRACE {
                if token_present(&shared.session, &key).await {
                    absent_since = None;
                    continue;
                }
                tracing::info!(id = inst.id, starter = %key, "stopping an instance whose remote starter ended");
                inst.command(Cmd::Stop);
                return;
            }
        }
        let wake = absent_since.map(|s| s + STARTER_GRACE);
        tokio::select! {
            change = changes.recv() => match change {
                Some(true) => absent_since = None,
                Some(false) => { absent_since.get_or_insert_with(Instant::now); }
                None => return, // the session closed
            },
            r = info.changed() => if r.is_err() { return },
            () = sleep_opt(wake) => {}
        }
    }
}
