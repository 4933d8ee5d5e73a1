//! Hierarchical status: paths, the status tree and the messages of status
//! updates. No I/O: the server, the client library and the console share
//! this logic.
//!
//! The realm has one status tree, a JSON object. An update names a *path*
//! (dot-separated segments, `system.foo.cpu`) and either sets a value there
//! or removes what is there:
//!
//! - **set** deep-merges its value into the tree at the path: objects merge
//!   key by key, recursively; anything else (numbers, strings, arrays,
//!   `null`) replaces what was there. Missing intermediate objects are
//!   created; a non-object in the way is replaced by an object.
//!   `set system.foo {"cpu": 0.3}` is the partial tree
//!   `{"system": {"foo": {"cpu": 0.3}}}` merged into the current one.
//! - **remove** removes the subtree at the path, then the parents that this
//!   left empty.
//!
//! A *mask* is a path prefix that selects part of the tree (`system`,
//! `system.foo`); the empty mask `""` selects the whole tree.
//! [`StatusTree::under`] cuts a tree to masks and [`relevant`] cuts an update
//! to one.
//!
//! ```
//! use serde_json::json;
//! use troupe_protocol::status::StatusTree;
//! let mut tree = StatusTree::new();
//! tree.merge("system.foo", json!({"cpu": 0.3, "memory": 0.7})).unwrap();
//! tree.merge("system.foo", json!({"cpu": 0.4})).unwrap();
//! assert_eq!(tree.get("system.foo.cpu"), Some(&json!(0.4)));
//! assert_eq!(tree.get("system.foo.memory"), Some(&json!(0.7)));
//! tree.remove("system.foo");
//! assert_eq!(tree.value(), &json!({}));
//! ```

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The longest segment of a path, in bytes.
pub const MAX_SEGMENT: usize = 64;

/// The longest path, in bytes.
pub const MAX_PATH: usize = 1024;

/// The largest value of one update, in bytes of compact JSON.
pub const MAX_VALUE: usize = 1 << 20;

/// The largest message an emitter may send: a value of [`MAX_VALUE`] bytes
/// with its operation and path.
pub const MAX_INPUT: usize = MAX_VALUE + MAX_PATH + 64;

/// Why a path, a value or an update was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StatusError {
    /// The path (or a key inside the value) breaks the path rule.
    #[error("invalid status path {path:?}: {reason}")]
    BadPath {
        /// The path as given (for a key inside a value: the path to it).
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The operation is not allowed at that path (a non-object value at the
    /// root, the removal of the root).
    #[error("{0}")]
    Refused(String),
    /// The value is larger than [`MAX_VALUE`].
    #[error("a status value of {size} bytes is larger than the {max} bytes allowed")]
    TooLarge {
        /// Its size in bytes of compact JSON.
        size: usize,
        /// The limit.
        max: usize,
    },
}

/// Checks one segment: 1 to [`MAX_SEGMENT`] bytes of ASCII letters, digits,
/// `_` or `-`.
fn segment_problem(segment: &str) -> Option<&'static str> {
    if segment.is_empty() {
        Some("a segment is empty (two dots in a row, or a dot at an end)")
    } else if segment.len() > MAX_SEGMENT {
        Some("a segment is longer than 64 bytes")
    } else if !segment
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        Some("a segment may hold only ASCII letters, digits, '_' and '-'")
    } else {
        None
    }
}

/// Checks a path: dot-separated segments of 1 to [`MAX_SEGMENT`] bytes of
/// ASCII letters, digits, `_` or `-`, at most [`MAX_PATH`] bytes in all. The
/// empty path is the root.
///
/// # Errors
/// [`StatusError::BadPath`] saying what is wrong.
pub fn validate_path(path: &str) -> Result<(), StatusError> {
    let bad = |reason: &str| {
        Err(StatusError::BadPath {
            path: path.to_string(),
            reason: reason.to_string(),
        })
    };
    if path.len() > MAX_PATH {
        return bad("it is longer than 1024 bytes");
    }
    if path.is_empty() {
        return Ok(());
    }
    match path.split('.').find_map(segment_problem) {
        Some(reason) => bad(reason),
        None => Ok(()),
    }
}

/// Checks that every key of every object in `value` (not inside arrays,
/// whose elements are leaves) is a valid segment, so that every part of the
/// tree can be named by a path. `at` is the path of `value`, for the error.
///
/// # Errors
/// [`StatusError::BadPath`] naming the first bad key.
pub fn validate_keys(at: &str, value: &Value) -> Result<(), StatusError> {
    let Value::Object(map) = value else {
        return Ok(());
    };
    for (key, v) in map {
        let here = join(at, key);
        if let Some(reason) = segment_problem(key) {
            return Err(StatusError::BadPath {
                path: here,
                reason: format!("key {key:?} of the value: {reason}"),
            });
        }
        validate_keys(&here, v)?;
    }
    Ok(())
}

/// `path.key`, or `key` at the root.
fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// The segments of a (valid) path; none for the root.
pub fn segments(path: &str) -> impl Iterator<Item = &str> {
    path.split('.').filter(|s| !s.is_empty())
}

/// Whether `path` is `prefix` or below it, segment by segment (`a.bc` is
/// not under `a.b`). Everything is under the root `""`.
pub fn is_under(path: &str, prefix: &str) -> bool {
    prefix.is_empty()
        || path == prefix
        || (path.starts_with(prefix) && path.as_bytes().get(prefix.len()) == Some(&b'.'))
}

/// Validates `masks` and keeps the outermost ones: a mask below another is
/// dropped, and duplicates too. No mask at all means the whole tree (`""`).
///
/// # Errors
/// [`StatusError::BadPath`] for the first invalid mask.
pub fn normalize_masks<S: AsRef<str>>(masks: &[S]) -> Result<Vec<String>, StatusError> {
    let mut all: Vec<String> = Vec::with_capacity(masks.len().max(1));
    for m in masks {
        validate_path(m.as_ref())?;
        all.push(m.as_ref().to_string());
    }
    if all.is_empty() {
        all.push(String::new());
    }
    // Sorted, an ancestor comes right before its descendants.
    all.sort();
    all.dedup();
    let mut kept: Vec<String> = Vec::with_capacity(all.len());
    for m in all {
        if !kept.iter().any(|k| is_under(&m, k)) {
            kept.push(m);
        }
    }
    Ok(kept)
}

/// Checks a `set` of `value` at `path`: the path, the keys inside the
/// value, and that the root gets an object. The size is checked apart
/// ([`check_size`]), where the bytes are known.
///
/// # Errors
/// [`StatusError`] saying what is wrong.
pub fn check_set(path: &str, value: &Value) -> Result<(), StatusError> {
    validate_path(path)?;
    if path.is_empty() && !value.is_object() {
        return Err(StatusError::Refused(
            "the root of the status tree is an object: set an object there, or name a path".into(),
        ));
    }
    validate_keys(path, value)
}

/// Checks the size of a value: `size` bytes of JSON, at most [`MAX_VALUE`].
///
/// # Errors
/// [`StatusError::TooLarge`].
pub fn check_size(size: usize) -> Result<(), StatusError> {
    if size > MAX_VALUE {
        return Err(StatusError::TooLarge {
            size,
            max: MAX_VALUE,
        });
    }
    Ok(())
}

/// Checks a `remove` at `path`: a valid path, not the root.
///
/// # Errors
/// [`StatusError`] saying what is wrong.
pub fn check_remove(path: &str) -> Result<(), StatusError> {
    validate_path(path)?;
    if path.is_empty() {
        return Err(StatusError::Refused(
            "the root of the status tree cannot be removed: remove its paths one by one".into(),
        ));
    }
    Ok(())
}

/// The operation of an update.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StatusOp {
    /// Deep-merge the value at the path.
    Set,
    /// Remove the subtree at the path.
    Remove,
}

impl StatusOp {
    /// The name on the wire: `set` or `remove`.
    pub fn as_str(self) -> &'static str {
        match self {
            StatusOp::Set => "set",
            StatusOp::Remove => "remove",
        }
    }
}

/// What an emitter puts on `<realm>/@/<server>/status/in`: one operation,
/// not yet numbered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusInput {
    /// The operation.
    pub op: StatusOp,
    /// The path.
    pub path: String,
    /// The value of a `set` (`null`, or absent, for a `remove`).
    #[serde(default)]
    pub value: Value,
}

impl StatusInput {
    /// Checks the input as [`check_set`] and [`check_remove`] do; `size` is
    /// the size of the message it came in, at most [`MAX_INPUT`].
    ///
    /// # Errors
    /// [`StatusError`] saying what is wrong.
    pub fn check(&self, size: usize) -> Result<(), StatusError> {
        if size > MAX_INPUT {
            return Err(StatusError::TooLarge {
                size,
                max: MAX_INPUT,
            });
        }
        match self.op {
            StatusOp::Set => check_set(&self.path, &self.value),
            StatusOp::Remove => check_remove(&self.path),
        }
    }
}

/// An update as its server numbered it, published on
/// `<realm>/@/status/upd/<origin>`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusUpdate {
    /// The server run that numbered it: `<server>-<start time in ns>`.
    pub origin: String,
    /// Its number among the updates of `origin`, from 1, without gaps.
    pub seq: u64,
    /// When the server applied it, in ms since the Unix epoch.
    pub time_unix_ms: u64,
    /// The operation.
    pub op: StatusOp,
    /// The path.
    pub path: String,
    /// The value of a `set` (`null` for a `remove`).
    #[serde(default)]
    pub value: Value,
}

/// The reply to a `status_get` request: the tree under the masks asked
/// for, and how far it reflects each origin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusSnapshot {
    /// The tree cut to the masks, in the shape of the whole tree.
    pub tree: Value,
    /// For each origin, the sequence number of its last update applied to
    /// the tree. An update of that origin with a higher number is not in it.
    pub vector: BTreeMap<String, u64>,
}

/// The reply to a `status_flush` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StatusMark {
    /// The origin of the server's own updates.
    pub origin: String,
    /// The number of its last update (0 before the first).
    pub seq: u64,
}

/// A status tree: a JSON object changed by [`StatusTree::merge`] and
/// [`StatusTree::remove`].
#[derive(Debug, Clone, PartialEq)]
pub struct StatusTree {
    root: Value,
}

impl Default for StatusTree {
    fn default() -> Self {
        Self::new()
    }
}

impl StatusTree {
    /// An empty tree (`{}`).
    pub fn new() -> Self {
        Self {
            root: Value::Object(Map::new()),
        }
    }

    /// A tree holding `value`, which must be an object.
    ///
    /// # Errors
    /// [`StatusError::Refused`] for anything but an object.
    pub fn from_value(value: Value) -> Result<Self, StatusError> {
        if !value.is_object() {
            return Err(StatusError::Refused(
                "a status tree is a JSON object".into(),
            ));
        }
        Ok(Self { root: value })
    }

    /// The whole tree.
    pub fn value(&self) -> &Value {
        &self.root
    }

    /// The whole tree, taken.
    pub fn into_value(self) -> Value {
        self.root
    }

    fn map_mut(&mut self) -> &mut Map<String, Value> {
        if !self.root.is_object() {
            self.root = Value::Object(Map::new());
        }
        match &mut self.root {
            Value::Object(m) => m,
            _ => unreachable!("the root was just made an object"),
        }
    }

    /// Deep-merges `value` at `path` (see the module docs). The path and the
    /// value are not checked here: see [`check_set`].
    ///
    /// # Errors
    /// [`StatusError::Refused`] for a non-object value at the root.
    pub fn merge(&mut self, path: &str, value: Value) -> Result<(), StatusError> {
        let segs: Vec<&str> = segments(path).collect();
        let Some((last, parents)) = segs.split_last() else {
            if !value.is_object() {
                return Err(StatusError::Refused(
                    "the root of the status tree is an object".into(),
                ));
            }
            deep_merge(&mut self.root, value);
            return Ok(());
        };
        let mut map = self.map_mut();
        for seg in parents {
            let child = map
                .entry(seg.to_string())
                .or_insert_with(|| Value::Object(Map::new()));
            if !child.is_object() {
                *child = Value::Object(Map::new());
            }
            map = match child {
                Value::Object(m) => m,
                _ => unreachable!("the child was just made an object"),
            };
        }
        match map.get_mut(*last) {
            Some(old) => deep_merge(old, value),
            None => {
                map.insert(last.to_string(), value);
            }
        }
        Ok(())
    }

    /// Removes the subtree at `path`, then the parents this left empty.
    /// Returns whether something was there. The root is not removed: `""`
    /// removes nothing.
    pub fn remove(&mut self, path: &str) -> bool {
        let segs: Vec<&str> = segments(path).collect();
        if segs.is_empty() {
            return false;
        }
        remove_in(self.map_mut(), &segs)
    }

    /// Applies one operation: [`StatusTree::merge`] or [`StatusTree::remove`].
    ///
    /// # Errors
    /// As [`StatusTree::merge`].
    pub fn apply(&mut self, op: StatusOp, path: &str, value: Value) -> Result<(), StatusError> {
        match op {
            StatusOp::Set => self.merge(path, value),
            StatusOp::Remove => {
                self.remove(path);
                Ok(())
            }
        }
    }

    /// The value at `path`; the whole tree for `""`.
    pub fn get(&self, path: &str) -> Option<&Value> {
        segments(path).try_fold(&self.root, |v, seg| v.as_object()?.get(seg))
    }

    /// The tree cut to `masks` (see [`normalize_masks`]), in the shape of the
    /// whole tree: `{"system": {"foo": ...}}` for the mask `system.foo`. A
    /// mask with nothing under it adds nothing.
    pub fn under<S: AsRef<str>>(&self, masks: &[S]) -> Value {
        let mut out = StatusTree::new();
        for mask in masks {
            let mask = mask.as_ref();
            if mask.is_empty() {
                return self.root.clone();
            }
            if let Some(v) = self.get(mask) {
                // Masks that overlap give the same value twice: harmless.
                let _ = out.merge(mask, v.clone());
            }
        }
        out.root
    }
}

/// Merges `value` into `target`: objects key by key, recursively; anything
/// else replaces.
fn deep_merge(target: &mut Value, value: Value) {
    match (target, value) {
        (Value::Object(t), Value::Object(v)) => {
            for (k, v) in v {
                match t.get_mut(&k) {
                    Some(old) => deep_merge(old, v),
                    None => {
                        t.insert(k, v);
                    }
                }
            }
        }
        (t, v) => *t = v,
    }
}

/// Removes `segs` under `map`, pruning the objects this leaves empty.
fn remove_in(map: &mut Map<String, Value>, segs: &[&str]) -> bool {
    let Some((first, rest)) = segs.split_first() else {
        return false;
    };
    if rest.is_empty() {
        return map.remove(*first).is_some();
    }
    let Some(Value::Object(child)) = map.get_mut(*first) else {
        return false;
    };
    let removed = remove_in(child, rest);
    if removed && child.is_empty() {
        map.remove(*first);
    }
    removed
}

/// `update` cut to the part of the tree under `mask`:
///
/// - an update at a path under the mask (or at the mask) passes whole;
/// - a `set` at an ancestor of the mask passes as a `set` at the mask of
///   the part of its value under the mask, or not at all when its value does
///   not reach the mask. When a non-object of its value lies on the way to
///   the mask, it replaces what the mask selected: that passes as a
///   `remove` at the mask;
/// - a `remove` at an ancestor of the mask passes as a `remove` at the mask;
/// - an update elsewhere does not pass.
pub fn relevant(update: &StatusUpdate, mask: &str) -> Option<StatusUpdate> {
    if is_under(&update.path, mask) {
        return Some(update.clone());
    }
    if !is_under(mask, &update.path) {
        return None;
    }
    let at_mask = |op, value| StatusUpdate {
        origin: update.origin.clone(),
        seq: update.seq,
        time_unix_ms: update.time_unix_ms,
        op,
        path: mask.to_string(),
        value,
    };
    match update.op {
        StatusOp::Remove => Some(at_mask(StatusOp::Remove, Value::Null)),
        StatusOp::Set => {
            let depth = segments(&update.path).count();
            let mut v = &update.value;
            for seg in segments(mask).skip(depth) {
                match v {
                    Value::Object(m) => v = m.get(seg)?,
                    _ => return Some(at_mask(StatusOp::Remove, Value::Null)),
                }
            }
            Some(at_mask(StatusOp::Set, v.clone()))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tree(v: Value) -> StatusTree {
        StatusTree::from_value(v).unwrap()
    }

    fn update(op: StatusOp, path: &str, value: Value) -> StatusUpdate {
        StatusUpdate {
            origin: "a-1".into(),
            seq: 7,
            time_unix_ms: 5,
            op,
            path: path.into(),
            value,
        }
    }

    #[test]
    fn paths_follow_the_rule() {
        for ok in ["", "a", "system.foo", "A-9_z.b", &"x".repeat(64)] {
            validate_path(ok).unwrap();
        }
        for bad in [
            ".",
            "a.",
            ".a",
            "a..b",
            "a b",
            "a/b",
            "a*",
            "é",
            "a.$",
            &"x".repeat(65),
        ] {
            assert!(
                matches!(validate_path(bad), Err(StatusError::BadPath { .. })),
                "{bad}"
            );
        }
        let long = vec!["ab"; 400].join(".");
        assert!(validate_path(&long).is_err());
        let e = validate_path("a..b").unwrap_err().to_string();
        assert_eq!(
            e,
            "invalid status path \"a..b\": a segment is empty (two dots in a row, or a dot at an end)"
        );
    }

    #[test]
    fn keys_inside_values_follow_the_rule_too() {
        check_set("a", &json!({"b": {"c": 1}, "d": [{"any key": 1}]})).unwrap();
        let e = check_set("a", &json!({"b": {"c.d": 1}})).unwrap_err();
        assert!(
            matches!(&e, StatusError::BadPath { path, .. } if path == "a.b.c.d"),
            "{e}"
        );
        let e = check_set("", &json!(3)).unwrap_err();
        assert!(matches!(e, StatusError::Refused(_)), "{e}");
        check_set("", &json!({"x": 1})).unwrap();
        check_size(MAX_VALUE).unwrap();
        let e = check_size(MAX_VALUE + 1).unwrap_err();
        assert!(matches!(e, StatusError::TooLarge { .. }), "{e}");
        let input = StatusInput {
            op: StatusOp::Set,
            path: "a".into(),
            value: json!(1),
        };
        input.check(MAX_INPUT).unwrap();
        assert!(matches!(
            input.check(MAX_INPUT + 1),
            Err(StatusError::TooLarge { .. })
        ));
        assert!(matches!(check_remove(""), Err(StatusError::Refused(_))));
        check_remove("a.b").unwrap();
    }

    #[test]
    fn under_is_segment_wise() {
        assert!(is_under("a.b.c", "a.b"));
        assert!(is_under("a.b", "a.b"));
        assert!(is_under("a", ""));
        assert!(is_under("", ""));
        assert!(!is_under("a.bc", "a.b"));
        assert!(!is_under("a", "a.b"));
        assert!(!is_under("", "a"));
    }

    #[test]
    fn masks_are_normalized() {
        let n = |m: &[&str]| normalize_masks(m).unwrap();
        assert_eq!(n(&[]), [""]);
        assert_eq!(n(&["a.b", "a", "c", "c"]), ["a", "c"]);
        assert_eq!(n(&["a.b", "a.bc", ""]), [""]);
        assert_eq!(n(&["x.y", "a.b"]), ["a.b", "x.y"]);
        assert!(normalize_masks(&["a..b"]).is_err());
    }

    #[test]
    fn set_deep_merges_and_creates_intermediates() {
        let mut t = StatusTree::new();
        t.merge("system.foo", json!({"cpu": 0.3, "memory": 0.7}))
            .unwrap();
        assert_eq!(
            t.value(),
            &json!({"system": {"foo": {"cpu": 0.3, "memory": 0.7}}})
        );
        t.merge(
            "system",
            json!({"foo": {"cpu": 0.5, "disk": {"sda": 1}}, "up": true}),
        )
        .unwrap();
        assert_eq!(
            t.value(),
            &json!({"system": {"foo": {"cpu": 0.5, "memory": 0.7, "disk": {"sda": 1}}, "up": true}})
        );
        // Anything but an object replaces, arrays included.
        t.merge("system.foo.disk", json!([1, 2])).unwrap();
        assert_eq!(t.get("system.foo.disk"), Some(&json!([1, 2])));
        t.merge("system.foo.disk", json!({"sdb": 2})).unwrap();
        assert_eq!(t.get("system.foo.disk"), Some(&json!({"sdb": 2})));
        // A non-object in the way is replaced by an object.
        t.merge("system.up.since", json!(12)).unwrap();
        assert_eq!(t.get("system.up"), Some(&json!({"since": 12})));
        // null is a value.
        t.merge("system.foo.cpu", Value::Null).unwrap();
        assert_eq!(t.get("system.foo.cpu"), Some(&Value::Null));
        // At the root, an object merges; anything else is refused.
        t.merge("", json!({"other": 1})).unwrap();
        assert_eq!(t.get("other"), Some(&json!(1)));
        assert!(t.merge("", json!(1)).is_err());
        assert_eq!(t.get(""), Some(t.value()));
        assert_eq!(t.get("nothing.here"), None);
        assert_eq!(t.get("other.deeper"), None);
    }

    #[test]
    fn remove_prunes_parents_left_empty() {
        let mut t = tree(json!({"a": {"b": {"c": 1}}, "x": {"y": 1, "z": 2}, "e": {}}));
        assert!(t.remove("a.b.c"));
        assert_eq!(t.value(), &json!({"x": {"y": 1, "z": 2}, "e": {}}));
        assert!(t.remove("x.y"));
        assert_eq!(t.value(), &json!({"x": {"z": 2}, "e": {}}));
        assert!(!t.remove("x.nothing"));
        assert!(!t.remove("x.z.deeper"));
        assert!(!t.remove(""));
        assert!(t.remove("x"));
        // An empty object that was set stays, until removed itself.
        assert_eq!(t.value(), &json!({"e": {}}));
        assert!(t.remove("e"));
        assert_eq!(t.value(), &json!({}));
    }

    #[test]
    fn under_cuts_to_masks_in_the_whole_shape() {
        let t = tree(json!({
            "system": {"foo": {"cpu": 1}, "bar": {"cpu": 2}},
            "apps": {"x": 1},
            "other": 3
        }));
        assert_eq!(
            t.under(&["system.foo"]),
            json!({"system": {"foo": {"cpu": 1}}})
        );
        assert_eq!(
            t.under(&["system.foo", "apps"]),
            json!({"system": {"foo": {"cpu": 1}}, "apps": {"x": 1}})
        );
        assert_eq!(
            t.under(&["system.foo.cpu", "system.bar"]),
            json!({"system": {"foo": {"cpu": 1}, "bar": {"cpu": 2}}})
        );
        assert_eq!(t.under(&["nothing", "other.x"]), json!({}));
        assert_eq!(t.under(&[""]), t.value().clone());
        assert_eq!(t.under::<&str>(&[]), json!({}));
    }

    #[test]
    fn updates_under_the_mask_pass_whole() {
        let u = update(StatusOp::Set, "system.foo", json!({"cpu": 1}));
        assert_eq!(relevant(&u, "system"), Some(u.clone()));
        assert_eq!(relevant(&u, "system.foo"), Some(u.clone()));
        assert_eq!(relevant(&u, ""), Some(u.clone()));
        assert_eq!(relevant(&u, "system.fo"), None);
        assert_eq!(relevant(&u, "apps"), None);
        let r = update(StatusOp::Remove, "system.foo.cpu", Value::Null);
        assert_eq!(relevant(&r, "system.foo"), Some(r.clone()));
        assert_eq!(relevant(&r, "system.bar"), None);
    }

    #[test]
    fn updates_at_an_ancestor_are_cut_to_the_mask() {
        let u = update(
            StatusOp::Set,
            "system",
            json!({"foo": {"cpu": 1, "mem": 2}, "bar": 3}),
        );
        let cut = relevant(&u, "system.foo.cpu").unwrap();
        assert_eq!(
            (
                cut.op,
                cut.path.as_str(),
                &cut.value,
                cut.seq,
                cut.origin.as_str()
            ),
            (StatusOp::Set, "system.foo.cpu", &json!(1), 7, "a-1")
        );
        let cut = relevant(&u, "system.foo").unwrap();
        assert_eq!(cut.value, json!({"cpu": 1, "mem": 2}));
        // The value does not reach the mask: no effect there.
        assert_eq!(relevant(&u, "system.baz"), None);
        // A non-object on the way replaces what the mask selected.
        let cut = relevant(&u, "system.bar.x").unwrap();
        assert_eq!(
            (cut.op, cut.path.as_str()),
            (StatusOp::Remove, "system.bar.x")
        );
        let scalar = update(StatusOp::Set, "system", json!(5));
        assert_eq!(
            relevant(&scalar, "system.foo").unwrap().op,
            StatusOp::Remove
        );
        // A removal of an ancestor removes the mask's part.
        let r = update(StatusOp::Remove, "system", Value::Null);
        let cut = relevant(&r, "system.foo").unwrap();
        assert_eq!(
            (cut.op, cut.path.as_str()),
            (StatusOp::Remove, "system.foo")
        );
    }

    #[test]
    fn cutting_then_applying_equals_applying_then_cutting() {
        // For every mask, applying the cut updates to the cut tree gives the
        // cut of the whole tree.
        let start = json!({"s": {"f": {"cpu": 1, "m": {"a": 1}}, "b": 2, "k": {"z": 1}}, "o": 1});
        let updates = [
            update(StatusOp::Set, "s", json!({"f": {"cpu": 2}, "b": {"x": 1}})),
            update(StatusOp::Set, "s.f", json!(9)),
            update(StatusOp::Set, "", json!({"s": {"f": {"m": {"b": 2}}}})),
            update(StatusOp::Remove, "s.f.m", Value::Null),
            update(StatusOp::Set, "s.k", json!({"z": {"deep": 1}})),
            update(StatusOp::Remove, "s", Value::Null),
            update(StatusOp::Set, "s.f.m.q", json!(1)),
        ];
        for mask in [
            "", "s", "s.f", "s.f.m", "s.f.cpu", "s.b", "s.k.z", "o", "none",
        ] {
            let mut whole = tree(start.clone());
            let mut cut = tree(whole.under(&[mask]));
            for u in &updates {
                whole.apply(u.op, &u.path, u.value.clone()).unwrap();
                if let Some(c) = relevant(u, mask) {
                    cut.apply(c.op, &c.path, c.value).unwrap();
                }
                assert_eq!(
                    cut.value(),
                    &whole.under(&[mask]),
                    "mask {mask:?} after {u:?}"
                );
            }
        }
    }

    #[test]
    fn wire_formats() {
        let input: StatusInput =
            serde_json::from_str(r#"{"op":"set","path":"a.b","value":{"c":1}}"#).unwrap();
        assert_eq!(input.op, StatusOp::Set);
        let remove: StatusInput = serde_json::from_str(r#"{"op":"remove","path":"a"}"#).unwrap();
        assert_eq!(remove.value, Value::Null);
        remove.check(10).unwrap();
        assert!(serde_json::from_str::<StatusInput>(r#"{"op":"set","path":"a","x":1}"#).is_err());
        assert!(serde_json::from_str::<StatusInput>(r#"{"op":"reset","path":"a"}"#).is_err());
        let u = update(StatusOp::Remove, "a", Value::Null);
        assert_eq!(
            serde_json::to_value(&u).unwrap(),
            json!({"origin": "a-1", "seq": 7, "time_unix_ms": 5, "op": "remove", "path": "a", "value": null})
        );
        let snap: StatusSnapshot =
            serde_json::from_str(r#"{"tree":{"a":1},"vector":{"s-1":4}}"#).unwrap();
        assert_eq!(snap.vector["s-1"], 4);
        use crate::{Request, RequestBody};
        let get: Request = serde_json::from_str(r#"{"v":1,"op":"status_get"}"#).unwrap();
        assert_eq!(get.body, RequestBody::StatusGet { masks: vec![] });
        let get = Request::new(RequestBody::StatusGet {
            masks: vec!["a.b".into()],
        });
        assert_eq!(
            serde_json::to_value(&get).unwrap(),
            json!({"v": 1, "op": "status_get", "masks": ["a.b"]})
        );
        let flush: Request = serde_json::from_str(r#"{"v":1,"op":"status_flush"}"#).unwrap();
        assert_eq!(flush.body.op(), "status_flush");
    }
}
