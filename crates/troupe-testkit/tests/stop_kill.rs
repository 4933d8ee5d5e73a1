//! Stopping and killing: the stop signal, `stopping_time` then the kill,
//! `kill`, a custom `stop_signal`, `stop_command`, `error_command`, and
//! applications that handle stop requests themselves.

mod common;

use common::*;
use std::time::{Duration, Instant};
use troupe::State;
use troupe_testkit::{TestServer, TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_sends_the_stop_signal_and_ends_stopped() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "sleeper"
executable = "FIXTURE"
args = ["sleep", "30"]
stopping_time = "10s"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "sleeper", &[]).await;
    reached(&inst, State::Running).await;
    let t = Instant::now();
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Stopped, "{info:?}");
    assert_eq!(
        (info.exit_code, info.signal),
        (None, Some(15)),
        "ended by SIGTERM"
    );
    assert!(
        t.elapsed() < Duration::from_secs(5),
        "not stopped by the signal: {:?}",
        t.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_ignoring_the_stop_signal_is_killed_after_stopping_time() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "stubborn"
executable = "FIXTURE"
args = ["ignore-term"]
stopping_time = "500ms"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "stubborn", &[]).await;
    let mut out = within("output", inst.output()).await.unwrap();
    line_with(&mut out, "ready").await; // its SIGTERM handler is in place
    within("stop", inst.stop()).await.unwrap();
    let stopping = event_in(&mut events, inst.id(), State::Stopping).await;
    let killing = next_event(&mut events, inst.id()).await;
    let end = next_event(&mut events, inst.id()).await;
    assert_eq!((killing.state, end.state), (State::Killing, State::Killed));
    let waited = killing.time_ms - stopping.time_ms;
    assert!(
        (490..3000).contains(&waited),
        "killed {waited} ms after the stop"
    );
    assert!(
        killing
            .reason
            .as_deref()
            .unwrap_or("")
            .contains("did not stop within 500ms"),
        "{killing:?}"
    );
    assert_eq!(end.signal, Some(9), "{end:?}");
    // It did get the stop signal first.
    line_with(&mut out, "ignored TERM").await;
    assert_eq!(next_line(&mut out).await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_ends_killed_at_once() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "stubborn"
executable = "FIXTURE"
args = ["ignore-term"]
stopping_time = "10s"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "stubborn", &[]).await;
    reached(&inst, State::Running).await;
    let t = Instant::now();
    let info = within("kill", inst.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    assert_eq!(
        (info.state, info.signal),
        (State::Killed, Some(9)),
        "{info:?}"
    );
    let seen = events_until_end(&mut events, inst.id()).await;
    assert_eq!(
        states(&seen[seen.len() - 2..]),
        [State::Killing, State::Killed]
    );
    // A terminal instance refuses further stops.
    let again = inst.stop().await;
    assert!(matches!(again, Err(troupe::Error::Refused(_))), "{again:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_custom_stop_signal_is_the_one_delivered() {
    let s = TestServer::start(
        r#"
[[app]]
name = "int"
executable = "sh"
args = ["-c", 'trap "echo got INT; exit 0" INT; trap "echo got TERM; exit 1" TERM; echo ready; while :; do sleep 0.1; done']
stop_signal = "INT"
stopping_time = "5s"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "int", &[]).await;
    let mut out = within("output", inst.output()).await.unwrap();
    line_with(&mut out, "ready").await;
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(
        (info.state, info.exit_code),
        (State::Stopped, Some(0)),
        "{info:?}"
    );
    let rest = texts(&rest_of(&mut out).await);
    assert_eq!(rest, ["got INT"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_command_runs_instead_of_the_signal() {
    let dir = tempfile::tempdir().unwrap();
    let mark = dir.path().join("stop-command-ran");
    let s = TestServer::start(&format!(
        r#"
[[app]]
name = "svc"
executable = "sh"
args = ["-c", 'trap "echo got USR1; exit 0" USR1; trap "echo got TERM; exit 1" TERM; echo ready; while :; do sleep 0.1; done']
stop_command = ["sh", "-c", 'echo "$TROUPE_PID $TROUPE_APP" > "$0"; kill -USR1 "$TROUPE_PID"', "{}"]
stopping_time = "5s"
"#,
        mark.display()
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "svc", &[]).await;
    let mut out = within("output", inst.output()).await.unwrap();
    line_with(&mut out, "ready").await;
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(
        (info.state, info.exit_code),
        (State::Stopped, Some(0)),
        "{info:?}"
    );
    let rest = texts(&rest_of(&mut out).await);
    assert_eq!(rest, ["got USR1"], "the stop signal was sent too");
    let written = std::fs::read_to_string(&mark).expect("the stop command wrote its file");
    assert_eq!(written.trim(), format!("{} svc", info.pid.unwrap()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_command_runs_on_an_error_exit() {
    let s = TestServer::start(
        r#"
[[app]]
name = "failing"
executable = "sh"
args = ["-c", "echo failing; exit 3"]
error_command = ["sh", "-c", 'echo "handling the error of $TROUPE_PID"']
[[app]]
name = "fine"
executable = "sh"
args = ["-c", "echo fine"]
error_command = ["sh", "-c", 'echo "handling the error of $TROUPE_PID"']
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let mut events = within("watch", server.watch()).await.unwrap();
    let inst = start(&server, "failing", &[]).await;
    let seen = events_until_end(&mut events, inst.id()).await;
    let seen = states(&seen);
    assert_eq!(seen.first(), Some(&State::Starting));
    assert_eq!(
        seen[seen.len() - 2..],
        [State::ProcessingError, State::Error],
        "{seen:?}"
    );
    let info = ended(&inst).await;
    assert_eq!(info.exit_code, Some(3));
    let out = texts(&all_output(&inst).await);
    let pid = info.pid.unwrap();
    assert_eq!(
        out,
        [
            "failing".to_string(),
            format!("handling the error of {pid}")
        ]
    );

    // Not on success.
    let fine = start(&server, "fine", &[]).await;
    let seen = states(&events_until_end(&mut events, fine.id()).await);
    assert!(!seen.contains(&State::ProcessingError), "{seen:?}");
    assert_eq!(seen.last(), Some(&State::Success));
    assert_eq!(texts(&all_output(&fine).await), ["fine"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_handling_stop_ends_cleanly_without_the_signal() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "graceful"
executable = "FIXTURE"
args = ["graceful"]
stopping_time = "10s"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "graceful", &[]).await;
    let mut out = within("output", inst.output()).await.unwrap();
    line_with(&mut out, "ready").await; // it handles stop requests now
    let t = Instant::now();
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(info.state, State::Stopped, "{info:?}");
    assert_eq!(
        (info.exit_code, info.signal),
        (Some(0), None),
        "it got a signal: {info:?}"
    );
    assert_eq!(texts(&rest_of(&mut out).await), ["stopping cleanly"]);
    assert_eq!(inst.result().await.unwrap().as_deref(), Some(&b"clean"[..]));
    assert!(info.has_result);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn this_sees_the_stop_of_an_attached_instance() {
    // The test process attaches itself, takes over its stop requests, and
    // detaches when asked to stop (a generous stopping_time keeps the kill away).
    let s = TestServer::start(
        r#"
[[app]]
name = "myself"
executable = "true"
stopping_time = "60s"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let this = within("attach", troupe::This::attach(s.endpoint(), "myself"))
        .await
        .unwrap();
    let mut stop = within("on_stop", this.on_stop()).await.unwrap();
    assert!(!this.is_stopping() && !stop.is_stopping());
    let listed = server.instances().await.unwrap();
    let me = listed.iter().find(|i| i.id == this.id()).expect("listed");
    assert!(me.attached);
    assert_eq!(
        (me.state, me.pid),
        (State::Running, Some(std::process::id()))
    );

    let inst = this.instance();
    let info = within("stop", inst.stop()).await.unwrap();
    assert_eq!(info.state, State::Stopping);
    within("the stop request", stop.wait()).await;
    assert!(this.is_stopping());
    let info = within("detach", this.detach(State::Stopped)).await.unwrap();
    assert_eq!(info.state, State::Stopped);
    assert_eq!(ended(&inst).await.state, State::Stopped);
}
