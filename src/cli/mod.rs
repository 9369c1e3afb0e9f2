//! The command line and the configuration file, merged into one set of options before the
//! server binds. Each option is declared once ([`args::Args`]); the file's keys are the long
//! option names with `_` for `-`, checked by the same parsers as the command line, and the
//! command line wins where both set an option. The file's tables (`[error_pages]`,
//! `[[rule]]`) are the site rules, read by [`margay::SiteRules::from_toml`].

pub mod args;

use args::{Args, NOT_IN_FILE};
use clap::parser::ValueSource;
use clap::{ArgAction, ArgMatches, Command, CommandFactory, FromArgMatches};
use margay::SiteRules;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use toml::de::{DeTable, DeValue};

/// Why the options could not be read: a message for standard error, and whether it is help
/// or version output (shown as clap renders it, exit 0) rather than a mistake (exit 2).
pub enum Failure {
    /// `--help` or `--version`: clap's own output.
    Display(clap::Error),
    /// A mistake, in one line naming where it is (the file, the line and the key).
    Mistake(String),
}

/// The file's keys that are tables of site rules rather than options.
const RULE_TABLES: &[&str] = &["error_pages", "rule"];

/// Options the server takes up again when the file is reloaded; the others need a restart.
const RELOADABLE: &[&str] = &["fallback", "list_directories"];

/// The options in effect, and where each came from.
pub struct Options {
    /// The parsed options.
    pub args: Args,
    /// The configuration file, if one was read.
    pub file: Option<PathBuf>,
    /// The site rules: the file's tables, with the fallback and listings of the options.
    pub rules: SiteRules,
    /// The command line alone, to tell its values from the file's.
    given: ArgMatches,
    /// The command line and the file together.
    matches: ArgMatches,
}

impl Options {
    /// Reads the command line `argv` (program name first) and the file it names with
    /// `--config`, if any.
    pub fn load(argv: Vec<OsString>) -> Result<Options, Failure> {
        let command = Args::command();
        let given = command
            .clone()
            .try_get_matches_from(&argv)
            .map_err(clap_failure)?;
        let file = given.get_one::<PathBuf>("config").cloned();
        let mut merged = vec![argv.first().cloned().unwrap_or_else(|| "margay".into())];
        let mut rules = SiteRules::new();
        if let Some(path) = &file {
            let text = std::fs::read_to_string(path)
                .map_err(|e| Failure::Mistake(format!("{}: cannot read: {e}", path.display())))?;
            merged.extend(file_arguments(&command, &given, path, &text)?);
            // Users files of basic auth are found next to the configuration file.
            let base = path.parent().unwrap_or(Path::new("."));
            rules = SiteRules::from_toml(&text, base)
                .map_err(|e| Failure::Mistake(format!("{}:{e}", path.display())))?;
        }
        merged.extend(argv.into_iter().skip(1));
        let matches = command.try_get_matches_from(merged).map_err(clap_failure)?;
        let args = Args::from_arg_matches(&matches).map_err(clap_failure)?;
        check_pairs(&args)?;
        if let Some(fallback) = args.fallback.as_deref().filter(|f| !f.is_empty()) {
            rules = rules
                .fallback(fallback)
                .map_err(|e| Failure::Mistake(e.to_string()))?;
        }
        let rules = rules.list_directories(args.list_directories);
        Ok(Options {
            args,
            file,
            rules,
            given,
            matches,
        })
    }

    /// Each option's value as TOML, by key.
    fn values(&self) -> BTreeMap<String, String> {
        Args::command()
            .get_arguments()
            .filter(|arg| !NOT_IN_FILE.contains(&arg.get_id().as_str()))
            .map(|arg| {
                let id = arg.get_id().as_str();
                (id.to_string(), toml_value(arg, &self.raw_values(id)))
            })
            .collect()
    }

    /// The options `newer` sets differently that only a restart can apply.
    pub fn needing_restart(&self, newer: &Options) -> Vec<String> {
        let (old, new) = (self.values(), newer.values());
        new.iter()
            .filter(|(key, value)| {
                !RELOADABLE.contains(&key.as_str()) && old.get(*key) != Some(*value)
            })
            .map(|(key, _)| key.clone())
            .collect()
    }

    /// The values option `id` was given (or its default), as written.
    fn raw_values(&self, id: &str) -> Vec<String> {
        self.matches
            .get_raw(id)
            .into_iter()
            .flatten()
            .map(|v| v.to_string_lossy().into_owned())
            .collect()
    }

    /// Whether `id` took its default value (neither the command line nor the file set it).
    pub fn is_default(&self, id: &str) -> bool {
        self.matches.value_source(id) != Some(ValueSource::CommandLine)
    }

    /// The effective configuration as a TOML file would state it, each key with where its
    /// value came from.
    pub fn effective(&self) -> String {
        let mut out = String::new();
        for arg in Args::command().get_arguments() {
            let id = arg.get_id().as_str();
            if NOT_IN_FILE.contains(&id) {
                continue;
            }
            let value = toml_value(arg, &self.raw_values(id));
            // A file's values reach clap as arguments too: the command line alone tells
            // them apart.
            let source = if self.given.value_source(id) == Some(ValueSource::CommandLine) {
                "command line"
            } else if self.matches.value_source(id) == Some(ValueSource::CommandLine) {
                "configuration file"
            } else {
                "default"
            };
            let _ = writeln!(out, "{id} = {value}  # {source}");
        }
        let tables = self.rules.to_toml();
        if !tables.is_empty() {
            let _ = write!(out, "\n# site rules, from the configuration file\n{tables}");
        }
        out
    }
}

/// Options that only make sense together.
fn check_pairs(args: &Args) -> Result<(), Failure> {
    let (certs, keys) = (args.tls_cert.len(), args.tls_key.len());
    if certs != keys {
        return Err(Failure::Mistake(format!(
            "--tls-cert and --tls-key come in pairs: {certs} certificate(s), {keys} key(s)"
        )));
    }
    if !args.tls_listen.is_empty() && certs == 0 {
        return Err(Failure::Mistake(
            "--tls-listen needs a certificate: give --tls-cert FILE and --tls-key FILE".into(),
        ));
    }
    Ok(())
}

/// The file's options as command-line arguments, for every option the command line does not
/// set itself; each value is checked by the option's own parser first, so a mistake is
/// reported with the file, the line and the key.
fn file_arguments(
    command: &Command,
    given: &ArgMatches,
    path: &Path,
    text: &str,
) -> Result<Vec<OsString>, Failure> {
    let table = DeTable::parse(text).map_err(|e| {
        let line = e.span().map_or(1, |span| line_of(text, span.start));
        let message = e.message().trim().to_string();
        Failure::Mistake(format!("{}:{line}: {message}", path.display()))
    })?;
    let mut out = Vec::new();
    // In the file's order, so the first mistake reported is the first in the file.
    let mut entries: Vec<_> = table.get_ref().iter().collect();
    entries.sort_by_key(|(key, _)| key.span().start);
    for (key, value) in entries {
        if RULE_TABLES.contains(&key.get_ref().as_ref()) {
            continue;
        }
        let line = line_of(text, key.span().start);
        let at = |message: String| {
            Failure::Mistake(format!(
                "{}:{line}: {}: {message}",
                path.display(),
                key.get_ref()
            ))
        };
        let long = key.get_ref().replace('_', "-");
        let arg = command
            .get_arguments()
            .find(|a| a.get_long() == Some(long.as_str()))
            .filter(|a| !NOT_IN_FILE.contains(&a.get_id().as_str()) && !key.get_ref().contains('-'))
            .ok_or_else(|| at("unknown key".to_string()))?;
        let values = scalar_values(arg, value.get_ref()).map_err(at)?;
        for value in &values {
            check_value(arg, value).map_err(at)?;
        }
        if given.value_source(arg.get_id().as_str()) == Some(ValueSource::CommandLine) {
            continue;
        }
        match arg.get_action() {
            ArgAction::SetTrue => {
                if values.first().is_some_and(|v| v == "true") {
                    out.push(format!("--{long}").into());
                }
            }
            _ => {
                for value in values {
                    // One word, so a value starting with `-` is not taken for an option.
                    out.push(format!("--{long}={value}").into());
                }
            }
        }
    }
    Ok(out)
}

/// What TOML type an option takes, by its parser: numbers as integers, switches as booleans,
/// everything else as strings (arrays of them where the option repeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Integer,
    Boolean,
    Text,
}

fn kind_of(arg: &clap::Arg) -> Kind {
    use std::any::TypeId;
    if matches!(arg.get_action(), ArgAction::SetTrue | ArgAction::SetFalse) {
        return Kind::Boolean;
    }
    let id = arg.get_value_parser().type_id();
    let integers = [
        TypeId::of::<u64>(),
        TypeId::of::<usize>(),
        TypeId::of::<u32>(),
        TypeId::of::<u16>(),
    ];
    // `--workers` also takes `auto`: a string or an integer.
    if integers.iter().any(|t| id == *t) && arg.get_id() != "workers" {
        Kind::Integer
    } else {
        Kind::Text
    }
}

/// The values a file's TOML value gives an option, as the command line would spell them.
fn scalar_values(arg: &clap::Arg, value: &DeValue<'_>) -> Result<Vec<String>, String> {
    let kind = kind_of(arg);
    let repeats = matches!(arg.get_action(), ArgAction::Append);
    let one = |value: &DeValue<'_>| -> Result<String, String> {
        match (kind, value) {
            (Kind::Integer, DeValue::Integer(n)) => Ok(n.as_str().replace('_', "")),
            (Kind::Boolean, DeValue::Boolean(b)) => Ok(b.to_string()),
            (Kind::Text, DeValue::String(s)) => Ok(s.to_string()),
            (Kind::Text, DeValue::Integer(n)) if arg.get_id() == "workers" => {
                Ok(n.as_str().to_string())
            }
            (expected, other) => Err(format!(
                "expected {}, found {}",
                match expected {
                    Kind::Integer => "an integer",
                    Kind::Boolean => "true or false",
                    Kind::Text => "a string",
                },
                other.type_str()
            )),
        }
    };
    match value {
        DeValue::Array(items) if repeats => items.iter().map(|i| one(i.get_ref())).collect(),
        DeValue::Array(_) => Err("expected a single value, found an array".into()),
        other => Ok(vec![one(other)?]),
    }
}

/// Runs `value` through the option's own parser (alone, so no other option's default is
/// looked at).
fn check_value(arg: &clap::Arg, value: &str) -> Result<(), String> {
    if kind_of(arg) == Kind::Boolean {
        return Ok(());
    }
    let word = format!("--{}={value}", arg.get_long().unwrap_or_default());
    Command::new("margay")
        .arg(arg.clone())
        .try_get_matches_from(["margay", word.as_str()])
        .map(|_| ())
        .map_err(|e| {
            let rendered = e.render().to_string();
            let first = rendered.lines().next().unwrap_or_default();
            first.trim_start_matches("error: ").to_string()
        })
}

/// How an option's value reads in TOML.
fn toml_value(arg: &clap::Arg, values: &[String]) -> String {
    let quote = |v: &String| match kind_of(arg) {
        Kind::Integer | Kind::Boolean => v.clone(),
        // `workers` is a number or "auto".
        Kind::Text if !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()) => v.clone(),
        Kind::Text => format!("{v:?}"),
    };
    match (arg.get_action(), values) {
        (ArgAction::SetTrue, [v]) => v.clone(),
        (ArgAction::SetTrue, _) => "false".into(),
        (ArgAction::Append, _) => {
            let items: Vec<String> = values.iter().map(quote).collect();
            format!("[{}]", items.join(", "))
        }
        (_, [v]) => quote(v),
        (_, []) => "\"\"".into(),
        (_, many) => format!("{:?}", many),
    }
}

/// The 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

fn clap_failure(e: clap::Error) -> Failure {
    if e.use_stderr() {
        // clap's message, first line only: a bad option is a one-line error.
        let rendered = e.render().to_string();
        let message = rendered.lines().next().unwrap_or_default();
        Failure::Mistake(message.trim_start_matches("error: ").to_string())
    } else {
        Failure::Display(e)
    }
}
