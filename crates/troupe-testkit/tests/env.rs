//! What an instance is given: its TROUPE_* environment, the app's `env`
//! table and `working_dir`, and its arguments, one per element.

mod common;

use common::*;
use troupe::State;
use troupe_testkit::TestServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_knows_its_server_app_and_id() {
    let s = TestServer::start(&config(
        r#"
[[app]]
name = "who"
executable = "FIXTURE"
args = ["env"]
multiple = "unlimited"
[[app]]
name = "who-client"
executable = "FIXTURE"
args = ["env"]
mode = "client"
"#,
    ))
    .unwrap();
    let server = connect(&s).await;
    for _ in 0..2 {
        let inst = start(&server, "who", &[]).await;
        assert_eq!(ended(&inst).await.state, State::Success);
        let out = texts(&all_output(&inst).await);
        assert_eq!(
            out,
            [
                "TROUPE_APP=who".to_string(),
                format!("TROUPE_ENDPOINT={}", s.endpoint()),
                format!("TROUPE_INSTANCE={}", inst.id()),
                "TROUPE_MODE=peer".to_string(),
                "TROUPE_REALM=troupe".to_string(),
                format!("TROUPE_SERVER={}", s.name()),
            ]
        );
    }
    // An app configured as a client is told so.
    let inst = start(&server, "who-client", &[]).await;
    assert_eq!(ended(&inst).await.state, State::Success);
    let out = texts(&all_output(&inst).await);
    assert!(out.contains(&"TROUPE_MODE=client".to_string()), "{out:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn env_working_dir_and_args_apply() {
    let dir = tempfile::tempdir().unwrap();
    let s = TestServer::start(&format!(
        r#"
[[app]]
name = "show"
executable = "sh"
args = ["-c", 'echo "GREETING=$GREETING"; pwd -P; for a in "$@"; do echo "[$a]"; done', "show", "configured arg"]
env = {{ GREETING = "hello  there" }}
working_dir = "{}"
"#,
        dir.path().display()
    ))
    .unwrap();
    let server = connect(&s).await;
    let inst = start(&server, "show", &["a b", "", "c"]).await;
    assert_eq!(ended(&inst).await.state, State::Success);
    let out = texts(&all_output(&inst).await);
    let real = dir.path().canonicalize().unwrap();
    assert_eq!(
        out,
        [
            "GREETING=hello  there".to_string(),
            real.display().to_string(),
            "[configured arg]".into(),
            "[a b]".into(),
            "[]".into(),
            "[c]".into(),
        ]
    );
    // The instance records the arguments it was given.
    assert_eq!(inst.info().await.unwrap().args, ["a b", "", "c"]);
}
