//! Process groups and reaping: an instance leaves no process behind, however
//! it ends, and no zombie.

mod common;

use common::*;
use std::time::Duration;
use troupe::State;
use troupe_testkit::{children_of, TestServer, TIMEOUT};

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

/// Asserts that every process of `pids` is gone (dead or a zombie) once the
/// instance has ended; a moment is allowed for SIGKILLed processes to exit.
async fn all_gone(pids: &[u32], what: &str) {
    let end = tokio::time::Instant::now() + Duration::from_secs(2);
    while !alive(pids).is_empty() && tokio::time::Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(alive(pids), [] as [u32; 0], "{what}");
}

/// The two `sleep` processes of `sh -c "sleep 1000 & sleep 1000"` started as
/// `pid` (sh forks both, or execs the last one, which then has one child),
/// with `pid` itself (bounded).
async fn two_sleeps(pid: u32) -> Vec<u32> {
    let sleeps = || {
        let mut all = children_of(pid);
        all.push(pid);
        all.retain(|p| comm(*p) == "sleep");
        all
    };
    eventually(
        &format!("two sleeps in the group of {pid}"),
        TIMEOUT,
        || sleeps().len() == 2,
    )
    .await;
    let mut pids = sleeps();
    if !pids.contains(&pid) {
        pids.push(pid);
    }
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_leaves_no_process_of_a_shell_group() {
    let s = TestServer::start(
        r#"
[[app]]
name = "shell"
executable = "sh"
args = ["-c", "sleep 1000 & sleep 1000"]
stopping_time = "5s"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "shell", &[]).await;
    let pid = reached(&inst, State::Running).await.pid.unwrap();
    let pids = two_sleeps(pid).await;
    assert_eq!(alive(&pids), pids);
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Stopped);
    all_gone(&pids, "left behind by the stop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_leaves_no_forked_child() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "forker"
executable = "FIXTURE"
args = ["fork", "3"]
stopping_time = "5s"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "forker", &[]).await;
    let mut out = within("output", inst.output()).await.unwrap();
    let mut pids = Vec::new();
    for _ in 0..3 {
        let line = next_line(&mut out).await.expect("a child pid");
        pids.push(line.text.parse::<u32>().expect("a pid"));
    }
    assert_eq!(alive(&pids), pids, "the children run");
    pids.push(inst.info().await.unwrap().pid.unwrap());
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Stopped);
    all_gone(&pids, "left behind by the stop").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_leaves_no_process_of_the_group() {
    let s = TestServer::start(
        r#"
[[app]]
name = "stubborn"
executable = "sh"
args = ["-c", "trap '' TERM; sleep 1000 & sleep 1000"]
stopping_time = "10s"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "stubborn", &[]).await;
    let pid = reached(&inst, State::Running).await.pid.unwrap();
    let pids = two_sleeps(pid).await;
    let info = within("kill", inst.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Killed);
    all_gone(&pids, "left behind by the kill").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_child_dies_with_its_main_process() {
    let s = TestServer::start(
        r#"
[[app]]
name = "leaver"
executable = "sh"
args = ["-c", "sleep 1000 >/dev/null 2>&1 & echo $!; exit 0"]
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "leaver", &[]).await;
    let info = ended(&inst).await;
    assert_eq!(info.state, State::Success);
    let out = all_output(&inst).await;
    let child: u32 = out[0].text.parse().expect("the background pid");
    all_gone(&[child], "the background child outlived its instance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_background_child_holding_the_output_open_does_not_hang_the_end() {
    // The child keeps stdout open: the end must not wait for it for ever.
    let s = TestServer::start(
        r#"
[[app]]
name = "leaver"
executable = "sh"
args = ["-c", "sleep 1000 & echo $!; exit 4"]
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "leaver", &[]).await;
    let info = ended(&inst).await;
    assert_eq!((info.state, info.exit_code), (State::Error, Some(4)));
    let out = all_output(&inst).await;
    let child: u32 = out[0].text.parse().expect("the background pid");
    all_gone(&[child], "the background child outlived its instance").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ended_processes_are_reaped() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&config(&format!(
        r#"
[[app]]
name = "ok"
executable = "FIXTURE"
args = ["exit", "0"]
multiple = "unlimited"
[[app]]
name = "bad"
executable = "FIXTURE"
args = ["crash"]
error_command = ["true"]
[[app]]
name = "long"
executable = "sh"
args = ["-c", "sleep 1000 & sleep 1000"]
multiple = "unlimited"
stop_command = ["sh", "-c", 'kill -TERM -"$TROUPE_PID"; touch "$0"', "{}"]
"#,
        dir.path().join("stopped").display()
    )))
    .unwrap();
    let server = connect(&s).await;
    let mut pids = Vec::new();
    for app in ["ok", "ok", "bad"] {
        let inst = start(&server, app, &[]).await;
        pids.push(ended(&inst).await.pid.unwrap());
    }
    for verb in ["stop", "kill"] {
        let inst = start(&server, "long", &[]).await;
        let pid = reached(&inst, State::Running).await.pid.unwrap();
        pids.extend(two_sleeps(pid).await);
        let info = match verb {
            "stop" => inst.stop_and_wait(Some(TIMEOUT)).await,
            _ => inst.kill_and_wait(Some(TIMEOUT)).await,
        };
        assert!(info.unwrap().state.is_terminal());
    }
    // The main processes are reaped before their instance is terminal; the
    // others (children, stop and error commands) soon after.
    eventually(
        "no zombie child of the test process",
        Duration::from_secs(5),
        || our_zombies().is_empty(),
    )
    .await;
    for pid in &pids {
        assert!(!is_our_zombie(*pid), "{pid} not reaped");
    }
    all_gone(&pids, "left behind").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_is_reaped_by_the_time_its_instance_ends() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "ok"
executable = "FIXTURE"
args = ["exit", "0"]
multiple = "unlimited"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    for _ in 0..5 {
        let inst = start(&server, "ok", &[]).await;
        let pid = ended(&inst).await.pid.unwrap();
        assert!(
            !is_our_zombie(pid),
            "{pid} is a zombie after its instance ended"
        );
    }
}
