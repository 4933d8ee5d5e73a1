//! The remote object commands as a user runs them: the real `troupe`
//! binary (`objects`, `describe`, `call`, `attr`) against a real `troupe
//! server` process whose instance `probe` (the fixture's `object probe`)
//! serves the test object, over loopback. Every process is reaped.

mod common;

use common::{write_config, ServerProcess};
use serde_json::{json, Value};
use std::time::{Duration, Instant};

/// A server with the app `probe`, an instance of it serving the object
/// `probe`, and the id of that instance.
fn probe_server() -> (ServerProcess, tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(
        dir.path(),
        "troupe.toml",
        &format!(
            "[[app]]\nname = \"probe\"\nexecutable = \"{}\"\nargs = [\"object\", \"probe\"]\n",
            troupe_testkit::fixture()
        ),
    );
    let server = ServerProcess::start(Some(&config));
    let id = server.run(&["start", "probe"]).ok().to_string();
    // Served once `objects` lists it.
    let end = Instant::now() + Duration::from_secs(20);
    loop {
        let out = server.run(&["objects", "--json"]);
        let list: Value = serde_json::from_str(out.ok()).expect("JSON");
        if list.as_array().is_some_and(|l| !l.is_empty()) {
            break;
        }
        assert!(Instant::now() < end, "the object never appeared");
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, dir, id)
}

#[test]
fn objects_describe_call_and_attr() {
    let (server, _dir, id) = probe_server();
    let out = server.run(&["objects"]);
    let table = out.ok();
    assert!(table.starts_with("OBJECT"), "{table}");
    assert!(
        table.contains(&format!("probe   {}/probe/{id}", server.name())),
        "{table}"
    );

    let out = server.run(&["describe", "probe"]);
    let text = out.ok();
    assert!(
        text.starts_with("object probe (Probe)\nmethods:\n"),
        "{text}"
    );
    assert!(
        text.contains("  add(a: i64, b: Option<i64>) -> i64  # Adds `a`"),
        "{text}"
    );
    assert!(
        text.contains("  label: String (read-write)  # A label."),
        "{text}"
    );
    assert!(text.contains("  total: i64 (read-only)"), "{text}");
    let out = server.run(&["describe", "probe", "--json"]);
    let d: Value = serde_json::from_str(out.ok()).unwrap();
    assert_eq!(d["type"], json!("Probe"));

    assert_eq!(server.run(&["call", "probe", "add", "[2, 3]"]).ok(), "5");
    assert_eq!(
        server.run(&["call", "probe", "add", "{\"a\": 1}"]).ok(),
        "6"
    );
    // One bare value is the one positional parameter.
    assert_eq!(server.run(&["call", "probe", "add", "4"]).ok(), "10");
    assert_eq!(
        server.run(&["call", "probe", "echo", "\"h\u{e9}\""]).ok(),
        "\"h\u{e9}\""
    );
    assert_eq!(
        server
            .run(&["call", "probe", "add", "[1]", "--notify"])
            .ok(),
        ""
    );
    assert_eq!(server.run(&["attr", "probe", "total"]).ok(), "11");
    assert_eq!(server.run(&["attr", "probe", "label", "\"cam\""]).ok(), "");
    assert_eq!(server.run(&["attr", "probe", "label"]).ok(), "\"cam\"");
    // A negative number is a value, not an option.
    assert_eq!(server.run(&["call", "probe", "add", "-1"]).ok(), "10");
}

#[test]
fn errors_have_clear_messages_and_exit_codes() {
    let (server, _dir, _id) = probe_server();
    // The object answered with an error: exit 1.
    let out = server.run(&["call", "probe", "nope"]);
    assert_eq!(
        out.one_line_error(1),
        "troupe: error: remote call failed: method not found: nope (code -32601)"
    );
    let out = server.run(&["call", "probe", "add", "[\"x\"]"]);
    assert!(out.one_line_error(1).contains("invalid params"), "{out:#?}");
    let out = server.run(&["call", "probe", "fail", "[42, \"no film\"]"]);
    assert_eq!(
        out.one_line_error(1),
        "troupe: error: remote call failed: no film (code 42)"
    );
    let out = server.run(&["attr", "probe", "total", "3"]);
    assert!(out.one_line_error(1).contains("read-only"), "{out:#?}");
    // Errors: exit 2.
    let out = server.run(&["call", "probe", "add", "[1,"]);
    assert!(
        out.one_line_error(2).contains("PARAMS is not valid JSON"),
        "{out:#?}"
    );
    let out = server.run(&["call", "nobody", "add", "--timeout", "300ms"]);
    assert!(
        out.one_line_error(2).contains("no object named nobody"),
        "{out:#?}"
    );
    assert!(out.elapsed < Duration::from_secs(5), "{out:#?}");
    let out = server.run(&["call", "bad/id", "add"]);
    assert!(out.one_line_error(2).contains("object"), "{out:#?}");
    let out = server.run(&["call", "probe", "sleep", "[3000]", "--timeout", "300ms"]);
    assert!(out.one_line_error(2).contains("timeout"), "{out:#?}");
}

#[test]
fn a_killed_object_server_fails_the_pending_call() {
    let (server, _dir, id) = probe_server();
    let call = common::Running::spawn(server.console(&[
        "call",
        "probe",
        "sleep",
        "[60000]",
        "--timeout",
        "60s",
    ]));
    std::thread::sleep(Duration::from_millis(500));
    server.run(&["kill", &id]).ok();
    let ended = call.finish(Duration::from_secs(20));
    assert_eq!(ended.code, Some(1), "{ended:#?}");
    assert!(ended.stderr_has("gone"), "{ended:#?}");
    assert!(ended.elapsed < Duration::from_secs(15), "{ended:#?}");
}
