//! How the replicas of a replicated coordinator talk among themselves: TCP,
//! not UDP, because an `Accept` or a `Promise` carries the coordinator's
//! whole durable state (`retention` outcomes: megabytes), far beyond a
//! datagram.
//!
//! - **Frames.** Each replica listens on TCP at the same address (port) as
//!   its UDP socket. A frame is a 4-byte big-endian length, then the same
//!   envelope as a datagram (`wire/`: version, format, HMAC with the
//!   cluster key) around a [`Frame`]. The frame names its sender: a TCP
//!   source port says nothing, the MAC vouches for the name.
//! - **Deltas.** A leader sends `Accept` for every save and again as its
//!   heartbeat (every 50-100 ms), each with the whole state. On a
//!   connection, the stream is ordered and the receiver has every earlier
//!   frame, so an `Accept` goes as the changes from the previous `Accept`
//!   on the same connection ([`CoordDelta`](crate::runtime::storage::CoordDelta), the diff the log writes), and
//!   only the first on a new connection goes whole. A heartbeat with nothing
//!   new is a few dozen bytes; a save, what it changed. The leader hands
//!   the same `Accept` to every other replica's connection, so the delta
//!   from the previous `Accept` is diffed and encoded once, when it is
//!   handed over ([`AcceptFrames`]); a connection that did not send that
//!   previous one (new, or it was dropped) encodes its own.
//! - **Loss.** Connections are made lazily and remade after an error; a
//!   message that cannot be written is dropped (with its connection, so the
//!   next `Accept` goes whole on a new one). The protocol tolerates loss:
//!   the leader re-sends its latest state as its heartbeat, candidates
//!   re-send their campaigns.
//! - **Faults.** The node's injected faults (`faults.rs`: loss, drops by
//!   kind, duplicates, delays, reordering) act on these messages too, in the
//!   core, on whole messages: before delta encoding, so a dropped message
//!   never breaks the chain of deltas.
//!
//! The model is unchanged: what leaves and arrives is the very `Msg`; this
//! this module is only its encoding, in four parts, each in its own file:
//!
//! - `frame.rs`: the frames and their delta codec ([`Encoder`],
//!   [`Decoder`], [`AcceptFrames`]). Pure: values in, values out. Uses
//!   `crate::runtime::storage::CoordDelta` (the diff) and `crate::runtime::wire` (the envelope).
//! - `coalesce.rs`: which of the messages queued for one peer are worth
//!   sending ([`coalesce`]). Pure.
//! - `link.rs`: [`PeerLink`], the outgoing side: a writer task per peer,
//!   its connection, its queue. Uses `frame` and `coalesce`.
//! - `accept.rs`: the incoming side: which connections are taken
//!   ([`Limits`], [`Sources`]) and the reader task of each. Uses `frame`.

mod accept;
mod coalesce;
mod frame;
mod link;

pub use crate::runtime::core::drops::LinkStats;
pub use accept::{Limits, Sources};
pub use coalesce::coalesce;
pub use frame::{AcceptFrames, Decoder, Encoded, Encoder, Frame, SharedAccept};
pub use link::{encode_queue, Outbound, PeerLink};

#[cfg(test)]
mod frame_tests;
#[cfg(test)]
mod link_tests;
