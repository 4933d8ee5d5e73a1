//! The client against a fake server: a Zenoh router in the test process that
//! answers control requests with canned replies. It checks the client's side
//! of the wire contract (discovery, error mapping, waits, output and events)
//! until the real server exists; the real one is tested in troupe-testkit.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use troupe::{Error, Server, State};
use troupe_protocol::keys::Keys;
use troupe_protocol::{
    ControlError, ErrorKind, Hello, InstanceInfo, OutputBatch, OutputLine, Request, RequestBody,
    Response, StateEvent, Stream as Std,
};
use zenoh::query::Query;
use zenoh::Wait as _;

/// Every await in these tests is bounded by this.
const LIMIT: Duration = Duration::from_secs(10);
const NAME: &str = "fake";

/// What the fake does with a request.
enum Answer {
    Ok(serde_json::Value),
    Err(ErrorKind, &'static str),
    /// Keep the query open without answering.
    Hold,
}

type Handler = dyn Fn(&zenoh::Session, RequestBody) -> Answer + Send + Sync;

struct Fake {
    session: zenoh::Session,
    endpoint: String,
    held: Arc<Mutex<Vec<Query>>>,
    _token: zenoh::liveliness::LivelinessToken,
    _queryable: zenoh::query::Queryable<()>,
}

impl Fake {
    async fn start(
        handler: impl Fn(&zenoh::Session, RequestBody) -> Answer + Send + Sync + 'static,
    ) -> Fake {
        let mut c = zenoh::Config::default();
        c.insert_json5("mode", r#""router""#).unwrap();
        c.insert_json5("listen/endpoints", r#"["tcp/127.0.0.1:0"]"#)
            .unwrap();
        c.insert_json5("scouting/multicast/enabled", "false")
            .unwrap();
        let session = tokio::task::spawn_blocking(move || zenoh::open(c).wait().unwrap())
            .await
            .unwrap();
        let endpoint = session.info().locators().await[0].to_string();
        let keys = Keys::new("troupe");
        let handler: Arc<Handler> = Arc::new(handler);
        let held = Arc::new(Mutex::new(Vec::new()));
        let zid = session.zid().to_string();
        let queryable = {
            let (s, held) = (session.clone(), held.clone());
            session
                .declare_queryable(keys.control(NAME))
                .callback(move |query| {
                    let bytes = query
                        .payload()
                        .map(|p| p.to_bytes().to_vec())
                        .unwrap_or_default();
                    let req: Request = serde_json::from_slice(&bytes).expect("a valid request");
                    let answer = match req.body {
                        RequestBody::Hello => {
                            Answer::Ok(serde_json::to_value(hello(&zid)).unwrap())
                        }
                        body => handler(&s, body),
                    };
                    let response = match answer {
                        Answer::Ok(v) => Response::Ok(v),
                        Answer::Err(kind, m) => Response::Err(ControlError::new(kind, m)),
                        Answer::Hold => {
                            held.lock().unwrap().push(query);
                            return;
                        }
                    };
                    let payload = serde_json::to_vec(&response).unwrap();
                    query
                        .reply(query.key_expr().clone(), payload)
                        .wait()
                        .unwrap();
                })
                .await
                .unwrap()
        };
        let token = session
            .liveliness()
            .declare_token(keys.server_alive(NAME))
            .await
            .unwrap();
        Fake {
            session,
            endpoint,
            held,
            _token: token,
            _queryable: queryable,
        }
    }

    /// Dies: closes the router, as a crash would (queries held stay unanswered).
    async fn die(self) {
        let held = std::mem::take(&mut *self.held.lock().unwrap());
        std::mem::forget(held);
        self.session.close().await.unwrap();
    }

    async fn connect(&self) -> Server {
        tokio::time::timeout(
            LIMIT,
            Server::connect(&self.endpoint, Duration::from_secs(2)),
        )
        .await
        .expect("connect ends")
        .expect("connect succeeds")
    }
}

fn hello(zid: &str) -> Hello {
    Hello {
        server: NAME.into(),
        realm: "troupe".into(),
        zid: zid.into(),
        version: 1,
        troupe_version: "0.1.0".into(),
        pid: std::process::id(),
        listen: vec![],
        started_ms: 0,
    }
}

fn info(id: u64, app: &str, state: State) -> InstanceInfo {
    InstanceInfo {
        id,
        app: app.into(),
        server: NAME.into(),
        pid: Some(1),
        state,
        exit_code: None,
        signal: None,
        restarts: 0,
        args: vec![],
        created_ms: id,
        started_ms: None,
        ended_ms: None,
        reason: None,
        attached: false,
        starter: None,
        starter_server: None,
        has_result: false,
        history: vec![],
    }
}

fn json<T: serde::Serialize>(v: T) -> Answer {
    Answer::Ok(serde_json::to_value(v).unwrap())
}

fn lines(seqs: std::ops::RangeInclusive<u64>) -> Vec<OutputLine> {
    seqs.map(|seq| OutputLine {
        seq,
        stream: Std::Out,
        text: format!("line {seq}"),
    })
    .collect()
}

fn publish<T: serde::Serialize>(s: &zenoh::Session, key: String, v: &T) {
    s.put(key, serde_json::to_vec(v).unwrap()).wait().unwrap();
}

async fn bounded<F: std::future::Future>(f: F) -> F::Output {
    tokio::time::timeout(LIMIT, f).await.expect("bounded wait")
}

#[tokio::test(flavor = "multi_thread")]
async fn connect_finds_the_server_and_calls_map_errors() {
    let fake = Fake::start(|_, body| match body {
        RequestBody::Ps => json(vec![
            info(1, "cam", State::Stopped),
            info(2, "cam", State::Running),
            info(3, "calc", State::Error),
        ]),
        RequestBody::Info { id: 2 } => json(info(2, "cam", State::Running)),
        RequestBody::Info { .. } => Answer::Err(ErrorKind::NotFound, "no instance"),
        RequestBody::Start { app, args, .. } if app == "calc" => {
            let mut i = info(4, &app, State::Starting);
            i.args = args;
            json(i)
        }
        RequestBody::Start { .. } => Answer::Err(ErrorKind::NotFound, "no app x"),
        RequestBody::Result { .. } => json(serde_json::json!({"data": "aGk=", "state": "success"})),
        RequestBody::Kill { .. } => Answer::Err(ErrorKind::Internal, "boom"),
        RequestBody::Apps => Answer::Ok(serde_json::json!({"not": "a list"})),
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    assert_eq!(server.name(), NAME);

    let cam = bounded(server.find("cam")).await.unwrap();
    assert_eq!((cam.id(), cam.app()), (2, "cam"));
    assert_eq!(bounded(server.find("calc")).await.unwrap().id(), 3);
    assert!(bounded(server.find("nope"))
        .await
        .unwrap_err()
        .is_not_found());
    assert!(bounded(server.find("9")).await.unwrap_err().is_not_found());
    assert_eq!(bounded(server.find("2")).await.unwrap().app(), "cam");

    let calc = bounded(server.start("calc", &["a b"])).await.unwrap();
    assert_eq!(calc.id(), 4);
    let e = bounded(server.start("x", &[] as &[&str]))
        .await
        .unwrap_err();
    assert!(
        matches!(e, Error::NotFound(ref m) if m == "no app x"),
        "{e}"
    );
    assert_eq!(
        bounded(calc.result()).await.unwrap().as_deref(),
        Some(&b"hi"[..])
    );
    assert!(matches!(bounded(calc.kill()).await, Err(Error::Server(_))));
    assert!(matches!(
        bounded(server.apps()).await,
        Err(Error::Protocol(_))
    ));

    // A server that does not answer: unreachable after the call timeout.
    let quick = server.clone().with_timeout(Duration::from_millis(300));
    let t0 = Instant::now();
    let e = bounded(quick.hello()).await;
    assert!(e.is_ok(), "hello is answered: {e:?}");
    let e = bounded(quick.instances()).await;
    assert!(e.is_ok());
    let e = bounded(quick.instance(2)).await.unwrap();
    let e = bounded(e.keys()).await.unwrap_err();
    assert!(matches!(e, Error::ServerUnreachable { .. }), "{e}");
    assert!(t0.elapsed() < Duration::from_secs(2));

    // Another server name through the same session: nobody answers.
    let other = Server::with_session(server.session().clone(), "other")
        .unwrap()
        .with_timeout(Duration::from_millis(300));
    let e = bounded(other.instances()).await.unwrap_err();
    assert!(matches!(e, Error::ServerUnreachable { .. }), "{e}");
    assert!(matches!(
        Server::with_session(server.session().clone(), "*"),
        Err(Error::Invalid(_))
    ));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wait_ends_promptly_when_the_server_dies() {
    let fake = Fake::start(|_, body| match body {
        RequestBody::Info { id } => json(info(id, "cam", State::Running)),
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    let cam = bounded(server.instance(7)).await.unwrap();
    let waiter = tokio::spawn(async move { cam.wait_for(None).await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    let t0 = Instant::now();
    fake.die().await;
    let r = bounded(waiter).await.unwrap();
    assert!(
        matches!(r, Err(Error::ServerDied(ref s)) if s == NAME),
        "{r:?}"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(3),
        "took {:?}",
        t0.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn waits_are_sliced_and_time_out() {
    let waits = Arc::new(Mutex::new(Vec::new()));
    let seen = waits.clone();
    let fake = Fake::start(move |_, body| match body {
        RequestBody::Info { id } => json(info(id, "cam", State::Running)),
        RequestBody::Wait {
            timeout_ms, states, ..
        } => {
            seen.lock().unwrap().push((timeout_ms, states.clone()));
            if states.contains(&State::Running) {
                json(info(7, "cam", State::Running))
            } else {
                std::thread::sleep(Duration::from_millis(timeout_ms));
                Answer::Err(ErrorKind::Timeout, "still running")
            }
        }
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    let cam = bounded(server.instance(7)).await.unwrap();
    let i = bounded(cam.wait_for_state(&[State::Running], Some(Duration::from_secs(1))))
        .await
        .unwrap();
    assert_eq!(i.state, State::Running);
    let e = bounded(cam.wait_for(Some(Duration::from_millis(400))))
        .await
        .unwrap_err();
    assert!(e.is_timeout(), "{e}");
    assert_eq!(
        e.to_string(),
        "timeout: instance 7 of cam is not terminal after 400ms"
    );
    let waits = waits.lock().unwrap();
    assert!(
        (900..=1000).contains(&waits[0].0) && waits[0].1 == [State::Running],
        "{waits:?}"
    );
    assert!(waits[1].0 <= 400 && waits[1].1.is_empty(), "{waits:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn events_of_an_instance_end_after_its_terminal_one() {
    let keys = Keys::new("troupe");
    let fake = Fake::start(move |s, body| match body {
        RequestBody::Info { id } => json(info(id, "cam", State::Running)),
        RequestBody::Stop { id } => {
            for (seq, state) in [(10, State::Stopping), (11, State::Stopped)] {
                let ev = StateEvent {
                    seq,
                    server: NAME.into(),
                    id,
                    app: "cam".into(),
                    state,
                    pid: Some(1),
                    exit_code: None,
                    signal: Some(15),
                    restarts: 0,
                    reason: None,
                    time_ms: 0,
                };
                publish(s, keys.events(NAME, "cam", id), &ev);
            }
            json(info(id, "cam", State::Stopping))
        }
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    let cam = bounded(server.instance(3)).await.unwrap();
    let mut all = bounded(server.watch()).await.unwrap();
    let mut events = bounded(cam.events()).await.unwrap();
    bounded(cam.stop()).await.unwrap();
    let d = Duration::from_secs(5);
    assert_eq!(
        events.next_timeout(d).await.unwrap().unwrap().state,
        State::Stopping
    );
    assert_eq!(
        events.next_timeout(d).await.unwrap().unwrap().state,
        State::Stopped
    );
    assert!(events.next_timeout(d).await.unwrap().is_none());
    assert_eq!(all.next_timeout(d).await.unwrap().unwrap().seq, 10);
    assert_eq!(all.next_timeout(d).await.unwrap().unwrap().seq, 11);
    assert!(all
        .next_timeout(Duration::from_millis(100))
        .await
        .unwrap_err()
        .is_timeout());
    fake.die().await;
    assert!(matches!(
        all.next_timeout(d).await,
        Err(Error::ServerDied(_))
    ));
    assert!(all.next_timeout(d).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn output_joins_history_and_live_lines_once_each() {
    let keys = Keys::new("troupe");
    let fake = Fake::start(move |s, body| match body {
        RequestBody::Info { id } => json(info(id, "cam", State::Running)),
        RequestBody::Output { id, after_seq: 0 } => {
            // Lines 4..=8 are published while the history (up to 5) is read,
            // and the instance ends.
            let live = OutputBatch {
                id,
                lines: lines(4..=8),
                end: true,
                dropped_upto: 0,
            };
            publish(s, keys.output(NAME, "cam", id), &live);
            json(OutputBatch {
                id,
                lines: lines(3..=5),
                end: false,
                dropped_upto: 2,
            })
        }
        // After the end marker, a last look at the ring.
        RequestBody::Output { id, after_seq: 8 } => json(OutputBatch {
            id,
            lines: vec![],
            end: true,
            dropped_upto: 2,
        }),
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    let cam = bounded(server.instance(5)).await.unwrap();
    let mut out = bounded(cam.output()).await.unwrap();
    assert_eq!(out.dropped(), 2);
    let mut seqs = Vec::new();
    while let Some(line) = out.next_timeout(Duration::from_secs(5)).await.unwrap() {
        seqs.push(line.seq);
    }
    assert_eq!(seqs, (3..=8).collect::<Vec<_>>());
    assert_eq!(out.missed(), 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn output_repairs_a_gap_from_the_ring() {
    let keys = Keys::new("troupe");
    let fake = Fake::start(move |s, body| match body {
        RequestBody::Info { id } => json(info(id, "cam", State::Running)),
        RequestBody::Output { id, after_seq: 0 } => {
            let live = OutputBatch {
                id,
                lines: lines(10..=11),
                end: false,
                dropped_upto: 0,
            };
            publish(s, keys.output(NAME, "cam", id), &live);
            json(OutputBatch {
                id,
                lines: lines(1..=3),
                end: false,
                dropped_upto: 0,
            })
        }
        RequestBody::Output { id, after_seq } => {
            assert_eq!(after_seq, 3);
            // The ring has the missing lines, and the instance has ended.
            json(OutputBatch {
                id,
                lines: lines(4..=12),
                end: true,
                dropped_upto: 0,
            })
        }
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    let cam = bounded(server.instance(5)).await.unwrap();
    let mut out = bounded(cam.output()).await.unwrap();
    let mut seqs = Vec::new();
    while let Some(line) = out.next_timeout(Duration::from_secs(5)).await.unwrap() {
        seqs.push(line.seq);
    }
    assert_eq!(seqs, (1..=12).collect::<Vec<_>>());
}

#[tokio::test(flavor = "multi_thread")]
async fn output_ends_when_the_server_dies() {
    let fake = Fake::start(|_, body| match body {
        RequestBody::Info { id } => json(info(id, "cam", State::Running)),
        RequestBody::Output { id, .. } => json(OutputBatch {
            id,
            lines: lines(1..=2),
            end: false,
            dropped_upto: 0,
        }),
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    let cam = bounded(server.instance(5)).await.unwrap();
    let mut out = bounded(cam.output()).await.unwrap();
    let d = Duration::from_secs(5);
    assert_eq!(out.next_timeout(d).await.unwrap().unwrap().seq, 1);
    assert_eq!(out.next_timeout(d).await.unwrap().unwrap().seq, 2);
    fake.die().await;
    assert!(matches!(
        out.next_timeout(d).await,
        Err(Error::ServerDied(_))
    ));
    assert!(out.server_died());
}

#[tokio::test(flavor = "multi_thread")]
async fn an_attached_application_holds_its_token_and_hears_stops() {
    let keys = Keys::new("troupe");
    let fake = Fake::start(move |s, body| match body {
        RequestBody::Attach { app, pid } => {
            assert_eq!(pid, std::process::id());
            json(info(42, &app, State::Running))
        }
        RequestBody::Info { id: 42 } => json(info(42, "probe", State::Running)),
        RequestBody::KvStore { id: 42, key, value } if key == "k" && value == b"v" => json(()),
        RequestBody::KvRemove { id: 42, .. } => json(true),
        RequestBody::HandleStop { id } => {
            // A console stops it right after.
            let ev = StateEvent {
                seq: 1,
                server: NAME.into(),
                id,
                app: "probe".into(),
                state: State::Stopping,
                pid: None,
                exit_code: None,
                signal: None,
                restarts: 0,
                reason: None,
                time_ms: 0,
            };
            publish(s, keys.events(NAME, "probe", id), &ev);
            json(())
        }
        RequestBody::Detach { id, state } => json(info(id, "probe", state)),
        _ => Answer::Hold,
    })
    .await;
    let this = bounded(troupe::This::attach(&fake.endpoint, "probe"))
        .await
        .unwrap();
    assert_eq!(
        (this.id(), this.app(), this.server_name()),
        (42, "probe", NAME)
    );
    let tokens = fake
        .session
        .liveliness()
        .get(Keys::new("troupe").instance_alive(NAME, 42))
        .timeout(Duration::from_secs(2))
        .await
        .unwrap();
    assert!(
        bounded(tokens.recv_async()).await.unwrap().result().is_ok(),
        "token seen"
    );

    bounded(this.store("k", b"v")).await.unwrap();
    assert!(bounded(this.remove("k")).await.unwrap());
    assert!(!this.is_stopping());
    let mut stop = bounded(this.on_stop()).await.unwrap();
    bounded(stop.wait()).await;
    assert!(this.is_stopping() && stop.is_stopping());
    assert!(matches!(
        bounded(this.clone().detach(State::Running)).await,
        Err(Error::Invalid(_))
    ));
    let end = bounded(this.detach(State::Success)).await.unwrap();
    assert_eq!(end.state, State::Success);
}

#[tokio::test(flavor = "multi_thread")]
async fn unpublished_output_is_read_from_the_ring_when_the_instance_ends() {
    let keys = Keys::new("troupe");
    let fake = Fake::start(move |s, body| match body {
        RequestBody::Info { id } => json(info(id, "quiet", State::Running)),
        RequestBody::Output { id, after_seq: 0 } => json(OutputBatch {
            id,
            lines: lines(1..=1),
            end: false,
            dropped_upto: 0,
        }),
        RequestBody::Output { id, after_seq: 1 } => json(OutputBatch {
            id,
            lines: lines(2..=3),
            end: true,
            dropped_upto: 0,
        }),
        RequestBody::Kill { id } => {
            let ev = StateEvent {
                seq: 5,
                server: NAME.into(),
                id,
                app: "quiet".into(),
                state: State::Killed,
                pid: None,
                exit_code: None,
                signal: Some(9),
                restarts: 0,
                reason: None,
                time_ms: 0,
            };
            publish(s, keys.events(NAME, "quiet", id), &ev);
            json(info(id, "quiet", State::Killed))
        }
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    let quiet = bounded(server.instance(9)).await.unwrap();
    let mut out = bounded(quiet.output()).await.unwrap();
    let d = Duration::from_secs(5);
    assert_eq!(out.next_timeout(d).await.unwrap().unwrap().seq, 1);
    assert!(out
        .next_timeout(Duration::from_millis(100))
        .await
        .unwrap_err()
        .is_timeout());
    bounded(quiet.kill()).await.unwrap();
    assert_eq!(out.next_timeout(d).await.unwrap().unwrap().seq, 2);
    assert_eq!(out.next_timeout(d).await.unwrap().unwrap().seq, 3);
    assert!(out.next_timeout(d).await.unwrap().is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn output_ends_with_an_error_when_the_server_stops_answering() {
    let keys = Keys::new("troupe");
    let fake = Fake::start(move |s, body| match body {
        RequestBody::Info { id } => json(info(id, "cam", State::Running)),
        RequestBody::Output { id, after_seq: 0 } => {
            let live = OutputBatch {
                id,
                lines: lines(1..=1),
                end: true,
                dropped_upto: 0,
            };
            publish(s, keys.output(NAME, "cam", id), &live);
            json(OutputBatch {
                id,
                lines: vec![],
                end: false,
                dropped_upto: 0,
            })
        }
        _ => Answer::Hold, // the last look at the ring is never answered
    })
    .await;
    let server = fake
        .connect()
        .await
        .with_timeout(Duration::from_millis(300));
    let cam = bounded(server.instance(5)).await.unwrap();
    let mut out = bounded(cam.output()).await.unwrap();
    let d = Duration::from_secs(5);
    assert_eq!(out.next_timeout(d).await.unwrap().unwrap().seq, 1);
    let e = out.next_timeout(d).await.unwrap_err();
    assert!(matches!(e, Error::ServerUnreachable { .. }), "{e}");
    assert!(!out.server_died());
    assert!(out.next_timeout(d).await.unwrap().is_none());
}

/// A live batch lost while the app keeps running (and prints nothing more)
/// is read from the ring once the stream has been quiet for a while.
#[tokio::test(flavor = "multi_thread")]
async fn a_lost_last_batch_is_read_from_the_ring_while_the_instance_runs() {
    let fake = Fake::start(move |_s, body| match body {
        RequestBody::Info { id } => json(info(id, "quiet", State::Running)),
        RequestBody::Output { id, after_seq: 0 } => json(OutputBatch {
            id,
            lines: lines(1..=1),
            end: false,
            dropped_upto: 0,
        }),
        // Line 2 was never seen live: only the ring has it.
        RequestBody::Output { id, after_seq: 1 } => json(OutputBatch {
            id,
            lines: lines(1..=2),
            end: false,
            dropped_upto: 0,
        }),
        RequestBody::Output { id, .. } => json(OutputBatch {
            id,
            lines: Vec::new(),
            end: false,
            dropped_upto: 0,
        }),
        _ => Answer::Hold,
    })
    .await;
    let server = fake.connect().await;
    let quiet = bounded(server.instance(4)).await.unwrap();
    let mut out = bounded(quiet.output()).await.unwrap();
    let d = Duration::from_secs(5);
    assert_eq!(out.next_timeout(d).await.unwrap().unwrap().seq, 1);
    // No terminal state, no later line: only the idle check can find line 2.
    assert_eq!(out.next_timeout(d).await.unwrap().unwrap().seq, 2);
    // Then the stream waits quietly (it checks again, finds nothing).
    assert!(out
        .next_timeout(Duration::from_millis(2500))
        .await
        .unwrap_err()
        .is_timeout());
}
