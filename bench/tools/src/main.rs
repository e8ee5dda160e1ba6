//! otbench: the helpers `bench/run.sh` needs that no packaged tool provides.
//!
//! - `upstream`: a minimal HTTP/1.1 keep-alive server answering the partner API's success
//!   envelope, optionally with its own fixed-window per-key limit (envelope 429s), counting
//!   what it admits and recording the `seq` query parameter in arrival order.
//! - `demand`: an open-loop load source (a fixed request rate, whatever the answers take).
//! - `queue`: N concurrent raw-socket clients, each one connection and one request `?seq=i`,
//!   sent in order; samples the proxy's RSS and its queue depth meanwhile.
//! - `startup`: starts a command and times the first 2xx answer from it; then its RSS.
//! - `floor-proxy`: the cheapest proxy on the project's stack (tokio current_thread runtime per
//!   worker thread, hyper http1 server, hyper-util legacy client per worker), with none of the
//!   project's logic: the floor the pass-through numbers are compared with.
//! - `get`, `free-ports`: small conveniences for the script.
//!
//! Output is one JSON object per command on stdout (flat, hand-written: no serde needed).
//! Everything is loopback-only and bounded in time.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// The proxy's allocator, so that `floor-proxy` is compared like for like.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const SUCCESS: &[u8] = br#"{"status":"success","data":[]}"#;

type Res<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(cmd) = args.first().cloned() else {
        usage();
    };
    let rest = &args[1..];
    let result = match cmd.as_str() {
        "upstream" => upstream(Opts::parse(rest)),
        "demand" => rt_multi(2).block_on(demand(Opts::parse(rest))),
        "queue" => rt_multi(2).block_on(queue(Opts::parse(rest))),
        "latency" => rt_current().block_on(latency(Opts::parse(rest))),
        "startup" => rt_current().block_on(startup(rest)),
        "get" => rt_current().block_on(get_cmd(rest)),
        "floor-proxy" => floor_proxy(Opts::parse(rest)),
        "free-ports" => free_ports(rest),
        _ => usage(),
    };
    if let Err(e) = result {
        eprintln!("otbench {cmd}: {e}");
        std::process::exit(1);
    }
}

fn usage() -> ! {
    eprintln!(
        "usage: otbench upstream --listen ADDR [--threads N] [--limit N/MILLIS] [--record]\n\
         \x20      otbench demand --url URL --rate RPS --secs S [--timeout-secs T]\n\
         \x20      otbench queue --addr ADDR --path PATH --clients N [--spread-ms MS] [--timeout-secs T] [--pid PID] [--metrics-url URL]\n\
         \x20      otbench latency --addr ADDR --path PATH --conns N --rate RPS --secs S\n\
         \x20      otbench startup --url URL [--timeout-secs T] -- CMD [ARGS...]\n\
         \x20      otbench floor-proxy --listen ADDR --upstream http://HOST:PORT [--workers N]\n\
         \x20      otbench get URL\n\
         \x20      otbench free-ports N"
    );
    std::process::exit(2);
}

fn rt_multi(threads: usize) -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .expect("tokio runtime")
}

fn rt_current() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

/// `--name value` pairs and bare `--flag`s.
struct Opts(BTreeMap<String, String>);

impl Opts {
    fn parse(args: &[String]) -> Self {
        let mut map = BTreeMap::new();
        let mut i = 0;
        while i < args.len() {
            let Some(name) = args[i].strip_prefix("--") else {
                eprintln!("otbench: unexpected argument {:?}", args[i]);
                usage();
            };
            match args.get(i + 1).filter(|v| !v.starts_with("--")) {
                Some(v) => {
                    map.insert(name.to_owned(), v.clone());
                    i += 2;
                }
                None => {
                    map.insert(name.to_owned(), String::new());
                    i += 1;
                }
            }
        }
        Self(map)
    }

    fn str(&self, name: &str) -> String {
        match self.0.get(name) {
            Some(v) => v.clone(),
            None => {
                eprintln!("otbench: --{name} is required");
                usage();
            }
        }
    }

    fn num<T: std::str::FromStr>(&self, name: &str, default: T) -> T {
        match self.0.get(name) {
            None => default,
            Some(v) => v.parse().unwrap_or_else(|_| {
                eprintln!("otbench: bad number for --{name}: {v:?}");
                usage();
            }),
        }
    }

    fn flag(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
}

// ---------------------------------------------------------------------------------------------
// upstream

/// The upstream's own per-key limit: a fixed window that opens at the first request after the
/// previous one ended and admits `limit` requests (the project simulator's semantics).
struct Window {
    limit: u64,
    per: Duration,
    opened: Option<Instant>,
    used: u64,
}

struct Upstream {
    origin: Instant,
    ok: AtomicU64,
    limited: AtomicU64,
    window: Option<Mutex<Window>>,
    record: bool,
    /// Arrival time (ns since origin) of every admitted request, when recording.
    ok_times: Mutex<Vec<u64>>,
    /// The `seq` query parameter of every admitted request, in arrival order.
    seqs: Mutex<Vec<u64>>,
}

fn upstream(o: Opts) -> Res<()> {
    let listen: SocketAddr = o.str("listen").parse()?;
    let threads: usize = o.num("threads", 1);
    let window = match o.0.get("limit") {
        None => None,
        Some(spec) => {
            let (n, ms) = spec
                .split_once('/')
                .ok_or("--limit is N/MILLIS, e.g. 100/1000")?;
            Some(Mutex::new(Window {
                limit: n.parse()?,
                per: Duration::from_millis(ms.parse()?),
                opened: None,
                used: 0,
            }))
        }
    };
    let state = Arc::new(Upstream {
        origin: Instant::now(),
        ok: AtomicU64::new(0),
        limited: AtomicU64::new(0),
        window,
        record: o.flag("record"),
        ok_times: Mutex::new(Vec::new()),
        seqs: Mutex::new(Vec::new()),
    });
    let rt = if threads <= 1 {
        rt_current()
    } else {
        rt_multi(threads)
    };
    rt.block_on(async move {
        let listener = TcpListener::bind(listen).await?;
        println!("listening {}", listener.local_addr()?);
        loop {
            let stream = accept(&listener, "upstream").await;
            let state = state.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |req| {
                    let state = state.clone();
                    async move { Ok::<_, Infallible>(serve_upstream(&state, req)) }
                });
                let _ = http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), svc)
                    .await;
            });
        }
    })
}

fn json_response(body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    resp.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    resp
}

fn query_param<'a>(query: Option<&'a str>, name: &str) -> Option<&'a str> {
    query?
        .split('&')
        .filter_map(|kv| kv.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn serve_upstream(s: &Upstream, req: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = req.uri().path();
    let query = req.uri().query();
    if path == "/__stats" {
        let window = query_param(query, "window_ms").and_then(|v| v.parse::<u64>().ok());
        return json_response(stats_json(s, window));
    }
    if path == "/__seqs" {
        let seqs = s.seqs.lock().unwrap();
        let list: Vec<String> = seqs.iter().map(u64::to_string).collect();
        return json_response(list.join(","));
    }
    if path == "/__reset" {
        s.ok.store(0, Ordering::SeqCst);
        s.limited.store(0, Ordering::SeqCst);
        s.ok_times.lock().unwrap().clear();
        s.seqs.lock().unwrap().clear();
        if let Some(w) = &s.window {
            let mut w = w.lock().unwrap();
            w.opened = None;
            w.used = 0;
        }
        return json_response("{}");
    }
    // `?cooldown=S`: an envelope 429 asking for S seconds, outside the window's accounting (the
    // queue benchmark uses it to pause the proxy's limiter).
    if let Some(secs) = query_param(query, "cooldown") {
        return json_response(format!(
            r#"{{"status":"error","error_code":429,"message":"bench: cooldown requested","retry_after":{secs}}}"#
        ));
    }
    let now = Instant::now();
    if let Some(w) = &s.window {
        let mut w = w.lock().unwrap();
        let expired = w.opened.is_none_or(|o| now.duration_since(o) >= w.per);
        if expired {
            w.opened = Some(now);
            w.used = 0;
        }
        if w.used >= w.limit {
            let left = w
                .per
                .saturating_sub(now.duration_since(w.opened.unwrap_or(now)));
            drop(w);
            s.limited.fetch_add(1, Ordering::Relaxed);
            let secs = left.as_secs_f64().ceil().max(1.0) as u64;
            return json_response(format!(
                r#"{{"status":"error","error_code":429,"message":"bench upstream: rate limit exceeded","retry_after":{secs}}}"#
            ));
        }
        w.used += 1;
    }
    s.ok.fetch_add(1, Ordering::Relaxed);
    if s.record {
        let t = now.duration_since(s.origin).as_nanos() as u64;
        s.ok_times.lock().unwrap().push(t);
        if let Some(seq) = query_param(query, "seq").and_then(|v| v.parse().ok()) {
            s.seqs.lock().unwrap().push(seq);
        }
    }
    json_response(Bytes::from_static(SUCCESS))
}

fn stats_json(s: &Upstream, window_ms: Option<u64>) -> String {
    let times = s.ok_times.lock().unwrap();
    let seqs = s.seqs.lock().unwrap();
    // Order check: how many admitted requests arrived with a smaller seq than one before them,
    // and the largest such step back.
    let mut inversions = 0u64;
    let mut max_back = 0u64;
    let mut high = None::<u64>;
    for &q in seqs.iter() {
        if let Some(h) = high {
            if q < h {
                inversions += 1;
                max_back = max_back.max(h - q);
            }
        }
        high = Some(high.map_or(q, |h| h.max(q)));
    }
    let first = times.first().copied().unwrap_or(0);
    let last = times.last().copied().unwrap_or(0);
    // Admitted within `window_ms` of the first admitted request (the demand's duration).
    let in_window = window_ms.map_or(times.len(), |w| {
        times
            .iter()
            .filter(|&&t| t - first <= w * 1_000_000)
            .count()
    });
    // Requests per whole second since the first admitted one (for the limiter's rate profile).
    let mut per_sec: Vec<u64> = Vec::new();
    for &t in times.iter() {
        let i = ((t - first) / 1_000_000_000) as usize;
        if per_sec.len() <= i {
            per_sec.resize(i + 1, 0);
        }
        per_sec[i] += 1;
    }
    format!(
        r#"{{"ok":{},"limited":{},"recorded":{},"in_window":{in_window},"first_ns":{},"last_ns":{},"seqs":{},"inversions":{},"max_step_back":{},"per_sec":{:?}}}"#,
        s.ok.load(Ordering::SeqCst),
        s.limited.load(Ordering::SeqCst),
        times.len(),
        first,
        last,
        seqs.len(),
        inversions,
        max_back,
        per_sec
    )
}

// ---------------------------------------------------------------------------------------------
// demand: open loop at a fixed rate

async fn demand(o: Opts) -> Res<()> {
    let url: hyper::Uri = o.str("url").parse()?;
    let rate: f64 = o.num("rate", 100.0);
    let secs: f64 = o.num("secs", 10.0);
    let timeout = Duration::from_secs_f64(o.num("timeout-secs", 60.0));
    let client: hyper_util::client::legacy::Client<_, Empty<Bytes>> =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http();
    let statuses = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let attempts = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let total = (rate * secs).round() as u64;
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(total as usize);
    for _ in 0..total {
        tick.tick().await;
        let client = client.clone();
        let url = url.clone();
        let statuses = statuses.clone();
        let attempts = attempts.clone();
        tasks.push(tokio::spawn(async move {
            let out = tokio::time::timeout(timeout, async {
                let resp = client.get(url).await?;
                let status = resp.status().as_u16();
                let att = resp
                    .headers()
                    .get("x-proxy-attempts")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("-")
                    .to_owned();
                resp.into_body().collect().await?;
                Ok::<_, Box<dyn std::error::Error + Send + Sync>>((status, att))
            })
            .await;
            let key = match &out {
                Ok(Ok((status, _))) => status.to_string(),
                Ok(Err(_)) => "error".into(),
                Err(_) => "timeout".into(),
            };
            *statuses.lock().unwrap().entry(key).or_default() += 1;
            if let Ok(Ok((_, att))) = out {
                *attempts.lock().unwrap().entry(att).or_default() += 1;
            }
        }));
    }
    let sent_secs = started.elapsed().as_secs_f64();
    for t in tasks {
        let _ = t.await;
    }
    println!(
        r#"{{"sent":{total},"send_secs":{sent_secs:.3},"total_secs":{:.3},"statuses":{},"attempts":{}}}"#,
        started.elapsed().as_secs_f64(),
        map_json(&statuses.lock().unwrap()),
        map_json(&attempts.lock().unwrap())
    );
    Ok(())
}

fn map_json(m: &BTreeMap<String, u64>) -> String {
    let parts: Vec<String> = m.iter().map(|(k, v)| format!(r#""{k}":{v}"#)).collect();
    format!("{{{}}}", parts.join(","))
}

// ---------------------------------------------------------------------------------------------
// latency: a fixed request rate over N keep-alive connections (wrk2-style)

/// Each of `conns` connections sends its share of `rate` on a fixed schedule; a request is
/// timed from when it was *due*, so a slow answer that delays the next send is counted against
/// the server (no coordinated omission). One thread: the load generator stays light.
async fn latency(o: Opts) -> Res<()> {
    let addr: SocketAddr = o.str("addr").parse()?;
    if !addr.ip().is_loopback() {
        return Err("loopback addresses only".into());
    }
    let path = o.str("path");
    let conns: usize = o.num("conns", 32);
    let rate: f64 = o.num("rate", 1000.0);
    let secs: f64 = o.num("secs", 10.0);
    let from_send = o.flag("from-send");
    let interval = Duration::from_secs_f64(conns as f64 / rate);
    let per_conn = (secs / interval.as_secs_f64()).floor() as u64;
    let started = Instant::now() + Duration::from_millis(50);
    let mut tasks = Vec::new();
    for c in 0..conns {
        let path = path.clone();
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::with_capacity(per_conn as usize);
            let Ok(stream) = TcpStream::connect(addr).await else {
                return (lat, per_conn);
            };
            let _ = stream.set_nodelay(true);
            let mut reader = BufReader::new(stream);
            let req = format!("GET {path} HTTP/1.1\r\nHost: bench\r\n\r\n");
            // Spread the connections' schedules over one interval.
            let offset = interval.mul_f64(c as f64 / conns as f64);
            for i in 0..per_conn {
                let due = started + offset + interval * i as u32;
                tokio::time::sleep_until(due.into()).await;
                let sent = Instant::now();
                let ok = async {
                    reader.get_mut().write_all(req.as_bytes()).await?;
                    read_response(&mut reader).await
                }
                .await;
                match ok {
                    Ok(200..=299) => lat.push(if from_send {
                        sent.elapsed().as_micros() as u64
                    } else {
                        due.elapsed().as_micros() as u64
                    }),
                    _ => break, // the rest of this connection's share counts as not done
                }
            }
            let not_done = per_conn - lat.len() as u64;
            (lat, not_done)
        }));
    }
    let mut all = Vec::new();
    let mut errors = 0u64;
    for t in tasks {
        let (lat, e) = t.await?;
        all.extend(lat);
        errors += e;
    }
    all.sort_unstable();
    let pct = |p: f64| -> u64 {
        if all.is_empty() {
            return 0;
        }
        all[((all.len() as f64 * p).ceil() as usize).clamp(1, all.len()) - 1]
    };
    println!(
        r#"{{"conns":{conns},"rate":{rate},"secs":{secs},"done":{},"not_done":{errors},"p50_us":{},"p90_us":{},"p99_us":{},"p999_us":{},"max_us":{}}}"#,
        all.len(),
        pct(0.50),
        pct(0.90),
        pct(0.99),
        pct(0.999),
        all.last().copied().unwrap_or(0)
    );
    Ok(())
}

/// Reads one HTTP/1.1 response with a Content-Length body; returns its status.
async fn read_response(reader: &mut BufReader<TcpStream>) -> Res<u16> {
    let mut line = String::new();
    if reader.read_line(&mut line).await? == 0 {
        return Err("connection closed".into());
    }
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or("bad status line")?;
    let mut len = 0usize;
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err("connection closed in the headers".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            if k.trim().eq_ignore_ascii_case("content-length") {
                len = v.trim().parse()?;
            }
        }
    }
    let mut body = vec![0; len];
    reader.read_exact(&mut body).await?;
    Ok(status)
}

// ---------------------------------------------------------------------------------------------
// queue: N concurrent clients, one connection and one request each

fn rss_kb(pid: u32) -> (u64, u64) {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return (0, 0);
    };
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// One raw HTTP/1.1 GET; returns the status and the named response headers (lower-case).
async fn raw_get(
    addr: SocketAddr,
    target: &str,
    close: bool,
) -> Res<(u16, BTreeMap<String, String>, Vec<u8>)> {
    let stream = TcpStream::connect(addr).await?;
    let _ = stream.set_nodelay(true);
    raw_exchange(stream, target, close).await
}

async fn raw_exchange(
    stream: TcpStream,
    target: &str,
    close: bool,
) -> Res<(u16, BTreeMap<String, String>, Vec<u8>)> {
    raw_exchange_timed(stream, target, close, &mut None).await
}

/// [`raw_exchange`], noting in `sent` when the request was completely written.
async fn raw_exchange_timed(
    mut stream: TcpStream,
    target: &str,
    close: bool,
    sent: &mut Option<(Instant, Instant)>,
) -> Res<(u16, BTreeMap<String, String>, Vec<u8>)> {
    let conn = if close { "Connection: close\r\n" } else { "" };
    let req = format!("GET {target} HTTP/1.1\r\nHost: bench\r\n{conn}\r\n");
    let before = Instant::now();
    stream.write_all(req.as_bytes()).await?;
    *sent = Some((before, Instant::now()));
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).await?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {line:?}"))?;
    let mut headers = BTreeMap::new();
    loop {
        line.clear();
        if reader.read_line(&mut line).await? == 0 {
            return Err("connection closed in the headers".into());
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        if let Some((k, v)) = l.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
        }
    }
    let mut body = Vec::new();
    if let Some(len) = headers
        .get("content-length")
        .and_then(|v| v.parse::<usize>().ok())
    {
        body.resize(len, 0);
        reader.read_exact(&mut body).await?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|v| v.contains("chunked"))
    {
        loop {
            line.clear();
            reader.read_line(&mut line).await?;
            let size = usize::from_str_radix(line.trim(), 16)?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).await?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else {
        reader.read_to_end(&mut body).await?;
    }
    Ok((status, headers, body))
}

fn split_url(url: &str) -> Res<(SocketAddr, String)> {
    let rest = url
        .strip_prefix("http://")
        .ok_or("only http:// URLs on loopback")?;
    let (host, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let addr: SocketAddr = host.parse()?;
    if !addr.ip().is_loopback() {
        return Err("loopback addresses only".into());
    }
    Ok((addr, path.to_owned()))
}

async fn metric(url: &str, name: &str) -> Option<f64> {
    let (addr, path) = split_url(url).ok()?;
    let (_, _, body) = raw_get(addr, &path, true).await.ok()?;
    let text = String::from_utf8_lossy(&body);
    text.lines()
        .find(|l| l.starts_with(name) && l[name.len()..].starts_with([' ', '{']))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

struct Done {
    seq: u64,
    status: u16,
    attempts: String,
    /// When the client started writing the request, and when the write returned: the request
    /// reached the proxy between the two (a late timestamp cannot fake an inversion).
    write_start: Duration,
    sent: Duration,
    done: Duration,
}

async fn queue(o: Opts) -> Res<()> {
    let addr: SocketAddr = o.str("addr").parse()?;
    if !addr.ip().is_loopback() {
        return Err("loopback addresses only".into());
    }
    let path = o.str("path");
    let clients: u64 = o.num("clients", 10_000);
    let spread = Duration::from_millis(o.num("spread-ms", 5000));
    let timeout = Duration::from_secs(o.num("timeout-secs", 120));
    let pid: u32 = o.num("pid", 0);
    let metrics_url = o.0.get("metrics-url").cloned();
    let sep = if path.contains('?') { '&' } else { '?' };

    let (rss_before, _) = rss_kb(pid);
    let done = Arc::new(Mutex::new(Vec::<Done>::with_capacity(clients as usize)));
    let errors = Arc::new(Mutex::new(BTreeMap::<String, u64>::new()));
    let connected = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let peak_rss = Arc::new(AtomicU64::new(rss_before));
    let sampling = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let peak = peak_rss.clone();
        let sampling = sampling.clone();
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                let (rss, _) = rss_kb(pid);
                peak.fetch_max(rss, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let mut tasks = Vec::with_capacity(clients as usize);
    for seq in 0..clients {
        // Paced so the arrival order is well defined: client `seq` starts at seq * spread / N.
        let at = started + spread.mul_f64(seq as f64 / clients as f64);
        tokio::time::sleep_until(at.into()).await;
        let target = format!("{path}{sep}seq={seq}");
        let done = done.clone();
        let errors = errors.clone();
        let connected = connected.clone();
        tasks.push(tokio::spawn(async move {
            let mut sent = None;
            let result = tokio::time::timeout(timeout, async {
                let stream = TcpStream::connect(addr).await?;
                let _ = stream.set_nodelay(true);
                connected.fetch_add(1, Ordering::Relaxed);
                raw_exchange_timed(stream, &target, true, &mut sent).await
            })
            .await;
            match result {
                Ok(Ok((status, headers, _))) => done.lock().unwrap().push(Done {
                    seq,
                    status,
                    write_start: sent.map_or(Duration::ZERO, |t| t.0.duration_since(started)),
                    sent: sent.map_or(Duration::ZERO, |t| t.1.duration_since(started)),
                    attempts: headers
                        .get("x-proxy-attempts")
                        .cloned()
                        .unwrap_or_else(|| "-".into()),
                    done: started.elapsed(),
                }),
                Ok(Err(e)) => {
                    let msg = e.to_string();
                    let key: String = msg.chars().take(60).collect();
                    *errors.lock().unwrap().entry(key).or_default() += 1;
                }
                Err(_) => *errors.lock().unwrap().entry("timeout".into()).or_default() += 1,
            }
        }));
    }
    let sent_secs = started.elapsed().as_secs_f64();
    // All requests are out; give the proxy a moment to read the last ones, then look at it.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (rss_waiting, _) = rss_kb(pid);
    let answered_early = done.lock().unwrap().len();
    let depth = match &metrics_url {
        Some(u) => metric(u, "otproxy_queue_depth").await,
        None => None,
    };
    for t in tasks {
        let _ = t.await;
    }
    sampling.store(false, Ordering::Relaxed);
    let _ = sampler.await;
    let (rss_after, hwm) = rss_kb(pid);
    let mut done = std::mem::take(&mut *done.lock().unwrap());
    let mut statuses = BTreeMap::<String, u64>::new();
    let mut attempts = BTreeMap::<String, u64>::new();
    for d in &done {
        *statuses.entry(d.status.to_string()).or_default() += 1;
        *attempts.entry(d.attempts.clone()).or_default() += 1;
    }
    // Completion order as the clients saw it (coarser than the upstream's arrival order).
    done.sort_by_key(|d| d.done);
    let mut inversions = 0u64;
    let mut high = None::<u64>;
    for d in &done {
        if let Some(h) = high {
            if d.seq < h {
                inversions += 1;
            }
        }
        high = Some(high.map_or(d.seq, |h| h.max(d.seq)));
    }
    // The upstream's arrival order against the clients' order. A request is overtaken when it
    // reaches the upstream after one whose write *started* after this one's write had returned
    // (so it certainly reached the proxy later); its lag is by how much. Requests whose writes
    // overlapped are concurrent: either order is right.
    let mut up = String::from("null");
    if let Some(url) = o.0.get("upstream-url") {
        let times: BTreeMap<u64, (Duration, Duration)> = done
            .iter()
            .map(|d| (d.seq, (d.write_start, d.sent)))
            .collect();
        let mut by_sent: Vec<(Duration, u64)> = done.iter().map(|d| (d.sent, d.seq)).collect();
        by_sent.sort();
        let writes_out_of_seq = by_sent.windows(2).filter(|w| w[1].1 < w[0].1).count();
        if let Ok((addr, path)) = split_url(&format!("{url}/__seqs")) {
            if let Ok((_, _, body)) = raw_get(addr, &path, true).await {
                let arrived: Vec<u64> = String::from_utf8_lossy(&body)
                    .split(',')
                    .filter_map(|v| v.trim().parse().ok())
                    .collect();
                let (mut overtaken, mut over_1ms, mut max_lag) = (0u64, 0u64, Duration::ZERO);
                let mut seq_inversions = 0u64;
                let mut latest_start = Duration::ZERO;
                let mut high = None::<u64>;
                for seq in &arrived {
                    if high.is_some_and(|h| *seq < h) {
                        seq_inversions += 1;
                    }
                    high = Some(high.map_or(*seq, |h| h.max(*seq)));
                    let Some(&(start, end)) = times.get(seq) else {
                        continue;
                    };
                    if end < latest_start {
                        overtaken += 1;
                        let lag = latest_start - end;
                        max_lag = max_lag.max(lag);
                        if lag > Duration::from_millis(1) {
                            over_1ms += 1;
                        }
                    }
                    latest_start = latest_start.max(start);
                }
                up = format!(
                    r#"{{"arrived":{},"overtaken":{overtaken},"overtaken_by_over_1ms":{over_1ms},"max_lag_ms":{:.3},"seq_inversions":{seq_inversions},"writes_out_of_seq_order":{writes_out_of_seq}}}"#,
                    arrived.len(),
                    max_lag.as_secs_f64() * 1000.0
                );
            }
        }
    }
    let first_done = done.first().map(|d| d.done.as_secs_f64()).unwrap_or(0.0);
    let last_done = done.last().map(|d| d.done.as_secs_f64()).unwrap_or(0.0);
    println!(
        r#"{{"clients":{clients},"connected":{},"sent_secs":{sent_secs:.3},"answered_before_all_sent":{answered_early},"queue_depth_all_sent":{},"rss_kb_before":{rss_before},"rss_kb_all_waiting":{rss_waiting},"rss_kb_peak_sampled":{},"rss_kb_after":{rss_after},"rss_kb_hwm":{hwm},"answered":{},"statuses":{},"attempts":{},"errors":{},"first_done_secs":{first_done:.3},"last_done_secs":{last_done:.3},"client_completion_inversions":{inversions},"upstream_order":{up}}}"#,
        connected.load(Ordering::Relaxed),
        depth.map_or("null".to_owned(), |d| d.to_string()),
        peak_rss.load(Ordering::Relaxed),
        done.len(),
        map_json(&statuses),
        map_json(&attempts),
        map_json(&errors.lock().unwrap()),
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// startup: time from spawn to the first 2xx answer

async fn startup(args: &[String]) -> Res<()> {
    let split = args
        .iter()
        .position(|a| a == "--")
        .ok_or("startup needs -- CMD")?;
    let o = Opts::parse(&args[..split]);
    let cmd = &args[split + 1..];
    let (addr, target) = split_url(&o.str("url"))?;
    let timeout = Duration::from_secs(o.num("timeout-secs", 10));
    let idle = Duration::from_millis(o.num("idle-ms", 2000));
    let started = Instant::now();
    let mut child = tokio::process::Command::new(cmd.first().ok_or("no command")?)
        .args(&cmd[1..])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()?;
    let pid = child.id().unwrap_or(0);
    let mut tries = 0u64;
    let served = loop {
        tries += 1;
        if started.elapsed() > timeout {
            break None;
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the command exited early: {status}").into());
        }
        match raw_get(addr, &target, true).await {
            Ok((status, _, _)) if (200..300).contains(&status) => break Some(started.elapsed()),
            _ => tokio::time::sleep(Duration::from_micros(500)).await,
        }
    };
    let Some(served) = served else {
        return Err("no 2xx answer in time".into());
    };
    let (rss_first, _) = rss_kb(pid);
    tokio::time::sleep(idle).await;
    let (rss_idle, hwm) = rss_kb(pid);
    let _ = std::process::Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(5), child.wait()).await;
    println!(
        r#"{{"first_served_ms":{:.2},"tries":{tries},"rss_kb_after_first":{rss_first},"rss_kb_idle":{rss_idle},"rss_kb_hwm":{hwm}}}"#,
        served.as_secs_f64() * 1000.0
    );
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// floor-proxy

type FloorClient = hyper_util::client::legacy::Client<
    hyper_util::client::legacy::connect::HttpConnector,
    Full<Bytes>,
>;

/// The cheapest reverse proxy on the project's stack, built the way the proxy is (one std
/// thread per CPU, each with its own current_thread runtime, accepting on a clone of one
/// listener, and its own pooled client): method, path and headers forwarded with the key set,
/// the upstream's answer collected and returned. No envelope, limiter, logs or metrics.
fn floor_proxy(o: Opts) -> Res<()> {
    let listen: SocketAddr = o.str("listen").parse()?;
    let upstream = o.str("upstream").trim_end_matches('/').to_owned();
    if !upstream.starts_with("http://") {
        return Err("--upstream must be http://HOST:PORT".into());
    }
    // Checked once here so the handler only ever sees well-formed prefixes.
    upstream.parse::<hyper::Uri>()?;
    let default_workers = std::thread::available_parallelism().map_or(1, |n| n.get());
    let workers: usize = o.num("workers", default_workers).max(1);
    let listener = std::net::TcpListener::bind(listen)?;
    listener.set_nonblocking(true)?;
    println!("listening {} ({workers} workers)", listener.local_addr()?);
    let upstream: Arc<str> = upstream.into();
    let mut threads = Vec::with_capacity(workers);
    for i in 0..workers {
        let std_listener = listener.try_clone()?;
        let upstream = upstream.clone();
        threads.push(
            std::thread::Builder::new()
                .name(format!("floor-{i}"))
                .spawn(move || -> Res<()> {
                    rt_current().block_on(floor_worker(std_listener, upstream))
                })?,
        );
    }
    drop(listener);
    for t in threads {
        match t.join() {
            Ok(r) => r?,
            Err(_) => return Err("a floor-proxy worker panicked".into()),
        }
    }
    Ok(())
}

/// The next connection, with TCP_NODELAY; an accept error is printed and retried after 10 ms.
async fn accept(listener: &TcpListener, who: &str) -> TcpStream {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let _ = stream.set_nodelay(true);
                return stream;
            }
            Err(e) => {
                eprintln!("otbench {who}: accept: {e}");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        }
    }
}

async fn floor_worker(std_listener: std::net::TcpListener, upstream: Arc<str>) -> Res<()> {
    let listener = TcpListener::from_std(std_listener)?;
    let mut connector = hyper_util::client::legacy::connect::HttpConnector::new();
    connector.set_nodelay(true);
    let client: FloorClient =
        hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_max_idle_per_host(256)
            .build(connector);
    let mut http = http1::Builder::new();
    http.timer(TokioTimer::new());
    loop {
        let stream = accept(&listener, "floor-proxy").await;
        let client = client.clone();
        let upstream = upstream.clone();
        let conn = http.serve_connection(
            TokioIo::new(stream),
            service_fn(move |req| {
                let client = client.clone();
                let upstream = upstream.clone();
                async move { Ok::<_, Infallible>(floor_forward(&client, &upstream, req).await) }
            }),
        );
        tokio::spawn(async move {
            let _ = conn.await;
        });
    }
}

async fn floor_forward(
    client: &FloorClient,
    upstream: &str,
    req: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let bad_gateway = || {
        let mut r = Response::new(Full::new(Bytes::new()));
        *r.status_mut() = hyper::StatusCode::BAD_GATEWAY;
        r
    };
    let (parts, _body) = req.into_parts();
    let pq = parts.uri.path_and_query().map_or("/", |pq| pq.as_str());
    let Ok(uri) = format!("{upstream}{pq}").parse::<hyper::Uri>() else {
        return bad_gateway();
    };
    let mut out = Request::new(Full::new(Bytes::new()));
    *out.method_mut() = parts.method;
    *out.uri_mut() = uri;
    *out.headers_mut() = parts.headers;
    let headers = out.headers_mut();
    // The body is not forwarded: no framing headers that would promise one.
    headers.remove(hyper::header::CONTENT_LENGTH);
    headers.remove(hyper::header::TRANSFER_ENCODING);
    headers.insert(
        hyper::header::AUTHORIZATION,
        hyper::header::HeaderValue::from_static("bench-fake-key"),
    );
    let Ok(resp) = client.request(out).await else {
        return bad_gateway();
    };
    let (parts, body) = resp.into_parts();
    match body.collect().await {
        Ok(collected) => Response::from_parts(parts, Full::new(collected.to_bytes())),
        Err(_) => bad_gateway(),
    }
}

// ---------------------------------------------------------------------------------------------
// small helpers

async fn get_cmd(args: &[String]) -> Res<()> {
    let url = args.first().ok_or("get URL")?;
    let (addr, target) = split_url(url)?;
    let (status, _, body) =
        tokio::time::timeout(Duration::from_secs(10), raw_get(addr, &target, true))
            .await
            .map_err(|_| "timed out")??;
    use std::io::Write;
    std::io::stdout().write_all(&body)?;
    if !(200..300).contains(&status) {
        return Err(format!("HTTP {status}").into());
    }
    Ok(())
}

fn free_ports(args: &[String]) -> Res<()> {
    let n: usize = args.first().map(|v| v.parse()).transpose()?.unwrap_or(1);
    // Hold them all at once so the n ports differ; the caller binds them right after.
    let held: Vec<std::net::TcpListener> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0"))
        .collect::<Result<_, _>>()?;
    let ports: Vec<String> = held
        .iter()
        .map(|l| l.local_addr().map(|a| a.port().to_string()))
        .collect::<Result<_, _>>()?;
    println!("{}", ports.join(" "));
    Ok(())
}
