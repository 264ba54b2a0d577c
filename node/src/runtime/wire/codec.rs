//! [`Codec`]: a node's encoder and decoder. A [`Payload`] serialized
//! (tokio-serde's formats, one datagram at a time) into an envelope and
//! back; a replica's frame likewise, always bincode. Uses `envelope`
//! (sealing and opening), `payload`, `key` and `reject`; nothing else of
//! the crate.

use super::envelope::{MAX_DATAGRAM, MAX_FRAME};
use super::key::ClusterKey;
use super::payload::Payload;
use super::reject::Reject;
use bytes::{Bytes, BytesMut};
use serde::Serialize;
use std::pin::Pin;
use tokio_serde::formats::{Bincode, Json};
use tokio_serde::{Deserializer, Serializer};
use twopc_model::Msg;

/// The body's serialization format.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Compact and fast (the default).
    Bincode,
    /// Readable, for debugging.
    Json,
}

fn bincode_options() -> impl bincode::Options + Copy {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_limit(MAX_DATAGRAM as u64)
        .reject_trailing_bytes()
}

/// Encodes and decodes datagrams for one node.
#[derive(Clone, Debug)]
pub struct Codec {
    pub(super) key: Option<ClusterKey>,
    pub(super) format: Format,
}

impl Codec {
    /// A codec sending `format`, authenticating with `key` if given.
    pub fn new(key: Option<ClusterKey>, format: Format) -> Self {
        Codec { key, format }
    }

    /// Whether datagrams are authenticated.
    pub fn is_authenticated(&self) -> bool {
        self.key.is_some()
    }

    /// Its key's fingerprint ([`ClusterKey::fingerprint`]), if it has one.
    pub fn fingerprint(&self) -> Option<String> {
        self.key.as_ref().map(ClusterKey::fingerprint)
    }

    /// The datagram carrying `payload`.
    pub fn encode(&self, payload: &Payload) -> Result<Bytes, String> {
        self.encode_stamped(payload, None)
    }

    /// The datagram carrying `payload` and, if given, a history position
    /// (the history module).
    pub fn encode_stamped(&self, payload: &Payload, history: Option<u64>) -> Result<Bytes, String> {
        self.encode_waited(payload, history, 0)
    }

    /// The datagram carrying `payload`, a history position if given, and
    /// the durable writes it waited for (`core/waited.rs`).
    pub fn encode_waited(
        &self,
        payload: &Payload,
        history: Option<u64>,
        waited: u8,
    ) -> Result<Bytes, String> {
        let body: Bytes = match self.format {
            Format::Bincode => {
                let mut codec = Bincode::<Payload, Payload, _>::from(bincode_options());
                Serializer::serialize(Pin::new(&mut codec), payload).map_err(|e| e.to_string())
            }
            Format::Json => {
                let mut codec = Json::<Payload, Payload>::default();
                Serializer::serialize(Pin::new(&mut codec), payload).map_err(|e| e.to_string())
            }
        }?;
        let out = self.seal(&body, history, waited);
        if out.len() > MAX_DATAGRAM {
            return Err(format!(
                "datagram of {} bytes exceeds the {MAX_DATAGRAM}-byte limit",
                out.len()
            ));
        }
        Ok(out.into())
    }

    /// The payload of `datagram`, or why it must be dropped.
    pub fn decode(&self, datagram: &[u8]) -> Result<Payload, Reject> {
        self.decode_stamped(datagram).map(|(payload, _)| payload)
    }

    /// The payload of `datagram` and its history field, or why it must be
    /// dropped.
    pub fn decode_stamped(&self, datagram: &[u8]) -> Result<(Payload, Option<u64>), Reject> {
        self.decode_waited(datagram)
            .map(|(payload, history, _)| (payload, history))
    }

    /// The payload of `datagram`, its history field and the durable writes
    /// it waited for (0 from a node that does not count them), or why it
    /// must be dropped.
    pub fn decode_waited(&self, datagram: &[u8]) -> Result<(Payload, Option<u64>, u8), Reject> {
        let (format, history, waited, body) = self.open(datagram, MAX_DATAGRAM)?;
        if format == 0 && carries_coordinator_state(body) {
            return Err(Reject::Undecodable(
                "a replica's state by datagram (replicas send it over TCP)".into(),
            ));
        }
        let body = BytesMut::from(body);
        let decoded = if format == 0 {
            let mut codec = Bincode::<Payload, Payload, _>::from(bincode_options());
            Deserializer::deserialize(Pin::new(&mut codec), &body).map_err(|e| e.to_string())
        } else {
            let mut codec = Json::<Payload, Payload>::default();
            Deserializer::deserialize(Pin::new(&mut codec), &body).map_err(|e| e.to_string())
        };
        decoded
            .map(|payload| (payload, history, waited))
            .map_err(Reject::Undecodable)
    }

    /// `datagram`, sealed by this codec, now saying it waited for `waited`
    /// durable writes (the MAC made again); unchanged if it is not one of
    /// this codec's envelopes.
    pub fn rewait(&self, datagram: &Bytes, waited: u8) -> Bytes {
        self.rewait_envelope(datagram, waited)
            .map_or_else(|| datagram.clone(), Bytes::from)
    }

    /// One frame of a TCP stream between replicas (`replication/`): the
    /// same envelope as a datagram (header, MAC), up to [`MAX_FRAME`] bytes.
    /// Always bincode, whatever `--wire` says: these frames carry whole
    /// coordinator states (compact in bincode, several times larger in
    /// JSON) and are not for reading in tcpdump anyway.
    pub fn encode_frame<T: Serialize>(&self, frame: &T) -> Result<Vec<u8>, String> {
        self.encode_frame_waited(frame, 0)
    }

    /// A frame as [`Codec::encode_frame`] makes it, saying its message
    /// waited for `waited` durable writes (`core/waited.rs`).
    pub fn encode_frame_waited<T: Serialize>(
        &self,
        frame: &T,
        waited: u8,
    ) -> Result<Vec<u8>, String> {
        use bincode::Options;
        let body = frame_options()
            .serialize(frame)
            .map_err(|e| e.to_string())?;
        let bincode = Codec {
            key: self.key.clone(),
            format: Format::Bincode,
        };
        let out = bincode.seal(&body, None, waited);
        if out.len() > MAX_FRAME {
            return Err(format!(
                "frame of {} bytes exceeds the {MAX_FRAME}-byte limit",
                out.len()
            ));
        }
        Ok(out)
    }

    /// The value a frame carries, or why it must be dropped.
    pub fn decode_frame<T: serde::de::DeserializeOwned>(&self, frame: &[u8]) -> Result<T, Reject> {
        self.decode_frame_waited(frame).map(|(value, _)| value)
    }

    /// The value a frame carries and the durable writes its message waited
    /// for, or why it must be dropped.
    pub fn decode_frame_waited<T: serde::de::DeserializeOwned>(
        &self,
        frame: &[u8],
    ) -> Result<(T, u8), Reject> {
        use bincode::Options;
        let (format, _history, waited, body) = self.open(frame, MAX_FRAME)?;
        if format != Format::Bincode.byte() {
            return Err(Reject::BadFormat(format)); // Frames are bincode.
        }
        frame_options()
            .deserialize(body)
            .map(|value| (value, waited))
            .map_err(|e| Reject::Undecodable(e.to_string()))
    }
}

/// Whether a bincode datagram body is a `Promise` or an `Accept`: the
/// messages that carry a coordinator's state, whose persistent maps
/// (imbl) reserve room for as many entries as the length prefix claims
/// before reading any: a forged length of 2^40 aborts the process. They
/// travel between replicas over TCP, never by datagram, so a datagram
/// holding one is refused from its first two bytes (the payload's and the
/// message's variant), before anything is allocated.
fn carries_coordinator_state(body: &[u8]) -> bool {
    use bincode::Options;
    static PREFIXES: std::sync::OnceLock<Vec<Vec<u8>>> = std::sync::OnceLock::new();
    let prefixes = PREFIXES.get_or_init(|| {
        let term = twopc_model::Term {
            n: 0,
            leader: stateright::actor::Id::from(0),
        };
        let msgs = [
            Msg::Promise {
                term,
                accepted: None,
            },
            Msg::Accept {
                term,
                version: 0,
                storage: Default::default(),
            },
        ];
        msgs.into_iter()
            .map(|msg| {
                let bytes = bincode_options()
                    .serialize(&Payload::Protocol(msg))
                    .expect("serializes");
                bytes[..2].to_vec()
            })
            .collect()
    });
    prefixes.iter().any(|p| body.starts_with(p))
}

fn frame_options() -> impl bincode::Options + Copy {
    use bincode::Options;
    bincode::DefaultOptions::new()
        .with_limit(MAX_FRAME as u64)
        .reject_trailing_bytes()
}
