//! v2: the `GET /api/marketer/...` list endpoints, paginated by `offset`/`limit` taken from the
//! query string or, as the spec text allows, from JSON (or form) body fields (the query wins).

use serde_json::Value;

use super::data::{
    self, CAMPAIGNS, CPC_ORDERS, CPC_STATUSES, CPL_ORDERS, CPL_STATUSES, CpcOrder, CplOrder,
    SUBSCRIBERS, Source, Subscriber, TRANSACTIONS, Transaction, account_id, parse_public_id,
};
use super::envelope::ApiError;
use super::params::Params;
use super::time::{DAY, parse_ymd};

/// The v2 list endpoints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum List {
    RevshareCampaigns,
    RevshareTransactions,
    CplOrders,
    CpcOrders,
    Subscribers,
}

impl List {
    /// The endpoint served at `path`, if any.
    pub(crate) fn from_path(path: &str) -> Option<Self> {
        Some(match path {
            "/api/marketer/revshare/campaigns" => Self::RevshareCampaigns,
            "/api/marketer/revshare/transactions" => Self::RevshareTransactions,
            "/api/marketer/cpl/orders" => Self::CplOrders,
            "/api/marketer/cpc/orders" => Self::CpcOrders,
            "/api/marketer/subscribers" => Self::Subscribers,
            _ => return None,
        })
    }
}

/// Answers one v2 list request. Only `offset` and `limit` are taken from the body; filters are
/// query parameters, as documented.
pub(crate) fn list(list: List, mut query: Params, body: &Params) -> Result<Value, ApiError> {
    query.fill_from(body, &["offset", "limit"]);
    let page = query.page()?;
    let p = &query;
    Ok(match list {
        List::RevshareCampaigns => {
            data::paginate(CAMPAIGNS, true, page, data::campaign, None, |c| c.v2())
        }
        List::RevshareTransactions => {
            let account = p.int("of_account_id")?;
            let campaign = p
                .string("campaign_id")?
                .map(|id| parse_public_id("camp_", id));
            let keep = |t: &Transaction| {
                account.is_none_or(|a| account_id(t.campaign.account) == a)
                    && campaign.is_none_or(|c| c == Some(t.campaign.code))
            };
            let filtered = account.is_some() || campaign.is_some();
            data::paginate(
                TRANSACTIONS,
                true,
                page,
                data::transaction,
                filtered.then_some(&keep as &dyn Fn(&Transaction) -> bool),
                Transaction::v2,
            )
        }
        List::CplOrders => {
            let account = p.int("of_account_id")?;
            let offer = p.int("offer_id")?;
            let status = p.choice("status", &CPL_STATUSES)?;
            let keep = |o: &CplOrder| {
                account.is_none_or(|a| account_id(o.account) == a)
                    && offer.is_none_or(|id| o.offer_id() == id)
                    && status.is_none_or(|s| o.status == s)
            };
            let filtered = account.is_some() || offer.is_some() || status.is_some();
            data::paginate(
                CPL_ORDERS,
                true,
                page,
                data::cpl_order,
                filtered.then_some(&keep as &dyn Fn(&CplOrder) -> bool),
                CplOrder::v2,
            )
        }
        List::CpcOrders => {
            let account = p.int("of_account_id")?;
            let creative = p
                .string("creative_public_id")?
                .map(|id| parse_public_id("cre_", id));
            // Documented: without `status`, only active orders are listed.
            let status = p.choice("status", &CPC_STATUSES)?.unwrap_or("active");
            let keep = |o: &CpcOrder| {
                o.status == status
                    && account.is_none_or(|a| account_id(o.account) == a)
                    && creative.is_none_or(|c| c == Some(o.creative_code))
            };
            data::paginate(
                CPC_ORDERS,
                true,
                page,
                data::cpc_order,
                Some(&keep),
                CpcOrder::v2,
            )
        }
        List::Subscribers => subscribers(p, page)?,
    })
}

fn subscribers(p: &Params, page: super::params::Page) -> Result<Value, ApiError> {
    let account = p.int("of_account_id")?;
    let campaign = p.string("campaign_id")?.map(|id| {
        // A RevShare campaign public_id or a CPL order public_id; anything else matches nothing.
        parse_public_id("camp_", id)
            .map(|code| ("revshare", code))
            .or_else(|| parse_public_id("cplo_", id).map(|code| ("cpl", code)))
    });
    let kind = p.choice("campaign_type", &["revshare", "cpl"])?;
    let from = date(p, "from")?;
    let to = date(p, "to")?;
    if let (Some(from), Some(to)) = (from, to) {
        if from > to {
            return Err(ApiError::Invalid(format!(
                "from must not be after to, got from={} to={}",
                p.string("from")?.unwrap_or_default(),
                p.string("to")?.unwrap_or_default()
            )));
        }
    }
    let newest_first = p
        .choice("sort", &["subscribed_at_desc", "subscribed_at_asc"])?
        .is_none_or(|s| s == "subscribed_at_desc");
    // Both bounds are whole UTC days, inclusive.
    let (start, end) = (from.map(|d| d * DAY), to.map(|d| (d + 1) * DAY));
    let keep = |s: &Subscriber| {
        let code = match s.source {
            Source::Revshare(c) => c.code,
            Source::Cpl(o) => o.code,
        };
        account.is_none_or(|a| account_id(s.account()) == a)
            && campaign.is_none_or(|c| c == Some((s.campaign_type(), code)))
            && kind.is_none_or(|k| s.campaign_type() == k)
            && start.is_none_or(|t| s.subscribed >= t)
            && end.is_none_or(|t| s.subscribed < t)
    };
    let filtered = account.is_some()
        || campaign.is_some()
        || kind.is_some()
        || start.is_some()
        || end.is_some();
    Ok(data::paginate(
        SUBSCRIBERS,
        newest_first,
        page,
        data::subscriber,
        filtered.then_some(&keep as &dyn Fn(&Subscriber) -> bool),
        Subscriber::v2,
    ))
}

/// An optional `Y-m-d` date parameter, as days since the Unix epoch.
fn date(p: &Params, name: &str) -> Result<Option<i64>, ApiError> {
    let Some(text) = p.string(name)? else {
        return Ok(None);
    };
    parse_ymd(text).map(Some).ok_or_else(|| {
        ApiError::Invalid(format!(
            "{name} must be a date in Y-m-d format (e.g. 2024-01-31), got {text:?}"
        ))
    })
}
