//! The device commands: `troupe devices`, `get`, `set`, `monitor`.
//!
//! A device service belongs to the realm (under its prefix, the realm by
//! default): these commands open a client session through the server at
//! `--endpoint` and reach a property by `DEVICE/PROPERTY` alone. They check
//! their arguments (address, selector, prefix, JSON value) before
//! connecting. `--timeout` bounds each call after the connection to the
//! server.
//!
//! Exit status: 0; 1 when the device refused (a set refused with its
//! reason, a get that failed on the device); 2 for errors (bad address or
//! JSON, no service serves the device, no such property, a timeout, an
//! unreachable server).

use crate::args::{Cli, DeviceOptions, DevicesArgs, GetArgs, MonitorArgs, SetArgs};
use crate::console::{fail, open_session, print_json, Failure, Outcome};
use crate::patterns::{check_name, print_line, Interrupts};
use crate::table;
use serde_json::Value;
use std::time::{Duration, UNIX_EPOCH};
use troupe::device::{self, Header, ServiceInfo, Update};
use troupe::{DeviceClient, Error, Mode, Session};

/// The longest a `monitor` waits in one call: a slice of its endless loop.
const NEXT_SLICE: Duration = Duration::from_millis(500);

/// The exit status of a failed call: 1 when the device refused (its
/// reason is the message), 2 for errors.
fn call_failure(e: Error) -> Failure {
    let code = if matches!(e, Error::Refused(_)) { 1 } else { 2 };
    fail(code, e.to_string())
}

/// Checks the address, the selector and the prefix before connecting.
fn check(address: &str, o: &DeviceOptions) -> Result<(), Failure> {
    troupe_protocol::device::parse_address(address).map_err(|e| fail(2, e))?;
    if let Some(s) = &o.selector {
        check_name("selector", s)?;
    }
    if let Some(p) = &o.prefix {
        check_name("prefix", p)?;
    }
    Ok(())
}

/// A client of the devices under `--prefix` (default: the realm) whose
/// calls end within `timeout`.
fn client(
    session: &Session,
    o: &DeviceOptions,
    timeout: Duration,
) -> Result<DeviceClient, Failure> {
    let client = match &o.prefix {
        Some(p) => DeviceClient::with_prefix(session, p)?,
        None => DeviceClient::new(session),
    };
    Ok(client.with_timeout(timeout))
}

/// Parses the VALUE of `set` as JSON.
fn parse_value(text: &str) -> Result<Value, Failure> {
    serde_json::from_str(text).map_err(|e| {
        fail(
            2,
            format!("VALUE is not valid JSON ({e}): {text} (quote strings: '\"text\"')"),
        )
    })
}

/// `troupe devices`.
pub(crate) async fn devices(cli: &Cli, a: &DevicesArgs) -> Outcome {
    if let Some(p) = &a.prefix {
        check_name("prefix", p)?;
    }
    let session = open_session(cli, Mode::Client).await?;
    let list = device::list(&session, a.prefix.as_deref(), cli.request_timeout).await?;
    if a.json {
        return print_json(&list);
    }
    if list.is_empty() {
        match &a.prefix {
            Some(p) => eprintln!("troupe: no device services under prefix {p}"),
            None => eprintln!("troupe: no device services"),
        }
        return Ok(0);
    }
    print!(
        "{}",
        table::render(
            &[
                "SERVICE",
                "SERVER ID",
                "PREFIX",
                "SELECTORS",
                "FIRST UPDATE",
                "DEVICE",
                "PROPERTIES",
                "OWNER",
            ],
            &rows(&list)
        )
    );
    Ok(0)
}

/// One row per device of each service.
fn rows(list: &[ServiceInfo]) -> Vec<Vec<String>> {
    let mut rows = Vec::new();
    for s in list {
        for d in &s.devices {
            rows.push(vec![
                s.name.clone(),
                s.server_id.clone(),
                s.prefix.clone(),
                if s.selector_aware { "yes" } else { "no" }.into(),
                s.first_update.to_string(),
                d.name.clone(),
                d.properties.join(","),
                s.owner.clone(),
            ]);
        }
    }
    rows
}

/// `troupe get DEVICE/PROPERTY`.
pub(crate) async fn get(cli: &Cli, a: &GetArgs) -> Outcome {
    check(&a.address, &a.options)?;
    let session = open_session(cli, Mode::Client).await?;
    let client = client(&session, &a.options, a.timeout)?;
    let (value, header) = client
        .get(&a.address, a.options.selector.as_deref())
        .await
        .map_err(call_failure)?;
    if a.json {
        return print_json(&serde_json::json!({"header": header, "value": value}));
    }
    print_json(&value)
}

/// `troupe set DEVICE/PROPERTY VALUE`.
pub(crate) async fn set(cli: &Cli, a: &SetArgs) -> Outcome {
    let value = parse_value(&a.value)?;
    check(&a.address, &a.options)?;
    let session = open_session(cli, Mode::Client).await?;
    let client = client(&session, &a.options, a.timeout)?;
    client
        .set(&a.address, value, a.options.selector.as_deref())
        .await
        .map_err(call_failure)?;
    Ok(0)
}

/// `troupe monitor DEVICE/PROPERTY`.
pub(crate) async fn monitor(cli: &Cli, a: &MonitorArgs) -> Outcome {
    check(&a.address, &a.options)?;
    let mut interrupts = Interrupts::catch()?;
    let session = tokio::select! {
        s = open_session(cli, Mode::Client) => s?,
        w = interrupts.recv() => return stopped(w, 0),
    };
    let client = client(&session, &a.options, cli.request_timeout)?;
    let selector = a.options.selector.as_deref();
    let mut sub = tokio::select! {
        s = client.subscribe(&a.address, selector) => s.map_err(call_failure)?,
        w = interrupts.recv() => return stopped(w, 0),
    };
    eprintln!(
        "troupe: monitoring {}{} (Ctrl-C ends)",
        a.address,
        selector
            .map(|s| format!(" for selector {s}"))
            .unwrap_or_default()
    );
    let (mut n, mut missed) = (0u64, 0u64);
    let why = loop {
        let next = tokio::select! {
            u = sub.next(NEXT_SLICE) => u,
            w = interrupts.recv() => break w,
        };
        match next {
            Ok(u) => {
                n += 1;
                if sub.missed() > missed {
                    eprintln!(
                        "troupe: {} updates missed (not printed fast enough)",
                        sub.missed() - missed
                    );
                    missed = sub.missed();
                }
                let line = if a.json { json_line(&u) } else { text_line(&u) };
                if !print_line(&line)? {
                    break "standard output closed";
                }
            }
            Err(Error::Timeout(_)) => {}
            Err(e) => return Err(fail(2, e.to_string())),
        }
    };
    stopped(why, n)
}

/// The end of a `monitor`: says why and how many updates came; exit 0.
fn stopped(why: &str, n: u64) -> Outcome {
    eprintln!("troupe: {why}: {n} update{}", if n == 1 { "" } else { "s" });
    Ok(0)
}

/// The header's time, RFC 3339 with microseconds, UTC.
fn time(h: &Header) -> String {
    humantime::format_rfc3339_micros(UNIX_EPOCH + Duration::from_nanos(h.time_unix_ns)).to_string()
}

/// `TIME [SELECTOR] VALUE` or `TIME [SELECTOR] error: MESSAGE`: the
/// selector only when the update has one, the value as compact JSON.
fn text_line(u: &Update) -> String {
    let mut line = time(&u.header);
    if let Some(s) = &u.header.selector {
        line.push(' ');
        line.push_str(s);
    }
    match &u.value {
        Ok(v) => line.push_str(&format!(" {v}")),
        Err(e) => line.push_str(&format!(
            " error: {}",
            crate::patterns::one_line(e.message())
        )),
    }
    line
}

/// One JSON object: device, property, header, and `value` or `error`.
fn json_line(u: &Update) -> String {
    let mut o = serde_json::Map::new();
    o.insert("device".into(), u.device.clone().into());
    o.insert("property".into(), u.property.clone().into());
    o.insert(
        "header".into(),
        serde_json::to_value(&u.header).unwrap_or_default(),
    );
    match &u.value {
        Ok(v) => o.insert("value".into(), v.clone()),
        Err(e) => o.insert("error".into(), e.message().into()),
    };
    Value::Object(o).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use troupe::device::{DeviceError, DeviceInfo, FirstUpdate};

    fn update(selector: Option<&str>, value: Result<Value, DeviceError>) -> Update {
        Update {
            device: "ps1".into(),
            property: "measured".into(),
            header: Header {
                time_unix_ns: 1_700_000_000_123_456_789,
                selector: selector.map(str::to_string),
                seq: 3,
                epoch: 7,
            },
            value,
        }
    }

    #[test]
    fn updates_print_time_selector_and_value() {
        assert_eq!(
            text_line(&update(Some("CYCLE1"), Ok(json!({"a": 1.5})))),
            "2023-11-14T22:13:20.123456Z CYCLE1 {\"a\":1.5}"
        );
        assert_eq!(
            text_line(&update(None, Err(DeviceError::new("over\nheated")))),
            "2023-11-14T22:13:20.123456Z error: over\\nheated"
        );
        let j: Value =
            serde_json::from_str(&json_line(&update(Some("C"), Err(DeviceError::new("hot")))))
                .unwrap();
        assert_eq!(
            j,
            json!({"device": "ps1", "property": "measured", "error": "hot",
                   "header": {"time_unix_ns": 1_700_000_000_123_456_789u64, "selector": "C", "seq": 3, "epoch": 7}})
        );
    }

    #[test]
    fn a_service_lists_one_row_per_device() {
        let s = ServiceInfo {
            name: "power".into(),
            server_id: "ps".into(),
            prefix: "troupe".into(),
            selector_aware: true,
            first_update: FirstUpdate::Current,
            owner: "lab/power-supply/3".into(),
            epoch: 1,
            devices: vec![
                DeviceInfo {
                    name: "ps1".into(),
                    properties: vec!["current".into(), "measured".into()],
                },
                DeviceInfo {
                    name: "ps2".into(),
                    properties: vec!["current".into()],
                },
            ],
        };
        let r = rows(&[s]);
        assert_eq!(r.len(), 2);
        assert_eq!(
            r[0],
            [
                "power",
                "ps",
                "troupe",
                "yes",
                "current",
                "ps1",
                "current,measured",
                "lab/power-supply/3"
            ]
        );
        assert_eq!(r[1][5..7], ["ps2", "current"]);
    }

    #[test]
    fn bad_arguments_are_exit_2() {
        let o = DeviceOptions {
            selector: None,
            prefix: None,
        };
        for bad in ["ps1", "ps1/a/b", "ps 1/current", "/current"] {
            assert_eq!(check(bad, &o).unwrap_err().code, 2, "{bad}");
        }
        let o = DeviceOptions {
            selector: Some("a*".into()),
            prefix: None,
        };
        assert!(check("ps1/current", &o)
            .unwrap_err()
            .message
            .contains("selector"));
        let e = parse_value("{1").unwrap_err();
        assert_eq!(e.code, 2);
        assert!(e.message.starts_with("VALUE is not valid JSON"));
        assert_eq!(parse_value("-2.5").unwrap(), json!(-2.5));
    }
}
