//! The configuration file as a user meets it: its keys are the options' names, the command
//! line overrides it, every mistake stops the server before it binds with the file, the line
//! and the key, `--check-config` validates without serving, and `--help`, the README's table
//! and the example `margay.toml` list the same options.

mod common;

use common::*;
use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

fn margay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_margay"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run margay")
}

fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Writes `text` to a file in a fresh directory; the directory lives as long as the guard.
fn config_file(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("site.toml");
    std::fs::write(&path, text).unwrap();
    (dir, path.to_string_lossy().into_owned())
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).trim().to_string()
}

#[test]
fn a_mistake_names_the_file_the_line_and_the_key_and_exits_2() {
    // (file, line of the mistake, key, words the message must carry)
    let rows: &[(&str, usize, &str, &str)] = &[
        (
            "listen = \"127.0.0.1:0\"\nbogus = 1\n",
            2,
            "bogus",
            "unknown key",
        ),
        (
            "# a comment\n\nkeep_alive_timeout = \"five\"\n",
            3,
            "keep_alive_timeout",
            "expected an integer",
        ),
        (
            "max_connections = 0\n",
            1,
            "max_connections",
            "invalid value",
        ),
        ("model = \"fibers\"\n", 1, "model", "reactor or threads"),
        (
            "listen = \"not-an-address\"\n",
            1,
            "listen",
            "invalid value",
        ),
        (
            "root = \"/no/such/directory\"\n",
            1,
            "root",
            "not a directory",
        ),
        (
            "no_builtin_endpoints = \"yes\"\n",
            1,
            "no_builtin_endpoints",
            "true or false",
        ),
        ("header_timeout = [1, 2]\n", 1, "header_timeout", "array"),
        ("header-timeout = 3\n", 1, "header-timeout", "unknown key"),
        ("config = \"other.toml\"\n", 1, "config", "unknown key"),
        (
            "workers = 2\n\n\nsend_timeout = -1\n",
            4,
            "send_timeout",
            "invalid value",
        ),
    ];
    for (text, line, key, words) in rows {
        let (_dir, path) = config_file(text);
        let output = margay(&["--config", &path, "--listen", "127.0.0.1:0"]);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{text:?}: {}",
            stderr(&output)
        );
        let message = stderr(&output);
        assert_eq!(message.lines().count(), 1, "one line: {message}");
        let expected = format!("margay: {path}:{line}: {key}: ");
        assert!(message.starts_with(&expected), "{text:?}: {message}");
        assert!(message.contains(words), "{text:?}: {message}");
    }
}

#[test]
fn a_file_that_is_not_toml_or_missing_is_reported_with_its_name() {
    let (_dir, path) = config_file("listen = [\n");
    let output = margay(&["--config", &path]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).starts_with(&format!("margay: {path}:1: ")),
        "{}",
        stderr(&output)
    );

    let output = margay(&["--config", "/no/such/file.toml"]);
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("/no/such/file.toml: cannot read"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn check_config_prints_where_each_setting_came_from_without_serving() {
    let addr = free_addr();
    let (_dir, path) = config_file(&format!(
        "listen = \"{addr}\"\nkeep_alive_timeout = 5\nheader_timeout = 7\n"
    ));
    let output = margay(&["--config", &path, "--check-config", "--header-timeout", "3"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let printed = String::from_utf8_lossy(&output.stdout);
    for line in [
        format!("listen = [\"{addr}\"]  # configuration file"),
        "keep_alive_timeout = 5  # configuration file".to_string(),
        "header_timeout = 3  # command line".to_string(),
        "send_timeout = 30  # default".to_string(),
    ] {
        assert!(
            printed.lines().any(|l| l == line),
            "{line:?} in:\n{printed}"
        );
    }
    // It checked, it did not bind.
    assert!(
        TcpListener::bind(addr).is_ok(),
        "--check-config must not listen"
    );
}

#[test]
fn the_file_configures_the_server_and_the_command_line_overrides_it() {
    let file_addr = free_addr();
    let (_dir, path) = config_file(&format!(
        "listen = \"{file_addr}\"\nroot = \"htdocs\"\naccess_log = \"off\"\nno_builtin_endpoints = true\n"
    ));
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("server.log");
    let mut child = Command::new(env!("CARGO_BIN_EXE_margay"))
        .args(["--config", &path, "--listen", "127.0.0.1:0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let says = "margay listening on ";
    let line = wait_for_log_line(&mut child, &log, says, Duration::from_secs(20));
    let urls = listening_urls(&line);
    assert_eq!(urls.len(), 1, "one listener, the command line's: {line}");
    let cli_addr = urls[0].1;
    let mut stream = connect(cli_addr);
    send(&mut stream, &get_req("/api/status"));
    let status = read_response(&mut stream, false).status;
    let file_addr_used = TcpStream::connect(file_addr).is_ok();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(status, 404, "the file turned the built-in endpoints off");
    assert!(
        !file_addr_used,
        "the command line's --listen replaced the file's"
    );
}

/// The option names `--help` lists, without the command's own `--help`/`--version`.
fn help_options() -> BTreeSet<String> {
    let help = String::from_utf8(margay(&["--help"]).stdout).unwrap();
    help.lines()
        .filter_map(|l| l.trim_start().strip_prefix("--"))
        .map(|l| l.split([' ', '<']).next().unwrap().to_string())
        .chain(help.lines().filter_map(|l| {
            l.trim_start()
                .strip_prefix("-h, --")
                .or_else(|| l.trim_start().strip_prefix("-V, --"))
                .map(|_| String::new())
        }))
        .filter(|name| !name.is_empty())
        .collect()
}

#[test]
fn help_the_readme_and_the_example_file_list_the_same_options() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let help = help_options();
    assert!(
        help.contains("listen") && help.contains("config"),
        "{help:?}"
    );

    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let in_readme: BTreeSet<String> = readme
        .lines()
        .filter_map(|l| l.strip_prefix("| `--"))
        .map(|l| l.split([' ', '`']).next().unwrap().to_string())
        .collect();
    assert_eq!(in_readme, help, "README's option table vs --help");

    let example = std::fs::read_to_string(root.join("margay.toml")).unwrap();
    let keys: BTreeSet<String> = example
        .lines()
        .filter(|l| !l.starts_with('#') && l.contains(" = "))
        .map(|l| l.split(" = ").next().unwrap().replace('_', "-"))
        .collect();
    let mut expected = help.clone();
    // These steer the command itself; the file cannot name itself.
    expected.remove("config");
    expected.remove("check-config");
    assert_eq!(keys, expected, "margay.toml's keys vs --help");
}

#[test]
fn the_example_file_is_valid_and_holds_the_defaults() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let example = root.join("margay.toml");
    let with_file = margay(&["--config", example.to_str().unwrap(), "--check-config"]);
    assert_eq!(with_file.status.code(), Some(0), "{}", stderr(&with_file));
    let without = margay(&["--check-config"]);
    let values = |output: &Output| -> Vec<String> {
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|l| l.split("  #").next().unwrap().to_string())
            .collect()
    };
    assert_eq!(
        values(&with_file),
        values(&without),
        "every key at its default"
    );
}
