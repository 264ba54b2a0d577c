//! What an fdatasync costs on `--dir` right now: the figure both sides'
//! latency rests on, and the one that other work on the machine moves most.

use std::fs::OpenOptions;
use std::io::Write;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

/// The median of 20 fdatasyncs, each after an 8 kB overwrite (a WAL page)
/// in a 1 MiB file written and synced first; ms.
pub fn fdatasync_p50_ms(dir: &Path) -> Result<f64, String> {
    let path = dir.join(format!("pgside-probe-{}", std::process::id()));
    let result = (|| {
        let mut f = OpenOptions::new()
            .create(true)
            .truncate(true)
            .read(true)
            .write(true)
            .open(&path)?;
        f.write_all(&vec![0u8; 1 << 20])?;
        f.sync_all()?;
        let page = [7u8; 8192];
        let mut took: Vec<Duration> = Vec::new();
        for i in 0..20u64 {
            f.write_all_at(&page, (i % 128) * 8192)?;
            let t = Instant::now();
            f.sync_data()?;
            took.push(t.elapsed());
        }
        took.sort();
        Ok::<f64, std::io::Error>(took[10].as_secs_f64() * 1e3)
    })();
    let _ = std::fs::remove_file(&path);
    result.map_err(|e| format!("fdatasync probe in {}: {e}", path.display()))
}
