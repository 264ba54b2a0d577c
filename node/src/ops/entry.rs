//! One journal entry as people and programs read it: the operation it
//! records (told by the participant's role and the change's kind) and its
//! JSON, shared by `twopc journal` (`journal.rs`) and the last operations
//! of `twopc account` and `twopc sku` (`views.rs`).

use crate::runtime::role::Role;
use crate::runtime::storage::{Change, ChangeKind};
use serde::Serialize;

/// The operation an entry records, by the participant's role: a hold is a
/// purchase's; a refund's credit a refund's; another credit is a top-up at
/// the wallet, a restock at the order service.
pub fn operation(role: Role, kind: ChangeKind) -> &'static str {
    match (kind, role) {
        (ChangeKind::Hold, _) => "purchase",
        (ChangeKind::Refund, _) => "refund",
        (ChangeKind::Credit, Role::Wallet) => "topup",
        (ChangeKind::Credit, Role::Order) => "restock",
        (ChangeKind::Credit, Role::Coordinator) => "credit",
    }
}

/// One entry as JSON: `{"position","kind","operation","id","txn","key",
/// "amount","level"}`, `amount` signed (negative for a hold).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct EntryJson {
    /// Its position (from 1, never repeated).
    pub position: u64,
    /// `hold` or `credit`.
    pub kind: &'static str,
    /// `purchase`, `topup`, `restock` or `refund`.
    pub operation: &'static str,
    /// The request's id (the purchase's, top-up's or restock's).
    pub id: String,
    /// The transaction, `epoch.n`.
    pub txn: String,
    /// The user (wallet) or sku (order service).
    pub key: String,
    /// The signed amount: what the level changed by.
    pub amount: i128,
    /// The level right after.
    pub level: u64,
}

impl EntryJson {
    /// The entry at `position` of the participant of `role`.
    pub fn of(role: Role, position: u64, c: &Change) -> EntryJson {
        EntryJson {
            position,
            kind: c.kind.name(),
            operation: operation(role, c.kind),
            id: c.req.0.clone(),
            txn: c.txn.to_string(),
            key: c.key.clone(),
            amount: c.signed(),
            level: c.level,
        }
    }

    /// One line for people.
    pub fn render(&self) -> String {
        format!(
            "{:>8}  {:<8} {:<10} {:<8} {} {} {:+} -> {}",
            self.position,
            self.operation,
            self.id,
            self.txn,
            self.key,
            self.kind,
            self.amount,
            self.level
        )
    }
}
