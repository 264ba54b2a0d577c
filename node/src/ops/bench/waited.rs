//! The durable writes a buyer waited for, per purchase: the count each
//! committed outcome's envelope carried when its client took it (measured
//! along the purchase's causal chain by every node it crossed:
//! `runtime/core/waited.rs`), as a distribution.

use serde::Serialize;
use std::collections::BTreeMap;

/// The durable writes waited for per committed purchase of one run.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct Waited {
    /// The median count.
    pub median: u8,
    /// The highest count.
    pub max: u8,
    /// How many committed purchases read each count.
    pub counts: BTreeMap<u8, usize>,
}

impl Waited {
    /// The distribution of `counts` (count → purchases).
    pub fn of(counts: BTreeMap<u8, usize>) -> Waited {
        let total: usize = counts.values().sum();
        let mut below = 0;
        let mut median = 0;
        for (&count, &n) in &counts {
            below += n;
            if 2 * below > total {
                median = count;
                break;
            }
        }
        Waited {
            median,
            max: counts.keys().next_back().copied().unwrap_or(0),
            counts,
        }
    }

    /// As the table shows it: the median, and the max when it differs.
    pub fn cell(&self) -> String {
        if self.max == self.median {
            self.median.to_string()
        } else {
            format!("{} (max {})", self.median, self.max)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_and_max_of_a_distribution() {
        let w = Waited::of(BTreeMap::from([(1, 3), (2, 5), (4, 1)]));
        assert_eq!((w.median, w.max), (2, 4));
        assert_eq!(w.cell(), "2 (max 4)");
        let w = Waited::of(BTreeMap::from([(2, 20)]));
        assert_eq!((w.median, w.max, w.cell()), (2, 2, "2".to_string()));
        assert_eq!(Waited::of(BTreeMap::new()).cell(), "0");
    }
}
