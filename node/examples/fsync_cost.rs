//! What an `fdatasync` costs on this disk: after an append that grows the
//! file, against after an overwrite inside a region preallocated and
//! zero-filled (and synced) once, and inside one only `fallocate`d
//! (unwritten extents, not zero-filled). Prints figures; asserts nothing.
//!
//! ```text
//! cargo run --release -p twopc-node --example fsync_cost -- [DIR] [WRITES] [BYTES]
//! ```
//!
//! `DIR` (default: a temporary directory under the current one, so on the
//! disk a data directory would use), `WRITES` per file (default 2000),
//! `BYTES` per write (default 160, about a one-write participant's batch).
//! The three files are written in turn, one write and one `fdatasync` each,
//! so that all three see the same load; the figures are the medians and
//! the 90th percentiles of the `fdatasync` alone, in microseconds. After
//! each round, one 32-byte `pwrite` (unsynced) into alternating slots of a
//! fourth file is timed too: what the synced-length marker's write costs.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::os::unix::io::AsRawFd;
use std::path::Path;
use std::time::Instant;

fn fallocate(f: &File, len: u64) {
    // SAFETY: a valid open descriptor; mode 0 only allocates.
    let rc = unsafe { libc::fallocate(f.as_raw_fd(), 0, 0, len as libc::off_t) };
    assert_eq!(rc, 0, "fallocate: {}", std::io::Error::last_os_error());
}

fn sync_dir(dir: &Path) {
    File::open(dir).unwrap().sync_all().unwrap();
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p) as usize]
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tmp;
    let dir = match args.first() {
        Some(d) => Path::new(d).to_path_buf(),
        None => {
            tmp = tempfile::tempdir_in(".").unwrap();
            tmp.path().to_path_buf()
        }
    };
    let writes: usize = args.get(1).map_or(2000, |s| s.parse().unwrap());
    let bytes: usize = args.get(2).map_or(160, |s| s.parse().unwrap());
    let size = (writes * bytes) as u64;
    let rec = vec![0xA7u8; bytes];

    let mut append = File::create(dir.join("append")).unwrap();
    append.sync_all().unwrap();
    let zeroed = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("zeroed"))
        .unwrap();
    fallocate(&zeroed, size);
    let chunk = vec![0u8; 1 << 20];
    let mut at = 0;
    while at < size {
        let n = chunk.len().min((size - at) as usize);
        zeroed.write_all_at(&chunk[..n], at).unwrap();
        at += n as u64;
    }
    zeroed.sync_all().unwrap();
    let unwritten = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(dir.join("unwritten"))
        .unwrap();
    fallocate(&unwritten, size);
    unwritten.sync_all().unwrap();
    sync_dir(&dir);

    let marker = File::create(dir.join("marker")).unwrap();
    marker.write_all_at(&[0; 64], 0).unwrap();
    marker.sync_all().unwrap();
    let mut pwrites = vec![];
    let mut times = [vec![], vec![], vec![]];
    for i in 0..writes {
        let off = (i * bytes) as u64;
        append.write_all(&rec).unwrap();
        let t = Instant::now();
        append.sync_data().unwrap();
        times[0].push(t.elapsed().as_secs_f64() * 1e6);
        zeroed.write_all_at(&rec, off).unwrap();
        let t = Instant::now();
        zeroed.sync_data().unwrap();
        times[1].push(t.elapsed().as_secs_f64() * 1e6);
        unwritten.write_all_at(&rec, off).unwrap();
        let t = Instant::now();
        unwritten.sync_data().unwrap();
        times[2].push(t.elapsed().as_secs_f64() * 1e6);
        let t = Instant::now();
        marker
            .write_all_at(&[i as u8; 32], 32 * (i as u64 % 2))
            .unwrap();
        pwrites.push(t.elapsed().as_secs_f64() * 1e6);
    }
    let names = [
        "append (grows the file)",
        "overwrite, zero-filled",
        "overwrite, fallocate only",
    ];
    let mut p50 = [0.0; 3];
    println!(
        "{writes} writes of {bytes} bytes per file ({size} bytes), in {}",
        dir.display()
    );
    for (k, t) in times.iter_mut().enumerate() {
        t.sort_by(|a, b| a.partial_cmp(b).unwrap());
        p50[k] = pct(t, 0.5);
        let mean = t.iter().sum::<f64>() / t.len() as f64;
        println!(
            "{:<28} fdatasync p50 {:>7.1} us  p90 {:>7.1} us  mean {:>7.1} us",
            names[k],
            p50[k],
            pct(t, 0.9),
            mean
        );
    }
    println!(
        "zero-filled / append p50: {:.2} (saves {:.1} us)",
        p50[1] / p50[0],
        p50[0] - p50[1]
    );
    println!("fallocate-only / append p50: {:.2}", p50[2] / p50[0]);
    pwrites.sort_by(|a, b| a.partial_cmp(b).unwrap());
    println!(
        "32-byte pwrite (the marker's, unsynced): p50 {:.1} us  p90 {:.1} us",
        pct(&pwrites, 0.5),
        pct(&pwrites, 0.9)
    );
}
