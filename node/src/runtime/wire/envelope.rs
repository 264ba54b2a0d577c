//! The envelope around every datagram and every frame between replicas:
//! its layout (see the picture in `wire/mod.rs`), its limits, and sealing
//! and opening it, the MAC checked with the cluster key. Uses `key` (the
//! MAC), `reject` (why an envelope is refused) and `codec` (the codec's
//! key and format); nothing else of the crate.

use super::codec::{Codec, Format};
use super::reject::Reject;
use hmac::Mac;

/// The envelope's magic bytes.
pub const MAGIC: [u8; 2] = *b"2P";
/// The envelope version this build speaks (5: `Epoch` answers carry the
/// participants' fates, and a coordinator's state its transactions in
/// doubt; a node of version 4 and one of 5 do not understand each other,
/// and say so: `rejected{reason="version"}`).
pub const VERSION: u8 = 5;
/// Largest datagram sent or accepted. Below UDP's 65507-byte limit, with
/// room to spare; protocol messages are a few dozen bytes.
pub const MAX_DATAGRAM: usize = 60 * 1024;

/// Largest frame between replicas: an `Accept` or a `Promise` carries a
/// whole coordinator state (`retention` outcomes, megabytes) when it is not
/// a delta.
pub const MAX_FRAME: usize = 1 << 30;

const HEADER_LEN: usize = 5;
const MAC_LEN: usize = 32;
const FLAG_MAC: u8 = 1;
const FLAG_HISTORY: u8 = 2;
const HISTORY_LEN: usize = 8;
/// The flags' high four bits: the durable writes the message waited for
/// along its causal chain (`core/waited.rs`), 0 to [`WAITED_MAX`]. A node
/// of an older build ignores flag bits it does not know, so it reads these
/// envelopes exactly as before; what it sends reads as 0.
const WAITED_SHIFT: u8 = 4;
/// The largest count the envelope carries: more reads as this.
pub const WAITED_MAX: u8 = 15;

/// The durable writes an envelope says its message waited for (0 if it is
/// not an envelope).
pub fn waited_of(envelope: &[u8]) -> u8 {
    match envelope {
        [m0, m1, _, _, flags, ..] if [*m0, *m1] == MAGIC => flags >> WAITED_SHIFT,
        _ => 0,
    }
}

/// An opened envelope: its format byte, its history field, the durable
/// writes its message waited for, and its body.
type Opened<'a> = (u8, Option<u64>, u8, &'a [u8]);

impl Format {
    /// Its byte in the header.
    pub(super) fn byte(self) -> u8 {
        match self {
            Format::Bincode => 0,
            Format::Json => 1,
        }
    }
}

impl Codec {
    /// The envelope around `body`: header (with the durable writes
    /// `waited` for, at most [`WAITED_MAX`]), MAC if keyed, history if
    /// given, body.
    pub(super) fn seal(&self, body: &[u8], history: Option<u64>, waited: u8) -> Vec<u8> {
        let mut flags = if self.key.is_some() { FLAG_MAC } else { 0 };
        flags |= waited.min(WAITED_MAX) << WAITED_SHIFT;
        if history.is_some() {
            flags |= FLAG_HISTORY;
        }
        let history = history.map(u64::to_le_bytes);
        let history: &[u8] = history.as_ref().map_or(&[], |h| &h[..]);
        let mut out = Vec::with_capacity(HEADER_LEN + MAC_LEN + HISTORY_LEN + body.len());
        out.extend_from_slice(&MAGIC);
        out.extend_from_slice(&[VERSION, self.format.byte(), flags]);
        if let Some(key) = &self.key {
            let mut mac = key.mac();
            mac.update(&out[..HEADER_LEN]);
            mac.update(history);
            mac.update(body);
            out.extend_from_slice(&mac.finalize().into_bytes());
        }
        out.extend_from_slice(history);
        out.extend_from_slice(body);
        out
    }

    /// The body of an envelope of at most `limit` bytes, its format byte,
    /// its history field and its durable writes waited for, once the
    /// header and the MAC are checked.
    pub(super) fn open<'a>(&self, envelope: &'a [u8], limit: usize) -> Result<Opened<'a>, Reject> {
        if envelope.len() > limit {
            return Err(Reject::Oversized(envelope.len()));
        }
        if envelope.len() < HEADER_LEN || envelope[..2] != MAGIC {
            return Err(Reject::BadMagic);
        }
        let (version, format, flags) = (envelope[2], envelope[3], envelope[4]);
        if version != VERSION {
            return Err(Reject::BadVersion(version));
        }
        if format > 1 {
            return Err(Reject::BadFormat(format));
        }
        let has_mac = flags & FLAG_MAC != 0;
        let body = match (&self.key, has_mac) {
            (Some(_), false) => return Err(Reject::MissingMac),
            (None, true) => return Err(Reject::UnexpectedMac),
            (None, false) => &envelope[HEADER_LEN..],
            (Some(key), true) => {
                if envelope.len() < HEADER_LEN + MAC_LEN {
                    return Err(Reject::BadMac);
                }
                let (tag, body) = envelope[HEADER_LEN..].split_at(MAC_LEN);
                let mut mac = key.mac();
                mac.update(&envelope[..HEADER_LEN]);
                mac.update(body);
                mac.verify_slice(tag).map_err(|_| Reject::BadMac)?;
                body
            }
        };
        let waited = flags >> WAITED_SHIFT;
        if flags & FLAG_HISTORY == 0 {
            return Ok((format, None, waited, body));
        }
        let Some((history, body)) = body.split_first_chunk::<HISTORY_LEN>() else {
            return Err(Reject::Undecodable("history field cut short".into()));
        };
        Ok((format, Some(u64::from_le_bytes(*history)), waited, body))
    }

    /// `envelope` (sealed by this codec) with its count of durable writes
    /// waited for set to `waited`, the MAC made again: the count is known
    /// only when the batch ends (`Core::ready`), after the message was
    /// encoded. `None` if it is not an envelope this codec sealed.
    pub(super) fn rewait_envelope(&self, envelope: &[u8], waited: u8) -> Option<Vec<u8>> {
        if envelope.len() < HEADER_LEN || envelope[..2] != MAGIC {
            return None;
        }
        let mut out = envelope.to_vec();
        out[4] =
            (out[4] & !(WAITED_MAX << WAITED_SHIFT)) | (waited.min(WAITED_MAX) << WAITED_SHIFT);
        if let Some(key) = &self.key {
            if out[4] & FLAG_MAC == 0 || out.len() < HEADER_LEN + MAC_LEN {
                return None;
            }
            let mut mac = key.mac();
            mac.update(&out[..HEADER_LEN]);
            mac.update(&out[HEADER_LEN + MAC_LEN..]);
            let tag = mac.finalize().into_bytes();
            out[HEADER_LEN..HEADER_LEN + MAC_LEN].copy_from_slice(&tag);
        }
        Some(out)
    }
}
