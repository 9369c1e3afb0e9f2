//! Cross-origin resource sharing for the paths of a rule: preflight requests answered from
//! the rule, and the `Access-Control-*` fields added to the responses it allows.

use super::RulesError;
use super::fields::is_token;
use crate::http::{Method, RequestHead, Response, StatusCode};
use std::time::Duration;

/// Which origins may read the responses of a rule's paths from a script, and how.
///
/// ```
/// use margay::{Cors, Method, Rule};
/// use std::time::Duration;
///
/// let cors = Cors::new(["https://app.example"])?
///     .methods(&[Method::Get, Method::Post])
///     .allow_headers(["Content-Type"])?
///     .max_age(Duration::from_secs(600));
/// let rule = Rule::new("/api/**")?.cors(cors);
/// # Ok::<(), margay::RulesError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Cors {
    /// Exact origins; empty when any origin is allowed.
    origins: Vec<String>,
    any_origin: bool,
    methods: Vec<Method>,
    headers: Vec<String>,
    any_header: bool,
    expose: Vec<String>,
    max_age: Option<u64>,
    credentials: bool,
}

impl Cors {
    /// Allows these origins, each `scheme://host[:port]` exactly as browsers send it in
    /// `Origin`, or `*` for any. Allows `GET` and `HEAD` until [`Cors::methods`] says more.
    pub fn new<I, S>(origins: I) -> Result<Cors, RulesError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut cors = Cors {
            origins: Vec::new(),
            any_origin: false,
            methods: vec![Method::Get, Method::Head],
            headers: Vec::new(),
            any_header: false,
            expose: Vec::new(),
            max_age: None,
            credentials: false,
        };
        for origin in origins {
            let origin = origin.as_ref();
            if origin == "*" {
                cors.any_origin = true;
            } else {
                check_origin(origin).map_err(|m| RulesError::new("cors.origins", m))?;
                cors.origins.push(origin.to_string());
            }
        }
        if !cors.any_origin && cors.origins.is_empty() {
            return Err(RulesError::new(
                "cors.origins",
                "expected at least one origin, or \"*\"",
            ));
        }
        Ok(cors)
    }

    /// The methods a preflight request may ask for.
    pub fn methods(mut self, methods: &[Method]) -> Cors {
        self.methods = methods.to_vec();
        self
    }

    /// The request header fields a preflight request may ask for (`*`: any, not with
    /// credentials).
    pub fn allow_headers<I, S>(mut self, headers: I) -> Result<Cors, RulesError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        self.headers = token_list(headers, "cors.headers", &mut self.any_header)?;
        self.check_credentials()?;
        Ok(self)
    }

    /// The response header fields a script may read beyond the safelisted ones.
    pub fn expose_headers<I, S>(mut self, headers: I) -> Result<Cors, RulesError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut any = false;
        self.expose = token_list(headers, "cors.expose_headers", &mut any)?;
        if any {
            self.expose.push("*".into());
        }
        Ok(self)
    }

    /// How long a browser may cache a preflight answer (`Access-Control-Max-Age`).
    pub fn max_age(mut self, age: Duration) -> Cors {
        self.max_age = Some(age.as_secs());
        self
    }

    /// Whether requests with cookies or credentials may read the response. Refused with `*`
    /// as the origin or the allowed headers, which the Fetch standard forbids with it.
    pub fn credentials(mut self, allowed: bool) -> Result<Cors, RulesError> {
        self.credentials = allowed;
        self.check_credentials()?;
        Ok(self)
    }

    fn check_credentials(&self) -> Result<(), RulesError> {
        if self.credentials && (self.any_origin || self.any_header) {
            return Err(RulesError::new(
                "cors.credentials",
                "cannot be true with \"*\" as an origin or header: list them",
            ));
        }
        Ok(())
    }

    fn allows(&self, origin: &str) -> bool {
        self.any_origin || self.origins.iter().any(|o| o == origin)
    }

    /// The answer to a preflight request (`OPTIONS` with `Origin` and
    /// `Access-Control-Request-Method`), or `None` when the rule does not allow it: the request
    /// is then answered as any other `OPTIONS`, and the browser sees no permission.
    pub(crate) fn preflight(&self, head: &RequestHead) -> Option<Response> {
        let origin = head.header("origin")?;
        let method = Method::from_token(head.header("access-control-request-method")?)?;
        if !self.allows(origin) || !self.methods.contains(&method) {
            return None;
        }
        let requested: Vec<&str> = head
            .headers_named("access-control-request-headers")
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .collect();
        if !self.any_header
            && !requested
                .iter()
                .all(|h| self.headers.iter().any(|a| a.eq_ignore_ascii_case(h)))
        {
            return None;
        }
        let mut response = Response::new(StatusCode::NO_CONTENT);
        self.allow_origin(origin, &mut response);
        let methods: Vec<&str> = self.methods.iter().map(|m| m.as_str()).collect();
        response = response.header("Access-Control-Allow-Methods", methods.join(", "));
        if self.any_header {
            if !requested.is_empty() {
                response = response.header("Access-Control-Allow-Headers", requested.join(", "));
            }
        } else if !self.headers.is_empty() {
            response = response.header("Access-Control-Allow-Headers", self.headers.join(", "));
        }
        if let Some(age) = self.max_age {
            response = response.header("Access-Control-Max-Age", age.to_string());
        }
        add_vary(
            &mut response,
            "Access-Control-Request-Method, Access-Control-Request-Headers",
        );
        Some(response)
    }

    /// Adds what a response to an actual (not preflight) request needs.
    pub(crate) fn decorate(&self, head: &RequestHead, response: &mut Response) {
        match head.header("origin") {
            Some(origin) if self.allows(origin) => {
                self.allow_origin(origin, response);
                if !self.expose.is_empty() {
                    set_header(
                        response,
                        "Access-Control-Expose-Headers",
                        self.expose.join(", "),
                    );
                }
            }
            // The answer would differ with another Origin: caches must know.
            _ if !self.any_origin => add_vary(response, "Origin"),
            _ => {}
        }
    }

    fn allow_origin(&self, origin: &str, response: &mut Response) {
        if self.any_origin && !self.credentials {
            set_header(response, "Access-Control-Allow-Origin", "*".into());
            return;
        }
        set_header(response, "Access-Control-Allow-Origin", origin.to_string());
        if self.credentials {
            set_header(response, "Access-Control-Allow-Credentials", "true".into());
        }
        add_vary(response, "Origin");
    }

    /// The rule as a TOML inline table.
    pub(crate) fn to_toml(&self) -> String {
        let mut origins: Vec<String> = self.origins.iter().map(|o| super::quote(o)).collect();
        if self.any_origin {
            origins.push("\"*\"".into());
        }
        let list = |items: &[String]| {
            let quoted: Vec<String> = items.iter().map(|i| super::quote(i)).collect();
            format!("[{}]", quoted.join(", "))
        };
        let methods: Vec<String> = self.methods.iter().map(|m| m.as_str().into()).collect();
        let mut headers = self.headers.clone();
        if self.any_header {
            headers.push("*".into());
        }
        let mut out = format!(
            "{{ origins = [{}], methods = {}",
            origins.join(", "),
            list(&methods)
        );
        if !headers.is_empty() {
            out.push_str(&format!(", headers = {}", list(&headers)));
        }
        if !self.expose.is_empty() {
            out.push_str(&format!(", expose_headers = {}", list(&self.expose)));
        }
        if let Some(age) = self.max_age {
            out.push_str(&format!(", max_age = {age}"));
        }
        if self.credentials {
            out.push_str(", credentials = true");
        }
        out.push_str(" }");
        out
    }
}

/// Checks an origin: `http` or `https`, a host, an optional port, nothing after.
fn check_origin(origin: &str) -> Result<(), String> {
    let host = origin
        .strip_prefix("https://")
        .or_else(|| origin.strip_prefix("http://"))
        .ok_or_else(|| format!("{origin:?} is not an origin such as https://app.example"))?;
    let valid = !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b));
    if !valid {
        return Err(format!(
            "{origin:?} is not an origin such as https://app.example (no path, no trailing /)"
        ));
    }
    Ok(())
}

fn token_list<I, S>(items: I, key: &str, any: &mut bool) -> Result<Vec<String>, RulesError>
where
    I: IntoIterator<Item = S>,
    S: AsRef<str>,
{
    let mut out = Vec::new();
    *any = false;
    for item in items {
        let item = item.as_ref();
        if item == "*" {
            *any = true;
        } else if is_token(item) {
            out.push(item.to_string());
        } else {
            return Err(RulesError::new(
                key,
                format!("{item:?} is not a header field name"),
            ));
        }
    }
    Ok(out)
}

/// Sets `name` to `value`, replacing a value the response already has.
pub(crate) fn set_header(response: &mut Response, name: &'static str, value: String) {
    match response
        .headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
    {
        Some((_, v)) => *v = value.into(),
        None => response.headers.push((name.into(), value.into())),
    }
}

/// Adds `tokens` to the response's `Vary`, once.
pub(crate) fn add_vary(response: &mut Response, tokens: &'static str) {
    match response
        .headers
        .iter_mut()
        .find(|(n, _)| n.eq_ignore_ascii_case("vary"))
    {
        Some((_, v)) => {
            let has = |t: &str| v.split(',').any(|x| x.trim().eq_ignore_ascii_case(t));
            let missing: Vec<&str> = tokens.split(", ").filter(|t| !has(t)).collect();
            if !missing.is_empty() {
                *v = format!("{v}, {}", missing.join(", ")).into();
            }
        }
        None => response.headers.push(("Vary".into(), tokens.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::files::test_request;

    fn fields(response: &Response) -> Vec<String> {
        response
            .headers()
            .map(|(n, v)| format!("{n}: {v}"))
            .collect()
    }

    #[test]
    fn preflights() {
        let cors = Cors::new(["https://app.example"])
            .unwrap()
            .methods(&[Method::Get, Method::Post])
            .allow_headers(["Content-Type", "X-Token"])
            .unwrap()
            .max_age(Duration::from_secs(600));
        // (request header lines, expected fields or None when not allowed)
        let rows: &[(&str, Option<&[&str]>)] = &[
            (
                "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\
                 Access-Control-Request-Headers: content-type, x-token\r\n",
                Some(&[
                    "Access-Control-Allow-Origin: https://app.example",
                    "Vary: Origin, Access-Control-Request-Method, Access-Control-Request-Headers",
                    "Access-Control-Allow-Methods: GET, POST",
                    "Access-Control-Allow-Headers: Content-Type, X-Token",
                    "Access-Control-Max-Age: 600",
                ]),
            ),
            (
                "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n",
                None,
            ),
            (
                "Origin: https://app.example\r\nAccess-Control-Request-Method: DELETE\r\n",
                None,
            ),
            (
                "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n\
                 Access-Control-Request-Headers: x-other\r\n",
                None,
            ),
            ("Origin: https://app.example\r\n", None),
        ];
        for (lines, expected) in rows {
            let got = cors.preflight(&test_request("OPTIONS", "/api/x", lines));
            match (got, expected) {
                (None, None) => {}
                (Some(response), Some(expected)) => {
                    assert_eq!(response.status, 204);
                    let mut got = fields(&response);
                    let mut expected: Vec<String> =
                        expected.iter().map(|s| s.to_string()).collect();
                    got.sort();
                    expected.sort();
                    assert_eq!(got, expected, "{lines:?}");
                }
                (got, _) => panic!("{lines:?}: {got:?}"),
            }
        }
    }

    #[test]
    fn actual_requests() {
        let listed = Cors::new(["https://app.example"])
            .unwrap()
            .credentials(true)
            .unwrap()
            .expose_headers(["X-Total"])
            .unwrap();
        let any = Cors::new(["*"]).unwrap();
        // (rule, Origin, expected fields)
        let rows: &[(&Cors, Option<&str>, &[&str])] = &[
            (
                &listed,
                Some("https://app.example"),
                &[
                    "Vary: Accept, Origin",
                    "Access-Control-Allow-Origin: https://app.example",
                    "Access-Control-Allow-Credentials: true",
                    "Access-Control-Expose-Headers: X-Total",
                ],
            ),
            (
                &listed,
                Some("https://evil.example"),
                &["Vary: Accept, Origin"],
            ),
            (&listed, None, &["Vary: Accept, Origin"]),
            (
                &any,
                Some("https://x.example"),
                &["Vary: Accept", "Access-Control-Allow-Origin: *"],
            ),
            (&any, None, &["Vary: Accept"]),
        ];
        for (cors, origin, expected) in rows {
            let line = origin.map_or(String::new(), |o| format!("Origin: {o}\r\n"));
            let mut response = Response::ok().header("Vary", "Accept");
            cors.decorate(&test_request("GET", "/api/x", &line), &mut response);
            let mut got = fields(&response);
            let mut expected: Vec<String> = expected.iter().map(|s| s.to_string()).collect();
            got.sort();
            expected.sort();
            assert_eq!(got, expected, "{origin:?}");
        }
    }

    #[test]
    fn refused_settings() {
        assert!(Cors::new(Vec::<String>::new()).is_err());
        assert!(Cors::new(["https://app.example/"]).is_err());
        assert!(Cors::new(["app.example"]).is_err());
        assert!(Cors::new(["null"]).is_err());
        assert!(Cors::new(["*"]).unwrap().credentials(true).is_err());
        assert!(
            Cors::new(["https://a.example"])
                .unwrap()
                .allow_headers(["*"])
                .unwrap()
                .credentials(true)
                .is_err()
        );
        assert!(
            Cors::new(["https://a.example"])
                .unwrap()
                .allow_headers(["a b"])
                .is_err()
        );
        assert!(Cors::new(["http://localhost:3000", "https://[::1]:8443"]).is_ok());
    }
}
