//! Which cluster a node belongs to, so that one cluster never runs on
//! another's data nor counts another's datagrams.
//!
//! A cluster's id is `cluster_id` in the cluster file if it names one, else
//! the fingerprint of the cluster key ([`ClusterKey::fingerprint`]): another
//! key is another cluster, and existing deployments get an id without
//! changing anything. A cluster with neither a key nor a `cluster_id` has
//! no identity (its nodes warn at start; anyone can forge its datagrams
//! anyway).
//!
//! - Every data directory is stamped with it at the first start
//!   (`DIR/CLUSTER`, `storage/stamp.rs`; a directory of an older version is
//!   stamped at its first start under this one), and a node refuses to
//!   start, before touching anything, on a directory stamped with another.
//! - Datagrams carry it in their MAC: with a `cluster_id`, the MAC key is
//!   derived from the cluster key and the id ([`ClusterKey::for_cluster`]),
//!   so two clusters sharing a key still never accept each other's
//!   datagrams; without one, the id is a function of the key, and the key
//!   already keeps clusters apart.
//!
//! Rotating the key changes the fingerprint: to keep a cluster's identity
//! across a rotation, write its current id as `cluster_id` in the cluster
//! file first (the refusal message says which).

use crate::runtime::cluster::Cluster;
use crate::runtime::wire::{ClusterKey, Codec, Format};

pub use crate::runtime::cluster::{check_cluster_id as check, MAX_ID};

/// A cluster's identity, as a node checks and stamps it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ClusterId {
    /// The id.
    pub id: String,
    /// Where it came from (for messages).
    pub source: &'static str,
}

impl Cluster {
    /// The codec of this cluster's nodes and clients: the MAC keyed by
    /// `key`, derived with the file's `cluster_id` if it names one.
    pub fn codec(&self, key: Option<ClusterKey>, format: Format) -> Codec {
        let key = match (&self.cluster_id, key) {
            (Some(id), Some(key)) => Some(key.for_cluster(id)),
            (None, key) => key,
            (Some(_), None) => None,
        };
        Codec::new(key, format)
    }

    /// This cluster's identity, for nodes using `codec` (built by
    /// [`Cluster::codec`]; `None`: neither a key nor a `cluster_id`).
    pub fn identity(&self, codec: &Codec) -> Option<ClusterId> {
        match (&self.cluster_id, codec.fingerprint()) {
            (Some(id), _) => Some(ClusterId {
                id: id.clone(),
                source: "cluster_id in the cluster file",
            }),
            (None, Some(id)) => Some(ClusterId {
                id,
                source: "the fingerprint of the cluster key; the cluster file names no cluster_id",
            }),
            (None, None) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::runtime::wire::Payload;

    const NODES: &str = r#"
        [[node]]
        name = "coordinator"
        role = "coordinator"
        address = "127.0.0.1:1"
        [[node]]
        name = "wallet"
        role = "wallet"
        address = "127.0.0.1:2"
        [[node]]
        name = "order"
        role = "order"
        address = "127.0.0.1:3"
    "#;

    fn cluster(id: Option<&str>) -> Cluster {
        let top = id.map_or(String::new(), |id| format!("cluster_id = {id:?}\n"));
        Cluster::parse(&format!("{top}{NODES}")).unwrap()
    }

    #[test]
    fn the_id_is_the_files_or_the_keys_fingerprint() {
        let key = ClusterKey::random();
        let other = ClusterKey::random();
        let plain = cluster(None);
        let id = |c: &Cluster, key: Option<&ClusterKey>| {
            c.identity(&c.codec(key.cloned(), Format::Bincode))
                .map(|i| i.id)
        };
        let fp = id(&plain, Some(&key)).unwrap();
        assert!(fp.starts_with("k-") && fp.len() == 18, "{fp}");
        assert_eq!(id(&plain, Some(&key)).unwrap(), fp, "stable");
        assert_ne!(id(&plain, Some(&other)).unwrap(), fp);
        assert_eq!(id(&plain, None), None);
        let named = cluster(Some("shop-eu-1"));
        assert_eq!(id(&named, Some(&key)).unwrap(), "shop-eu-1");
        assert_eq!(id(&named, None).unwrap(), "shop-eu-1");
        assert_eq!(Cluster::parse(&named.to_toml()).unwrap(), named);
        for bad in ["", "a b", "é", &"x".repeat(65)] {
            let err = Cluster::parse(&format!("cluster_id = {bad:?}\n{NODES}")).unwrap_err();
            assert!(err.contains("cluster_id"), "{err}");
        }
    }

    /// Two clusters sharing a key but not an id never accept each other's
    /// datagrams; without an id, the key alone is the MAC key, as before.
    #[test]
    fn a_named_cluster_derives_its_mac_key() {
        let key = ClusterKey::random();
        let msg = Payload::StatusRequest { nonce: 1 };
        let a = cluster(Some("a")).codec(Some(key.clone()), Format::Bincode);
        let b = cluster(Some("b")).codec(Some(key.clone()), Format::Bincode);
        let plain = cluster(None).codec(Some(key.clone()), Format::Bincode);
        let raw = Codec::new(Some(key), Format::Bincode);
        let from_a = a.encode(&msg).unwrap();
        assert_eq!(a.decode(&from_a).unwrap(), msg);
        assert!(b.decode(&from_a).is_err());
        assert!(plain.decode(&from_a).is_err());
        assert_eq!(raw.decode(&plain.encode(&msg).unwrap()).unwrap(), msg);
    }
}
