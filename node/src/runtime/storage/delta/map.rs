//! [`MapDelta`]: the changes from one map to another (entries set, keys
//! removed), found by diffing persistent maps, and applied back. Uses
//! nothing of the crate.

use imbl::ordmap::DiffItem;
use serde::{Deserialize, Serialize};
use twopc_model::Map;

/// Changes to one map: entries set (added or changed) and keys removed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MapDelta<K: Ord, V> {
    set: Vec<(K, V)>,
    remove: Vec<K>,
}

impl<K: Ord, V> MapDelta<K, V> {
    pub(super) fn is_empty(&self) -> bool {
        self.set.is_empty() && self.remove.is_empty()
    }

    pub(super) fn apply(self, map: &mut Map<K, V>)
    where
        K: Clone,
        V: Clone,
    {
        for k in self.remove {
            map.remove(&k);
        }
        map.extend(self.set);
    }
}

/// The changes from `old` to `new` for one map, by merging the sorted keys.
pub(super) fn diff_map<K: Ord + Clone, V: PartialEq + Clone>(
    old: &Map<K, V>,
    new: &Map<K, V>,
) -> MapDelta<K, V> {
    // The maps are persistent and `new` was made from `old` by the actor:
    // the diff skips the subtrees they share, so its cost follows what
    // changed, not how many accounts or transactions there are.
    let mut d = MapDelta {
        set: Vec::new(),
        remove: Vec::new(),
    };
    for item in old.diff(new) {
        match item {
            DiffItem::Add(k, v) | DiffItem::Update { new: (k, v), .. } => {
                d.set.push((k.clone(), v.clone()))
            }
            DiffItem::Remove(k, _) => d.remove.push(k.clone()),
        }
    }
    d
}
