//! Writing a streamed export (`audit export`, `usage export`) to stdout or a file.
//!
//! Owns: the `.partial` file that is renamed into place only when the export completed, copying
//! a server stream's chunks in order, and the progress notes of a long export. Must not:
//! reformat the exported bytes (they are written exactly as the server streams them) or build
//! requests (the resource modules do).

use std::ffi::OsString;
use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::Context;
use crate::client::{CliError, Connection, ServerStream};

/// No progress note before an export has run this long, and then at most one per interval.
pub const PROGRESS_INTERVAL: Duration = Duration::from_secs(2);

/// A server-streamed export chunk.
pub trait Chunk {
    fn data(&self) -> &[u8];
}

impl Chunk for keygate_proto::v1::ExportAuditEventsResponse {
    fn data(&self) -> &[u8] {
        &self.data
    }
}

impl Chunk for keygate_proto::v1::ExportUsageChunk {
    fn data(&self) -> &[u8] {
        &self.data
    }
}

/// Where an export goes: stdout, or `--output` through a `.partial` file.
pub(crate) struct Destination(Option<PartialFile>);

impl Destination {
    /// Creates the `.partial` file for `--output`, if given. Commands call this before
    /// connecting, so that a bad path fails before anything is asked of the server.
    pub fn open(output: Option<&Path>) -> Result<Self, CliError> {
        output.map(PartialFile::create).transpose().map(Destination)
    }

    /// Copies every chunk of `stream` in order, noting progress on stderr while it runs
    /// long and, for a file, where it went. On any failure the `.partial` file is removed
    /// (as it is when the `Destination` is dropped unused, e.g. after a failed call).
    pub async fn write<T: Chunk>(
        self,
        conn: &Connection,
        mut stream: ServerStream<T>,
        ctx: &mut Context<'_>,
    ) -> Result<(), CliError> {
        let mut progress = Progress::new(Instant::now());
        let Some(mut file) = self.0 else {
            let err = &mut *ctx.err;
            copy_stream(
                conn,
                &mut stream,
                ctx.out,
                CliError::Output,
                &mut progress,
                err,
            )
            .await?;
            return Ok(());
        };
        let path = file.path.clone();
        let bytes = copy_stream(
            conn,
            &mut stream,
            &mut file.file,
            |e| CliError::io(format!("cannot write {}", path.display()), e),
            &mut progress,
            ctx.err,
        )
        .await?;
        let path = file.finish()?;
        ctx.note(format_args!("wrote {bytes} bytes to {}", path.display()))
    }
}

/// Writes every chunk of the stream to `dest` in order; returns the byte count.
async fn copy_stream<T: Chunk>(
    conn: &Connection,
    stream: &mut ServerStream<T>,
    dest: &mut dyn Write,
    write_error: impl Fn(io::Error) -> CliError,
    progress: &mut Progress,
    err: &mut dyn Write,
) -> Result<u64, CliError> {
    let mut bytes = 0u64;
    while let Some(chunk) = conn.next(stream).await? {
        dest.write_all(chunk.data()).map_err(&write_error)?;
        bytes += chunk.data().len() as u64;
        if let Some(note) = progress.note(bytes, Instant::now()) {
            // Progress is a courtesy: a closed stderr must not fail the export.
            let _ = writeln!(err, "{note}").and_then(|()| err.flush());
        }
    }
    dest.flush().map_err(&write_error)?;
    Ok(bytes)
}

/// When to note an export's progress: not in its first [`PROGRESS_INTERVAL`], then once per
/// interval.
#[derive(Debug)]
pub struct Progress {
    started: Instant,
    next: Instant,
}

impl Progress {
    pub fn new(started: Instant) -> Self {
        Progress {
            started,
            next: started + PROGRESS_INTERVAL,
        }
    }

    /// The note to print after `bytes` were written by `now`, if one is due.
    pub fn note(&mut self, bytes: u64, now: Instant) -> Option<String> {
        if now < self.next {
            return None;
        }
        self.next = now + PROGRESS_INTERVAL;
        let secs = now.duration_since(self.started).as_secs();
        Some(format!("exported {} in {secs}s ...", byte_size(bytes)))
    }
}

/// `512 B`, `1.5 KiB`, `12.0 MiB`, `3.2 GiB`.
pub fn byte_size(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

/// An export file written as `<path>.partial` and renamed into place only when complete,
/// so that a failed export never leaves a truncated file under the requested name. Dropped
/// without [`PartialFile::finish`] (an error, a failed connection), it removes itself.
pub struct PartialFile {
    pub file: File,
    /// The `.partial` path being written.
    pub path: PathBuf,
    target: PathBuf,
    renamed: bool,
}

impl PartialFile {
    /// Creates `<target>.partial`.
    pub fn create(target: &Path) -> Result<Self, CliError> {
        let mut name = OsString::from(target.as_os_str());
        name.push(".partial");
        let path = PathBuf::from(name);
        let file = File::create(&path)
            .map_err(|e| CliError::io(format!("cannot create {}", path.display()), e))?;
        Ok(PartialFile {
            file,
            path,
            target: target.to_owned(),
            renamed: false,
        })
    }

    /// Syncs the file and renames it to the target; returns the target.
    pub fn finish(mut self) -> Result<PathBuf, CliError> {
        self.file
            .sync_all()
            .map_err(|e| CliError::io(format!("cannot write {}", self.path.display()), e))?;
        std::fs::rename(&self.path, &self.target).map_err(|e| {
            CliError::io(
                format!(
                    "cannot move {} to {}",
                    self.path.display(),
                    self.target.display()
                ),
                e,
            )
        })?;
        self.renamed = true;
        Ok(self.target.clone())
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.renamed {
            // Best effort: the export already failed, and that error is the one to report.
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_file_is_renamed_only_when_finished() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("audit.ndjson");
        let mut file = PartialFile::create(&target).unwrap();
        file.file.write_all(b"{}\n").unwrap();
        assert!(!target.exists());
        assert_eq!(file.finish().unwrap(), target);
        assert_eq!(std::fs::read(&target).unwrap(), b"{}\n");

        let other = dir.path().join("failed.csv");
        let file = PartialFile::create(&other).unwrap();
        let partial = file.path.clone();
        assert_eq!(partial, dir.path().join("failed.csv.partial"));
        assert!(partial.exists());
        drop(file);
        assert!(!other.exists() && !partial.exists());
    }

    #[test]
    fn progress_waits_then_notes_once_per_interval() {
        let t0 = Instant::now();
        let mut progress = Progress::new(t0);
        assert_eq!(progress.note(10, t0 + Duration::from_millis(1999)), None);
        assert_eq!(
            progress
                .note(3 << 20, t0 + Duration::from_secs(2))
                .as_deref(),
            Some("exported 3.0 MiB in 2s ...")
        );
        assert_eq!(progress.note(4 << 20, t0 + Duration::from_secs(3)), None);
        assert!(
            progress
                .note(5 << 20, t0 + Duration::from_secs(4))
                .is_some()
        );
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(byte_size(0), "0 B");
        assert_eq!(byte_size(1023), "1023 B");
        assert_eq!(byte_size(1536), "1.5 KiB");
        assert_eq!(byte_size(5 << 30), "5.0 GiB");
    }
}
