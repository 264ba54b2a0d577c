//! `twopc bench --mix purchase=80,topup=10,refund=5,restock=5`: which
//! operations a run makes, in what proportions, and what became of each
//! kind. A kind is a variant of [`OpKind`], with its name here and the
//! operation it makes in [`super::Workload::ops`].

use serde::Serialize;
use std::collections::BTreeMap;
use std::fmt;

/// The operations a bench run can make.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OpKind {
    /// One unit of a sku at price 1, as the plain bench buys.
    Purchase,
    /// 1 credited to the purchasing user's wallet.
    Topup,
    /// 1 unit added to the sku's stock.
    Restock,
    /// 1 unit (the whole quantity) of a purchase the same client made
    /// earlier in the run given back: 1 to its user, 1 unit to its sku.
    Refund,
}

impl OpKind {
    /// Every kind, in the order a mix lists them.
    pub const ALL: [OpKind; 4] = [
        OpKind::Purchase,
        OpKind::Topup,
        OpKind::Refund,
        OpKind::Restock,
    ];

    /// Its name in `--mix` and in the report.
    pub fn name(self) -> &'static str {
        match self {
            OpKind::Purchase => "purchase",
            OpKind::Topup => "topup",
            OpKind::Restock => "restock",
            OpKind::Refund => "refund",
        }
    }
}

/// Weights per kind (at least one above 0).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Mix {
    weights: BTreeMap<OpKind, u32>,
}

impl Default for Mix {
    /// Purchases only: the bench's original workload.
    fn default() -> Self {
        Mix {
            weights: [(OpKind::Purchase, 1)].into(),
        }
    }
}

impl Mix {
    /// Parses `purchase=80,topup=10,restock=10` (weights, not necessarily
    /// summing to 100; a kind left out is 0).
    pub fn parse(text: &str) -> Result<Mix, String> {
        let known = || {
            let names: Vec<&str> = OpKind::ALL.iter().map(|k| k.name()).collect();
            names.join(", ")
        };
        let mut weights = BTreeMap::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let Some((name, weight)) = part.split_once('=') else {
                return Err(format!("{part:?} is not KIND=WEIGHT (e.g. purchase=80)"));
            };
            let Some(kind) = OpKind::ALL.into_iter().find(|k| k.name() == name.trim()) else {
                return Err(format!("no operation {name:?}; the kinds are {}", known()));
            };
            let weight: u32 = weight.trim().parse().map_err(|_| {
                format!("the weight of {name} is {weight:?}; weights are whole numbers, 0 or more")
            })?;
            if weights.insert(kind, weight).is_some() {
                return Err(format!("{name} is given twice"));
            }
        }
        weights.retain(|_, w| *w > 0);
        if weights.is_empty() {
            return Err(format!(
                "give at least one kind a weight above 0 (the kinds are {})",
                known()
            ));
        }
        Ok(Mix { weights })
    }

    /// Whether this is the plain purchases of the original bench.
    pub fn is_purchases_only(&self) -> bool {
        self.weights.keys().all(|k| *k == OpKind::Purchase)
    }

    /// The kind of the operation whose pseudo-random draw is `r`.
    pub fn pick(&self, r: u64) -> OpKind {
        let total: u64 = self.weights.values().map(|&w| u64::from(w)).sum();
        let mut at = r % total;
        for (&kind, &w) in &self.weights {
            if at < u64::from(w) {
                return kind;
            }
            at -= u64::from(w);
        }
        unreachable!("r % total falls within the weights")
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = (self.weights.iter())
            .map(|(k, w)| format!("{}={w}", k.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// What became of one kind's operations in a run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct KindOutcomes {
    /// Operations of this kind with an outcome.
    pub made: usize,
    /// Of which committed.
    pub committed: usize,
    /// Aborted, by reason.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub aborted: BTreeMap<String, usize>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_parses_and_says_what_is_wrong() {
        let m = Mix::parse("purchase=80,topup=10,restock=10").unwrap();
        assert_eq!(m.to_string(), "purchase=80,topup=10,restock=10");
        assert!(!m.is_purchases_only());
        assert!(Mix::parse("purchase=5,topup=0")
            .unwrap()
            .is_purchases_only());
        assert!(Mix::default().is_purchases_only());
        let err = Mix::parse("return=5").unwrap_err();
        assert!(err.contains("purchase, topup, refund, restock"), "{err}");
        let m = Mix::parse("purchase=80,topup=10,refund=5,restock=5").unwrap();
        assert_eq!(m.to_string(), "purchase=80,topup=10,restock=5,refund=5");
        assert!(Mix::parse("purchase").is_err());
        assert!(Mix::parse("purchase=-1").is_err());
        assert!(Mix::parse("purchase=1,purchase=2").is_err());
        assert!(Mix::parse("topup=0").is_err());
    }

    #[test]
    fn picks_follow_the_weights() {
        let m = Mix::parse("purchase=80,topup=10,restock=10").unwrap();
        let mut n: BTreeMap<OpKind, u64> = BTreeMap::new();
        for r in 0..1000 {
            *n.entry(m.pick(r)).or_default() += 1;
        }
        assert_eq!(n[&OpKind::Purchase], 800);
        assert_eq!(n[&OpKind::Topup], 100);
        assert_eq!(n[&OpKind::Restock], 100);
    }
}
