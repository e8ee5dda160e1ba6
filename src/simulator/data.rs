//! The simulator's fixed data set: every record is a pure function of a fixed seed and its index,
//! so pages are stable across calls and processes, and a page is generated on demand without
//! materialising the whole list.
//!
//! Records are built in two steps: a small `Copy` core (ids, owner, status, amounts, time) that
//! filters look at, then a JSON rendering per API generation (v1: Unix dates and flat fields; v2:
//! ISO + Unix dates and the documented nesting). The lists reference each other consistently:
//! a transaction's account is its campaign's account, a subscriber's campaign exists, and so on.

use serde_json::{Value, json};

use super::params::Page;
use super::time::iso8601;

/// Number of records in each list.
pub(crate) const CAMPAIGNS: u32 = 2_000;
pub(crate) const TRANSACTIONS: u32 = 5_000;
pub(crate) const SUBSCRIBERS: u32 = 4_000;
pub(crate) const CPL_ORDERS: u32 = 2_000;
pub(crate) const CPC_ORDERS: u32 = 3_000;

const SEED: u64 = 0x0417_7AFF_1C5E_ED24;
/// The data set spans 2024-01-01T00:00:00Z ..= 2026-02-01T00:00:00Z; times grow with the index.
const DATA_START: i64 = 1_704_067_200;
const DATA_END: i64 = 1_769_904_000;
const DAY: i64 = super::time::DAY;

/// Public ids are a prefix plus six base-36 characters, like the documented `cre_abc123`.
const ID_SPACE: u64 = 36 * 36 * 36 * 36 * 36 * 36;

// Salts keep the lists' random streams and id sequences apart.
const SALT_CAMPAIGN: u64 = 1;
const SALT_TRANSACTION: u64 = 2;
const SALT_SUBSCRIBER: u64 = 3;
const SALT_CPL: u64 = 4;
const SALT_CPC: u64 = 5;
const SALT_CREATIVE: u64 = 6;

/// OnlyFans accounts the marketer promotes: (display name, username). Index 0 gets the id from
/// the documented example (456789).
const ACCOUNTS: [(&str, &str); 24] = [
    ("Model Display Name", "modelname"),
    ("Mia Rose", "miarose"),
    ("Luna Vale", "lunavale"),
    ("Ivy Hart", "ivyhart"),
    ("Sienna Blake", "siennablake"),
    ("Nova Reyes", "novareyes"),
    ("Chloe Winters", "chloewinters"),
    ("Aria Monroe", "ariamonroe"),
    ("Jade Rivers", "jaderivers"),
    ("Stella Knox", "stellaknox"),
    ("Ruby Lane", "rubylane"),
    ("Zoe Carter", "zoecarter"),
    ("Lily Frost", "lilyfrost"),
    ("Maya Stone", "mayastone"),
    ("Nina Fox", "ninafox"),
    ("Ella Brooks", "ellabrooks"),
    ("Skye Hunter", "skyehunter"),
    ("Ava Sterling", "avasterling"),
    ("Layla Quinn", "laylaquinn"),
    ("Kira Moss", "kiramoss"),
    ("Dahlia West", "dahliawest"),
    ("Piper Gray", "pipergray"),
    ("Vera Lux", "veralux"),
    ("Tessa Bloom", "tessabloom"),
];
/// Creatives (CPC ad units), each owned by account `k % ACCOUNTS.len()`.
const CREATIVES: u32 = 72;
/// CPL offers, each owned by account `k % ACCOUNTS.len()`.
const OFFERS: u32 = 40;

const FAN_NAMES: [&str; 40] = [
    "John", "Alice", "Mike", "Chris", "David", "James", "Robert", "Daniel", "Matt", "Alex", "Ryan",
    "Kevin", "Brian", "Jason", "Eric", "Steven", "Mark", "Paul", "Tom", "Andrew", "Josh", "Nick",
    "Sam", "Ben", "Luke", "Adam", "Tyler", "Kyle", "Sean", "Marco", "Lucas", "Leo", "Max", "Oscar",
    "Emma", "Sophie", "Hannah", "Liam", "Noah", "Ethan",
];
const SOURCES: [&str; 8] = [
    "Reddit",
    "Twitter",
    "TikTok",
    "Instagram",
    "Telegram",
    "Snapchat",
    "Threads",
    "Bluesky",
];
const PLACEMENTS: [&str; 6] = [
    "bio link",
    "story",
    "promo post",
    "DM blast",
    "pinned post",
    "shoutout",
];
const CATEGORIES: [&str; 12] = [
    "brunette", "blonde", "redhead", "fitness", "cosplay", "petite", "curvy", "tattoo", "gamer",
    "asian", "latina", "couple",
];
const DESCRIPTIONS: [&str; 6] = [
    "Subscribe for exclusive content",
    "Daily posts and fast replies",
    "Your new favourite page",
    "Behind the scenes every week",
    "Free trial this week only",
    "Chat with me, I answer every message",
];
const TX_KINDS: [&str; 5] = ["subscription", "tip", "message", "post", "stream"];
const SUB_PRICES_CENTS: [i64; 5] = [499, 799, 999, 1299, 1499];
const CREATIVE_PRICES_CENTS: [i64; 6] = [499, 699, 999, 1299, 1499, 1999];

/// A tiny deterministic generator (splitmix64) seeded per list and record index.
struct Rng(u64);

impl Rng {
    fn new(salt: u64, index: u32) -> Self {
        Self(SEED ^ salt.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (u64::from(index) << 20))
    }

    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n` > 0; the modulo bias is irrelevant for fake data).
    fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// Uniform in `lo..=hi`.
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo).unwrap_or(0) + 1;
        lo + i64::try_from(self.below(span)).unwrap_or(0)
    }

    fn percent(&mut self, p: u64) -> bool {
        self.below(100) < p
    }

    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        let i = usize::try_from(self.below(items.len() as u64)).unwrap_or(0);
        items[i]
    }

    fn index(&mut self, len: u32) -> u32 {
        u32::try_from(self.below(u64::from(len))).unwrap_or(0)
    }
}

/// A unique six-character code for record `index` of a list (an affine bijection on 36^6).
fn code(salt: u64, index: u32) -> u64 {
    (u64::from(index) * 1_000_003 + salt * 7_777_777) % ID_SPACE
}

fn public_id(prefix: &str, code: u64) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    let mut chars = [b'0'; 6];
    let mut rest = code;
    for slot in chars.iter_mut().rev() {
        *slot = DIGITS[usize::try_from(rest % 36).unwrap_or(0)];
        rest /= 36;
    }
    format!("{prefix}{}", String::from_utf8_lossy(&chars))
}

/// The code inside a public id with the given prefix, or `None` if it is not one of ours.
pub(crate) fn parse_public_id(prefix: &str, id: &str) -> Option<u64> {
    let digits = id.strip_prefix(prefix)?;
    if digits.len() != 6 {
        return None;
    }
    digits.chars().try_fold(0u64, |acc, c| {
        let d = c.to_digit(36).filter(|_| !c.is_ascii_uppercase())?;
        Some(acc * 36 + u64::from(d))
    })
}

/// A time for record `index` of a list of `len`: inside the index's slice of the data span, so
/// times strictly increase with the index.
fn stamp(rng: &mut Rng, len: u32, index: u32) -> i64 {
    let step = (DATA_END - DATA_START) / i64::from(len.max(1));
    DATA_START + i64::from(index) * step + rng.between(0, step - 1)
}

/// Money as JSON: whole amounts as integers (the documented example shows `"amount_spent": 105`),
/// others with two decimals.
fn money(cents: i64) -> Value {
    if cents % 100 == 0 {
        json!(cents / 100)
    } else {
        json!(cents as f64 / 100.0)
    }
}

/// The OnlyFans account id of account `k` (k = 0 is the documented example's 456789).
pub(crate) fn account_id(k: usize) -> i64 {
    456_789 + i64::try_from(k).unwrap_or(0) * 1_117
}

fn account(k: usize) -> (&'static str, &'static str) {
    ACCOUNTS[k % ACCOUNTS.len()]
}

fn account_of(owner_index: u32) -> usize {
    usize::try_from(owner_index).unwrap_or(0) % ACCOUNTS.len()
}

fn offer_id(k: u32) -> i64 {
    3_100 + i64::from(k) * 17
}

// ---------------------------------------------------------------------------------------------
// RevShare campaigns

/// A RevShare campaign (the v1 `campaigns` list and v2 `/revshare/campaigns`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Campaign {
    pub index: u32,
    pub code: u64,
    pub account: usize,
    source: &'static str,
    placement: &'static str,
    number: i64,
    share_percent: i64,
    visits: i64,
    subscribers: i64,
    revenue_cents: i64,
    created: i64,
}

pub(crate) fn campaign(index: u32) -> Campaign {
    let mut rng = Rng::new(SALT_CAMPAIGN, index);
    let visits = rng.between(150, 80_000);
    let subscribers = visits * rng.between(5, 60) / 1_000;
    Campaign {
        index,
        code: code(SALT_CAMPAIGN, index),
        account: rng.index(ACCOUNTS.len() as u32) as usize,
        source: rng.pick(&SOURCES),
        placement: rng.pick(&PLACEMENTS),
        number: rng.between(1, 99),
        share_percent: rng.pick(&[10, 15, 20, 25, 30]),
        visits,
        subscribers,
        revenue_cents: subscribers * rng.between(150, 2_500),
        created: stamp(&mut rng, CAMPAIGNS, index),
    }
}

impl Campaign {
    fn name(&self) -> String {
        format!("{} {} #{}", self.source, self.placement, self.number)
    }

    fn url(&self) -> String {
        format!(
            "https://onlyfans.example.com/{}/c{}",
            account(self.account).1,
            self.numeric_id()
        )
    }

    /// v1 identifies campaigns by number.
    fn numeric_id(&self) -> i64 {
        10_000 + i64::from(self.index)
    }

    pub(crate) fn public_id(&self) -> String {
        public_id("camp_", self.code)
    }

    pub(crate) fn v1(&self) -> Value {
        let (name, username) = account(self.account);
        json!({
            "campaign_id": self.numeric_id(),
            "name": self.name(),
            "onlyfans_id": account_id(self.account),
            "onlyfans_username": username,
            "onlyfans_name": name,
            "url": self.url(),
            "revshare_percent": self.share_percent,
            "visits": self.visits,
            "subscribers": self.subscribers,
            "revenue": money(self.revenue_cents),
            "created_at": self.created,
        })
    }

    pub(crate) fn v2(&self) -> Value {
        json!({
            "public_id": self.public_id(),
            "name": self.name(),
            "of_account_id": account_id(self.account),
            "of_username": account(self.account).1,
            "url": self.url(),
            "revshare_percent": self.share_percent,
            "visits": self.visits,
            "subscribers": self.subscribers,
            "revenue": money(self.revenue_cents),
            "created_at": iso8601(self.created),
            "created_at_ts": self.created,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// RevShare transactions

/// A transaction on a RevShare campaign (v1 `transactions`, v2 `/revshare/transactions`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Transaction {
    pub campaign: Campaign,
    id: i64,
    of_user_id: i64,
    kind: &'static str,
    amount_cents: i64,
    revenue_cents: i64,
    is_undo: bool,
    created: i64,
}

pub(crate) fn transaction(index: u32) -> Transaction {
    let mut rng = Rng::new(SALT_TRANSACTION, index);
    let campaign = campaign(rng.index(CAMPAIGNS));
    let kind = rng.pick(&TX_KINDS);
    let amount_cents = match kind {
        "subscription" => rng.pick(&SUB_PRICES_CENTS),
        "tip" => rng.between(1, 100) * 100,
        _ => rng.between(300, 5_000),
    };
    Transaction {
        campaign,
        id: 7_000_000 + i64::from(index),
        of_user_id: 100_000_000 + rng.between(0, 99_999_999),
        kind,
        amount_cents,
        revenue_cents: amount_cents * campaign.share_percent / 100,
        is_undo: rng.percent(3),
        created: stamp(&mut rng, TRANSACTIONS, index),
    }
}

impl Transaction {
    pub(crate) fn v1(&self) -> Value {
        json!({
            "transaction_id": self.id,
            "campaign_id": self.campaign.numeric_id(),
            "onlyfans_id": account_id(self.campaign.account),
            "fan_id": self.of_user_id,
            "type": self.kind,
            "amount": money(self.amount_cents),
            "revenue": money(self.revenue_cents),
            "is_undo": self.is_undo,
            "created_at": self.created,
        })
    }

    pub(crate) fn v2(&self) -> Value {
        json!({
            "transaction_id": self.id,
            "campaign_id": self.campaign.public_id(),
            "of_account_id": account_id(self.campaign.account),
            "of_user_id": self.of_user_id,
            "type": self.kind,
            "amount": money(self.amount_cents),
            "revenue": money(self.revenue_cents),
            "is_undo": self.is_undo,
            "created_at": iso8601(self.created),
            "created_at_ts": self.created,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// CPL orders

/// CPL order statuses (the dashboard's Waiting/Accepted/Rejected/Completed; the API enum was not
/// captured in the docs).
pub(crate) const CPL_STATUSES: [&str; 4] = ["waiting", "accepted", "rejected", "completed"];

/// A CPL order a client placed against one of the marketer's offers (v2 `/cpl/orders`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CplOrder {
    pub code: u64,
    pub offer: u32,
    pub account: usize,
    pub status: &'static str,
    ordered: i64,
    delivered: i64,
    price_cents: i64,
    created: i64,
}

pub(crate) fn cpl_order(index: u32) -> CplOrder {
    let mut rng = Rng::new(SALT_CPL, index);
    let offer = rng.index(OFFERS);
    let roll = rng.below(100);
    let status = match roll {
        0..10 => "waiting",
        10..55 => "accepted",
        55..65 => "rejected",
        _ => "completed",
    };
    let ordered = rng.pick(&[25, 50, 100, 200, 500]);
    let delivered = match status {
        "accepted" => rng.between(0, ordered - 1),
        "completed" => ordered,
        _ => 0,
    };
    CplOrder {
        code: code(SALT_CPL, index),
        offer,
        account: account_of(offer),
        status,
        ordered,
        delivered,
        price_cents: rng.between(15, 60) * 10,
        created: stamp(&mut rng, CPL_ORDERS, index),
    }
}

impl CplOrder {
    pub(crate) fn public_id(&self) -> String {
        public_id("cplo_", self.code)
    }

    pub(crate) fn offer_id(&self) -> i64 {
        offer_id(self.offer)
    }

    pub(crate) fn v2(&self) -> Value {
        json!({
            "order_id": self.public_id(),
            "offer_id": self.offer_id(),
            "of_account_id": account_id(self.account),
            "status": self.status,
            "quantity_ordered": self.ordered,
            "quantity_delivered": self.delivered,
            "price_per_subscriber": money(self.price_cents),
            "total_earned": money(self.delivered * self.price_cents),
            "created_at": iso8601(self.created),
            "created_at_ts": self.created,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// CPC (PPC) orders and their creatives

/// CPC order statuses, as documented for v2 `/cpc/orders`.
pub(crate) const CPC_STATUSES: [&str; 4] = ["waiting", "active", "rejected", "completed"];

/// A CPC creative: the ad unit a CPC order promotes.
#[derive(Debug, Clone, Copy)]
struct Creative {
    code: u64,
    account: usize,
    uuid: (u64, u64),
    pictures: u32,
    price_cents: i64,
    description: &'static str,
    categories: [&'static str; 3],
    category_count: usize,
}

fn creative(k: u32) -> Creative {
    let mut rng = Rng::new(SALT_CREATIVE, k);
    let first = rng.index(CATEGORIES.len() as u32) as usize;
    // A step of 1..=5 keeps the three picks distinct on a ring of 12.
    let step = 1 + rng.index(5) as usize;
    let categories = [
        CATEGORIES[first],
        CATEGORIES[(first + step) % CATEGORIES.len()],
        CATEGORIES[(first + 2 * step) % CATEGORIES.len()],
    ];
    // A random (version 4, RFC 4122 variant) UUID.
    let hi = (rng.next_u64() & !0xF000) | 0x4000;
    let lo = (rng.next_u64() & !(0xC000 << 48)) | (0x8000 << 48);
    Creative {
        code: code(SALT_CREATIVE, k),
        account: account_of(k),
        uuid: (hi, lo),
        pictures: 1 + rng.index(3),
        price_cents: rng.pick(&CREATIVE_PRICES_CENTS),
        description: rng.pick(&DESCRIPTIONS),
        categories,
        category_count: 1 + rng.index(3) as usize,
    }
}

impl Creative {
    fn public_id(&self) -> String {
        public_id("cre_", self.code)
    }

    fn uuid(&self) -> String {
        let (hi, lo) = self.uuid;
        format!(
            "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
            hi >> 32,
            (hi >> 16) & 0xFFFF,
            hi & 0xFFFF,
            lo >> 48,
            lo & 0xFFFF_FFFF_FFFF
        )
    }

    fn json(&self) -> Value {
        let (name, username) = account(self.account);
        let id = self.public_id();
        let picture =
            |n: u32, size: u32| format!("https://cdn.example.com/{id}/img{n}_{size}.webp");
        let pictures: Vec<Value> = (1..=self.pictures)
            .map(|n| json!({"full": picture(n, 800), "thumb": picture(n, 200)}))
            .collect();
        json!({
            "of_account_id": account_id(self.account),
            "public_id": id,
            "uuid": self.uuid(),
            "name": name,
            "username": username,
            "picture": picture(1, 800),
            "picture_thumb": picture(1, 200),
            "pictures": pictures,
            "price": money(self.price_cents),
            "description": self.description,
            "categories": &self.categories[..self.category_count],
        })
    }
}

/// A CPC order (v1 `ppc_orders`, v2 `/cpc/orders`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct CpcOrder {
    code: u64,
    creative: u32,
    pub account: usize,
    pub creative_code: u64,
    pub status: &'static str,
    ordered: i64,
    delivered: i64,
    price_cents: i64,
    created: i64,
    start: i64,
    finish: Option<i64>,
}

pub(crate) fn cpc_order(index: u32) -> CpcOrder {
    let mut rng = Rng::new(SALT_CPC, index);
    let creative_index = rng.index(CREATIVES);
    let roll = rng.below(100);
    let status = match roll {
        0..10 => "waiting",
        10..50 => "active",
        50..60 => "rejected",
        _ => "completed",
    };
    let ordered = rng.pick(&[500, 1_000, 2_000, 5_000, 10_000]);
    let delivered = match status {
        "active" => rng.between(0, ordered - 1),
        "completed" => ordered,
        _ => 0,
    };
    let created = stamp(&mut rng, CPC_ORDERS, index);
    // Orders start within two days of creation, and no later than the end of the data set.
    let start = created + rng.between(0, (2 * DAY).min(DATA_END - 1 - created));
    let finish = match status {
        "completed" => Some((start + rng.between(2 * DAY, 45 * DAY)).min(DATA_END)),
        // Some active orders run to a fixed end date; the rest run until delivered.
        "active" if rng.percent(30) => Some(start + 60 * DAY),
        _ => None,
    };
    CpcOrder {
        code: code(SALT_CPC, index),
        creative: creative_index,
        account: account_of(creative_index),
        creative_code: code(SALT_CREATIVE, creative_index),
        status,
        ordered,
        delivered,
        price_cents: rng.between(3, 12),
        created,
        start,
        finish,
    }
}

impl CpcOrder {
    fn public_id(&self) -> String {
        public_id("ppco_", self.code)
    }

    fn url(&self) -> String {
        format!(
            "https://tracking.example.com/click/{}",
            public_id("", self.code)
        )
    }

    pub(crate) fn v1(&self) -> Value {
        let (_, username) = account(self.account);
        json!({
            "order_id": self.public_id(),
            "onlyfans_id": account_id(self.account),
            "onlyfans_username": username,
            "url": self.url(),
            "clicks_ordered": self.ordered,
            "clicks_delivered": self.delivered,
            "price_per_click": money(self.price_cents),
            "total_earned": money(self.delivered * self.price_cents),
            "status": self.status,
            "date_start": self.start,
            "date_finish": self.finish,
            "created_at": self.created,
        })
    }

    /// Exactly the documented v2 shape (see the `/cpc/orders` example).
    pub(crate) fn v2(&self) -> Value {
        json!({
            "order_id": self.public_id(),
            "of_account_id": account_id(self.account),
            "creative": creative(self.creative).json(),
            "url": self.url(),
            "clicks": {"ordered": self.ordered, "delivered": self.delivered},
            "price_per_click": money(self.price_cents),
            "total_earned": money(self.delivered * self.price_cents),
            "status": self.status,
            "date_start": self.start,
            "date_finish": self.finish,
            "created_at": iso8601(self.created),
            "created_at_ts": self.created,
        })
    }
}

// ---------------------------------------------------------------------------------------------
// Referred subscribers

/// Where a subscriber came from.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Source {
    /// A RevShare campaign.
    Revshare(Campaign),
    /// A CPL order.
    Cpl(CplOrder),
}

/// A fan acquired through a campaign (v1 `subscribers`, v2 `/subscribers`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Subscriber {
    pub source: Source,
    pub subscribed: i64,
    of_user_id: i64,
    name: &'static str,
    amount_cents: i64,
    badges: [Option<&'static str>; 3],
}

pub(crate) fn subscriber(index: u32) -> Subscriber {
    let mut rng = Rng::new(SALT_SUBSCRIBER, index);
    let source = if rng.percent(70) {
        Source::Revshare(campaign(rng.index(CAMPAIGNS)))
    } else {
        // Fans only arrive through orders that were accepted at some point.
        let mut o = rng.index(CPL_ORDERS);
        let mut order = cpl_order(o);
        for _ in 0..32 {
            if matches!(order.status, "accepted" | "completed") {
                break;
            }
            o = (o + 1) % CPL_ORDERS;
            order = cpl_order(o);
        }
        Source::Cpl(order)
    };
    let paid_sub = rng.percent(50);
    let purchases = if rng.percent(45) {
        0
    } else {
        rng.between(1, 9)
    };
    let messages = rng.between(0, 12);
    let mut amount_cents = if paid_sub {
        rng.pick(&SUB_PRICES_CENTS)
    } else {
        0
    };
    for _ in 0..purchases {
        amount_cents += if rng.percent(50) {
            rng.between(3, 50) * 100
        } else {
            rng.between(300, 5_000)
        };
    }
    let purchase_badge = match purchases {
        0 => None,
        1..=4 => Some("1_purchase"),
        _ => Some("5_purchases"),
    };
    Subscriber {
        source,
        subscribed: stamp(&mut rng, SUBSCRIBERS, index),
        of_user_id: 100_000_000 + i64::from(index) * 9_973 + rng.between(0, 9_972),
        name: rng.pick(&FAN_NAMES),
        amount_cents,
        badges: [
            purchase_badge,
            (messages >= 3).then_some("3_messages"),
            paid_sub.then_some("pay_subscribe"),
        ],
    }
}

impl Subscriber {
    pub(crate) fn account(&self) -> usize {
        match self.source {
            Source::Revshare(c) => c.account,
            Source::Cpl(o) => o.account,
        }
    }

    fn campaign_public_id(&self) -> String {
        match self.source {
            Source::Revshare(c) => c.public_id(),
            Source::Cpl(o) => o.public_id(),
        }
    }

    pub(crate) fn campaign_type(&self) -> &'static str {
        match self.source {
            Source::Revshare(_) => "revshare",
            Source::Cpl(_) => "cpl",
        }
    }

    fn badges(&self) -> Vec<&'static str> {
        self.badges.iter().flatten().copied().collect()
    }

    pub(crate) fn v1(&self) -> Value {
        json!({
            "of_user_id": self.of_user_id,
            "name": self.name,
            "onlyfans_id": account_id(self.account()),
            "campaign_public_id": self.campaign_public_id(),
            "campaign_type": self.campaign_type(),
            "amount_spent": money(self.amount_cents),
            "subscribed_at": self.subscribed,
            "badges": self.badges(),
        })
    }

    /// Exactly the documented v2 shape (see the `/subscribers` example).
    pub(crate) fn v2(&self) -> Value {
        json!({
            "of_user_id": self.of_user_id,
            "name": self.name,
            "of_account_id": account_id(self.account()),
            "campaign": {"public_id": self.campaign_public_id(), "type": self.campaign_type()},
            "amount_spent": money(self.amount_cents),
            "subscribed_at": iso8601(self.subscribed),
            "subscribed_at_ts": self.subscribed,
            "badges": self.badges(),
        })
    }
}

// ---------------------------------------------------------------------------------------------
// generate_link

/// A 12-character click id for `generate_link` calls that do not bring their own, derived from
/// the Smart Link and the request time so repeated demos show different ids.
pub(crate) fn click_token(smartlink_id: i64, nanos: u64) -> String {
    let mut rng = Rng(SEED ^ (smartlink_id as u64).rotate_left(32) ^ nanos);
    let mut id = public_id("", rng.below(ID_SPACE));
    id.push_str(&public_id("", rng.below(ID_SPACE)));
    id
}

// ---------------------------------------------------------------------------------------------
// Paging

/// One page of a list of `len` records, generated on demand.
///
/// Records are listed newest first unless `newest_first` is false. Without a filter only the
/// records on the page are generated; with one, records are generated and tested one at a time
/// (cheap `Copy` cores) and only the page's records are rendered to JSON.
pub(crate) fn paginate<T>(
    len: u32,
    newest_first: bool,
    page: Page,
    make: impl Fn(u32) -> T,
    keep: Option<&dyn Fn(&T) -> bool>,
    render: impl Fn(&T) -> Value,
) -> Value {
    let at = |pos: u32| if newest_first { len - 1 - pos } else { pos };
    let rows: Vec<Value> = match keep {
        None => {
            let start = u32::try_from(page.offset).unwrap_or(u32::MAX).min(len);
            let take = u32::try_from(page.limit).unwrap_or(u32::MAX);
            let end = start.saturating_add(take).min(len);
            (start..end).map(|pos| render(&make(at(pos)))).collect()
        }
        Some(keep) => (0..len)
            .map(|pos| make(at(pos)))
            .filter(|r| keep(r))
            .skip(page.skip())
            .take(page.take())
            .map(|r| render(&r))
            .collect(),
    };
    Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn public_ids_are_unique_and_parse_back() {
        let ids: HashSet<u64> = (0..CPC_ORDERS).map(|i| code(SALT_CPC, i)).collect();
        assert_eq!(ids.len(), CPC_ORDERS as usize);
        let c = campaign(17);
        let id = c.public_id();
        assert!(id.starts_with("camp_") && id.len() == 11, "{id}");
        assert_eq!(parse_public_id("camp_", &id), Some(c.code));
        assert_eq!(parse_public_id("camp_", "camp_ABC123"), None);
        assert_eq!(parse_public_id("camp_", "cplo_abc123"), None);
        assert_eq!(parse_public_id("camp_", "camp_abc12"), None);
    }

    #[test]
    fn records_are_deterministic() {
        assert_eq!(cpc_order(5).v2(), cpc_order(5).v2());
        assert_eq!(subscriber(99).v2(), subscriber(99).v2());
        assert_ne!(cpc_order(5).v2(), cpc_order(6).v2());
    }

    #[test]
    fn times_increase_with_index_and_stay_in_span() {
        for len in [CAMPAIGNS, TRANSACTIONS, SUBSCRIBERS, CPL_ORDERS, CPC_ORDERS] {
            let mut prev = DATA_START - 1;
            for i in 0..len {
                let t = stamp(&mut Rng::new(9, i), len, i);
                assert!(t > prev && t < DATA_END, "len {len} index {i}");
                prev = t;
            }
        }
    }

    #[test]
    fn cpc_orders_are_internally_consistent() {
        for i in 0..CPC_ORDERS {
            let o = cpc_order(i);
            assert!(CPC_STATUSES.contains(&o.status));
            assert!(o.delivered <= o.ordered);
            match o.status {
                "completed" => assert!(o.delivered == o.ordered && o.finish.is_some()),
                "waiting" | "rejected" => assert!(o.delivered == 0 && o.finish.is_none()),
                _ => assert!(o.delivered < o.ordered),
            }
            assert_eq!(creative(o.creative).account, o.account);
            assert!(o.start >= o.created && o.start < DATA_END);
            if o.status == "completed" {
                assert!(o.finish.is_some_and(|f| f > o.start && f <= DATA_END));
            }
        }
    }

    #[test]
    fn creative_uuid_is_a_version_4_uuid() {
        let u = creative(3).uuid();
        assert_eq!(u.len(), 36);
        assert_eq!(u.as_bytes()[14], b'4');
        assert!(matches!(u.as_bytes()[19], b'8' | b'9' | b'a' | b'b'), "{u}");
    }

    #[test]
    fn money_renders_whole_amounts_as_integers() {
        assert_eq!(money(10_500).to_string(), "105");
        assert_eq!(money(999).to_string(), "9.99");
        assert_eq!(money(1_710).to_string(), "17.1");
    }

    #[test]
    fn cpl_subscribers_come_from_accepted_or_completed_orders() {
        for i in 0..SUBSCRIBERS {
            if let Source::Cpl(o) = subscriber(i).source {
                assert!(
                    matches!(o.status, "accepted" | "completed"),
                    "subscriber {i}"
                );
            }
        }
    }

    #[test]
    fn paginate_windows_with_and_without_filter() {
        let page = |offset, limit| Page { offset, limit };
        let ids = |v: Value| -> Vec<u64> {
            v.as_array()
                .map(|a| a.iter().filter_map(Value::as_u64).collect())
                .unwrap_or_default()
        };
        let all = |p| paginate(10, true, p, |i| i, None, |i| json!(i));
        assert_eq!(ids(all(page(0, 3))), vec![9, 8, 7]);
        assert_eq!(ids(all(page(8, 5))), vec![1, 0]);
        assert_eq!(ids(all(page(10, 5))), Vec::<u64>::new());
        assert_eq!(ids(all(page(u64::MAX, 5))), Vec::<u64>::new());
        let even: &dyn Fn(&u32) -> bool = &|i| i % 2 == 0;
        let evens = paginate(10, false, page(1, 2), |i| i, Some(even), |i| json!(i));
        assert_eq!(ids(evens), vec![2, 4]);
    }
}
