//! What a handler returns when it cannot answer normally, so `?` works in handlers.

use crate::http::{Response, StatusCode};
use std::fmt;

/// A handler's failure: the status to answer with and a message.
///
/// Any error type converts into one with `?` (as `500 Internal Server Error`, its message
/// logged, never shown to the client); build a client error with [`Error::bad_request`],
/// [`Error::not_found`] or [`Error::new`], whose message is sent as `{"error": "..."}`.
///
/// ```
/// use margay::{Error, Request, Response};
///
/// fn show(request: &Request) -> margay::Result {
///     let id: u64 = request.param_as("id")?;
///     if id == 0 {
///         return Err(Error::not_found("no such item"));
///     }
///     Ok(Response::json(&serde_json::json!({ "id": id })))
/// }
/// ```
pub struct Error {
    status: StatusCode,
    message: String,
}

/// What handlers return: a response, or an [`Error`].
pub type Result<T = Response, E = Error> = std::result::Result<T, E>;

impl Error {
    /// An error answered with `status` and `message`. For a server error (5xx) the message is
    /// logged, and the client gets only the status.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Error {
        Error {
            status,
            message: message.into(),
        }
    }

    /// `400 Bad Request` with `message`.
    pub fn bad_request(message: impl Into<String>) -> Error {
        Error::new(StatusCode::BAD_REQUEST, message)
    }

    /// `404 Not Found` with `message`.
    pub fn not_found(message: impl Into<String>) -> Error {
        Error::new(StatusCode::NOT_FOUND, message)
    }

    /// `500 Internal Server Error`; `message` is logged, not sent.
    pub fn internal(message: impl Into<String>) -> Error {
        Error::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The status it is answered with.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The response for the client: `{"error": message}` for a client error, only the status
    /// for a server error (whose message goes to the log, with `context`).
    pub(crate) fn into_response(self, context: &dyn fmt::Display) -> Response {
        let shown = if self.status.as_u16() >= 500 {
            log::error!("{context}: {}", self.message);
            self.status.reason().to_ascii_lowercase()
        } else {
            self.message
        };
        Response::json(&serde_json::json!({ "error": shown })).with_status(self.status)
    }
}

impl<E: std::error::Error + Send + Sync + 'static> From<E> for Error {
    fn from(error: E) -> Error {
        let mut message = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        Error::internal(message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.status, self.message)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({}, {:?})", self.status, self.message)
    }
}

/// What a handler may return: a [`Response`], or a [`Result`] of one.
pub trait IntoResponse {
    /// The response, or the error to answer with.
    fn into_result(self) -> Result;
}

impl IntoResponse for Response {
    fn into_result(self) -> Result {
        Ok(self)
    }
}

impl IntoResponse for Result {
    fn into_result(self) -> Result {
        self
    }
}
