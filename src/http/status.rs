//! Status codes (RFC 9110 section 15): a type that holds only valid ones, with their reason
//! phrases.

use std::fmt;

/// An HTTP status code: three digits from 100 to 599.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StatusCode(u16);

macro_rules! status_codes {
    ($($name:ident = $code:literal, $reason:literal;)*) => {
        impl StatusCode {
            $(
                #[doc = concat!("`", $code, " ", $reason, "`")]
                pub const $name: StatusCode = StatusCode($code);
            )*

            /// The standard reason phrase (`"Unknown"` for a code without one).
            pub fn reason(self) -> &'static str {
                match self.0 {
                    $($code => $reason,)*
                    _ => "Unknown",
                }
            }
        }
    };
}

status_codes! {
    CONTINUE = 100, "Continue";
    SWITCHING_PROTOCOLS = 101, "Switching Protocols";
    PROCESSING = 102, "Processing";
    EARLY_HINTS = 103, "Early Hints";
    OK = 200, "OK";
    CREATED = 201, "Created";
    ACCEPTED = 202, "Accepted";
    NO_CONTENT = 204, "No Content";
    PARTIAL_CONTENT = 206, "Partial Content";
    MOVED_PERMANENTLY = 301, "Moved Permanently";
    FOUND = 302, "Found";
    SEE_OTHER = 303, "See Other";
    NOT_MODIFIED = 304, "Not Modified";
    TEMPORARY_REDIRECT = 307, "Temporary Redirect";
    PERMANENT_REDIRECT = 308, "Permanent Redirect";
    BAD_REQUEST = 400, "Bad Request";
    UNAUTHORIZED = 401, "Unauthorized";
    FORBIDDEN = 403, "Forbidden";
    NOT_FOUND = 404, "Not Found";
    METHOD_NOT_ALLOWED = 405, "Method Not Allowed";
    NOT_ACCEPTABLE = 406, "Not Acceptable";
    REQUEST_TIMEOUT = 408, "Request Timeout";
    CONFLICT = 409, "Conflict";
    GONE = 410, "Gone";
    LENGTH_REQUIRED = 411, "Length Required";
    PRECONDITION_FAILED = 412, "Precondition Failed";
    CONTENT_TOO_LARGE = 413, "Content Too Large";
    URI_TOO_LONG = 414, "URI Too Long";
    UNSUPPORTED_MEDIA_TYPE = 415, "Unsupported Media Type";
    RANGE_NOT_SATISFIABLE = 416, "Range Not Satisfiable";
    EXPECTATION_FAILED = 417, "Expectation Failed";
    UNPROCESSABLE_CONTENT = 422, "Unprocessable Content";
    TOO_MANY_REQUESTS = 429, "Too Many Requests";
    REQUEST_HEADER_FIELDS_TOO_LARGE = 431, "Request Header Fields Too Large";
    INTERNAL_SERVER_ERROR = 500, "Internal Server Error";
    NOT_IMPLEMENTED = 501, "Not Implemented";
    BAD_GATEWAY = 502, "Bad Gateway";
    SERVICE_UNAVAILABLE = 503, "Service Unavailable";
    GATEWAY_TIMEOUT = 504, "Gateway Timeout";
    HTTP_VERSION_NOT_SUPPORTED = 505, "HTTP Version Not Supported";
}

impl StatusCode {
    /// The code, if it is one (100 to 599).
    pub const fn from_u16(code: u16) -> Option<StatusCode> {
        if code >= 100 && code <= 599 {
            Some(StatusCode(code))
        } else {
            None
        }
    }

    /// The code as a number.
    pub const fn as_u16(self) -> u16 {
        self.0
    }

    /// Whether a response with this status may carry a body (RFC 9110 section 6.4.1: never
    /// for 1xx, 204 and 304).
    pub const fn allows_body(self) -> bool {
        !(self.0 < 200 || self.0 == 204 || self.0 == 304)
    }

    /// Whether it is a redirection (3xx).
    pub const fn is_redirection(self) -> bool {
        self.0 >= 300 && self.0 < 400
    }

    /// Whether it reports an error (4xx or 5xx).
    pub const fn is_error(self) -> bool {
        self.0 >= 400
    }
}

impl fmt::Display for StatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl From<StatusCode> for u16 {
    fn from(status: StatusCode) -> u16 {
        status.0
    }
}

impl TryFrom<u16> for StatusCode {
    type Error = InvalidStatusCode;

    fn try_from(code: u16) -> Result<StatusCode, InvalidStatusCode> {
        StatusCode::from_u16(code).ok_or(InvalidStatusCode(code))
    }
}

impl PartialEq<u16> for StatusCode {
    fn eq(&self, other: &u16) -> bool {
        self.0 == *other
    }
}

/// A number that is not a status code (outside 100 to 599).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InvalidStatusCode(pub u16);

impl fmt::Display for InvalidStatusCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} is not an HTTP status code (100 to 599)", self.0)
    }
}

impl std::error::Error for InvalidStatusCode {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_reasons() {
        // (code, valid, reason, allows a body)
        let rows: &[(u16, bool, &str, bool)] = &[
            (99, false, "", false),
            (100, true, "Continue", false),
            (200, true, "OK", true),
            (204, true, "No Content", false),
            (304, true, "Not Modified", false),
            (418, true, "Unknown", true),
            (599, true, "Unknown", true),
            (600, false, "", false),
        ];
        for &(code, valid, reason, body) in rows {
            let status = StatusCode::from_u16(code);
            assert_eq!(status.is_some(), valid, "{code}");
            if let Some(status) = status {
                assert_eq!(status.reason(), reason, "{code}");
                assert_eq!(status.allows_body(), body, "{code}");
                assert_eq!(status, code);
            }
        }
        assert_eq!(StatusCode::try_from(42), Err(InvalidStatusCode(42)));
    }
}
