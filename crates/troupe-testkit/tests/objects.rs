//! Remote objects, one guarantee of `crates/troupe/src/object/mod.rs`'s
//! module docs per test. The object is a [`Probe`], served on a peer
//! session here or, where a test needs a process to kill, by the fixture
//! `object ID` started through the server.

mod common;

use common::*;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::time::Instant;
use troupe::object::{serve, RpcError};
use troupe::{Error, Instance, Mode, OutputStream, Server, Session, SessionOptions, State};
use troupe_testkit::probe::{Probe, ProbeClient};
use troupe_testkit::{TestServer, TIMEOUT};

/// A server running [`PATTERN_APPS`] (with the `probe` fixture app).
fn server() -> TestServer {
    TestServer::start(&config(PATTERN_APPS)).expect("start the server")
}

/// A session on `s` in `mode`, whose calls wait at most 10 s.
async fn session_in(s: &TestServer, mode: Mode) -> Session {
    let opts = SessionOptions {
        mode,
        timeout: Duration::from_secs(10),
        ..Default::default()
    };
    within("open a session", Session::open(s.endpoint(), opts))
        .await
        .expect("open a session")
}

/// Serves a fresh [`Probe`] under `id` on `session`.
async fn serve_probe(session: &Session, id: &str) -> troupe::ObjectServer {
    within("serve", serve(session, id, Probe::default()))
        .await
        .unwrap_or_else(|e| panic!("serve {id}: {e}"))
}

/// The JSON-RPC error of a call that must fail with one.
fn rpc_error(r: troupe::Result<Value>) -> RpcError {
    match r {
        Err(Error::Rpc(e)) => e,
        other => panic!("expected a JSON-RPC error, got {other:?}"),
    }
}

/// Starts the fixture `object ID` and waits until it serves.
async fn probe_process(server: &Server, id: &str) -> (Instance, OutputStream) {
    let inst = start(server, "probe", &[id]).await;
    let mut out = within("output", inst.output()).await.expect("output");
    line_with(&mut out, "serving").await;
    (inst, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_with_positional_and_named_params_and_attributes() {
    let s = server();
    let (owner, caller) = (
        session_in(&s, Mode::Peer).await,
        session_in(&s, Mode::Client).await,
    );
    let _served = serve_probe(&owner, "probe-a").await;
    let probe = caller.object("probe-a");
    assert_eq!(
        within("call", probe.call("add", json!([2]))).await.unwrap(),
        json!(2)
    );
    assert_eq!(
        within("call", probe.call("add", json!({"a": 3, "b": 4})))
            .await
            .unwrap(),
        json!(9)
    );
    assert_eq!(
        within("call", probe.call("echo", json!(["h\u{e9}llo \"x\""])))
            .await
            .unwrap(),
        json!("h\u{e9}llo \"x\"")
    );
    // Attributes: read, write, read-only, unknown.
    assert_eq!(within("get", probe.get("total")).await.unwrap(), json!(9));
    within("set", probe.set("label", json!("cam")))
        .await
        .unwrap();
    assert_eq!(
        within("get", probe.get_as::<String>("label"))
            .await
            .unwrap(),
        "cam"
    );
    let e = rpc_error(
        within("set", probe.set("total", json!(1)))
            .await
            .map(|()| Value::Null),
    );
    assert_eq!(e.code, RpcError::INVALID_PARAMS, "{e}");
    assert!(e.message.contains("read-only"), "{e}");
    let e = rpc_error(
        within("set", probe.set("label", json!("")))
            .await
            .map(|()| Value::Null),
    );
    assert_eq!(e.code, RpcError::INVALID_PARAMS, "{e}");
    let e = rpc_error(within("get", probe.get("nope")).await);
    assert_eq!(e.code, RpcError::METHOD_NOT_FOUND, "{e}");
    // A notification is served, in order with the calls of the client.
    within("notify", probe.notify("add", json!([100])))
        .await
        .unwrap();
    assert_eq!(within("get", probe.get("total")).await.unwrap(), json!(109));
    // Introspection.
    let d = within("describe", probe.describe()).await.unwrap();
    assert_eq!(d.type_name, "Probe");
    let add = d.methods.iter().find(|m| m.name == "add").expect("add");
    let params: Vec<(&str, &str)> = add
        .params
        .iter()
        .map(|p| (p.name.as_str(), p.ty.as_str()))
        .collect();
    assert_eq!(params, [("a", "i64"), ("b", "Option<i64>")]);
    assert_eq!(add.returns, "i64");
    assert!(add.doc.starts_with("Adds"), "{add:?}");
    let attrs: Vec<(&str, bool)> = d
        .attributes
        .iter()
        .map(|a| (a.name.as_str(), a.writable))
        .collect();
    assert_eq!(attrs, [("label", true), ("total", false)]);
    // The listing.
    let list = within("list", troupe::object::list(&caller, TIMEOUT))
        .await
        .unwrap();
    let ids: Vec<&str> = list.iter().map(|o| o.id.as_str()).collect();
    assert_eq!(ids, ["probe-a"]);
    assert_eq!(list[0].clients, 1, "{list:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_are_typed_and_the_object_goes_on() {
    let s = server();
    let (owner, caller) = (
        session_in(&s, Mode::Peer).await,
        session_in(&s, Mode::Client).await,
    );
    let _served = serve_probe(&owner, "probe-e").await;
    let probe = caller.object("probe-e");
    // Unknown method.
    let e = rpc_error(within("call", probe.call("nope", json!([]))).await);
    assert_eq!(e.code, RpcError::METHOD_NOT_FOUND);
    assert_eq!(e.message, "method not found: nope");
    // Bad params: wrong type, missing, too many, unknown name, not a list.
    for params in [
        json!(["x"]),
        json!([]),
        json!([1, 2, 3]),
        json!({"a": 1, "c": 2}),
    ] {
        let e = rpc_error(within("call", probe.call("add", params.clone())).await);
        assert_eq!(e.code, RpcError::INVALID_PARAMS, "{params}: {e}");
    }
    assert!(matches!(
        within("call", probe.call("add", json!(5))).await,
        Err(Error::Invalid(_))
    ));
    // Application errors, with their code and message.
    let e = rpc_error(within("call", probe.call("fail", json!([42, "no film"]))).await);
    assert_eq!((e.code, e.message.as_str()), (42, "no film"));
    let e = rpc_error(within("call", probe.call("refuse", json!(["busy"]))).await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (RpcError::APPLICATION, "refused: busy")
    );
    // A panic is an internal error; the object serves on.
    let e = rpc_error(within("call", probe.call("boom", Value::Null)).await);
    assert_eq!(e.code, RpcError::INTERNAL_ERROR, "{e}");
    assert_eq!(
        within("call", probe.call("add", json!([1]))).await.unwrap(),
        json!(1)
    );
    // The error says what went wrong in its text too.
    let text = Error::Rpc(RpcError::application(7, "jammed")).to_string();
    assert_eq!(text, "remote call failed: jammed (code 7)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_typed_client_calls_through_the_network() {
    let s = server();
    let (owner, caller) = (
        session_in(&s, Mode::Peer).await,
        session_in(&s, Mode::Peer).await,
    );
    let _served = serve_probe(&owner, "probe-t").await;
    let probe = ProbeClient::connect(&caller, "probe-t");
    assert_eq!(within("add", probe.add(5, None)).await.unwrap(), 5);
    assert_eq!(within("add", probe.add(5, Some(1))).await.unwrap(), 11);
    assert_eq!(within("total", probe.total()).await.unwrap(), 11);
    within("set", probe.set_label("x".into())).await.unwrap();
    assert_eq!(within("label", probe.label()).await.unwrap(), "x");
    match within("fail", probe.fail(3, "three".into())).await {
        Err(Error::Rpc(e)) => assert_eq!((e.code, e.message.as_str()), (3, "three")),
        other => panic!("expected an application error, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_id_is_unique_and_freed_when_the_server_stops() {
    let s = server();
    let (a, b, caller) = (
        session_in(&s, Mode::Peer).await,
        session_in(&s, Mode::Peer).await,
        session_in(&s, Mode::Client).await,
    );
    let first = serve_probe(&a, "probe-u").await;
    match within("serve again", serve(&b, "probe-u", Probe::default())).await {
        Err(Error::NameTaken(why)) => assert!(why.contains("object probe-u"), "{why}"),
        other => panic!("expected NameTaken, got {other:?}"),
    }
    // An object and a channel may share a name: two name spaces.
    let _channel = within(
        "channel",
        troupe::Channel::create(&b, "probe-u", troupe::ChannelOptions::default()),
    )
    .await
    .expect("a channel of the same name");
    let probe = caller.object("probe-u");
    within("call", probe.call("add", json!([1]))).await.unwrap();
    within("stop", first.stop()).await;
    // The id is free: another server takes it, and the same client finds
    // it (its first call after the stop may see the old one go).
    let _second = serve_probe(&b, "probe-u").await;
    let total = loop {
        match within("call", probe.call("add", json!([1]))).await {
            Ok(v) => break v,
            Err(Error::Gone(_)) => continue,
            Err(e) => panic!("call after the restart: {e}"),
        }
    };
    assert_eq!(total, json!(1), "a fresh object");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_object_is_not_found_within_the_deadline() {
    let s = server();
    let caller = session_in(&s, Mode::Client).await;
    let probe = caller
        .object("nobody")
        .with_timeout(Duration::from_millis(500));
    let started = Instant::now();
    match within("call", probe.call("add", json!([1]))).await {
        Err(Error::NotFound(why)) => assert!(why.contains("no object named nobody"), "{why}"),
        other => panic!("expected NotFound, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert!(matches!(
        caller.object("bad/id").call("x", Value::Null).await,
        Err(Error::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_that_times_out_leaves_the_client_usable() {
    let s = server();
    let (owner, caller) = (
        session_in(&s, Mode::Peer).await,
        session_in(&s, Mode::Client).await,
    );
    let _served = serve_probe(&owner, "probe-s").await;
    let probe = caller.object("probe-s");
    let e = within(
        "slow call",
        probe.call_timeout("sleep", json!([1500]), Duration::from_millis(300)),
    )
    .await
    .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    // The next call gets its own answer, not the late one of `sleep`
    // (the object serves it after the sleep).
    assert_eq!(
        within("call", probe.call("echo", json!(["mine"])))
            .await
            .unwrap(),
        json!("mine")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_from_many_clients_are_served_one_at_a_time() {
    let s = server();
    let owner = session_in(&s, Mode::Peer).await;
    let _served = serve_probe(&owner, "probe-c").await;
    let mut calls = Vec::new();
    for _ in 0..4 {
        let caller = session_in(&s, Mode::Client).await;
        calls.push(tokio::spawn(async move {
            let probe = caller.object("probe-c");
            let mut served = Vec::new();
            for _ in 0..5 {
                served.push(probe.call_as::<u64>("hold", json!([20])).await);
            }
            served
        }));
    }
    let mut all = Vec::new();
    for c in calls {
        for r in within("calls", c).await.expect("join") {
            all.push(r.expect("hold is never entered twice at once"));
        }
    }
    all.sort_unstable();
    assert_eq!(all, (1..=20).collect::<Vec<u64>>());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_killed_mid_call_fails_the_call_promptly() {
    let s = server();
    let server = connect(&s).await;
    let caller = session_in(&s, Mode::Client).await;
    let (inst, _out) = probe_process(&server, "probe-k").await;
    let probe = caller
        .object("probe-k")
        .with_timeout(Duration::from_secs(60));
    let pid: u32 = within("pid", probe.call_as("pid", Value::Null))
        .await
        .unwrap();
    assert_eq!(Some(pid), inst.info().await.unwrap().pid);
    let pending = {
        let probe = probe.clone();
        tokio::spawn(async move { probe.call("sleep", json!([50_000])).await })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let killed = Instant::now();
    let info = within("kill", inst.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    assert_eq!(info.state, State::Killed);
    match within("the pending call", pending).await.expect("join") {
        Err(Error::Gone(why)) => assert!(why.contains("sleep"), "{why}"),
        other => panic!("expected Gone, got {other:?}"),
    }
    assert!(
        killed.elapsed() < Duration::from_secs(5),
        "{:?}",
        killed.elapsed()
    );
    // Then the object is missing.
    let quick = probe.with_timeout(Duration::from_millis(500));
    assert!(matches!(
        within("call", quick.call("pid", Value::Null)).await,
        Err(Error::NotFound(_))
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_object_server_process_is_found_and_stopped() {
    let s = server();
    let server = connect(&s).await;
    let caller = session_in(&s, Mode::Client).await;
    let (inst, mut out) = probe_process(&server, "probe-p").await;
    let list = within("list", troupe::object::list(&caller, TIMEOUT))
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0].owner, format!("{}/probe/{}", s.name(), inst.id()));
    // A second server of the id is refused (the fixture exits 2).
    let second = start(&server, "probe", &["probe-p"]).await;
    let info = ended(&second).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Error, Some(2)),
        "{info:?}"
    );
    let said = texts(&all_output(&second).await).join("\n");
    assert!(
        said.contains("taken: object probe-p is already owned by"),
        "{said}"
    );
    within("stop", inst.stop()).await.unwrap();
    line_with(&mut out, "stopped").await;
    assert_eq!(ended(&inst).await.state, State::Stopped);
}
