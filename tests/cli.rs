//! The binary itself: configuration precedence, `check-config`, startup refusals with clear
//! messages and exit codes, and SIGTERM handling.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use common::{FAKE_KEY, scratch};

const BIN: &str = env!("CARGO_BIN_EXE_onlytraffic-proxy");

/// Runs the binary with a clean environment plus `env`.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).env_clear();
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_config_prints_a_fingerprint_never_the_key() {
    let out = run(&["check-config"], &[("ONLYTRAFFIC_API_KEY", FAKE_KEY)]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(!text.contains(FAKE_KEY), "{text}");
    assert!(text.contains(&format!("len={}", FAKE_KEY.len())), "{text}");
    assert!(text.contains("listen = \"127.0.0.1:8080\""), "{text}");
    assert!(
        text.contains("upstream = \"https://partner.onlytraffic.com\""),
        "{text}"
    );
    assert!(text.contains("total = \"1m\""), "{text}");
}

#[test]
fn flags_beat_environment_beat_file_beat_defaults() {
    let dir = scratch("precedence");
    let file = dir.join("c.toml");
    std::fs::write(
        &file,
        "listen = \"127.0.0.1:7001\"\nupstream = \"http://127.0.0.1:9001\"\n[timeouts]\ntotal = \"45s\"\n",
    )
    .unwrap();
    let f = file.to_str().unwrap();
    let key = ("ONLYTRAFFIC_API_KEY", FAKE_KEY);

    let out = run(&["check-config", "--config", f], &[key]);
    let text = stdout(&out);
    assert!(
        text.contains("127.0.0.1:7001") && text.contains("total = \"45s\""),
        "{text}"
    );

    let env = [
        key,
        ("OTPROXY_CONFIG", f),
        ("OTPROXY_LISTEN", "127.0.0.1:7002"),
        ("OTPROXY_TIMEOUTS__TOTAL", "10s"),
    ];
    let text = stdout(&run(&["check-config"], &env));
    assert!(
        text.contains("127.0.0.1:7002") && text.contains("total = \"10s\""),
        "{text}"
    );
    assert!(
        text.contains("http://127.0.0.1:9001"),
        "the file still applies: {text}"
    );

    let text = stdout(&run(&["check-config", "--listen", "127.0.0.1:7003"], &env));
    assert!(text.contains("127.0.0.1:7003"), "{text}");
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_key_file_is_read_and_trimmed() {
    let dir = scratch("keyfile");
    let file = dir.join("key");
    std::fs::write(&file, format!("  {FAKE_KEY}\n")).unwrap();
    let out = run(
        &["check-config"],
        &[("ONLYTRAFFIC_API_KEY_FILE", file.to_str().unwrap())],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains(&format!("len={}", FAKE_KEY.len())));
    std::fs::remove_dir_all(&dir).unwrap();
}

/// Arguments, environment, and the fragments the error line must contain.
type Case<'a> = (Vec<&'a str>, Vec<(&'a str, &'a str)>, Vec<&'a str>);

/// Each bad configuration exits 2 with one line naming what is wrong.
#[test]
fn bad_configuration_stops_startup_with_a_clear_message() {
    let dir = scratch("bad");
    let empty = dir.join("empty-key");
    std::fs::write(&empty, "\n").unwrap();
    let unknown = dir.join("unknown.toml");
    std::fs::write(&unknown, "[timeouts]\ntotl = \"5s\"\n").unwrap();
    let bad_size = dir.join("size.toml");
    std::fs::write(&bad_size, "[limits]\nmax_request_body = \"lots\"\n").unwrap();
    let key = ("ONLYTRAFFIC_API_KEY", FAKE_KEY);
    let cases: Vec<Case> = vec![
        (
            vec![],
            vec![],
            vec!["ONLYTRAFFIC_API_KEY is not set", "ONLYTRAFFIC_API_KEY_FILE"],
        ),
        (
            vec![],
            vec![("ONLYTRAFFIC_API_KEY_FILE", empty.to_str().unwrap())],
            vec!["is empty"],
        ),
        (
            vec![],
            vec![("ONLYTRAFFIC_API_KEY_FILE", "/nonexistent/key")],
            vec!["cannot read", "/nonexistent/key"],
        ),
        (
            vec!["--config", unknown.to_str().unwrap()],
            vec![key],
            vec!["unknown setting `timeouts.totl`", "unknown.toml"],
        ),
        (
            vec!["--config", bad_size.to_str().unwrap()],
            vec![key],
            vec!["limits.max_request_body", "\"lots\"", "1MiB"],
        ),
        (
            vec![],
            vec![key, ("OTPROXY_TIMEOUTS__CONNECT", "soon")],
            vec!["timeouts.connect", "OTPROXY_TIMEOUTS__CONNECT", "\"30s\""],
        ),
        (
            vec!["--upstream", "ftp://partner.onlytraffic.com"],
            vec![key],
            vec!["upstream", "ftp://", "http"],
        ),
        (
            vec!["--listen", "0.0.0.0:8080"],
            vec![key],
            vec!["inbound.tokens_file", "inbound.allow_anonymous"],
        ),
        (
            vec![],
            vec![key, ("OTPROXY_WORKERS", "100000")],
            vec!["workers", "100000", "0 (one per CPU)"],
        ),
        (
            vec![],
            vec![key, ("OTPROXY_WORKERS", "-1")],
            vec!["workers", "OTPROXY_WORKERS"],
        ),
        (
            vec!["--config", "/nonexistent.toml"],
            vec![key],
            vec!["/nonexistent.toml"],
        ),
    ];
    for (args, env, expected) in cases {
        let out = run(&args, &env);
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?} {env:?}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "one line: {err}");
        for e in expected {
            assert!(err.contains(e), "{args:?}: expected {e:?} in {err}");
        }
        assert!(!err.contains(FAKE_KEY));
    }
    // The explicit opt-in makes a non-loopback listener acceptable.
    let out = run(
        &["check-config", "--listen", "0.0.0.0:8080"],
        &[key, ("OTPROXY_INBOUND__ALLOW_ANONYMOUS", "true")],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn the_key_is_not_accepted_as_a_flag_or_setting() {
    let out = run(&["--key", FAKE_KEY], &[("ONLYTRAFFIC_API_KEY", FAKE_KEY)]);
    assert_eq!(out.status.code(), Some(2));
    let dir = scratch("keysetting");
    let file = dir.join("c.toml");
    std::fs::write(&file, format!("api_key = \"{FAKE_KEY}\"\n")).unwrap();
    let out = run(
        &["check-config", "--config", file.to_str().unwrap()],
        &[("ONLYTRAFFIC_API_KEY", FAKE_KEY)],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown setting `api_key`"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn sigterm_stops_the_proxy_with_exit_0() {
    let mut child = Command::new(BIN)
        .env_clear()
        .env("ONLYTRAFFIC_API_KEY", FAKE_KEY)
        .env("OTPROXY_LOG_FORMAT", "json")
        .args([
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "http://127.0.0.1:9",
        ])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The startup line carries the bound address.
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let line = lines.next().expect("startup line").unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).expect("json log line");
        if let Some(listen) = v["listen"].as_str() {
            break listen.to_owned();
        }
    };
    let health = std::net::TcpStream::connect(&addr);
    assert!(health.is_ok(), "listening on {addr}");
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || tx.send(child.wait()));
    let code = rx
        .recv_timeout(Duration::from_secs(20))
        .expect("stops on SIGTERM within 20s")
        .unwrap();
    assert_eq!(code.code(), Some(0));
}

#[test]
fn the_shipped_default_config_matches_the_built_in_defaults() {
    let key = [("ONLYTRAFFIC_API_KEY", FAKE_KEY)];
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/default.toml");
    let with_file = run(&["check-config", "--config", file], &key);
    assert!(with_file.status.success(), "{}", stderr(&with_file));
    assert_eq!(stdout(&with_file), stdout(&run(&["check-config"], &key)));
}

#[test]
fn the_docker_config_listens_everywhere_and_requires_tokens() {
    let file = concat!(env!("CARGO_MANIFEST_DIR"), "/config/docker.toml");
    let key = ("ONLYTRAFFIC_API_KEY", FAKE_KEY);
    // Without its tokens secret the container refuses to start, naming the file.
    let out = run(&["check-config", "--config", file], &[key]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr(&out).contains("/run/secrets/otproxy_tokens"),
        "{}",
        stderr(&out)
    );
    let dir = scratch("docker");
    let tokens = dir.join("tokens");
    std::fs::write(&tokens, "tok\n").unwrap();
    let out = run(
        &["check-config", "--config", file],
        &[
            key,
            ("OTPROXY_INBOUND__TOKENS_FILE", tokens.to_str().unwrap()),
        ],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("listen = \"0.0.0.0:8080\""));
    std::fs::remove_dir_all(&dir).unwrap();
}
