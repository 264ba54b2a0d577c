//! What a replay reports: the first step or property rejected, and why.

use std::fmt;

/// Why a trace was rejected: the first step the model does not allow, or
/// the first property violated.
#[derive(Clone, Debug)]
pub enum Rejection {
    /// A file is not a trace of one node.
    Malformed(String),
    /// A step the model does not allow.
    Step {
        /// The node's name.
        node: String,
        /// Which run of the node (1 = the first `node` record of its trace).
        run: usize,
        /// The step's number within that run.
        seq: u64,
        /// What the step was.
        step: String,
        /// What differed.
        why: Box<Why>,
    },
    /// A safety property does not hold after a step.
    Property {
        /// The property.
        name: &'static str,
        /// The step after which it failed: node, run, seq.
        after: (String, usize, u64),
        /// The global state, as the checker's reports show one.
        state: String,
    },
}

/// What made a step one the model does not allow.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Why {
    /// A start from storage that is not the last durable save nor a later one.
    StartNotFromDurable {
        /// What it started from.
        started: String,
        /// The saves it could have started from.
        allowed: Vec<String>,
    },
    /// A step before the node's start.
    NotStarted,
    /// The commands differ (index of the first difference).
    Commands {
        /// The first index that differs.
        index: usize,
        /// What the trace says.
        recorded: Option<String>,
        /// What the actor emits.
        replayed: Option<String>,
    },
    /// The state after the step differs.
    State {
        /// What the trace says.
        recorded: String,
        /// What the actor reaches.
        replayed: String,
    },
    /// A timer fired that was not set, or was cancelled or fired since.
    TimerNotSet(String),
    /// A message from a traced node that it never sent to this node.
    NeverSent(String),
    /// A message received before the sender's save it follows was durable.
    SentBeforeDurable {
        /// The message.
        msg: String,
        /// The sender.
        from: String,
        /// The sender's step whose save was not durable.
        save_seq: u64,
    },
    /// A `durable` record for a step not taken.
    DurableAhead(u64),
}

impl fmt::Display for Why {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Why::StartNotFromDurable { started, allowed } => write!(
                f,
                "started from storage {started}, but its last durable save (or a later save) is \
                 one of [{}]: acknowledged data was lost",
                allowed.join(", ")
            ),
            Why::NotStarted => write!(f, "a step before the node started"),
            Why::Commands {
                index,
                recorded,
                replayed,
            } => write!(
                f,
                "command {index} differs: recorded {}, the actor emits {}",
                recorded.as_deref().unwrap_or("nothing"),
                replayed.as_deref().unwrap_or("nothing")
            ),
            Why::State { recorded, replayed } => write!(
                f,
                "state after the step differs: recorded digest {recorded}, the actor reaches {replayed}"
            ),
            Why::TimerNotSet(t) => write!(
                f,
                "timer {t} fired, but it was not set (or was cancelled or fired since)"
            ),
            Why::NeverSent(m) => write!(f, "received {m}, which its sender never sent here"),
            Why::SentBeforeDurable {
                msg,
                from,
                save_seq,
            } => write!(
                f,
                "received {msg} before {from}'s save of step {save_seq} was durable: sent before fsync"
            ),
            Why::DurableAhead(seq) => write!(f, "durable record for step {seq}, not taken yet"),
        }
    }
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Rejection::Malformed(m) => write!(f, "not a trace: {m}"),
            Rejection::Step {
                node,
                run,
                seq,
                step,
                why,
            } => write!(f, "{node} run {run} step {seq} ({step}): {why}"),
            Rejection::Property {
                name,
                after: (node, run, seq),
                state,
            } => write!(
                f,
                "property \"{name}\" fails after {node} run {run} step {seq}; the global state:\n{state}"
            ),
        }
    }
}

/// The verdict of `twopc-check replay`.
pub fn report(result: &Result<super::Accepted, Rejection>) -> String {
    use crate::report::thousands;
    use std::fmt::Write;
    let mut s = String::new();
    match result {
        Ok(a) => {
            let _ = writeln!(
                s,
                "Accepted: {} steps of {} ({} restarts, {} messages from traced nodes, {} from others, {} timers, {} durable records)",
                thousands(a.steps),
                a.nodes.join(", "),
                a.starts,
                thousands(a.delivered),
                thousands(a.external),
                thousands(a.timers),
                thousands(a.durables)
            );
            if a.early_accepts > 0 {
                let _ = writeln!(
                    s,
                    "{} leader's Accepts arrived before their sender's fsync (the one exception to persist before send: a proposal reports nothing)",
                    thousands(a.early_accepts)
                );
            }
            let _ = writeln!(
                s,
                "Properties held on {} global states: {}",
                thousands(a.judged),
                a.properties.join(", ")
            );
            for n in &a.notes {
                let _ = writeln!(s, "Note: {n}");
            }
        }
        Err(Rejection::Malformed(m)) => {
            let _ = writeln!(s, "Cannot replay: {m}");
        }
        Err(r) => {
            let _ = writeln!(s, "Rejected: {r}");
        }
    }
    s
}
