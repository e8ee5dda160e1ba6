//! The `demo` and `simulate` commands, run as the built binary with an empty environment (no key
//! anywhere). The demo's printed curl commands are parsed (no curl binary needed) and sent as
//! written, and must answer what the demo says they answer. Waits are bounded by channels with
//! timeouts, never by sleeping.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_onlytraffic-proxy");
/// Generous: the binary starts in milliseconds, but CI machines stall.
const WAIT: Duration = Duration::from_secs(30);

/// The binary running with a cleared environment: its stdout lines arrive on a channel, its
/// stderr is collected for failure messages. Killed if a test fails before stopping it.
struct Running {
    child: Option<Child>,
    lines: Receiver<String>,
    stderr: Option<JoinHandle<String>>,
}

fn start(args: &[&str]) -> Running {
    let mut child = Command::new(BIN)
        .args(args)
        .env_clear()
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the binary");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, lines) = mpsc::channel();
    thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut stderr = child.stderr.take().expect("piped stderr");
    let stderr = thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    Running {
        child: Some(child),
        lines,
        stderr: Some(stderr),
    }
}

impl Running {
    /// The next line on stdout; fails with the process's stderr if it exits instead.
    fn next_line(&mut self) -> String {
        match self.lines.recv_timeout(WAIT) {
            Ok(line) => line,
            Err(RecvTimeoutError::Timeout) => panic!("no line on stdout within {WAIT:?}"),
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.take().map(|mut c| c.wait());
                let stderr = self.stderr.take().map(|h| h.join());
                panic!("stdout closed: the process ended ({status:?}); stderr: {stderr:?}")
            }
        }
    }

    /// Sends SIGTERM and waits (bounded) for the exit; returns the status and stderr.
    fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().expect("still running");
        let pid = child.id().to_string();
        let sent = Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("run kill");
        assert!(sent.success(), "kill -TERM {pid} failed");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || tx.send(child.wait()));
        let status = match rx.recv_timeout(WAIT) {
            Ok(status) => status.expect("wait for the process"),
            Err(e) => {
                // Do not leave it behind; the waiting thread reaps it.
                let _ = Command::new("kill").args(["-KILL", &pid]).status();
                panic!("no exit within {WAIT:?} of SIGTERM ({e})");
            }
        };
        let stderr = self
            .stderr
            .take()
            .map(|h| h.join().unwrap_or_default())
            .unwrap_or_default();
        (status, stderr)
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Splits a shell line into commands (at `;` and `&&`) of words, honouring single quotes,
/// double quotes and backslashes. Anything else a shell would expand is refused, so the printed
/// commands stay pasteable as they are.
fn shell_commands(line: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => word.push(ch),
                        None => panic!("unterminated ' in {line}"),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => word.push(ch),
                            Some(ch) => {
                                word.push('\\');
                                word.push(ch);
                            }
                            None => panic!("unterminated \" in {line}"),
                        },
                        Some(ch @ ('$' | '`')) => panic!("shell expansion {ch} in {line}"),
                        Some(ch) => word.push(ch),
                        None => panic!("unterminated \" in {line}"),
                    }
                }
            }
            '\\' => {
                in_word = true;
                word.push(chars.next().expect("character after \\"));
            }
            c if c.is_whitespace() || c == ';' || c == '&' => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
                let ends_command = match c {
                    ';' => true,
                    '&' => {
                        assert_eq!(chars.next(), Some('&'), "a lone & in {line}");
                        true
                    }
                    _ => false,
                };
                if ends_command && !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            '|' | '<' | '>' | '$' | '`' | '(' | ')' | '*' | '?' | '[' | '{' => {
                panic!("unquoted shell character {c:?} in {line}")
            }
            c => {
                in_word = true;
                word.push(c);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// The HTTP request a curl command line sends.
#[derive(Debug)]
struct CurlRequest {
    method: String,
    url: String,
    headers: Vec<(String, String)>,
    body: Option<String>,
}

/// Reads the curl options the demo uses, with curl's meaning; any other option fails the test.
fn parse_curl(words: &[String]) -> CurlRequest {
    assert_eq!(words.first().map(String::as_str), Some("curl"), "{words:?}");
    let mut method = None;
    let mut url = None;
    let mut headers = Vec::new();
    let mut data: Vec<String> = Vec::new();
    let mut args = words[1..].iter();
    while let Some(arg) = args.next() {
        let mut value = || {
            args.next()
                .unwrap_or_else(|| panic!("{arg} needs a value in {words:?}"))
                .clone()
        };
        match arg.as_str() {
            // Output only: silence, response headers on stdout, an extra write-out line.
            "-s" | "--silent" | "-i" | "--include" => {}
            "-w" | "--write-out" | "-o" | "--output" => {
                value();
            }
            "-X" | "--request" => method = Some(value()),
            "-H" | "--header" => {
                let header = value();
                let (name, v) = header
                    .split_once(':')
                    .unwrap_or_else(|| panic!("header without a colon: {header:?}"));
                headers.push((name.trim().to_owned(), v.trim().to_owned()));
            }
            "-d" | "--data" | "--data-raw" => {
                let d = value();
                assert!(
                    arg == "--data-raw" || !d.starts_with('@'),
                    "-d @file is not supported: {d}"
                );
                data.push(d);
            }
            other if other.starts_with('-') => panic!("unsupported curl option {other}"),
            other => {
                assert!(url.is_none(), "two URLs in {words:?}");
                url = Some(other.to_owned());
            }
        }
    }
    // curl: several -d are joined with '&'; -d means POST and, unless a Content-Type header is
    // given, application/x-www-form-urlencoded.
    let body = (!data.is_empty()).then(|| data.join("&"));
    if body.is_some()
        && !headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case("content-type"))
    {
        headers.push((
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into(),
        ));
    }
    let method = method.unwrap_or_else(|| if body.is_some() { "POST" } else { "GET" }.into());
    CurlRequest {
        method,
        url: url.unwrap_or_else(|| panic!("no URL in {words:?}")),
        headers,
        body,
    }
}

/// A response: HTTP status and the parsed body.
struct Reply {
    status: u16,
    body: Value,
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("build a runtime")
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .timeout(WAIT)
        .build()
        .expect("build client")
}

async fn send_curl(client: &reqwest::Client, req: &CurlRequest) -> Reply {
    let method: reqwest::Method = req.method.parse().expect("a method");
    let mut builder = client.request(method, &req.url);
    for (name, value) in &req.headers {
        builder = builder.header(name, value);
    }
    if let Some(body) = &req.body {
        builder = builder.body(body.clone());
    }
    let resp = builder.send().await.expect("the request is answered");
    let status = resp.status().as_u16();
    let body = resp.json().await.expect("a JSON body");
    Reply { status, body }
}

#[test]
fn the_curl_parser_reads_what_curl_would_send() {
    let line = r#"curl -s -w ' -> %{http_code}\n' -X POST 'http://h/a?do=x' -H 'content-type: application/json' -d '{"a":1}'; curl "http://h/b" -d 'k=v' -d "q=\"1\"" && curl http://h/c"#;
    let commands = shell_commands(line);
    assert_eq!(commands.len(), 3, "{commands:?}");
    let first = parse_curl(&commands[0]);
    assert_eq!(first.method, "POST");
    assert_eq!(first.url, "http://h/a?do=x");
    assert_eq!(
        first.headers,
        vec![("content-type".to_owned(), "application/json".to_owned())]
    );
    assert_eq!(first.body.as_deref(), Some(r#"{"a":1}"#));
    let second = parse_curl(&commands[1]);
    assert_eq!(second.method, "POST");
    assert_eq!(second.body.as_deref(), Some(r#"k=v&q="1""#));
    assert_eq!(
        second.headers,
        vec![(
            "Content-Type".to_owned(),
            "application/x-www-form-urlencoded".to_owned()
        )]
    );
    let third = parse_curl(&commands[2]);
    assert_eq!((third.method.as_str(), third.body), ("GET", None));
}

#[test]
fn demo_prints_three_commands_that_do_what_they_say() {
    let mut demo = start(&["demo", "--listen", "127.0.0.1:0"]);
    let mut printed = Vec::new();
    let mut curls = Vec::new();
    while curls.len() < 3 {
        let line = demo.next_line();
        if line.starts_with("curl ") {
            curls.push(line.clone());
        }
        printed.push(line);
    }
    // The first line says where the proxy listens: the real port, not 0.
    let proxy = printed[0]
        .split_once("the proxy listens on ")
        .and_then(|(_, rest)| rest.split_once(','))
        .map(|(url, _)| url.to_owned())
        .unwrap_or_else(|| panic!("no proxy address in {:?}", printed[0]));
    assert!(proxy.starts_with("http://127.0.0.1:"), "{proxy}");
    assert!(!proxy.ends_with(":0"), "{proxy}");

    let requests: Vec<Vec<CurlRequest>> = curls
        .iter()
        .map(|line| shell_commands(line).iter().map(|c| parse_curl(c)).collect())
        .collect();
    assert_eq!(
        requests.iter().map(Vec::len).collect::<Vec<_>>(),
        vec![1, 1, 2],
        "{curls:#?}"
    );
    for req in requests.iter().flatten() {
        assert!(req.url.starts_with(&format!("{proxy}/")), "{req:?}");
        assert!(
            !req.headers
                .iter()
                .any(|(n, _)| n.eq_ignore_ascii_case("authorization")),
            "the client needs no key: {req:?}"
        );
    }

    let rt = runtime();
    let client = client();
    let send = |req: &CurlRequest| rt.block_on(send_curl(&client, req));

    // 1. The campaigns list: as many campaigns as the command asks for.
    let list = &requests[0][0];
    let asked: Value = serde_json::from_str(list.body.as_deref().unwrap_or("{}")).expect("JSON");
    let reply = send(list);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.body["status"], "success", "{}", reply.body);
    let rows = reply.body["data"].as_array().expect("data array");
    assert_eq!(Some(rows.len() as u64), asked["limit"].as_u64(), "{list:?}");
    assert!(rows.iter().all(|r| r["campaign_id"].is_i64()), "{rows:?}");

    // 2. The invalid call.
    let reply = send(&requests[1][0]);
    assert_eq!(reply.status, 422, "{}", reply.body);
    assert_eq!(reply.body["error_code"], 422, "{}", reply.body);

    // 3. generate_link twice for one smartlink.
    let links = &requests[2];
    assert_eq!(links[0].body, links[1].body, "the same smartlink twice");
    let first = send(&links[0]);
    assert_eq!(first.status, 200, "{}", first.body);
    assert!(first.body["data"]["url"].is_string(), "{}", first.body);
    let second = send(&links[1]);
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.body["error_code"], 429, "{}", second.body);

    let (status, stderr) = demo.terminate();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
    // Logs go to stderr, not among the instructions on stdout.
    assert!(
        stderr.contains("onlytraffic-proxy demo serving"),
        "{stderr}"
    );
    assert!(!printed.iter().any(|l| l.contains("INFO")), "{printed:#?}");
}

#[test]
fn simulate_serves_the_api_alone_with_its_rate() {
    let mut sim = start(&["simulate", "--listen", "127.0.0.1:0", "--rate", "2/1m"]);
    let line = sim.next_line();
    let url = line
        .strip_prefix("simulator listening on ")
        .and_then(|rest| rest.split_once(' '))
        .map(|(url, _)| url.to_owned())
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"));
    assert!(
        url.starts_with("http://127.0.0.1:") && !url.ends_with(":0"),
        "{line}"
    );
    assert!(line.ends_with("(key \"demo-key\", rate 2/1m)"), "{line}");

    let rt = runtime();
    let client = client();
    let call = |key: Option<&str>| {
        let mut req = client
            .post(format!("{url}/api/marketer?do=campaigns"))
            .header("content-type", "application/json")
            .body(r#"{"limit":1}"#);
        if let Some(key) = key {
            req = req.header("authorization", key);
        }
        rt.block_on(async {
            let resp = req.send().await.expect("answered");
            // The simulator is the upstream: HTTP 200 always, the outcome in the envelope.
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.expect("JSON")
        })
    };
    // Without the key: 401, and it does not spend the budget.
    assert_eq!(call(None)["error_code"], 401);
    assert_eq!(call(Some("demo-key"))["status"], "success");
    assert_eq!(call(Some("demo-key"))["status"], "success");
    let third = call(Some("demo-key"));
    assert_eq!(third["error_code"], 429, "{third}");
    assert!(
        third["message"]
            .as_str()
            .is_some_and(|m| m.contains("2 requests per 1m")),
        "{third}"
    );

    let (status, stderr) = sim.terminate();
    assert_eq!(status.code(), Some(0), "stderr: {stderr}");
}

#[test]
fn bad_arguments_exit_2_with_one_line() {
    let cases: [(&[&str], &str); 5] = [
        (&["simulate", "--rate", "bogus"], "expected N/PERIOD"),
        (&["simulate", "--rate", "0/1m"], "expected N/PERIOD"),
        (&["simulate", "--listen", "nowhere"], "expected IP:PORT"),
        (&["simulate", "--key", " "], "--key"),
        (&["demo", "--listen", "nowhere"], "listen: invalid address"),
    ];
    for (args, needle) in cases {
        let out = Command::new(BIN)
            .args(args)
            .env_clear()
            .output()
            .expect("run the binary");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}: nothing on stdout");
    }
}
