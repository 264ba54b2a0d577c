//! The frames between replicas and their delta codec: what one frame
//! carries ([`Frame`]), and how a connection's `Accept`s go as the changes
//! from the one before ([`Encoder`], [`Decoder`]), diffed and encoded once
//! for every connection ([`AcceptFrames`]). Pure: no socket, no task.
//! Uses `crate::runtime::storage::CoordDelta` (the diff) and `crate::runtime::wire` (the
//! envelope, and message kinds for errors); nothing else of the crate.

use crate::runtime::storage::CoordDelta;
use crate::runtime::wire::Codec;
use serde::{Deserialize, Serialize};
use std::net::SocketAddrV4;
use std::sync::Arc;
use twopc_model::{CoordStorage, Msg, Term};

/// What one frame carries.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Frame {
    /// A message as it is: every kind but a delta-encoded `Accept`.
    Whole {
        /// The sender's (UDP) address: its `Id`.
        from: SocketAddrV4,
        /// The message.
        msg: Msg,
    },
    /// An `Accept` whose state is the previous `Accept`'s on this
    /// connection with `changes` applied (`None`: the same state).
    AcceptDelta {
        /// The sender.
        from: SocketAddrV4,
        /// The leader's term.
        term: Term,
        /// The version.
        version: u64,
        /// The changes from the previous `Accept`'s state.
        changes: Option<CoordDelta>,
    },
}

/// One `Accept` as handed to the links, numbered, with its delta frame
/// from the `Accept` handed to them before it, encoded once for every
/// connection (see [`AcceptFrames`]).
#[derive(Debug)]
pub struct SharedAccept {
    /// This `Accept`'s number among those handed to the links.
    id: u64,
    /// The number of the `Accept` its delta starts from, and the frame
    /// (length prefix, envelope, MAC), ready to write; `None` for the first.
    delta: Option<(u64, Vec<u8>)>,
    /// The durable writes it waited for (in the frame's envelope).
    waited: u8,
}

/// Encodes each `Accept` once for all connections. A leader hands the same
/// `Accept` to the link of every other replica, and each connection's
/// [`Encoder`] would diff it against the previous one and encode the result,
/// the same work each time: here it is done once, on the handing side, and
/// a connection whose last `Accept` was that previous one writes the shared
/// bytes. A connection that is not there (new, or an `Accept` dropped by
/// coalescing or an error) encodes its own frame, as before.
#[derive(Debug, Default)]
pub struct AcceptFrames {
    next_id: u64,
    /// The last `Accept` handed out: its term, version, number and state.
    last: Option<(Term, u64, u64, CoordStorage)>,
    current: Option<Arc<SharedAccept>>,
}

impl SharedAccept {
    /// The durable writes its frame says it waited for.
    pub fn waited(&self) -> u8 {
        self.waited
    }
}

impl AcceptFrames {
    /// The shared frame of the `Accept` of `version` in `term`, which
    /// waited for `waited` durable writes. A version is written once per
    /// term, so the same term and version (the copy for the next replica, a
    /// heartbeat repeating the latest) is the same state.
    pub fn frame(
        &mut self,
        from: SocketAddrV4,
        term: Term,
        version: u64,
        storage: &CoordStorage,
        waited: u8,
        codec: &Codec,
    ) -> Arc<SharedAccept> {
        if let (Some((t, v, ..)), Some(current)) = (&self.last, &self.current) {
            if (*t, *v, current.waited) == (term, version, waited) {
                return current.clone();
            }
        }
        let id = self.next_id;
        self.next_id += 1;
        let delta = self.last.as_ref().and_then(|(_, _, base, last)| {
            let frame = Frame::AcceptDelta {
                from,
                term,
                version,
                changes: CoordDelta::diff(last, storage),
            };
            let body = codec.encode_frame_waited(&frame, waited).ok()?;
            let mut bytes = Vec::with_capacity(4 + body.len());
            bytes.extend_from_slice(&(body.len() as u32).to_be_bytes());
            bytes.extend_from_slice(&body);
            Some((*base, bytes))
        });
        self.last = Some((term, version, id, storage.clone()));
        let shared = Arc::new(SharedAccept { id, delta, waited });
        self.current = Some(shared.clone());
        shared
    }
}

/// What a connection writes for one message: bytes shared with the other
/// connections (length prefix included), or a frame of its own.
// (Lives for one write: boxing the frame would only add an allocation.)
#[allow(clippy::large_enum_variant)]
#[derive(Debug)]
pub enum Encoded<'a> {
    /// A shared `Accept` frame, ready to write.
    Shared(&'a [u8]),
    /// This connection's own frame.
    Own(Frame),
}

/// One connection's sending side: remembers the state of the last `Accept`
/// it encoded (and its number, if it was handed out as a [`SharedAccept`]).
/// Start a new one with each connection.
#[derive(Debug, Default)]
pub struct Encoder {
    last: Option<CoordStorage>,
    last_id: Option<u64>,
}

impl Encoder {
    /// `msg`, an `Accept` handed out as `shared`, as the next on this
    /// connection: the shared bytes if this connection's last `Accept` is
    /// the one they are a delta from, else its own frame.
    pub fn encode_accept<'a>(
        &mut self,
        from: SocketAddrV4,
        msg: Msg,
        shared: &'a SharedAccept,
    ) -> Encoded<'a> {
        if let (Msg::Accept { storage, .. }, Some((base, bytes))) = (&msg, &shared.delta) {
            if self.last.is_some() && self.last_id == Some(*base) {
                self.last = Some(storage.clone());
                self.last_id = Some(shared.id);
                return Encoded::Shared(bytes);
            }
        }
        let frame = self.encode(from, msg);
        self.last_id = Some(shared.id);
        Encoded::Own(frame)
    }

    /// The frame for `msg` from `from`, as the next on this connection.
    pub fn encode(&mut self, from: SocketAddrV4, msg: Msg) -> Frame {
        match msg {
            Msg::Accept {
                term,
                version,
                storage,
            } => {
                let frame = match &self.last {
                    Some(last) => Frame::AcceptDelta {
                        from,
                        term,
                        version,
                        changes: CoordDelta::diff(last, &storage),
                    },
                    None => Frame::Whole {
                        from,
                        msg: Msg::Accept {
                            term,
                            version,
                            storage: storage.clone(),
                        },
                    },
                };
                self.last = Some(storage);
                self.last_id = None;
                frame
            }
            msg => Frame::Whole { from, msg },
        }
    }
}

/// One connection's receiving side: remembers the state of the last
/// `Accept` it decoded.
#[derive(Debug, Default)]
pub struct Decoder {
    last: Option<CoordStorage>,
}

impl Decoder {
    /// The sender and message of a frame's bytes (envelope and MAC
    /// checked by `codec`), the next on this connection; an error names its
    /// reason (the connection is then closed). The link's reader and the
    /// simulator (the harness's `sim`) both read through this.
    /// With them, the durable writes the message waited for (`core/waited.rs`).
    pub fn read(
        &mut self,
        codec: &Codec,
        bytes: &[u8],
    ) -> Result<(SocketAddrV4, Msg, u8), (&'static str, String)> {
        match codec.decode_frame_waited::<Frame>(bytes) {
            Ok((frame, waited)) => match self.decode(frame) {
                Ok((from, msg)) => Ok((from, msg, waited)),
                Err(e) => Err(("bad_frame", e)),
            },
            Err(e) => Err((e.reason().as_str(), e.to_string())),
        }
    }

    /// The sender and message of `frame`, the next on this connection; an
    /// error if it is not a replica's message or a delta has no base (the
    /// connection is then closed).
    pub fn decode(&mut self, frame: Frame) -> Result<(SocketAddrV4, Msg), String> {
        match frame {
            Frame::Whole { from, msg } => {
                if !msg.between_replicas() {
                    return Err(format!(
                        "{} from {from} on a replica connection",
                        crate::runtime::wire::MsgKind::of(&msg)
                    ));
                }
                if let Msg::Accept { storage, .. } = &msg {
                    self.last = Some(storage.clone());
                }
                Ok((from, msg))
            }
            Frame::AcceptDelta {
                from,
                term,
                version,
                changes,
            } => {
                let Some(last) = &self.last else {
                    return Err(format!(
                        "an accept delta from {from} with no accept before it"
                    ));
                };
                let storage = match changes {
                    Some(d) => d.apply(last.clone()),
                    None => last.clone(),
                };
                self.last = Some(storage.clone());
                Ok((
                    from,
                    Msg::Accept {
                        term,
                        version,
                        storage,
                    },
                ))
            }
        }
    }
}
