//! Instances started by instances (linked or not), and the result of
//! applications that publish or respond, read end to end.

mod common;

use common::*;
use std::time::Duration;
use troupe::{Instance, Server, State};
use troupe_testkit::{TestServer, TIMEOUT};

/// Starts the `starter` fixture (which starts `sleeper 1000` linked and
/// unlinked); the starter and its two instances, all running.
async fn starter_and_children(server: &Server) -> (Instance, Instance, Instance) {
    let starter = start(server, "starter", &["1000"]).await;
    let mut out = within("output", starter.output()).await.unwrap();
    let linked: u64 = line_after(&mut out, "linked ").await.parse().unwrap();
    let unlinked: u64 = line_after(&mut out, "unlinked ").await.parse().unwrap();
    let linked = within("instance", server.instance(linked)).await.unwrap();
    let unlinked = within("instance", server.instance(unlinked)).await.unwrap();
    let info = reached(&linked, State::Running).await;
    assert_eq!(
        (info.app.as_str(), info.starter),
        ("sleeper", Some(starter.id()))
    );
    let info = reached(&unlinked, State::Running).await;
    assert_eq!((info.app.as_str(), info.starter), ("sleeper", None));
    (starter, linked, unlinked)
}

/// The linked instance is stopped; the unlinked one runs on.
async fn linked_stopped_unlinked_runs(linked: &Instance, unlinked: &Instance) {
    let info = ended(linked).await;
    assert_eq!(info.state, State::Stopped, "{info:?}");
    // The server asks every linked instance to stop in one pass, as the
    // starter ends: by now a wrongly linked one would be stopping too.
    let info = within("info", unlinked.info()).await.unwrap();
    assert_eq!(info.state, State::Running, "{info:?}");
    let info = within("stop", unlinked.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Stopped);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_instance_stops_when_its_starter_is_killed_an_unlinked_one_survives() {
    let (_s, server) = pattern_server().await;
    let (starter, linked, unlinked) = starter_and_children(&server).await;
    let info = within("kill", starter.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Killed);
    linked_stopped_unlinked_runs(&linked, &unlinked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linked_instance_stops_when_its_starter_exits_an_unlinked_one_survives() {
    let (_s, server) = pattern_server().await;
    let (starter, linked, unlinked) = starter_and_children(&server).await;
    within("stdin", starter.write_stdin(b"done\n"))
        .await
        .unwrap();
    assert_eq!(ended(&starter).await.state, State::Success);
    linked_stopped_unlinked_runs(&linked, &unlinked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_of_a_publisher_is_read_after_its_stream() {
    let (_s, server) = pattern_server().await;
    let inst = start(&server, "publisher", &["feed", "300", "sync", "1"]).await;
    let mut sub = subscribe(&inst, "feed").await;
    assert_eq!(read_to_end(&mut sub).await, (1..=300).collect::<Vec<_>>());
    let info = ended(&inst).await;
    assert_eq!(info.state, State::Success);
    assert!(info.has_result, "{info:?}");
    assert_eq!(result_text(&inst).await, "published 300");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_of_a_responder_is_read_after_it_stopped() {
    let (_s, server) = pattern_server().await;
    let inst = start(&server, "responder", &["calc", "workers", "2"]).await;
    let opts = troupe::RequesterOptions {
        timeout: Some(TIMEOUT),
    };
    let r = within("requester", inst.requester_with("calc", opts))
        .await
        .unwrap();
    for i in 0..5 {
        let text = format!("question {i}");
        let answer = within("request", r.request(text.as_str())).await.unwrap();
        assert_eq!(answer.as_text().unwrap(), text);
    }
    // Not set while it runs.
    assert_eq!(within("result", inst.result()).await.unwrap(), None);
    // It handles the stop itself: sets its result, then exits.
    let info = within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Stopped, "{info:?}");
    assert_eq!(info.exit_code, Some(0), "{info:?}");
    assert!(info.has_result);
    assert_eq!(result_text(&inst).await, "served 5");
    // A request now: the responder is gone.
    let gone = within(
        "request",
        r.request_timeout("late", Duration::from_millis(500)),
    )
    .await;
    assert!(matches!(&gone, Err(troupe::Error::Gone(_))), "{gone:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_started_on_another_server_stops_when_its_starter_dies() {
    let (a, server_a) = pattern_server().await;
    let endpoint_a = a.endpoint().to_string();
    let b = TestServer::start_with(&config(PATTERN_APPS), |c| {
        c.connect = vec![endpoint_a.clone()];
    })
    .expect("start the second server");
    let server_b = connect(&b).await;
    let starter = start(
        &server_a,
        "remote-starter",
        &[b.endpoint(), "sleeper", "1000"],
    )
    .await;
    let mut out = within("output", starter.output()).await.unwrap();
    let id: u64 = line_after(&mut out, "remote ").await.parse().unwrap();
    let remote = within("instance", server_b.instance(id)).await.unwrap();
    let info = reached(&remote, State::Running).await;
    assert_eq!(info.starter, Some(starter.id()), "{info:?}");
    assert_eq!(info.starter_server.as_deref(), Some(a.name()), "{info:?}");
    // An instance of the second server started by nobody runs on.
    let free = start(&server_b, "sleeper", &["1000"]).await;
    reached(&free, State::Running).await;
    // The starter dies on the first server: the second server stops what
    // it started there.
    let info = within("kill", starter.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Killed);
    let info = ended(&remote).await;
    assert_eq!(info.state, State::Stopped, "{info:?}");
    let info = within("info", free.info()).await.unwrap();
    assert_eq!(info.state, State::Running, "{info:?}");
    within("stop", free.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}
