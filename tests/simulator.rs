//! End-to-end tests of the OnlyTraffic Partners API simulator over real sockets: every action and
//! endpoint, both v1 body encodings, v2 query and JSON-body pagination, filters, record shapes,
//! and every error path. Time windows are driven with `ManualClock`, never with sleeps.

use std::sync::Arc;
use std::time::Duration;

use onlytraffic_proxy::simulator::{
    self, DEFAULT_KEY, DEFAULT_LISTEN, DEFAULT_RATE, ManualClock, SimRate, SimulatorConfig,
};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE};
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

const KEY: &str = "test-key-123";
/// A budget the functional tests never reach.
const ROOMY: &str = "100000/1m";
const FORM: &str = "application/x-www-form-urlencoded";

/// A simulator running on an ephemeral port, with the clock it reads.
struct Sim {
    base: String,
    clock: Arc<ManualClock>,
    client: reqwest::Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<std::io::Result<()>>,
}

async fn start(rate: &str) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind an ephemeral port");
    let addr = listener.local_addr().expect("local addr");
    let clock = Arc::new(ManualClock::new());
    let config = SimulatorConfig::new(KEY, rate.parse().expect("test rate parses"))
        .with_clock(clock.clone());
    let (stop, stopped) = oneshot::channel::<()>();
    let task = tokio::spawn(simulator::serve(listener, config, async move {
        let _ = stopped.await;
    }));
    Sim {
        base: format!("http://{addr}"),
        clock,
        client: reqwest::Client::builder()
            .no_proxy()
            .build()
            .expect("build client"),
        stop,
        task,
    }
}

impl Sim {
    fn url(&self, path_and_query: &str) -> String {
        format!("{}{path_and_query}", self.base)
    }

    /// Sends a request and returns its JSON body, after checking the transport-level contract:
    /// HTTP 200 and `Content-Type: application/json`, whatever the outcome.
    async fn send(&self, request: reqwest::RequestBuilder) -> Value {
        let response = request.send().await.expect("request reaches the simulator");
        assert_eq!(response.status(), 200, "every answer is HTTP 200");
        let content_type = response
            .headers()
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        assert_eq!(content_type, "application/json");
        response.json().await.expect("body is JSON")
    }

    async fn v1_json(&self, action: &str, body: Value) -> Value {
        let req = self
            .client
            .post(self.url(&format!("/api/marketer?do={action}")))
            .header(AUTHORIZATION, KEY)
            .json(&body);
        self.send(req).await
    }

    async fn v1_form(&self, action: &str, body: &str) -> Value {
        let req = self
            .client
            .post(self.url(&format!("/api/marketer?do={action}")))
            .header(AUTHORIZATION, KEY)
            .header(CONTENT_TYPE, FORM)
            .body(body.to_owned());
        self.send(req).await
    }

    async fn v2(&self, path_and_query: &str) -> Value {
        let req = self
            .client
            .get(self.url(path_and_query))
            .header(AUTHORIZATION, KEY);
        self.send(req).await
    }

    async fn v2_json(&self, path_and_query: &str, body: Value) -> Value {
        let req = self
            .client
            .get(self.url(path_and_query))
            .header(AUTHORIZATION, KEY)
            .json(&body);
        self.send(req).await
    }

    async fn shutdown(self) {
        let _ = self.stop.send(());
        let result = self.task.await.expect("server task did not panic");
        assert!(result.is_ok(), "serve returned {result:?}");
    }
}

/// The `data` array of a success envelope.
fn data(body: &Value) -> &Vec<Value> {
    assert_eq!(body["status"], "success", "expected success, got {body}");
    assert_eq!(body.as_object().map(|o| o.len()), Some(2), "{body}");
    body["data"].as_array().expect("data is an array")
}

/// Asserts an error envelope with a numeric `error_code` and a message containing `needle`.
fn assert_error(body: &Value, code: u64, needle: &str) {
    assert_eq!(body["status"], "error", "expected an error, got {body}");
    assert!(
        body["error_code"].is_u64(),
        "error_code is a JSON number: {body}"
    );
    assert_eq!(body["error_code"].as_u64(), Some(code), "{body}");
    let message = body["message"].as_str().expect("message is a string");
    assert!(
        message.contains(needle),
        "message {message:?} should contain {needle:?}"
    );
}

fn ints(records: &[Value], field: &str) -> Vec<i64> {
    records
        .iter()
        .map(|r| r[field].as_i64().expect("integer field"))
        .collect()
}

/// Days since 1970-01-01 (proleptic Gregorian), to check ISO dates against Unix times.
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * ((m + 9) % 12) + 2) / 5 + d - 1;
    era * 146_097 + yoe * 365 + yoe / 4 - yoe / 100 + doy - 719_468
}

/// Parses `YYYY-MM-DDTHH:MM:SS+00:00` (the only form the v2 docs show) into Unix seconds.
fn iso_to_unix(s: &str) -> i64 {
    assert_eq!(s.len(), 25, "{s}");
    assert!(s.ends_with("+00:00"), "{s}");
    assert_eq!((&s[4..5], &s[7..8], &s[10..11]), ("-", "-", "T"), "{s}");
    let n = |a: usize, b: usize| -> i64 { s[a..b].parse().expect("digits") };
    days_from_civil(n(0, 4), n(5, 7), n(8, 10)) * 86_400
        + n(11, 13) * 3600
        + n(14, 16) * 60
        + n(17, 19)
}

fn assert_dual_date(record: &Value, iso_field: &str, ts_field: &str) {
    let iso = record[iso_field].as_str().expect("ISO date string");
    let ts = record[ts_field].as_i64().expect("Unix date integer");
    assert_eq!(
        iso_to_unix(iso),
        ts,
        "{iso_field} vs {ts_field} in {record}"
    );
}

// -------------------------------------------------------------------------------------------
// v1

const V1_LISTS: [&str; 4] = ["campaigns", "transactions", "subscribers", "ppc_orders"];

#[tokio::test]
async fn v1_lists_answer_with_json_and_form_bodies_alike() {
    let sim = start(ROOMY).await;
    for action in V1_LISTS {
        let from_json = sim.v1_json(action, json!({"limit": 3, "offset": 2})).await;
        let from_form = sim.v1_form(action, "limit=3&offset=2").await;
        let from_strings = sim
            .v1_json(action, json!({"limit": "3", "offset": "2"}))
            .await;
        assert_eq!(data(&from_json).len(), 3, "{action}");
        assert_eq!(from_json, from_form, "{action}: form vs JSON");
        assert_eq!(
            from_json, from_strings,
            "{action}: numeric strings vs numbers"
        );
        for record in data(&from_json) {
            // v1 dates are Unix timestamps only.
            for (field, value) in record.as_object().expect("record is an object") {
                if field.ends_with("_at") || field.starts_with("date_") {
                    assert!(
                        value.is_i64() || (field == "date_finish" && value.is_null()),
                        "{action}.{field} = {value}"
                    );
                }
            }
        }
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn v1_empty_body_means_default_page_of_50() {
    let sim = start(ROOMY).await;
    let no_body = sim
        .send(
            sim.client
                .post(sim.url("/api/marketer?do=campaigns"))
                .header(AUTHORIZATION, KEY),
        )
        .await;
    assert_eq!(data(&no_body).len(), 50);
    let empty_json = sim
        .send(
            sim.client
                .post(sim.url("/api/marketer?do=campaigns"))
                .header(AUTHORIZATION, KEY)
                .header(CONTENT_TYPE, "application/json"),
        )
        .await;
    assert_eq!(no_body, empty_json);
    // Form clients send unused fields empty; empty means "not given".
    let empty_fields = sim.v1_form("campaigns", "limit=&offset=").await;
    assert_eq!(no_body, empty_fields);
    sim.shutdown().await;
}

#[tokio::test]
async fn v1_record_shapes() {
    let sim = start(ROOMY).await;

    let transactions = sim.v1_json("transactions", json!({"limit": 200})).await;
    let transactions = data(&transactions);
    assert_eq!(transactions.len(), 200);
    assert!(transactions.iter().all(|t| t["is_undo"].is_boolean()));
    assert!(
        transactions.iter().any(|t| t["is_undo"] == true),
        "some refunds in 200 transactions"
    );
    let tx = &transactions[0];
    assert!(
        tx["transaction_id"].is_i64() && tx["campaign_id"].is_i64(),
        "{tx}"
    );
    assert!(
        tx["amount"].is_number() && tx["revenue"].is_number(),
        "{tx}"
    );

    let orders = sim.v1_form("ppc_orders", "limit=100").await;
    let orders = data(&orders);
    assert_eq!(orders.len(), 100);
    for o in orders {
        let ordered = o["clicks_ordered"]
            .as_i64()
            .expect("clicks_ordered integer");
        let delivered = o["clicks_delivered"]
            .as_i64()
            .expect("clicks_delivered integer");
        assert!(delivered <= ordered, "{o}");
        assert!(o.get("clicks").is_none(), "v1 is flat: {o}");
        // v1 lists accepted orders only.
        assert!(
            matches!(o["status"].as_str(), Some("active" | "completed")),
            "{o}"
        );
        assert!(
            o["order_id"]
                .as_str()
                .is_some_and(|id| id.starts_with("ppco_"))
        );
    }

    let campaigns = sim.v1_json("campaigns", json!({"limit": 1})).await;
    let c = &data(&campaigns)[0];
    for field in [
        "campaign_id",
        "onlyfans_id",
        "visits",
        "subscribers",
        "created_at",
    ] {
        assert!(c[field].is_i64(), "campaigns.{field}: {c}");
    }
    assert!(
        c["name"].is_string() && c["onlyfans_username"].is_string(),
        "{c}"
    );

    let subscribers = sim.v1_json("subscribers", json!({"limit": 1})).await;
    let s = &data(&subscribers)[0];
    assert!(
        s["of_user_id"].is_i64() && s["subscribed_at"].is_i64(),
        "{s}"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v1_pagination_windows_differ_and_are_stable() {
    let sim = start(ROOMY).await;
    for action in V1_LISTS {
        let first = sim.v1_json(action, json!({"limit": 10})).await;
        let again = sim.v1_form(action, "limit=10&offset=0").await;
        assert_eq!(first, again, "{action}: same page twice");
        let shifted = sim.v1_json(action, json!({"limit": 5, "offset": 5})).await;
        assert_eq!(
            data(&first)[5..],
            data(&shifted)[..],
            "{action}: windows line up"
        );
        let next = sim
            .v1_json(action, json!({"limit": 10, "offset": 10}))
            .await;
        assert_ne!(data(&first), data(&next), "{action}: windows differ");
        let beyond = sim
            .v1_json(action, json!({"limit": 10, "offset": 1_000_000}))
            .await;
        assert!(data(&beyond).is_empty(), "{action}: past the end is empty");
    }
    let big = sim.v1_json("transactions", json!({"limit": 1000})).await;
    assert_eq!(data(&big).len(), 1000);
    sim.shutdown().await;
}

#[tokio::test]
async fn v1_invalid_parameters_are_422_in_both_encodings() {
    let sim = start(ROOMY).await;
    let limit_msg = "limit must be an integer between 1 and 1000, got";
    let cases: [(Value, &str, &str); 5] = [
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
        (json!({"limit": "ten"}), "limit=ten", limit_msg),
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
    for (json_body, form_body, message) in cases {
        for action in V1_LISTS {
            assert_error(&sim.v1_json(action, json_body.clone()).await, 422, message);
            assert_error(&sim.v1_form(action, form_body).await, 422, message);
        }
    }
    assert_error(
        &sim.v1_json("campaigns", json!({"limit": 2.5})).await,
        422,
        "limit must be an integer between 1 and 1000, got 2.5",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v1_malformed_bodies_are_422() {
    let sim = start(ROOMY).await;
    let post = |content_type: Option<&str>, body: &str| {
        let mut req = sim
            .client
            .post(sim.url("/api/marketer?do=campaigns"))
            .header(AUTHORIZATION, KEY)
            .body(body.to_owned());
        if let Some(ct) = content_type {
            req = req.header(CONTENT_TYPE, ct);
        }
        req
    };
    let json_ct = Some("application/json");
    assert_error(
        &sim.send(post(json_ct, "limit=3")).await,
        422,
        "malformed body",
    );
    assert_error(
        &sim.send(post(json_ct, "{\"limit\": 3")).await,
        422,
        "malformed body",
    );
    assert_error(
        &sim.send(post(json_ct, "[1, 2]")).await,
        422,
        "malformed body",
    );
    assert_error(
        &sim.send(post(Some(FORM), "limit=%zz")).await,
        422,
        "malformed body",
    );
    assert_error(
        &sim.send(post(Some("text/plain"), "limit=3")).await,
        422,
        "malformed body",
    );
    assert_error(
        &sim.send(post(None, "{\"limit\": 3}")).await,
        422,
        "malformed body",
    );
    // The charset parameter does not matter.
    let ok = sim
        .send(post(
            Some("application/json; charset=utf-8"),
            "{\"limit\": 2}",
        ))
        .await;
    assert_eq!(data(&ok).len(), 2);
    sim.shutdown().await;
}

#[tokio::test]
async fn v1_unknown_or_missing_action_is_404() {
    let sim = start(ROOMY).await;
    assert_error(
        &sim.v1_json("nope", json!({})).await,
        404,
        "unknown action do=\"nope\"",
    );
    assert_error(
        &sim.v1_form("referred_subscribers", "").await,
        404,
        "expected one of",
    );
    let missing = sim
        .send(
            sim.client
                .post(sim.url("/api/marketer"))
                .header(AUTHORIZATION, KEY),
        )
        .await;
    assert_error(&missing, 404, "missing do parameter");
    // 404 (route) is checked before 422 (params).
    assert_error(
        &sim.v1_json("nope", json!({"limit": 5000})).await,
        404,
        "unknown action",
    );
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------
// generate_link

#[tokio::test]
async fn generate_link_success_shape_in_both_encodings() {
    let sim = start(ROOMY).await;
    let body = sim
        .v1_json(
            "generate_link",
            json!({"smartlink_id": 42, "click_id": "abc-123"}),
        )
        .await;
    assert_eq!(body["status"], "success", "{body}");
    let link = body["data"].as_object().expect("data is an object");
    let mut fields: Vec<&str> = link.keys().map(String::as_str).collect();
    fields.sort_unstable();
    assert_eq!(fields, ["click_id", "expires", "expires_ts", "url"]);
    assert_eq!(link["click_id"], "abc-123");
    let url = link["url"].as_str().expect("url string");
    assert!(
        url.starts_with("https://") && url.contains("42") && url.contains("abc-123"),
        "{url}"
    );
    let expires_ts = link["expires_ts"].as_i64().expect("expires_ts integer");
    assert!(
        expires_ts > 1_700_000_000,
        "expires_ts is a Unix time: {expires_ts}"
    );
    assert_eq!(
        iso_to_unix(link["expires"].as_str().expect("expires string")),
        expires_ts
    );

    // Form body, numeric string id, no click_id: one is generated.
    let body = sim.v1_form("generate_link", "smartlink_id=43").await;
    let click_id = body["data"]["click_id"]
        .as_str()
        .expect("generated click_id");
    assert!(
        !click_id.is_empty() && click_id.chars().count() <= 16,
        "{click_id}"
    );
    // Exactly 16 characters is allowed.
    let body = sim
        .v1_form("generate_link", "smartlink_id=44&click_id=abcdefghijklmnop")
        .await;
    assert_eq!(body["data"]["click_id"], "abcdefghijklmnop");
    sim.shutdown().await;
}

#[tokio::test]
async fn generate_link_invalid_parameters_are_422() {
    let sim = start(ROOMY).await;
    let json_cases = [
        (json!({}), "smartlink_id is required"),
        (json!({"click_id": "x"}), "smartlink_id is required"),
        (
            json!({"smartlink_id": "abc"}),
            "smartlink_id must be an integer, got \"abc\"",
        ),
        (
            json!({"smartlink_id": 4.5}),
            "smartlink_id must be an integer, got 4.5",
        ),
        (
            json!({"smartlink_id": true}),
            "smartlink_id must be an integer",
        ),
        (
            json!({"smartlink_id": 0}),
            "smartlink_id must be a positive integer, got 0",
        ),
        (
            json!({"smartlink_id": 7, "click_id": "abcdefghijklmnopq"}),
            "click_id must be at most 16 characters, got 17",
        ),
        (
            json!({"smartlink_id": 7, "click_id": 12}),
            "click_id must be a string",
        ),
    ];
    for (body, message) in json_cases {
        assert_error(&sim.v1_json("generate_link", body).await, 422, message);
    }
    let form_cases = [
        ("", "smartlink_id is required"),
        ("smartlink_id=", "smartlink_id is required"),
        (
            "smartlink_id=abc",
            "smartlink_id must be an integer, got \"abc\"",
        ),
        (
            "smartlink_id=7&click_id=abcdefghijklmnopq",
            "click_id must be at most 16 characters",
        ),
    ];
    for (body, message) in form_cases {
        assert_error(&sim.v1_form("generate_link", body).await, 422, message);
    }
    // None of the refused calls started a cooldown.
    let ok = sim
        .v1_json("generate_link", json!({"smartlink_id": 7}))
        .await;
    assert_eq!(ok["status"], "success", "{ok}");
    sim.shutdown().await;
}

#[tokio::test]
async fn generate_link_allows_one_call_per_smartlink_per_five_minutes() {
    let sim = start(ROOMY).await;
    let first = sim
        .v1_json("generate_link", json!({"smartlink_id": 42}))
        .await;
    assert_eq!(first["status"], "success", "{first}");
    let first_expiry = first["data"]["expires_ts"].as_i64().expect("expires_ts");

    // Same smartlink, other encoding: refused, with the full window left.
    let second = sim.v1_form("generate_link", "smartlink_id=42").await;
    assert_error(&second, 429, "smartlink_id 42 can be used again in 300 s");
    assert_eq!(second["retry_after"], 300);

    // Another smartlink is independent.
    let other = sim
        .v1_json("generate_link", json!({"smartlink_id": 43}))
        .await;
    assert_eq!(other["status"], "success", "{other}");

    sim.clock.advance(Duration::from_secs(299));
    let almost = sim
        .v1_json("generate_link", json!({"smartlink_id": 42}))
        .await;
    assert_error(
        &almost,
        429,
        "generate_link allows 1 request per smartlink_id every 5 minutes",
    );
    assert_eq!(almost["retry_after"], 1);

    sim.clock.advance(Duration::from_secs(1));
    let again = sim
        .v1_json("generate_link", json!({"smartlink_id": 42}))
        .await;
    assert_eq!(again["status"], "success", "{again}");
    // Expiry follows the simulator's clock.
    assert_eq!(
        again["data"]["expires_ts"].as_i64(),
        Some(first_expiry + 300)
    );
    // And a fresh window started.
    let refused = sim
        .v1_json("generate_link", json!({"smartlink_id": 42}))
        .await;
    assert_error(&refused, 429, "smartlink_id 42");
    // 43 was generated at t=0, so it is free again too.
    let other_again = sim.v1_form("generate_link", "smartlink_id=43").await;
    assert_eq!(other_again["status"], "success", "{other_again}");
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------
// v2

const V2_PATHS: [&str; 5] = [
    "/api/marketer/revshare/campaigns",
    "/api/marketer/revshare/transactions",
    "/api/marketer/cpl/orders",
    "/api/marketer/cpc/orders",
    "/api/marketer/subscribers",
];

#[tokio::test]
async fn v2_pagination_from_query_or_json_body() {
    let sim = start(ROOMY).await;
    for path in V2_PATHS {
        let default = sim.v2(path).await;
        assert_eq!(data(&default).len(), 50, "{path}: default limit");
        let by_query = sim.v2(&format!("{path}?offset=3&limit=4")).await;
        let by_body = sim.v2_json(path, json!({"offset": 3, "limit": 4})).await;
        let by_string_body = sim
            .v2_json(path, json!({"offset": "3", "limit": "4"}))
            .await;
        assert_eq!(data(&by_query).len(), 4, "{path}");
        assert_eq!(by_query, by_body, "{path}: query vs JSON body");
        assert_eq!(by_query, by_string_body, "{path}: numeric strings");
        assert_eq!(data(&default)[3..7], data(&by_query)[..], "{path}: window");
        // Query wins over body, field by field.
        let mixed = sim
            .v2_json(
                &format!("{path}?limit=4"),
                json!({"offset": 3, "limit": 999}),
            )
            .await;
        assert_eq!(
            by_query, mixed,
            "{path}: query limit wins, body offset used"
        );
        let next = sim.v2(&format!("{path}?offset=7&limit=4")).await;
        assert_ne!(data(&by_query), data(&next), "{path}: windows differ");
        assert_eq!(
            sim.v2(&format!("{path}?offset=3&limit=4")).await,
            by_query,
            "{path}: stable"
        );
        let max = sim.v2(&format!("{path}?limit=1000")).await;
        assert_eq!(
            data(&max).len(),
            1000,
            "{path}: every list has over 1000 records"
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn v2_data_is_identical_across_simulator_instances() {
    let a = start(ROOMY).await;
    let b = start(ROOMY).await;
    for path in V2_PATHS {
        let q = format!("{path}?offset=17&limit=9");
        assert_eq!(a.v2(&q).await, b.v2(&q).await, "{path}");
    }
    a.shutdown().await;
    b.shutdown().await;
}

#[tokio::test]
async fn v2_invalid_pagination_is_422_from_query_and_body() {
    let sim = start(ROOMY).await;
    for path in V2_PATHS {
        assert_error(
            &sim.v2(&format!("{path}?limit=5000")).await,
            422,
            "limit must be an integer between 1 and 1000, got 5000",
        );
        assert_error(
            &sim.v2(&format!("{path}?limit=0")).await,
            422,
            "limit must be an integer between 1 and 1000, got 0",
        );
        assert_error(
            &sim.v2(&format!("{path}?offset=-1")).await,
            422,
            "offset must be a non-negative integer, got -1",
        );
        assert_error(
            &sim.v2(&format!("{path}?limit=abc")).await,
            422,
            "limit must be an integer between 1 and 1000, got \"abc\"",
        );
        assert_error(
            &sim.v2_json(path, json!({"limit": 1001})).await,
            422,
            "limit must be an integer between 1 and 1000, got 1001",
        );
        assert_error(
            &sim.v2_json(path, json!({"offset": -5})).await,
            422,
            "offset must be a non-negative integer, got -5",
        );
        let malformed = sim
            .send(
                sim.client
                    .get(sim.url(path))
                    .header(AUTHORIZATION, KEY)
                    .header(CONTENT_TYPE, "application/json")
                    .body("{not json"),
            )
            .await;
        assert_error(&malformed, 422, "malformed body");
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn v2_cpc_order_has_the_documented_shape() {
    let sim = start(ROOMY).await;
    let mut saw_null_finish = false;
    let mut saw_int_finish = false;
    for status in ["active", "completed", "waiting", "rejected"] {
        let body = sim
            .v2(&format!(
                "/api/marketer/cpc/orders?status={status}&limit=100"
            ))
            .await;
        let orders = data(&body);
        assert!(!orders.is_empty(), "{status}");
        for o in orders {
            let keys: Vec<&str> = o
                .as_object()
                .expect("object")
                .keys()
                .map(String::as_str)
                .collect();
            let mut keys = keys;
            keys.sort_unstable();
            assert_eq!(
                keys,
                [
                    "clicks",
                    "created_at",
                    "created_at_ts",
                    "creative",
                    "date_finish",
                    "date_start",
                    "of_account_id",
                    "order_id",
                    "price_per_click",
                    "status",
                    "total_earned",
                    "url"
                ]
            );
            assert!(
                o["order_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("ppco_")),
                "{o}"
            );
            let account = o["of_account_id"].as_i64().expect("of_account_id integer");
            assert_eq!(o["status"], status);

            let creative = o["creative"].as_object().expect("creative object");
            let mut ckeys: Vec<&str> = creative.keys().map(String::as_str).collect();
            ckeys.sort_unstable();
            assert_eq!(
                ckeys,
                [
                    "categories",
                    "description",
                    "name",
                    "of_account_id",
                    "picture",
                    "picture_thumb",
                    "pictures",
                    "price",
                    "public_id",
                    "username",
                    "uuid"
                ]
            );
            assert_eq!(creative["of_account_id"].as_i64(), Some(account));
            assert!(
                creative["public_id"]
                    .as_str()
                    .is_some_and(|s| s.starts_with("cre_"))
            );
            let uuid = creative["uuid"].as_str().expect("uuid string");
            assert_eq!(uuid.len(), 36);
            assert_eq!(uuid.matches('-').count(), 4);
            for field in [
                "name",
                "username",
                "picture",
                "picture_thumb",
                "description",
            ] {
                assert!(creative[field].is_string(), "creative.{field}: {o}");
            }
            assert!(creative["price"].is_number());
            let pictures = creative["pictures"].as_array().expect("pictures array");
            assert!(!pictures.is_empty());
            for p in pictures {
                assert!(p["full"].is_string() && p["thumb"].is_string(), "{p}");
                assert_eq!(p.as_object().map(|o| o.len()), Some(2));
            }
            assert_eq!(creative["picture"], pictures[0]["full"]);
            let categories = creative["categories"].as_array().expect("categories array");
            assert!(!categories.is_empty() && categories.iter().all(Value::is_string));

            assert!(o["url"].is_string());
            let ordered = o["clicks"]["ordered"]
                .as_i64()
                .expect("clicks.ordered integer");
            let delivered = o["clicks"]["delivered"]
                .as_i64()
                .expect("clicks.delivered integer");
            assert_eq!(o["clicks"].as_object().map(|c| c.len()), Some(2));
            assert!(delivered <= ordered);
            let ppc = o["price_per_click"]
                .as_f64()
                .expect("price_per_click number");
            let earned = o["total_earned"].as_f64().expect("total_earned number");
            assert!((earned - ppc * delivered as f64).abs() < 0.01, "{o}");

            let start = o["date_start"].as_i64().expect("date_start integer");
            match &o["date_finish"] {
                Value::Null => saw_null_finish = true,
                finish => {
                    let finish = finish.as_i64().expect("date_finish integer or null");
                    assert!(finish > start, "{o}");
                    saw_int_finish = true;
                }
            }
            if status == "completed" {
                assert_eq!(delivered, ordered);
                assert!(o["date_finish"].is_i64());
            }
            assert_dual_date(o, "created_at", "created_at_ts");
        }
    }
    assert!(
        saw_null_finish && saw_int_finish,
        "both date_finish forms occur"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v2_cpc_order_filters() {
    let sim = start(ROOMY).await;
    let default = sim.v2("/api/marketer/cpc/orders?limit=1000").await;
    let active = data(&default);
    assert!(!active.is_empty());
    assert!(
        active.iter().all(|o| o["status"] == "active"),
        "default filter is active"
    );
    assert_eq!(
        sim.v2("/api/marketer/cpc/orders?status=active&limit=1000")
            .await,
        default
    );

    let account = active[0]["of_account_id"].as_i64().expect("account");
    let by_account = sim
        .v2(&format!(
            "/api/marketer/cpc/orders?of_account_id={account}&limit=1000"
        ))
        .await;
    let by_account = data(&by_account);
    assert!(!by_account.is_empty() && by_account.len() < active.len());
    assert!(
        by_account
            .iter()
            .all(|o| o["of_account_id"] == account && o["status"] == "active")
    );

    let creative = active[0]["creative"]["public_id"]
        .as_str()
        .expect("creative id");
    let by_creative = sim
        .v2(&format!(
            "/api/marketer/cpc/orders?creative_public_id={creative}&status=completed"
        ))
        .await;
    assert!(
        data(&by_creative)
            .iter()
            .all(|o| o["creative"]["public_id"] == creative && o["status"] == "completed")
    );
    let by_creative_active = sim
        .v2(&format!(
            "/api/marketer/cpc/orders?creative_public_id={creative}"
        ))
        .await;
    assert!(!data(&by_creative_active).is_empty());
    let unknown = sim
        .v2("/api/marketer/cpc/orders?creative_public_id=cre_zzzzzz")
        .await;
    assert!(data(&unknown).is_empty());
    let garbage = sim
        .v2("/api/marketer/cpc/orders?creative_public_id=nope")
        .await;
    assert!(data(&garbage).is_empty());

    assert_error(
        &sim.v2("/api/marketer/cpc/orders?status=done").await,
        422,
        "status must be one of waiting, active, rejected, completed, got \"done\"",
    );
    assert_error(
        &sim.v2("/api/marketer/cpc/orders?of_account_id=abc").await,
        422,
        "of_account_id must be an integer, got \"abc\"",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v2_subscriber_has_the_documented_shape() {
    let sim = start(ROOMY).await;
    let body = sim.v2("/api/marketer/subscribers?limit=300").await;
    let subscribers = data(&body);
    assert_eq!(subscribers.len(), 300);
    let mut types = std::collections::HashSet::new();
    for s in subscribers {
        let mut keys: Vec<&str> = s
            .as_object()
            .expect("object")
            .keys()
            .map(String::as_str)
            .collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "amount_spent",
                "badges",
                "campaign",
                "name",
                "of_account_id",
                "of_user_id",
                "subscribed_at",
                "subscribed_at_ts"
            ]
        );
        assert!(
            s["of_user_id"].is_i64() && s["of_account_id"].is_i64(),
            "{s}"
        );
        assert!(
            s["name"].is_string() && s["amount_spent"].is_number(),
            "{s}"
        );
        let campaign = s["campaign"].as_object().expect("campaign object");
        assert_eq!(campaign.len(), 2, "{s}");
        let kind = campaign["type"].as_str().expect("campaign.type");
        let public_id = campaign["public_id"].as_str().expect("campaign.public_id");
        match kind {
            "revshare" => assert!(public_id.starts_with("camp_"), "{s}"),
            "cpl" => assert!(public_id.starts_with("cplo_"), "{s}"),
            other => panic!("unexpected campaign type {other}"),
        }
        types.insert(kind.to_owned());
        let badges = s["badges"].as_array().expect("badges array");
        assert!(badges.iter().all(Value::is_string));
        assert_dual_date(s, "subscribed_at", "subscribed_at_ts");
    }
    assert_eq!(types.len(), 2, "both campaign types occur");
    // Default sort is newest first.
    let ts = ints(subscribers, "subscribed_at_ts");
    assert!(
        ts.windows(2).all(|w| w[0] > w[1]),
        "subscribed_at_desc by default"
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn v2_subscriber_filters_and_sort() {
    let sim = start(ROOMY).await;
    let asc = sim
        .v2("/api/marketer/subscribers?sort=subscribed_at_asc&limit=100")
        .await;
    let ts = ints(data(&asc), "subscribed_at_ts");
    assert!(ts.windows(2).all(|w| w[0] < w[1]), "ascending");
    let desc = sim
        .v2("/api/marketer/subscribers?sort=subscribed_at_desc&limit=100")
        .await;
    assert_eq!(desc, sim.v2("/api/marketer/subscribers?limit=100").await);
    assert_ne!(asc, desc);

    for kind in ["revshare", "cpl"] {
        let body = sim
            .v2(&format!(
                "/api/marketer/subscribers?campaign_type={kind}&limit=200"
            ))
            .await;
        let rows = data(&body);
        assert_eq!(rows.len(), 200, "{kind}");
        assert!(rows.iter().all(|s| s["campaign"]["type"] == kind), "{kind}");
    }

    // from/to are inclusive whole days.
    let body = sim
        .v2("/api/marketer/subscribers?from=2025-03-01&to=2025-03-31&limit=1000")
        .await;
    let rows = data(&body);
    assert!(!rows.is_empty());
    let (start, end) = (1_740_787_200, 1_743_465_600); // 2025-03-01, 2025-04-01
    assert!(
        ints(rows, "subscribed_at_ts")
            .iter()
            .all(|t| (start..end).contains(t))
    );
    assert!(rows.iter().all(|s| {
        s["subscribed_at"]
            .as_str()
            .is_some_and(|d| d.starts_with("2025-03-"))
    }));
    let one_day = sim
        .v2("/api/marketer/subscribers?from=2025-03-05&to=2025-03-05&limit=1000")
        .await;
    assert!(data(&one_day).iter().all(|s| {
        s["subscribed_at"]
            .as_str()
            .is_some_and(|d| d.starts_with("2025-03-05"))
    }));
    assert!(!data(&one_day).is_empty());

    let sample = &rows[0];
    let campaign = sample["campaign"]["public_id"]
        .as_str()
        .expect("campaign id");
    let by_campaign = sim
        .v2(&format!(
            "/api/marketer/subscribers?campaign_id={campaign}&limit=1000"
        ))
        .await;
    let by_campaign = data(&by_campaign);
    assert!(by_campaign.iter().any(|s| s == sample));
    assert!(
        by_campaign
            .iter()
            .all(|s| s["campaign"]["public_id"] == campaign)
    );
    let account = sample["of_account_id"].as_i64().expect("account");
    let by_account = sim
        .v2(&format!(
            "/api/marketer/subscribers?of_account_id={account}&campaign_type=cpl&limit=1000"
        ))
        .await;
    let by_account = data(&by_account);
    assert!(!by_account.is_empty());
    assert!(
        by_account
            .iter()
            .all(|s| s["of_account_id"] == account && s["campaign"]["type"] == "cpl")
    );

    for (query, message) in [
        (
            "campaign_type=ppc",
            "campaign_type must be one of revshare, cpl, got \"ppc\"",
        ),
        (
            "sort=newest",
            "sort must be one of subscribed_at_desc, subscribed_at_asc",
        ),
        ("from=2024-13-01", "from must be a date in Y-m-d format"),
        ("to=31.01.2024", "to must be a date in Y-m-d format"),
        ("from=2024-02-01&to=2024-01-01", "from must not be after to"),
        (
            "of_account_id=1.5",
            "of_account_id must be an integer, got 1.5",
        ),
    ] {
        assert_error(
            &sim.v2(&format!("/api/marketer/subscribers?{query}")).await,
            422,
            message,
        );
    }
    sim.shutdown().await;
}

#[tokio::test]
async fn v2_revshare_and_cpl_filters() {
    let sim = start(ROOMY).await;
    let campaigns = sim.v2("/api/marketer/revshare/campaigns?limit=2").await;
    let c = &data(&campaigns)[0];
    assert!(
        c["public_id"]
            .as_str()
            .is_some_and(|s| s.starts_with("camp_")),
        "{c}"
    );
    assert_dual_date(c, "created_at", "created_at_ts");

    let tx = sim.v2("/api/marketer/revshare/transactions?limit=1").await;
    let t = &data(&tx)[0];
    assert!(t["is_undo"].is_boolean(), "{t}");
    assert_dual_date(t, "created_at", "created_at_ts");
    let account = t["of_account_id"].as_i64().expect("account");
    let campaign = t["campaign_id"].as_str().expect("campaign public id");
    let by_account = sim
        .v2(&format!(
            "/api/marketer/revshare/transactions?of_account_id={account}&limit=1000"
        ))
        .await;
    assert!(data(&by_account).len() > 10);
    assert!(
        data(&by_account)
            .iter()
            .all(|t| t["of_account_id"] == account)
    );
    let by_campaign = sim
        .v2(&format!(
            "/api/marketer/revshare/transactions?campaign_id={campaign}"
        ))
        .await;
    assert!(data(&by_campaign).iter().any(|x| x == t));
    assert!(
        data(&by_campaign)
            .iter()
            .all(|t| t["campaign_id"] == campaign)
    );
    assert_error(
        &sim.v2("/api/marketer/revshare/transactions?of_account_id=x")
            .await,
        422,
        "of_account_id must be an integer",
    );

    let orders = sim
        .v2("/api/marketer/cpl/orders?status=accepted&limit=100")
        .await;
    let orders = data(&orders);
    assert!(!orders.is_empty());
    for o in orders {
        assert_eq!(o["status"], "accepted");
        assert!(
            o["order_id"]
                .as_str()
                .is_some_and(|s| s.starts_with("cplo_")),
            "{o}"
        );
        let delivered = o["quantity_delivered"]
            .as_i64()
            .expect("quantity_delivered");
        assert!(delivered < o["quantity_ordered"].as_i64().expect("quantity_ordered"));
        assert!(o["total_earned"].is_number());
        assert_dual_date(o, "created_at", "created_at_ts");
    }
    let offer = orders[0]["offer_id"].as_i64().expect("offer_id");
    let by_offer = sim
        .v2(&format!(
            "/api/marketer/cpl/orders?offer_id={offer}&limit=1000"
        ))
        .await;
    let by_offer = data(&by_offer);
    assert!(by_offer.iter().all(|o| o["offer_id"] == offer));
    assert!(
        by_offer.iter().any(|o| o["status"] != "accepted"),
        "no status filter = all"
    );
    assert_error(
        &sim.v2("/api/marketer/cpl/orders?status=active").await,
        422,
        "status must be one of waiting, accepted, rejected, completed",
    );
    assert_error(
        &sim.v2("/api/marketer/cpl/orders?offer_id=abc").await,
        422,
        "offer_id must be an integer",
    );
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------
// Routing, auth, rate

#[tokio::test]
async fn unknown_paths_and_wrong_methods_are_404() {
    let sim = start(ROOMY).await;
    assert_error(
        &sim.v2("/api/marketer/cpc/nope").await,
        404,
        "no route for GET /api/marketer/cpc/nope",
    );
    assert_error(&sim.v2("/").await, 404, "no route for GET /");
    assert_error(&sim.v2("/api/marketer/subscribers/").await, 404, "no route");
    assert_error(
        &sim.v2("/api/marketer?do=campaigns").await,
        404,
        "only accepts POST",
    );
    let post_v2 = sim
        .send(
            sim.client
                .post(sim.url("/api/marketer/cpc/orders"))
                .header(AUTHORIZATION, KEY),
        )
        .await;
    assert_error(
        &post_v2,
        404,
        "no route for POST /api/marketer/cpc/orders: this path only accepts GET",
    );
    // 404 comes before 422.
    assert_error(
        &sim.v2("/api/marketer/nope?limit=5000").await,
        404,
        "no route",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn missing_wrong_or_bearer_key_is_401() {
    let sim = start(ROOMY).await;
    let get = |key: Option<&str>, path: &str| {
        let req = sim.client.get(sim.url(path));
        match key {
            Some(k) => req.header(AUTHORIZATION, k),
            None => req,
        }
    };
    let path = "/api/marketer/cpc/orders";
    assert_error(
        &sim.send(get(None, path)).await,
        401,
        "missing Authorization header",
    );
    assert_error(
        &sim.send(get(Some("wrong-key"), path)).await,
        401,
        "invalid API key",
    );
    assert_error(
        &sim.send(get(Some(&format!("{KEY}x")), path)).await,
        401,
        "invalid API key",
    );
    assert_error(
        &sim.send(get(Some(&format!("Bearer {KEY}")), path)).await,
        401,
        "without \"Bearer\"",
    );
    // The key itself is never echoed back.
    let body = sim.send(get(Some(&format!("Bearer {KEY}")), path)).await;
    assert!(!body.to_string().contains(KEY));
    // 401 comes before 404 and 422.
    assert_error(
        &sim.send(get(None, "/nope")).await,
        401,
        "missing Authorization",
    );
    assert_error(
        &sim.send(get(Some("wrong"), "/api/marketer/cpc/orders?limit=0"))
            .await,
        401,
        "invalid",
    );
    let v1 = sim
        .send(
            sim.client
                .post(sim.url("/api/marketer?do=campaigns"))
                .json(&json!({"limit": 1})),
        )
        .await;
    assert_error(&v1, 401, "missing Authorization header");
    // The right key works.
    assert_eq!(
        data(&sim.send(get(Some(KEY), &format!("{path}?limit=1"))).await).len(),
        1
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn per_key_rate_limit_with_manual_clock() {
    let sim = start("3/1m").await;
    // Every authenticated request counts, whatever its outcome.
    assert_eq!(
        data(&sim.v2("/api/marketer/subscribers?limit=1").await).len(),
        1
    );
    assert_error(&sim.v2("/api/marketer/nope").await, 404, "no route");
    assert_error(
        &sim.v1_json("campaigns", json!({"limit": 0})).await,
        422,
        "limit",
    );

    sim.clock.advance(Duration::from_secs(20));
    let limited = sim.v2("/api/marketer/subscribers?limit=1").await;
    assert_error(
        &limited,
        429,
        "rate limit exceeded: this key may make 3 requests per 1m",
    );
    assert_eq!(limited["retry_after"], 40);
    // 429 comes before 404 and 422; unauthenticated requests still get 401 and do not count.
    assert_error(
        &sim.v2("/api/marketer/nope").await,
        429,
        "rate limit exceeded",
    );
    assert_error(
        &sim.v1_form("campaigns", "limit=0").await,
        429,
        "rate limit exceeded",
    );
    assert_error(
        &sim.send(sim.client.get(sim.url("/api/marketer/subscribers")))
            .await,
        401,
        "missing",
    );

    sim.clock.advance(Duration::from_secs(39));
    let still = sim.v1_json("campaigns", json!({"limit": 1})).await;
    assert_error(&still, 429, "retry in 1 s");
    assert_eq!(still["retry_after"], 1);

    sim.clock.advance(Duration::from_secs(1));
    for _ in 0..3 {
        assert_eq!(
            data(&sim.v1_json("campaigns", json!({"limit": 1})).await).len(),
            1
        );
    }
    assert_error(
        &sim.v1_form("transactions", "limit=1").await,
        429,
        "rate limit exceeded",
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn generate_link_cooldown_counts_against_the_key_rate_too() {
    let sim = start("2/1h").await;
    assert_eq!(
        sim.v1_json("generate_link", json!({"smartlink_id": 1}))
            .await["status"],
        "success"
    );
    // The second call is refused by the cooldown but still spends the key's budget...
    assert_error(
        &sim.v1_json("generate_link", json!({"smartlink_id": 1}))
            .await,
        429,
        "smartlink_id 1",
    );
    // ...so the third is refused by the key rate, even for another smartlink.
    assert_error(
        &sim.v1_json("generate_link", json!({"smartlink_id": 2}))
            .await,
        429,
        "rate limit exceeded",
    );
    sim.shutdown().await;
}

// -------------------------------------------------------------------------------------------
// Public configuration API

#[test]
fn sim_rate_parses_and_displays() {
    let rate: SimRate = "10/30s".parse().expect("valid rate");
    assert_eq!(rate.requests.get(), 10);
    assert_eq!(rate.per, Duration::from_secs(30));
    assert_eq!(rate.to_string(), "10/30s");
    let hourly: SimRate = "5/1h".parse().expect("valid rate");
    assert_eq!(hourly.per, Duration::from_secs(3600));
    assert_eq!(
        DEFAULT_RATE.parse::<SimRate>().map(|r| r.to_string()).ok(),
        Some("60/1m".into())
    );
    for bad in ["60", "0/1m", "a/1m", "60/xyz", "60/0s", ""] {
        let err = bad.parse::<SimRate>().expect_err("invalid rate");
        assert!(
            err.to_string().contains("expected N/PERIOD, e.g. 60/1m"),
            "{bad}: {err}"
        );
    }
}

#[test]
fn defaults_and_redacted_debug() {
    assert_eq!(DEFAULT_KEY, "demo-key");
    assert!(DEFAULT_LISTEN.parse::<std::net::SocketAddr>().is_ok());
    let config = SimulatorConfig::default();
    assert_eq!(config.key, DEFAULT_KEY);
    assert_eq!(config.rate.to_string(), DEFAULT_RATE);
    let debug = format!("{:?}", SimulatorConfig::new("super-secret", config.rate));
    assert!(!debug.contains("super-secret"), "{debug}");
}

#[tokio::test]
async fn router_serves_in_process_with_the_default_key() {
    use tower::ServiceExt;
    let app = simulator::router(SimulatorConfig::default());
    let request = axum::http::Request::get("/api/marketer/revshare/campaigns?limit=2")
        .header("authorization", DEFAULT_KEY)
        .body(axum::body::Body::empty())
        .expect("request");
    let response = app.oneshot(request).await.expect("infallible");
    assert_eq!(response.status(), 200);
    let bytes = axum::body::to_bytes(response.into_body(), 1 << 20)
        .await
        .expect("body");
    let body: Value = serde_json::from_slice(&bytes).expect("JSON");
    assert_eq!(data(&body).len(), 2);
}
