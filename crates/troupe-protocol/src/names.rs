//! Names of servers, applications, publishers, channels, objects and devices.
//!
//! Every name that becomes a chunk of a key expression is validated here, once:
//! 1 to [`MAX_NAME_LEN`] bytes of ASCII letters, digits, `_`, `-` and `.`,
//! not starting with `.` or `-`, and without `..`. This keeps names free of the
//! Zenoh special characters (`/ * $ # ? @`) and of anything a shell would mangle.

/// The longest name accepted, in bytes.
pub const MAX_NAME_LEN: usize = 64;

/// Why a name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind} name {name:?}: {reason}")]
pub struct NameError {
    /// What the name was for (`"server"`, `"app"`, ...).
    pub kind: String,
    /// The name as given.
    pub name: String,
    /// What is wrong with it.
    pub reason: &'static str,
}

/// Checks that `name` is a valid name for a `kind` of thing.
///
/// # Errors
/// A [`NameError`] saying what is wrong with the name.
pub fn validate_name(kind: &str, name: &str) -> Result<(), NameError> {
    let err = |reason| {
        Err(NameError {
            kind: kind.to_string(),
            name: name.to_string(),
            reason,
        })
    };
    if name.is_empty() {
        return err("it is empty");
    }
    if name.len() > MAX_NAME_LEN {
        return err("it is longer than 64 bytes");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return err("only ASCII letters, digits, '_', '-' and '.' are allowed");
    }
    if name.starts_with('.') || name.starts_with('-') {
        return err("it must not start with '.' or '-'");
    }
    if name.contains("..") {
        return err("it must not contain '..'");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_names() {
        for n in ["a", "host-1", "my_app.v2", "A9", &"x".repeat(64)] {
            validate_name("app", n).unwrap();
        }
    }

    #[test]
    fn refuses_bad_names() {
        for n in [
            "",
            "a/b",
            "a*",
            "a$b",
            "a#",
            "a?",
            "@x",
            "a b",
            "..",
            "a..b",
            ".a",
            "-a",
            "é",
            &"x".repeat(65),
        ] {
            let e = validate_name("app", n).unwrap_err();
            assert_eq!(e.name, n);
            assert!(e.to_string().starts_with("invalid app name"), "{e}");
        }
    }
}
