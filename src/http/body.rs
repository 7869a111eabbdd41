//! Reading a bounded JSON body into a typed value, with errors that name the
//! offending field.

use crate::error::Error;
use actix_web::web;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// Reads the whole body, at most `limit` bytes, within `timeout` (a body
/// that trickles in must not hold a connection and a worker's memory).
pub async fn read(
    payload: web::Payload,
    limit: usize,
    timeout: Duration,
) -> Result<web::Bytes, Error> {
    match actix_web::rt::time::timeout(timeout, payload.to_bytes_limited(limit)).await {
        Ok(Ok(Ok(bytes))) => Ok(bytes),
        Ok(Ok(Err(e))) => Err(Error::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
        Ok(Err(_)) => Err(Error::PayloadTooLarge { limit }),
        Err(_) => Err(Error::RequestTimeout {
            secs: timeout.as_secs(),
        }),
    }
}

/// Parses a body that must be exactly one JSON object. A failure says what
/// is wrong in the contract's words and names the field; it never names a
/// Rust type, and never echoes more than a short value.
pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    // serde would read a struct from an array too; the contract is an object.
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    if first != Some(&b'{') {
        return Err(Error::BadRequest(
            "the request body must be one JSON object".into(),
        ));
    }
    if holds_nul(body) {
        // PostgreSQL cannot store it in text; one rule for every backend.
        return Err(Error::BadRequest(
            "strings must not contain the NUL character (\\u0000)".into(),
        ));
    }
    // The fast path; only a failure is parsed again to name the field.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    let result: Result<T, _> = serde_path_to_error::deserialize(&mut deserializer);
    let error = match result {
        // Parsed, but bytes follow the object.
        Ok(_) => {
            return Err(Error::BadRequest(
                "the request body must be one JSON object, with nothing after it".into(),
            ))
        }
        Err(e) => e,
    };
    let path = error.path().to_string();
    Err(Error::BadRequest(in_contract_words(&path, error.inner())))
}

/// Whether a JSON text holds the escape `\u0000` (raw control characters are
/// not valid JSON, so this is the only way a NUL arrives). `\\u0000` is a
/// backslash followed by text: an escape only after an odd run of backslashes.
fn holds_nul(body: &[u8]) -> bool {
    if !body.contains(&b'\\') {
        return false;
    }
    body.windows(6).enumerate().any(|(at, window)| {
        window == b"\\u0000"
            && body.get(..=at).is_some_and(|before| {
                before.iter().rev().take_while(|&&b| b == b'\\').count() % 2 == 1
            })
    })
}

/// What went wrong, in the words of the wire contract.
fn in_contract_words(path: &str, cause: &serde_json::Error) -> String {
    use serde_json::error::Category;
    let at = |field: &str| match path {
        "." => field.to_owned(),
        _ if field.is_empty() => path.to_owned(),
        _ => format!("{path}.{field}"),
    };
    match cause.classify() {
        Category::Syntax | Category::Eof | Category::Io => format!(
            "the request body is not valid JSON (line {}, column {})",
            cause.line(),
            cause.column()
        ),
        Category::Data => {
            let text = cause.to_string();
            let text = text.split(" at line ").next().unwrap_or(&text);
            if let Some(rest) = text.strip_prefix("missing field `") {
                let field = rest.split('`').next().unwrap_or(rest);
                return format!("{} is required", at(field));
            }
            let expected = text
                .rsplit(", expected ")
                .next()
                .filter(|_| text.contains(", expected "));
            match expected {
                Some(expected) => format!("{} must be {}", at(""), expected_in_words(expected)),
                None => format!("{}: {}", at(""), shorten(text)),
            }
        }
    }
}

/// serde's "expected ..." in the contract's words.
fn expected_in_words(expected: &str) -> String {
    match expected {
        e if e.starts_with("struct ") || e == "a map" => "an object".into(),
        "u32" => "a whole number from 0 to 4294967295".into(),
        "i64" | "u64" | "i32" => "a whole number".into(),
        "a boolean" => "true or false".into(),
        "a sequence" => "an array".into(),
        "a string" | "a string or a number" => expected.into(),
        other => shorten(other),
    }
}

/// At most 100 characters of text that may carry a client's value.
fn shorten(text: &str) -> String {
    const MAX: usize = 100;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[test]
    fn a_nul_in_any_string_is_refused_and_a_backslash_before_u0000_is_not_one() {
        #[derive(Deserialize, Debug)]
        struct Named {
            #[allow(dead_code)]
            name: String,
        }
        for body in [
            r#"{"name":"a\u0000b"}"#,
            r#"{"name":"\\\u0000"}"#,
            r#"{"name":"\u00001"}"#,
        ] {
            let err = parse::<Named>(body.as_bytes()).unwrap_err();
            assert!(err.to_string().contains("NUL"), "{body}: {err}");
        }
        // An escaped backslash, then the text u0000.
        assert!(parse::<Named>(br#"{"name":"a\\u0000b"}"#).is_ok());
    }

    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Args {
        user: Inner,
    }
    #[derive(Deserialize, Debug)]
    #[allow(dead_code)]
    struct Inner {
        email: String,
    }

    #[test]
    fn messages_name_the_field_in_the_contracts_words() {
        let err = parse::<Args>(br#"{"user": {"email": 5}}"#).unwrap_err();
        assert_eq!(err.to_string(), "user.email must be a string");
        let err = parse::<Args>(br#"{}"#).unwrap_err();
        assert_eq!(err.to_string(), "user is required");
        let err = parse::<Args>(br#"{"user": {}}"#).unwrap_err();
        assert_eq!(err.to_string(), "user.email is required");
        let err = parse::<Args>(br#"{"user": 7}"#).unwrap_err();
        assert_eq!(err.to_string(), "user must be an object");
        let err = parse::<Args>(b"").unwrap_err();
        assert!(err.to_string().contains("one JSON object"), "{err}");
    }

    #[test]
    fn only_one_object_is_a_body() {
        for body in [
            &br#"{"user": {"email": "a"}} trailing garbage"#[..],
            br#"{"user": {"email": "a"}}{}"#,
            br#"[{"email": "a"}]"#,
            b"null",
            b"\"text\"",
            b"{\"user\": ",
        ] {
            let err = parse::<Args>(body).unwrap_err();
            assert!(
                err.to_string().contains("JSON"),
                "{}: {err}",
                String::from_utf8_lossy(body)
            );
        }
    }

    #[test]
    fn long_values_are_not_echoed() {
        #[derive(Deserialize, Debug)]
        #[allow(dead_code)]
        struct When {
            at: crate::timestamp::Timestamp,
        }
        let long = "x".repeat(5000);
        let err = parse::<When>(format!(r#"{{"at": "{long}"}}"#).as_bytes()).unwrap_err();
        assert!(err.to_string().len() < 200, "{err}");
        assert!(err.to_string().starts_with("at must be a date"), "{err}");
    }
}
