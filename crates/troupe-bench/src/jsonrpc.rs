//! JSON-RPC 2.0 calls of an `echo` method without troupe: the bytes of a
//! remote call, and raw Zenoh get/queryable carrying them.
//!
//! The `object` scenario compares troupe's remote call with this subject
//! to show what the middleware costs beyond the transport and JSON: both
//! sides do the JSON work a troupe call does. The bench encodes each
//! request from a JSON value (`{"jsonrpc": "2.0", "method": "echo",
//! "params": [TEXT], "id": N}`) and decodes each response into one; the
//! far end's queryable parses the request into a JSON value, checks it as
//! a JSON-RPC server would, builds the response (`{"jsonrpc": "2.0",
//! "result": TEXT, "id": N}`) and encodes it, in its callback. Transport
//! settings and topology are those of [`crate::zenoh_raw::RttGet`].

use crate::peer::{Activity, Peers};
use crate::pin::Placement;
use crate::report::Role;
use crate::rtt::{RttLink, RttSubject};
use crate::zenoh_raw::{bench_session, get_one, peer_session, serve_until_gone, z, TOPOLOGY};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::time::{Duration, Instant};
use zenoh::{Session, Wait};

/// Bound of every wait of the bench.
const WAIT: Duration = Duration::from_secs(60);

/// The queryable's key (not the plain get's: the two never meet).
const KEY: &str = "troupe-bench/rpc/query";

/// The method every subject of the `object` scenario calls.
pub const METHOD: &str = "echo";

/// The subject's name.
pub const NAME: &str = "raw Zenoh get/queryable, JSON-RPC";

/// A request as sent: the shape troupe's object client writes.
#[derive(Serialize)]
struct Request<'a> {
    jsonrpc: &'static str,
    method: &'a str,
    params: &'a Value,
    id: u64,
}

/// A response as received.
#[derive(Deserialize)]
struct Response {
    #[serde(default)]
    result: Option<Value>,
    #[serde(default)]
    error: Option<Value>,
}

/// The text parameter of a call of `size` bytes (ASCII, nothing to escape).
pub fn text(size: usize) -> String {
    "Z".repeat(size)
}

/// The body of the call `echo(text)` with `id`.
///
/// # Errors
///
/// Encoding failed (it does not, for a string).
pub fn request(id: u64, text: &str) -> anyhow::Result<Vec<u8>> {
    let params = json!([text]);
    Ok(serde_json::to_vec(&Request {
        jsonrpc: "2.0",
        method: METHOD,
        params: &params,
        id,
    })?)
}

/// The result of a response body, which must be a string of `size` bytes.
///
/// # Errors
///
/// Not JSON, an error response, or another result.
pub fn check_response(body: &[u8], size: usize) -> anyhow::Result<()> {
    let response: Response = serde_json::from_slice(body)?;
    if let Some(e) = response.error {
        anyhow::bail!("an error response: {e}");
    }
    match response.result {
        Some(Value::String(s)) if s.len() == size => Ok(()),
        other => anyhow::bail!("a result other than the {size}-byte text: {other:?}"),
    }
}

/// The response to a request body, as a JSON-RPC server makes it: parsed,
/// checked, answered (an error response for a bad request).
pub fn answer(body: &[u8]) -> Vec<u8> {
    let response = match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(mut request)) => {
            let id = request.remove("id").unwrap_or(Value::Null);
            let text = match request.remove("params") {
                Some(Value::Array(mut params)) if params.len() == 1 => params.pop(),
                _ => None,
            };
            let valid = request.get("jsonrpc") == Some(&Value::from("2.0"))
                && request.get("method") == Some(&Value::from(METHOD));
            match text {
                Some(text @ Value::String(_)) if valid => {
                    json!({"jsonrpc": "2.0", "result": text, "id": id})
                }
                _ => {
                    json!({"jsonrpc": "2.0", "error": {"code": -32602, "message": "invalid params"}, "id": id})
                }
            }
        }
        _ => {
            json!({"jsonrpc": "2.0", "error": {"code": -32700, "message": "parse error"}, "id": null})
        }
    };
    serde_json::to_vec(&response).unwrap_or_default()
}

/// `object`: a get whose payload is a JSON-RPC request, answered by a
/// queryable that parses it and encodes the response.
pub struct RttGetJson;

impl RttSubject for RttGetJson {
    fn name(&self) -> &'static str {
        NAME
    }

    fn topology(&self) -> &'static str {
        "peer to peer, 1 direct TCP link"
    }

    fn role(&self) -> Role {
        Role::Peer
    }

    fn method(&self) -> String {
        format!(
            "{TOPOLOGY}; get with express, Block, consolidation None, replies awaited on \
             tokio (recv_async); the payload is a JSON-RPC 2.0 request encoded for each call \
             from a JSON value (serde_json), the response decoded and checked; the queryable \
             parses each request into a JSON value, checks it, builds and encodes the response \
             and replies from its callback, express"
        )
    }

    fn open(&self, placement: Placement) -> BoxFuture<'_, anyhow::Result<Box<dyn RttLink>>> {
        Box::pin(async move {
            let (session, endpoint) = bench_session().await?;
            let mut peers = Peers::default();
            peers.spawn("zenoh-jsonrpc-queryable", placement, &[endpoint])?;
            let mut link = GetJsonLink {
                session,
                next_id: 1,
                _peers: peers,
            };
            // Until the queryable is known here, a get ends with no reply.
            let end = Instant::now() + WAIT;
            loop {
                if link.call("", Duration::from_millis(500)).await.is_ok() {
                    break;
                }
                link._peers.check()?;
                anyhow::ensure!(Instant::now() < end, "no queryable after {WAIT:?}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            Ok(Box::new(link) as Box<dyn RttLink>)
        })
    }
}

struct GetJsonLink {
    session: Session,
    next_id: u64,
    _peers: Peers,
}

impl GetJsonLink {
    /// One call of `echo(text)`, answered within `limit`.
    async fn call(&mut self, text: &str, limit: Duration) -> anyhow::Result<()> {
        let id = self.next_id;
        self.next_id += 1;
        let sample = get_one(&self.session, KEY, request(id, text)?, limit).await?;
        check_response(&sample.payload().to_bytes(), text.len())
    }
}

impl RttLink for GetJsonLink {
    fn round_trips(
        &mut self,
        size: usize,
        n: usize,
    ) -> BoxFuture<'_, anyhow::Result<Vec<Duration>>> {
        Box::pin(async move {
            let text = text(size);
            let mut out = Vec::with_capacity(n);
            for _ in 0..n {
                let t = Instant::now();
                self.call(&text, WAIT).await?;
                out.push(t.elapsed());
            }
            Ok(out)
        })
    }
}

/// Peer `zenoh-jsonrpc-queryable ENDPOINT`: answers every JSON-RPC request
/// of `echo` from its callback ([`answer`]).
///
/// # Errors
///
/// The session or the declaration failed, or idle for
/// [`IDLE`](crate::peer::IDLE).
pub fn queryable(endpoint: &str) -> anyhow::Result<()> {
    let session = peer_session(endpoint)?;
    let _queryable = z(session
        .declare_queryable(KEY)
        .callback(|query| {
            Activity::get().touch();
            let response = match query.payload() {
                Some(p) => answer(&p.to_bytes()),
                None => answer(b""),
            };
            if let Err(e) = query
                .reply(query.key_expr().clone(), response)
                .express(true)
                .wait()
            {
                eprintln!("zenoh-jsonrpc-queryable: reply failed: {e}");
            }
        })
        .wait())?;
    serve_until_gone(&session)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_is_answered_with_its_text() {
        let body = request(7, "abc").unwrap();
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(
            v,
            json!({"jsonrpc": "2.0", "method": "echo", "params": ["abc"], "id": 7})
        );
        let response = answer(&body);
        let v: Value = serde_json::from_slice(&response).unwrap();
        assert_eq!(v, json!({"jsonrpc": "2.0", "result": "abc", "id": 7}));
        check_response(&response, 3).unwrap();
        assert!(check_response(&response, 4).is_err());
        assert_eq!(text(4), "ZZZZ");
    }

    #[test]
    fn bad_requests_get_error_responses() {
        for bad in [
            &b"{not json"[..],
            br#"{"jsonrpc": "2.0", "method": "echo", "params": [], "id": 1}"#,
            br#"{"jsonrpc": "2.0", "method": "other", "params": ["a"], "id": 1}"#,
            br#"{"jsonrpc": "1.0", "method": "echo", "params": ["a"], "id": 1}"#,
        ] {
            let response = answer(bad);
            assert!(check_response(&response, 1).is_err(), "{response:?}");
            let v: Value = serde_json::from_slice(&response).unwrap();
            assert!(v["error"]["code"].is_i64(), "{v}");
        }
    }
}
