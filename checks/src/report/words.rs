//! Messages and timers in plain words, for counterexamples.

use twopc_model::*;

pub(super) fn msg(m: &Msg) -> String {
    match m {
        Msg::Purchase {
            req,
            purchase,
            ticket,
        } => format!(
            "Purchase {req} ({} x {} at {} for {}), {}",
            purchase.qty,
            purchase.sku,
            purchase.price,
            purchase.user,
            ticket.map_or("no ticket".into(), |t| format!("ticket {t}"))
        ),
        Msg::Request { req, op, ticket } => format!(
            "Request {req} ({op:?}), {}",
            ticket.map_or("no ticket".into(), |t| format!("ticket {t}"))
        ),
        Msg::PrepareCredit {
            txn,
            req,
            op,
            floor,
            ..
        } => format!(
            "PrepareCredit txn {txn} for {req}: credit {} to {} at commit (floor {})",
            op.amount, op.key, floor.below
        ),
        Msg::PreparePriced {
            txn,
            req,
            change,
            price,
            floor,
            ..
        } => match change {
            Change::Hold(op) => format!(
                "PreparePriced txn {txn} for {req}: hold {} of {} at {price} per unit (floor {})",
                op.amount, op.key, floor.below
            ),
            Change::Credit(op) => format!(
                "PreparePriced txn {txn} for {req}: credit {} to {} and set its price to {price} at commit (floor {})",
                op.amount, op.key, floor.below
            ),
        },
        Msg::Lookup { req } => format!("Lookup {req}"),
        Msg::Status { req, status } => match status {
            Status::InProgress => format!("Status {req} in progress"),
            Status::Unknown { ticket } => format!("Status {req} unknown (ticket {ticket})"),
        },
        Msg::Outcome(o) => match (o.verdict, o.txn) {
            (Verdict::Committed, t) => format!("Outcome {} committed (txn {})", o.req, txn(t)),
            (Verdict::Aborted(r), t) => {
                format!("Outcome {} aborted: {r:?} (txn {})", o.req, txn(t))
            }
            (Verdict::Refused(r), _) => format!("Outcome {} refused: {r:?}", o.req),
            (Verdict::Unknown, _) => format!("Outcome {} unknown (not started)", o.req),
        },
        Msg::Prepare {
            txn,
            req,
            op,
            floor,
        } => {
            let owed: Vec<String> = floor.owed.iter().map(|t| t.to_string()).collect();
            let owed = if owed.is_empty() {
                String::new()
            } else {
                format!(" but [{}]", owed.join(", "))
            };
            format!(
                "Prepare txn {txn} for {req}: hold {} of {} (settled below {}{owed})",
                op.amount, op.key, floor.below
            )
        }
        Msg::Vote { txn, ballot } => format!("Vote {ballot:?} on txn {txn}"),
        Msg::Commit { txn } => format!("Commit txn {txn}"),
        Msg::Abort { txn } => format!("Abort txn {txn}"),
        Msg::Ack { txn } => format!("Ack txn {txn}"),
        Msg::QueryDecision { txn } => format!("QueryDecision txn {txn}"),
        Msg::Fence { txn } => format!("Fence txn {txn}: refuse it unless you voted, and say your vote"),
        Msg::AskEpoch { epoch } => {
            format!("AskEpoch (asker's {epoch}): which epoch have you seen?")
        }
        Msg::Epoch {
            asked,
            highest,
            fates,
        } => {
            let fates: Vec<String> = fates
                .iter()
                .map(|(txn, fate)| match fate {
                    Fate::Held(req) => format!("{txn} held for {req}"),
                    Fate::Committed => format!("{txn} committed"),
                    Fate::Aborted => format!("{txn} aborted"),
                    Fate::HeldAmong(req, parties) => {
                        format!("{txn} held for {req} (among {parties:?})")
                    }
                    Fate::HeldFor(req, op) => {
                        format!("{txn} held for {req} ({} of {})", op.amount, op.key)
                    }
                    Fate::CommittedFor(req, op) => {
                        format!("{txn} committed for {req} ({} of {})", op.amount, op.key)
                    }
                })
                .collect();
            let fates = if fates.is_empty() {
                String::new()
            } else {
                format!("; {}", fates.join(", "))
            };
            format!("Epoch (asked by {asked}): the highest seen is {highest}{fates}")
        }
        Msg::Campaign { term } => format!("Campaign for term {term}"),
        Msg::PreVote { term } => format!("PreVote: would you promise term {term}?"),
        Msg::PreVoteGrant { term } => format!("PreVoteGrant: would promise term {term}"),
        Msg::Promise { term, accepted } => format!(
            "Promise term {term}, accepted {}",
            accepted.as_ref().map_or("nothing".into(), |a| format!(
                "v{} of term {}",
                a.version, a.term
            ))
        ),
        Msg::Accept {
            term,
            version,
            storage,
        } => format!(
            "Accept v{version} of term {term} (epoch {}, commits {:?})",
            storage.epoch,
            storage
                .commits
                .keys()
                .map(|t| t.to_string())
                .collect::<Vec<_>>()
        ),
        Msg::Accepted { term, version } => format!("Accepted v{version} of term {term}"),
        Msg::Nack { promised } => format!("Nack: promised term {promised}"),
        Msg::Recover { nonce } => format!("Recover (incarnation {nonce}): what do you hold?"),
        Msg::RecoverReply { acceptor, .. } => match acceptor {
            None => "RecoverReply: recovering too, holds nothing".to_string(),
            Some(a) => format!(
                "RecoverReply: promised term {}, accepted {}",
                a.promised,
                a.accepted.as_ref().map_or("nothing".into(), |a| format!(
                    "v{} of term {}",
                    a.version, a.term
                ))
            ),
        },
    }
}

fn txn(t: Option<TxnId>) -> String {
    t.map_or("none".into(), |t| t.to_string())
}

pub(super) fn timer(t: &Timer) -> String {
    match t {
        Timer::Retry => "retry timer".into(),
        Timer::Votes(t) => format!("vote timer of txn {t}"),
        Timer::Resend(t) => format!("resend timer of txn {t}"),
        Timer::Query(t) => format!("query timer of txn {t}"),
        Timer::Learn => "learn timer".into(),
        Timer::Replica => "replica timer (heartbeat, campaign or recovery question)".into(),
        Timer::Flush => "flush timer (commits applied in memory saved, their acks sent)".into(),
    }
}
