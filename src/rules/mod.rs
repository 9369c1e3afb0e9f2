//! Site rules: what a site says beyond the server's options. Response headers, CORS,
//! redirects and basic auth by path pattern; custom error pages; the single-page-app
//! fallback; directory listings. Built in code or read from TOML, checked as they are built,
//! and compiled into one glob matcher.
//!
//! A request pays only for the kinds of rule that exist: with none, one branch. Header rules
//! for static files are folded into the file cache's encoded header lines, so a cached file
//! costs nothing more per request; auth, CORS and forced redirects match the path once per
//! request; other redirects only when no file answers.

mod auth;
mod cors;
mod fields;
mod pattern;
mod redirect;
mod reload;
mod toml_file;

pub use cors::Cors;
pub(crate) use cors::add_vary;
pub use reload::RulesHandle;
pub(crate) use reload::RulesSlot;

use crate::http::{Method, RequestHead, Response, StatusCode};
use auth::{BasicAuth, Verdict};
use globset::{GlobSet, GlobSetBuilder};
use pattern::Pattern;
use redirect::Redirect;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::time::Instant;

/// What is wrong with a rule, and where: the key it is about (as the TOML file spells it,
/// e.g. `rule[2].redirect.status`) and, for rules read from TOML, the line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesError {
    line: Option<usize>,
    key: String,
    message: String,
}

impl RulesError {
    /// An error about `key` (relative to where it is placed later by [`RulesError::within`]).
    pub(crate) fn new(key: impl Into<String>, message: impl Into<String>) -> RulesError {
        RulesError {
            line: None,
            key: key.into(),
            message: message.into(),
        }
    }

    /// The 1-based line of the TOML text, for rules read from one.
    pub fn line(&self) -> Option<usize> {
        self.line
    }

    /// The key the error is about, e.g. `rule[2].redirect.status` (empty for a TOML syntax
    /// error).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// What is wrong.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Places the error: `prefix` goes before its key (`rule[2]` + `redirect.status`).
    pub(crate) fn within(mut self, prefix: &str, line: usize) -> RulesError {
        self.key = match (prefix.is_empty(), self.key.is_empty()) {
            (true, _) => self.key,
            (false, true) => prefix.to_string(),
            (false, false) => format!("{prefix}.{}", self.key),
        };
        self.line.get_or_insert(line);
        self
    }
}

impl fmt::Display for RulesError {
    /// `LINE: KEY: MESSAGE`, leaving out what is unknown.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(line) = self.line {
            write!(f, "{line}: ")?;
        }
        if !self.key.is_empty() {
            write!(f, "{}: ", self.key)?;
        }
        f.write_str(&self.message)
    }
}

impl std::error::Error for RulesError {}

/// What to do for the request paths that match a pattern.
///
/// A pattern is a glob over the decoded request path: `*` and `?` stay within a segment,
/// `**` spans segments (`/assets/**` is everything under `/assets/`, and `/assets` itself),
/// `{a,b}` and `[ab]` as usual. A rule holds any of: headers, a redirect, [`Cors`], basic
/// auth.
///
/// ```
/// use margay::Rule;
///
/// let assets = Rule::new("/assets/**")?
///     .header("Cache-Control", "public, max-age=31536000, immutable")?;
/// let moved = Rule::new("/old/*")?.redirect("/new/{1}", 301)?;
/// # Ok::<(), margay::RulesError>(())
/// ```
#[derive(Debug, Clone)]
pub struct Rule {
    pattern: Pattern,
    headers: Vec<(String, String)>,
    redirect: Option<Redirect>,
    cors: Option<Cors>,
    auth: Option<BasicAuth>,
}

impl Rule {
    /// A rule for the paths matching `pattern`, which starts with `/` or `**`.
    pub fn new(pattern: &str) -> Result<Rule, RulesError> {
        Ok(Rule {
            pattern: Pattern::parse(pattern).map_err(|m| RulesError::new("path", m))?,
            headers: Vec::new(),
            redirect: None,
            cors: None,
            auth: None,
        })
    }

    /// Adds `name: value` to responses below 400, replacing a value the response has (a
    /// file's `Content-Type`, a handler's `Cache-Control`). Refuses a name that is not a
    /// token, a value with anything but visible ASCII, spaces and tabs, and the fields the
    /// server writes itself (`Content-Length`, `Transfer-Encoding`, `Connection`, `Date`,
    /// `Server`, `ETag`, `Last-Modified`, ...).
    pub fn header(mut self, name: &str, value: &str) -> Result<Rule, RulesError> {
        fields::check_rule_header(name, value)
            .map_err(|m| RulesError::new(format!("headers.{name}"), m))?;
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
        self.headers.push((name.to_string(), value.to_string()));
        Ok(self)
    }

    /// Redirects requests that no file or handler answers to `to` with `status` (301, 302,
    /// 307 or 308). `to` is a path or an `http(s)://` URL; `{1}`, `{2}`, ... are what the
    /// pattern's wildcards matched, percent-encoded. The request's query is passed on unless
    /// `to` has one.
    pub fn redirect(self, to: &str, status: u16) -> Result<Rule, RulesError> {
        self.with_redirect(to, status, false)
    }

    /// Like [`Rule::redirect`], but before anything else answers: files and handlers at
    /// matching paths are never reached.
    pub fn forced_redirect(self, to: &str, status: u16) -> Result<Rule, RulesError> {
        self.with_redirect(to, status, true)
    }

    fn with_redirect(mut self, to: &str, status: u16, force: bool) -> Result<Rule, RulesError> {
        let captures = self.pattern.captures_available();
        let redirect = Redirect::parse(to, status, force, captures)
            .map_err(|(key, m)| RulesError::new(format!("redirect.{key}"), m))?;
        self.redirect = Some(redirect);
        Ok(self)
    }

    /// Answers CORS preflight requests for the matching paths and adds the
    /// `Access-Control-*` fields to their responses.
    pub fn cors(mut self, cors: Cors) -> Rule {
        self.cors = Some(cors);
        self
    }

    /// Requires the credentials of a user in `users`, an htpasswd-style file of `name:hash`
    /// lines with bcrypt hashes (`htpasswd -B`), read now. Refuses a file every user of the
    /// machine can read, and any other kind of hash. A client's first request costs one
    /// bcrypt check on the worker's thread; its credentials are then remembered (as a keyed
    /// hash) for five minutes.
    pub fn basic_auth(mut self, realm: &str, users: impl AsRef<Path>) -> Result<Rule, RulesError> {
        let auth = BasicAuth::load(realm, users.as_ref())
            .map_err(|(key, m)| RulesError::new(format!("basic_auth.{key}"), m))?;
        self.auth = Some(auth);
        Ok(self)
    }

    /// The pattern as written.
    pub fn pattern(&self) -> &str {
        self.pattern.as_str()
    }

    fn does_something(&self) -> bool {
        !self.headers.is_empty()
            || self.redirect.is_some()
            || self.cors.is_some()
            || self.auth.is_some()
    }

    fn to_toml(&self) -> String {
        let mut out = format!("[[rule]]\npath = {}\n", quote(self.pattern.as_str()));
        if !self.headers.is_empty() {
            let pairs: Vec<String> = self
                .headers
                .iter()
                .map(|(n, v)| format!("{} = {}", quote(n), quote(v)))
                .collect();
            out.push_str(&format!("headers = {{ {} }}\n", pairs.join(", ")));
        }
        if let Some(redirect) = &self.redirect {
            out.push_str(&format!(
                "redirect = {{ to = {}, status = {}{} }}\n",
                quote(redirect.to()),
                redirect.status(),
                if redirect.is_forced() {
                    ", force = true"
                } else {
                    ""
                }
            ));
        }
        if let Some(cors) = &self.cors {
            out.push_str(&format!("cors = {}\n", cors.to_toml()));
        }
        if let Some(auth) = &self.auth {
            out.push_str(&format!(
                "basic_auth = {{ realm = {}, users = {} }}  # {} user(s)\n",
                quote(auth.realm()),
                quote(&auth.file().display().to_string()),
                auth.user_count()
            ));
        }
        out
    }
}

/// Which kinds of rule a set holds, so that a request pays only for those.
#[derive(Debug, Clone, Copy, Default)]
struct Kinds {
    headers: bool,
    redirects: bool,
    forced: bool,
    cors: bool,
    auth: bool,
}

/// A site's rules: pattern rules, error pages, the single-page-app fallback and directory
/// listings. Set them with [`Config::site_rules`](crate::Config::site_rules); replace them on
/// a running server with a [`RulesHandle`].
///
/// Every rule whose pattern matches the request path applies, in order. Headers add up (a
/// later rule's value for a field replaces an earlier one's); for what can happen only once,
/// the first matching rule that has it decides: its basic auth, its CORS settings, its
/// redirect. A request is handled in this order: a CORS preflight is answered; basic auth is
/// checked (401 without valid credentials); a forced redirect answers; handlers, then static
/// files answer; where no file exists, a redirect, then the fallback, then the 404 page.
///
/// ```
/// use margay::{Rule, SiteRules};
///
/// let rules = SiteRules::new()
///     .rule(Rule::new("/assets/**")?.header("Cache-Control", "max-age=31536000")?)?
///     .error_page(404, "/404.html")?
///     .fallback("/index.html")?
///     .list_directories(false);
/// # Ok::<(), margay::RulesError>(())
/// ```
#[derive(Clone, Default)]
pub struct SiteRules {
    rules: Vec<Rule>,
    matcher: GlobSet,
    /// For each glob of the matcher, the index of its rule (non-decreasing).
    owners: Vec<usize>,
    error_pages: BTreeMap<u16, String>,
    fallback: Option<String>,
    list_directories: bool,
    kinds: Kinds,
}

impl fmt::Debug for SiteRules {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SiteRules")
            .field("rules", &self.rules)
            .field("error_pages", &self.error_pages)
            .field("fallback", &self.fallback)
            .field("list_directories", &self.list_directories)
            .finish()
    }
}

impl SiteRules {
    /// No rules, no error pages, no fallback, no listings: what a server has by default.
    pub fn new() -> SiteRules {
        SiteRules::default()
    }

    /// Reads the `[error_pages]` table and the `[[rule]]` array of a TOML document (see
    /// `docs/configuration.md`); its other keys are left alone, so the rules can share a file
    /// with other settings. Relative users files of basic auth are found from `base`. An
    /// error names the line and the key.
    ///
    /// ```
    /// let rules = margay::SiteRules::from_toml(
    ///     r#"
    ///     listen = "127.0.0.1:8080"   # not a rule: left alone
    ///
    ///     [error_pages]
    ///     404 = "/404.html"
    ///
    ///     [[rule]]
    ///     path = "/old/*"
    ///     redirect = { to = "/new/{1}", status = 308 }
    ///     "#,
    ///     std::path::Path::new("."),
    /// )?;
    /// assert_eq!(rules.len(), 1);
    /// # Ok::<(), margay::RulesError>(())
    /// ```
    pub fn from_toml(text: &str, base: &Path) -> Result<SiteRules, RulesError> {
        toml_file::parse(text, base)
    }

    /// Adds a rule after the ones already there. Refuses a rule that does nothing.
    pub fn rule(mut self, rule: Rule) -> Result<SiteRules, RulesError> {
        if !rule.does_something() {
            return Err(RulesError::new(
                "",
                "a rule needs headers, redirect, cors or basic_auth",
            ));
        }
        self.rules.push(rule);
        self.compile()?;
        Ok(self)
    }

    /// Serves the file at `path` (a path under the root such as `/404.html`) with `status`
    /// (400 to 599) in place of the server's own page for that status. Handlers' own bodies
    /// are left alone, unless built with [`Response::error`].
    pub fn error_page(mut self, status: u16, path: &str) -> Result<SiteRules, RulesError> {
        let key = format!("error_pages.{status}");
        if !(400..=599).contains(&status) {
            return Err(RulesError::new(key, "expected an error status, 400 to 599"));
        }
        check_site_path(path).map_err(|m| RulesError::new(key, m))?;
        self.error_pages.insert(status, path.to_string());
        Ok(self)
    }

    /// Serves the file at `path` (such as `/index.html`) with 200 for the `GET` and `HEAD`
    /// requests a single-page app routes itself: no file or redirect at the path, no handler
    /// route covering it, no `.` in its last segment and no segment starting with `.`, and
    /// `text/html` (or `text/*`) named in the `Accept` field, as browsers do when they
    /// navigate (a bare `*/*` does not count). These answers say `Vary: Accept`.
    pub fn fallback(mut self, path: &str) -> Result<SiteRules, RulesError> {
        check_site_path(path).map_err(|m| RulesError::new("fallback", m))?;
        self.fallback = Some(path.to_string());
        Ok(self)
    }

    /// Whether a directory without `index.html` is answered with a listing of its files
    /// (HTML, or JSON for clients that ask for `application/json`). Default off.
    pub fn list_directories(mut self, on: bool) -> SiteRules {
        self.list_directories = on;
        self
    }

    /// How many pattern rules there are.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no pattern rules, error pages, fallback or listings.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
            && self.error_pages.is_empty()
            && self.fallback.is_none()
            && !self.list_directories
    }

    /// The error pages and pattern rules as TOML, as `margay --check-config` prints them
    /// (the fallback and listings are options of their own there).
    pub fn to_toml(&self) -> String {
        let mut out = String::new();
        if !self.error_pages.is_empty() {
            out.push_str("[error_pages]\n");
            for (status, path) in &self.error_pages {
                out.push_str(&format!("{status} = {}\n", quote(path)));
            }
        }
        for rule in &self.rules {
            if !out.is_empty() {
                out.push('\n');
            }
            out.push_str(&rule.to_toml());
        }
        out
    }

    fn compile(&mut self) -> Result<(), RulesError> {
        let mut builder = GlobSetBuilder::new();
        self.owners.clear();
        self.kinds = Kinds::default();
        for (i, rule) in self.rules.iter().enumerate() {
            for glob in rule.pattern.globs() {
                builder.add(glob.clone());
                self.owners.push(i);
            }
            let kinds = &mut self.kinds;
            kinds.headers |= !rule.headers.is_empty();
            kinds.cors |= rule.cors.is_some();
            kinds.auth |= rule.auth.is_some();
            match &rule.redirect {
                Some(r) if r.is_forced() => kinds.forced = true,
                Some(_) => kinds.redirects = true,
                None => {}
            }
        }
        self.matcher = builder.build().map_err(|e| {
            RulesError::new("path", format!("the patterns cannot be compiled: {e}"))
        })?;
        Ok(())
    }
}

/// What the server asks of the rules while it answers.
impl SiteRules {
    /// The rules matching `path`, in order.
    fn matching(&self, path: &str) -> Vec<usize> {
        let mut hits = self.matcher.matches(path);
        for hit in &mut hits {
            *hit = self.owners[*hit];
        }
        hits.dedup();
        hits
    }

    /// The first of `hits` that has what `pick` takes.
    fn first<'a, T>(
        &'a self,
        hits: &[usize],
        pick: impl Fn(&'a Rule) -> Option<&'a T>,
    ) -> Option<(&'a Rule, &'a T)> {
        hits.iter()
            .map(|&i| &self.rules[i])
            .find_map(|rule| pick(rule).map(|t| (rule, t)))
    }

    /// The answer given before any handler or file is looked at: a CORS preflight, a 401, a
    /// forced redirect. `None` to go on.
    pub(crate) fn before_route(&self, head: &RequestHead) -> Option<Response> {
        let kinds = self.kinds;
        if !(kinds.cors || kinds.auth || kinds.forced) {
            return None;
        }
        let path = head.path();
        let hits = self.matching(path);
        if hits.is_empty() {
            return None;
        }
        if kinds.cors
            && is_preflight(head)
            && let Some((_, cors)) = self.first(&hits, |r| r.cors.as_ref())
            && let Some(response) = cors.preflight(head)
        {
            return Some(response);
        }
        if let Some((_, auth)) = self.first(&hits, |r| r.auth.as_ref()) {
            match auth.admits(head, Instant::now()) {
                Verdict::Admitted => {}
                Verdict::Refused => {
                    // Quoted: a decoded path may hold control characters.
                    log::debug!(
                        "basic auth: no valid credentials for {path:?} (realm {:?})",
                        auth.realm()
                    );
                    return Some(
                        Response::error(StatusCode::UNAUTHORIZED)
                            .header("WWW-Authenticate", auth.challenge().to_string()),
                    );
                }
                Verdict::Busy(retry_after) => {
                    log::debug!(
                        "basic auth: credentials for {path:?} not checked, bcrypt's share of \
                         the time is used up (realm {:?})",
                        auth.realm()
                    );
                    return Some(
                        Response::error(StatusCode::SERVICE_UNAVAILABLE)
                            .header("Retry-After", retry_after.to_string()),
                    );
                }
            }
        }
        let (rule, redirect) =
            self.first(&hits, |r| r.redirect.as_ref().filter(|r| r.is_forced()))?;
        self.redirect_response(rule, redirect, head)
    }

    /// A redirect for a request no file answered, if a rule has one.
    pub(crate) fn redirect_on_miss(&self, head: &RequestHead) -> Option<Response> {
        if !self.kinds.redirects {
            return None;
        }
        let hits = self.matching(head.path());
        let (rule, redirect) =
            self.first(&hits, |r| r.redirect.as_ref().filter(|r| !r.is_forced()))?;
        self.redirect_response(rule, redirect, head)
    }

    fn redirect_response(
        &self,
        rule: &Rule,
        redirect: &Redirect,
        head: &RequestHead,
    ) -> Option<Response> {
        // The glob matched; a pattern the capturing matcher cannot follow has no captures.
        let captures = rule.pattern.captures(head.path()).unwrap_or_default();
        let location = redirect.location(&captures, head.query());
        let mut response = match Response::try_redirect(redirect.status(), location) {
            Ok(response) => response,
            Err(e) => {
                log::warn!("redirect rule {:?}: {e}", rule.pattern());
                return None;
            }
        };
        self.apply_headers(head.path(), &mut response);
        Some(response)
    }

    /// Adds the header rules for `path` to a response built for this request (below 400).
    pub(crate) fn apply_headers(&self, path: &str, response: &mut Response) {
        if !self.kinds.headers || response.status.is_error() {
            return;
        }
        for (name, value) in self.headers_for(path) {
            match response
                .headers
                .iter_mut()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
            {
                Some((_, v)) => *v = value.to_string().into(),
                None => response
                    .headers
                    .push((name.to_string().into(), value.to_string().into())),
            }
        }
    }

    /// The header rules for a file served at `path`, encoded once for the file cache: a
    /// `Content-Type` of their own, and the other lines.
    pub(crate) fn file_headers(&self, path: &str) -> Option<(Option<String>, Vec<u8>)> {
        if !self.kinds.headers {
            return None;
        }
        let headers = self.headers_for(path);
        if headers.is_empty() {
            return None;
        }
        let mut content_type = None;
        let mut lines = Vec::new();
        for (name, value) in headers {
            if name.eq_ignore_ascii_case("content-type") {
                content_type = Some(value.to_string());
                continue;
            }
            for piece in [name, ": ", value, "\r\n"] {
                lines.extend_from_slice(piece.as_bytes());
            }
        }
        Some((content_type, lines))
    }

    /// Every header of the rules matching `path`, a later rule's value replacing an earlier.
    fn headers_for(&self, path: &str) -> Vec<(&str, &str)> {
        let mut out: Vec<(&str, &str)> = Vec::new();
        for i in self.matching(path) {
            for (name, value) in &self.rules[i].headers {
                match out.iter_mut().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
                    Some(slot) => *slot = (name, value),
                    None => out.push((name, value)),
                }
            }
        }
        out
    }

    /// Adds the CORS fields to the response to an actual (not preflight) request.
    pub(crate) fn decorate_cors(&self, head: &RequestHead, response: &mut Response) {
        if !self.kinds.cors || is_preflight(head) {
            return;
        }
        let hits = self.matching(head.path());
        if let Some((_, cors)) = self.first(&hits, |r| r.cors.as_ref()) {
            cors.decorate(head, response);
        }
    }

    /// The page to serve with `status`, if one is set.
    pub(crate) fn error_page_for(&self, status: StatusCode) -> Option<&str> {
        if self.error_pages.is_empty() {
            return None;
        }
        self.error_pages.get(&status.as_u16()).map(String::as_str)
    }

    /// Whether any error page is set.
    pub(crate) fn has_error_pages(&self) -> bool {
        !self.error_pages.is_empty()
    }

    /// The single-page-app fallback, if set.
    pub(crate) fn fallback_path(&self) -> Option<&str> {
        self.fallback.as_deref()
    }

    /// Whether directories without an index are listed.
    pub(crate) fn lists_directories(&self) -> bool {
        self.list_directories
    }

    /// The site paths the rules name (error pages, fallback), to check they exist.
    pub(crate) fn site_paths(&self) -> impl Iterator<Item = (String, &str)> {
        let pages = self
            .error_pages
            .iter()
            .map(|(status, path)| (format!("error page {status}"), path.as_str()));
        pages.chain(
            self.fallback
                .iter()
                .map(|p| ("fallback".to_string(), p.as_str())),
        )
    }
}

/// A CORS preflight: `OPTIONS` with `Access-Control-Request-Method`.
fn is_preflight(head: &RequestHead) -> bool {
    head.method == Method::Options && head.header("access-control-request-method").is_some()
}

/// Checks a path under the root that the rules name: `/` first, no empty, `.` or `..`
/// segment, no dotfile (but `/.well-known/`), not a directory.
fn check_site_path(path: &str) -> Result<(), String> {
    let bad = || format!("{path:?} is not a file path under the root such as /404.html");
    let relative = path.strip_prefix('/').ok_or_else(bad)?;
    if relative.is_empty() || path.ends_with('/') || path.contains(['?', '#', '\\']) {
        return Err(bad());
    }
    if path.chars().any(char::is_control) {
        return Err(bad());
    }
    for (i, segment) in relative.split('/').enumerate() {
        let well_known = i == 0 && segment == ".well-known";
        if segment.is_empty() || (segment.starts_with('.') && !well_known) {
            return Err(bad());
        }
    }
    Ok(())
}

/// A TOML basic string.
pub(crate) fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
