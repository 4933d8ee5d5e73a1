//! Applications that attach themselves to a server (not started by it).

mod common;

use common::*;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};
use troupe::{Server, State};
use troupe_testkit::{fixture, TestServer, TIMEOUT};

/// Runs `troupe-fixture attach ENDPOINT app` and reads the id it prints.
async fn attach(s: &TestServer, app: &str) -> (ChildGuard, u64) {
    let mut child = Command::new(fixture())
        .args(["attach", s.endpoint(), app])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn the fixture");
    let stdout = child.stdout.take().unwrap();
    let guard = ChildGuard(child);
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).map(|_| line)
    });
    let line = within("the attached app's id", line)
        .await
        .unwrap()
        .unwrap();
    let id = line
        .trim()
        .parse()
        .unwrap_or_else(|_| panic!("an id, not {line:?}"));
    (guard, id)
}

async fn listed(server: &Server, id: u64) -> troupe::InstanceInfo {
    let all = within("instances", server.instances()).await.unwrap();
    all.into_iter()
        .find(|i| i.id == id)
        .expect("the attached instance is listed")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_app_is_listed_and_stops_when_asked() {
    let s = TestServer::start("").unwrap();
    let server = connect(&s).await;
    let (mut child, id) = attach(&s, "visitor").await;
    let info = listed(&server, id).await;
    assert!(info.attached, "{info:?}");
    assert_eq!(
        (info.app.as_str(), info.state, info.pid),
        ("visitor", State::Running, Some(child.pid()))
    );
    let inst = within("find", server.find("visitor")).await.unwrap();
    assert_eq!(inst.id(), id);

    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Stopped, "{info:?}");
    assert_eq!(info.reason.as_deref(), Some("detached"));
    let status = child.exited().await;
    assert!(status.success(), "the app ended by itself: {status:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attached_app_that_dies_is_marked_error_promptly() {
    let s = TestServer::start("").unwrap();
    let server = connect(&s).await;
    let (mut child, id) = attach(&s, "fragile").await;
    let inst = within("instance", server.instance(id)).await.unwrap();
    assert_eq!(inst.state().await.unwrap(), State::Running);
    let t = Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.pid() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.exited().await;
    let info = inst
        .wait_for(Some(Duration::from_secs(5)))
        .await
        .expect("marked ended promptly");
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    assert_eq!(info.state, State::Error, "{info:?}");
    assert!(
        info.reason
            .as_deref()
            .unwrap_or("")
            .contains("connection ended"),
        "{info:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attached_apps_count_against_max_instances() {
    let s = TestServer::start("max_instances = 1").unwrap();
    let (_child, _id) = attach(&s, "first").await;
    let r = within("attach", troupe::This::attach(s.endpoint(), "second")).await;
    assert!(
        matches!(&r, Err(troupe::Error::Refused(m)) if m.contains("max_instances")),
        "{r:?}"
    );
}
