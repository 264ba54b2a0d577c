//! One account's or sku's standing, asked by `twopc account`, `twopc sku`
//! and the HTTP API's `GET /accounts/{user}`, `GET /skus/{sku}`: answered
//! here, by the runtime, from the participant's state (never by the actor),
//! as `status.rs` answers a status request, with the key's last changes
//! from the store's journal.

use super::Core;
use crate::runtime::admin::KeyView;
use crate::runtime::wire::{check_name, Payload, Reject};
use std::net::SocketAddr;
use tokio::time::Instant;
use twopc_model::State;

impl Core {
    /// Answers a key request: the key's view at a participant, `None`
    /// elsewhere. A key longer than `MAX_NAME` (which no client of ours
    /// sends, and no participant holds) is counted and dropped as
    /// undecodable.
    pub(super) fn on_key(&mut self, now: Instant, to: SocketAddr, nonce: u64, key: String) {
        if check_name("key", &key).is_err() {
            let why = format!("key request naming a key of {} bytes", key.len());
            return self.reject(now, to, Reject::Undecodable(why));
        }
        let view = match self.state() {
            State::Participant(p) => {
                let journal = self
                    .journal
                    .as_ref()
                    .map(|j| j.lock().unwrap_or_else(|p| p.into_inner()));
                Some(KeyView::of(&self.name, &key, &p.data).with_last(journal.as_deref()))
            }
            State::Coordinator(_) | State::Replica(_) | State::Client(_) => None,
        };
        // Queued like any send: the view may reveal a staged hold.
        let _ = self.queue_payload(to, &Payload::KeyReply { nonce, view }, None, 0);
    }
}
