//! Forwarding: check the request target, authenticate the caller, buffer the body, send one
//! attempt upstream with the key, and turn the envelope into a real HTTP status.
//!
//! The steps are plain functions over [`Prepared`] (a replayable request) and [`Reply`] (a read
//! upstream answer), so that rate limiting and retries wrap [`Proxy::attempt`] without touching
//! the rest.

pub mod client;
pub mod encoding;
pub mod envelope;
pub mod headers;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body_util::{BodyExt, BodyStream, Full, Limited, StreamBody};

use tokio::time::Instant;

use crate::config::Config;
use crate::error::ProxyError;
use crate::layers::rate_limit::{RateLimiter, retry_after_secs};
use crate::layers::retry::{self, Reason, RetryPolicy};
use crate::metrics::{Metrics, UpstreamOutcome};
use crate::route::Route;
use crate::secret::{ApiKey, KeyStore};
use client::UpstreamClient;
use envelope::Outcome;

/// `X-Upstream-Status`: the HTTP status the upstream itself answered with.
pub static X_UPSTREAM_STATUS: HeaderName = HeaderName::from_static("x-upstream-status");
/// `X-Proxy-Attempts`: upstream attempts made for this request.
pub static X_PROXY_ATTEMPTS: HeaderName = HeaderName::from_static("x-proxy-attempts");
/// `X-RateLimit-Limit`: the global limiter's requests per `rate_limit.per`.
pub static X_RATELIMIT_LIMIT: HeaderName = HeaderName::from_static("x-ratelimit-limit");
/// `X-RateLimit-Remaining`: global tokens available after this request's.
pub static X_RATELIMIT_REMAINING: HeaderName = HeaderName::from_static("x-ratelimit-remaining");
/// `X-OnlyTraffic-Error-Code`: the envelope's `error_code`, on envelope errors.
pub static X_ONLYTRAFFIC_ERROR_CODE: HeaderName =
    HeaderName::from_static("x-onlytraffic-error-code");

/// The forwarding engine: configuration, key and the pooled upstream client.
///
/// Every worker thread has its own [`Proxy`] ([`Proxy::for_worker`]): its own upstream client,
/// so a connection is only ever driven by the event loop that uses it, and shared everything
/// else (one limiter and one retry budget for the key's quota, one set of metrics).
pub struct Proxy {
    config: Arc<Config>,
    client: UpstreamClient,
    limiter: Arc<RateLimiter>,
    retry: Arc<RetryPolicy>,
    /// Global tokens left after the last one taken, for `X-RateLimit-Remaining`.
    last_remaining: Arc<AtomicU32>,
    metrics: Arc<Metrics>,
    keys: Arc<KeyStore>,
}

/// What the access log line needs from inside the proxy; put in the response's extensions.
#[derive(Debug, Clone, Default)]
pub struct AccessInfo {
    /// The bounded route label.
    pub route: &'static str,
    /// Upstream attempts made.
    pub attempts: u32,
    /// Time spent waiting for rate-limit tokens.
    pub waited: Duration,
    /// Request body bytes.
    pub bytes_in: u64,
    /// The envelope's `error_code`, on envelope errors.
    pub error_code: Option<i64>,
}

/// A client request made ready for the upstream; cheap to replay (the body is shared bytes).
#[derive(Debug, Clone)]
pub struct Prepared {
    pub method: Method,
    pub uri: Uri,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// The client's `Accept-Encoding`, to decide whether it can take a compressed reply.
    pub client_accept_encoding: Option<HeaderValue>,
    /// The partner-API operation, for rate-limit rules and the retry policy.
    pub route: Route,
    /// The key this request uses for all its attempts, even if the key is rotated meanwhile.
    pub key: Arc<ApiKey>,
}

/// The body of a read upstream answer.
pub enum ReplyBody {
    /// Read whole (within `limits.max_response_body`).
    Buffered(Bytes),
    /// Too large to buffer: passed through unchanged, never inspected.
    Streaming(Body),
}

/// An upstream answer with its envelope outcome.
pub struct Reply {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: ReplyBody,
    pub outcome: Outcome,
    /// The decoded body when the upstream compressed it, kept so a client that cannot take the
    /// upstream's coding still gets a body it can read.
    pub decoded: Option<Bytes>,
}

impl Proxy {
    pub fn new(config: Arc<Config>, metrics: Arc<Metrics>, keys: Arc<KeyStore>) -> Self {
        let client = client::build(config.timeouts.connect);
        let limiter = RateLimiter::new(&config.rate_limit);
        let retry = RetryPolicy::new(&config.retry);
        Self {
            last_remaining: Arc::new(AtomicU32::new(config.rate_limit.burst.get())),
            config,
            client,
            limiter: Arc::new(limiter),
            retry: Arc::new(retry),
            metrics,
            keys,
        }
    }

    /// The same proxy (shared limiter, retry budget, metrics and keys) with its own upstream
    /// client, for another worker thread. Call it on the thread that will use it.
    pub fn for_worker(&self) -> Self {
        Self {
            config: self.config.clone(),
            client: client::build(self.config.timeouts.connect),
            limiter: self.limiter.clone(),
            retry: self.retry.clone(),
            last_remaining: self.last_remaining.clone(),
            metrics: self.metrics.clone(),
            keys: self.keys.clone(),
        }
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The limiter, for the metrics gauges read at scrape time.
    pub fn limiter(&self) -> &RateLimiter {
        &self.limiter
    }

    /// The metrics, shared by every worker.
    pub fn metrics(&self) -> &Arc<Metrics> {
        &self.metrics
    }

    /// The key store, which key rotation updates.
    pub fn keys(&self) -> &Arc<KeyStore> {
        &self.keys
    }

    /// Handles one client request end to end. Every response, proxied or made by the proxy,
    /// carries `X-Proxy-Attempts` and the global `X-RateLimit-*` headers, and an [`AccessInfo`]
    /// in its extensions for the access log.
    pub async fn handle(&self, req: Request<Body>, request_id: &str) -> Response<Body> {
        let started = Instant::now();
        let method = req.method().clone();
        let route = Route::of(req.uri().path(), req.uri().query());
        let mut info = AccessInfo {
            route: route.label(),
            ..AccessInfo::default()
        };
        let result = self.handle_inner(req, route, &mut info).await;
        let remaining = match &result {
            Err(ProxyError::RateLimited(r)) if r.scope == "global" => 0,
            _ => self.last_remaining.load(Ordering::Relaxed),
        };
        let mut resp = result.unwrap_or_else(|err| {
            if let ProxyError::RateLimited(r) = &err {
                self.metrics.rate_limited(&r.scope);
            }
            if err.status().is_server_error() {
                tracing::warn!(error = %err, attempts = info.attempts, "request failed");
            } else {
                tracing::info!(error = %err, "request refused");
            }
            err.to_response(request_id)
        });
        self.metrics.request(
            info.route,
            &method,
            resp.status().as_u16(),
            started.elapsed(),
        );
        let headers = resp.headers_mut();
        headers.insert(X_PROXY_ATTEMPTS.clone(), number_header(info.attempts));
        headers.insert(
            X_RATELIMIT_LIMIT.clone(),
            number_header(self.limiter.limit()),
        );
        headers.insert(X_RATELIMIT_REMAINING.clone(), number_header(remaining));
        resp.extensions_mut().insert(info);
        resp
    }

    async fn handle_inner(
        &self,
        req: Request<Body>,
        route: Route,
        info: &mut AccessInfo,
    ) -> Result<Response<Body>, ProxyError> {
        check_target(&req)?;
        self.check_inbound(req.headers())?;
        let total = self.config.timeouts.total;
        let deadline = Instant::now() + total;
        tokio::time::timeout_at(deadline, async {
            let prepared = self.prepare(req, route).await?;
            info.bytes_in = prepared.body.len() as u64;
            self.forward(&prepared, deadline, info).await
        })
        .await
        .map_err(|_| ProxyError::TotalTimeout { timeout: total })?
    }

    /// The attempt loop: route rules, then for every attempt a global token, the upstream try,
    /// and the retry policy's verdict. A wait that would pass `deadline` is not started.
    async fn forward(
        &self,
        p: &Prepared,
        deadline: Instant,
        info: &mut AccessInfo,
    ) -> Result<Response<Body>, ProxyError> {
        let query = p.uri.query();
        self.retry.deposit();
        let route_tokens = self
            .limiter
            .route_check(&p.route, query, &p.body, deadline)
            .await
            .map_err(ProxyError::RateLimited)?;
        // A 429 for a request under a keyed rule (one smartlink) is about that key, not the
        // API key: no retry, no global cooldown.
        let keyed = self.limiter.has_keyed_rule(&p.route);
        // The answer being retried, returned as it is if the retry cannot get a token.
        let mut previous: Option<(Result<Reply, ProxyError>, Option<Duration>)> = None;
        loop {
            let permit = match self.limiter.acquire(deadline).await {
                Ok(permit) => permit,
                Err(rejection) => {
                    let Some((result, retry_after)) = previous else {
                        self.limiter.refund(&route_tokens);
                        return Err(ProxyError::RateLimited(rejection));
                    };
                    tracing::info!(reason = %rejection.reason, "retry got no rate-limit token in time; returning the last answer");
                    return result.map(|reply| self.finish(reply, p, retry_after, info));
                }
            };
            drop(previous.take()); // the retried answer is no longer needed
            self.metrics.rate_limit_wait(permit.waited);
            info.waited += permit.waited;
            self.last_remaining
                .store(permit.remaining, Ordering::Relaxed);
            info.attempts += 1;
            let attempt = info.attempts;
            let tried = Instant::now();
            // Boxed, so the future parked in the limiter's queue above does not carry the
            // space of a whole upstream exchange.
            let result = Box::pin(self.attempt(p)).await;
            self.metrics
                .upstream(info.route, upstream_outcome(&result), tried.elapsed());
            let Some((reason, hint)) = retry_signal(&result) else {
                return result.map(|reply| self.finish(reply, p, None, info));
            };
            let wait = self.retry.delay(attempt, hint);
            if reason == Reason::RateLimited && !keyed {
                self.limiter.cooldown(wait);
            }
            let why_not = if reason == Reason::RateLimited && keyed {
                Some("the 429 is for this request's route key")
            } else if !self.retry.allows(reason, &p.method, &p.route) {
                Some("retry.retry_server_errors does not allow retrying this request")
            } else if !self.retry.attempts_left(attempt) {
                Some("retry.max_attempts reached")
            } else if Instant::now() + wait >= deadline {
                Some("the wait would pass timeouts.total")
            } else if !self.retry.withdraw() {
                self.metrics.retry_budget_exhausted();
                Some("the retry budget is spent")
            } else {
                None
            };
            let retry_after = (reason == Reason::RateLimited).then_some(wait);
            if let Some(why_not) = why_not {
                tracing::info!(attempt, reason = reason.as_str(), why_not, "not retrying");
                return result.map(|reply| self.finish(reply, p, retry_after, info));
            }
            tracing::info!(
                attempt,
                reason = reason.as_str(),
                wait_ms = wait.as_millis() as u64,
                "retrying upstream request"
            );
            self.metrics.retry(reason.as_str());
            previous = Some((result, retry_after));
            tokio::time::sleep(wait).await;
        }
    }

    /// Records the final answer's envelope error, then builds the client's response.
    fn finish(
        &self,
        reply: Reply,
        p: &Prepared,
        retry_after: Option<Duration>,
        info: &mut AccessInfo,
    ) -> Response<Body> {
        if let (true, Outcome::Error { code, .. }) = (reply.status.is_success(), &reply.outcome) {
            info.error_code = *code;
            self.metrics.envelope_error(*code);
        }
        self.respond(reply, p, retry_after)
    }

    /// Inbound bearer tokens, when configured.
    fn check_inbound(&self, headers: &HeaderMap) -> Result<(), ProxyError> {
        let Some(tokens) = &self.config.inbound_tokens else {
            return Ok(());
        };
        let presented = headers
            .get(header::AUTHORIZATION)
            .map(HeaderValue::as_bytes)
            .and_then(|v| {
                let (scheme, token) = v.split_at(v.iter().position(|b| *b == b' ')?);
                scheme
                    .eq_ignore_ascii_case(b"bearer")
                    .then(|| token.trim_ascii())
            });
        match presented {
            Some(token) if tokens.accepts(token) => Ok(()),
            _ => Err(ProxyError::Unauthorized),
        }
    }

    /// Buffers the body (bounded) and builds the upstream request target and headers.
    async fn prepare(&self, req: Request<Body>, route: Route) -> Result<Prepared, ProxyError> {
        let (parts, body) = req.into_parts();
        let limit = self.config.max_request_body;
        let declared = parts
            .headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        if declared.is_some_and(|len| len > limit) {
            return Err(ProxyError::BodyTooLarge { limit });
        }
        let body = Limited::new(body, usize::try_from(limit).unwrap_or(usize::MAX))
            .collect()
            .await
            .map_err(|e| {
                if e.downcast_ref::<http_body_util::LengthLimitError>()
                    .is_some()
                {
                    ProxyError::BodyTooLarge { limit }
                } else {
                    ProxyError::RequestBody(root_cause(e.as_ref()))
                }
            })?
            .to_bytes();
        let body = headers::detach_body(body);
        let pq = parts
            .uri
            .path_and_query()
            .map(|pq| pq.as_str())
            .unwrap_or("/");
        let uri = self
            .config
            .upstream
            .uri_for(pq)
            .map_err(|e| ProxyError::BadTarget(pq.to_owned(), e.to_string()))?;
        let mut headers = parts.headers;
        headers::sanitize_request(&mut headers);
        headers::detach(&mut headers);
        let client_accept_encoding = headers.get(header::ACCEPT_ENCODING).cloned();
        headers.remove(header::ACCEPT_ENCODING);
        if let Some(ae) = encoding::upstream_accept_encoding(client_accept_encoding.as_ref()) {
            headers.insert(header::ACCEPT_ENCODING, ae);
        }
        Ok(Prepared {
            method: parts.method,
            uri,
            headers,
            body,
            client_accept_encoding,
            route,
            key: self.keys.current(),
        })
    }

    /// One upstream try, bounded by `timeouts.attempt`: send with the key, read the answer,
    /// classify the envelope.
    pub async fn attempt(&self, prepared: &Prepared) -> Result<Reply, ProxyError> {
        let timeout = self.config.timeouts.attempt;
        tokio::time::timeout(timeout, async {
            let req = self.upstream_request(prepared);
            let resp = self
                .client
                .request(req)
                .await
                .map_err(|e| self.classify(e))?;
            self.read_reply(resp, &prepared.method).await
        })
        .await
        .map_err(|_| ProxyError::AttemptTimeout { timeout })?
    }

    fn upstream_request(&self, p: &Prepared) -> Request<Full<Bytes>> {
        let mut req = Request::new(Full::new(p.body.clone()));
        *req.method_mut() = p.method.clone();
        *req.uri_mut() = p.uri.clone();
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        headers.clone_from(&p.headers);
        // Innermost step: nothing else handles the key, and the value is marked sensitive.
        headers.insert(header::AUTHORIZATION, p.key.header_value().clone());
        req
    }

    fn classify(&self, e: hyper_util::client::legacy::Error) -> ProxyError {
        let upstream = self.config.upstream.to_string();
        if e.is_connect() {
            if has_timeout(&e) {
                return ProxyError::ConnectTimeout {
                    upstream,
                    timeout: self.config.timeouts.connect,
                };
            }
            return ProxyError::Unreachable {
                upstream,
                cause: root_cause(&e),
            };
        }
        ProxyError::UpstreamBroken {
            cause: root_cause(&e),
        }
    }

    /// Reads the answer: whole when it fits `limits.max_response_body`, else as a stream.
    async fn read_reply(
        &self,
        resp: Response<hyper::body::Incoming>,
        method: &Method,
    ) -> Result<Reply, ProxyError> {
        let (parts, mut body) = resp.into_parts();
        let mut headers = parts.headers;
        headers::strip_hop_by_hop(&mut headers);
        let limit = self.config.max_response_body;
        let declared = headers
            .get(header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok());
        let streaming = |body: Body| Reply {
            status: parts.status,
            headers: headers.clone(),
            body: ReplyBody::Streaming(body),
            outcome: Outcome::NotEnvelope,
            decoded: None,
        };
        if method != Method::HEAD && declared.is_some_and(|len| len > limit) {
            tracing::warn!(
                content_length = declared,
                limit,
                "upstream response larger than limits.max_response_body: streamed through without the envelope rewrite"
            );
            return Ok(streaming(Body::new(body)));
        }
        let mut chunks: Vec<Bytes> = Vec::new();
        let mut size: u64 = 0;
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| ProxyError::UpstreamBroken {
                cause: root_cause(&e),
            })?;
            let Ok(data) = frame.into_data() else {
                continue; // trailers are not forwarded
            };
            size += data.len() as u64;
            chunks.push(data);
            if size > limit {
                tracing::warn!(
                    limit,
                    "upstream response larger than limits.max_response_body: streamed through without the envelope rewrite"
                );
                let read = futures_util::stream::iter(
                    chunks
                        .into_iter()
                        .map(|c| Ok::<_, hyper::Error>(http_body::Frame::data(c))),
                );
                let rest = BodyStream::new(body);
                return Ok(streaming(Body::new(StreamBody::new(read.chain(rest)))));
            }
        }
        let bytes = concat(chunks, size);
        let coding = encoding::content_coding(&headers).map(str::to_owned);
        let decoded = coding
            .as_deref()
            .and_then(|c| encoding::decode(c, &bytes, limit))
            .map(Bytes::from);
        let outcome = match (&coding, &decoded) {
            (None, _) => envelope::parse(&bytes),
            (Some(_), Some(plain)) => envelope::parse(plain),
            (Some(c), None) => {
                tracing::warn!(coding = %c, "cannot decode the upstream body; status left as the upstream's");
                Outcome::NotEnvelope
            }
        };
        Ok(Reply {
            status: parts.status,
            headers,
            body: ReplyBody::Buffered(bytes),
            outcome,
            decoded,
        })
    }

    /// Builds the client's response: the body as the upstream sent it (decoded only when the
    /// client cannot take the upstream's coding), the status from the envelope.
    /// `retry_after` is the proxy's own estimate, added as `Retry-After` when the upstream's
    /// 429 carried none.
    pub fn respond(
        &self,
        reply: Reply,
        prepared: &Prepared,
        retry_after: Option<Duration>,
    ) -> Response<Body> {
        let Reply {
            status: upstream_status,
            mut headers,
            body,
            outcome,
            decoded,
        } = reply;
        let mut status = upstream_status;
        let mut error_code = None;
        if upstream_status.is_success() {
            if let Outcome::Error { code, .. } = outcome {
                status = envelope::error_status(code, &self.config.status_map);
                error_code = code;
            }
        }
        let body = match body {
            ReplyBody::Streaming(body) => body,
            ReplyBody::Buffered(bytes) => match (encoding::content_coding(&headers), decoded) {
                (Some(c), Some(plain))
                    if !encoding::client_accepts(prepared.client_accept_encoding.as_ref(), c) =>
                {
                    headers.remove(header::CONTENT_ENCODING);
                    headers.remove(header::CONTENT_LENGTH);
                    Body::from(plain)
                }
                _ => Body::from(bytes),
            },
        };
        headers.insert(
            X_UPSTREAM_STATUS.clone(),
            number_header(u32::from(upstream_status.as_u16())),
        );
        if let Some(code) = error_code {
            headers.insert(X_ONLYTRAFFIC_ERROR_CODE.clone(), HeaderValue::from(code));
        }
        if let Some(wait) = retry_after.filter(|_| !headers.contains_key(header::RETRY_AFTER)) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(retry_after_secs(wait)),
            );
        }
        let mut resp = Response::new(body);
        *resp.status_mut() = status;
        *resp.headers_mut() = headers;
        resp
    }
}

/// The `outcome` label of one upstream attempt.
fn upstream_outcome(result: &Result<Reply, ProxyError>) -> UpstreamOutcome {
    match result {
        Ok(reply) if !reply.status.is_success() => UpstreamOutcome::HttpError,
        Ok(Reply {
            outcome: Outcome::Error { .. },
            ..
        }) => UpstreamOutcome::EnvelopeError,
        Ok(_) => UpstreamOutcome::Success,
        Err(ProxyError::AttemptTimeout { .. } | ProxyError::ConnectTimeout { .. }) => {
            UpstreamOutcome::Timeout
        }
        Err(_) => UpstreamOutcome::ConnectError,
    }
}

/// Whether an attempt's result calls for a retry, and the upstream's wait hint if it gave one.
fn retry_signal(result: &Result<Reply, ProxyError>) -> Option<(Reason, Option<Duration>)> {
    match result {
        Ok(reply) => {
            let envelope_code = match reply.outcome {
                Outcome::Error { code, .. } if reply.status.is_success() => code,
                _ => None,
            };
            let reason = retry::reason_for_status(reply.status).or_else(|| {
                envelope_code
                    .and_then(|c| u16::try_from(c).ok())
                    .and_then(|c| StatusCode::from_u16(c).ok())
                    .and_then(retry::reason_for_status)
            })?;
            let hint = if reason == Reason::RateLimited {
                let body_hint = match reply.outcome {
                    Outcome::Error { retry_after, .. } => retry::body_retry_after(retry_after),
                    _ => None,
                };
                retry::parse_retry_after(&reply.headers, SystemTime::now()).or(body_hint)
            } else {
                None
            };
            Some((reason, hint))
        }
        Err(ProxyError::Unreachable { .. } | ProxyError::ConnectTimeout { .. }) => {
            Some((Reason::Connect, None))
        }
        Err(ProxyError::AttemptTimeout { .. } | ProxyError::UpstreamBroken { .. }) => {
            Some((Reason::Timeout, None))
        }
        Err(_) => None,
    }
}

/// Refuses anything but an origin-form request for a path: absolute-form targets (HTTP/1) and
/// CONNECT would let a caller pick the destination.
fn check_target<B>(req: &Request<B>) -> Result<(), ProxyError> {
    if req.method() == Method::CONNECT {
        return Err(ProxyError::Connect);
    }
    // HTTP/2 requests always carry :scheme and :authority; only HTTP/1 has absolute form.
    let absolute = req.uri().scheme().is_some() || req.uri().authority().is_some();
    if absolute && req.version() < Version::HTTP_2 {
        return Err(ProxyError::AbsoluteForm);
    }
    if !req.uri().path().starts_with('/') {
        return Err(ProxyError::BadTarget(
            req.uri().to_string(),
            "the target must be a path starting with /".into(),
        ));
    }
    Ok(())
}

/// A number as a header value; the small ones and the usual statuses (attempts, remaining
/// tokens, `X-Upstream-Status: 200`) without allocating, as every response carries several.
fn number_header(n: u32) -> HeaderValue {
    const SMALL: [&str; 21] = [
        "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16",
        "17", "18", "19", "20",
    ];
    match n {
        200 => HeaderValue::from_static("200"),
        n => usize::try_from(n)
            .ok()
            .and_then(|i| SMALL.get(i))
            .map_or_else(|| HeaderValue::from(n), |s| HeaderValue::from_static(s)),
    }
}

/// Joins body chunks with one copy at most (none for a single chunk).
fn concat(mut chunks: Vec<Bytes>, size: u64) -> Bytes {
    match chunks.len() {
        0 => Bytes::new(),
        1 => chunks.pop().unwrap_or_default(),
        _ => {
            let mut buf = BytesMut::with_capacity(usize::try_from(size).unwrap_or(0));
            for c in chunks {
                buf.extend_from_slice(&c);
            }
            buf.freeze()
        }
    }
}

/// The innermost error message, which says what actually went wrong ("Connection refused").
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut cur = e;
    while let Some(next) = cur.source() {
        cur = next;
    }
    cur.to_string()
}

fn has_timeout(e: &(dyn std::error::Error + 'static)) -> bool {
    let mut cur = Some(e);
    while let Some(err) = cur {
        if err
            .downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::TimedOut)
            || err.to_string().contains("timed out")
        {
            return true;
        }
        cur = err.source();
    }
    false
}

#[cfg(test)]
mod tests {
    #[test]
    fn number_headers_are_the_formatted_number() {
        for n in (0..=300).chain([1000, u32::MAX]) {
            assert_eq!(super::number_header(n), n.to_string().as_str(), "{n}");
        }
    }
}
