//! Store failures as a client reads them: the one place that words them.

use crate::error::Error;
use crate::store::{Duplicate, Entity, StoreError};

impl From<StoreError> for Error {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::NotFound(entity) => Error::NotFound(
                match entity {
                    Entity::User => "no user has this id",
                    Entity::Authenticator => "no authenticator has this credentialID",
                }
                .into(),
            ),
            StoreError::Conflict(duplicate) => Error::Conflict(
                match duplicate {
                    Duplicate::UserId => "a user with this id already exists",
                    Duplicate::UserEmail => "a user with this email already exists",
                    Duplicate::Account => "this provider account is already linked to a user",
                    Duplicate::Session => "a session with this token already exists",
                    Duplicate::VerificationToken => "this verification token already exists",
                    Duplicate::Authenticator => {
                        "an authenticator with this credentialID already exists"
                    }
                    Duplicate::SigningKey => "this key is already in the key set",
                }
                .into(),
            ),
            StoreError::MissingUser => {
                Error::NotFound("userId does not name an existing user".into())
            }
            StoreError::Unavailable(reason) => Error::Unavailable(reason),
            StoreError::Backend(cause) => Error::Internal(cause),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::ResponseError;

    fn wire(e: StoreError) -> (u16, &'static str, String) {
        let e = Error::from(e);
        (e.status_code().as_u16(), e.code(), e.to_string())
    }

    #[test]
    fn each_store_failure_has_its_status_code_and_words() {
        assert_eq!(
            wire(StoreError::NotFound(Entity::User)),
            (404, "not_found", "no user has this id".into())
        );
        assert_eq!(
            wire(StoreError::Conflict(Duplicate::UserEmail)),
            (
                409,
                "conflict",
                "a user with this email already exists".into()
            )
        );
        assert_eq!(
            wire(StoreError::MissingUser),
            (
                404,
                "not_found",
                "userId does not name an existing user".into()
            )
        );
        let (status, code, text) = wire(StoreError::Unavailable("disk full at /x".into()));
        assert_eq!((status, code), (503, "unavailable"));
        assert!(!text.contains("/x"), "the reason is for the log: {text}");
        let (status, code, text) = wire(StoreError::backend("relation \"users\" is gone"));
        assert_eq!(
            (status, code, text.as_str()),
            (500, "internal", "internal error")
        );
    }

    #[test]
    fn a_retryable_failure_says_when_to_retry() {
        let response = Error::from(StoreError::Unavailable("pool timeout".into())).error_response();
        assert_eq!(response.headers().get("Retry-After").unwrap(), "1");
    }
}
