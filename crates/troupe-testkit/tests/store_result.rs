//! The result of an instance and its key-value store.

mod common;

use common::*;
use std::time::{Duration, Instant};
use troupe::{Error, State};
use troupe_testkit::{TestServer, TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_result_is_kept_after_the_end() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "res"
executable = "FIXTURE"
args = ["result"]
[[app]]
name = "none"
executable = "FIXTURE"
args = ["exit", "0"]
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "res", &["forty two, with spaces"]).await;
    let info = ended(&inst).await;
    assert_eq!(info.state, State::Success);
    assert!(info.has_result);
    let r = within("result", inst.result()).await.unwrap();
    assert_eq!(r.as_deref(), Some(&b"forty two, with spaces"[..]));

    let none = start(&server, "none", &[]).await;
    let info = ended(&none).await;
    assert!(!info.has_result);
    assert_eq!(within("result", none.result()).await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_waits_for_a_key_to_appear() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "store"
executable = "FIXTURE"
args = ["store", "answer", "42"]
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "store", &["1000"]).await;
    // Not there yet: without a wait, not found at once.
    let r = inst.get("answer", Duration::ZERO).await;
    assert!(
        matches!(&r, Err(Error::NotFound(m)) if m.contains("answer")),
        "{r:?}"
    );
    assert_eq!(inst.keys().await.unwrap(), [] as [String; 0]);
    // With a wait: the value once stored.
    let t = Instant::now();
    let v = within("get", inst.get("answer", TIMEOUT)).await.unwrap();
    assert_eq!(v, b"42");
    assert!(
        t.elapsed() >= Duration::from_millis(300),
        "answered before the store: {:?}",
        t.elapsed()
    );
    assert_eq!(inst.keys().await.unwrap(), ["answer"]);
    // A stored key answers at once.
    let t = Instant::now();
    assert_eq!(inst.get("answer", Duration::ZERO).await.unwrap(), b"42");
    assert!(t.elapsed() < Duration::from_secs(2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_key_is_not_found_or_times_out() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "store"
executable = "FIXTURE"
args = ["store", "k", "v", "0"]
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "store", &[]).await;
    assert_eq!(within("get", inst.get("k", TIMEOUT)).await.unwrap(), b"v");
    let r = inst.get("missing", Duration::ZERO).await;
    assert!(matches!(&r, Err(Error::NotFound(_))), "{r:?}");
    let t = Instant::now();
    let r = inst.get("missing", Duration::from_millis(300)).await;
    let took = t.elapsed();
    assert!(
        matches!(&r, Err(Error::Timeout(m)) if m.contains("missing")),
        "{r:?}"
    );
    assert!(
        took >= Duration::from_millis(290) && took < Duration::from_secs(3),
        "{took:?}"
    );
    assert_eq!(inst.keys().await.unwrap(), ["k"]);
    // The store outlives the instance.
    within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(inst.get("k", Duration::ZERO).await.unwrap(), b"v");
}
