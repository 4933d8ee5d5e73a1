//! Limits and lookups: `multiple`, `max_instances`, unknown apps and ids,
//! bad executables, and the terminated instances a server keeps.

mod common;

use common::*;
use std::time::{Duration, Instant};
use troupe::{Error, State};
use troupe_testkit::{TestServer, TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_one_refuses_a_second_live_instance() {
    let s = TestServer::start(
        r#"
[[app]]
name = "single"
executable = "sleep"
args = ["30"]
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let first = start(&server, "single", &[]).await;
    let second = server.start("single", &[] as &[&str]).await;
    let Err(Error::Refused(why)) = second else {
        panic!("{second:?}")
    };
    assert!(
        why.contains("single") && why.contains("multiple = 1"),
        "{why}"
    );
    assert!(
        why.contains(&first.id().to_string()),
        "the message names the live one: {why}"
    );
    // Once the first has ended, a new one starts.
    within("stop", first.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    let third = start(&server, "single", &[]).await;
    reached(&third, State::Running).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn multiple_counts_live_instances_only() {
    let s = TestServer::start(
        r#"
[[app]]
name = "two"
executable = "sleep"
args = ["30"]
multiple = 2
[[app]]
name = "many"
executable = "sleep"
args = ["30"]
multiple = "unlimited"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let a = start(&server, "two", &[]).await;
    start(&server, "two", &[]).await;
    let r = server.start("two", &[] as &[&str]).await;
    assert!(
        matches!(&r, Err(Error::Refused(m)) if m.contains("multiple = 2")),
        "{r:?}"
    );
    within("kill", a.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    start(&server, "two", &[]).await;

    let mut many = Vec::new();
    for _ in 0..6 {
        many.push(start(&server, "many", &[]).await);
    }
    for inst in &many {
        reached(inst, State::Running).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn max_instances_bounds_the_server() {
    let s = TestServer::start(
        r#"
max_instances = 2
[[app]]
name = "a"
executable = "sleep"
args = ["30"]
[[app]]
name = "b"
executable = "sleep"
args = ["30"]
multiple = "unlimited"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let a = start(&server, "a", &[]).await;
    start(&server, "b", &[]).await;
    let r = server.start("b", &[] as &[&str]).await;
    assert!(
        matches!(&r, Err(Error::Refused(m)) if m.contains("max_instances = 2")),
        "{r:?}"
    );
    within("stop", a.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    start(&server, "b", &[]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_apps_and_ids_are_not_found() {
    let s = TestServer::start(
        r#"
[[app]]
name = "known"
executable = "true"
"#,
    )
    .unwrap();
    let server = connect(&s).await;
    let r = server.start("nope", &[] as &[&str]).await;
    assert!(
        matches!(&r, Err(Error::NotFound(m)) if m.contains("nope") && m.contains("known")),
        "{r:?}"
    );
    let r = server.instance(4242).await;
    assert!(
        matches!(&r, Err(Error::NotFound(m)) if m.contains("4242")),
        "{r:?}"
    );
    let r = server.find("known").await;
    assert!(matches!(&r, Err(Error::NotFound(_))), "{r:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_executable_ends_in_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let not_exec = dir.path().join("not-executable");
    std::fs::write(&not_exec, "#!/bin/sh\necho hi\n").unwrap();
    let s = TestServer::start(&format!(
        r#"
[[app]]
name = "missing"
executable = "/nonexistent/troupe-test-program"
[[app]]
name = "unknown"
executable = "troupe-no-such-program-anywhere"
[[app]]
name = "denied"
executable = "{}"
[[app]]
name = "fine"
executable = "true"
"#,
        not_exec.display()
    ))
    .unwrap();
    let server = connect(&s).await;
    for (app, file) in [
        ("missing", "/nonexistent/troupe-test-program".to_string()),
        ("unknown", "troupe-no-such-program-anywhere".to_string()),
        ("denied", not_exec.display().to_string()),
    ] {
        let inst = start(&server, app, &[]).await;
        let info = ended(&inst).await;
        assert_eq!(
            (info.state, info.pid),
            (State::Error, None),
            "{app}: {info:?}"
        );
        let reason = info.reason.unwrap_or_default();
        assert!(reason.contains(&file), "{app}: {reason}");
    }
    // The server is fine.
    let inst = start(&server, "fine", &[]).await;
    assert_eq!(ended(&inst).await.state, State::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_newest_terminated_instances_are_kept() {
    let s = TestServer::start(&config(
        r#"
keep_terminated = 3
[[app]]
name = "res"
executable = "FIXTURE"
args = ["result"]
multiple = "unlimited"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let mut insts = Vec::new();
    for i in 1..=5 {
        let inst = start(&server, "res", &[&format!("r{i}")]).await;
        assert_eq!(ended(&inst).await.state, State::Success);
        insts.push(inst);
    }
    // The oldest is forgotten just after the newest ends: give it a moment.
    let newest: Vec<u64> = insts[2..].iter().map(|i| i.id()).collect();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let listed: Vec<u64> = server
            .instances()
            .await
            .unwrap()
            .iter()
            .map(|i| i.id)
            .collect();
        if listed == newest || Instant::now() > deadline {
            assert_eq!(listed, newest);
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for old in &insts[..2] {
        let r = old.info().await;
        assert!(matches!(r, Err(Error::NotFound(_))), "{r:?}");
    }
    // A kept one still answers everything.
    for (i, kept) in insts[2..].iter().enumerate() {
        let info = within("wait", kept.wait_for(Some(TIMEOUT))).await.unwrap();
        assert_eq!(info.state, State::Success);
        let r = kept.result().await.unwrap();
        assert_eq!(r, Some(format!("r{}", i + 3).into_bytes()));
        let mut out = within("output", kept.output()).await.unwrap();
        assert_eq!(next_line(&mut out).await, None);
    }
    assert_eq!(server.find("res").await.unwrap().id(), insts[4].id());
}
