//! Hierarchical status, one guarantee of `crates/troupe/src/status.rs`'s
//! module docs per test: merge and removal end to end, the tree kept after
//! the emitting process ended, a snapshot then updates with no gap and no
//! repeat while an emitter floods, masks, two joined servers and one started
//! later, a follower that falls behind, bad input, a server that dies.
//! Emitters are sessions of this process or fixture instances
//! (`status-emit`, `status-count` in troupe-fixture.rs).

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;
use troupe::status::{self, FollowOptions, StatusFollower};
use troupe::{Error, Mode, Session, SessionOptions, StatusOp, StatusUpdate, StatusUpdater};
use troupe_testkit::{TestServer, TIMEOUT};

/// A quiet time in which nothing is expected.
const QUIET: Duration = Duration::from_millis(300);

fn server() -> TestServer {
    TestServer::start(&config(STATUS_APPS)).expect("start the server")
}

/// The fixture apps of these tests.
const STATUS_APPS: &str = r#"
[[app]]
name = "status-emit"
executable = "FIXTURE"
args = ["status-emit"]
multiple = "unlimited"
[[app]]
name = "status-count"
executable = "FIXTURE"
args = ["status-count"]
multiple = "unlimited"
"#;

/// A session on `s` in `mode`.
async fn session(s: &TestServer, mode: Mode) -> Session {
    let opts = SessionOptions {
        mode,
        ..Default::default()
    };
    within("open a session", Session::open(s.endpoint(), opts))
        .await
        .expect("open a session")
}

async fn updater(session: &Session) -> StatusUpdater {
    within("status updater", StatusUpdater::new(session))
        .await
        .expect("status updater")
}

async fn emit(u: &StatusUpdater, path: &str, value: Value) {
    within("emit", u.emit(path, &value))
        .await
        .unwrap_or_else(|e| panic!("emit {path}: {e}"));
}

async fn flush(u: &StatusUpdater) -> u64 {
    within("flush", u.flush(TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("flush: {e}"))
}

async fn read(session: &Session, masks: &[&str]) -> Value {
    within("read", status::read(session, masks, TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("read {masks:?}: {e}"))
}

async fn follow(session: &Session, masks: &[&str]) -> StatusFollower {
    within("follow", status::follow(session, masks, TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("follow {masks:?}: {e}"))
}

async fn next(f: &mut StatusFollower) -> StatusUpdate {
    within("a status update", f.next(TIMEOUT))
        .await
        .unwrap_or_else(|e| panic!("next status update: {e}"))
}

/// Nothing comes to `f` for [`QUIET`].
async fn nothing(f: &mut StatusFollower) {
    match f.next(QUIET).await {
        Err(Error::Timeout(_)) => {}
        other => panic!("no status update expected, got {other:?}"),
    }
}

/// `(op, path, value)` of an update.
fn parts(u: &StatusUpdate) -> (StatusOp, &str, &Value) {
    (u.op, u.path.as_str(), &u.value)
}

/// Reads `session`'s tree under `masks` until it is `want`, bounded.
async fn read_until(session: &Session, masks: &[&str], want: &Value) {
    let end = tokio::time::Instant::now() + TIMEOUT;
    loop {
        let got = read(session, masks).await;
        if &got == want {
            return;
        }
        assert!(
            tokio::time::Instant::now() < end,
            "the tree under {masks:?} is {got}, not {want}, after {TIMEOUT:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// Merge and removal, end to end; flush means applied.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_merges_into_the_tree_and_remove_prunes_it() {
    let s = server();
    for mode in [Mode::Client, Mode::Peer] {
        let session = session(&s, mode).await;
        let u = updater(&session).await;
        assert_eq!(u.server(), s.name());
        let root = format!("{mode:?}").to_lowercase();
        let at = |p: &str| format!("{root}.{p}");
        emit(&u, &at("system.foo"), json!({"cpu": 0.3, "memory": 0.7})).await;
        emit(
            &u,
            &at("system.foo"),
            json!({"cpu": 0.4, "disk": {"sda": 1}}),
        )
        .await;
        emit(&u, &root, json!({"system": {"bar": [1, 2]}, "up": true})).await;
        // Once flushed, a read through the same server holds every update:
        // no polling.
        flush(&u).await;
        assert_eq!(
            read(&session, &[&root]).await,
            json!({root.clone(): {
                "system": {"foo": {"cpu": 0.4, "memory": 0.7, "disk": {"sda": 1}}, "bar": [1, 2]},
                "up": true
            }})
        );
        // A scalar replaces a subtree; an object replaces a scalar.
        emit(&u, &at("system.foo.disk"), json!("none")).await;
        emit(&u, &at("up.since"), json!(12)).await;
        u.remove(&at("system.foo.memory")).await.expect("remove");
        flush(&u).await;
        assert_eq!(
            read(&session, &[&root]).await,
            json!({root.clone(): {
                "system": {"foo": {"cpu": 0.4, "disk": "none"}, "bar": [1, 2]},
                "up": {"since": 12}
            }})
        );
        // Removing the last leaves of a branch removes the branch.
        u.remove(&at("system.foo")).await.expect("remove");
        u.remove(&at("system.bar")).await.expect("remove");
        u.remove(&at("nothing.there")).await.expect("remove");
        flush(&u).await;
        assert_eq!(
            read(&session, &[&root]).await,
            json!({root.clone(): {"up": {"since": 12}}})
        );
        u.remove(&root).await.expect("remove");
        flush(&u).await;
        assert_eq!(read(&session, &[&root]).await, json!({}));
    }
}

// The servers keep the tree: it outlives the process that emitted it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tree_outlives_the_process_that_emitted_it_until_removed() {
    let s = server();
    let server = connect(&s).await;
    let inst = start(
        &server,
        "status-emit",
        &[
            "apps.emitter",
            r#"{"state": "ok", "load": 0.5}"#,
            "apps.emitter.load",
            "0.25",
        ],
    )
    .await;
    let mut out = within("output", inst.output()).await.expect("output");
    let said = line_after(&mut out, "emitted ").await;
    let seq: u64 = said.parse().expect("a number");
    assert!(seq >= 2, "{said}");
    let info = ended(&inst).await;
    assert_eq!(info.state, troupe::State::Success, "{info:?}");
    assert!(troupe_testkit::process_gone(info.pid.expect("a pid")));

    // Another session, after the process ended.
    let reader = session(&s, Mode::Client).await;
    let want = json!({"apps": {"emitter": {"state": "ok", "load": 0.25}}});
    assert_eq!(read(&reader, &["apps"]).await, want);
    let mut f = follow(&reader, &["apps.emitter"]).await;
    assert_eq!(f.snapshot(), &want);

    // Until someone removes it.
    let u = updater(&reader).await;
    u.remove("apps.emitter").await.expect("remove");
    let gone = next(&mut f).await;
    assert_eq!(
        parts(&gone),
        (StatusOp::Remove, "apps.emitter", &Value::Null)
    );
    assert_eq!(f.tree(), &json!({}));
    flush(&u).await;
    assert_eq!(read(&reader, &[]).await, json!({}));
}

// Snapshot then updates: no gap, no repeat, in order, while an emitter floods.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn followers_started_during_a_flood_see_every_later_value_once_in_order() {
    const N: u64 = 30_000;
    let s = server();
    let emitter = session(&s, Mode::Peer).await;
    let u = updater(&emitter).await;
    let sent = Arc::new(AtomicU64::new(0));
    let counter = {
        let (u, sent) = (u.clone(), sent.clone());
        tokio::spawn(async move {
            for i in 1..=N {
                u.emit("flood.count", &i).await.expect("emit");
                // Also other paths, which masked followers must not see.
                if i % 10 == 0 {
                    u.emit("flood.other", &i).await.expect("emit");
                }
                sent.store(i, Ordering::Release);
                if i % 100 == 0 {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                }
            }
        })
    };
    let mut followers = Vec::new();
    for (k, mode) in [Mode::Client, Mode::Peer, Mode::Client]
        .into_iter()
        .enumerate()
    {
        let at = N * (k as u64 + 1) / 5;
        eventually("the flood goes on", TIMEOUT, || {
            sent.load(Ordering::Acquire) >= at
        })
        .await;
        let reader = session(&s, mode).await;
        let f = follow(&reader, &["flood.count"]).await;
        followers.push((reader, f));
    }
    within("the flood", counter)
        .await
        .expect("the counter task");
    flush(&u).await;
    for (k, (_, f)) in followers.iter_mut().enumerate() {
        let first = f
            .snapshot()
            .pointer("/flood/count")
            .and_then(Value::as_u64)
            .unwrap_or(0);
        assert!(
            first < N,
            "follower {k} started after the flood ({first}): the test proves nothing"
        );
        let mut want = first + 1;
        while want <= N {
            let u = next(f).await;
            assert_eq!(
                parts(&u),
                (StatusOp::Set, "flood.count", &json!(want)),
                "follower {k} (snapshot {first})"
            );
            want += 1;
        }
        nothing(f).await;
        assert_eq!(f.tree(), &json!({"flood": {"count": N}}));
        assert_eq!(f.gaps(), 0);
    }
}

// Masks: several prefixes; updates of an ancestor cut to them.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn masks_select_parts_of_the_tree_and_cut_updates_of_ancestors() {
    let s = server();
    let session = session(&s, Mode::Peer).await;
    let u = updater(&session).await;
    emit(
        &u,
        "system",
        json!({"foo": {"cpu": 1, "mem": 2}, "bar": {"cpu": 3}}),
    )
    .await;
    emit(&u, "apps.a", json!({"state": "ok"})).await;
    emit(&u, "other", json!(1)).await;
    flush(&u).await;

    let masks = ["system.foo", "apps", "system.foo.cpu", "nothing"];
    let want = json!({"system": {"foo": {"cpu": 1, "mem": 2}}, "apps": {"a": {"state": "ok"}}});
    assert_eq!(read(&session, &masks).await, want);
    let mut f = follow(&session, &masks).await;
    assert_eq!(f.snapshot(), &want);
    assert_eq!(f.masks(), ["apps", "nothing", "system.foo"]);

    // Outside the masks: nothing.
    emit(&u, "system.bar.cpu", json!(4)).await;
    emit(&u, "other", json!(2)).await;
    // Under a mask: whole.
    emit(&u, "system.foo.cpu", json!(5)).await;
    assert_eq!(
        parts(&next(&mut f).await),
        (StatusOp::Set, "system.foo.cpu", &json!(5))
    );
    // At an ancestor: cut to each mask it touches, one update each.
    emit(
        &u,
        "",
        json!({"system": {"foo": {"mem": 6}, "bar": 7}, "apps": {"b": 1}, "other": 3}),
    )
    .await;
    let a = next(&mut f).await;
    let b = next(&mut f).await;
    assert_eq!((a.origin.as_str(), a.seq), (b.origin.as_str(), b.seq));
    let mut got = [a, b].map(|u| (u.path.clone(), u.value.clone()));
    got.sort_by(|x, y| x.0.cmp(&y.0));
    assert_eq!(
        got,
        [
            ("apps".to_string(), json!({"b": 1})),
            ("system.foo".to_string(), json!({"mem": 6}))
        ]
    );
    // A scalar set above a mask replaces what it selected: a removal.
    emit(&u, "system", json!("down")).await;
    assert_eq!(
        parts(&next(&mut f).await),
        (StatusOp::Remove, "system.foo", &Value::Null)
    );
    // A removal above a mask, of nothing the follower holds: not yielded.
    u.remove("system").await.expect("remove");
    u.remove("apps.a").await.expect("remove");
    assert_eq!(
        parts(&next(&mut f).await),
        (StatusOp::Remove, "apps.a", &Value::Null)
    );
    nothing(&mut f).await;
    let tree = json!({"apps": {"b": 1}});
    assert_eq!(f.tree(), &tree);
    flush(&u).await;
    assert_eq!(read(&session, &masks).await, tree);
}

// Two joined servers keep one tree; a server started later gets it.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn joined_servers_share_the_tree_and_a_later_server_reads_it_at_start() {
    let a = server();
    let endpoint_a = a.endpoint().to_string();
    let join_a = |c: &mut troupe_server::Config| c.connect = vec![endpoint_a.clone()];
    let b = TestServer::start_with(&config(STATUS_APPS), join_a).expect("start server B");
    let (on_a, on_b) = (
        session(&a, Mode::Client).await,
        session(&b, Mode::Client).await,
    );
    let mut on_b_follower = follow(&on_b, &["shared"]).await;
    let ua = updater(&on_a).await;
    emit(&ua, "shared.from_a", json!({"n": 1})).await;
    flush(&ua).await;
    let u = next(&mut on_b_follower).await;
    assert_eq!(
        parts(&u),
        (StatusOp::Set, "shared.from_a", &json!({"n": 1}))
    );
    assert!(u.origin.starts_with(&format!("{}-", a.name())), "{u:?}");
    read_until(&on_b, &["shared"], &json!({"shared": {"from_a": {"n": 1}}})).await;
    let ub = updater(&on_b).await;
    assert_eq!(ub.server(), b.name());
    emit(&ub, "shared.from_b", json!(2)).await;
    let want = json!({"shared": {"from_a": {"n": 1}, "from_b": 2}});
    read_until(&on_a, &["shared"], &want).await;

    // A flood through A, by another process, is seen on B in order.
    let server_a = connect(&a).await;
    let count = start(&server_a, "status-count", &["shared.count", "2000"]).await;
    let mut seen = 0;
    while seen < 2000 {
        let u = next(&mut on_b_follower).await;
        if u.path == "shared.count" {
            seen += 1;
            assert_eq!(u.value, json!(seen), "{u:?}");
        }
    }
    assert_eq!(ended(&count).await.state, troupe::State::Success);

    // C joins later (through B) and has the tree as soon as it runs.
    let endpoint_b = b.endpoint().to_string();
    let c = TestServer::start_with(&config(STATUS_APPS), |c| {
        c.connect = vec![endpoint_b.clone()]
    })
    .expect("start server C");
    let on_c = session(&c, Mode::Client).await;
    let want = json!({"shared": {"from_a": {"n": 1}, "from_b": 2, "count": 2000}});
    assert_eq!(read(&on_c, &["shared"]).await, want);
    // And follows what comes next, from either server.
    let mut on_c_follower = follow(&on_c, &["shared"]).await;
    emit(&ua, "shared.late", json!(3)).await;
    assert_eq!(
        parts(&next(&mut on_c_follower).await),
        (StatusOp::Set, "shared.late", &json!(3))
    );
}

// A follower that falls behind its buffer reads the tree again.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_that_falls_behind_reads_the_tree_again_and_says_so() {
    let s = server();
    let session = session(&s, Mode::Client).await;
    let u = updater(&session).await;
    emit(&u, "slow.kept", json!(true)).await;
    flush(&u).await;
    let opts = FollowOptions {
        timeout: TIMEOUT,
        buffer: 100,
    };
    let mut f = within("follow", status::follow_with(&session, &["slow"], opts))
        .await
        .expect("follow");
    // The follower does not read while 1000 updates come.
    for i in 1..=1000u64 {
        emit(&u, "slow.n", json!(i)).await;
    }
    u.remove("slow.kept").await.expect("remove");
    flush(&u).await;
    tokio::time::sleep(QUIET).await;
    let reset = next(&mut f).await;
    assert_eq!(reset.op, StatusOp::Reset, "{reset:?}");
    assert_eq!(reset.path, "");
    // The reset holds every update up to the re-read: nothing after it.
    assert_eq!(reset.value, json!({"slow": {"n": 1000}}));
    assert_eq!(f.tree(), &reset.value);
    assert_eq!(f.gaps(), 1);
    nothing(&mut f).await;
    emit(&u, "slow.n", json!(1001)).await;
    assert_eq!(
        parts(&next(&mut f).await),
        (StatusOp::Set, "slow.n", &json!(1001))
    );
}

// Bad input: typed errors, nothing sent.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_paths_values_and_masks_are_refused() {
    let s = server();
    let session = session(&s, Mode::Client).await;
    let u = updater(&session).await;
    for bad in ["a..b", ".a", "a.", "a b", "a/b", "a*", &"x".repeat(65)] {
        let e = u.emit(bad, &1).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
        assert!(e.to_string().contains("invalid status path"), "{e}");
        let e = u.remove(bad).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
        let e = status::read(&session, &[bad], TIMEOUT).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
        let e = status::follow(&session, &[bad], TIMEOUT).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
    }
    let e = u.emit("a", &json!({"b": {"c.d": 1}})).await.unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("\"a.b.c.d\"")),
        "{e}"
    );
    let e = u.emit("", &json!(3)).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    let e = u.remove("").await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
    let big = "x".repeat((1 << 20) + 1);
    let e = u.emit("a", &big).await.unwrap_err();
    assert!(matches!(e, Error::TooLarge(_)), "{e}");
    // Nothing of it reached the tree.
    flush(&u).await;
    assert_eq!(read(&session, &[]).await, json!({}));
    // A value of exactly the limit goes through.
    let limit = "y".repeat((1 << 20) - 2);
    emit(&u, "big", json!(limit)).await;
    flush(&u).await;
    assert_eq!(
        read(&session, &["big"]).await["big"].as_str().map(str::len),
        Some((1 << 20) - 2)
    );
}

// The server a follower follows through dies: it says so, promptly.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_whose_server_dies_gets_server_died() {
    let s = server();
    let session = session(&s, Mode::Client).await;
    let mut f = follow(&session, &[]).await;
    let waiting = tokio::spawn(async move { f.next(TIMEOUT).await });
    tokio::time::sleep(QUIET).await;
    let started = tokio::time::Instant::now();
    s.shutdown();
    let got = within("the follower", waiting).await.expect("task");
    assert!(matches!(got, Err(Error::ServerDied(_))), "{got:?}");
    assert!(started.elapsed() < Duration::from_secs(10));
}
