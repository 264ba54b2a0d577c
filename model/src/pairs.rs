//! A map written as a list of `(key, value)` pairs: JSON (traces, `--wire
//! json`) cannot write a map whose keys are not strings; binary formats write
//! a map and a list of pairs alike.

use crate::types::Map;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

pub fn serialize<K, V, S>(m: &Map<K, V>, s: S) -> Result<S::Ok, S::Error>
where
    K: Serialize + Ord + Clone,
    V: Serialize + Clone,
    S: Serializer,
{
    s.collect_seq(m.iter())
}

pub fn deserialize<'de, K, V, D>(d: D) -> Result<Map<K, V>, D::Error>
where
    K: Deserialize<'de> + Ord + Clone,
    V: Deserialize<'de> + Clone,
    D: Deserializer<'de>,
{
    Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
}
