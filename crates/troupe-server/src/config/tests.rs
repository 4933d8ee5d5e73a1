//! Unit tests of the configuration: accepted files, and the file, line, key
//! and message of each refusal.

use super::*;
use troupe_protocol::{DEFAULT_ENDPOINT, DEFAULT_REALM};

const BASE: &str = "/base";

fn parse(text: &str) -> Config {
    match Config::parse(text, "t.toml", Path::new(BASE)) {
        Ok(c) => c,
        Err(e) => panic!("refused: {e}"),
    }
}

/// Parses `text`, expects a refusal at `line` for `key`, returns the message.
fn refused(text: &str, line: usize, key: &str) -> String {
    let e = Config::parse(text, "t.toml", Path::new(BASE)).expect_err("accepted");
    assert_eq!((e.line, e.key.as_str()), (line, key), "{e}");
    assert_eq!(e.file, "t.toml");
    assert!(!e.to_string().contains('\n'), "{e}");
    e.message
}

/// An app table with `extra` lines, after `name = "test"`.
fn app(extra: &str) -> String {
    format!("name = \"test\"\n\n[[app]]\nname = \"a\"\nexecutable = \"true\"\n{extra}\n")
}

#[test]
fn the_embedded_example_parses() {
    let c = Config::parse(EXAMPLE, EMBEDDED, Path::new(BASE)).unwrap();
    let names: Vec<&str> = c.apps.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "hello",
            "ticker",
            "sleeper",
            "failing",
            "cat",
            "env",
            "hello-subscriber",
            "hello-publisher",
            "echo-requester",
            "echo-responder",
            "counter-client",
            "counter-channel",
            "camera-client",
            "camera-object",
            "power-client",
            "power-supply",
        ]
    );
    assert_eq!(c.listen, [DEFAULT_ENDPOINT]);
    assert_eq!(c.log_dir, None);
    let ticker = c.app("ticker").unwrap();
    assert_eq!(
        (ticker.multiple, ticker.stopping_time),
        (None, Duration::from_secs(2))
    );
    let failing = c.app("failing").unwrap();
    assert_eq!(failing.restart, RestartPolicy::OnFailure);
    assert_eq!(failing.restart_delay, Duration::from_millis(500));
    assert_eq!(
        (failing.max_restarts, failing.restart_window),
        (2, Duration::from_secs(30))
    );
    assert_eq!(c.app("sleeper").unwrap().starting_time.describe(), "1s");
    assert_eq!(c.app("hello").unwrap().args.len(), 3);
    assert!(c
        .apps
        .iter()
        .all(|a| a.log.is_none() && !a.executable.contains('/')));
    // The programs of crates/troupe-examples, found beside the troupe binary.
    for name in [
        "hello-subscriber",
        "hello-publisher",
        "echo-requester",
        "echo-responder",
        "counter-client",
        "counter-channel",
        "camera-client",
        "camera-object",
        "power-client",
        "power-supply",
    ] {
        let a = c.app(name).unwrap();
        assert_eq!((a.executable.as_str(), a.args.len()), (name, 0));
    }
    let embedded = Config::embedded();
    assert_eq!(
        (embedded.source.as_str(), embedded.apps.len()),
        (EMBEDDED, 16)
    );
    // The device service's settings, from its [app.device] table.
    let power = c.app("power-supply").unwrap();
    let device = power.device.as_ref().expect("[app.device]");
    assert_eq!(
        (
            device.name.as_deref(),
            device.server_id.as_deref(),
            device.prefix.as_deref()
        ),
        (Some("power"), Some("ps"), None)
    );
    assert_eq!(
        (device.selector_aware, device.first_update),
        (
            Some(true),
            Some(troupe_protocol::device::FirstUpdate::Current)
        )
    );
    assert!(c
        .apps
        .iter()
        .filter(|a| a.name != "power-supply")
        .all(|a| a.device.is_none()));
}

#[test]
fn defaults() {
    let c = parse(&app(""));
    assert_eq!(c.name, "test");
    assert_eq!(c.listen, [DEFAULT_ENDPOINT]);
    assert!(c.connect.is_empty());
    assert_eq!(c.realm, DEFAULT_REALM);
    assert_eq!((c.max_instances, c.log_dir.clone()), (None, None));
    assert_eq!((c.keep_terminated, c.output_ring), (100, 1000));
    let a = &c.apps[0];
    let expected = AppConfig {
        name: "a".into(),
        description: String::new(),
        executable: "true".into(),
        args: vec![],
        env: BTreeMap::new(),
        mode: InstanceMode::Peer,
        working_dir: None,
        multiple: Some(1),
        starting_time: StartingTime::After(Duration::ZERO),
        stopping_time: Duration::from_secs(10),
        stop_signal: Signal::SIGTERM,
        restart: RestartPolicy::Never,
        restart_delay: Duration::from_secs(1),
        restart_max_delay: Duration::from_secs(30),
        max_restarts: 5,
        restart_window: Duration::from_secs(60),
        stream: true,
        log: None,
        stop_command: None,
        error_command: None,
        device: None,
    };
    assert_eq!(a, &expected);
    assert_eq!(a.starting_time.describe(), "0s");
    assert_eq!(c.app("a"), Some(a));
    assert_eq!(c.app("b"), None);
    assert!(parse("name = \"x\"").apps.is_empty());
}

#[test]
fn the_name_defaults_to_the_host_name() {
    match (Config::parse("", "t.toml", Path::new(BASE)), host_name()) {
        (Ok(c), Ok(host)) => assert_eq!(c.name, host),
        (Err(e), Err(_)) => assert!(e.message.contains("set `name`") && e.key == "name", "{e}"),
        (r, h) => panic!("{r:?} {h:?}"),
    }
    let e = super::parse("", "t.toml", Path::new(BASE), || {
        host_name_error("bad host")
    })
    .unwrap_err();
    assert_eq!(e.to_string(), "t.toml: name: bad host");
}

fn host_name_error(m: &str) -> Result<String, String> {
    Err(m.to_string())
}

#[test]
fn clean_names_are_valid() {
    assert_eq!(clean_name("my host.local"), "my-host.local");
    assert_eq!(clean_name("-..a..b"), "a.b");
    assert_eq!(clean_name("ééé"), "troupe");
    assert_eq!(clean_name(&"x".repeat(100)).len(), 64);
}

#[test]
fn server_keys() {
    let c = parse(
        "name = \"s1\"\nlisten = [\"tcp/0.0.0.0:7447\", \"unixsock-stream//tmp/t.sock\"]\n\
         connect = [\"tcp/host2.example:7447\"]\nrealm = \"lab\"\nmax_instances = 8\n\
         log_dir = \"logs\"\nkeep_terminated = 0\noutput_ring = 1\n",
    );
    assert_eq!(
        c.listen,
        ["tcp/0.0.0.0:7447", "unixsock-stream//tmp/t.sock"]
    );
    assert_eq!(c.connect, ["tcp/host2.example:7447"]);
    assert_eq!((c.realm.as_str(), c.max_instances), ("lab", Some(8)));
    assert_eq!(c.log_dir, Some(PathBuf::from("/base/logs")));
    assert_eq!((c.keep_terminated, c.output_ring), (0, 1));
    assert_eq!(
        parse("name = \"s\"\nmax_instances = \"unlimited\"").max_instances,
        None
    );
    assert_eq!(
        parse("name = \"s\"\nlog_dir = \"/var/log/t\"").log_dir,
        Some(PathBuf::from("/var/log/t"))
    );
}

#[test]
fn app_keys() {
    let c = parse(&app(
        "description = \"d\"\nargs = [\"a b\", \"\", \"c\"]\nenv = { X = \"1\", \"A.B\" = \"two words\" }\n\
         working_dir = \"run\"\nmultiple = 3\nstarting_time = \"manual\"\nstopping_time = \"1m 30s\"\n\
         stop_signal = \"int\"\nrestart = \"always\"\nrestart_delay = \"2s\"\nrestart_max_delay = \"2s\"\n\
         max_restarts = 0\nrestart_window = \"5m\"\nstream = false\n\
         stop_command = [\"kill-it\", \"--now\"]\nerror_command = [\"report\"]\n",
    ));
    let a = &c.apps[0];
    assert_eq!(a.args, ["a b", "", "c"]);
    assert_eq!(a.env.get("A.B").map(String::as_str), Some("two words"));
    assert_eq!(a.working_dir, Some(PathBuf::from("/base/run")));
    assert_eq!(
        (a.multiple, a.starting_time),
        (Some(3), StartingTime::Manual)
    );
    assert_eq!(a.starting_time.describe(), "manual");
    assert_eq!(a.stopping_time, Duration::from_secs(90));
    assert_eq!(
        (a.stop_signal, a.restart),
        (Signal::SIGINT, RestartPolicy::Always)
    );
    assert_eq!(a.restart.to_string(), "always");
    assert_eq!(
        (a.restart_delay, a.restart_max_delay),
        (Duration::from_secs(2), Duration::from_secs(2))
    );
    assert_eq!(
        (a.max_restarts, a.restart_window, a.stream),
        (0, Duration::from_secs(300), false)
    );
    let stop = a.stop_command.clone().unwrap();
    assert_eq!(
        (stop.executable.as_str(), stop.args.as_slice()),
        ("kill-it", ["--now".to_string()].as_slice())
    );
    assert_eq!(a.error_command.clone().unwrap().args, Vec::<String>::new());
}

#[test]
fn args_with_spaces_stay_one_argument() {
    let c = parse(&app("args = [\"-c\", 'echo \"a b\"; sleep 1', \"x y\"]"));
    assert_eq!(c.apps[0].args, ["-c", "echo \"a b\"; sleep 1", "x y"]);
    refused(&app("args = \"-c echo\""), 6, "app[0].args");
}

#[test]
fn multiple_unlimited_and_zero() {
    assert_eq!(
        parse(&app("multiple = \"unlimited\"")).apps[0].multiple,
        None
    );
    assert_eq!(parse(&app("multiple = 1")).apps[0].multiple, Some(1));
    let m = refused(&app("multiple = 0"), 6, "app[0].multiple");
    assert!(m.contains("unlimited"), "{m}");
    refused(&app("multiple = -2"), 6, "app[0].multiple");
    refused(&app("multiple = \"lots\""), 6, "app[0].multiple");
    refused(&app("multiple = 5000000000"), 6, "app[0].multiple");
}

#[test]
fn signals() {
    for (text, signal) in [
        ("\"TERM\"", Signal::SIGTERM),
        ("\"SIGHUP\"", Signal::SIGHUP),
        ("\"usr1\"", Signal::SIGUSR1),
        ("2", Signal::SIGINT),
    ] {
        assert_eq!(
            parse(&app(&format!("stop_signal = {text}"))).apps[0].stop_signal,
            signal
        );
    }
    for bad in [
        "\"KILL\"",
        "\"SIGSTOP\"",
        "9",
        "\"NOPE\"",
        "0",
        "1000",
        "true",
    ] {
        refused(
            &app(&format!("stop_signal = {bad}")),
            6,
            "app[0].stop_signal",
        );
    }
}

#[test]
fn durations() {
    let a = &parse(&app("starting_time = \"500ms\"\nstopping_time = \"0s\"")).apps[0];
    assert_eq!(
        a.starting_time,
        StartingTime::After(Duration::from_millis(500))
    );
    assert_eq!(a.starting_time.describe(), "500ms");
    assert_eq!(a.stopping_time, Duration::ZERO);
    let m = refused(&app("stopping_time = 10"), 6, "app[0].stopping_time");
    assert!(m.contains("\"10s\""), "{m}");
    refused(
        &app("\nstarting_time = \"soon\""),
        7,
        "app[0].starting_time",
    );
    refused(&app("starting_time = 1.5"), 6, "app[0].starting_time");
    refused(
        &app("restart_delay = \"10 parsecs\""),
        6,
        "app[0].restart_delay",
    );
    refused(&app("restart_window = \"0s\""), 6, "app[0].restart_window");
    refused(&app("restart_window = []"), 6, "app[0].restart_window");
}

#[test]
fn restart_max_delay_must_not_be_shorter_than_restart_delay() {
    let m = refused(
        &app("restart_max_delay = \"1s\"\nrestart_delay = \"2s\""),
        6,
        "app[0].restart_max_delay",
    );
    assert_eq!(
        m,
        "restart_max_delay (1s) is shorter than restart_delay (2s)"
    );
    let m = refused(&app("\nrestart_delay = \"1m\""), 7, "app[0].restart_delay");
    assert!(m.contains("set restart_max_delay"), "{m}");
    refused(&app("restart = \"sometimes\""), 6, "app[0].restart");
}

#[test]
fn modes() {
    let mode = |v: &str| parse(&app(&format!("mode = \"{v}\""))).apps[0].mode;
    assert_eq!(mode("peer"), InstanceMode::Peer);
    assert_eq!(mode("client"), InstanceMode::Client);
    let m = refused(&app("\nmode = \"Client\""), 7, "app[0].mode");
    assert_eq!(
        m,
        "unknown mode \"Client\": expected \"peer\" or \"client\""
    );
    refused(&app("mode = 1"), 6, "app[0].mode");
}

#[test]
fn logs() {
    let with_dir = |extra: &str| format!("log_dir = \"logs\"\n{}", app(extra));
    assert_eq!(
        parse(&with_dir("log = true")).apps[0].log,
        Some(LogConfig::default())
    );
    assert_eq!(parse(&with_dir("log = false")).apps[0].log, None);
    let log = parse(&with_dir("log = { max_size = \"512KiB\", max_files = 2 }")).apps[0].log;
    assert_eq!(
        log,
        Some(LogConfig {
            max_size: 512 * 1024,
            max_files: 2
        })
    );
    let log = parse(&with_dir("[app.log]\nmax_size = 1000")).apps[0].log;
    assert_eq!(
        log,
        Some(LogConfig {
            max_size: 1000,
            max_files: 5
        })
    );
    assert_eq!(parse(&app("log = false")).apps[0].log, None);
    let m = refused(&app("\nlog = true"), 7, "app[0].log");
    assert!(m.contains("log_dir"), "{m}");
    refused(&app("log = { max_size = \"10MB\" }"), 6, "app[0].log");
    refused(
        &with_dir("log = { max_size = \"10MB\", max_file = 5 }"),
        7,
        "app[0].log.max_file",
    );
    refused(
        &with_dir("log = { max_size = \"ten\" }"),
        7,
        "app[0].log.max_size",
    );
    refused(
        &with_dir("log = { max_size = 0 }"),
        7,
        "app[0].log.max_size",
    );
    refused(
        &with_dir("log = { max_files = 0 }"),
        7,
        "app[0].log.max_files",
    );
    refused(&with_dir("log = \"yes\""), 7, "app[0].log");
}

#[test]
fn unknown_keys() {
    let m = refused("name = \"s\"\nlisten_on = []\n", 2, "listen_on");
    assert_eq!(m, "unknown key, did you mean `listen`?");
    let m = refused("name = \"s\"\nfoo = 1\n", 2, "foo");
    assert!(m.contains("expected one of: name, listen"), "{m}");
    let m = refused("name = \"s\"\n\nexecutable = \"x\"\n", 3, "executable");
    assert!(m.contains("[[app]]"), "{m}");
    let m = refused(&app("exectuable = \"x\""), 6, "app[0].exectuable");
    assert_eq!(m, "unknown key, did you mean `executable`?");
    let m = refused(&app("\nlog_dir = \"x\""), 7, "app[0].log_dir");
    assert!(m.contains("before the first [[app]]"), "{m}");
    refused(&app("[app.extra]\nx = 1"), 6, "app[0].extra");
    refused(&app("foo.bar = 1"), 6, "app[0].foo");
    // Unknown keys are reported before missing ones.
    refused(
        "[[app]]\nname = \"a\"\nexecutble = \"x\"\n",
        3,
        "app[0].executble",
    );
}

#[test]
fn wrong_types() {
    let m = refused(&app("stream = \"yes\""), 6, "app[0].stream");
    assert_eq!(m, "expected true or false, found a string");
    refused(&app("description = 1"), 6, "app[0].description");
    refused(&app("args = [\"a\",\n  2]"), 7, "app[0].args[1]");
    refused(&app("env = [\"A=1\"]"), 6, "app[0].env");
    refused(&app("env = { A = 1 }"), 6, "app[0].env.A");
    refused(&app("stop_command = \"kill\""), 6, "app[0].stop_command");
    refused("listen = \"tcp/1.2.3.4:5\"", 1, "listen");
    refused("name = 1", 1, "name");
    refused("name = \"s\"\noutput_ring = \"many\"", 2, "output_ring");
    refused("name = \"s\"\nkeep_terminated = -1", 2, "keep_terminated");
    let m = refused("name = \"s\"\n[app]\nname = \"a\"", 2, "app");
    assert!(m.contains("[[app]]"), "{m}");
    refused("name = \"s\"\napp = [1]", 2, "app[0]");
    refused(
        &app("\nstarting_time = 1979-05-27T07:32:00Z"),
        7,
        "app[0].starting_time",
    );
}

#[test]
fn syntax_errors() {
    let m = refused(
        "name = \"s\"\n\n[[app]]\nname = \"a\nexecutable = \"x\"\n",
        4,
        "name",
    );
    assert!(m.starts_with("invalid TOML: "), "{m}");
    refused("name = \"s\"\nname = \"t\"\n", 2, "name");
    refused("name = \"s\"\n[[app]\n", 2, "");
}

#[test]
fn invalid_values() {
    let m = refused(
        &app("\n[[app]]\nname = \"b/c\"\nexecutable = \"x\""),
        8,
        "app[1].name",
    );
    assert!(m.starts_with("invalid app name \"b/c\""), "{m}");
    refused("name = \"my host\"", 1, "name");
    refused("name = \"s\"\nrealm = \"a*\"", 2, "realm");
    refused(
        "name = \"s\"\nlisten = [\"tcp/a:1\", \"localhost:7447\"]",
        2,
        "listen[1]",
    );
    refused("name = \"s\"\nconnect = [\"/x\"]", 2, "connect[0]");
    refused("name = \"s\"\nlisten = []", 2, "listen");
    assert!(
        parse("name = \"s\"\nlisten = []\nconnect = [\"tcp/r:7447\"]")
            .listen
            .is_empty()
    );
    refused("name = \"s\"\nmax_instances = 0", 2, "max_instances");
    refused("name = \"s\"\noutput_ring = 0", 2, "output_ring");
    refused("name = \"s\"\nlog_dir = \"\"", 2, "log_dir");
    refused(
        &app("executable = \"\"").replace("executable = \"true\"\n", ""),
        5,
        "app[0].executable",
    );
    refused(&app("env = { \"A=B\" = \"1\" }"), 6, "app[0].env.\"A=B\"");
    refused(
        &app("[app.env]\nOK = \"1\"\n\"\" = \"2\""),
        8,
        "app[0].env.\"\"",
    );
    refused(&app("args = [\"a\\u0000b\"]"), 6, "app[0].args[0]");
    refused(&app("stop_command = []"), 6, "app[0].stop_command");
    refused(
        &app("error_command = [\"\", \"x\"]"),
        6,
        "app[0].error_command",
    );
}

#[test]
fn keys_are_checked_in_file_order() {
    refused("name = \"s\"\nzzz = 1\naaa = 2\n", 2, "zzz");
    refused(&app("zzz = 1\n\"\" = 2\naaa = 3"), 6, "app[0].zzz");
    refused(&app("env = { Z = 1, A = 2 }"), 6, "app[0].env.Z");
    refused(&app("[app.env]\nZ = 1\nA = 2"), 7, "app[0].env.Z");
    refused("[b.c]\n[a]\n", 1, "b");
}

#[test]
fn numbers_that_do_not_fit_are_toml_errors() {
    let m = refused(
        "name = \"s\"\nmax_instances = 99999999999999999999",
        2,
        "max_instances",
    );
    assert!(
        m.starts_with("invalid TOML: ") && m.contains("too large"),
        "{m}"
    );
    let m = refused(
        "name = \"s\"\nmax_instances = -99999999999999999999",
        2,
        "max_instances",
    );
    assert!(
        m.starts_with("invalid TOML: ") && m.contains("too small"),
        "{m}"
    );
    let m = refused(&app("\nrestart_window = 1e400"), 7, "restart_window");
    assert_eq!(m, "invalid TOML: invalid floating-point number");
    // The extreme integers fit, and are refused by the key's own check.
    let m = refused(
        &app("max_restarts = 9223372036854775807"),
        6,
        "app[0].max_restarts",
    );
    assert_eq!(m, "must be at most 4294967295");
    let m = refused(
        &app("max_restarts = -9223372036854775808"),
        6,
        "app[0].max_restarts",
    );
    assert_eq!(m, "must be at least 0");
}

#[test]
fn the_first_error_in_the_file_is_reported() {
    // A duplicate key before a syntax error, a number before a syntax error.
    let m = refused("name = \"s\"\nname = \"t\"\n\n[[app]\n", 2, "name");
    assert!(m.starts_with("invalid TOML: "), "{m}");
    let m = refused("x = 99999999999999999999\n\n[[app]\n", 1, "x");
    assert!(m.contains("too large"), "{m}");
    let m = refused("name = \"s\"\n[[app]\nx = 99999999999999999999\n", 2, "");
    assert!(!m.contains("too large"), "{m}");
}

#[test]
fn missing_keys_point_at_the_app() {
    let m = refused(
        "name = \"s\"\n\n[[app]]\nname = \"a\"\n",
        3,
        "app[0].executable",
    );
    assert_eq!(m, "missing required key `executable`");
    refused(
        "name = \"s\"\n[[app]]\nexecutable = \"x\"\n",
        2,
        "app[0].name",
    );
}

#[test]
fn duplicate_app_names() {
    let text = "name = \"s\"\n[[app]]\nname = \"ticker\"\nexecutable = \"x\"\n\n[[app]]\n  name = \"ticker\"\nexecutable = \"y\"\n";
    let e = Config::parse(text, "examples/bad.toml", Path::new(BASE)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "examples/bad.toml:7: app[1].name: duplicate application name \"ticker\" (first defined at line 3)"
    );
}

#[test]
fn load_reads_relative_to_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("troupe.toml");
    std::fs::write(&path, app("working_dir = \"w\"")).unwrap();
    let c = Config::load(&path).unwrap();
    assert_eq!(c.source, path.display().to_string());
    assert_eq!(c.apps[0].working_dir, Some(dir.path().join("w")));
    let missing = dir.path().join("nope.toml");
    let e = Config::load(&missing).unwrap_err();
    assert_eq!((e.line, e.key.as_str()), (0, ""));
    assert!(
        e.to_string()
            .starts_with(&format!("{}: cannot read the file: ", missing.display())),
        "{e}"
    );
}

#[test]
fn no_input_panics() {
    let mut texts: Vec<String> = (0..EXAMPLE.len())
        .filter(|&i| EXAMPLE.is_char_boundary(i))
        .map(|i| EXAMPLE[..i].to_string())
        .collect();
    for (from, to) in [
        ("\"", ""),
        ("=", ""),
        ("[", "{"),
        ("\n", " "),
        ("s\"", "\""),
        ("1", "-1"),
        ("app", "ap"),
    ] {
        texts.push(EXAMPLE.replacen(from, to, 3));
        texts.push(EXAMPLE.replace(from, to));
    }
    texts.extend(
        [
            "a.b.c.d = 1",
            "[[app]]\n[[app]]",
            "app = [[]]",
            "x = 99999999999999999999",
            "= 1",
            "\u{0}",
        ]
        .map(String::from),
    );
    for text in &texts {
        let _ = Config::parse(text, "t.toml", Path::new(BASE));
    }
}

#[test]
fn device_tables() {
    use troupe_protocol::device::{DeviceSettings, FirstUpdate};
    let a = &parse(&app(
        "[app.device]\nname = \"power\"\nserver_id = \"ps1\"\nprefix = \"CERN.CNGS.PROD\"\nselector_aware = true\nfirst_update = \"current\"",
    ))
    .apps[0];
    assert_eq!(
        a.device,
        Some(DeviceSettings {
            name: Some("power".into()),
            server_id: Some("ps1".into()),
            prefix: Some("CERN.CNGS.PROD".into()),
            selector_aware: Some(true),
            first_update: Some(FirstUpdate::Current),
        })
    );
    // What the configuration leaves unset stays unset: the program gives it.
    let a = &parse(&app("device = { server_id = \"ps2\" }")).apps[0];
    assert_eq!(
        a.device,
        Some(DeviceSettings {
            server_id: Some("ps2".into()),
            ..Default::default()
        })
    );
    assert_eq!(
        parse(&app("[app.device]")).apps[0].device,
        Some(DeviceSettings::default())
    );
    assert_eq!(parse(&app("")).apps[0].device, None);
}

#[test]
fn device_table_errors() {
    let dev = |extra: &str| app(&format!("[app.device]\nname = \"power\"\n{extra}"));
    let m = refused(
        &dev("first_update = \"later\""),
        8,
        "app[0].device.first_update",
    );
    assert_eq!(
        m,
        "unknown first-update policy \"later\": expected \"none\" or \"current\""
    );
    refused(&dev("first_update = 1"), 8, "app[0].device.first_update");
    let m = refused(
        &dev("selector_aware = \"yes\""),
        8,
        "app[0].device.selector_aware",
    );
    assert_eq!(m, "expected true or false, found a string");
    let m = refused(&dev("server_id = \"ps 1\""), 8, "app[0].device.server_id");
    assert!(m.starts_with("invalid server id name \"ps 1\""), "{m}");
    refused(&dev("prefix = \"a/b\""), 8, "app[0].device.prefix");
    refused(&dev("prefix = \".a\""), 8, "app[0].device.prefix");
    let m = refused(&app("[app.device]\nname = \"\""), 7, "app[0].device.name");
    assert!(m.starts_with("invalid device service name"), "{m}");
    let m = refused(&dev("serverid = \"ps1\""), 8, "app[0].device.serverid");
    assert_eq!(m, "unknown key, did you mean `server_id`?");
    let m = refused(&dev("stream = false"), 8, "app[0].device.stream");
    assert!(m.contains("must come before the [app.device] table"), "{m}");
    let m = refused(&app("device = \"power\""), 6, "app[0].device");
    assert!(m.starts_with("expected a table"), "{m}");
}
