//! Publish/subscribe across processes: publishers in fixture processes,
//! subscribers here and in other fixture processes, through a real server.

mod common;

use common::*;
use std::time::{Duration, Instant};
use troupe::{Content, Error, State, SubscriberOptions};
use troupe_testkit::TIMEOUT;

/// `1..=n`, as a fixture publisher sends them.
fn upto(n: u64) -> Vec<u64> {
    (1..=n).collect()
}

/// Whether each number follows the one before it.
fn consecutive(nums: &[u64]) -> bool {
    nums.windows(2).all(|w| w[1] == w[0] + 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_made_before_its_publisher_gets_every_message() {
    let (_s, server) = pattern_server().await;
    // The fixture declares its publisher only once told to.
    let inst = start(&server, "publisher", &["feed", "500", "sync", "1", "gate"]).await;
    reached(&inst, State::Running).await;
    let sub = subscribe(&inst, "feed");
    tokio::pin!(sub);
    assert!(
        futures::poll!(&mut sub).is_pending(),
        "the subscriber waits for its publisher"
    );
    within("open the gate", inst.write_stdin(b"go\n"))
        .await
        .unwrap();
    let mut sub = sub.await;
    assert_eq!(read_to_end(&mut sub).await, upto(500));
    assert_eq!(sub.missed(), 0);
    assert!(sub.is_ended());
    // Past the end, the stream stays ended.
    assert!(within("recv", sub.recv()).await.unwrap().is_none());
    assert_eq!(ended(&inst).await.state, State::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_synchronised_subscribers_each_get_every_message_in_order() {
    const N: u64 = 2000;
    let (s, server) = pattern_server().await;
    let n = N.to_string();
    let inst = start(
        &server,
        "publisher",
        &["feed", &n, "sync", "20", "wait", "20"],
    )
    .await;
    let id = inst.id().to_string();
    // Four subscribers in processes of their own (two peers, as
    // applications are by default, and two configured as clients of the
    // server), sixteen here over two client sessions.
    let mut others = Vec::new();
    for app in ["subscriber", "client-subscriber"] {
        for _ in 0..2 {
            others.push(start(&server, app, &[&id, "feed"]).await);
        }
    }
    let second = connect(&s).await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..16 {
        let handle = if i % 2 == 0 { &server } else { &second };
        let inst = within("instance", handle.instance(inst.id()))
            .await
            .unwrap();
        tasks.spawn(async move {
            let mut sub = subscribe(&inst, "feed").await;
            let nums = read_to_end(&mut sub).await;
            (i, nums, sub.missed())
        });
    }
    while let Some(joined) = within("a subscriber", tasks.join_next()).await {
        let (i, nums, missed) = joined.unwrap();
        assert_eq!(nums.len() as u64, N, "subscriber {i}");
        assert_eq!(nums, upto(N), "subscriber {i}: every message, in order");
        assert_eq!(missed, 0, "subscriber {i}");
    }
    for other in &others {
        assert_eq!(ended(other).await.state, State::Success);
        assert_eq!(
            result_text(other).await,
            format!("received={N} missed=0 first=1 last={N} gaps=0"),
            "subscriber process {}",
            other.id()
        );
    }
    assert_eq!(ended(&inst).await.state, State::Success);
    assert_eq!(result_text(&inst).await, format!("published {N}"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_killed_mid_stream_is_gone_promptly() {
    let (_s, server) = pattern_server().await;
    let inst = start(&server, "forever", &["feed", "1"]).await;
    let mut sub = subscribe(&inst, "feed").await;
    let mut got = Vec::new();
    while got.len() < 50 {
        got.push(next_number(&mut sub).await.unwrap().expect("a message"));
    }
    let t = Instant::now();
    within("kill", inst.kill()).await.unwrap();
    let err = loop {
        match next_number(&mut sub).await {
            Ok(Some(n)) => got.push(n),
            Ok(None) => panic!("the stream of a killed publisher ended cleanly"),
            Err(e) => break e,
        }
    };
    let took = t.elapsed();
    eprintln!("DEBUG gone after {took:?} {} msgs: {err}", got.len());
    assert!(matches!(err, Error::Gone(_)), "{err}");
    assert!(took < Duration::from_secs(5), "gone after {took:?}");
    assert!(consecutive(&got), "in order, none lost: {got:?}");
    // It stays gone.
    let again = within("recv", sub.recv()).await;
    assert!(matches!(again, Err(Error::Gone(_))), "{again:?}");
    assert_eq!(ended(&inst).await.state, State::Killed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_dropped_without_end_is_gone() {
    let (_s, server) = pattern_server().await;
    let inst = start(&server, "publisher", &["feed", "100", "wait", "1", "drop"]).await;
    let mut sub = subscribe(&inst, "feed").await;
    let mut got = Vec::new();
    let err = loop {
        match next_number(&mut sub).await {
            Ok(Some(n)) => got.push(n),
            Ok(None) => panic!("a dropped publisher ended its stream"),
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::Gone(_)), "{err}");
    assert_eq!(got, upto(100));
    // The process lives on: the drop, not a death, was reported.
    let mut out = within("output", inst.output()).await.unwrap();
    line_with(&mut out, "dropped").await;
    assert_eq!(within("state", inst.state()).await.unwrap(), State::Running);
    within("stop", inst.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

/// A subscriber waits for a publisher that comes, publishes to it and goes
/// (ends its stream or drops it) before the subscriber looks again: it still
/// gets what was published, then the end or [`Error::Gone`].
async fn publisher_came_and_went(end: bool) {
    let (_s, server) = pattern_server().await;
    let mut args = vec!["feed", "100", "wait", "1", "gate"];
    if !end {
        args.push("drop");
    }
    let inst = start(&server, "publisher", &args).await;
    reached(&inst, State::Running).await;
    let sub = subscribe(&inst, "feed");
    tokio::pin!(sub);
    assert!(futures::poll!(&mut sub).is_pending());
    let mut out = within("output", inst.output()).await.unwrap();
    within("open the gate", inst.write_stdin(b"go\n"))
        .await
        .unwrap();
    if end {
        assert_eq!(ended(&inst).await.state, State::Success);
    } else {
        line_with(&mut out, "dropped").await;
    }
    // Wait until this session has seen the publisher go: a probe finds
    // none, or one that it then reports gone.
    let probe = SubscriberOptions {
        timeout: Some(Duration::from_millis(300)),
        ..SubscriberOptions::default()
    };
    if let Ok(mut probe) = within("probe", inst.subscriber_with("feed", probe)).await {
        while let Ok(Some(_)) = next_number(&mut probe).await {}
        assert!(
            within("probe", probe.recv()).await.is_err(),
            "the probe sees the publisher go"
        );
    }
    // The waiting subscriber was not polled meanwhile.
    let mut sub = sub.await;
    let mut got = Vec::new();
    let last = loop {
        match next_number(&mut sub).await {
            Ok(Some(n)) => got.push(n),
            other => break other,
        }
    };
    assert_eq!(got, upto(100));
    if end {
        assert!(matches!(last, Ok(None)), "{last:?}");
    } else {
        assert!(matches!(last, Err(Error::Gone(_))), "{last:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_ended_before_its_subscriber_looked_still_delivers() {
    publisher_came_and_went(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_dropped_before_its_subscriber_looked_still_delivers() {
    publisher_came_and_went(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_subscriber_of_a_plain_publisher_gets_what_follows() {
    let (_s, server) = pattern_server().await;
    let inst = start(&server, "forever", &["feed", "1"]).await;
    let mut early = subscribe(&inst, "feed").await;
    let mut seen = Vec::new();
    while seen.len() < 50 {
        seen.push(next_number(&mut early).await.unwrap().expect("a message"));
    }
    let last_seen = *seen.last().unwrap();
    // Same session: a message the early one has read was dispatched before
    // the late one existed.
    let mut late = subscribe(&inst, "feed").await;
    let mut got = Vec::new();
    while got.len() < 200 {
        got.push(next_number(&mut late).await.unwrap().expect("a message"));
    }
    assert!(got[0] > last_seen, "{} after {last_seen}", got[0]);
    assert!(consecutive(&got), "in order, none lost: {got:?}");
    assert_eq!(late.missed(), 0, "starting later is no gap");
    // The early one went on undisturbed.
    while seen.len() < 300 {
        seen.push(next_number(&mut early).await.unwrap().expect("a message"));
    }
    assert!(consecutive(&seen), "{seen:?}");
    assert_eq!(early.missed(), 0);
    within("kill", inst.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_of_a_plain_publisher_misses_messages_and_counts_them() {
    const N: u64 = 3000;
    let (_s, server) = pattern_server().await;
    let n = N.to_string();
    let inst = start(&server, "publisher", &["feed", &n, "wait", "2"]).await;
    let mut fast = subscribe(&inst, "feed").await;
    let small = SubscriberOptions {
        queue: 10,
        ..SubscriberOptions::default()
    };
    let mut slow = subscribe_with(&inst, "feed", small).await;
    assert_eq!(read_to_end(&mut fast).await, upto(N));
    assert_eq!(fast.missed(), 0);
    // The publisher waited for both to confirm the end: everything has been
    // delivered to the slow one, which read nothing so far.
    assert_eq!(ended(&inst).await.state, State::Success);
    let got = read_to_end(&mut slow).await;
    assert_eq!(got, upto(10), "the queue kept the first ten");
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "increasing order: {got:?}"
    );
    assert!(slow.missed() > 0);
    assert_eq!(
        got.len() as u64 + slow.missed(),
        N,
        "every message is received or counted missed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_subscriber_of_a_synchronised_publisher_holds_it_back_and_loses_nothing() {
    const N: u64 = 1000;
    const WINDOW: usize = 128;
    let (_s, server) = pattern_server().await;
    let n = N.to_string();
    let w = WINDOW.to_string();
    let inst = start(
        &server,
        "publisher",
        &["feed", &n, "sync", "2", "window", &w],
    )
    .await;
    let mut fast = subscribe(&inst, "feed").await;
    let mut slow = subscribe(&inst, "feed").await;
    // While the slow one consumes nothing, the publisher cannot run more
    // than its window ahead: the fast one gets at most that, then nothing.
    let mut early = Vec::new();
    loop {
        match within("recv", fast.recv_timeout(Duration::from_secs(1))).await {
            Ok(Some(m)) => early.push(number(&m)),
            Err(Error::Timeout(_)) => break,
            other => panic!("{other:?}"),
        }
    }
    eprintln!("DEBUG early {}", early.len());
    assert!(
        !early.is_empty() && early.len() <= WINDOW,
        "{} messages ran ahead of a subscriber that consumed none",
        early.len()
    );
    assert_eq!(
        within("state", inst.state()).await.unwrap(),
        State::Running,
        "the publisher waits"
    );
    // Now the slow one reads, slowly, while the fast one reads on.
    let fast_rest = tokio::spawn(async move {
        let rest = read_to_end(&mut fast).await;
        (rest, fast.missed())
    });
    let mut slow_got = Vec::new();
    while let Some(n) = next_number(&mut slow).await.unwrap() {
        slow_got.push(n);
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    assert_eq!(slow_got, upto(N), "the slow subscriber got every message");
    assert_eq!(slow.missed(), 0);
    let (rest, missed) = within("the fast subscriber", fast_rest).await.unwrap();
    early.extend(rest);
    assert_eq!(early, upto(N), "the fast subscriber got every message");
    assert_eq!(missed, 0);
    assert_eq!(ended(&inst).await.state, State::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscriber_that_leaves_no_longer_holds_back_a_synchronised_publisher() {
    const N: u64 = 1000;
    let (_s, server) = pattern_server().await;
    let n = N.to_string();
    let inst = start(
        &server,
        "publisher",
        &["feed", &n, "sync", "2", "window", "128"],
    )
    .await;
    let mut fast = subscribe(&inst, "feed").await;
    let slow = subscribe(&inst, "feed").await;
    let mut got = Vec::new();
    while got.len() < 100 {
        got.push(next_number(&mut fast).await.unwrap().expect("a message"));
    }
    // The slow one consumed nothing: it holds the publisher back until it
    // goes.
    drop(slow);
    got.extend(read_to_end(&mut fast).await);
    assert_eq!(got, upto(N));
    assert_eq!(ended(&inst).await.state, State::Success);
}

/// The JSON message `publish-kinds` sends (a copy of the fixture's type).
#[derive(Debug, PartialEq, serde::Deserialize)]
struct Reading {
    sensor: String,
    values: Vec<f64>,
    ok: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_of_message_crosses_processes() {
    let (_s, server) = pattern_server().await;
    let inst = start(&server, "kinds", &["feed"]).await;
    let mut sub = subscribe(&inst, "feed").await;
    let m = next_message(&mut sub).await;
    assert_eq!(
        (m.content(), m.body(), m.header()),
        (Content::Bytes, &[0u8, 1, 255][..], None)
    );
    let m = next_message(&mut sub).await;
    assert_eq!(
        (m.content(), m.as_text().unwrap()),
        (Content::Text, "héllo, wörld")
    );
    let m = next_message(&mut sub).await;
    assert_eq!(m.content(), Content::Json);
    assert_eq!(
        m.to_json::<Reading>().unwrap(),
        Reading {
            sensor: "t-1".into(),
            values: vec![20.5, -3.0],
            ok: true
        }
    );
    let m = next_message(&mut sub).await;
    assert_eq!(m.content(), Content::F64s);
    assert_eq!(m.to_f64s().unwrap(), [1.5, -2.25, f64::MAX]);
    let m = next_message(&mut sub).await;
    assert_eq!(m.content(), Content::I32s);
    assert_eq!(m.to_i32s().unwrap(), [1, -2, i32::MIN]);
    assert_eq!(m.header(), None);
    let m = next_message(&mut sub).await;
    assert_eq!(m.header(), Some(&b"frame 7"[..]), "two parts");
    assert_eq!(m.to_f64s().unwrap(), [0.5]);
    assert!(within("the end", sub.recv()).await.unwrap().is_none());
    assert_eq!(ended(&inst).await.state, State::Success);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_publisher_of_a_name_is_refused_and_bad_names_are_invalid() {
    let (_s, server) = pattern_server().await;
    let inst = start(&server, "twice", &["feed"]).await;
    assert_eq!(ended(&inst).await.state, State::Success);
    assert_eq!(
        texts(&all_output(&inst).await),
        [
            "first: ok",
            "second: refused",
            "other: ok",
            r#"bad "": invalid"#,
            r#"bad "a b": invalid"#,
            r#"bad ".hidden": invalid"#,
            r#"bad "x/y": invalid"#,
            r#"bad "*": invalid"#,
            "again: ok",
        ]
    );
    // Bad names on the other side too, at once.
    for bad in ["", "a b", "x/**"] {
        let r = within("subscriber", inst.subscriber(bad)).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{bad:?}: {r:?}");
        let r = within("requester", inst.requester(bad)).await;
        assert!(matches!(r, Err(Error::Invalid(_))), "{bad:?}: {r:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publisher_that_never_comes_times_out_and_an_ended_instance_is_gone() {
    let (_s, server) = pattern_server().await;
    let wait = Duration::from_millis(500);
    let opts = SubscriberOptions {
        timeout: Some(wait),
        ..SubscriberOptions::default()
    };
    let quiet = start(&server, "sleeper", &["1000"]).await;
    reached(&quiet, State::Running).await;
    let t = Instant::now();
    let r = within("subscribe", quiet.subscriber_with("feed", opts.clone())).await;
    let took = t.elapsed();
    assert!(
        matches!(&r, Err(Error::Timeout(m)) if m.contains("feed")),
        "{r:?}"
    );
    assert!(took >= wait && took < Duration::from_secs(5), "{took:?}");

    // An ended instance will never publish: said at once, not at the end
    // of a long wait.
    let long = SubscriberOptions {
        timeout: Some(Duration::from_secs(15)),
        ..SubscriberOptions::default()
    };
    let done = start(&server, "sleeper", &["0"]).await;
    assert_eq!(ended(&done).await.state, State::Success);
    let t = Instant::now();
    let r = within("subscribe", done.subscriber_with("feed", long.clone())).await;
    assert!(
        matches!(&r, Err(Error::Gone(m)) if m.contains("success")),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
    // Nor will one that ends while the subscriber waits.
    let brief = start(&server, "sleeper", &["1"]).await;
    reached(&brief, State::Running).await;
    let t = Instant::now();
    let r = within("subscribe", brief.subscriber_with("feed", long)).await;
    assert!(
        matches!(&r, Err(Error::Gone(m)) if m.contains("success")),
        "{r:?}"
    );
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
    within("stop", quiet.stop_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_publisher_is_checked_on_and_not_taken_for_gone() {
    // A message every 2.5 s: each wait outlasts the subscriber's periodic
    // check of its publisher's token (every 2 s), which must find it alive.
    let (_s, server) = pattern_server().await;
    let inst = start(&server, "forever", &["feed", "2500"]).await;
    let mut sub = subscribe(&inst, "feed").await;
    let mut got = Vec::new();
    while got.len() < 3 {
        got.push(next_number(&mut sub).await.unwrap().expect("a message"));
    }
    assert!(consecutive(&got), "{got:?}");
    assert_eq!(sub.missed(), 0);
    // A short wait in the silence is a timeout, not a loss of the publisher.
    let quiet = within("recv", sub.recv_timeout(Duration::from_millis(100))).await;
    assert!(matches!(quiet, Err(Error::Timeout(_))), "{quiet:?}");
    within("kill", inst.kill_and_wait(Some(TIMEOUT)))
        .await
        .unwrap();
    let after = within("recv", async {
        loop {
            match sub.recv().await {
                Ok(Some(_)) => {}
                other => break other,
            }
        }
    })
    .await;
    assert!(matches!(after, Err(Error::Gone(_))), "{after:?}");
}

/// A fast stream of small messages goes in batches (several messages in
/// one Zenoh sample); large and two-part messages among them keep their
/// place and their parts, and nothing is lost or reordered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fast_stream_goes_in_batches_and_keeps_its_order() {
    const N: u64 = 20_000;
    let (_s, server) = pattern_server().await;
    let n = N.to_string();
    let inst = start(
        &server,
        "publisher",
        &["feed", &n, "sync", "1", "wait", "1", "mixed", "report"],
    )
    .await;
    let mut out = within("output", inst.output()).await.unwrap();
    let mut sub = subscribe(&inst, "feed").await;
    for i in 1..=N {
        let m = next_message(&mut sub).await;
        let text = m.as_text().unwrap();
        match i {
            i if i % 100 == 0 => {
                assert_eq!(m.header(), Some(&b"big"[..]), "message {i}");
                assert_eq!(text.trim_end(), i.to_string());
                assert_eq!(text.len(), i.to_string().len() + 20_000);
            }
            i if i % 7 == 0 => {
                assert_eq!((m.header(), text), (Some(&b"two"[..]), &*i.to_string()));
            }
            i => assert_eq!((m.header(), text), (None, &*i.to_string()), "message {i}"),
        }
    }
    assert!(within("the end", sub.recv()).await.unwrap().is_none());
    assert_eq!(sub.missed(), 0);
    let batched: u64 = loop {
        let line = next_line(&mut out).await.expect("the publisher's report");
        if let Some(b) = line.text.strip_prefix("batched ") {
            break b.parse().unwrap();
        }
    };
    assert!(
        batched > 0 && batched < N,
        "{batched} of {N} messages went in batches"
    );
    assert_eq!(ended(&inst).await.state, State::Success);
}
