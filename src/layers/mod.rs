//! Policies around each upstream attempt: the key's rate limiter and the retry policy.

pub mod rate_limit;
pub mod retry;
