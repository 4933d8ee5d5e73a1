//! Devices and parameters, one guarantee of issue 7 per test. Services run
//! in-process on a peer session, or as the fixture `device-service` (a
//! [`Supply`]) where a test needs a process to kill and start again;
//! subscribers run in-process, or as the fixture `device-client` where a
//! test kills one.

mod common;

use common::*;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;
use troupe::device::{
    self, DeviceError, DeviceHandler, DevicePublisher, DeviceService, DeviceSettings, FirstUpdate,
    MonitorEvent, Monitored, Update,
};
use troupe::{
    DeviceClient, DeviceSubscription, Error, Instance, Mode, OutputStream, Server, Session,
    SessionOptions,
};
use troupe_testkit::supply::{Supply, PROPERTIES};
use troupe_testkit::{TestServer, TIMEOUT};

/// The fixture apps of these tests. `ps-service`'s configuration leaves
/// the server id to the program; `ps-precedence`'s sets what the program
/// also gives, to see the configuration win.
const APPS: &str = r#"
[[app]]
name = "ps-service"
executable = "FIXTURE"
args = ["device-service", "ps"]
multiple = "unlimited"
[app.device]
name = "power"
selector_aware = true
first_update = "current"

[[app]]
name = "ps-precedence"
executable = "FIXTURE"
args = ["device-service", "pp"]
[app.device]
server_id = "cfg-id"
selector_aware = false

[[app]]
name = "device-client"
executable = "FIXTURE"
args = ["device-client"]
multiple = "unlimited"
"#;

/// A server running [`APPS`], and a control client.
async fn server() -> (TestServer, Server) {
    let s = TestServer::start(&config(APPS)).expect("start the server");
    let server = connect(&s).await;
    (s, server)
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

/// Starts the fixture `device-service` as `app` with `args`, and waits
/// until it serves.
async fn service_process(server: &Server, app: &str, args: &[&str]) -> (Instance, OutputStream) {
    let inst = start(server, app, args).await;
    let mut out = within("output", inst.output()).await.expect("output");
    line_with(&mut out, "serving").await;
    (inst, out)
}

/// Subscribes, bounded.
async fn subscribe(
    client: &DeviceClient,
    address: &str,
    selector: Option<&str>,
) -> DeviceSubscription {
    within("subscribe", client.subscribe(address, selector))
        .await
        .unwrap_or_else(|e| panic!("subscribe to {address} {selector:?}: {e}"))
}

/// The next update, which must come in time.
async fn next(sub: &mut DeviceSubscription) -> Update {
    sub.next(TIMEOUT)
        .await
        .unwrap_or_else(|e| panic!("an update of {}/{}: {e}", sub.device(), sub.property()))
}

/// Asserts that no update comes within `quiet`.
async fn none_within(sub: &mut DeviceSubscription, quiet: Duration) {
    match sub.next(quiet).await {
        Err(Error::Timeout(_)) => {}
        other => panic!(
            "expected no update of {}/{} {:?}, got {other:?}",
            sub.device(),
            sub.property(),
            sub.selector()
        ),
    }
}

/// The next monitoring event, which must come in time.
async fn event(events: &mut mpsc::UnboundedReceiver<MonitorEvent>) -> MonitorEvent {
    within("a monitoring event", events.recv())
        .await
        .expect("the service is serving")
}

fn started(device: &str, property: &str, selector: Option<&str>) -> MonitorEvent {
    MonitorEvent::Started {
        device: device.into(),
        property: property.into(),
        selector: selector.map(Into::into),
    }
}

fn stopped(device: &str, property: &str, selector: Option<&str>) -> MonitorEvent {
    MonitorEvent::Stopped {
        device: device.into(),
        property: property.into(),
        selector: selector.map(Into::into),
    }
}

/// A [`Supply`] served in-process for `device`, with its monitoring events.
async fn supply_service(
    session: &Session,
    name: &str,
    device: &str,
    aware: bool,
) -> (DeviceService, mpsc::UnboundedReceiver<MonitorEvent>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let service = DeviceService::builder(session)
        .name(name)
        .server_id(&format!("{name}-1"))
        .selector_aware(aware)
        .device(device, &PROPERTIES)
        .serve(Supply::new(Duration::from_millis(20)).with_events(tx));
    let service = within("serve", service)
        .await
        .unwrap_or_else(|e| panic!("serve {device}: {e}"));
    (service, rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_set_reaches_the_client_with_its_reason() {
    let (s, server) = server().await;
    let (_inst, _out) = service_process(&server, "ps-service", &["server-id", "ps1"]).await;
    let client_session = session_in(&s, Mode::Client).await;
    let client = DeviceClient::new(&client_session);
    let e = within("set", client.set("ps/current", json!(20), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Refused(m) if m == "ps/current: 20 A is outside the limits (0 to 10 A)"),
        "{e}"
    );
    let e = within("set", client.set("ps/measured", json!(1), None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Refused(m) if m.ends_with("measured is read-only")),
        "{e}"
    );
    let e = within("set", client.set("ps/current", json!("lots"), Some("c1")))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Refused(m) if m.contains("expected a number")),
        "{e}"
    );
    // An accepted set, read back; a get that fails is refused with the reason.
    within("set", client.set("ps/current", json!(2.5), None))
        .await
        .unwrap();
    let (value, header) = within("get", client.get("ps/current", None)).await.unwrap();
    assert_eq!(value, json!(2.5));
    assert!(header.epoch > 0 && header.selector.is_none(), "{header:?}");
    let (_, header) = within("get", client.get("ps/measured", Some("c7")))
        .await
        .unwrap();
    assert_eq!(
        header.selector.as_deref(),
        Some("c7"),
        "a selector-aware service"
    );
    let e = within("get", client.get("ps/broken", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Refused(m) if m == "ps/broken: sensor unplugged"),
        "{e}"
    );
    let e = within("get", client.get("ps/voltage", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotFound(m) if m.starts_with("device ps has no property voltage")),
        "{e}"
    );
    let e = within("subscribe", client.subscribe("ps/voltage", Some("c1")))
        .await
        .unwrap_err();
    assert!(e.is_not_found(), "{e}");
    // The service as listed: the configured name, the run-time server id.
    let all = within(
        "list",
        device::list(&client_session, Some("troupe"), TIMEOUT),
    )
    .await
    .unwrap();
    assert_eq!(
        (all.len(), all[0].name.as_str(), all[0].server_id.as_str()),
        (1, "power", "ps1"),
        "{all:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_device_is_not_found_at_once() {
    let (s, _server) = server().await;
    let session = session_in(&s, Mode::Client).await; // calls wait 10 s
    let peer = session_in(&s, Mode::Peer).await;
    let (_served, _events) = supply_service(&peer, "known", "known-ps", false).await;
    let client = DeviceClient::new(&session);
    for c in [client.clone(), DeviceClient::new(&peer)] {
        let started = Instant::now();
        let e = within("get", c.get("nodev/current", None))
            .await
            .unwrap_err();
        assert!(
            matches!(&e, Error::NotFound(m) if m == "no service serves device nodev"),
            "{e}"
        );
        let e = within("set", c.set("nodev/current", json!(1), None))
            .await
            .unwrap_err();
        assert!(e.is_not_found(), "{e}");
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "not at once: {:?}",
            started.elapsed()
        );
    }
    // Under another prefix, the known device is unknown too.
    let other = DeviceClient::with_prefix(&session, "elsewhere").unwrap();
    let e = within("get", other.get("known-ps/current", None))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::NotFound(m) if m.ends_with("under prefix elsewhere")),
        "{e}"
    );
    // A subscription waits for a service to come: it is made all the same.
    let mut sub = subscribe(&client, "nodev/counter", None).await;
    none_within(&mut sub, Duration::from_millis(200)).await;
    // The list shows the known service and its device.
    let all = within("list", device::list(&session, None, Duration::from_secs(5)))
        .await
        .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (all[0].name.as_str(), all[0].server_id.as_str()),
        ("known", "known-1")
    );
    assert_eq!(all[0].devices[0].name, "known-ps");
    assert_eq!(
        all[0].devices[0].properties,
        ["broken", "counter", "current", "measured"]
    );
    // A second service of the same device under the same prefix is refused.
    let e = DeviceService::builder(&peer)
        .name("again")
        .server_id("again-1")
        .device("known-ps", &["current"])
        .serve(Supply::new(Duration::from_millis(20)));
    let e = within("serve", e).await.unwrap_err();
    assert!(
        matches!(&e, Error::NameTaken(m) if m.contains("already served by service known")),
        "{e}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_names_and_missing_settings_are_invalid() {
    let (s, _server) = server().await;
    let session = session_in(&s, Mode::Peer).await;
    let client = DeviceClient::new(&session);
    for bad in [
        "ps",
        "ps/",
        "/current",
        "a/b/c",
        "p s/current",
        "ps/cur*",
        "-ps/x",
        "",
    ] {
        let e = client.get(bad, None).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
        let e = client.set(bad, json!(1), None).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
        let e = client.subscribe(bad, None).await.unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{bad}: {e}");
    }
    let e = client.get("ps/current", Some("a b")).await.unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.starts_with("invalid selector name")),
        "{e}"
    );
    assert!(matches!(
        DeviceClient::with_prefix(&session, "a/b"),
        Err(Error::Invalid(_))
    ));
    let builder = || DeviceService::builder(&session).device("ps", &["current"]);
    let e = within(
        "serve",
        builder()
            .name("x")
            .serve(Supply::new(Duration::from_secs(1))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("no server_id")),
        "{e}"
    );
    let e = within(
        "serve",
        builder()
            .server_id("x")
            .serve(Supply::new(Duration::from_secs(1))),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("no name")),
        "{e}"
    );
    let e = builder().name("x").server_id("a*").settings().unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.starts_with("invalid server id name")),
        "{e}"
    );
    let bad_device = DeviceService::builder(&session)
        .name("x")
        .server_id("x")
        .device("p/s", &["current"])
        .serve(Supply::new(Duration::from_secs(1)));
    let e = within("serve", bad_device).await.unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.starts_with("invalid device name")),
        "{e}"
    );
    // The publisher refuses what the service does not serve.
    let (service, _events) = supply_service(&session, "names", "names-ps", true).await;
    let p = service.publisher();
    let e = p
        .publish("other", "current", None, json!(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("does not serve device other")),
        "{e}"
    );
    let e = p
        .publish("names-ps", "voltage", None, json!(1))
        .await
        .unwrap_err();
    assert!(
        matches!(&e, Error::Invalid(m) if m.contains("has no property voltage")),
        "{e}"
    );
    let e = p
        .publish_error("names-ps", "current", Some("a/b"), "x")
        .await
        .unwrap_err();
    assert!(matches!(e, Error::Invalid(_)), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn selectors_split_the_streams_of_an_aware_service_only() {
    let (s, _server) = server().await;
    let peer = session_in(&s, Mode::Peer).await;
    let client = DeviceClient::new(&session_in(&s, Mode::Client).await);
    // A selector-aware service: each selector its own stream.
    let (aware, _e1) = supply_service(&peer, "aware", "sa", true).await;
    let mut c1 = subscribe(&client, "sa/current", Some("c1")).await;
    let mut c2 = subscribe(&client, "sa/current", Some("c2")).await;
    let mut plain = subscribe(&client, "sa/current", None).await;
    let p = aware.publisher();
    for n in 1..=3 {
        p.publish("sa", "current", Some("c1"), json!(n))
            .await
            .unwrap();
        p.publish("sa", "current", Some("c2"), json!(100 + n))
            .await
            .unwrap();
    }
    for n in 1..=3u64 {
        let u = next(&mut c1).await;
        assert_eq!(
            (u.value.unwrap(), u.header.selector.as_deref(), u.header.seq),
            (json!(n), Some("c1"), n)
        );
        let u = next(&mut c2).await;
        assert_eq!(
            (u.value.unwrap(), u.header.selector.as_deref(), u.header.seq),
            (json!(100 + n), Some("c2"), n)
        );
    }
    none_within(&mut c1, Duration::from_millis(300)).await;
    none_within(&mut plain, Duration::from_millis(10)).await;
    // An update without a selector goes to the property's own stream.
    p.publish("sa", "current", None, json!(7)).await.unwrap();
    assert_eq!(next(&mut plain).await.value.unwrap(), json!(7));
    // A service that is not selector-aware: every subscriber gets it.
    let (flat, _e2) = supply_service(&peer, "flat", "sn", false).await;
    let mut subs = vec![
        subscribe(&client, "sn/current", Some("c1")).await,
        subscribe(&client, "sn/current", Some("c2")).await,
        subscribe(&client, "sn/current", None).await,
    ];
    let header = flat
        .publisher()
        .publish("sn", "current", Some("c1"), json!(5))
        .await
        .unwrap();
    assert_eq!(header.selector, None, "the selector is ignored");
    for sub in &mut subs {
        let u = next(sub).await;
        assert_eq!(
            (u.value.unwrap(), u.header.seq, u.header.selector),
            (json!(5), 1, None)
        );
        none_within(sub, Duration::from_millis(100)).await;
    }
}

/// A handler whose value of `n/v` is a counter that a task raises and
/// publishes in fast bursts, under one lock (so that a get sees a value no
/// older than the last update published); a get answers it as
/// `{"current": n}`.
struct Flood {
    value: Arc<tokio::sync::Mutex<u64>>,
}

impl DeviceHandler for Flood {
    async fn get(&mut self, _: &str, _: &str, _: Option<&str>) -> Result<Value, DeviceError> {
        // Marked, to tell the first update (a get) from the others.
        Ok(json!({ "current": *self.value.lock().await }))
    }

    async fn set(
        &mut self,
        _: &str,
        _: &str,
        _: Option<&str>,
        _: Value,
        _: &DevicePublisher,
    ) -> Result<(), DeviceError> {
        Err(DeviceError::new("read-only"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_update_comes_first_then_every_later_one_in_order() {
    let (s, _server) = server().await;
    let peer = session_in(&s, Mode::Peer).await;
    let value = Arc::new(tokio::sync::Mutex::new(0u64));
    let service = DeviceService::builder(&peer)
        .name("flood")
        .server_id("flood-1")
        .first_update(FirstUpdate::Current)
        .device("n", &["v"])
        .serve(Flood {
            value: value.clone(),
        });
    let service = within("serve", service).await.unwrap();
    assert_eq!(service.settings().first_update, FirstUpdate::Current);
    let publisher = service.publisher();
    let counter = value.clone();
    let flood = tokio::spawn(async move {
        loop {
            let mut v = value.lock().await;
            *v += 1;
            let n = *v;
            publisher
                .publish("n", "v", None, json!(n))
                .await
                .expect("publish");
            drop(v);
            // Bursts, at most about 10,000 updates a second: a
            // subscription holds 10,000 (SUBSCRIPTION_BUFFER), and the
            // test must not outrun it on a loaded machine.
            if n % 20 == 0 {
                tokio::time::sleep(Duration::from_millis(2)).await;
            }
        }
    });
    let client = DeviceClient::new(&session_in(&s, Mode::Client).await);
    within("the flood begins", async {
        while *counter.lock().await < 100 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let mut firsts = Vec::new();
    for _ in 0..5 {
        let mut sub = subscribe(&client, "n/v", None).await;
        let first = next(&mut sub).await;
        let (s0, v0) = (
            first.header.seq,
            first.value.clone().unwrap()["current"]
                .as_u64()
                .unwrap_or_else(|| panic!("not the current value: {first:?}")),
        );
        // The value read is no older than the number the header gives (it
        // may hold updates published while it was read: they follow).
        assert!(v0 >= s0, "first update {first:?}");
        let mut last = s0;
        for _ in 0..300 {
            let u = next(&mut sub).await;
            assert_eq!(u.header.seq, last + 1, "after {last}: {u:?}");
            assert_eq!(u.value.clone().unwrap(), json!(u.header.seq), "{u:?}");
            assert_eq!(u.header.epoch, first.header.epoch);
            last = u.header.seq;
        }
        assert_eq!(sub.missed(), 0);
        firsts.push(s0);
        drop(sub);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    flood.abort();
    assert!(
        firsts.windows(2).all(|w| w[0] < w[1]),
        "subscriptions during the flood: {firsts:?}"
    );
    assert!(firsts[0] > 0, "the flood had begun: {firsts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn monitoring_starts_with_the_first_subscriber_and_stops_with_the_last() {
    let (s, server) = server().await;
    let peer = session_in(&s, Mode::Peer).await;
    let (service, mut events) = supply_service(&peer, "mon", "mon-ps", true).await;
    let a = DeviceClient::new(&session_in(&s, Mode::Client).await);
    let b = DeviceClient::new(&session_in(&s, Mode::Peer).await);
    let mut sub_a = subscribe(&a, "mon-ps/counter", Some("c1")).await;
    assert_eq!(
        event(&mut events).await,
        started("mon-ps", "counter", Some("c1"))
    );
    assert_eq!(
        service.monitored(),
        [Monitored {
            device: "mon-ps".into(),
            property: "counter".into(),
            selector: Some("c1".into())
        }]
    );
    // The poller publishes while the property is monitored.
    let u = next(&mut sub_a).await;
    assert!(u.value.is_ok(), "{u:?}");
    let sub_b = subscribe(&b, "mon-ps/counter", Some("c1")).await;
    drop(sub_a);
    // Neither a second subscriber nor the loss of one of two is news.
    let quiet = tokio::time::timeout(Duration::from_millis(800), events.recv()).await;
    assert!(quiet.is_err(), "unexpected event {quiet:?}");
    assert_eq!(service.monitored().len(), 1);
    drop(sub_b);
    assert_eq!(
        event(&mut events).await,
        stopped("mon-ps", "counter", Some("c1"))
    );
    assert!(service.monitored().is_empty());
    // A subscriber that dies without a word: its token goes, and the
    // service hears of it after the grace.
    let inst = start(&server, "device-client", &["mon-ps/counter", "c2"]).await;
    let mut out = within("output", inst.output()).await.expect("output");
    line_with(&mut out, "subscribed").await;
    assert_eq!(
        event(&mut events).await,
        started("mon-ps", "counter", Some("c2"))
    );
    line_after(&mut out, "update ").await;
    within("kill", inst.kill()).await.expect("kill");
    let killed_at = Instant::now();
    assert_eq!(
        event(&mut events).await,
        stopped("mon-ps", "counter", Some("c2"))
    );
    assert!(
        killed_at.elapsed() < Duration::from_secs(10),
        "{:?}",
        killed_at.elapsed()
    );
    ended(&inst).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_service_restarts_its_work_and_updates_resume() {
    let (s, server) = server().await;
    let args = ["server-id", "ps1", "tick", "30"];
    let (first, mut out) = service_process(&server, "ps-service", &args).await;
    let client = DeviceClient::new(&session_in(&s, Mode::Client).await);
    let mut c1 = subscribe(&client, "ps/counter", Some("c1")).await;
    let mut c2 = subscribe(&client, "ps/counter", Some("c2")).await;
    line_with(&mut out, "started ps/counter c1").await;
    line_with(&mut out, "started ps/counter c2").await;
    // Policy `current`: the value first (0, nothing counted yet, or more).
    let u = next(&mut c1).await;
    assert_eq!(u.header.selector.as_deref(), Some("c1"));
    let old_epoch = u.header.epoch;
    let u = next(&mut c1).await;
    assert!(u.value.unwrap().as_u64().unwrap() >= 1);
    within("kill", first.kill()).await.expect("kill");
    ended(&first).await;
    // Drain what was sent before the kill.
    while c1.next(Duration::from_millis(300)).await.is_ok() {}
    while c2.next(Duration::from_millis(10)).await.is_ok() {}
    // Started again: it finds the subscriptions the clients still hold.
    let (second, mut out) = service_process(&server, "ps-service", &args).await;
    let mut seen = vec![
        line_after(&mut out, "started ").await,
        line_after(&mut out, "started ").await,
    ];
    seen.sort();
    assert_eq!(seen, ["ps/counter c1", "ps/counter c2"]);
    for (sub, sel) in [(&mut c1, "c1"), (&mut c2, "c2")] {
        let u = next(sub).await;
        assert!(u.header.epoch > old_epoch, "{u:?}");
        assert_eq!(u.header.selector.as_deref(), Some(sel));
        let v = u.value.unwrap().as_u64().unwrap();
        let u = next(sub).await;
        assert_eq!(
            u.value.unwrap().as_u64().unwrap(),
            v + 1,
            "the new run counts on"
        );
    }
    within("stop", second.stop()).await.expect("stop");
    line_with(&mut out, "stopped").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn device_errors_arrive_in_the_stream_with_their_selector() {
    let (s, server) = server().await;
    let peer = session_in(&s, Mode::Peer).await;
    let client = DeviceClient::new(&session_in(&s, Mode::Client).await);
    let (service, _events) = supply_service(&peer, "errs", "err-ps", true).await;
    let mut s1 = subscribe(&client, "err-ps/current", Some("s1")).await;
    let mut s2 = subscribe(&client, "err-ps/current", Some("s2")).await;
    let p = service.publisher();
    p.publish("err-ps", "current", Some("s1"), json!(1))
        .await
        .unwrap();
    p.publish_error("err-ps", "current", Some("s1"), "overheated")
        .await
        .unwrap();
    p.publish("err-ps", "current", Some("s1"), json!(2))
        .await
        .unwrap();
    assert_eq!(next(&mut s1).await.value, Ok(json!(1)));
    let u = next(&mut s1).await;
    assert_eq!(u.value, Err(DeviceError::new("overheated")));
    assert_eq!(
        (u.header.selector.as_deref(), u.header.seq),
        (Some("s1"), 2)
    );
    assert_eq!(
        next(&mut s1).await.value,
        Ok(json!(2)),
        "the subscription goes on"
    );
    none_within(&mut s2, Duration::from_millis(200)).await;
    // From a service process: the first update of a property whose get
    // fails is the error, then the errors its poller publishes.
    let (_inst, _out) = service_process(&server, "ps-service", &["server-id", "ps9"]).await;
    let mut b = subscribe(&client, "ps/broken", Some("b1")).await;
    let first = next(&mut b).await;
    assert_eq!(first.value, Err(DeviceError::new("sensor unplugged")));
    assert_eq!(first.header.selector.as_deref(), Some("b1"));
    let u = next(&mut b).await;
    assert!(
        matches!(&u.value, Err(e) if e.message().starts_with("sensor unplugged ")),
        "{u:?}"
    );
    assert!(u.header.seq > first.header.seq);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configuration_wins_over_the_settings_given_at_run_time() {
    let (s, server) = server().await;
    // [app.device] sets server_id and selector_aware; the program gives
    // those, and the name and the policy, which the configuration leaves.
    let args = ["name", "rt-name", "server-id", "rt-id", "aware", "current"];
    let inst = start(&server, "ps-precedence", &args).await;
    let mut out = within("output", inst.output()).await.expect("output");
    let settings = line_after(&mut out, "settings ").await;
    assert_eq!(
        settings,
        "rt-name cfg-id troupe aware=false first=current overridden=server_id,selector_aware"
    );
    line_with(&mut out, "serving").await;
    let session = session_in(&s, Mode::Client).await;
    let all = within(
        "list",
        device::list(&session, Some("troupe"), Duration::from_secs(5)),
    )
    .await
    .unwrap();
    assert_eq!(all.len(), 1, "{all:?}");
    let info = &all[0];
    assert_eq!(
        (info.name.as_str(), info.server_id.as_str()),
        ("rt-name", "cfg-id")
    );
    assert_eq!(
        (info.selector_aware, info.first_update),
        (false, FirstUpdate::Current)
    );
    assert!(info.owner.contains("ps-precedence"), "{info:?}");
    // The same rule in-process, the configuration given to the builder.
    let configured = DeviceSettings {
        name: Some("cfg".into()),
        prefix: Some("LAB.ONE".into()),
        ..Default::default()
    };
    let (resolved, overridden) = DeviceService::builder(&session)
        .configuration(configured)
        .name("mine")
        .server_id("x1")
        .settings()
        .unwrap();
    assert_eq!(
        (
            resolved.name.as_str(),
            resolved.server_id.as_str(),
            resolved.prefix.as_str()
        ),
        ("cfg", "x1", "LAB.ONE")
    );
    assert_eq!(
        (resolved.selector_aware, resolved.first_update, overridden),
        (false, FirstUpdate::None, vec!["name"])
    );
}
