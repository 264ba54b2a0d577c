//! One side's figures, the two sides in one table, and their ratios. Pure.

use serde::{Deserialize, Serialize};

/// One side's measured run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Measured {
    pub purchases: usize,
    pub per_second: f64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    /// Purchases that did not commit (0 expected on both sides).
    pub not_committed: usize,
    /// PostgreSQL only: attempts beyond one per purchase (lock timeouts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retries: Option<u64>,
}

/// One client count: both sides, and the load when the run started.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub clients: usize,
    pub postgres: Measured,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub twopc: Option<Measured>,
    /// twopc p50 / PostgreSQL p50 (below 1: twopc is faster).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p50_ratio: Option<f64>,
    /// twopc purchases/s / PostgreSQL purchases/s (above 1: twopc does more).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub throughput_ratio: Option<f64>,
    /// /proc/loadavg's 1-minute figure before the PostgreSQL run and
    /// before twopc's.
    pub load: Vec<f64>,
    /// The median fdatasync of an 8 kB page on `--dir` just before the
    /// PostgreSQL run, ms.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdatasync_ms: Option<f64>,
}

impl Row {
    /// A row, with the ratios if twopc ran.
    pub fn new(clients: usize, postgres: Measured, twopc: Option<Measured>, load: Vec<f64>) -> Row {
        let (p50_ratio, throughput_ratio) = match &twopc {
            Some(t) => (
                ratio(t.p50_ms, postgres.p50_ms),
                ratio(t.per_second, postgres.per_second),
            ),
            None => (None, None),
        };
        Row {
            clients,
            postgres,
            twopc,
            p50_ratio,
            throughput_ratio,
            load,
            fdatasync_ms: None,
        }
    }
}

/// a / b, if b is a number to divide by.
pub fn ratio(a: f64, b: f64) -> Option<f64> {
    (b > 0.0 && a.is_finite() && b.is_finite()).then(|| a / b)
}

/// A ratio with two significant figures at least (0.0036x, not 0.00x).
fn cell(r: Option<f64>) -> String {
    match r {
        Some(r) if r >= 100.0 => format!("{r:.0}x"),
        Some(r) if r >= 0.1 => format!("{r:.2}x"),
        Some(r) => format!("{r:.2e}x"),
        None => "-".into(),
    }
}

/// The side-by-side table, one line per client count.
pub fn table(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "{:>7} | {:>9} {:>8} {:>8} {:>7} | {:>9} {:>8} {:>8} | {:>9} {:>10} | {:>8} | {}\n",
        "clients",
        "PG /s",
        "p50 ms",
        "p99 ms",
        "retries",
        "twopc /s",
        "p50 ms",
        "p99 ms",
        "p50 ratio",
        "/s ratio",
        "fsync ms",
        "load"
    ));
    for r in rows {
        let pg = &r.postgres;
        let tw = match &r.twopc {
            Some(t) => format!("{:>9.0} {:>8.2} {:>8.2}", t.per_second, t.p50_ms, t.p99_ms),
            None => format!("{:>9} {:>8} {:>8}", "-", "-", "-"),
        };
        let load: Vec<String> = r.load.iter().map(|l| format!("{l:.2}")).collect();
        out.push_str(&format!(
            "{:>7} | {:>9.0} {:>8.2} {:>8.2} {:>7} | {} | {:>9} {:>10} | {:>8} | {}\n",
            r.clients,
            pg.per_second,
            pg.p50_ms,
            pg.p99_ms,
            pg.retries.unwrap_or(0),
            tw,
            cell(r.p50_ratio),
            cell(r.throughput_ratio),
            r.fdatasync_ms
                .map(|f| format!("{f:.2}"))
                .unwrap_or_else(|| "-".into()),
            load.join(", ")
        ));
    }
    out
}

/// Runs in which a side did not commit every purchase, said plainly.
pub fn incomplete(rows: &[Row]) -> Vec<String> {
    let mut out = Vec::new();
    for r in rows {
        let sides = [
            ("PostgreSQL", Some(&r.postgres)),
            ("twopc", r.twopc.as_ref()),
        ];
        for (side, m) in sides {
            if let Some(m) = m.filter(|m| m.not_committed > 0) {
                out.push(format!(
                    "{side} at {} clients: {} of {} purchases did not commit",
                    r.clients, m.not_committed, m.purchases
                ));
            }
        }
    }
    out
}

/// The 1-minute load average, from /proc/loadavg's text.
pub fn load_1min(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(per_second: f64, p50_ms: f64) -> Measured {
        Measured {
            purchases: 2000,
            per_second,
            p50_ms,
            p99_ms: p50_ms * 3.0,
            not_committed: 0,
            retries: None,
        }
    }

    #[test]
    fn ratios_are_twopc_over_postgres() {
        let r = Row::new(16, m(1000.0, 2.0), Some(m(2500.0, 1.0)), vec![1.5]);
        assert_eq!(r.p50_ratio, Some(0.5));
        assert_eq!(r.throughput_ratio, Some(2.5));
        let t = table(&[r, Row::new(64, m(0.0, 0.0), None, vec![])]);
        let lines: Vec<&str> = t.lines().collect();
        assert!(
            lines[1].contains("0.50x") && lines[1].contains("2.50x"),
            "{t}"
        );
        assert!(lines[1].trim_end().ends_with("| 1.50"), "{t}");
        assert!(lines[2].contains(" - "), "{t}");
    }

    #[test]
    fn small_and_large_ratios_keep_their_figures() {
        assert_eq!(cell(Some(4.14 / 1161.22)), "3.57e-3x");
        assert_eq!(cell(Some(242.76)), "243x");
        assert_eq!(cell(Some(0.59)), "0.59x");
        assert_eq!(cell(None), "-");
    }

    #[test]
    fn nothing_divides_by_zero() {
        assert_eq!(ratio(1.0, 0.0), None);
        assert_eq!(ratio(f64::NAN, 1.0), None);
        let r = Row::new(1, m(0.0, 0.0), Some(m(10.0, 1.0)), vec![]);
        assert_eq!((r.p50_ratio, r.throughput_ratio), (None, None));
    }

    #[test]
    fn twopc_s_json_reads_into_measured() {
        // A `twopc bench --json` entry, trimmed: unknown fields are ignored.
        let text = r#"[{"protocol":"2pc","clients":16,"accounts":1000,"purchases":2000,
            "per_second":4321.5,"p50_ms":3.1,"p99_ms":9.9,"fsyncs_per_purchase":{},
            "not_committed":2}]"#;
        let v: Vec<Measured> = serde_json::from_str(text).unwrap();
        assert_eq!(v[0].per_second, 4321.5);
        assert_eq!(v[0].not_committed, 2);
        let r = Row::new(16, m(100.0, 1.0), Some(v[0].clone()), vec![]);
        assert_eq!(
            incomplete(&[r]),
            ["twopc at 16 clients: 2 of 2000 purchases did not commit"]
        );
    }

    #[test]
    fn load_is_the_first_field() {
        assert_eq!(load_1min("4.83 3.10 1.54 6/176 13906\n"), Some(4.83));
        assert_eq!(load_1min(""), None);
    }
}
