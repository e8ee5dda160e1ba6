//! End to end: the proxy in front of the simulator, over real sockets. Every simulator action and
//! error path goes through the proxy (v1 in both body encodings), and each answer is checked for
//! the real HTTP status the proxy sets, its `X-Upstream-Status` and `X-OnlyTraffic-Error-Code`
//! headers, and a body that is the simulator's envelope byte for byte (the same request sent
//! straight to the simulator gets the same bytes). The client never sends a key: the proxy
//! injects the simulator's. Time windows move with a `ManualClock`, never with sleeps.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use onlytraffic_proxy::config::{Config, Settings};
use onlytraffic_proxy::secret::{ApiKey, KeySource};
use onlytraffic_proxy::simulator::{self, ManualClock, SimulatorConfig};
use reqwest::Method;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// The simulator's key; only the proxy knows it.
const SIM_KEY: &str = "e2e-sim-key-5";
/// A per-key budget the functional tests never reach.
const ROOMY: &str = "100000/1m";
const FORM: &str = "application/x-www-form-urlencoded";
const JSON: &str = "application/json";

const V1_LISTS: [&str; 4] = ["campaigns", "transactions", "subscribers", "ppc_orders"];

/// The simulator on an ephemeral port and the proxy in front of it.
struct Stack {
    proxy: String,
    simulator: String,
    clock: Arc<ManualClock>,
    client: reqwest::Client,
    // Dropping a sender stops its server.
    _stop_proxy: oneshot::Sender<()>,
    _stop_simulator: oneshot::Sender<()>,
}

/// A simulator allowing `rate`, and a proxy that sends it `proxy_key`, with `tweak` applied to
/// the proxy's otherwise default settings.
async fn stack_with(rate: &str, proxy_key: &str, tweak: impl FnOnce(&mut Settings)) -> Stack {
    let sim_listener = TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind simulator");
    let sim_addr = sim_listener.local_addr().expect("simulator addr");
    let clock = Arc::new(ManualClock::new());
    let sim_config = SimulatorConfig::new(SIM_KEY, rate.parse().expect("test rate parses"))
        .with_clock(clock.clone());
    let (stop_simulator, sim_stopped) = oneshot::channel::<()>();
    tokio::spawn(simulator::serve(sim_listener, sim_config, async move {
        let _ = sim_stopped.await;
    }));

    let simulator = format!("http://{sim_addr}");
    let mut settings = common::settings(&simulator);
    tweak(&mut settings);
    let key = ApiKey::new(proxy_key, KeySource::Inline).expect("test key");
    let config = Config::validate(settings, key).expect("valid proxy config");
    let listener = TcpListener::bind(config.listen).await.expect("bind proxy");
    let proxy_addr = listener.local_addr().expect("proxy addr");
    let (stop_proxy, proxy_stopped) = oneshot::channel::<()>();
    tokio::spawn(onlytraffic_proxy::run(
        listener,
        Arc::new(config),
        async move {
            let _ = proxy_stopped.await;
        },
    ));
    Stack {
        proxy: format!("http://{proxy_addr}"),
        simulator,
        clock,
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("build client"),
        _stop_proxy: stop_proxy,
        _stop_simulator: stop_simulator,
    }
}

async fn stack(rate: &str) -> Stack {
    stack_with(rate, SIM_KEY, pass_through).await
}

/// The proxy with its own policies out of the way (no retries, no route rules, no pacing), so each of the
/// simulator's answers reaches the client as the simulator gave it. The policies themselves
/// are checked against the simulator in `the_proxy_honours_the_simulators_retry_after`.
fn pass_through(settings: &mut Settings) {
    settings.retry.max_attempts = 1;
    settings.rate_limit.routes.clear();
    // Many calls per test: the proxy's own pacing would only slow them down.
    settings.rate_limit.rate = 1_000_000.try_into().expect("non-zero");
    settings.rate_limit.burst = 10_000.try_into().expect("non-zero");
}

/// One request, sendable to the proxy or straight to the simulator.
#[derive(Debug, Clone)]
struct Call {
    method: Method,
    path: String,
    content_type: Option<&'static str>,
    body: Vec<u8>,
}

impl Call {
    fn new(method: Method, path: &str) -> Self {
        Self {
            method,
            path: path.to_owned(),
            content_type: None,
            body: Vec::new(),
        }
    }

    fn body(mut self, content_type: Option<&'static str>, body: impl Into<Vec<u8>>) -> Self {
        self.content_type = content_type;
        self.body = body.into();
        self
    }
}

fn v1_json(action: &str, body: Value) -> Call {
    Call::new(Method::POST, &format!("/api/marketer?do={action}"))
        .body(Some(JSON), body.to_string())
}

fn v1_form(action: &str, body: &str) -> Call {
    Call::new(Method::POST, &format!("/api/marketer?do={action}")).body(Some(FORM), body)
}

fn v2(path_and_query: &str) -> Call {
    Call::new(Method::GET, path_and_query)
}

/// What came back, with the headers that matter here.
#[derive(Debug)]
struct Answer {
    status: u16,
    upstream_status: Option<String>,
    error_code: Option<String>,
    content_type: Option<String>,
    /// Every response header, lower-case names.
    headers: std::collections::HashMap<String, String>,
    raw: Bytes,
    body: Value,
}

impl Stack {
    async fn send(&self, base: &str, call: &Call, key: Option<&str>) -> Answer {
        let mut req = self
            .client
            .request(call.method.clone(), format!("{base}{}", call.path))
            .body(call.body.clone());
        if let Some(ct) = call.content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        if let Some(key) = key {
            req = req.header(AUTHORIZATION, key);
        }
        let resp = req.send().await.expect("request is answered");
        let header = |name: &str| {
            resp.headers()
                .get(name)
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned)
        };
        let (upstream_status, error_code, content_type) = (
            header("x-upstream-status"),
            header("x-onlytraffic-error-code"),
            header("content-type"),
        );
        let headers = resp
            .headers()
            .iter()
            .filter_map(|(k, v)| Some((k.as_str().to_owned(), v.to_str().ok()?.to_owned())))
            .collect();
        let status = resp.status().as_u16();
        let raw = resp.bytes().await.expect("read body");
        let body = serde_json::from_slice(&raw)
            .unwrap_or_else(|e| panic!("body is not JSON ({e}): {raw:?}"));
        Answer {
            status,
            upstream_status,
            error_code,
            content_type,
            headers,
            raw,
            body,
        }
    }

    /// Through the proxy, with no key, as every client of the proxy calls.
    async fn through(&self, call: &Call) -> Answer {
        self.send(&self.proxy, call, None).await
    }

    /// Straight to the simulator, with its key.
    async fn direct(&self, call: &Call) -> Answer {
        self.send(&self.simulator, call, Some(SIM_KEY)).await
    }

    /// Through the proxy, then straight to the simulator: the simulator always says HTTP 200,
    /// and the proxy's body is the simulator's, byte for byte. Only for calls whose answer does
    /// not depend on earlier calls.
    async fn check(&self, call: &Call) -> Answer {
        let proxied = self.through(call).await;
        let direct = self.direct(call).await;
        assert_eq!(direct.status, 200, "the simulator always answers HTTP 200");
        assert_eq!(
            direct.upstream_status, None,
            "the simulator adds no proxy header"
        );
        assert_eq!(
            proxied.raw, direct.raw,
            "{call:?}: the proxy changed the simulator's body"
        );
        assert_eq!(proxied.content_type.as_deref(), Some(JSON), "{call:?}");
        proxied
    }
}

/// A success through the proxy: HTTP 200, upstream 200, no error header, and the success
/// envelope `{"status":"success","data":...}`; returns `data`.
fn assert_success(a: &Answer) -> &Value {
    assert_eq!(a.status, 200, "{}", a.body);
    assert_eq!(a.upstream_status.as_deref(), Some("200"), "{}", a.body);
    assert_eq!(a.error_code, None, "{}", a.body);
    assert_eq!(a.body["status"], "success", "{}", a.body);
    assert_eq!(keys(&a.body), set(&["status", "data"]), "{}", a.body);
    &a.body["data"]
}

/// An envelope error the proxy turned into HTTP `code`: the upstream said 200, the error header
/// carries the code, and the body is the simulator's error envelope (not the proxy's own).
fn assert_api_error(a: &Answer, code: u16, needle: &str) {
    assert_eq!(a.status, code, "{}", a.body);
    assert_eq!(a.upstream_status.as_deref(), Some("200"), "{}", a.body);
    assert_eq!(a.error_code, Some(code.to_string()), "{}", a.body);
    assert_eq!(a.body["status"], "error", "{}", a.body);
    assert_eq!(a.body["error_code"], code, "{}", a.body);
    let message = a.body["message"].as_str().expect("message is a string");
    assert!(
        message.contains(needle),
        "message {message:?} should contain {needle:?}"
    );
    let mut expected = set(&["status", "error_code", "message"]);
    if code == 429 {
        expected.insert("retry_after".into());
    }
    assert_eq!(keys(&a.body), expected, "{}", a.body);
}

fn keys(v: &Value) -> BTreeSet<String> {
    v.as_object()
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default()
}

fn set(names: &[&str]) -> BTreeSet<String> {
    names.iter().map(|s| (*s).to_owned()).collect()
}

/// The `data` array of a success, checked for its length and every record's fields.
fn records<'a>(a: &'a Answer, len: usize, fields: &[&str]) -> &'a Vec<Value> {
    let rows = assert_success(a).as_array().expect("data is an array");
    assert_eq!(rows.len(), len, "{}", a.body);
    for row in rows {
        assert_eq!(keys(row), set(fields), "{row}");
    }
    rows
}

fn v1_fields(action: &str) -> &'static [&'static str] {
    match action {
        "campaigns" => &[
            "campaign_id",
            "name",
            "onlyfans_id",
            "onlyfans_username",
            "onlyfans_name",
            "url",
            "revshare_percent",
            "visits",
            "subscribers",
            "revenue",
            "created_at",
        ],
        "transactions" => &[
            "transaction_id",
            "campaign_id",
            "onlyfans_id",
            "fan_id",
            "type",
            "amount",
            "revenue",
            "is_undo",
            "created_at",
        ],
        "subscribers" => &[
            "of_user_id",
            "name",
            "onlyfans_id",
            "campaign_public_id",
            "campaign_type",
            "amount_spent",
            "subscribed_at",
            "badges",
        ],
        "ppc_orders" => &[
            "order_id",
            "onlyfans_id",
            "onlyfans_username",
            "url",
            "clicks_ordered",
            "clicks_delivered",
            "price_per_click",
            "total_earned",
            "status",
            "date_start",
            "date_finish",
            "created_at",
        ],
        other => panic!("no v1 list {other}"),
    }
}

/// The v2 endpoints and their record fields.
const V2: [(&str, &[&str]); 5] = [
    (
        "/api/marketer/revshare/campaigns",
        &[
            "public_id",
            "name",
            "of_account_id",
            "of_username",
            "url",
            "revshare_percent",
            "visits",
            "subscribers",
            "revenue",
            "created_at",
            "created_at_ts",
        ],
    ),
    (
        "/api/marketer/revshare/transactions",
        &[
            "transaction_id",
            "campaign_id",
            "of_account_id",
            "of_user_id",
            "type",
            "amount",
            "revenue",
            "is_undo",
            "created_at",
            "created_at_ts",
        ],
    ),
    (
        "/api/marketer/cpl/orders",
        &[
            "order_id",
            "offer_id",
            "of_account_id",
            "status",
            "quantity_ordered",
            "quantity_delivered",
            "price_per_subscriber",
            "total_earned",
            "created_at",
            "created_at_ts",
        ],
    ),
    (
        "/api/marketer/cpc/orders",
        &[
            "order_id",
            "of_account_id",
            "creative",
            "url",
            "clicks",
            "price_per_click",
            "total_earned",
            "status",
            "date_start",
            "date_finish",
            "created_at",
            "created_at_ts",
        ],
    ),
    (
        "/api/marketer/subscribers",
        &[
            "of_user_id",
            "name",
            "of_account_id",
            "campaign",
            "amount_spent",
            "subscribed_at",
            "subscribed_at_ts",
            "badges",
        ],
    ),
];

// -------------------------------------------------------------------------------------------
// Successes

#[tokio::test]
async fn v1_lists_succeed_in_both_encodings() {
    let s = stack(ROOMY).await;
    for action in V1_LISTS {
        let fields = v1_fields(action);
        let json = s
            .check(&v1_json(action, json!({"limit": 3, "offset": 2})))
            .await;
        records(&json, 3, fields);
        let form = s.check(&v1_form(action, "limit=3&offset=2")).await;
        records(&form, 3, fields);
        assert_eq!(json.raw, form.raw, "{action}: same page in both encodings");
        // The page really moved: offset 0 starts two records earlier.
        let first = s.check(&v1_json(action, json!({"limit": 3}))).await;
        assert_ne!(first.raw, json.raw, "{action}");
        assert_eq!(
            records(&first, 3, fields)[2..],
            records(&json, 3, fields)[..1]
        );
        // An empty body is the default page of 50.
        let empty = s
            .check(&Call::new(
                Method::POST,
                &format!("/api/marketer?do={action}"),
            ))
            .await;
        records(&empty, 50, fields);
    }
}

#[tokio::test]
async fn generate_link_succeeds_in_both_encodings() {
    let s = stack(ROOMY).await;
    let fields = set(&["url", "click_id", "expires_ts", "expires"]);
    let json = s
        .through(&v1_json(
            "generate_link",
            json!({"smartlink_id": 501, "click_id": "json-click"}),
        ))
        .await;
    let data = assert_success(&json);
    assert_eq!(keys(data), fields, "{data}");
    assert_eq!(data["click_id"], "json-click");
    assert_eq!(
        data["url"],
        "https://go.example.com/sl/501?click_id=json-click"
    );
    assert!(
        data["expires_ts"]
            .as_i64()
            .is_some_and(|t| t > 1_700_000_000)
    );
    assert!(
        data["expires"]
            .as_str()
            .is_some_and(|e| e.ends_with("+00:00"))
    );

    let form = s
        .through(&v1_form("generate_link", "smartlink_id=502&click_id=a%20b"))
        .await;
    let data = assert_success(&form);
    assert_eq!(keys(data), fields, "{data}");
    assert_eq!(data["click_id"], "a b");
    assert_eq!(data["url"], "https://go.example.com/sl/502?click_id=a%20b");

    // Without a click_id the simulator makes one.
    let made = s
        .through(&v1_form("generate_link", "smartlink_id=503"))
        .await;
    let data = assert_success(&made);
    let click = data["click_id"].as_str().expect("click_id");
    assert_eq!(click.len(), 12, "{data}");
    assert_eq!(
        data["url"],
        format!("https://go.example.com/sl/503?click_id={click}")
    );
}

#[tokio::test]
async fn v2_endpoints_succeed_with_query_or_json_body_pagination() {
    let s = stack(ROOMY).await;
    for (path, fields) in V2 {
        let page = s.check(&v2(&format!("{path}?limit=2&offset=1"))).await;
        records(&page, 2, fields);
        let wider = s.check(&v2(&format!("{path}?limit=3"))).await;
        assert_eq!(
            records(&wider, 3, fields)[1..],
            records(&page, 2, fields)[..]
        );
        // A GET body is forwarded too: pagination from a JSON body, as the spec allows.
        let body = s
            .check(&v2(path).body(Some(JSON), json!({"limit": 3}).to_string()))
            .await;
        assert_eq!(body.raw, wider.raw, "{path}");
    }
    // A filter reaches the simulator unchanged.
    let done = s
        .check(&v2("/api/marketer/cpc/orders?status=completed&limit=5"))
        .await;
    let rows = records(&done, 5, V2[3].1);
    assert!(rows.iter().all(|r| r["status"] == "completed"), "{rows:?}");
}

#[tokio::test]
async fn the_client_needs_no_key_and_its_own_never_reaches_the_simulator() {
    let s = stack(ROOMY).await;
    let call = v1_json("campaigns", json!({"limit": 1}));
    records(&s.through(&call).await, 1, v1_fields("campaigns"));
    // Whatever the client sends as Authorization is replaced by the simulator's key.
    for theirs in ["Bearer someone-elses-token", "wrong-key"] {
        let answer = s.send(&s.proxy, &call, Some(theirs)).await;
        records(&answer, 1, v1_fields("campaigns"));
    }
}

// -------------------------------------------------------------------------------------------
// Errors

#[tokio::test]
async fn invalid_parameters_are_422_in_both_encodings() {
    let s = stack(ROOMY).await;
    let lists: [(Value, &str, &str); 5] = [
        (
            json!({"limit": 5000}),
            "limit=5000",
            "limit must be an integer between 1 and 1000, got 5000",
        ),
        (
            json!({"limit": 0}),
            "limit=0",
            "limit must be an integer between 1 and 1000, got 0",
        ),
        (
            json!({"limit": "ten"}),
            "limit=ten",
            "limit must be an integer between 1 and 1000",
        ),
        (
            json!({"offset": -1}),
            "offset=-1",
            "offset must be a non-negative integer, got -1",
        ),
        (
            json!({"offset": "x"}),
            "offset=x",
            "offset must be a non-negative integer",
        ),
    ];
    for (json_body, form_body, message) in lists {
        for action in V1_LISTS {
            assert_api_error(
                &s.check(&v1_json(action, json_body.clone())).await,
                422,
                message,
            );
            assert_api_error(&s.check(&v1_form(action, form_body)).await, 422, message);
        }
    }

    let links: [(Value, &str, &str); 5] = [
        (json!({}), "", "smartlink_id is required"),
        (
            json!({"smartlink_id": "abc"}),
            "smartlink_id=abc",
            "smartlink_id must be an integer, got \"abc\"",
        ),
        (
            json!({"smartlink_id": 0}),
            "smartlink_id=0",
            "smartlink_id must be a positive integer, got 0",
        ),
        (
            json!({"smartlink_id": -3}),
            "smartlink_id=-3",
            "smartlink_id must be a positive integer, got -3",
        ),
        (
            json!({"smartlink_id": 7, "click_id": "abcdefghijklmnopq"}),
            "smartlink_id=7&click_id=abcdefghijklmnopq",
            "click_id must be at most 16 characters, got 17",
        ),
    ];
    for (json_body, form_body, message) in links {
        let json = s.check(&v1_json("generate_link", json_body)).await;
        assert_api_error(&json, 422, message);
        let form = s.check(&v1_form("generate_link", form_body)).await;
        assert_api_error(&form, 422, message);
    }
    let typed = s
        .check(&v1_json(
            "generate_link",
            json!({"smartlink_id": 7, "click_id": 12}),
        ))
        .await;
    assert_api_error(&typed, 422, "click_id must be a string");
    // None of the refused calls started a cooldown for smartlink 7.
    let ok = s
        .through(&v1_json("generate_link", json!({"smartlink_id": 7})))
        .await;
    assert_success(&ok);
}

#[tokio::test]
async fn malformed_bodies_are_422() {
    let s = stack(ROOMY).await;
    let post = |content_type: Option<&'static str>, body: &[u8]| {
        Call::new(Method::POST, "/api/marketer?do=campaigns").body(content_type, body)
    };
    let cases: [(Option<&'static str>, Vec<u8>, &str); 7] = [
        (
            Some(JSON),
            b"{\"limit\": 3".to_vec(),
            "malformed body: invalid JSON",
        ),
        (
            Some(JSON),
            b"[1, 2]".to_vec(),
            "expected a JSON object, got an array",
        ),
        (
            Some(JSON),
            b"limit=3".to_vec(),
            "malformed body: invalid JSON",
        ),
        (Some(FORM), b"limit=%zz".to_vec(), "malformed body"),
        (
            Some("text/plain"),
            b"limit=3".to_vec(),
            "Content-Type \"text/plain\" is not supported",
        ),
        (
            None,
            b"{\"limit\": 3}".to_vec(),
            "Content-Type (none) is not supported",
        ),
        (
            Some(FORM),
            format!("limit=3&pad={}", "x".repeat(70 * 1024)).into_bytes(),
            "larger than 64 KiB",
        ),
    ];
    for (content_type, body, message) in cases {
        assert_api_error(&s.check(&post(content_type, &body)).await, 422, message);
    }
}

#[tokio::test]
async fn invalid_v2_parameters_are_422() {
    let s = stack(ROOMY).await;
    let cases = [
        (
            "/api/marketer/revshare/campaigns?limit=5000",
            "limit must be an integer between 1 and 1000, got 5000",
        ),
        (
            "/api/marketer/revshare/transactions?offset=-1",
            "offset must be a non-negative integer",
        ),
        (
            "/api/marketer/revshare/transactions?of_account_id=abc",
            "of_account_id must be an integer",
        ),
        (
            "/api/marketer/cpl/orders?status=bogus",
            "status must be one of",
        ),
        (
            "/api/marketer/cpc/orders?status=paused",
            "status must be one of",
        ),
        (
            "/api/marketer/subscribers?from=2024-13-01",
            "from must be a date in Y-m-d format",
        ),
        (
            "/api/marketer/subscribers?from=2024-02-02&to=2024-02-01",
            "from must not be after to",
        ),
        (
            "/api/marketer/subscribers?sort=newest",
            "sort must be one of",
        ),
        (
            "/api/marketer/subscribers?campaign_type=ppc",
            "campaign_type must be one of",
        ),
        (
            "/api/marketer/subscribers?limit=%zz",
            "malformed query string",
        ),
    ];
    for (path, message) in cases {
        assert_api_error(&s.check(&v2(path)).await, 422, message);
    }
    // Pagination from a JSON body is checked too.
    let body = v2("/api/marketer/cpl/orders").body(Some(JSON), json!({"limit": 0}).to_string());
    assert_api_error(
        &s.check(&body).await,
        422,
        "limit must be an integer between 1 and 1000, got 0",
    );
}

#[tokio::test]
async fn unknown_routes_actions_and_methods_are_404() {
    let s = stack(ROOMY).await;
    let cases = [
        (v1_json("nope", json!({})), "unknown action do=\"nope\""),
        (v1_form("nope", "limit=1"), "unknown action do=\"nope\""),
        // 404 (route) is checked before 422 (parameters).
        (
            v1_json("referred_subscribers", json!({"limit": 5000})),
            "expected one of campaigns, transactions, subscribers, ppc_orders, generate_link",
        ),
        (
            Call::new(Method::POST, "/api/marketer").body(Some(JSON), "{}"),
            "missing do parameter",
        ),
        (
            Call::new(Method::POST, "/api/marketer").body(Some(FORM), "do=campaigns"),
            "missing do parameter",
        ),
        (
            Call::new(Method::GET, "/api/marketer?do=campaigns"),
            "this path only accepts POST",
        ),
        (
            Call::new(Method::POST, "/api/marketer/subscribers").body(Some(JSON), "{}"),
            "this path only accepts GET",
        ),
        (
            Call::new(Method::DELETE, "/api/marketer/cpc/orders"),
            "this path only accepts GET",
        ),
        (
            v2("/api/marketer/unknown"),
            "no route for GET /api/marketer/unknown",
        ),
        (v2("/"), "no route for GET /"),
    ];
    for (call, message) in cases {
        assert_api_error(&s.check(&call).await, 404, message);
    }
}

#[tokio::test]
async fn a_proxy_with_the_wrong_key_answers_401() {
    let s = stack_with(ROOMY, "not-the-simulator-key", pass_through).await;
    for call in [
        v1_json("campaigns", json!({"limit": 1})),
        v1_form("generate_link", "smartlink_id=9"),
        v2("/api/marketer/subscribers"),
    ] {
        assert_api_error(&s.through(&call).await, 401, "invalid API key");
        // The right key from the client does not help: the proxy sends its own.
        let answer = s.send(&s.proxy, &call, Some(SIM_KEY)).await;
        assert_api_error(&answer, 401, "invalid API key");
    }

    // `[status_map]` can present the proxy's bad key as a gateway problem; the body stays the
    // simulator's.
    let mapped = stack_with(ROOMY, "not-the-simulator-key", |settings| {
        pass_through(settings);
        settings.status_map.insert("401".into(), 502);
    })
    .await;
    let answer = mapped.through(&v2("/api/marketer/cpl/orders")).await;
    assert_eq!(answer.status, 502, "{}", answer.body);
    assert_eq!(answer.upstream_status.as_deref(), Some("200"));
    assert_eq!(answer.error_code.as_deref(), Some("401"));
    assert_eq!(
        answer.body,
        json!({"status": "error", "error_code": 401, "message": "invalid API key"})
    );
}

#[tokio::test]
async fn the_simulators_key_rate_is_429_through_the_proxy() {
    let s = stack("3/1h").await;
    let calls = [
        v1_json("campaigns", json!({"limit": 1})),
        v1_form("transactions", "limit=1"),
        v2("/api/marketer/subscribers?limit=1"),
    ];
    for call in &calls {
        assert_success(&s.through(call).await);
    }
    let refused = s.through(&calls[0]).await;
    assert_api_error(
        &refused,
        429,
        "rate limit exceeded: this key may make 3 requests per 1h; retry in 3600 s",
    );
    assert_eq!(refused.body["retry_after"], 3600);
    // From here on the proxy holds every call back itself (its cooldown, see
    // `the_proxy_honours_the_simulators_retry_after`), so the simulator's window is checked
    // directly: every kind of call is refused, form bodies and v2 included...
    s.clock.advance(Duration::from_secs(3599));
    for call in &calls[1..] {
        let answer = s.direct(call).await;
        assert_eq!(answer.body["error_code"], 429, "{}", answer.body);
        assert_eq!(answer.body["retry_after"], 1, "{}", answer.body);
    }
    // ...and a new window opens when the hour is over.
    s.clock.advance(Duration::from_secs(1));
    assert_eq!(s.direct(&calls[0]).await.body["status"], "success");
}

#[tokio::test]
async fn generate_link_twice_is_429_and_the_cooldown_ends_after_five_minutes() {
    // The proxy's own generate_link rule stays on: an upstream per-smartlink 429 without it
    // would (rightly) pause the whole key.
    let s = stack_with(ROOMY, SIM_KEY, |settings| settings.retry.max_attempts = 1).await;
    let first = s
        .through(&v1_json("generate_link", json!({"smartlink_id": 77})))
        .await;
    assert_success(&first);

    // The second call for the same smartlink, in the other encoding, is 429. It may be answered
    // by the simulator (its envelope, passed through) or by a proxy-side per-smartlink rule (the
    // proxy's own envelope); both are right.
    let second = s
        .through(&v1_form("generate_link", "smartlink_id=77"))
        .await;
    assert_eq!(second.status, 429, "{}", second.body);
    assert_eq!(second.body["status"], "error", "{}", second.body);
    assert_eq!(second.body["error_code"], 429, "{}", second.body);
    if second.body.get("source").is_none() {
        assert_api_error(
            &second,
            429,
            "generate_link allows 1 request per smartlink_id every 5 minutes; \
             smartlink_id 77 can be used again in 300 s",
        );
        assert_eq!(second.body["retry_after"], 300);
    } else {
        assert_eq!(second.body["source"], "proxy", "{}", second.body);
    }
    // The simulator itself holds smartlink 77 back as well.
    let held = s
        .direct(&v1_json("generate_link", json!({"smartlink_id": 77})))
        .await;
    assert_eq!(held.body["error_code"], 429, "{}", held.body);

    // Another smartlink is independent.
    assert_success(
        &s.through(&v1_form("generate_link", "smartlink_id=78"))
            .await,
    );

    s.clock.advance(Duration::from_secs(5 * 60));
    // Five simulated minutes later a link is granted again: through the proxy for a smartlink
    // the proxy has not seen (a proxy-side rule would run on real time), and straight from the
    // simulator for smartlink 77.
    let fresh = s
        .through(&v1_json("generate_link", json!({"smartlink_id": 79})))
        .await;
    assert_eq!(
        assert_success(&fresh)["url"],
        format!(
            "https://go.example.com/sl/79?click_id={}",
            fresh.body["data"]["click_id"].as_str().unwrap_or_default()
        )
    );
    let again = s
        .direct(&v1_json("generate_link", json!({"smartlink_id": 77})))
        .await;
    assert_eq!(again.body["status"], "success", "{}", again.body);
    // Expiry follows the simulator's clock: five minutes after the first link's.
    assert_eq!(
        again.body["data"]["expires_ts"].as_i64(),
        first.body["data"]["expires_ts"].as_i64().map(|t| t + 300)
    );
}

#[tokio::test]
async fn the_proxy_honours_the_simulators_retry_after() {
    // The proxy's default policies: retries, cooldown, the generate_link rule.
    let s = stack_with("2/1h", SIM_KEY, |_| {}).await;
    let call = v2("/api/marketer/subscribers?limit=1");
    assert_success(&s.through(&call).await);
    assert_success(&s.through(&call).await);
    // The simulator refuses with retry_after 3600 in its body: a wait past timeouts.total, so
    // the proxy does not retry and hands the 429 on at once, with that Retry-After.
    let refused = s.through(&call).await;
    assert_api_error(&refused, 429, "retry in 3600 s");
    assert_eq!(
        refused.headers.get("retry-after").map(String::as_str),
        Some("3600")
    );
    assert_eq!(
        refused.headers.get("x-proxy-attempts").map(String::as_str),
        Some("1")
    );
    // The key is over quota: the whole limiter cools down, and the next call is refused by the
    // proxy itself without reaching the simulator.
    let held = s.through(&v1_json("campaigns", json!({"limit": 1}))).await;
    assert_eq!(held.status, 429, "{}", held.body);
    assert_eq!(held.body["source"], "proxy", "{}", held.body);
    let retry_after: u64 = held.headers["retry-after"].parse().expect("whole seconds");
    assert!((3590..=3600).contains(&retry_after), "{retry_after}");
}
