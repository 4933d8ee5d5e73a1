//! The device commands as a user runs them: the real `troupe` binary
//! (`devices`, `get`, `set`, `monitor`) against a real `troupe server`
//! process whose instance `supply` (the fixture's `device-service`: a fake
//! power supply, see `troupe_testkit::supply`) serves the device `ps1`,
//! selector-aware, first update `current`, over loopback. Every process is
//! reaped.

mod common;

use common::{signal, write_config, Running, ServerProcess, COMMAND_TIMEOUT};
use nix::sys::signal::Signal;
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// Within this, a monitor prints its next update (the supply ticks every
/// 50 ms).
const QUICK: Duration = Duration::from_secs(5);

/// A server with the app `supply`, an instance of it serving `ps1` as the
/// service `power` (server id `ps`, from its `[app.device]` table), and the
/// id of that instance.
fn supply_server() -> (ServerProcess, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "troupe.toml",
        &format!(
            "[[app]]\nname = \"supply\"\nexecutable = \"{}\"\n\
             args = [\"device-service\", \"ps1\", \"tick\", \"50\"]\n\
             [app.device]\nname = \"power\"\nserver_id = \"ps\"\n\
             selector_aware = true\nfirst_update = \"current\"\n",
            troupe_testkit::fixture()
        ),
    );
    let server = ServerProcess::start(Some(&config));
    let id = server.run(&["start", "supply"]).ok().to_string();
    // Served once `devices` lists it.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let out = server.run(&["devices", "--json"]);
        let list: Value = serde_json::from_str(out.ok()).expect("JSON");
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        assert!(Instant::now() < end, "the device service never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, dir, id)
}

#[test]
fn devices_get_and_set() {
    let (server, _dir, id) = supply_server();
    let out = server.run(&["devices"]);
    let table = out.ok();
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2, "{table}");
    let header: Vec<&str> = lines[0].split("  ").filter(|c| !c.is_empty()).collect();
    assert_eq!(
        header.iter().map(|c| c.trim()).collect::<Vec<_>>(),
        [
            "SERVICE",
            "SERVER ID",
            "PREFIX",
            "SELECTORS",
            "FIRST UPDATE",
            "DEVICE",
            "PROPERTIES",
            "OWNER"
        ],
        "{table}"
    );
    let row: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(
        row,
        [
            "power",
            "ps",
            "troupe",
            "yes",
            "current",
            "ps1",
            "broken,counter,current,measured",
            &format!("{}/supply/{id}", server.name()),
        ],
        "{table}"
    );
    let list: Value = serde_json::from_str(server.run(&["devices", "--json"]).ok()).unwrap();
    assert_eq!(list[0]["name"], json!("power"));
    assert_eq!(list[0]["selector_aware"], json!(true));
    assert_eq!(list[0]["first_update"], json!("current"));
    assert_eq!(list[0]["devices"][0]["name"], json!("ps1"));
    let out = server.run(&["devices", "--prefix", "elsewhere"]);
    assert_eq!(out.ok(), "");
    assert_eq!(
        out.stderr.trim(),
        "troupe: no device services under prefix elsewhere"
    );

    assert_eq!(
        server
            .run(&["set", "ps1/current", "2.5", "--selector", "C1"])
            .ok(),
        ""
    );
    assert_eq!(
        server.run(&["get", "ps1/current", "--selector", "C1"]).ok(),
        "2.5"
    );
    let out = server.run(&["get", "ps1/current", "--selector", "C1", "--json"]);
    let reading: Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(reading["value"], json!(2.5));
    assert_eq!(reading["header"]["selector"], json!("C1"));
    // The set published the value: the get's header counts it.
    assert_eq!(reading["header"]["seq"], json!(1), "{reading}");
    assert!(reading["header"]["epoch"].as_u64().unwrap() > 0);
    // The prefix named: the realm, the default.
    assert_eq!(
        server
            .run(&[
                "get",
                "ps1/current",
                "--prefix",
                "troupe",
                "--selector",
                "C1"
            ])
            .ok(),
        "2.5"
    );
}

#[test]
fn refusals_and_errors_have_clear_messages_and_exit_codes() {
    let (server, _dir, _id) = supply_server();
    // The device refused: exit 1 with its reason. A negative number is a
    // value, not an option.
    let out = server.run(&["set", "ps1/current", "-1", "--selector", "C1"]);
    assert!(
        out.one_line_error(1)
            .contains("-1 A is outside the limits (0 to 10 A)"),
        "{out:#?}"
    );
    let out = server.run(&["set", "ps1/current", "11"]);
    assert!(out.one_line_error(1).contains("11"), "{out:#?}");
    let out = server.run(&["set", "ps1/measured", "1"]);
    assert!(
        out.one_line_error(1).contains("measured is read-only"),
        "{out:#?}"
    );
    let out = server.run(&["get", "ps1/broken"]);
    assert!(
        out.one_line_error(1).contains("sensor unplugged"),
        "{out:#?}"
    );
    // Errors: exit 2, before connecting for bad arguments.
    let out = server.run(&["set", "ps1/current", "{1"]);
    assert!(
        out.one_line_error(2)
            .starts_with("troupe: error: VALUE is not valid JSON"),
        "{out:#?}"
    );
    let out = server.run(&["set", "ps1/current", "abc"]);
    assert!(out.one_line_error(2).contains("quote strings"), "{out:#?}");
    for bad in ["ps1", "ps1/a/b", "ps 1/current"] {
        let out = server.run(&["get", bad]);
        assert!(out.one_line_error(2).contains("invalid"), "{bad}: {out:#?}");
    }
    let out = server.run(&["get", "ps1/current", "--selector", "a*b"]);
    assert!(out.one_line_error(2).contains("selector"), "{out:#?}");
    let out = server.run(&["set", "nodev/current", "1", "--timeout", "2s"]);
    assert!(
        out.one_line_error(2)
            .contains("no service serves device nodev"),
        "{out:#?}"
    );
    assert!(out.elapsed < Duration::from_secs(10), "{out:#?}");
    let out = server.run(&["get", "ps1/voltage"]);
    assert!(out.one_line_error(2).contains("voltage"), "{out:#?}");
    let out = server.run(&["get", "ps1/current", "--prefix", "other"]);
    assert!(
        out.one_line_error(2).contains("under prefix other"),
        "{out:#?}"
    );
}

/// The value of a text line `TIME SELECTOR VALUE` of `monitor`, checking
/// its time and its selector.
#[track_caller]
fn value_of(line: &str, selector: &str) -> String {
    let mut parts = line.splitn(3, ' ');
    let time = parts.next().unwrap();
    assert!(
        time.len() == "2024-01-01T00:00:00.000000Z".len() && time.ends_with('Z'),
        "{line}"
    );
    assert_eq!(parts.next(), Some(selector), "{line}");
    parts.next().expect("a value").to_string()
}

#[test]
fn monitor_prints_each_selectors_updates_until_sigint() {
    let (server, _dir, _id) = supply_server();
    let mut c1 = Running::spawn_keeping_stdin(server.console(&[
        "monitor",
        "ps1/counter",
        "--selector",
        "C1",
    ]));
    c1.expect_stderr(
        "troupe: monitoring ps1/counter for selector C1",
        COMMAND_TIMEOUT,
    );
    // First update `current`: the count so far (0: nothing published yet
    // for C1), then 1, 2, 3... in order.
    let first: u64 = value_of(&c1.expect_line("the first update", COMMAND_TIMEOUT), "C1")
        .parse()
        .unwrap();
    let mut last = first;
    for _ in 0..4 {
        let n: u64 = value_of(&c1.expect_line("an update", QUICK), "C1")
            .parse()
            .unwrap();
        assert_eq!(n, last + 1, "in order, none missed");
        last = n;
    }
    // Another selector, its own stream.
    let mut c2 = Running::spawn_keeping_stdin(server.console(&[
        "monitor",
        "ps1/counter",
        "--selector",
        "C2",
        "--json",
    ]));
    for _ in 0..3 {
        let u: Value =
            serde_json::from_str(&c2.expect_line("an update", COMMAND_TIMEOUT)).expect("JSON");
        assert_eq!(u["header"]["selector"], json!("C2"), "{u}");
        assert_eq!(
            (&u["device"], &u["property"]),
            (&json!("ps1"), &json!("counter"))
        );
        assert!(u["value"].is_u64(), "{u}");
    }
    for _ in 0..3 {
        value_of(&c1.expect_line("an update", QUICK), "C1");
    }
    signal(c1.pid(), Signal::SIGINT);
    let ended = c1.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(ended.stderr_has("troupe: interrupted: "), "{ended:#?}");
    signal(c2.pid(), Signal::SIGTERM);
    let ended = c2.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");
    assert!(ended.stderr_has("troupe: terminated: "), "{ended:#?}");
}

#[test]
fn monitor_goes_on_after_device_errors() {
    let (server, _dir, _id) = supply_server();
    let mut m =
        Running::spawn_keeping_stdin(server.console(&["monitor", "ps1/broken", "--selector", "X"]));
    // The first update is the failed read; then the errors the device
    // publishes, one per tick.
    let first = value_of(&m.expect_line("the first update", COMMAND_TIMEOUT), "X");
    assert_eq!(first, "error: sensor unplugged");
    for _ in 0..3 {
        let e = value_of(&m.expect_line("an error", QUICK), "X");
        assert!(e.starts_with("error: sensor unplugged "), "{e}");
    }
    assert!(m.running());
    signal(m.pid(), Signal::SIGINT);
    let ended = m.finish(COMMAND_TIMEOUT);
    assert_eq!(ended.code, Some(0), "{ended:#?}");

    // Bad arguments end it at once.
    let out = server.run(&["monitor", "ps1"]);
    assert!(
        out.one_line_error(2).contains("DEVICE/PROPERTY"),
        "{out:#?}"
    );
    let out = server.run(&["monitor", "ps1/voltage"]);
    assert!(out.one_line_error(2).contains("voltage"), "{out:#?}");
}
