//! Distributed logging (`crates/troupe/src/log`): records of fixture
//! instances (`log N LEVEL` in troupe-fixture.rs) followed here, filtered,
//! kept by the server, flooded; and a layer in this process, which is no
//! instance. Every wait is bounded.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::time::Instant;
use troupe::log::{LogEvent, LogFilter, LogFollower, LogLevel, LogOptions, LogRecord};
use troupe::{Error, Instance, Server, Session, SessionOptions};
use troupe_testkit::{TestServer, TIMEOUT};

/// The fixture's target (its module path).
const TARGET: &str = "troupe_fixture";

const APPS: &str = r#"
[[app]]
name = "logger-a"
executable = "FIXTURE"
args = ["log"]
multiple = "unlimited"
[[app]]
name = "logger-b"
executable = "FIXTURE"
args = ["log"]
multiple = "unlimited"
"#;

/// A server with the two logging apps, and a client of it.
async fn server() -> (TestServer, Server) {
    let s = TestServer::start(&config(APPS)).expect("start the server");
    let server = connect(&s).await;
    (s, server)
}

/// Follows what `filter` takes through the client's session.
async fn follower(server: &Server, filter: LogFilter) -> LogFollower {
    within("follow", troupe::log::follow(server.session(), filter))
        .await
        .expect("follow")
}

/// The fixture's records and the gaps, until `done` says enough (bounded
/// by [`TIMEOUT`]).
async fn collect(
    f: &mut LogFollower,
    mut done: impl FnMut(&[LogRecord]) -> bool,
) -> (Vec<LogRecord>, Vec<troupe::log::LogGap>) {
    let end = Instant::now() + TIMEOUT;
    let (mut records, mut gaps) = (Vec::new(), Vec::new());
    while !done(&records) {
        let left = end.saturating_duration_since(Instant::now());
        match f.next(left).await {
            Ok(LogEvent::Record(r)) if r.target == TARGET => records.push(r),
            Ok(LogEvent::Record(_)) => {}
            Ok(LogEvent::Gap(g)) => gaps.push(g),
            Err(e) => panic!("after {} records: {e}", records.len()),
        }
    }
    (records, gaps)
}

/// What comes within `quiet`, the fixture's records only.
async fn rest(f: &mut LogFollower, quiet: Duration) -> Vec<LogRecord> {
    let mut out = Vec::new();
    loop {
        match f.next(quiet).await {
            Ok(LogEvent::Record(r)) if r.target == TARGET => out.push(r),
            Ok(_) => {}
            Err(e) if e.is_timeout() => return out,
            Err(e) => panic!("{e}"),
        }
    }
}

/// Starts `app` logging `n` records at `level` with `options`.
async fn log(server: &Server, app: &str, n: u64, level: &str, options: &[&str]) -> Instance {
    let count = n.to_string();
    let mut args = vec![count.as_str(), level];
    args.extend_from_slice(options);
    start(server, app, &args).await
}

/// Waits until the instance succeeded; its result (`logged N in MS ms:
/// sent S dropped D`) as numbers.
async fn logged(inst: &Instance) -> BTreeMap<&'static str, u64> {
    let info = ended(inst).await;
    assert_eq!(info.state, troupe::State::Success, "{info:?}");
    let text = result_text(inst).await;
    let words: Vec<&str> = text.split_whitespace().collect();
    let num = |i: usize| -> u64 {
        words[i]
            .parse()
            .unwrap_or_else(|_| panic!("a number at {i} in {text:?}"))
    };
    BTreeMap::from([
        ("logged", num(1)),
        ("ms", num(3)),
        ("sent", num(6)),
        ("dropped", num(8)),
    ])
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("the host name")
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_two_apps_reach_one_follower_with_their_origin() {
    let (s, server) = server().await;
    let mut f = follower(&server, LogFilter::default()).await;
    let a = log(&server, "logger-a", 3, "info", &[]).await;
    let b = log(&server, "logger-b", 2, "warn", &[]).await;
    let (records, gaps) = collect(&mut f, |r| r.len() >= 5).await;
    assert!(gaps.is_empty(), "{gaps:?}");
    let host = hostname();
    for (inst, n, level) in [(&a, 3u64, LogLevel::Info), (&b, 2, LogLevel::Warn)] {
        let mine: Vec<&LogRecord> = records
            .iter()
            .filter(|r| r.instance == Some(inst.id()))
            .collect();
        assert_eq!(mine.len() as u64, n, "{records:#?}");
        for (i, r) in mine.iter().enumerate() {
            let i = i as u64 + 1;
            assert_eq!(r.message, format!("record {i}"));
            assert_eq!(r.fields["n"], i, "{r:?}");
            assert_eq!(r.level, level);
            assert_eq!(r.host, host);
            assert_eq!(r.server.as_deref(), Some(s.name()));
            assert_eq!(r.app.as_deref(), Some(inst.app()));
            assert_eq!(r.dropped, 0);
            assert_eq!(
                r.origin(),
                format!("{}/{}/{}", s.name(), inst.app(), inst.id())
            );
        }
        // One source per process, numbered without gaps.
        assert!(mine
            .windows(2)
            .all(|w| w[1].seq == w[0].seq + 1 && w[1].source == w[0].source));
        let counts = logged(inst).await;
        assert_eq!((counts["sent"], counts["dropped"]), (n, 0), "{counts:?}");
    }
    assert_ne!(records[0].source, records[4].source);
    let now = troupe_protocol::now_ms();
    assert!(records
        .iter()
        .all(|r| r.time_ms <= now && now - r.time_ms < 60_000));
}

#[tokio::test(flavor = "multi_thread")]
async fn followers_choose_levels_and_applications() {
    let (_s, server) = server().await;
    let warn = LogFilter {
        level: LogLevel::Warn,
        ..LogFilter::default()
    };
    let only_a = LogFilter {
        app: Some("logger-a".into()),
        ..LogFilter::default()
    };
    let mut f_warn = follower(&server, warn).await;
    let mut f_a = follower(&server, only_a).await;
    let a = log(&server, "logger-a", 2, "info", &[]).await;
    let b = log(&server, "logger-b", 3, "error", &[]).await;
    logged(&a).await;
    logged(&b).await;
    let by_warn = rest(&mut f_warn, Duration::from_secs(2)).await;
    assert_eq!(by_warn.len(), 3, "{by_warn:#?}");
    assert!(by_warn
        .iter()
        .all(|r| r.instance == Some(b.id()) && r.level == LogLevel::Error));
    let by_app = rest(&mut f_a, Duration::from_secs(2)).await;
    assert_eq!(by_app.len(), 2, "{by_app:#?}");
    assert!(by_app.iter().all(|r| r.app.as_deref() == Some("logger-a")));
    // An instance of either app, by id.
    let by_id = LogFilter {
        instance: Some(b.id()),
        ..LogFilter::default()
    };
    let kept = within(
        "recent",
        troupe::log::recent(server.session(), &by_id, None, TIMEOUT),
    )
    .await
    .expect("recent");
    let kept: Vec<_> = kept.iter().filter(|r| r.target == TARGET).collect();
    assert_eq!(kept.len(), 3, "{kept:#?}");
    let bad = LogFilter {
        app: Some("no/such".into()),
        ..LogFilter::default()
    };
    let e = troupe::log::follow(server.session(), bad)
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_server_keeps_the_latest_records() {
    let (s, server) = server().await;
    let a = log(&server, "logger-a", 1500, "info", &["quiet"]).await;
    assert_eq!(logged(&a).await["sent"], 1500);
    // After A: B's records are the latest, in time and in arrival.
    let b = log(&server, "logger-b", 2, "warn", &[]).await;
    logged(&b).await;
    let recent = |filter: LogFilter, last: Option<u64>| {
        let session = server.session().clone();
        async move {
            within(
                "recent",
                troupe::log::recent(&session, &filter, last, TIMEOUT),
            )
            .await
            .expect("recent")
        }
    };
    // The ring: the last 1000 records, oldest first.
    let all = recent(LogFilter::default(), None).await;
    assert_eq!(all.len(), 1000, "{}", all.len());
    assert!(all.windows(2).all(|w| w[0].time_ms <= w[1].time_ms));
    let of_a: Vec<u64> = all
        .iter()
        .filter(|r| r.instance == Some(a.id()) && r.target == TARGET)
        .map(|r| r.fields["n"].as_u64().unwrap())
        .collect();
    assert_eq!(of_a.last(), Some(&1500));
    assert!(of_a.windows(2).all(|w| w[1] == w[0] + 1));
    let last2 = recent(LogFilter::default(), Some(2)).await;
    assert_eq!(last2.len(), 2);
    assert_eq!(&last2[..], &all[998..]);
    let warn = LogFilter {
        level: LogLevel::Warn,
        server: Some(s.name().to_string()),
        ..LogFilter::default()
    };
    let warned = recent(warn, None).await;
    let warned: Vec<_> = warned.iter().filter(|r| r.target == TARGET).collect();
    assert_eq!(warned.len(), 2, "{warned:#?}");
    assert!(warned.iter().all(|r| r.instance == Some(b.id())));
    // A server that does not exist does not answer.
    let nobody = LogFilter {
        server: Some("nobody-here".into()),
        ..LogFilter::default()
    };
    let e = troupe::log::recent(server.session(), &nobody, None, Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(e.is_server_gone(), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flood_never_blocks_the_app_and_every_drop_is_reported() {
    const N: u64 = 200_000;
    let (_s, server) = server().await;
    let mut f = follower(&server, LogFilter::default()).await;
    let flood = log(&server, "logger-a", N, "info", &["quiet"]).await;
    let counts = logged(&flood).await;
    eprintln!("flood: {counts:?}");
    // The application produced everything at once: nothing waited for the
    // network (in a debug build, on a loaded machine).
    assert!(counts["ms"] < 10_000, "{counts:?}");
    assert_eq!(counts["sent"] + counts["dropped"], N, "{counts:?}");
    assert!(counts["dropped"] > 0, "the queue never filled: {counts:?}");
    // The follower receives what was sent, and learns of every drop.
    let (mut received, mut reported, mut lost) = (0u64, 0u64, 0u64);
    let end = Instant::now() + TIMEOUT;
    while received < counts["sent"] || reported < counts["dropped"] {
        let left = end.saturating_duration_since(Instant::now());
        match f.next(left).await {
            Ok(LogEvent::Record(r)) if r.target == "troupe::log" => {
                // The layer's report of drops no record carried.
                assert_eq!(r.level, LogLevel::Warn, "{r:?}");
                assert!(r.message.ends_with("dropped: the queue was full"), "{r:?}");
            }
            Ok(LogEvent::Record(_)) => received += 1,
            Ok(LogEvent::Gap(g)) => {
                reported += g.dropped;
                lost += g.lost;
                assert_eq!(
                    g.origin,
                    format!("{}/logger-a/{}", server.name(), flood.id())
                );
            }
            Err(e) => panic!(
                "received {received}, {reported} reported dropped, {lost} lost of {counts:?}: {e}"
            ),
        }
    }
    assert_eq!(lost, 0);
    assert_eq!((received, reported), (counts["sent"], counts["dropped"]));
    assert_eq!(f.overflowed(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn records_of_the_log_crate_take_the_same_way() {
    let (_s, server) = server().await;
    let mut f = follower(&server, LogFilter::default()).await;
    let a = log(&server, "logger-a", 2, "warn", &["bridge"]).await;
    let (records, _) = collect(&mut f, |r| r.len() >= 2).await;
    for (i, r) in records.iter().enumerate() {
        assert_eq!(r.message, format!("record {}", i + 1));
        assert_eq!(r.level, LogLevel::Warn);
        assert_eq!(r.instance, Some(a.id()));
        assert!(
            r.fields.is_empty(),
            "the log crate's own fields stay out: {r:?}"
        );
    }
    logged(&a).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_process_that_is_no_instance_files_its_records_under_a_server() {
    let (s, server) = server().await;
    let session = within(
        "open a session",
        Session::open(s.endpoint(), SessionOptions::default()),
    )
    .await
    .expect("session");
    let opts = LogOptions {
        level: tracing::Level::DEBUG,
        server: Some(s.name().to_string()),
        ..LogOptions::default()
    };
    let mut f = follower(&server, LogFilter::default()).await;
    let (layer, handle) = within("layer", troupe::log::layer(&session, opts))
        .await
        .expect("layer");
    {
        use tracing_subscriber::layer::SubscriberExt as _;
        let subscriber = tracing_subscriber::registry().with(layer);
        let _guard = tracing::subscriber::set_default(subscriber);
        tracing::debug!(target: "tool", k = "v", "one");
        tracing::trace!(target: "tool", "too verbose");
        tracing::warn!(target: "tool", "two");
    }
    within("flush", handle.flush(TIMEOUT)).await.expect("flush");
    assert_eq!((handle.sent(), handle.dropped()), (2, 0));
    let zid = session.identity();
    let mut got = Vec::new();
    while got.len() < 2 {
        match within("a record", f.next(TIMEOUT)).await.expect("a record") {
            LogEvent::Record(r) if r.target == "tool" => got.push(r),
            other => panic!("{other:?}"),
        }
    }
    assert_eq!(got[0].message, "one");
    assert_eq!(got[0].fields["k"], "v");
    assert_eq!(got[1].message, "two");
    // The source: the session's Zenoh id (and `-N` for the N-th layer of
    // this process, when tests share one).
    let source = &got[0].source;
    assert!(source.starts_with(&zid), "{source} {zid}");
    assert_eq!(
        handle.key(),
        format!("troupe/@/log/{}/-/{source}", s.name())
    );
    for r in &got {
        assert_eq!((r.app.as_deref(), r.instance), (None, None));
        assert_eq!(r.origin(), format!("{}/-/{source}", s.name()));
    }
    // Its server keeps them.
    let kept = troupe::log::recent(server.session(), &LogFilter::default(), None, TIMEOUT)
        .await
        .expect("recent");
    assert_eq!(kept.iter().filter(|r| r.target == "tool").count(), 2);
    // A bad server name is refused.
    let bad = LogOptions {
        server: Some("a/b".into()),
        ..LogOptions::default()
    };
    let e = troupe::log::layer(&session, bad).await.unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread")]
async fn recent_then_live_yields_each_record_once() {
    let (_s, server) = server().await;
    let first = log(&server, "logger-a", 3, "info", &[]).await;
    logged(&first).await;
    let mut f = follower(&server, LogFilter::default()).await;
    let past = within("recent", f.recent(None, TIMEOUT))
        .await
        .expect("recent");
    let past: Vec<_> = past.iter().filter(|r| r.target == TARGET).collect();
    assert_eq!(past.len(), 3);
    let second = log(&server, "logger-a", 2, "info", &[]).await;
    let (live, gaps) = collect(&mut f, |r| r.len() >= 2).await;
    assert!(gaps.is_empty(), "{gaps:?}");
    assert!(live.iter().all(|r| r.instance == Some(second.id())));
    logged(&second).await;
    assert!(rest(&mut f, Duration::from_millis(500)).await.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_server_of_the_realm_answers_for_its_own_records() {
    let (a, on_a) = server().await;
    let endpoint_a = a.endpoint().to_string();
    let b = TestServer::start_with(&config(APPS), |c| {
        c.connect = vec![endpoint_a.clone()];
    })
    .expect("start server B, connected to A");
    let on_b = connect(&b).await;
    let first = log(&on_a, "logger-a", 2, "info", &[]).await;
    logged(&first).await;
    let second = log(&on_b, "logger-b", 2, "info", &[]).await;
    logged(&second).await;
    // Asked through B, both servers answer; the records come merged by time.
    let mut merged = Vec::new();
    let end = Instant::now() + TIMEOUT;
    while merged.len() < 4 {
        assert!(
            Instant::now() < end,
            "not both servers' records: {merged:#?}"
        );
        let all = within(
            "recent",
            troupe::log::recent(on_b.session(), &LogFilter::default(), None, TIMEOUT),
        )
        .await
        .expect("recent");
        merged = all.into_iter().filter(|r| r.target == TARGET).collect();
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let origins: Vec<String> = merged.iter().map(LogRecord::origin).collect();
    let from_a = format!("{}/logger-a/{}", a.name(), first.id());
    let from_b = format!("{}/logger-b/{}", b.name(), second.id());
    assert_eq!(origins, [&from_a[..], &from_a, &from_b, &from_b]);
    // One server only.
    let only_b = LogFilter {
        server: Some(b.name().to_string()),
        ..LogFilter::default()
    };
    let kept = within(
        "recent",
        troupe::log::recent(on_a.session(), &only_b, None, TIMEOUT),
    )
    .await
    .expect("recent");
    assert!(kept
        .iter()
        .filter(|r| r.target == TARGET)
        .all(|r| r.origin() == from_b));
    assert_eq!(kept.iter().filter(|r| r.target == TARGET).count(), 2);
}
