//! Reading a bounded JSON body into a typed value, with errors that name the
//! offending field.

use crate::error::Error;
use actix_web::web;
use serde::de::DeserializeOwned;

pub async fn read(payload: web::Payload, limit: usize) -> Result<web::Bytes, Error> {
    match payload.to_bytes_limited(limit).await {
        Ok(Ok(bytes)) => Ok(bytes),
        Ok(Err(e)) => Err(Error::BadRequest(format!(
            "could not read the request body: {e}"
        ))),
        Err(_) => Err(Error::PayloadTooLarge { limit }),
    }
}

pub fn parse<T: DeserializeOwned>(body: &[u8]) -> Result<T, Error> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(Error::BadRequest(
            "the request body must be a JSON object".into(),
        ));
    }
    // The fast path; only a failure is parsed again to name the field.
    if let Ok(value) = serde_json::from_slice(body) {
        return Ok(value);
    }
    let mut deserializer = serde_json::Deserializer::from_slice(body);
    serde_path_to_error::deserialize(&mut deserializer).map_err(|e| {
        let path = e.path().to_string();
        let cause = e.into_inner();
        if path == "." {
            Error::BadRequest(format!("invalid request body: {cause}"))
        } else {
            Error::BadRequest(format!("invalid field `{path}`: {cause}"))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

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
    fn messages_name_the_field() {
        let err = parse::<Args>(br#"{"user": {"email": 5}}"#).unwrap_err();
        assert!(err.to_string().contains("user.email"), "{err}");
        let err = parse::<Args>(br#"{}"#).unwrap_err();
        assert!(err.to_string().contains("missing field `user`"), "{err}");
        let err = parse::<Args>(b"").unwrap_err();
        assert!(err.to_string().contains("JSON object"), "{err}");
    }
}
