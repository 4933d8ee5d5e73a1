//! Lifecycle of instances against a real in-process server: terminal states,
//! `starting_time`, manual running, events and history, bounded waits.

mod common;

use common::*;
use std::time::{Duration, Instant};
use troupe::{Error, State};
use troupe_testkit::{TestServer, TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn success_error_and_crash_are_told_apart() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "ok"
executable = "FIXTURE"
args = ["exit", "0"]
[[app]]
name = "bad"
executable = "FIXTURE"
args = ["exit", "7"]
[[app]]
name = "crash"
executable = "FIXTURE"
args = ["crash"]
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let ok = start(&server, "ok", &[]).await;
    let bad = start(&server, "bad", &[]).await;
    let crash = start(&server, "crash", &[]).await;
    let ok = ended(&ok).await;
    assert_eq!(
        (ok.state, ok.exit_code, ok.signal),
        (State::Success, Some(0), None)
    );
    let bad = ended(&bad).await;
    assert_eq!(
        (bad.state, bad.exit_code, bad.signal),
        (State::Error, Some(7), None)
    );
    let crash = ended(&crash).await;
    assert_eq!(
        (crash.state, crash.exit_code, crash.signal),
        (State::Error, None, Some(11))
    );
    for info in [&ok, &bad, &crash] {
        assert!(info.ended_ms.is_some(), "{info:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn running_only_after_starting_time() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "slow"
executable = "FIXTURE"
args = ["sleep", "30"]
starting_time = "300ms"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "slow", &[]).await;
    let first = next_event(&mut events, inst.id()).await;
    assert_eq!(first.state, State::Starting);
    assert_eq!(
        inst.state().await.unwrap(),
        State::Starting,
        "running too early"
    );
    let running = next_event(&mut events, inst.id()).await;
    assert_eq!(running.state, State::Running);
    let after = running.time_ms - first.time_ms;
    assert!(
        after >= 290,
        "running {after} ms after starting, before starting_time"
    );
    assert!(after < 3000, "running {after} ms after starting");
    assert_eq!(inst.state().await.unwrap(), State::Running);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_exits_at_once_never_runs() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "quick-ok"
executable = "FIXTURE"
args = ["exit", "0"]
starting_time = "5s"
[[app]]
name = "quick-bad"
executable = "FIXTURE"
args = ["exit", "2"]
starting_time = "5s"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    for (app, end) in [("quick-ok", State::Success), ("quick-bad", State::Error)] {
        let inst = start(&server, app, &[]).await;
        let info = ended(&inst).await;
        assert_eq!(info.state, end);
        let history: Vec<State> = inst
            .info()
            .await
            .unwrap()
            .history
            .iter()
            .map(|c| c.state)
            .collect();
        assert_eq!(history, [State::Starting, end], "{app}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manual_starting_time_waits_for_the_app() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "manual"
executable = "FIXTURE"
args = ["manual-running", "800"]
starting_time = "manual"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "manual", &[]).await;
    // The app says it runs 800 ms after it connected: not before.
    let early = inst
        .wait_for_state(&[State::Running], Some(Duration::from_millis(400)))
        .await;
    assert!(matches!(early, Err(Error::Timeout(_))), "{early:?}");
    assert_eq!(inst.state().await.unwrap(), State::Starting);
    let info = reached(&inst, State::Running).await;
    assert_eq!(info.reason.as_deref(), Some("set by the application"));
    let mut out = within("output", inst.output()).await.unwrap();
    line_with(&mut out, "said running").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_manual_app_that_never_says_it_runs_stays_starting() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "mute"
executable = "FIXTURE"
args = ["sleep", "30"]
starting_time = "manual"
stopping_time = "5s"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "mute", &[]).await;
    let r = inst
        .wait_for_state(&[State::Running], Some(Duration::from_millis(1500)))
        .await;
    assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
    assert_eq!(inst.state().await.unwrap(), State::Starting);
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Stopped);
    let history: Vec<State> = info.history.iter().map(|c| c.state).collect();
    assert!(!history.contains(&State::Running), "{history:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_come_in_order_and_history_keeps_them() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "svc"
executable = "FIXTURE"
args = ["sleep", "30"]
starting_time = "100ms"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let mut all = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "svc", &[]).await;
    let mut own = within("events", inst.events()).await.unwrap();
    reached(&inst, State::Running).await;
    within("stop", inst.stop()).await.unwrap();

    let seen = events_until_end(&mut all, inst.id()).await;
    assert_eq!(
        states(&seen),
        [
            State::Starting,
            State::Running,
            State::Stopping,
            State::Stopped
        ]
    );
    assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq), "{seen:?}");
    assert!(
        seen.windows(2).all(|w| w[0].time_ms <= w[1].time_ms),
        "{seen:?}"
    );
    assert!(seen
        .iter()
        .all(|e| e.app == "svc" && e.server == server.name()));
    let pid = seen[0].pid.expect("pid in the starting event");
    assert!(seen.iter().all(|e| e.pid == Some(pid)), "{seen:?}");
    assert_eq!(
        seen[3].signal,
        Some(15),
        "stopped by SIGTERM: {:?}",
        seen[3]
    );

    // The instance's own stream: the same events from where it joined, then it ends.
    let mut mine = Vec::new();
    while let Some(ev) = own.next_timeout(TIMEOUT).await.unwrap() {
        mine.push(ev);
    }
    assert!(!mine.is_empty());
    assert_eq!(mine[..], seen[seen.len() - mine.len()..]);

    // The history keeps every state, with the events' numbers.
    let info = inst.info().await.unwrap();
    let history: Vec<(u64, State)> = info.history.iter().map(|c| (c.seq, c.state)).collect();
    let events: Vec<(u64, State)> = seen.iter().map(|e| (e.seq, e.state)).collect();
    assert_eq!(history, events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequence_numbers_increase_across_instances() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "blip"
executable = "FIXTURE"
args = ["exit", "0"]
multiple = "unlimited"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let mut all = within("watch", server.watch()).await.unwrap();
    let mut insts = Vec::new();
    for _ in 0..4 {
        insts.push(start(&server, "blip", &[]).await);
    }
    for inst in &insts {
        ended(inst).await;
    }
    // Every instance: starting, running (starting_time 0), success, at least.
    let mut seen = Vec::new();
    let mut done = 0;
    while done < insts.len() {
        let ev = all.next_timeout(TIMEOUT).await.unwrap().expect("events");
        if ev.state.is_terminal() {
            done += 1;
        }
        seen.push(ev);
    }
    assert!(seen.windows(2).all(|w| w[0].seq < w[1].seq), "{seen:?}");
    for inst in &insts {
        let mine: Vec<State> = seen
            .iter()
            .filter(|e| e.id == inst.id())
            .map(|e| e.state)
            .collect();
        assert_eq!(mine.first(), Some(&State::Starting), "{mine:?}");
        assert_eq!(mine.last(), Some(&State::Success), "{mine:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bounded_wait_times_out_and_leaves_the_instance_alone() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "long"
executable = "FIXTURE"
args = ["sleep", "30"]
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "long", &[]).await;
    reached(&inst, State::Running).await;
    let t = Instant::now();
    let r = inst.wait_for(Some(Duration::from_millis(200))).await;
    let took = t.elapsed();
    assert!(matches!(r, Err(Error::Timeout(_))), "{r:?}");
    assert!(
        took >= Duration::from_millis(190),
        "timed out early: {took:?}"
    );
    assert!(took < Duration::from_secs(2), "timed out late: {took:?}");
    let info = inst.info().await.unwrap();
    assert_eq!(info.state, State::Running);
    assert_eq!(info.history.len(), 2, "{:?}", info.history);
}

/// Shuts the server down from a plain thread, after `delay`.
fn shut_down_later(s: TestServer, delay: Duration) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        std::thread::sleep(delay);
        s.shutdown();
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waits_end_when_the_server_shuts_down() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "long"
executable = "FIXTURE"
args = ["sleep", "30"]
stopping_time = "2s"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "long", &[]).await;
    reached(&inst, State::Running).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let waiter = {
        let inst = inst.clone();
        tokio::spawn(async move { inst.wait_for(None).await })
    };
    // A key the instance never stores: only the server's end ends this wait.
    let getter = {
        let inst = inst.clone();
        tokio::spawn(async move { inst.get("never", Duration::from_secs(60)).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await; // both requests under way
    let t = Instant::now();
    let shutdown = shut_down_later(s, Duration::ZERO);

    // The instance is stopped by the shutdown: the wait sees it end, or the
    // server go, whichever comes first; it does not hang.
    let waited = within("the wait", waiter).await.unwrap();
    match &waited {
        Ok(info) => assert!(info.state.is_terminal(), "{info:?}"),
        Err(e) => assert!(e.is_server_gone(), "{e}"),
    }
    let got = within("the get", getter).await.unwrap();
    assert!(matches!(&got, Err(e) if e.is_server_gone()), "{got:?}");
    let took = t.elapsed();
    assert!(
        took < Duration::from_secs(5),
        "the waits ended {took:?} after the shutdown began"
    );
    tokio::task::spawn_blocking(move || shutdown.join().unwrap())
        .await
        .unwrap();

    // A watch sees the instance stopped, then the server die.
    let seen = events_until_end(&mut events, inst.id()).await;
    assert_eq!(states(&seen), [State::Stopping, State::Stopped]);
    let last = events.next_timeout(TIMEOUT).await;
    assert!(matches!(last, Err(Error::ServerDied(_))), "{last:?}");
    assert!(events.server_died());

    // And a new wait on the dead server fails at once rather than hanging.
    let t = Instant::now();
    let r = inst.wait_for(Some(TIMEOUT)).await;
    assert!(matches!(&r, Err(e) if e.is_server_gone()), "{r:?}");
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}
