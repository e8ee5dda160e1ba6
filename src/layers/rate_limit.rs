//! Client-side rate limiting of the key's quota: one global GCRA limiter with a FIFO wait queue
//! and a shared cooldown, plus per-route rules such as `generate_link` per smartlink.
//!
//! [`RateLimiter`] is the one interface the proxy uses; a limiter shared between replicas (e.g.
//! through Redis) would implement the same `acquire` / `route_check` / `cooldown` surface.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::time::Instant;

use crate::config::{RateLimitConfig, RouteRuleConfig};
use crate::route::{self, Route};

/// The limiters' clock on tokio's time, so waits and the limiter agree and tests can pause time.
#[derive(Clone, Debug)]
pub struct TokioClock {
    origin: Instant,
}

impl TokioClock {
    fn new() -> Self {
        Self {
            origin: Instant::now(),
        }
    }

    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// How late a sleeping request may wake up without the key's schedule slipping. tokio's timer
/// rounds a deadline up to its 1 ms tick and the runtime parks in whole milliseconds, so a
/// sleeper wakes up to about 2 ms late.
const WAKE_SLACK: Duration = Duration::from_millis(2);

/// The key's GCRA, with the theoretical arrival time (TAT) of the next token kept here rather
/// than in governor: governor books the next token from `max(TAT, now)`, so with burst 1 a
/// waiter that wakes 1 ms late pushes every later token back 1 ms (-10% at 100/s). Here a token
/// taken at most `slack` after its slot is booked from the slot: `TAT = TAT + interval` when
/// `now - slack <= TAT`, else `now + interval` (a quiet spell: no credit for it).
///
/// The slack is paid for in the interval, `(per + slack) / rate` (rounded up), so that it never
/// lets more through: every token books TAT to at least `now - slack + interval`, hence any
/// `rate + burst` tokens span at least `rate * interval - slack >= per`, and a window of one
/// period (half-open) admits at most `rate + burst - 1`, as plain GCRA does: with burst 1, never
/// more than `rate`.
#[derive(Debug)]
struct Gcra {
    interval: Duration,
    /// How far ahead of now the TAT may run: `(burst - 1) * interval`.
    tolerance: Duration,
    /// `WAKE_SLACK` less what the burst's tolerance already absorbs (none at rate 1: there is
    /// nothing to gain by it there, as every token would pay the whole slack).
    slack: Duration,
    burst: u32,
    /// The next token's theoretical arrival time, as clock time.
    tat: Mutex<Duration>,
}

impl Gcra {
    fn new(rate: u32, per: Duration, burst: u32) -> Self {
        let absorbed = (per / rate).saturating_mul(burst - 1);
        let slack = if rate > 1 {
            WAKE_SLACK.saturating_sub(absorbed)
        } else {
            Duration::ZERO
        };
        let nanos = (per + slack).as_nanos().div_ceil(u128::from(rate)).max(1);
        let interval = Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX));
        Self {
            interval,
            tolerance: interval.saturating_mul(burst - 1),
            slack,
            burst,
            tat: Mutex::new(Duration::ZERO),
        }
    }

    /// Takes a token at the clock's now: the tokens left in the burst after it, or how long until
    /// one is free.
    fn take(&self, clock: &TokioClock) -> Result<u32, Duration> {
        let mut tat = self.tat.lock().unwrap_or_else(PoisonError::into_inner);
        // Read under the lock, so that tokens are booked in the order of their times.
        let now = clock.elapsed();
        let earliest = tat.saturating_sub(self.tolerance);
        if now < earliest {
            return Err(earliest - now);
        }
        let from = if *tat + self.slack >= now { *tat } else { now };
        *tat = from + self.interval;
        let room = (now + self.tolerance + self.interval).saturating_sub(*tat);
        let left = room.as_nanos() / self.interval.as_nanos();
        Ok(u32::try_from(left).unwrap_or(u32::MAX).min(self.burst))
    }
}

/// Why a request was refused a token; nothing was sent upstream.
#[derive(Debug, Clone, PartialEq)]
pub struct Rejection {
    /// When a retry could succeed.
    pub retry_after: Duration,
    /// `global` or the route rule's `route`.
    pub scope: String,
    /// What was exhausted, for the client's message.
    pub reason: String,
}

/// A token for one upstream attempt, with the global state at the time it was taken.
#[derive(Debug, Clone, Copy)]
pub struct Permit {
    /// Time spent waiting for the token.
    pub waited: Duration,
    /// Tokens left in the global bucket right after this one was taken.
    pub remaining: u32,
}

/// The key's limiter: global GCRA + FIFO queue + cooldown, and the route rules.
pub struct RateLimiter {
    gcra: Gcra,
    clock: TokioClock,
    /// Requests per `per`, for `X-RateLimit-Limit` and messages.
    rate: u32,
    per: Duration,
    max_wait: Duration,
    max_queue: usize,
    /// FIFO turnstile: tokio's semaphore is fair, so waiters get tokens in arrival order.
    turnstile: Semaphore,
    waiting: AtomicUsize,
    /// Clock time (nanoseconds since origin) until which no token is handed out.
    cooldown_until: AtomicU64,
    routes: Vec<RouteRule>,
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("rate", &self.rate)
            .field("per", &self.per)
            .field("waiting", &self.waiting.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// Decrements the queue length however the wait ends (token, rejection, client gone).
struct QueueSlot<'a>(&'a AtomicUsize);

impl Drop for QueueSlot<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

impl RateLimiter {
    /// Builds the limiter from validated settings.
    pub fn new(cfg: &RateLimitConfig) -> Self {
        Self {
            gcra: Gcra::new(cfg.rate.get(), cfg.per, cfg.burst.get()),
            clock: TokioClock::new(),
            rate: cfg.rate.get(),
            per: cfg.per,
            max_wait: cfg.max_wait,
            max_queue: cfg.max_queue,
            turnstile: Semaphore::new(1),
            waiting: AtomicUsize::new(0),
            cooldown_until: AtomicU64::new(0),
            routes: cfg.routes.iter().map(RouteRule::new).collect(),
        }
    }

    /// `X-RateLimit-Limit`: requests per `rate_limit.per`.
    pub fn limit(&self) -> u32 {
        self.rate
    }

    /// Requests waiting for a token now.
    pub fn queue_depth(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Time left in the shared cooldown, if one is active.
    pub fn cooldown_remaining(&self) -> Option<Duration> {
        let until = Duration::from_nanos(self.cooldown_until.load(Ordering::Relaxed));
        until
            .checked_sub(self.clock.elapsed())
            .filter(|d| !d.is_zero())
    }

    /// Pauses the whole limiter for `wait` (an upstream 429 says the key is over quota). A
    /// shorter cooldown never shortens a longer one.
    pub fn cooldown(&self, wait: Duration) {
        let until = self.clock.elapsed() + wait;
        let nanos = u64::try_from(until.as_nanos()).unwrap_or(u64::MAX);
        self.cooldown_until.fetch_max(nanos, Ordering::Relaxed);
    }

    /// Waits for a global token, in arrival order, for at most `rate_limit.max_wait` and never
    /// past `deadline`. Refuses at once when the queue is full or the wait cannot fit.
    pub async fn acquire(&self, deadline: Instant) -> Result<Permit, Rejection> {
        let arrived = Instant::now();
        let deadline = deadline.min(arrived + self.max_wait);
        let budget = deadline.saturating_duration_since(arrived);
        let cooldown = self.cooldown_remaining().unwrap_or_default();
        let ahead = self.waiting.load(Ordering::Relaxed);
        // Fast path: nobody queued, no cooldown, a token is there.
        let first_wait = if ahead == 0 && cooldown.is_zero() {
            match self.gcra.take(&self.clock) {
                Ok(remaining) => {
                    return Ok(Permit {
                        waited: Duration::ZERO,
                        remaining,
                    });
                }
                Err(wait) => wait,
            }
        } else if ahead == 0 {
            // Only a cooldown stands in the way; the bucket may well hold tokens after it.
            Duration::ZERO
        } else {
            self.gcra.interval
        };
        let estimate = cooldown + first_wait + self.gcra.interval * ahead as u32;
        if ahead >= self.max_queue {
            return Err(self.reject(
                estimate,
                format!("{ahead} requests are already waiting (rate_limit.max_queue)"),
            ));
        }
        if estimate > budget {
            return Err(self.reject(estimate, self.exhausted_reason(budget)));
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _slot = QueueSlot(&self.waiting);
        let Ok(Ok(_turn)) = tokio::time::timeout_at(deadline, self.turnstile.acquire()).await
        else {
            return Err(self.reject(estimate, self.exhausted_reason(budget)));
        };
        loop {
            if let Some(rest) = self.cooldown_remaining() {
                if Instant::now() + rest > deadline {
                    return Err(self.reject(rest, self.exhausted_reason(budget)));
                }
                tokio::time::sleep(rest).await;
                continue;
            }
            match self.gcra.take(&self.clock) {
                Ok(remaining) => {
                    return Ok(Permit {
                        waited: arrived.elapsed(),
                        remaining,
                    });
                }
                Err(wait) => {
                    if Instant::now() + wait > deadline {
                        return Err(self.reject(wait, self.exhausted_reason(budget)));
                    }
                    tokio::time::sleep(wait).await;
                }
            }
        }
    }

    /// Applies the route rules that match `route` (keyed by a body or query field when the rule
    /// says so). Nothing is spent on a rejection. Returns the taken route tokens so they can be
    /// given back with [`RateLimiter::refund`] if the global limiter then refuses.
    pub async fn route_check(
        &self,
        route: &Route,
        query: Option<&str>,
        body: &[u8],
        deadline: Instant,
    ) -> Result<Vec<RouteToken>, Rejection> {
        let mut taken = Vec::new();
        for (index, rule) in self.routes.iter().enumerate() {
            if !route.matches(&rule.route) {
                continue;
            }
            let key = match &rule.key {
                None => String::new(),
                // A request without the key field is not this rule's business: the upstream
                // will refuse it (422) without spending that key's allowance.
                Some(field) => match route::field_value(query, body, field) {
                    Some(v) => v,
                    None => continue,
                },
            };
            let deadline = deadline.min(Instant::now() + rule.max_wait);
            match rule.reserve(&key, self.clock.elapsed()) {
                Ok((start, previous)) => {
                    let token = RouteToken {
                        rule: index,
                        key,
                        previous,
                    };
                    let wait = start.saturating_sub(self.clock.elapsed());
                    if !wait.is_zero() && Instant::now() + wait > deadline {
                        self.refund(std::slice::from_ref(&token));
                        self.refund(&taken);
                        return Err(rule.rejection(wait));
                    }
                    if !wait.is_zero() {
                        tokio::time::sleep(wait).await;
                    }
                    taken.push(token);
                }
                Err(wait) => {
                    self.refund(&taken);
                    return Err(rule.rejection(wait));
                }
            }
        }
        Ok(taken)
    }

    /// True when a rule that keys on a request field matched: an upstream 429 for such a
    /// request is about that key (one smartlink), not about the whole API key.
    pub fn has_keyed_rule(&self, route: &Route) -> bool {
        self.routes
            .iter()
            .any(|r| r.key.is_some() && route.matches(&r.route))
    }

    /// Gives route tokens back (the request never went upstream).
    pub fn refund(&self, tokens: &[RouteToken]) {
        for t in tokens {
            if let Some(rule) = self.routes.get(t.rule) {
                rule.refund(&t.key, t.previous);
            }
        }
    }

    fn reject(&self, retry_after: Duration, reason: String) -> Rejection {
        Rejection {
            retry_after,
            scope: "global".into(),
            reason,
        }
    }

    fn exhausted_reason(&self, budget: Duration) -> String {
        format!(
            "the key's rate of {} per {} (rate_limit.rate / rate_limit.per) has no token free within {:?}",
            self.rate,
            humantime::format_duration(self.per),
            budget
        )
    }
}

/// A route-rule token taken for one request.
#[derive(Debug, Clone)]
pub struct RouteToken {
    rule: usize,
    key: String,
    /// The key's theoretical arrival time before this token, to restore on refund.
    previous: Option<Duration>,
}

/// One `[[rate_limit.routes]]` rule: a small keyed GCRA. governor's keyed limiter cannot give a
/// token back, and a route token taken by a request that the global limiter then refuses must
/// be returned (otherwise one refused `generate_link` would block that smartlink for 5 minutes).
struct RouteRule {
    route: String,
    key: Option<String>,
    per: Duration,
    rate: u32,
    interval: Duration,
    /// How far ahead of now the theoretical arrival time may run (burst - 1 intervals).
    tolerance: Duration,
    max_wait: Duration,
    /// Theoretical arrival time per key, as clock time.
    state: Mutex<HashMap<String, Duration>>,
}

impl RouteRule {
    fn new(cfg: &RouteRuleConfig) -> Self {
        let interval = cfg.per / cfg.rate.get();
        Self {
            route: cfg.route.clone(),
            key: cfg.key.clone(),
            per: cfg.per,
            rate: cfg.rate.get(),
            interval,
            tolerance: interval * (cfg.burst.get() - 1),
            max_wait: cfg.max_wait,
            state: Mutex::new(HashMap::new()),
        }
    }

    /// Books the next slot for `key`: its start time (now or later) and the previous state, or
    /// how long until a slot frees when even waiting is not allowed by the burst.
    fn reserve(&self, key: &str, now: Duration) -> Result<(Duration, Option<Duration>), Duration> {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if state.len() > 10_000 {
            state.retain(|_, tat| *tat > now);
        }
        let previous = state.get(key).copied();
        let tat = previous.unwrap_or(now).max(now);
        // The slot starts when the bucket has room: tat - tolerance.
        let start = tat.saturating_sub(self.tolerance).max(now);
        if start > now && self.max_wait.is_zero() {
            return Err(start - now);
        }
        state.insert(key.to_owned(), tat + self.interval);
        Ok((start, previous))
    }

    fn refund(&self, key: &str, previous: Option<Duration>) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        match previous {
            Some(tat) => {
                state.insert(key.to_owned(), tat);
            }
            None => {
                state.remove(key);
            }
        }
    }

    fn rejection(&self, wait: Duration) -> Rejection {
        let what = match &self.key {
            Some(field) => format!(" for this {field}"),
            None => String::new(),
        };
        Rejection {
            retry_after: wait,
            scope: self.route.clone(),
            reason: format!(
                "the rule for {} allows {} per {}{what} ([[rate_limit.routes]])",
                self.route,
                self.rate,
                humantime::format_duration(self.per)
            ),
        }
    }
}

/// Whole seconds, rounded up, at least 1: the `Retry-After` header value.
pub fn retry_after_secs(d: Duration) -> u64 {
    let secs = d.as_secs() + u64::from(d.subsec_nanos() > 0);
    secs.max(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{RateLimitConfig, RouteRuleConfig};

    fn nonzero(n: u32) -> std::num::NonZeroU32 {
        std::num::NonZeroU32::new(n).expect("test values are non-zero")
    }

    fn config(rate: u32, per: Duration, burst: u32) -> RateLimitConfig {
        RateLimitConfig {
            rate: nonzero(rate),
            per,
            burst: nonzero(burst),
            max_wait: Duration::from_secs(30),
            max_queue: 100,
            routes: vec![],
        }
    }

    fn far() -> Instant {
        Instant::now() + Duration::from_secs(3600)
    }

    #[tokio::test(start_paused = true)]
    async fn burst_then_spaced_in_arrival_order() {
        let lim = std::sync::Arc::new(RateLimiter::new(&config(10, Duration::from_secs(1), 2)));
        let start = Instant::now();
        let mut handles = Vec::new();
        for i in 0..6u32 {
            let lim = lim.clone();
            handles.push(tokio::spawn(async move {
                let p = lim.acquire(far()).await.unwrap();
                (i, Instant::now() - start, p)
            }));
            tokio::task::yield_now().await;
        }
        let mut done = Vec::new();
        for h in handles {
            done.push(h.await.unwrap());
        }
        // Two at once (burst 2), then one every 100ms, in the order they arrived.
        let times: Vec<u128> = done.iter().map(|(_, t, _)| t.as_millis()).collect();
        assert_eq!(times, [0, 0, 100, 200, 300, 400]);
        assert_eq!(done[0].2.remaining, 1);
        assert_eq!(done[1].2.remaining, 0);
        assert!(done[2].2.waited >= Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn ten_thousand_waiters_are_served_in_arrival_order() {
        let mut cfg = config(1000, Duration::from_secs(1), 1);
        cfg.max_queue = 10_000;
        cfg.max_wait = Duration::from_secs(60);
        let lim = std::sync::Arc::new(RateLimiter::new(&cfg));
        let order = std::sync::Arc::new(Mutex::new(Vec::with_capacity(10_001)));
        let mut handles = Vec::new();
        for i in 0..10_001u32 {
            let (lim, order) = (lim.clone(), order.clone());
            handles.push(tokio::spawn(async move {
                lim.acquire(far()).await.unwrap();
                order.lock().unwrap().push(i);
            }));
            // Let each task arrive (and queue) before the next one is spawned.
            tokio::task::yield_now().await;
        }
        assert_eq!(lim.queue_depth(), 10_000);
        for h in handles {
            h.await.unwrap();
        }
        let order = order.lock().unwrap();
        assert!(
            order.windows(2).all(|w| w[0] < w[1]),
            "served in arrival order"
        );
        assert_eq!(order.len(), 10_001);
        assert_eq!(lim.queue_depth(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn max_wait_and_queue_overflow_reject_at_once() {
        let mut cfg = config(1, Duration::from_secs(10), 1);
        cfg.max_wait = Duration::from_secs(5);
        cfg.max_queue = 1;
        let lim = std::sync::Arc::new(RateLimiter::new(&cfg));
        lim.acquire(far()).await.unwrap();
        // The next token is 10s away: more than max_wait, refused without waiting.
        let before = Instant::now();
        let r = lim.acquire(far()).await.unwrap_err();
        assert_eq!(Instant::now(), before);
        assert_eq!(r.scope, "global");
        assert_eq!(retry_after_secs(r.retry_after), 10);

        let mut cfg = config(1, Duration::from_secs(10), 1);
        cfg.max_queue = 1;
        let lim = std::sync::Arc::new(RateLimiter::new(&cfg));
        lim.acquire(far()).await.unwrap();
        let waiter = {
            let lim = lim.clone();
            tokio::spawn(async move { lim.acquire(far()).await })
        };
        while lim.queue_depth() == 0 {
            tokio::task::yield_now().await;
        }
        let r = lim.acquire(far()).await.unwrap_err();
        assert!(r.reason.contains("max_queue"), "{}", r.reason);
        assert!(waiter.await.unwrap().is_ok());
        assert_eq!(lim.queue_depth(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_max_wait_rejects_immediately_and_deadline_bounds_waits() {
        let mut cfg = config(1, Duration::from_secs(1), 1);
        cfg.max_wait = Duration::ZERO;
        let lim = RateLimiter::new(&cfg);
        lim.acquire(far()).await.unwrap();
        assert!(lim.acquire(far()).await.is_err());

        let lim = RateLimiter::new(&config(1, Duration::from_secs(1), 1));
        lim.acquire(far()).await.unwrap();
        let r = lim
            .acquire(Instant::now() + Duration::from_millis(500))
            .await
            .unwrap_err();
        assert_eq!(retry_after_secs(r.retry_after), 1);
    }

    #[tokio::test(start_paused = true)]
    async fn cooldown_pauses_everyone() {
        let lim = RateLimiter::new(&config(100, Duration::from_secs(1), 10));
        lim.cooldown(Duration::from_secs(2));
        lim.cooldown(Duration::from_secs(1)); // shorter: no effect
        assert_eq!(lim.cooldown_remaining(), Some(Duration::from_secs(2)));
        let start = Instant::now();
        let p = lim.acquire(far()).await.unwrap();
        assert_eq!(Instant::now() - start, Duration::from_secs(2));
        assert_eq!(p.waited, Duration::from_secs(2));
        assert_eq!(lim.cooldown_remaining(), None);
        // A cooldown longer than the allowed wait is refused at once with its remaining time.
        lim.cooldown(Duration::from_secs(60));
        let r = lim.acquire(far()).await.unwrap_err();
        assert_eq!(retry_after_secs(r.retry_after), 60);
    }

    /// Admission times (since the start) of a closed loop of requests, one at a time, over `run`
    /// of paused time that moves in uneven steps of 50 µs to 1 ms, the way a busy runtime's 1 ms
    /// timer wakes sleepers: at the first step past the millisecond their timer rounds up to, so
    /// up to 2 ms late, and by a different amount each time.
    async fn admissions_with_late_wakeups(cfg: &RateLimitConfig, run: Duration) -> Vec<Duration> {
        let lim = std::sync::Arc::new(RateLimiter::new(cfg));
        let times = std::sync::Arc::new(Mutex::new(Vec::new()));
        let start = Instant::now();
        let client = {
            let (lim, times) = (lim.clone(), times.clone());
            tokio::spawn(async move {
                loop {
                    lim.acquire(far()).await.unwrap();
                    times.lock().unwrap().push(start.elapsed());
                }
            })
        };
        let mut seed = 0x2545_f491_u32;
        while start.elapsed() < run + Duration::from_secs(1) {
            seed = seed.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            let step = Duration::from_micros(50 + u64::from(seed >> 16) % 950);
            // No auto-advance meanwhile: this task is always ready, so only `advance` moves time.
            tokio::time::advance(step).await;
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
        client.abort();
        times.lock().unwrap().clone()
    }

    #[tokio::test(start_paused = true)]
    async fn late_wakeups_neither_slow_the_rate_nor_overrun_a_period() {
        let per = Duration::from_secs(1);
        let run = 10 * per;
        for (rate, burst) in [(100, 1), (1000, 1), (1000, 2), (100, 10)] {
            let times = admissions_with_late_wakeups(&config(rate, per, burst), run).await;
            let (r, b) = (rate as usize, burst as usize);
            // GCRA admits at most R + B - 1 in any half-open window of one period: B at once,
            // then one per interval. A fixed-window upstream allowing R per period therefore
            // never refuses burst 1. Over 10 periods: 10 R + B - 1.
            let most = 10 * r + b - 1;
            let admitted = times.iter().filter(|t| **t < run).count();
            assert!(
                admitted <= most && admitted >= most - r / 10,
                "rate {rate}, burst {burst}: {admitted} admitted in 10s, want {most} within 1% of 10 R"
            );
            if let Some(w) = times.windows(r + b).find(|w| w[r + b - 1] - w[0] < per) {
                panic!(
                    "rate {rate}, burst {burst}: {} admitted within {:?} (from {:?})",
                    r + b,
                    w[r + b - 1] - w[0],
                    w[0]
                );
            }
        }
    }

    fn generate_link_rule() -> RouteRuleConfig {
        RouteRuleConfig {
            route: "generate_link".into(),
            rate: nonzero(1),
            per: Duration::from_secs(300),
            burst: nonzero(1),
            max_wait: Duration::ZERO,
            key: Some("smartlink_id".into()),
        }
    }

    #[tokio::test(start_paused = true)]
    async fn route_rules_are_keyed_and_refundable() {
        let mut cfg = config(100, Duration::from_secs(1), 10);
        cfg.routes = vec![generate_link_rule()];
        let lim = RateLimiter::new(&cfg);
        let route = Route::V1(Some("generate_link".into()));
        let a = lim
            .route_check(&route, None, br#"{"smartlink_id":1}"#, far())
            .await
            .unwrap();
        assert_eq!(a.len(), 1);
        let r = lim
            .route_check(&route, None, b"smartlink_id=1", far())
            .await
            .unwrap_err();
        assert_eq!(r.scope, "generate_link");
        assert_eq!(retry_after_secs(r.retry_after), 300);
        // Another smartlink is independent; another route is untouched.
        lim.route_check(&route, None, br#"{"smartlink_id":2}"#, far())
            .await
            .unwrap();
        let other = Route::V1(Some("campaigns".into()));
        assert!(
            lim.route_check(&other, None, b"{}", far())
                .await
                .unwrap()
                .is_empty()
        );
        // A refunded token is as if never taken.
        lim.refund(&a);
        lim.route_check(&route, None, br#"{"smartlink_id":1}"#, far())
            .await
            .unwrap();
        // After the period the smartlink is free again.
        tokio::time::advance(Duration::from_secs(300)).await;
        lim.route_check(&route, None, br#"{"smartlink_id":1}"#, far())
            .await
            .unwrap();
        assert!(lim.has_keyed_rule(&route));
        assert!(!lim.has_keyed_rule(&other));
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_secs(Duration::ZERO), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(200)), 1);
        assert_eq!(retry_after_secs(Duration::from_millis(1001)), 2);
        assert_eq!(retry_after_secs(Duration::from_secs(300)), 300);
    }
}
