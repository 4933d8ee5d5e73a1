//! The remote object commands: `troupe objects`, `describe`, `call`,
//! `attr`.
//!
//! An object belongs to the realm, like a channel: these commands open a
//! client session through the server at `--endpoint` and reach the object
//! by its id alone. `--timeout` bounds everything after the connection to
//! the server, the wait for the object to appear included.

use crate::args::{AttrArgs, CallArgs, Cli, DescribeArgs, JsonFlag};
use crate::console::{fail, open_session, print_json, Failure, Outcome};
use crate::patterns::{check_name, print_line};
use crate::table;
use serde_json::Value;
use std::time::Duration;
use troupe::object::Description;
use troupe::{Error, Mode, ObjectClient};

/// The exit status of a failed call: 1 when the object answered with an
/// error or went away with the call pending; 2 for errors (no such object,
/// timeout, bad arguments, unreachable server).
fn call_failure(e: Error) -> Failure {
    let code = if matches!(e, Error::Rpc(_) | Error::Gone(_)) {
        1
    } else {
        2
    };
    fail(code, e.to_string())
}

/// A client of `id` whose calls end within `timeout`.
async fn client(cli: &Cli, id: &str, timeout: Duration) -> Result<ObjectClient, Failure> {
    check_name("object", id)?;
    let session = open_session(cli, Mode::Client).await?;
    Ok(session.object(id).with_timeout(timeout))
}

/// Parses `text` as JSON, naming `what` in the error.
fn parse_json(what: &str, text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        fail(
            2,
            format!("{what} is not valid JSON ({e}): {text} (quote strings: '\"text\"')"),
        )
    })
}

/// Prints `v` as pretty JSON.
fn print_value(v: &Value) -> Outcome {
    let text = serde_json::to_string_pretty(v).map_err(|e| fail(2, e.to_string()))?;
    print_line(&text)?;
    Ok(0)
}

/// `troupe objects`.
pub(crate) async fn objects(cli: &Cli, f: &JsonFlag) -> Outcome {
    let session = open_session(cli, Mode::Client).await?;
    let mut list = troupe::object::list(&session, cli.request_timeout).await?;
    // Two claims on one id (being contested): the younger gives it up.
    list.dedup_by(|later, first| later.id == first.id);
    if f.json {
        return print_json(&list);
    }
    if list.is_empty() {
        eprintln!("troupe: no objects");
        return Ok(0);
    }
    let now = troupe_protocol::now_ms();
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|o| {
            let age = Duration::from_secs(now.saturating_sub(o.created_unix_ms) / 1000);
            vec![
                o.id.clone(),
                o.owner.clone(),
                humantime::format_duration(age).to_string(),
                o.clients.to_string(),
            ]
        })
        .collect();
    print!(
        "{}",
        table::render(&["OBJECT", "OWNER", "AGE", "CLIENTS"], &rows)
    );
    Ok(0)
}

/// `troupe describe OBJ`.
pub(crate) async fn describe(cli: &Cli, a: &DescribeArgs) -> Outcome {
    let client = client(cli, &a.object, a.timeout).await?;
    let d = client.describe().await.map_err(call_failure)?;
    if a.json {
        return print_json(&d);
    }
    print!("{}", render_description(&a.object, &d));
    Ok(0)
}

/// A description for people: one line per method and attribute.
fn render_description(id: &str, d: &Description) -> String {
    let mut out = format!("object {id} ({})\n", d.type_name);
    out.push_str(if d.methods.is_empty() {
        "methods: none\n"
    } else {
        "methods:\n"
    });
    for m in &d.methods {
        let params: Vec<String> = m
            .params
            .iter()
            .map(|p| format!("{}: {}", p.name, p.ty))
            .collect();
        let returns = if m.returns == "()" {
            String::new()
        } else {
            format!(" -> {}", m.returns)
        };
        out.push_str(&format!("  {}({}){returns}", m.name, params.join(", ")));
        if !m.doc.is_empty() {
            out.push_str(&format!("  # {}", first_line(&m.doc)));
        }
        out.push('\n');
    }
    out.push_str(if d.attributes.is_empty() {
        "attributes: none\n"
    } else {
        "attributes:\n"
    });
    for at in &d.attributes {
        out.push_str(&format!(
            "  {}: {} ({})",
            at.name,
            at.ty,
            if at.writable {
                "read-write"
            } else {
                "read-only"
            }
        ));
        if !at.doc.is_empty() {
            out.push_str(&format!("  # {}", first_line(&at.doc)));
        }
        out.push('\n');
    }
    out
}

fn first_line(doc: &str) -> &str {
    doc.lines().next().unwrap_or("").trim()
}

/// `troupe call OBJ METHOD [PARAMS]`.
pub(crate) async fn call(cli: &Cli, a: &CallArgs) -> Outcome {
    let params = match &a.params {
        None => Value::Null,
        Some(text) => match parse_json("PARAMS", text)? {
            // One bare value is the one positional parameter.
            v @ (Value::Array(_) | Value::Object(_)) => v,
            v => Value::Array(vec![v]),
        },
    };
    let client = client(cli, &a.object, a.timeout).await?;
    if a.notify {
        client
            .notify(&a.method, params)
            .await
            .map_err(call_failure)?;
        return Ok(0);
    }
    let result = client.call(&a.method, params).await.map_err(call_failure)?;
    print_value(&result)
}

/// `troupe attr OBJ NAME [VALUE]`.
pub(crate) async fn attr(cli: &Cli, a: &AttrArgs) -> Outcome {
    let value = a
        .value
        .as_deref()
        .map(|text| parse_json("VALUE", text))
        .transpose()?;
    let client = client(cli, &a.object, a.timeout).await?;
    match value {
        None => {
            let v = client.get(&a.name).await.map_err(call_failure)?;
            print_value(&v)
        }
        Some(v) => {
            client.set(&a.name, v).await.map_err(call_failure)?;
            Ok(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use troupe::object::{AttributeInfo, MethodInfo, ParamInfo};

    #[test]
    fn descriptions_read_well() {
        let d = Description {
            type_name: "Camera".into(),
            methods: vec![MethodInfo {
                name: "grab".into(),
                params: vec![ParamInfo {
                    name: "count".into(),
                    ty: "u32".into(),
                }],
                returns: "Vec<u8>".into(),
                doc: "Grabs frames.\nMore.".into(),
            }],
            attributes: vec![AttributeInfo {
                name: "fps".into(),
                ty: "f64".into(),
                writable: false,
                doc: String::new(),
            }],
        };
        assert_eq!(
            render_description("vnir", &d),
            "object vnir (Camera)\nmethods:\n  grab(count: u32) -> Vec<u8>  # Grabs frames.\n\
             attributes:\n  fps: f64 (read-only)\n"
        );
    }

    #[test]
    fn bad_json_is_a_clear_error() {
        let e = parse_json("PARAMS", "[1,").unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.starts_with("PARAMS is not valid JSON"));
    }
}
