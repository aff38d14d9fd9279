//! Blob bodies sent from read-only memory maps of the blob file, one window at a time:
//! the bytes go from the page cache to the socket with no copy in this process, and a
//! response holds at most one window mapped, so a large blob costs little memory.

use std::fs::File;
use std::io;
use std::sync::Arc;

use axum::body::Body;
use bytes::Bytes;
use memmap2::MmapOptions;

/// Bytes mapped at a time: few mappings and task hops per blob, bounded memory per response.
pub const WINDOW: u64 = 4 << 20;

/// The bytes `next..end` of a blob file, still to be sent.
pub struct BlobWindows {
    file: Arc<File>,
    /// The first window, mapped when the blob was opened (no second hop for small blobs).
    first: Option<Bytes>,
    next: u64,
    end: u64,
}

impl BlobWindows {
    /// Prepares to send bytes `start..end` of `file` and maps the first window. Blocks on
    /// the disk when the pages are not cached: call it on the blocking pool.
    pub fn open(file: File, start: u64, end: u64) -> io::Result<BlobWindows> {
        let mut windows = BlobWindows { file: Arc::new(file), first: None, next: start, end };
        if let Some((offset, len)) = windows.advance() {
            windows.first = Some(map(&windows.file, offset, len)?);
        }
        Ok(windows)
    }

    /// The offset and length of the next window. Windows end on multiples of [`WINDOW`]
    /// in the file, so only the first one of a range starts within a page.
    fn advance(&mut self) -> Option<(u64, usize)> {
        if self.next >= self.end {
            return None;
        }
        let stop = (self.next / WINDOW + 1).saturating_mul(WINDOW).min(self.end);
        let window = (self.next, (stop - self.next) as usize);
        self.next = stop;
        Some(window)
    }

    /// The response body: each window is mapped on the blocking pool when the connection
    /// is ready for it, and unmapped as soon as it has been written to the socket.
    pub fn into_body(self) -> Body {
        let stream = futures_util::stream::unfold(self, |mut windows| async move {
            if let Some(first) = windows.first.take() {
                return Some((Ok(first), windows));
            }
            let (offset, len) = windows.advance()?;
            let file = windows.file.clone();
            let mapped = tokio::task::spawn_blocking(move || map(&file, offset, len))
                .await
                .unwrap_or_else(|e| Err(io::Error::other(format!("mapping a blob window failed: {e}"))));
            if mapped.is_err() {
                // The body ends with the error: the client sees a cut response.
                windows.next = windows.end;
            }
            Some((mapped, windows))
        });
        Body::from_stream(stream)
    }
}

/// Maps `len` bytes of `file` from `offset`, read-only and populated up front
/// (MAP_POPULATE), so sending them does not fault page by page.
fn map(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    if len == 0 {
        return Ok(Bytes::new());
    }
    // SAFETY: the mapping is read-only and private to this window, and the file does not
    // change while it is mapped: a blob file is written under tmp/, fsynced and renamed
    // into blobs/ (storage::commit_blob_locked, fsutil::write_atomic), and nothing opens
    // it for writing after that (storage's touch() only sets its time). Deleting a blob
    // (the garbage collector's storage::remove_blob) unlinks the name; the inode and its
    // pages live on until the last mapping is gone, so a window being sent stays valid.
    // Truncating a blob file from outside the registry would make reads of the mapping
    // fault; the content store is the registry's alone while it runs (storage's lock).
    let mapped = unsafe { MmapOptions::new().offset(offset).len(len).populate().map(file)? };
    Ok(Bytes::from_owner(mapped))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use futures_util::StreamExt;

    use super::*;

    fn blob(len: usize) -> (tempfile::NamedTempFile, Vec<u8>) {
        let data: Vec<u8> = (0..len).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&data).unwrap();
        (f, data)
    }

    /// The chunks of a body, in order.
    async fn chunks(windows: BlobWindows) -> Vec<Bytes> {
        let mut stream = windows.into_body().into_data_stream();
        let mut out = Vec::new();
        while let Some(chunk) = stream.next().await {
            out.push(chunk.unwrap());
        }
        out
    }

    #[tokio::test]
    async fn windows_cover_the_range_and_end_on_window_multiples() {
        let size = 2 * WINDOW as usize + 12_345;
        let (f, data) = blob(size);
        for (start, end) in [(0, size), (1, size), (WINDOW as usize - 1, WINDOW as usize + 1), (4097, 3 * 4096), (size - 1, size), (7, 7)] {
            let windows = BlobWindows::open(f.reopen().unwrap(), start as u64, end as u64).unwrap();
            let got = chunks(windows).await;
            assert!(got.iter().all(|c| c.len() as u64 <= WINDOW), "{start}..{end}");
            let mut pos = start;
            for c in &got[..got.len().saturating_sub(1)] {
                pos += c.len();
                assert_eq!(pos as u64 % WINDOW, 0, "a window of {start}..{end} ends at {pos}");
            }
            assert_eq!(got.concat(), &data[start..end], "{start}..{end}");
        }
        let whole = chunks(BlobWindows::open(f.reopen().unwrap(), 0, size as u64).unwrap()).await;
        assert_eq!(whole.len(), 3);
    }

    #[tokio::test]
    async fn an_unlinked_blob_is_still_sent_whole() {
        let size = WINDOW as usize + 100;
        let (f, data) = blob(size);
        let windows = BlobWindows::open(f.reopen().unwrap(), 0, size as u64).unwrap();
        // As the garbage collector deletes: the name goes, open files and mappings stay.
        let path = f.into_temp_path();
        path.close().unwrap();
        assert_eq!(chunks(windows).await.concat(), data);
    }
}
