//! Why a request is refused, and the one place that maps each reason to a status code.

use super::status::StatusCode;

/// A problem with a request found while parsing or framing it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestError {
    /// The head is not valid HTTP/1.1 syntax (bad token, bare CR, control character, ...).
    Malformed,
    /// `Host` missing on HTTP/1.1, repeated, or not `uri-host [ ":" port ]`.
    BadHost,
    /// `Content-Length` is not a number (or a list of one number), or two values disagree.
    BadContentLength,
    /// `Transfer-Encoding` that is not a list ending in one `chunked`, on HTTP/1.0, or together
    /// with `Content-Length`: the body cannot be framed.
    BadTransferEncoding,
    /// `Transfer-Encoding` naming a coding before `chunked` that margay does not decode.
    TransferCodingNotImplemented,
    /// A chunked body that does not follow the grammar.
    BadChunk,
    /// The request-target cannot be decoded (bad escape, NUL, unsupported form, escapes root).
    BadTarget,
    /// The request-target is longer than the limit.
    TargetTooLong,
    /// The head is larger than the limit or has too many fields.
    HeadTooLarge,
    /// A request body is larger than the limit.
    BodyTooLarge,
    /// `Expect` asks for something other than `100-continue`.
    ExpectationFailed,
    /// The method is not one margay implements.
    MethodNotImplemented,
    /// The protocol version is not HTTP/1.0 or HTTP/1.1.
    VersionNotSupported,
    /// The head (or a body) did not arrive in time.
    Timeout,
}

impl RequestError {
    /// The status code that answers this problem.
    pub fn status(self) -> StatusCode {
        match self {
            RequestError::Malformed
            | RequestError::BadHost
            | RequestError::BadContentLength
            | RequestError::BadTransferEncoding
            | RequestError::BadChunk
            | RequestError::BadTarget => StatusCode::BAD_REQUEST,
            RequestError::Timeout => StatusCode::REQUEST_TIMEOUT,
            RequestError::BodyTooLarge => StatusCode::CONTENT_TOO_LARGE,
            RequestError::TargetTooLong => StatusCode::URI_TOO_LONG,
            RequestError::ExpectationFailed => StatusCode::EXPECTATION_FAILED,
            RequestError::HeadTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            RequestError::MethodNotImplemented | RequestError::TransferCodingNotImplemented => {
                StatusCode::NOT_IMPLEMENTED
            }
            RequestError::VersionNotSupported => StatusCode::HTTP_VERSION_NOT_SUPPORTED,
        }
    }

    /// Whether the connection must close after the error response: true whenever the end of
    /// the request cannot be trusted, so nothing after it could be read as a new request. (A
    /// client with an unmet expectation may be holding its body back, as for `100-continue`.)
    pub fn closes(self) -> bool {
        !matches!(
            self,
            RequestError::BadHost | RequestError::BadTarget | RequestError::MethodNotImplemented
        )
    }
}
