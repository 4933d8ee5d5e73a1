//! The example programs end to end, as `troupe exec` runs them: a real
//! server (in-process) on the bundled configuration, with the examples'
//! executables pointed at the binaries of this build. Every wait is bounded;
//! dropping the server stops and reaps whatever is left.

use serde_json::json;
use std::future::Future;
use std::path::Path;
use std::time::Duration;
use troupe::{Error, Instance, InstanceInfo, Message, Server, State};
use troupe_server::config::{Config, EXAMPLE};
use troupe_testkit::{TestServer, TIMEOUT};

/// The example programs of this crate, by name, as built for this test.
const PROGRAMS: [(&str, &str); 10] = [
    ("hello-subscriber", env!("CARGO_BIN_EXE_hello-subscriber")),
    ("hello-publisher", env!("CARGO_BIN_EXE_hello-publisher")),
    ("echo-requester", env!("CARGO_BIN_EXE_echo-requester")),
    ("echo-responder", env!("CARGO_BIN_EXE_echo-responder")),
    ("counter-client", env!("CARGO_BIN_EXE_counter-client")),
    ("counter-channel", env!("CARGO_BIN_EXE_counter-channel")),
    ("camera-client", env!("CARGO_BIN_EXE_camera-client")),
    ("camera-object", env!("CARGO_BIN_EXE_camera-object")),
    ("power-client", env!("CARGO_BIN_EXE_power-client")),
    ("power-supply", env!("CARGO_BIN_EXE_power-supply")),
];

/// A server on the bundled configuration, each example app running its
/// program by absolute path (the server would look for it beside its own
/// binary, which in a test is the test executable).
fn start_server() -> TestServer {
    TestServer::start_with(EXAMPLE, |config| {
        for app in &mut config.apps {
            if let Some((_, path)) = PROGRAMS.iter().find(|(name, _)| *name == app.name) {
                app.executable = path.to_string();
            }
        }
    })
    .expect("the test server starts")
}

/// Awaits `fut`, at most [`TIMEOUT`], and unwraps its result.
async fn within<T>(what: &str, fut: impl Future<Output = troupe::Result<T>>) -> T {
    match tokio::time::timeout(TIMEOUT, fut).await {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => panic!("{what}: {e}"),
        Err(_) => panic!("{what}: not within {TIMEOUT:?}"),
    }
}

async fn connect(server: &TestServer) -> Server {
    within("connect", Server::connect(server.endpoint(), TIMEOUT)).await
}

/// The whole output of `instance`, line by line, once it has ended.
async fn output(instance: &Instance) -> Vec<String> {
    let what = format!("output of {} {}", instance.app(), instance.id());
    let mut stream = within(&what, instance.output()).await;
    let mut lines = Vec::new();
    while let Some(line) = within(&what, stream.next_timeout(TIMEOUT)).await {
        lines.push(line.text);
    }
    lines
}

/// Runs `app` as `troupe exec` does: its output and its terminal state.
async fn exec(server: &Server, app: &str, args: &[&str]) -> (Instance, Vec<String>, InstanceInfo) {
    let instance = within(&format!("start {app}"), server.start(app, args)).await;
    let lines = output(&instance).await;
    let info = within(&format!("end of {app}"), instance.wait_for(Some(TIMEOUT))).await;
    (instance, lines, info)
}

/// The one instance of `app` that `starter` started (linked to it).
async fn started_by(server: &Server, app: &str, starter: u64) -> Instance {
    let all = within("ps", server.instances()).await;
    let linked: Vec<&InstanceInfo> = all
        .iter()
        .filter(|i| i.app == app && i.starter == Some(starter))
        .collect();
    assert_eq!(linked.len(), 1, "one {app} started by {starter}: {all:#?}");
    within("instance", server.instance(linked[0].id)).await
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_subscriber_prints_the_greetings_and_the_publishers_end() {
    let test_server = start_server();
    let server = connect(&test_server).await;

    let (subscriber, lines, info) = exec(&server, "hello-subscriber", &[]).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Success, Some(0)),
        "{info:#?}\n{lines:#?}"
    );
    let publisher = started_by(&server, "hello-publisher", subscriber.id()).await;
    assert_eq!(
        lines,
        [
            "hello".to_string(),
            "world".to_string(),
            "!".to_string(),
            format!(
                "publisher {} ended: success (result: 3 messages)",
                publisher.id()
            ),
        ]
    );

    let info = within("publisher", publisher.wait_for(Some(TIMEOUT))).await;
    assert_eq!((info.state, info.exit_code), (State::Success, Some(0)));
    let result = within("result", publisher.result()).await;
    assert_eq!(result.as_deref(), Some(&b"3 messages"[..]));
    assert_eq!(output(&publisher).await, ["sent 3 messages"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_requester_prints_the_replies_and_its_responder_is_stopped() {
    let test_server = start_server();
    let server = connect(&test_server).await;

    let (requester, lines, info) = exec(&server, "echo-requester", &["hello", "a b"]).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Success, Some(0)),
        "{info:#?}\n{lines:#?}"
    );
    assert_eq!(lines, ["hello -> HELLO", "a b -> A B"]);

    // Its responder was linked to it: the server stops it now, and it ends
    // cleanly on its own (`on_stop`), so `stopped` with exit code 0.
    let responder = started_by(&server, "echo-responder", requester.id()).await;
    let info = within("responder", responder.wait_for(Some(TIMEOUT))).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Stopped, Some(0)),
        "{info:#?}"
    );
    assert_eq!(
        output(&responder).await,
        ["hello -> HELLO", "a b -> A B", "stopping after 2 requests"]
    );

    // Without arguments: the default words.
    let (_, lines, info) = exec(&server, "echo-requester", &[]).await;
    assert_eq!(info.state, State::Success, "{info:#?}\n{lines:#?}");
    assert_eq!(
        lines,
        ["hello -> HELLO", "troupe -> TROUPE", "world -> WORLD"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn echo_responder_refuses_what_is_not_text_and_stops_when_asked() {
    let test_server = start_server();
    let server = connect(&test_server).await;
    let responder = within("start", server.start("echo-responder", &[] as &[&str])).await;

    let echo = within("requester", responder.requester("echo")).await;
    within("responder", echo.wait_for_responder(TIMEOUT)).await;
    let reply = within("request", echo.request("from a test")).await;
    assert_eq!(reply.as_text().unwrap(), "FROM A TEST");
    let refused = tokio::time::timeout(TIMEOUT, echo.request(Message::i32s(&[1, 2])))
        .await
        .expect("an answer in time")
        .unwrap_err();
    assert!(
        matches!(&refused, Error::Refused(why) if why.contains("not text")),
        "{refused}"
    );

    let info = within("stop", responder.stop_and_wait(Some(TIMEOUT))).await;
    assert_eq!((info.state, info.exit_code), (State::Stopped, Some(0)));
    assert_eq!(
        output(&responder).await.last().map(String::as_str),
        Some("stopping after 2 requests")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn counter_client_adds_by_asynchronous_messages_and_gets_the_total() {
    let test_server = start_server();
    let server = connect(&test_server).await;

    let (client, lines, info) = exec(&server, "counter-client", &["10", "-4", "2"]).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Success, Some(0)),
        "{info:#?}\n{lines:#?}"
    );
    // Every `add` came before the `get`: one client's messages keep their
    // order, asynchronous or not.
    assert_eq!(lines, ["total 8"]);

    // The channel's owner was linked to the client: the server stops it, and
    // it ends cleanly on its own.
    let owner = started_by(&server, "counter-channel", client.id()).await;
    let info = within("owner", owner.wait_for(Some(TIMEOUT))).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Stopped, Some(0)),
        "{info:#?}"
    );
    let lines = output(&owner).await;
    assert!(lines.contains(&"get -> 8".to_string()), "{lines:#?}");
    assert_eq!(
        lines.last().map(String::as_str),
        Some("stopping after 4 messages, total 8"),
        "{lines:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn camera_client_drives_the_camera_through_its_typed_client_and_stops_it() {
    let test_server = start_server();
    let server = connect(&test_server).await;

    let (client, lines, info) = exec(&server, "camera-client", &[]).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Success, Some(0)),
        "{info:#?}\n{lines:#?}"
    );
    let camera = started_by(&server, "camera-object", client.id()).await;
    let frame = |n| format!("frame {n}: 640x480, exposure 0.025 s, mean level 1280");
    assert_eq!(
        lines,
        [
            "shutter open: true".to_string(),
            "exposure 0.025 s: 40.0 fps".to_string(),
            frame(1),
            frame(2),
            frame(3),
            "exposure -1 refused: invalid params: the exposure is from 0.000001 s to 10 s, \
             not -1 s (code -32602)"
                .to_string(),
            "grab refused: shutter closed: call open_shutter first (code 10)".to_string(),
            "status: {\"exposure\":0.025,\"fps\":40.0,\"frames_grabbed\":3,\"shutter_open\":false}"
                .to_string(),
            format!("camera-object {} stopped", camera.id()),
        ]
    );

    // The client stopped the camera and waited: it ended cleanly on its own
    // (`on_stop`), and says what it did.
    let info = within("camera", camera.wait_for(Some(TIMEOUT))).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Stopped, Some(0)),
        "{info:#?}"
    );
    assert_eq!(
        output(&camera).await,
        [
            "serving the camera as object camera",
            "shutter opened",
            "exposure set to 0.025 s (40 fps)",
            "grabbed 3 frames (total 3) at 0.025 s",
            "shutter closed",
            "grab of 1 refused: shutter closed",
            "stopped serving camera",
        ]
    );

    // Its last state is in the status tree, kept by the server after the
    // camera ended, and its log records are in the server's ring.
    let session = server.session();
    let tree = within(
        "status",
        troupe::status::read(session, &["camera.camera"], TIMEOUT),
    )
    .await;
    assert_eq!(
        tree["camera"]["camera"],
        serde_json::json!({"exposure": 0.025, "fps": 40.0, "frames_grabbed": 3, "shutter_open": false}),
        "{tree}"
    );
    let filter = troupe::log::LogFilter {
        app: Some("camera-object".into()),
        ..troupe::log::LogFilter::default()
    };
    let records = within(
        "logs",
        troupe::log::recent(session, &filter, Some(100), TIMEOUT),
    )
    .await;
    let said: Vec<String> = records
        .iter()
        .map(|r| {
            let call = r
                .fields
                .get("call")
                .map_or(String::new(), |c| format!(" {c}"));
            format!("{} {}{call}", r.level, r.message)
        })
        .collect();
    assert_eq!(
        said,
        [
            "INFO serving the camera",
            "INFO served \"open_shutter\"",
            "INFO served \"set exposure\"",
            "INFO served \"grab\"",
            "WARN refused \"set exposure\"",
            "INFO served \"close_shutter\"",
            "WARN refused \"grab\"",
            "INFO served \"status\"",
            "INFO stopped serving",
        ],
        "{records:#?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn camera_object_refuses_bad_calls_keeps_its_id_and_stops_when_asked() {
    let test_server = start_server();
    let server = connect(&test_server).await;
    let camera = within("start", server.start("camera-object", &["cam-1"])).await;
    // Its app starts manually: it says it is running once it serves.
    let info = within(
        "running",
        camera.wait_for_state(&[State::Running], Some(TIMEOUT)),
    )
    .await;
    assert_eq!(info.state, State::Running, "{info:#?}");
    let object = server.session().object("cam-1").with_timeout(TIMEOUT);

    // The first call waits for the object to appear.
    let described = within("describe", object.describe()).await;
    assert_eq!(described.type_name, "Camera");
    let methods: Vec<&str> = described.methods.iter().map(|m| m.name.as_str()).collect();
    assert_eq!(methods, ["close_shutter", "grab", "open_shutter", "status"]);
    let listed = within("objects", troupe::object::list(server.session(), TIMEOUT)).await;
    let ours = listed.iter().find(|o| o.id == "cam-1");
    assert!(
        ours.is_some_and(|o| o.owner.contains("camera-object")),
        "{listed:#?}"
    );

    let rpc_code = |outcome: troupe::Result<serde_json::Value>| match outcome {
        Err(Error::Rpc(e)) => e.code,
        other => panic!("not a JSON-RPC error: {other:?}"),
    };
    let call = |method: &'static str, params: serde_json::Value| {
        let object = object.clone();
        async move {
            tokio::time::timeout(TIMEOUT, object.call(method, params))
                .await
                .expect("an answer in time")
        }
    };
    assert_eq!(
        rpc_code(call("grab", json!([1])).await),
        10,
        "shutter closed"
    );
    assert_eq!(rpc_code(call("grab", json!(["two"])).await), -32602);
    assert_eq!(rpc_code(call("grab", json!([1, 2])).await), -32602);
    assert_eq!(rpc_code(call("zoom", json!([])).await), -32601);
    for (name, value) in [
        ("exposure", json!(0)),
        ("exposure", json!(1e9)),
        ("fps", json!(5)),
    ] {
        let set = tokio::time::timeout(TIMEOUT, object.set(name, value.clone()))
            .await
            .expect("an answer in time");
        assert!(
            matches!(&set, Err(Error::Rpc(e)) if e.code == -32602),
            "{name} = {value}: {set:?}"
        );
    }
    within("set", object.set("exposure", json!(0.05))).await;
    assert_eq!(within("fps", object.get("fps")).await, json!(20.0));

    // The id is the realm's: a second camera of it fails without ever
    // running, and says why.
    let (_, lines, info) = exec(&server, "camera-object", &["cam-1"]).await;
    assert_eq!(info.state, State::Error, "{info:#?}\n{lines:#?}");
    assert!(lines.iter().any(|l| l.contains("name taken")), "{lines:#?}");
    assert_eq!(
        within("still served", object.get("exposure")).await,
        json!(0.05)
    );
    // A client whose camera cannot serve says so, and does not drive the
    // camera of another.
    let (_, lines, info) = exec(&server, "camera-client", &["cam-1"]).await;
    assert_eq!(info.state, State::Error, "{info:#?}\n{lines:#?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("ended before serving: error")),
        "{lines:#?}"
    );
    assert_eq!(
        within("untouched", object.get("shutter_open")).await,
        json!(false)
    );

    let info = within("stop", camera.stop_and_wait(Some(TIMEOUT))).await;
    assert_eq!((info.state, info.exit_code), (State::Stopped, Some(0)));
    // Stopped serving: no object of that id any more.
    let impatient = object.with_timeout(Duration::from_secs(1));
    let gone = tokio::time::timeout(TIMEOUT, impatient.call("status", json!([])))
        .await
        .expect("an answer in time")
        .unwrap_err();
    assert!(
        matches!(gone, Error::NotFound(_) | Error::Gone(_)),
        "{gone}"
    );
}

/// `CYCLE1 measured #N: X.XX A`: N and X.
fn measured(line: &str) -> (u64, f64) {
    let rest = line
        .strip_prefix("CYCLE1 measured #")
        .unwrap_or_else(|| panic!("not a measured line: {line}"));
    let (seq, amps) = rest.split_once(": ").expect("': '");
    let amps = amps.strip_suffix(" A").expect("amperes");
    (seq.parse().expect("seq"), amps.parse().expect("a number"))
}

#[tokio::test(flavor = "multi_thread")]
async fn power_client_sets_monitors_and_is_refused_then_stops_the_supply() {
    let test_server = start_server();
    let server = connect(&test_server).await;

    let (client, lines, info) = exec(&server, "power-client", &[]).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Success, Some(0)),
        "{info:#?}\n{lines:#?}"
    );
    let supply = started_by(&server, "power-supply", client.id()).await;
    assert_eq!(lines.len(), 3 + 6 + 3, "{lines:#?}");
    assert_eq!(
        lines[..3],
        [
            "CYCLE1: current set to 10 A",
            "CYCLE2: current set to 20 A",
            "CYCLE2: current is 20 A (update #1)",
        ],
        "{lines:#?}"
    );
    // The value at the time of subscribing (first update `current`: the
    // number of the last update before it), then
    // one update per poll, in order, following the setting of CYCLE1 (10
    // A, not CYCLE2's 20 A) with a lag and a little noise.
    let updates: Vec<(u64, f64)> = lines[3..9].iter().map(|l| measured(l)).collect();
    // The supply may poll once (its polling starts with the subscription's
    // token) before it answers the subscription: the first update then
    // carries that number, 1.
    let seqs: Vec<u64> = updates.iter().map(|u| u.0).collect();
    let first = seqs[0];
    assert!(first <= 1, "{lines:#?}");
    assert_eq!(seqs, (first..first + 6).collect::<Vec<_>>(), "{lines:#?}");
    for pair in updates.windows(2) {
        assert!(pair[1].1 > pair[0].1 - 0.05, "rising: {lines:#?}");
    }
    let last = updates[5].1;
    assert!(last > 2.0 && last < 10.05, "{lines:#?}");
    assert_eq!(
        lines[9..],
        [
            "CYCLE1: 150 A refused: ps1/current: 150 A is out of range: the current is from 0 to 100 A"
                .to_string(),
            "CYCLE1: measured refused: ps1/measured: measured is read-only: set current instead".to_string(),
            format!("power-supply {} stopped", supply.id()),
        ],
        "{lines:#?}"
    );

    // The supply polled only while monitored, and said so; it ended
    // cleanly on its own when stopped.
    let info = within("supply", supply.wait_for(Some(TIMEOUT))).await;
    assert_eq!(
        (info.state, info.exit_code),
        (State::Stopped, Some(0)),
        "{info:#?}"
    );
    assert_eq!(
        output(&supply).await,
        [
            "serving ps1 (service power, server id ps, prefix troupe, selector-aware true, \
             first update current)",
            "CYCLE1: current set to 10 A",
            "CYCLE2: current set to 20 A",
            "CYCLE1: measured is monitored: polling started",
            "CYCLE1: current 150 A refused",
            "CYCLE1: polling stopped with the service",
            "stopped serving ps1",
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn power_supply_polls_each_selector_only_while_it_is_monitored() {
    let test_server = start_server();
    let server = connect(&test_server).await;
    let supply = within("start", server.start("power-supply", &["ps7"])).await;
    let info = within(
        "running",
        supply.wait_for_state(&[State::Running], Some(TIMEOUT)),
    )
    .await;
    assert_eq!(info.state, State::Running, "{info:#?}");
    let session = server.session();
    let services = within("list", troupe::device::list(session, None, TIMEOUT)).await;
    let ours = services
        .iter()
        .find(|s| s.devices.iter().any(|d| d.name == "ps7"))
        .unwrap_or_else(|| panic!("{services:#?}"));
    assert_eq!(
        (
            ours.name.as_str(),
            ours.server_id.as_str(),
            ours.selector_aware
        ),
        ("power", "ps", true)
    );
    assert_eq!(ours.first_update, troupe::device::FirstUpdate::Current);

    let client = troupe::DeviceClient::new(session).with_timeout(TIMEOUT);
    within("set", client.set("ps7/current", json!(50), Some("U1"))).await;
    let mut u1 = within("subscribe", client.subscribe("ps7/measured", Some("U1"))).await;
    let mut u2 = within("subscribe", client.subscribe("ps7/measured", Some("U2"))).await;
    // U2 has no setting: it stays near 0 while U1 rises toward 50 A.
    let mut top = 0.0;
    for _ in 0..8 {
        let a = within("U1", u1.next(TIMEOUT)).await;
        let b = within("U2", u2.next(TIMEOUT)).await;
        assert_eq!(a.header.selector.as_deref(), Some("U1"));
        assert_eq!(b.header.selector.as_deref(), Some("U2"));
        let (a, b) = (a.value.unwrap(), b.value.unwrap());
        assert!(b.as_f64().unwrap() < 0.05, "{b}");
        top = a.as_f64().unwrap();
    }
    assert!(top > 10.0, "{top}");
    // Out of range, not a number, read-only: refused with the reason.
    for (address, value, reason) in [
        ("ps7/current", json!(-0.5), "out of range"),
        ("ps7/current", json!(100.5), "out of range"),
        ("ps7/current", json!("high"), "not \"high\""),
        ("ps7/measured", json!(1), "read-only"),
    ] {
        let refused = tokio::time::timeout(TIMEOUT, client.set(address, value.clone(), Some("U1")))
            .await
            .expect("an answer in time");
        assert!(
            matches!(&refused, Err(Error::Refused(r)) if r.contains(reason)),
            "{address} = {value}: {refused:?}"
        );
    }
    // Watch the supply's output live: once nobody monitors a selector any
    // more (both subscriptions dropped, the service's grace passed), it
    // says it stopped polling it, before it is stopped.
    let mut out = within("output", supply.output()).await;
    drop(u1);
    drop(u2);
    let mut said = Vec::new();
    let stop_line = |sel: &str| format!("{sel}: measured is no longer monitored: polling stopped");
    while !(said.contains(&stop_line("U1")) && said.contains(&stop_line("U2"))) {
        match within("output", out.next_timeout(TIMEOUT)).await {
            Some(line) => said.push(line.text),
            None => panic!("the supply's output ended: {said:#?}"),
        }
    }
    let info = within("stop", supply.stop_and_wait(Some(TIMEOUT))).await;
    assert_eq!((info.state, info.exit_code), (State::Stopped, Some(0)));
    let lines = output(&supply).await;
    for sel in ["U1", "U2"] {
        let started = lines
            .iter()
            .position(|l| *l == format!("{sel}: measured is monitored: polling started"));
        let stopped = lines.iter().position(|l| *l == stop_line(sel));
        assert!(
            matches!((started, stopped), (Some(a), Some(b)) if a < b),
            "{lines:#?}"
        );
    }
    // Nothing was left to stop with the service.
    assert!(
        !lines.iter().any(|l| l.contains("with the service")),
        "{lines:#?}"
    );
    assert_eq!(
        lines.last().map(String::as_str),
        Some("stopped serving ps7")
    );
}

/// The bundled examples/troupe.toml (the file, which `troupe server` embeds)
/// has an entry for every program of this crate, by its bare name, so that
/// the server finds it beside the troupe binary.
#[test]
fn the_bundled_configuration_names_every_example() {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/troupe.toml");
    let config = Config::load(&file).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        EXAMPLE,
        "the embedded copy is the file"
    );

    let mut programs: Vec<String> =
        std::fs::read_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/src/bin"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter_map(|p| Some(p.file_stem()?.to_str()?.to_string()))
            .collect();
    programs.sort();
    let mut names: Vec<&str> = PROGRAMS.iter().map(|(name, _)| *name).collect();
    names.sort_unstable();
    assert_eq!(programs, names, "PROGRAMS lists every src/bin program");

    for name in names {
        let app = config
            .app(name)
            .unwrap_or_else(|| panic!("no [[app]] {name} in {}", file.display()));
        assert_eq!(app.executable, name);
        assert!(
            app.args.is_empty() && !app.description.is_empty(),
            "{app:#?}"
        );
    }
    // What the starters start may run once per starter.
    for started in [
        "hello-publisher",
        "echo-responder",
        "counter-channel",
        "camera-object",
        "power-supply",
    ] {
        assert_eq!(config.app(started).unwrap().multiple, None);
    }
}
