//! Restart policies: on-failure, always, never; the limit within the window,
//! the doubling delay, and a stop during the delay.

mod common;

use common::*;
use std::time::{Duration, Instant};
use troupe::{State, StateEvent};
use troupe_testkit::{TestServer, TIMEOUT};

/// The events that launched a process (the first start and each restart).
fn launches(events: &[StateEvent]) -> Vec<&StateEvent> {
    events
        .iter()
        .filter(|e| {
            e.state == State::Starting
                && e.pid.is_some()
                && e.reason
                    .as_deref()
                    .is_none_or(|r| r.starts_with("restart "))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_restarts_then_gives_up() {
    let s = TestServer::start(
        r#"
[[app]]
name = "failing"
executable = "sh"
args = ["-c", "echo run; exit 3"]
restart = "on-failure"
restart_delay = "100ms"
max_restarts = 2
restart_window = "30s"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "failing", &[]).await;
    let seen = events_until_end(&mut events, inst.id()).await;
    let end = seen.last().unwrap();
    assert_eq!(
        (end.state, end.exit_code, end.restarts),
        (State::Error, Some(3), 2),
        "{end:?}"
    );
    let reason = end.reason.as_deref().unwrap_or("");
    assert!(
        reason.contains("gave up after 2 restarts within 30s"),
        "{reason}"
    );
    let launched = launches(&seen);
    let counts: Vec<u32> = launched.iter().map(|e| e.restarts).collect();
    assert_eq!(counts, [0, 1, 2], "{seen:?}");
    let pids: std::collections::HashSet<_> = launched.iter().map(|e| e.pid).collect();
    assert_eq!(pids.len(), 3, "each restart is a new process");
    // Between two runs, the instance is back to starting, waiting to restart.
    let waiting = seen
        .iter()
        .filter(|e| {
            e.state == State::Starting
                && e.reason.as_deref().unwrap_or("").contains("restarting in")
        })
        .count();
    assert_eq!(waiting, 2, "{seen:?}");
    let info = inst.info().await.unwrap();
    assert_eq!((info.state, info.restarts), (State::Error, 2));
    // The output of every run is kept, in one numbered sequence.
    let out = all_output(&inst).await;
    assert_eq!(texts(&out), ["run", "run", "run"]);
    assert_eq!(out.iter().map(|l| l.seq).collect::<Vec<_>>(), [1, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_failure_does_not_restart_a_success() {
    let s = TestServer::start(
        r#"
[[app]]
name = "fine"
executable = "true"
restart = "on-failure"
restart_delay = "100ms"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "fine", &[]).await;
    let info = ended(&inst).await;
    assert_eq!((info.state, info.restarts), (State::Success, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_restarts_after_a_success() {
    let s = TestServer::start(
        r#"
[[app]]
name = "again"
executable = "true"
restart = "always"
restart_delay = "100ms"
max_restarts = 2
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "again", &[]).await;
    let seen = events_until_end(&mut events, inst.id()).await;
    assert_eq!(launches(&seen).len(), 3, "{seen:?}");
    let end = seen.last().unwrap();
    assert_eq!((end.exit_code, end.restarts), (Some(0), 2), "{end:?}");
    assert!(
        end.reason
            .as_deref()
            .unwrap_or("")
            .contains("gave up after 2 restarts"),
        "{end:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn never_does_not_restart() {
    let s = TestServer::start(
        r#"
[[app]]
name = "once"
executable = "sh"
args = ["-c", "exit 3"]
restart = "never"
restart_delay = "100ms"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "once", &[]).await;
    let seen = events_until_end(&mut events, inst.id()).await;
    assert_eq!(launches(&seen).len(), 1, "{seen:?}");
    let end = seen.last().unwrap();
    assert_eq!(
        (end.state, end.exit_code, end.restarts),
        (State::Error, Some(3), 0)
    );
    assert_eq!(end.reason.as_deref(), Some("exit code 3"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_restart_delay_doubles() {
    let s = TestServer::start(
        r#"
[[app]]
name = "failing"
executable = "sh"
args = ["-c", "exit 1"]
restart = "on-failure"
restart_delay = "200ms"
restart_max_delay = "10s"
max_restarts = 3
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "failing", &[]).await;
    let seen = events_until_end(&mut events, inst.id()).await;
    // The wait between the end of a run (the instance back to starting) and
    // the next launch: 200, 400, 800 ms (each at least twice the previous).
    let mut waits = Vec::new();
    for (i, ev) in seen.iter().enumerate() {
        if ev.state == State::Starting && ev.pid.is_none() {
            let next = seen[i + 1..]
                .iter()
                .find(|e| e.pid.is_some())
                .expect("a relaunch");
            waits.push(next.time_ms - ev.time_ms);
        }
    }
    assert_eq!(launches(&seen).len(), 4, "{seen:?}");
    assert_eq!(waits.len(), 3, "{seen:?}");
    for (wait, delay) in waits.iter().zip([200, 400, 800]) {
        assert!((delay - 5..delay + 1000).contains(wait), "{waits:?}");
    }
    let reasons: Vec<_> = seen
        .iter()
        .filter_map(|e| e.reason.as_deref())
        .filter(|r| r.contains("restarting in"))
        .collect();
    assert_eq!(
        reasons,
        [
            "exit code 1; restarting in 200ms",
            "exit code 1; restarting in 400ms",
            "exit code 1; restarting in 800ms"
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_outside_the_window_do_not_count() {
    // Each run lasts longer than the window: the limit of one restart never hits.
    let s = TestServer::start(
        r#"
[[app]]
name = "flaky"
executable = "sh"
args = ["-c", "sleep 0.4; exit 1"]
restart = "on-failure"
restart_delay = "50ms"
restart_max_delay = "50ms"
max_restarts = 1
restart_window = "300ms"
stopping_time = "5s"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "flaky", &[]).await;
    loop {
        let ev = next_event(&mut events, inst.id()).await;
        assert!(
            !ev.state.is_terminal(),
            "gave up although the restarts were spread out: {ev:?}"
        );
        if ev.restarts >= 3 {
            break;
        }
    }
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stop_during_the_restart_delay_ends_stopped_at_once() {
    let s = TestServer::start(
        r#"
[[app]]
name = "failing"
executable = "sh"
args = ["-c", "exit 3"]
restart = "on-failure"
restart_delay = "10s"
restart_max_delay = "10s"
stopping_time = "10s"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "failing", &[]).await;
    let waiting = loop {
        let ev = next_event(&mut events, inst.id()).await;
        if ev
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("restarting in 10s")
        {
            break ev;
        }
        assert!(!ev.state.is_terminal(), "{ev:?}");
    };
    assert_eq!(
        (waiting.state, waiting.pid, waiting.restarts),
        (State::Starting, None, 1)
    );
    let t = Instant::now();
    let info = within("stop", inst.stop()).await.unwrap();
    assert_eq!(info.state, State::Stopped, "{info:?}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_eq!(
        info.reason.as_deref(),
        Some("stopped while waiting to restart")
    );
    let end = next_event(&mut events, inst.id()).await;
    assert_eq!(end.state, State::Stopped, "relaunched instead: {end:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_answers_at_once_for_an_app_that_fails_at_once() {
    // The start reply waits for the spawn: an app that has already failed and
    // waits to restart (its pid cleared) must not hold it up.
    let s = TestServer::start(
        r#"
[[app]]
name = "failing"
executable = "sh"
args = ["-c", "exit 3"]
restart = "on-failure"
restart_delay = "10s"
restart_max_delay = "10s"
multiple = "unlimited"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let mut slow = Vec::new();
    for _ in 0..30 {
        let t = Instant::now();
        let inst = start(&server, "failing", &[]).await;
        if t.elapsed() > Duration::from_secs(2) {
            slow.push((inst.id(), t.elapsed()));
        }
    }
    assert_eq!(slow, [], "slow start replies");
}
