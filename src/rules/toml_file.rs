//! Reading rules from TOML: the `[error_pages]` table and the `[[rule]]` array, every mistake
//! reported with its line and its key (`rule[2].redirect.status`).

use super::{Cors, Rule, RulesError, SiteRules};
use crate::http::Method;
use std::path::Path;
use std::time::Duration;
use toml::Spanned;
use toml::de::{DeTable, DeValue};

type Value<'i> = Spanned<DeValue<'i>>;

/// A key of a table, its line and its value, in the order of the text.
struct Entry<'t, 'i> {
    key: &'t str,
    line: usize,
    value: &'t Value<'i>,
}

struct Text<'t> {
    text: &'t str,
}

impl Text<'_> {
    /// The 1-based line of byte `offset`.
    fn line(&self, offset: usize) -> usize {
        self.text.as_bytes()[..offset.min(self.text.len())]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1
    }

    /// The entries of `table` in the order they appear.
    fn entries<'t, 'i>(&self, table: &'t DeTable<'i>) -> Vec<Entry<'t, 'i>> {
        let mut entries: Vec<Entry<'t, 'i>> = table
            .iter()
            .map(|(key, value)| Entry {
                key: key.get_ref().as_ref(),
                line: self.line(key.span().start),
                value,
            })
            .collect();
        entries.sort_by_key(|e| e.line);
        entries
    }
}

/// The site rules of a TOML document (see [`SiteRules::from_toml`]).
pub(crate) fn parse(text: &str, base: &Path) -> Result<SiteRules, RulesError> {
    let document = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |span| Text { text }.line(span.start));
        RulesError::new("", e.message().trim()).within("", line)
    })?;
    let text = Text { text };
    let mut rules = SiteRules::new();
    for entry in text.entries(document.get_ref()) {
        match entry.key {
            "error_pages" => rules = error_pages(rules, &entry, &text)?,
            "rule" => rules = rule_array(rules, &entry, &text, base)?,
            _ => {}
        }
    }
    Ok(rules)
}

fn error_pages(
    mut rules: SiteRules,
    entry: &Entry<'_, '_>,
    text: &Text<'_>,
) -> Result<SiteRules, RulesError> {
    let table =
        table(entry.value).map_err(|m| RulesError::new("error_pages", m).within("", entry.line))?;
    for page in text.entries(table) {
        let at = |m: String| {
            RulesError::new(format!("error_pages.{}", page.key), m).within("", page.line)
        };
        let status = page
            .key
            .parse::<u16>()
            .map_err(|_| at("expected a status code such as 404".into()))?;
        let path = string(page.value).map_err(at)?;
        rules = rules
            .error_page(status, path)
            .map_err(|e| e.within("", page.line))?;
    }
    Ok(rules)
}

fn rule_array(
    mut rules: SiteRules,
    entry: &Entry<'_, '_>,
    text: &Text<'_>,
    base: &Path,
) -> Result<SiteRules, RulesError> {
    let DeValue::Array(items) = entry.value.get_ref() else {
        return Err(RulesError::new(
            "rule",
            format!(
                "expected [[rule]] tables, found {}",
                entry.value.get_ref().type_str()
            ),
        )
        .within("", entry.line));
    };
    for (n, item) in items.iter().enumerate() {
        let prefix = format!("rule[{}]", n + 1);
        let line = text.line(item.span().start);
        let DeValue::Table(table) = item.get_ref() else {
            return Err(RulesError::new("", "expected a table").within(&prefix, line));
        };
        let rule = one_rule(table, text, base, line).map_err(|e| e.within(&prefix, line))?;
        rules = rules.rule(rule).map_err(|e| e.within(&prefix, line))?;
    }
    Ok(rules)
}

/// One `[[rule]]` table; errors carry keys relative to it.
fn one_rule(
    table: &DeTable<'_>,
    text: &Text<'_>,
    base: &Path,
    line: usize,
) -> Result<Rule, RulesError> {
    let entries = text.entries(table);
    let path = entries
        .iter()
        .find(|e| e.key == "path")
        .ok_or_else(|| RulesError::new("", "a rule needs a path").within("", line))?;
    let pattern =
        string(path.value).map_err(|m| RulesError::new("path", m).within("", path.line))?;
    let mut rule = Rule::new(pattern).map_err(|e| e.within("", path.line))?;
    for entry in &entries {
        let at = |m: String| RulesError::new(entry.key, m).within("", entry.line);
        rule = match entry.key {
            "path" => rule,
            "headers" => headers(rule, entry, text)?,
            "redirect" => redirect(rule, entry, text)?,
            "cors" => rule.cors(cors(entry, text)?),
            "basic_auth" => basic_auth(rule, entry, text, base)?,
            _ => {
                return Err(at(
                    "unknown key; a rule has path, headers, redirect, cors and basic_auth".into(),
                ));
            }
        };
    }
    Ok(rule)
}

/// The entries of a sub-table (`redirect = { ... }`), checked against the keys it may have.
fn sub_entries<'t, 'i>(
    entry: &Entry<'t, 'i>,
    text: &Text<'_>,
    known: &[&str],
) -> Result<Vec<Entry<'t, 'i>>, RulesError> {
    let table =
        table(entry.value).map_err(|m| RulesError::new(entry.key, m).within("", entry.line))?;
    let entries = text.entries(table);
    if let Some(unknown) = entries.iter().find(|e| !known.contains(&e.key)) {
        return Err(RulesError::new(
            format!("{}.{}", entry.key, unknown.key),
            format!("unknown key; expected {}", known.join(", ")),
        )
        .within("", unknown.line));
    }
    Ok(entries)
}

/// Places an error from a builder on the line of the sub-key it names.
fn placed(entries: &[Entry<'_, '_>], parent: &Entry<'_, '_>) -> impl Fn(RulesError) -> RulesError {
    let lines: Vec<(String, usize)> = entries
        .iter()
        .map(|e| (format!("{}.{}", parent.key, e.key), e.line))
        .collect();
    let fallback = parent.line;
    move |e: RulesError| {
        let line = lines
            .iter()
            .find(|(key, _)| e.key() == key || e.key().starts_with(&format!("{key}.")))
            .map_or(fallback, |(_, line)| *line);
        e.within("", line)
    }
}

fn value_error(parent: &Entry<'_, '_>, entry: &Entry<'_, '_>) -> impl Fn(String) -> RulesError {
    let key = format!("{}.{}", parent.key, entry.key);
    let line = entry.line;
    move |m| RulesError::new(key.clone(), m).within("", line)
}

fn required<'e, 't, 'i>(
    entries: &'e [Entry<'t, 'i>],
    parent: &Entry<'_, '_>,
    key: &str,
) -> Result<&'e Entry<'t, 'i>, RulesError> {
    entries.iter().find(|e| e.key == key).ok_or_else(|| {
        RulesError::new(parent.key, format!("{key} is missing")).within("", parent.line)
    })
}

fn headers(mut rule: Rule, entry: &Entry<'_, '_>, text: &Text<'_>) -> Result<Rule, RulesError> {
    let table =
        table(entry.value).map_err(|m| RulesError::new("headers", m).within("", entry.line))?;
    for field in text.entries(table) {
        let value = string(field.value).map_err(value_error(entry, &field))?;
        rule = rule
            .header(field.key, value)
            .map_err(|e| e.within("", field.line))?;
    }
    Ok(rule)
}

fn redirect(rule: Rule, entry: &Entry<'_, '_>, text: &Text<'_>) -> Result<Rule, RulesError> {
    let entries = sub_entries(entry, text, &["to", "status", "force"])?;
    let to_entry = required(&entries, entry, "to")?;
    let to = string(to_entry.value).map_err(value_error(entry, to_entry))?;
    let mut status = 302;
    let mut force = false;
    for e in &entries {
        match e.key {
            "status" => {
                status = integer(e.value)
                    .ok()
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or("expected 301, 302, 307 or 308".to_string())
                    .map_err(value_error(entry, e))?;
            }
            "force" => force = boolean(e.value).map_err(value_error(entry, e))?,
            _ => {}
        }
    }
    let place = placed(&entries, entry);
    if force {
        rule.forced_redirect(to, status).map_err(place)
    } else {
        rule.redirect(to, status).map_err(place)
    }
}

fn cors(entry: &Entry<'_, '_>, text: &Text<'_>) -> Result<Cors, RulesError> {
    let known = [
        "origins",
        "methods",
        "headers",
        "expose_headers",
        "max_age",
        "credentials",
    ];
    let entries = sub_entries(entry, text, &known)?;
    let place = placed(&entries, entry);
    let origins_entry = required(&entries, entry, "origins")?;
    let origins = strings(origins_entry.value).map_err(value_error(entry, origins_entry))?;
    let mut cors = Cors::new(origins).map_err(&place)?;
    for e in &entries {
        let bad = value_error(entry, e);
        cors = match e.key {
            "methods" => {
                let mut methods = Vec::new();
                for name in strings(e.value).map_err(&bad)? {
                    let method = Method::from_token(name)
                        .ok_or_else(|| bad(format!("{name:?} is not a method such as \"GET\"")))?;
                    methods.push(method);
                }
                if methods.is_empty() {
                    return Err(bad("expected at least one method".into()));
                }
                cors.methods(&methods)
            }
            "headers" => cors
                .allow_headers(strings(e.value).map_err(&bad)?)
                .map_err(&place)?,
            "expose_headers" => cors
                .expose_headers(strings(e.value).map_err(&bad)?)
                .map_err(&place)?,
            "max_age" => {
                let secs = integer(e.value)
                    .ok()
                    .and_then(|n| u64::try_from(n).ok())
                    .ok_or_else(|| bad("expected a number of seconds".into()))?;
                cors.max_age(Duration::from_secs(secs))
            }
            "credentials" => cors
                .credentials(boolean(e.value).map_err(&bad)?)
                .map_err(&place)?,
            _ => cors,
        };
    }
    Ok(cors)
}

fn basic_auth(
    rule: Rule,
    entry: &Entry<'_, '_>,
    text: &Text<'_>,
    base: &Path,
) -> Result<Rule, RulesError> {
    let entries = sub_entries(entry, text, &["realm", "users"])?;
    let realm_entry = required(&entries, entry, "realm")?;
    let users_entry = required(&entries, entry, "users")?;
    let realm = string(realm_entry.value).map_err(value_error(entry, realm_entry))?;
    let users = string(users_entry.value).map_err(value_error(entry, users_entry))?;
    rule.basic_auth(realm, base.join(users))
        .map_err(placed(&entries, entry))
}

fn found(value: &Value<'_>) -> &'static str {
    value.get_ref().type_str()
}

fn table<'t, 'i>(value: &'t Value<'i>) -> Result<&'t DeTable<'i>, String> {
    match value.get_ref() {
        DeValue::Table(table) => Ok(table),
        _ => Err(format!("expected a table, found {}", found(value))),
    }
}

fn string<'t>(value: &'t Value<'_>) -> Result<&'t str, String> {
    match value.get_ref() {
        DeValue::String(s) => Ok(s.as_ref()),
        _ => Err(format!("expected a string, found {}", found(value))),
    }
}

fn strings<'t>(value: &'t Value<'_>) -> Result<Vec<&'t str>, String> {
    match value.get_ref() {
        DeValue::Array(items) => items.iter().map(string).collect(),
        _ => Err(format!(
            "expected an array of strings, found {}",
            found(value)
        )),
    }
}

fn integer(value: &Value<'_>) -> Result<i64, String> {
    match value.get_ref() {
        DeValue::Integer(n) => i64::from_str_radix(&n.as_str().replace('_', ""), n.radix())
            .map_err(|_| "the number is too large".to_string()),
        _ => Err(format!("expected an integer, found {}", found(value))),
    }
}

fn boolean(value: &Value<'_>) -> Result<bool, String> {
    match value.get_ref() {
        DeValue::Boolean(b) => Ok(*b),
        _ => Err(format!("expected true or false, found {}", found(value))),
    }
}
