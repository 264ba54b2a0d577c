//! Coalescing: of the messages queued for one peer, which are worth
//! sending (a later `Accept` or `Accepted` says all an earlier one did).
//! Pure; uses nothing of the crate.

use twopc_model::Msg;

/// Of messages waiting for one peer, those worth sending, in order: an
/// `Accept` followed in the queue by an `Accept` of the same term and a
/// version at least as high is dropped, and so is an `Accepted` followed by
/// a higher one of the same term. Each `Accept` carries the whole state and
/// an acknowledgement of version v counts for every version below it, so
/// the later message says all the earlier one did; dropping the earlier one
/// is a message loss, which the protocol tolerates (and the encoder diffs
/// the next `Accept` against the last one it *sent*, so deltas stay whole).
pub fn coalesce(queue: Vec<Msg>) -> Vec<Msg> {
    let keep = worth_sending(&queue.iter().collect::<Vec<_>>());
    queue
        .into_iter()
        .zip(keep)
        .filter_map(|(m, k)| k.then_some(m))
        .collect()
}

/// Which of `queue` [`coalesce`] keeps.
pub(super) fn worth_sending(queue: &[&Msg]) -> Vec<bool> {
    let superseded = |i: usize, msg: &Msg| {
        queue[i + 1..].iter().any(|later| match (msg, later) {
            (
                Msg::Accept { term, version, .. },
                Msg::Accept {
                    term: t,
                    version: v,
                    ..
                },
            )
            | (
                Msg::Accepted { term, version },
                Msg::Accepted {
                    term: t,
                    version: v,
                },
            ) => t == term && v >= version,
            _ => false,
        })
    };
    queue
        .iter()
        .enumerate()
        .map(|(i, m)| !superseded(i, m))
        .collect()
}
