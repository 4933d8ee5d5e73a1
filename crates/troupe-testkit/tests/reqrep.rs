//! Request/reply across processes: responders in fixture processes (see the
//! commands of `respond` in troupe-fixture.rs), requesters here, in an
//! attached application and in other fixture processes.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};
use troupe::{Error, Instance, Message, Requester, RequesterOptions, Server, State};
use troupe_testkit::TIMEOUT;

/// A requester of `name` of `inst` whose requests wait at most `timeout`.
async fn requester(inst: &Instance, name: &str, timeout: Duration) -> Requester {
    let opts = RequesterOptions {
        timeout: Some(timeout),
    };
    within("requester", inst.requester_with(name, opts))
        .await
        .unwrap_or_else(|e| panic!("requester of {name}: {e}"))
}

/// Sends `text` and expects a text answer.
async fn ask(r: &Requester, text: &str) -> String {
    let answer = within(text, r.request(text))
        .await
        .unwrap_or_else(|e| panic!("request {text:?}: {e}"));
    answer.as_text().expect("a text answer").to_string()
}

/// A responder instance serving `name` with `args` after it, once it is ready.
async fn responder(server: &Server, name: &str, args: &[&str]) -> Instance {
    let mut all = vec![name];
    all.extend_from_slice(args);
    let inst = start(server, "responder", &all).await;
    let mut out = within("output", inst.output()).await.unwrap();
    line_with(&mut out, "ready").await;
    inst
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_made_before_the_responder_exists_wait_and_succeed() {
    let (_s, server) = pattern_server().await;
    // The fixture declares its worker only once told to.
    let inst = start(&server, "responder", &["calc", "gate"]).await;
    reached(&inst, State::Running).await;
    let first = requester(&inst, "calc", TIMEOUT).await;
    let second = requester(&inst, "calc", TIMEOUT).await;
    assert_eq!(first.workers(), 0);
    let a = first.request("echo a");
    let b = second.request("echo b");
    tokio::pin!(a, b);
    assert!(futures::poll!(&mut a).is_pending(), "waits for a worker");
    assert!(futures::poll!(&mut b).is_pending(), "waits for a worker");
    within("open the gate", inst.write_stdin(b"go\n"))
        .await
        .unwrap();
    let (a, b) = within("answers", async { tokio::join!(a, b) }).await;
    assert_eq!(a.unwrap().as_text().unwrap(), "echo a");
    assert_eq!(b.unwrap().as_text().unwrap(), "echo b");
    assert_eq!(first.workers(), 1);
    within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_responder_fails_its_pending_requests_promptly() {
    let (_s, server) = pattern_server().await;
    let inst = responder(&server, "calc", &[]).await;
    let r = requester(&inst, "calc", TIMEOUT).await;
    let mut out = within("output", inst.output()).await.unwrap();
    let send = |text: &'static str| {
        let r = r.clone();
        tokio::spawn(async move { r.request(text).await })
    };
    // Two held by the worker, then one it answers slowly (it is busy).
    let mut pending = vec![send("hold"), send("hold")];
    line_with(&mut out, "holding 2").await;
    pending.push(send("sleep 30000 slow"));
    let t = Instant::now();
    within("kill", inst.kill()).await.unwrap();
    for p in pending {
        let r = within("the pending request", p).await.unwrap();
        assert!(matches!(&r, Err(Error::Gone(_))), "{r:?}");
    }
    let took = t.elapsed();
    assert!(took < Duration::from_secs(5), "failed after {took:?}");
    assert_eq!(ended(&inst).await.state, State::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_timeout_the_requester_gets_its_own_answers() {
    let (_s, server) = pattern_server().await;
    let inst = responder(&server, "calc", &[]).await;
    let r = requester(&inst, "calc", TIMEOUT).await;
    let late = within(
        "request",
        r.request_timeout("sleep 2000 late", Duration::from_millis(300)),
    )
    .await;
    assert!(matches!(&late, Err(Error::Timeout(_))), "{late:?}");
    // The one worker answers "late" first, while this request waits: that
    // reply must not be taken for this one's.
    assert_eq!(ask(&r, "now").await, "now");
    assert_eq!(ask(&r, "again").await, "again");
    within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_spread_over_the_workers() {
    let (_s, server) = pattern_server().await;
    let inst = responder(&server, "calc", &["workers", "3"]).await;
    let r = requester(&inst, "calc", TIMEOUT).await;
    eventually("three workers seen", TIMEOUT, || r.workers() == 3).await;
    let mut counts = BTreeMap::new();
    for _ in 0..30 {
        *counts.entry(ask(&r, "worker").await).or_insert(0) += 1;
    }
    assert_eq!(
        counts,
        BTreeMap::from([("w1".to_string(), 10), ("w2".into(), 10), ("w3".into(), 10)])
    );
    // Concurrent requests are spread too, and all answered.
    let all = futures::future::join_all((0..30).map(|_| r.request("worker")));
    let answers = within("concurrent requests", all).await;
    let mut seen = BTreeMap::new();
    for a in answers {
        *seen
            .entry(a.unwrap().as_text().unwrap().to_string())
            .or_insert(0) += 1;
    }
    assert_eq!(seen.len(), 3, "{seen:?}");
    within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_request_drops_its_late_replies() {
    let (_s, server) = pattern_server().await;
    let inst = responder(&server, "calc", &[]).await;
    let r = requester(&inst, "calc", TIMEOUT).await;
    // Given up by dropping the future.
    let gave_up =
        tokio::time::timeout(Duration::from_millis(300), r.request("sleep 2000 late")).await;
    assert!(gave_up.is_err(), "{gave_up:?}");
    assert_eq!(ask(&r, "mine").await, "mine");
    // A stream dropped after its first part: the next parts come while the
    // next request waits.
    let mut stream = within("request", r.request_stream("parts 5 100", TIMEOUT))
        .await
        .unwrap();
    let first = within("a part", stream.next()).await.unwrap().unwrap();
    assert_eq!(first.as_text().unwrap(), "part 1");
    drop(stream);
    assert_eq!(ask(&r, "mine too").await, "mine too");
    // A select that took the other branch.
    tokio::select! {
        r = r.request("sleep 2000 late again") => panic!("answered: {r:?}"),
        () = tokio::time::sleep(Duration::from_millis(200)) => {}
    }
    assert_eq!(ask(&r, "last").await, "last");
    within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

/// The JSON message of the round trip.
#[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
struct Reading {
    sensor: String,
    values: Vec<f64>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_come_in_parts_failures_and_every_kind() {
    let (_s, server) = pattern_server().await;
    let inst = responder(&server, "calc", &[]).await;
    let r = requester(&inst, "calc", TIMEOUT).await;

    let mut stream = within("request", r.request_stream("parts 3 0", TIMEOUT))
        .await
        .unwrap();
    let mut parts = Vec::new();
    while let Some(m) = within("a part", stream.next()).await.unwrap() {
        parts.push(m.as_text().unwrap().to_string());
    }
    assert_eq!(parts, ["part 1", "part 2", "part 3"]);
    assert!(stream.is_done());
    assert!(within("after the end", stream.next())
        .await
        .unwrap()
        .is_none());

    let several = within("request", r.request("parts 2 0")).await;
    assert!(
        matches!(&several, Err(Error::Protocol(m)) if m.contains("parts")),
        "{several:?}"
    );

    let failed = within("request", r.request("fail no such thing")).await;
    assert!(
        matches!(&failed, Err(Error::Refused(m)) if m.contains("no such thing")),
        "{failed:?}"
    );

    let dropped = within("request", r.request("drop")).await;
    assert!(
        matches!(&dropped, Err(Error::Refused(m)) if m.contains("without answering")),
        "{dropped:?}"
    );

    // Every kind of message there and back (the fixture echoes it).
    let reading = Reading {
        sensor: "t-2".into(),
        values: vec![0.25, -1e300],
    };
    let kinds = [
        Message::bytes(vec![0u8, 255, 7]),
        Message::text("héllo"),
        Message::json(&reading).unwrap(),
        Message::f64s(&[1.5, f64::MIN_POSITIVE]),
        Message::i32s(&[i32::MAX, -1]),
        Message::i32s(&[3]).with_header(b"two parts".to_vec()),
        Message::bytes(Vec::new()),
    ];
    for m in kinds {
        let back = within("echo", r.request(m.clone())).await.unwrap();
        assert_eq!(back, m);
    }
    let back = within("echo", r.request(Message::json(&reading).unwrap()))
        .await
        .unwrap();
    assert_eq!(back.to_json::<Reading>().unwrap(), reading);
    // The requester is still fine after all that.
    assert_eq!(ask(&r, "fine").await, "fine");
    within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_says_who_sent_it() {
    let (s, server) = pattern_server().await;
    let inst = responder(&server, "calc", &[]).await;
    // A client: its session's identity, a Zenoh id.
    let r = requester(&inst, "calc", TIMEOUT).await;
    let from = ask(&r, "from").await;
    assert_eq!(from, server.session().identity());
    assert!(!from.contains('/'), "{from}");
    // An attached application: server/app/id.
    let this = within("attach", troupe::This::attach(s.endpoint(), "asker"))
        .await
        .unwrap();
    let target = within("instance", this.server().instance(inst.id()))
        .await
        .unwrap();
    let r = requester(&target, "calc", TIMEOUT).await;
    assert_eq!(
        ask(&r, "from").await,
        format!("{}/asker/{}", s.name(), this.id())
    );
    // An instance the server started, in another process.
    let id = inst.id().to_string();
    let other = start(&server, "requester", &[&id, "calc", "from"]).await;
    assert_eq!(ended(&other).await.state, State::Success);
    assert_eq!(
        result_text(&other).await,
        format!("{}/requester/{}", s.name(), other.id())
    );
    within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_responder_that_never_comes_times_out_and_an_ended_instance_is_gone() {
    let (_s, server) = pattern_server().await;
    let wait = Duration::from_millis(500);
    let quiet = start(&server, "sleeper", &["1000"]).await;
    reached(&quiet, State::Running).await;
    let r = requester(&quiet, "calc", wait).await;
    let t = Instant::now();
    let answer = within("request", r.request("x")).await;
    let took = t.elapsed();
    assert!(
        matches!(&answer, Err(Error::Timeout(m)) if m.contains("calc")),
        "{answer:?}"
    );
    assert!(took >= wait && took < Duration::from_secs(5), "{took:?}");
    let w = within("wait", r.wait_for_responder(wait)).await;
    assert!(matches!(&w, Err(Error::Timeout(_))), "{w:?}");

    // An ended instance will never answer: said at once, not at the end of
    // a long wait.
    let long = Duration::from_secs(15);
    let done = start(&server, "sleeper", &["0"]).await;
    assert_eq!(ended(&done).await.state, State::Success);
    let r = requester(&done, "calc", long).await;
    let t = Instant::now();
    let answer = within("request", r.request("x")).await;
    assert!(
        matches!(&answer, Err(Error::Gone(m)) if m.contains("success")),
        "{answer:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Nor will one that ends while the request waits for a worker.
    let brief = start(&server, "sleeper", &["1"]).await;
    reached(&brief, State::Running).await;
    let r = requester(&brief, "calc", long).await;
    let t = Instant::now();
    let w = within("wait", r.wait_for_responder(long)).await;
    assert!(
        matches!(&w, Err(Error::Gone(m)) if m.contains("success")),
        "{w:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    within("stop", quiet.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

/// A worker that answers in a function (`This::serve`), on Zenoh's thread:
/// at once, from a task it moves the request to, with a failure, by
/// dropping the request, by panicking; it shares a name with a `Responder`;
/// dropping it fails what it still holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_answers_from_its_handler() {
    let (s, server) = pattern_server().await;
    let this = within("attach", troupe::This::attach(s.endpoint(), "served"))
        .await
        .unwrap();
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let service = within(
        "serve",
        this.serve("calc", move |request| {
            let text = request.message().as_text().unwrap_or_default().to_string();
            match text.as_str() {
                "later" => {
                    tokio::spawn(async move {
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        let _ = request.reply("answered later").await;
                    });
                }
                "refuse" => request.fail_now("refused here"),
                "drop" => drop(request),
                "panic" => panic!("a handler that panics"),
                "hold" => keep.lock().unwrap().push(request),
                _ => request.reply_now(format!("echo {text}")).unwrap(),
            }
        }),
    )
    .await
    .unwrap();
    assert_eq!(service.name(), "calc");
    assert!(!service.member().is_empty());
    let target = within("instance", server.instance(this.id()))
        .await
        .unwrap();
    let r = requester(&target, "calc", TIMEOUT).await;
    within("worker", r.wait_for_responder(TIMEOUT))
        .await
        .unwrap();
    for i in 0..100 {
        assert_eq!(ask(&r, &format!("n{i}")).await, format!("echo n{i}"));
    }
    assert_eq!(ask(&r, "later").await, "answered later");
    let e = within("refuse", r.request("refuse")).await.unwrap_err();
    assert!(
        matches!(&e, Error::Refused(m) if m.contains("refused here")),
        "{e}"
    );
    let e = within("drop", r.request("drop")).await.unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e}");
    // A handler that panics fails that request and serves on.
    let e = within("panic", r.request("panic")).await.unwrap_err();
    assert!(matches!(e, Error::Refused(_)), "{e}");
    assert_eq!(ask(&r, "after").await, "echo after");
    // A Responder of the same name: requests go to both in turn.
    let mut responder = within("responder", this.responder("calc")).await.unwrap();
    let answering = tokio::spawn(async move {
        while let Ok(request) = responder.recv().await {
            let _ = request.reply("from the responder").await;
        }
    });
    eventually("two workers", TIMEOUT, || r.workers() == 2).await;
    let mut answers = BTreeMap::new();
    for _ in 0..10 {
        *answers.entry(ask(&r, "x").await).or_insert(0) += 1;
    }
    assert_eq!(
        answers.keys().collect::<Vec<_>>(),
        ["echo x", "from the responder"],
        "{answers:?}"
    );
    answering.abort();
    eventually("one worker", TIMEOUT, || r.workers() == 1).await;
    // A request the service holds fails when the service goes away.
    let r2 = requester(&target, "calc", TIMEOUT).await;
    within("worker", r2.wait_for_responder(TIMEOUT))
        .await
        .unwrap();
    eventually("r2 sees one worker", TIMEOUT, || r2.workers() == 1).await;
    let pending = tokio::spawn(async move { r2.request("hold").await });
    eventually("the request is held", TIMEOUT, || {
        held.lock().unwrap().len() == 1
    })
    .await;
    let t = Instant::now();
    drop(service);
    let e = within("pending", pending).await.unwrap().unwrap_err();
    assert!(matches!(e, Error::Gone(_) | Error::Refused(_)), "{e}");
    assert!(t.elapsed() < TIMEOUT, "{:?}", t.elapsed());
}
