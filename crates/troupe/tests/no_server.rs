//! What the client does when there is no server: fail fast and typed.

use std::time::{Duration, Instant};
use troupe::{Error, Mode, Server, Session, SessionOptions};

/// Every await in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn connect_to_nothing_is_unreachable_within_its_timeout() {
    let t0 = Instant::now();
    let r = tokio::time::timeout(
        LIMIT,
        Server::connect("tcp/127.0.0.1:1", Duration::from_secs(2)),
    )
    .await
    .expect("connect must end by itself");
    let elapsed = t0.elapsed();
    match r {
        Err(Error::ServerUnreachable {
            endpoint_or_server, ..
        }) => assert_eq!(endpoint_or_server, "tcp/127.0.0.1:1"),
        other => panic!("expected ServerUnreachable, got {other:?}"),
    }
    assert!(elapsed < Duration::from_secs(3), "took {elapsed:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_peer_session_to_nothing_is_unreachable_too() {
    let opts = SessionOptions {
        mode: Mode::Peer,
        timeout: Duration::from_secs(1),
        ..SessionOptions::default()
    };
    let t0 = Instant::now();
    let r = tokio::time::timeout(LIMIT, Session::open("tcp/127.0.0.1:1", opts))
        .await
        .expect("open must end by itself");
    assert!(matches!(r, Err(Error::ServerUnreachable { .. })), "{r:?}");
    assert!(
        t0.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn malformed_endpoints_and_names_are_invalid() {
    for endpoint in ["127.0.0.1:7447", "tcp/", ""] {
        let r = tokio::time::timeout(LIMIT, Server::connect(endpoint, Duration::from_secs(1)))
            .await
            .expect("must not wait");
        assert!(matches!(r, Err(Error::Invalid(_))), "{endpoint}: {r:?}");
    }
    let attach = tokio::time::timeout(LIMIT, troupe::This::attach("tcp/127.0.0.1:1", "a/b"))
        .await
        .expect("must not wait");
    assert!(matches!(attach, Err(Error::Invalid(_))), "{attach:?}");
}

#[test]
fn handles_are_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<Session>();
    check::<Server>();
    check::<troupe::Instance>();
    check::<troupe::This>();
    check::<troupe::StopNotifier>();
    fn stream<T: Send + Unpin + 'static>() {}
    stream::<troupe::EventStream>();
    stream::<troupe::OutputStream>();
}
