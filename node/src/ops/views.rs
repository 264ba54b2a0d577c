//! One account or one sku, asked of the participant that keeps it: the
//! client side of `twopc account`, `twopc sku`, `GET /accounts/{user}` and
//! `GET /skus/{sku}`, and the JSON they all print. The participant's
//! runtime answers (`runtime/core/keys.rs`), never its actor: asking
//! changes nothing.

use crate::ops::client::socket_towards;
use crate::ops::entry::EntryJson;
use crate::runtime::admin::{HoldView, KeyView, PriceChangeView};
use crate::runtime::error::{Error, Result};
use crate::runtime::role::Role;
use crate::runtime::transport::Transport;
use crate::runtime::wire::{Codec, Payload};
use serde::Serialize;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;
use tokio::time::Instant;

/// What is asked about: a user's account (at the wallet) or a sku (at the
/// order service).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A user's balance.
    Account,
    /// A sku's stock.
    Sku,
}

impl Kind {
    /// The role of the node that keeps it.
    pub fn role(self) -> Role {
        match self {
            Kind::Account => Role::Wallet,
            Kind::Sku => Role::Order,
        }
    }

    /// The JSON field (and flag) naming the key: `user` or `sku`.
    pub fn key_field(self) -> &'static str {
        match self {
            Kind::Account => "user",
            Kind::Sku => "sku",
        }
    }

    /// The JSON field of the level: `balance` or `stock`.
    pub fn level_field(self) -> &'static str {
        match self {
            Kind::Account => "balance",
            Kind::Sku => "stock",
        }
    }

    /// The JSON: `{"user", "balance", "held", "available", "holds",
    /// "holds_total", "credited", "credits", "credits_total", "last"}` or
    /// `{"sku", "stock", ..., "price", "repricing", "repricing_total",
    /// "last"}`, in that order, for a key that exists (`view.level`).
    /// `price` is `null` for a sku without a price; `last` lists the key's
    /// last committed changes, newest first, as `twopc journal` writes
    /// entries.
    pub fn json(self, view: &KeyView) -> KeyJson {
        let (key, level) = (view.key.clone(), view.level.unwrap_or(0));
        let (held, available) = (view.held, view.available);
        let (holds, holds_total) = (view.holds.clone(), view.holds_total);
        let (credited, credits) = (view.credited, view.credits.clone());
        let credits_total = view.credits_total;
        let last = (view.last.iter())
            .map(|(position, c)| EntryJson::of(self.role(), *position, c))
            .collect();
        match self {
            Kind::Account => KeyJson::Account {
                user: key,
                balance: level,
                held,
                available,
                holds,
                holds_total,
                credited,
                credits,
                credits_total,
                last,
            },
            Kind::Sku => KeyJson::Sku {
                sku: key,
                stock: level,
                held,
                available,
                holds,
                holds_total,
                credited,
                credits,
                credits_total,
                price: view.price,
                repricing: view.repricing.clone(),
                repricing_total: view.repricing_total,
                last,
            },
        }
    }

    /// What is said of a key that does not exist (yet): its name, and the
    /// credits prepared for it, which create it if they commit.
    pub fn unknown(self, view: &KeyView, node: &str) -> String {
        let mut s = format!("no {} {:?} at {node}", self.key_field(), view.key);
        if view.credits_total > 0 {
            let what = match self {
                Kind::Account => "top-ups",
                Kind::Sku => "restocks",
            };
            s += &format!(
                " yet: {} prepared {what} of {} in all will create it when they commit",
                view.credits_total, view.credited
            );
        }
        s
    }

    /// A few lines for people.
    pub fn render(self, view: &KeyView) -> String {
        use std::fmt::Write;
        let mut s = format!(
            "{} {}: {} {}, held {}, available {}",
            self.key_field(),
            view.key,
            self.level_field(),
            view.level.unwrap_or(0),
            view.held,
            view.available
        );
        if self == Kind::Sku {
            match view.price {
                Some(p) => s += &format!(", price {p}"),
                None => s += ", no price (a purchase commits at any price)",
            }
        }
        s.push('\n');
        for h in &view.holds {
            let _ = writeln!(s, "  txn {} (request {}) holds {}", h.txn, h.req, h.amount);
        }
        let more = view.holds_total.saturating_sub(view.holds.len());
        if more > 0 {
            let _ = writeln!(s, "  (+{more} more holds, {} in all)", view.holds_total);
        }
        if view.credits_total > 0 {
            let _ = writeln!(
                s,
                "  credited {} at commit (prepared, not yet added)",
                view.credited
            );
        }
        for c in &view.credits {
            let _ = writeln!(
                s,
                "  txn {} (request {}) credits {}",
                c.txn, c.req, c.amount
            );
        }
        let more = view.credits_total.saturating_sub(view.credits.len());
        if more > 0 {
            let _ = writeln!(s, "  (+{more} more credits, {} in all)", view.credits_total);
        }
        // Only a sku has prices.
        for r in view.repricing.iter().filter(|_| self == Kind::Sku) {
            let _ = writeln!(s, "  txn {} sets the price to {} at commit", r.txn, r.price);
        }
        let more = view.repricing_total.saturating_sub(view.repricing.len());
        if more > 0 && self == Kind::Sku {
            let _ = writeln!(
                s,
                "  (+{more} more price changes, {} in all)",
                view.repricing_total
            );
        }
        if !view.last.is_empty() {
            let _ = writeln!(s, "  last operations, newest first (journal position):");
        }
        for (position, c) in &view.last {
            let e = EntryJson::of(self.role(), *position, c);
            let _ = writeln!(
                s,
                "  {:>8}  {:<8} {:<10} {:+} -> {}",
                e.position, e.operation, e.id, e.amount, e.level
            );
        }
        s
    }
}

/// One account or sku as `--json` and the HTTP API write it (see
/// [`Kind::json`]; `holds` as `twopc status` lists them).
#[derive(Clone, Debug, Serialize)]
#[serde(untagged)]
#[allow(missing_docs)]
pub enum KeyJson {
    Account {
        user: String,
        balance: u64,
        held: u64,
        available: u64,
        holds: Vec<HoldView>,
        holds_total: usize,
        credited: u64,
        credits: Vec<HoldView>,
        credits_total: usize,
        /// The last committed changes, newest first (see
        /// `crate::runtime::admin::LAST_LISTED`).
        last: Vec<EntryJson>,
    },
    Sku {
        sku: String,
        stock: u64,
        held: u64,
        available: u64,
        holds: Vec<HoldView>,
        holds_total: usize,
        credited: u64,
        credits: Vec<HoldView>,
        credits_total: usize,
        /// The price per unit; `null`: none (any price is accepted).
        price: Option<u64>,
        /// Prepared price changes (priced restocks), in transaction order.
        repricing: Vec<PriceChangeView>,
        repricing_total: usize,
        /// The last committed changes, newest first.
        last: Vec<EntryJson>,
    },
}

/// What a participant said about a key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Its view (`level: None`: no such key there); boxed, as it is large.
    View(Box<KeyView>),
    /// The node is no participant (a cluster file naming the wrong node).
    NotParticipant,
    /// No answer by the deadline.
    NoAnswer,
}

/// Asks the node at `addr` about `key`, again every 300 ms (the same
/// nonce), until it answers or `deadline`. Check the key with
/// `check_name` first: a node drops a key too long for a datagram.
pub async fn ask(
    addr: SocketAddrV4,
    codec: &Codec,
    key: &str,
    deadline: Instant,
) -> Result<Answer> {
    let nonce: u64 = rand::random();
    let request = Payload::KeyRequest {
        nonce,
        key: key.to_string(),
    };
    let answer = exchange(addr, codec, &request, deadline, |reply| match reply {
        Payload::KeyReply { nonce: m, view } if m == nonce => Some(view),
        _ => None,
    })
    .await?;
    Ok(match answer {
        Some(view) => view.map_or(Answer::NotParticipant, |v| Answer::View(Box::new(v))),
        None => Answer::NoAnswer,
    })
}

/// Sends `request` to the node at `addr`, again every 300 ms (the same
/// datagram), until a reply that `pick` takes (`None`: not the reply
/// awaited, ignored) or `deadline` (then `Ok(None)`). The admin requests'
/// one exchange: `twopc account`, `sku`, `journal` and their HTTP twins.
pub async fn exchange<T>(
    addr: SocketAddrV4,
    codec: &Codec,
    request: &Payload,
    deadline: Instant,
    pick: impl Fn(Payload) -> Option<T>,
) -> Result<Option<T>> {
    let transport = socket_towards(addr).await?;
    let request = codec.encode(request).map_err(Error::Encode)?;
    let mut buf = vec![0u8; 65536];
    while Instant::now() < deadline {
        let _ = transport.send(&request, SocketAddr::V4(addr)).await;
        let retry = (Instant::now() + Duration::from_millis(300)).min(deadline);
        loop {
            match tokio::time::timeout_at(retry, transport.recv(&mut buf)).await {
                Ok(Ok((n, _))) => {
                    if let Some(answer) = codec.decode(&buf[..n]).ok().and_then(&pick) {
                        return Ok(Some(answer));
                    }
                }
                Ok(Err(_)) => {
                    // An ICMP "port unreachable" from a stopped node: wait a
                    // little (within the deadline) before asking again.
                    let pause = Instant::now() + Duration::from_millis(50);
                    tokio::time::sleep_until(pause.min(retry)).await;
                    break;
                }
                Err(_) => break,
            }
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_json_names_the_fields_by_kind() {
        let view = KeyView {
            node: "wallet".into(),
            key: "alice".into(),
            level: Some(10),
            held: 3,
            available: 7,
            holds: vec![HoldView {
                txn: "1.2".into(),
                req: "o-1".into(),
                key: "alice".into(),
                amount: 3,
            }],
            holds_total: 1,
            credited: 0,
            credits: vec![],
            credits_total: 0,
            price: Some(4),
            repricing: vec![PriceChangeView {
                txn: "1.3".into(),
                price: 5,
            }],
            repricing_total: 1,
            last: vec![],
        };
        let account = serde_json::to_string(&Kind::Account.json(&view)).unwrap();
        assert!(
            account.starts_with(r#"{"user":"alice","balance":10,"held":3"#),
            "{account}"
        );
        assert_eq!(
            serde_json::to_value(Kind::Account.json(&view)).unwrap(),
            json!({"user": "alice", "balance": 10, "held": 3, "available": 7, "holds_total": 1,
                   "holds": [{"txn": "1.2", "req": "o-1", "key": "alice", "amount": 3}],
                   "credited": 0, "credits": [], "credits_total": 0, "last": []})
        );
        let sku = serde_json::to_value(Kind::Sku.json(&view)).unwrap();
        assert_eq!(
            (sku["sku"].clone(), sku["stock"].clone()),
            (json!("alice"), json!(10))
        );
        assert_eq!(
            (sku["price"].clone(), sku["repricing"].clone()),
            (json!(4), json!([{"txn": "1.3", "price": 5}]))
        );
        assert_eq!(
            Kind::Sku.render(&view),
            "sku alice: stock 10, held 3, available 7, price 4\n  txn 1.2 (request o-1) holds 3\n  \
             txn 1.3 sets the price to 5 at commit\n"
        );
        let unpriced = KeyView {
            price: None,
            ..view.clone()
        };
        assert_eq!(
            serde_json::to_value(Kind::Sku.json(&unpriced)).unwrap()["price"],
            json!(null)
        );
        assert_eq!(
            Kind::Account.render(&view),
            "user alice: balance 10, held 3, available 7\n  txn 1.2 (request o-1) holds 3\n"
        );
    }

    /// The last operations: in the JSON as journal entries, named by the
    /// node's role (a refund as `refund` at both), and one line each.
    #[test]
    fn the_last_operations_are_listed_newest_first() {
        use crate::runtime::storage::{Change, ChangeKind};
        use twopc_model::{RequestId, TxnId};
        let change = |kind, id: &str, amount, level| Change {
            kind,
            req: RequestId::new(id),
            txn: TxnId { epoch: 1, n: 4 },
            key: "gizmo".into(),
            amount,
            level,
        };
        let view = KeyView {
            node: "order".into(),
            key: "gizmo".into(),
            level: Some(9),
            held: 0,
            available: 9,
            holds: vec![],
            holds_total: 0,
            credited: 0,
            credits: vec![],
            credits_total: 0,
            price: Some(7),
            repricing: vec![],
            repricing_total: 0,
            last: vec![
                (12, change(ChangeKind::Refund, "rma-1", 1, 9)),
                (11, change(ChangeKind::Hold, "order-1", 2, 8)),
                (3, change(ChangeKind::Credit, "delivery-1", 10, 10)),
            ],
        };
        let json = serde_json::to_value(Kind::Sku.json(&view)).unwrap();
        assert_eq!(
            json["last"],
            json!([
                {"position": 12, "kind": "credit", "operation": "refund", "id": "rma-1",
                 "txn": "1.4", "key": "gizmo", "amount": 1, "level": 9},
                {"position": 11, "kind": "hold", "operation": "purchase", "id": "order-1",
                 "txn": "1.4", "key": "gizmo", "amount": -2, "level": 8},
                {"position": 3, "kind": "credit", "operation": "restock", "id": "delivery-1",
                 "txn": "1.4", "key": "gizmo", "amount": 10, "level": 10}])
        );
        assert_eq!(
            Kind::Sku.render(&view),
            "sku gizmo: stock 9, held 0, available 9, price 7\n  \
             last operations, newest first (journal position):\n        \
             12  refund   rma-1      +1 -> 9\n        \
             11  purchase order-1    -2 -> 8\n         \
             3  restock  delivery-1 +10 -> 10\n"
        );
        let account = serde_json::to_value(Kind::Account.json(&view)).unwrap();
        assert_eq!(account["last"][2]["operation"], json!("topup"));
    }

    /// A key that exists only as prepared credits (what the core answers
    /// for it: `runtime/core/keys_tests.rs`) is unknown, and says what is
    /// pending.
    #[test]
    fn an_unknown_key_says_what_its_prepared_credits_will_create() {
        let carol = KeyView {
            node: "wallet".into(),
            key: "carol".into(),
            level: None,
            held: 0,
            available: 0,
            holds: vec![],
            holds_total: 0,
            credited: 7,
            credits: vec![HoldView {
                txn: "1.1".into(),
                req: "top-1".into(),
                key: "carol".into(),
                amount: 7,
            }],
            credits_total: 1,
            price: None,
            repricing: vec![],
            repricing_total: 0,
            last: vec![],
        };
        assert_eq!(
            Kind::Account.unknown(&carol, "wallet"),
            "no user \"carol\" at wallet yet: 1 prepared top-ups of 7 in all will create it when \
             they commit"
        );
        let nothing = KeyView {
            credited: 0,
            credits: vec![],
            credits_total: 0,
            ..carol
        };
        assert_eq!(
            Kind::Account.unknown(&nothing, "wallet"),
            "no user \"carol\" at wallet"
        );
    }
}
