//! A participant's initial levels — the wallet's balances, the order
//! service's stock — as the cluster file gives them: a TOML table
//! (`[accounts]`, `[stock]`) for a few keys, and a CSV file
//! (`accounts_file`, `stock_file`) for a million.
//!
//! ```text
//! key,amount          an optional header, exactly this, on the first line
//! alice,100           one key and its amount per line
//! bob,60
//! ```
//!
//! The file is streamed line by line (it is never held whole in memory).
//! The key is everything before the line's *last* comma, so a key may hold
//! commas; there is no quoting (a key starting with `"` is refused rather
//! than kept with its quotes). Spaces around key and amount, a `\r` before
//! the newline and empty lines are ignored. A bad row — an amount that is
//! not a whole number from 0 to 2^64-1, an empty key, a key longer than
//! [`crate::runtime::wire::MAX_NAME`] bytes, a key given twice, a key that the TOML
//! table also gives — stops the node's start with the file
//! and line number, before its data directory is written: fix the file and
//! start the node again.
//!
//! Both are read on a participant's first start only (`node.rs`), which
//! makes them durable at once; after that its data directory is the truth.

use crate::runtime::error::{Error, Result};
use std::collections::BTreeMap;
use std::io::BufRead;
use std::path::{Path, PathBuf};

/// Levels by key, as the node reads them (the model's map is built from
/// this by `collect`, whatever its type).
pub type Levels = BTreeMap<String, u64>;

/// The header line a levels file may start with.
pub const HEADER: &str = "key,amount";

/// Where a participant's initial levels come from.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialLevels {
    /// The cluster file's table (`[accounts]` or `[stock]`).
    pub table: Levels,
    /// A CSV file (`accounts_file` or `stock_file`), resolved against the
    /// cluster file's directory.
    pub file: Option<PathBuf>,
}

impl InitialLevels {
    /// Levels from a table only.
    pub fn table(table: Levels) -> Self {
        InitialLevels { table, file: None }
    }

    /// The table and the file's rows together; `setting` and `table_name`
    /// name them in errors (`accounts_file`, `[accounts]`).
    pub fn read(&self, setting: &'static str, table_name: &str) -> Result<Levels> {
        let Some(path) = &self.file else {
            return Ok(self.table.clone());
        };
        let file = std::fs::File::open(path).map_err(|source| Error::LevelsRead {
            setting,
            path: path.clone(),
            source,
        })?;
        let reader = std::io::BufReader::with_capacity(1 << 16, file);
        let rows = parse(reader, |line, msg| Error::LevelsInvalid {
            setting,
            path: path.clone(),
            line,
            msg,
        })?;
        let mut levels = Levels::new();
        for (key, (amount, line)) in rows {
            if self.table.contains_key(&key) {
                return Err(Error::LevelsInvalid {
                    setting,
                    path: path.clone(),
                    line,
                    msg: format!(
                        "key {key:?} is also in the cluster file's {table_name} table: \
                         give each key in one place"
                    ),
                });
            }
            levels.insert(key, amount);
        }
        levels.extend(self.table.iter().map(|(k, v)| (k.clone(), *v)));
        Ok(levels)
    }
}

/// Parses CSV rows `key,amount` from `reader`: each key with its amount and
/// the line it is on. `bad(line, what)` makes the error of a bad line.
pub fn parse(
    mut reader: impl BufRead,
    bad: impl Fn(usize, String) -> Error,
) -> Result<BTreeMap<String, (u64, usize)>> {
    let mut rows = BTreeMap::new();
    let mut buf = Vec::new();
    let mut line = 0;
    loop {
        buf.clear();
        let n = reader
            .read_until(b'\n', &mut buf)
            .map_err(|e| bad(line + 1, format!("cannot read: {e}")))?;
        if n == 0 {
            return Ok(rows);
        }
        line += 1;
        let text = std::str::from_utf8(&buf).map_err(|_| bad(line, "not UTF-8 text".into()))?;
        let text = text.trim();
        if text.is_empty() || (line == 1 && text == HEADER) {
            continue;
        }
        let Some((key, amount)) = text.rsplit_once(',') else {
            return Err(bad(line, format!("expected `key,amount`, got {text:?}")));
        };
        let (key, amount) = (key.trim(), amount.trim());
        if key.is_empty() {
            return Err(bad(line, "empty key".into()));
        }
        crate::runtime::wire::check_name("key", key).map_err(|msg| bad(line, msg))?;
        if key.starts_with('"') {
            return Err(bad(
                line,
                format!("quoted key {key:?}: quoting is not supported, write the key as it is"),
            ));
        }
        let amount: u64 = amount.parse().map_err(|_| {
            bad(
                line,
                format!("amount {amount:?} of key {key:?} is not a whole number from 0 to 2^64-1"),
            )
        })?;
        if let Some((_, first)) = rows.get(key) {
            return Err(bad(
                line,
                format!("key {key:?} again (first on line {first}): give each key once"),
            ));
        }
        rows.insert(key.to_string(), (amount, line));
    }
}

/// Writes `levels` as a levels file (with the header), for local clusters.
pub fn write(path: &Path, levels: &Levels) -> Result<()> {
    use std::io::Write;
    let io = |source| Error::LevelsWrite {
        path: path.to_path_buf(),
        source,
    };
    let mut out = std::io::BufWriter::new(std::fs::File::create(path).map_err(io)?);
    writeln!(out, "{HEADER}").map_err(io)?;
    for (k, v) in levels {
        writeln!(out, "{k},{v}").map_err(io)?;
    }
    out.flush().map_err(io)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> std::result::Result<Vec<(String, u64)>, String> {
        parse(text.as_bytes(), bad)
            .map(|rows| rows.into_iter().map(|(k, (v, _))| (k, v)).collect())
            .map_err(said)
    }

    /// A bad row, as a levels file's error.
    fn bad(line: usize, msg: String) -> Error {
        Error::LevelsInvalid {
            setting: "accounts_file",
            path: "accounts.csv".into(),
            line,
            msg,
        }
    }

    /// What `parse` said about the row: `line N: ...`.
    fn said(e: Error) -> String {
        match e {
            Error::LevelsInvalid { line, msg, .. } => format!("line {line}: {msg}"),
            e => e.to_string(),
        }
    }

    fn pairs(p: &[(&str, u64)]) -> Vec<(String, u64)> {
        p.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }

    #[test]
    fn rows_with_or_without_a_header_read_as_keys_and_amounts() {
        let want = pairs(&[("alice", 100), ("bob", 0), ("x,y", 7)]);
        assert_eq!(parse_str("alice,100\nbob,0\nx,y,7\n"), Ok(want.clone()));
        assert_eq!(
            parse_str("key,amount\r\n alice , 100 \r\n\r\nbob,0\nx,y,7"),
            Ok(want)
        );
        assert_eq!(parse_str(""), Ok(vec![]));
        assert_eq!(
            parse_str(&format!("big,{}\n", u64::MAX)),
            Ok(pairs(&[("big", u64::MAX)]))
        );
    }

    #[test]
    fn a_bad_row_is_named_by_its_line() {
        let err = |text: &str| parse_str(text).unwrap_err();
        assert_eq!(
            err("key,amount\nalice,100\nbob,-5\n"),
            "line 3: amount \"-5\" of key \"bob\" is not a whole number from 0 to 2^64-1"
        );
        assert!(err("a,1\nb,18446744073709551616").starts_with("line 2: amount"));
        assert!(err("a,1\nb,ten").starts_with("line 2: amount \"ten\""));
        assert!(err("a,1\nb,").starts_with("line 2: amount \"\""));
        assert_eq!(err("a,1\n,5\n"), "line 2: empty key");
        let long = format!("a,1\n{},5\n", "u".repeat(65));
        assert!(
            err(&long).starts_with("line 2: key (\"uuuu"),
            "{}",
            err(&long)
        );
        assert!(err(&long).contains("65 bytes; user names and skus are at most 64"));
        assert_eq!(err("a,1\n  ,5\n"), "line 2: empty key");
        assert_eq!(
            err("alice,1\nbob,2\n\nalice,3\n"),
            "line 4: key \"alice\" again (first on line 1): give each key once"
        );
        assert_eq!(
            err("alice 100\n"),
            "line 1: expected `key,amount`, got \"alice 100\""
        );
        assert!(err("\"alice\",1\n").starts_with("line 1: quoted key"));
        // A header anywhere but the first line is a row with a bad amount.
        assert!(err("a,1\nkey,amount\n").starts_with("line 2: amount \"amount\""));
        assert_eq!(
            said(parse(&b"a,1\n\xff,2\n"[..], bad).unwrap_err()),
            "line 2: not UTF-8 text"
        );
    }

    #[test]
    fn the_file_and_the_table_together_give_each_key_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("balances.csv");
        std::fs::write(&path, "key,amount\nalice,100\nbob,60\n").unwrap();
        let mut initial = InitialLevels {
            table: Levels::from([("carol".to_string(), 15)]),
            file: Some(path.clone()),
        };
        let levels = initial.read("accounts_file", "[accounts]").unwrap();
        assert_eq!(
            levels.into_iter().collect::<Vec<_>>(),
            pairs(&[("alice", 100), ("bob", 60), ("carol", 15)])
        );
        initial.table.insert("bob".into(), 1);
        let err = initial
            .read("accounts_file", "[accounts]")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with(&format!(
                "accounts_file {}, line 3: key \"bob\" is also in the cluster file's [accounts] table",
                path.display()
            )),
            "{err}"
        );
        assert!(err.contains("did not start"), "{err}");
        initial.file = Some(dir.path().join("missing.csv"));
        let err = initial
            .read("accounts_file", "[accounts]")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("cannot read accounts_file") && err.contains("missing.csv"),
            "{err}"
        );
    }

    #[test]
    fn a_written_file_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stock.csv");
        let levels = Levels::from([("widget".to_string(), 10), ("a,b".to_string(), 0)]);
        write(&path, &levels).unwrap();
        let read = InitialLevels {
            table: Levels::new(),
            file: Some(path),
        }
        .read("stock_file", "[stock]")
        .unwrap();
        assert_eq!(read, levels);
    }
}
