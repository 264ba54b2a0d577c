//! [`ClusterKey`]: the cluster's shared secret, its text format, the key
//! derived for a cluster id, its fingerprint, and the HMAC it keys. Uses
//! nothing of the crate.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The cluster's shared secret. Its `Debug` never prints it.
///
/// Its format, checked wherever a key is read: exactly [`KEY_HEX_LEN`]
/// hexadecimal characters (32 random bytes, as `twopc keygen` prints them),
/// with surrounding whitespace (a trailing newline) ignored and nothing else
/// in the file or variable. Upper- and lower-case digits are the same key.
/// The HMAC is keyed by the 64 lower-case hex characters, as before the
/// format was enforced, so keys from `twopc keygen` keep working unchanged.
#[derive(Clone)]
pub struct ClusterKey(Vec<u8>);

/// How many hexadecimal characters a cluster key has (32 bytes).
pub const KEY_HEX_LEN: usize = 64;

impl ClusterKey {
    /// A key from its text, or why the text is not one. The error describes
    /// the text without quoting it (it may be a secret).
    pub fn new(text: &str) -> Result<Self, String> {
        const EXPECTED: &str = "a cluster key is exactly 64 hexadecimal characters \
            (32 bytes, as `twopc keygen` prints them) and nothing else";
        let key = text.trim();
        if key.lines().nth(1).is_some() {
            return Err(format!(
                "{EXPECTED}; got {} lines (a comment or a second key?)",
                key.lines().count()
            ));
        }
        if let Some((at, _)) = key.char_indices().find(|(_, c)| !c.is_ascii_hexdigit()) {
            return Err(format!(
                "{EXPECTED}; got a character that is not a hexadecimal digit at byte {}",
                at + 1
            ));
        }
        if key.len() != KEY_HEX_LEN {
            return Err(format!("{EXPECTED}; got {} characters", key.len()));
        }
        Ok(ClusterKey(key.to_ascii_lowercase().into_bytes()))
    }

    /// A fresh random key (the demo uses one).
    pub fn random() -> Self {
        ClusterKey(Self::generate().into_bytes())
    }

    /// The text of a fresh random key, as `twopc keygen` prints it.
    pub fn generate() -> String {
        hex::encode(rand::random::<[u8; 32]>())
    }

    pub(super) fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.0).expect("HMAC takes keys of any length")
    }

    /// The key datagrams of cluster `id` are authenticated with: an HMAC
    /// of the id under this key (hex, like a key), so that clusters sharing
    /// a key but not an id never accept each other's datagrams.
    pub fn for_cluster(&self, id: &str) -> ClusterKey {
        let mut mac = self.mac();
        mac.update(b"twopc cluster id\0");
        mac.update(id.as_bytes());
        ClusterKey(hex::encode(mac.finalize().into_bytes()).into_bytes())
    }

    /// The key's public fingerprint: a cluster's id when its file names
    /// none ("k-" and 16 hex digits of a hash; the key cannot be recovered
    /// from it).
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let mut hash = Sha256::new();
        hash.update(b"twopc cluster fingerprint\0");
        hash.update(&self.0);
        format!("k-{}", &hex::encode(hash.finalize())[..16])
    }
}

impl std::fmt::Debug for ClusterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClusterKey(<redacted>)")
    }
}
