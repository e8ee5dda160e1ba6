//! v1: `POST /api/marketer?do=<action>` with a JSON or form body. All dates are Unix timestamps.

use std::time::{Duration, UNIX_EPOCH};

use serde_json::{Value, json};

use super::SimState;
use super::data::{
    self, CAMPAIGNS, CPC_ORDERS, CpcOrder, SUBSCRIBERS, Subscriber, TRANSACTIONS, Transaction,
};
use super::envelope::ApiError;
use super::limits::LINK_COOLDOWN;
use super::params::{Page, Params};
use super::time::iso8601;

/// The `do` values served. `subscribers` and `ppc_orders` are the simulator's guesses: the docs
/// describe those actions but do not name them.
pub(crate) const ACTIONS: [&str; 5] = [
    "campaigns",
    "transactions",
    "subscribers",
    "ppc_orders",
    "generate_link",
];

/// How long a generated tracking link stays valid (not documented upstream; an assumption).
const LINK_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);
/// Documented bound on a caller-supplied `click_id`.
const MAX_CLICK_ID_CHARS: usize = 16;

/// A v1 action, chosen by the `do` query parameter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Action {
    Campaigns,
    Transactions,
    Subscribers,
    PpcOrders,
    GenerateLink,
}

impl Action {
    /// Reads `do` from the query string; a missing or unknown value is a 404 (no such resource).
    pub(crate) fn from_query(query: &Params) -> Result<Self, ApiError> {
        let expected = ACTIONS.join(", ");
        let Some(value) = query.get("do") else {
            return Err(ApiError::NotFound(format!(
                "missing do parameter in the query string; expected one of {expected}"
            )));
        };
        Ok(match value.as_str().unwrap_or_default() {
            "campaigns" => Self::Campaigns,
            "transactions" => Self::Transactions,
            "subscribers" => Self::Subscribers,
            "ppc_orders" => Self::PpcOrders,
            "generate_link" => Self::GenerateLink,
            other => {
                let shown: String = other.chars().take(40).collect();
                return Err(ApiError::NotFound(format!(
                    "unknown action do={shown:?}; expected one of {expected}"
                )));
            }
        })
    }
}

/// Answers one v1 request. Parameters come from the body only; the query string carries `do`.
pub(crate) fn handle(state: &SimState, action: Action, body: &Params) -> Result<Value, ApiError> {
    let list = match action {
        Action::GenerateLink => return generate_link(state, body),
        Action::Campaigns => campaigns,
        Action::Transactions => transactions,
        Action::Subscribers => subscribers,
        Action::PpcOrders => ppc_orders,
    };
    Ok(list(body.page()?))
}

fn campaigns(page: Page) -> Value {
    data::paginate(CAMPAIGNS, true, page, data::campaign, None, |c| c.v1())
}

fn transactions(page: Page) -> Value {
    data::paginate(
        TRANSACTIONS,
        true,
        page,
        data::transaction,
        None,
        Transaction::v1,
    )
}

fn subscribers(page: Page) -> Value {
    data::paginate(
        SUBSCRIBERS,
        true,
        page,
        data::subscriber,
        None,
        Subscriber::v1,
    )
}

/// "Accepted" PPC orders: the ones running or done, not waiting or rejected.
fn ppc_orders(page: Page) -> Value {
    let accepted = |o: &CpcOrder| matches!(o.status, "active" | "completed");
    data::paginate(
        CPC_ORDERS,
        true,
        page,
        data::cpc_order,
        Some(&accepted),
        CpcOrder::v1,
    )
}

fn generate_link(state: &SimState, body: &Params) -> Result<Value, ApiError> {
    let smartlink_id = match body.int("smartlink_id")? {
        None => {
            return Err(ApiError::Invalid(
                "smartlink_id is required (the integer id of a Smart Link campaign)".into(),
            ));
        }
        Some(id) if id <= 0 => {
            return Err(ApiError::Invalid(format!(
                "smartlink_id must be a positive integer, got {id}"
            )));
        }
        Some(id) => id,
    };
    let click_id = body.string("click_id")?;
    if let Some(id) = click_id {
        let chars = id.chars().count();
        if chars > MAX_CLICK_ID_CHARS {
            return Err(ApiError::Invalid(format!(
                "click_id must be at most {MAX_CLICK_ID_CHARS} characters, got {chars}"
            )));
        }
    }
    let now = state.clock.now();
    state
        .cooldown
        .try_generate(smartlink_id, now)
        .map_err(|wait| ApiError::RateLimited {
            message: format!(
                "generate_link allows 1 request per smartlink_id every {} minutes; \
                 smartlink_id {smartlink_id} can be used again in {} s",
                LINK_COOLDOWN.as_secs() / 60,
                wait.retry_after_secs()
            ),
            wait,
        })?;
    let click_id = click_id.map_or_else(
        || {
            data::click_token(
                smartlink_id,
                u64::try_from(now.as_nanos()).unwrap_or(u64::MAX),
            )
        },
        str::to_owned,
    );
    let wall_now = state.wall_origin.saturating_add(now);
    let expires = UNIX_EPOCH
        .checked_add(wall_now.saturating_add(LINK_LIFETIME))
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    Ok(json!({
        "url": format!(
            "https://go.example.com/sl/{smartlink_id}?click_id={}",
            percent_encode(&click_id)
        ),
        "click_id": click_id,
        "expires_ts": expires,
        "expires": iso8601(expires),
    }))
}

/// Percent-encodes everything but RFC 3986 unreserved characters, for the click id in a URL.
fn percent_encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_keeps_unreserved_only() {
        assert_eq!(percent_encode("ab-C_1.~"), "ab-C_1.~");
        assert_eq!(percent_encode("a b&c/é"), "a%20b%26c%2F%C3%A9");
    }

    #[test]
    fn action_from_query() {
        let q = |s| Params::from_query(Some(s)).unwrap_or_default();
        assert_eq!(
            Action::from_query(&q("do=ppc_orders")),
            Ok(Action::PpcOrders)
        );
        assert!(matches!(
            Action::from_query(&q("do=nope")),
            Err(ApiError::NotFound(m)) if m.starts_with("unknown action do=\"nope\"")
        ));
        assert!(matches!(
            Action::from_query(&q("limit=1")),
            Err(ApiError::NotFound(m)) if m.starts_with("missing do parameter")
        ));
    }
}
