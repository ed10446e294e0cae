//! A message body held in memory up to a threshold and in an unnamed temporary file beyond it,
//! so that buffering whole requests and responses costs bounded memory per connection.
//!
//! The decoders append to [`Spool::memory`]; the connection calls [`Spool::spill_if_full`] after
//! each step, which moves the bytes to the file once they pass the threshold. The body is the
//! file's bytes followed by what is still in memory.

use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::client_io::{ClientIo, StreamError};
use crate::rt::{self, BufResult};

/// Bytes read back from a temporary file per step.
const READ_BACK_CHUNK: usize = 256 * 1024;

pub struct Spool {
    /// Bytes not yet moved to the file. Decoders append here.
    pub memory: Vec<u8>,
    file: Option<compio::fs::File>,
    /// Bytes already in the file.
    file_len: u64,
    threshold: usize,
}

impl Spool {
    pub fn new(threshold: usize) -> Spool {
        Spool { memory: Vec::new(), file: None, file_len: 0, threshold }
    }

    /// Total body length so far.
    pub fn len(&self) -> u64 {
        self.file_len + self.memory.len() as u64
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn is_spilled(&self) -> bool {
        self.file.is_some()
    }

    /// Empties the spool for the next message; a temporary file is closed and so freed.
    pub fn clear(&mut self) {
        self.memory.clear();
        self.file = None;
        self.file_len = 0;
        // A large body must not keep its memory for the rest of a keep-alive connection.
        if self.memory.capacity() > self.threshold {
            self.memory = Vec::new();
        }
    }

    /// Moves the in-memory bytes to the temporary file once they reach the threshold.
    ///
    /// # Errors
    /// Fails when the temporary file cannot be created or written (a full disk, for example).
    pub async fn spill_if_full(&mut self, temp_dir: &Path) -> io::Result<()> {
        if self.memory.len() < self.threshold {
            return Ok(());
        }
        if self.file.is_none() {
            self.file = Some(rt::runtime_file(create_unnamed_file(temp_dir)?));
        }
        let Some(file) = self.file.as_ref() else { return Ok(()) };
        let bytes = std::mem::take(&mut self.memory);
        let length = bytes.len() as u64;
        let BufResult(result, mut bytes) = compio::io::AsyncWriteAtExt::write_all_at(&mut &*file, bytes, self.file_len).await;
        result?;
        self.file_len += length;
        bytes.clear();
        self.memory = bytes;
        Ok(())
    }

    /// Calls `sink` with the body in order, in pieces of at most [`READ_BACK_CHUNK`] bytes from
    /// the file, then the bytes in memory.
    ///
    /// # Errors
    /// Returns the first error of reading the file or of `sink`.
    pub async fn for_each_piece<E: From<io::Error>>(
        &self,
        mut sink: impl AsyncSink<E>,
    ) -> Result<(), E> {
        if let Some(file) = self.file.as_ref() {
            let mut position = 0u64;
            let mut buffer = Vec::with_capacity(READ_BACK_CHUNK);
            while position < self.file_len {
                let want = usize::try_from(self.file_len - position).unwrap_or(READ_BACK_CHUNK).min(READ_BACK_CHUNK);
                buffer.clear();
                let BufResult(result, returned) = compio::io::AsyncReadAt::read_at(file, buffer, position).await;
                buffer = returned;
                let read = result?;
                if read == 0 {
                    return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "temporary body file is shorter than written").into());
                }
                buffer.truncate(read.min(want));
                position += buffer.len() as u64;
                buffer = sink.accept(buffer).await?;
            }
        }
        if !self.memory.is_empty() {
            sink.accept(self.memory.clone()).await?;
        }
        Ok(())
    }

    /// Sends the whole body to the client after what `io` has queued, counting the body bytes
    /// sent into `sent` as [`ClientIo::send_body`] does.
    ///
    /// # Errors
    /// A client write failure, or a temporary file read failure as `StreamError::Io`.
    pub async fn send_to_client(&self, io: &mut ClientIo, sent: &mut u64) -> Result<(), StreamError> {
        if !self.is_spilled() {
            return io.send_body(&self.memory, &[], sent).await;
        }
        self.for_each_piece(ClientSink { io, sent }).await
    }
}

/// Destination of the pieces [`Spool::for_each_piece`] delivers. It gets each buffer by value and returns one
/// for the next piece, so the owned-buffer writes of the runtime need no copy.
pub trait AsyncSink<E> {
    async fn accept(&mut self, piece: Vec<u8>) -> Result<Vec<u8>, E>;
}

struct ClientSink<'a> {
    io: &'a mut ClientIo,
    sent: &'a mut u64,
}

impl AsyncSink<StreamError> for ClientSink<'_> {
    async fn accept(&mut self, piece: Vec<u8>) -> Result<Vec<u8>, StreamError> {
        self.io.send_body(&piece, &[], self.sent).await?;
        Ok(piece)
    }
}

/// Creates a file in `dir` that has no name, so it disappears when closed, also after a crash.
/// Falls back to a named file removed at once where O_TMPFILE is unsupported (some file systems).
pub(crate) fn create_unnamed_file(dir: &Path) -> io::Result<std::fs::File> {
    let unnamed = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_TMPFILE | libc::O_CLOEXEC)
        .mode(0o600)
        .open(dir);
    match unnamed {
        Ok(file) => Ok(file),
        Err(err) if matches!(err.raw_os_error(), Some(libc::EOPNOTSUPP) | Some(libc::EISDIR) | Some(libc::EINVAL)) => {
            let path = dir.join(format!("ringfront-body-{}-{:x}", std::process::id(), rand_suffix()));
            let file = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)?;
            std::fs::remove_file(&path)?;
            Ok(file)
        }
        Err(err) => Err(err),
    }
}

/// Returns a value that differs between calls, for temporary file names.
fn rand_suffix() -> u64 {
    use std::hash::{BuildHasher, RandomState};
    RandomState::new().hash_one(std::time::Instant::now())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unnamed_file_has_no_directory_entry() {
        let dir = std::env::temp_dir().join(format!("ringfront-spool-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = create_unnamed_file(&dir).unwrap();
        assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 0);
        drop(file);
        std::fs::remove_dir(&dir).unwrap();
    }

    #[test]
    fn spool_spills_and_reads_back() {
        let runtime = crate::rt::build_worker_runtime(crate::config::ServerSettings::default().receive_buffers).unwrap();
        runtime.block_on(async {
            let dir = std::env::temp_dir();
            let mut spool = Spool::new(1000);
            let mut expected = Vec::new();
            for round in 0..10u8 {
                let piece = vec![round; 700];
                spool.memory.extend_from_slice(&piece);
                expected.extend_from_slice(&piece);
                spool.spill_if_full(&dir).await.unwrap();
            }
            assert!(spool.is_spilled());
            assert_eq!(spool.len(), 7000);

            struct Collect(Vec<u8>);
            impl AsyncSink<io::Error> for &mut Collect {
                async fn accept(&mut self, piece: Vec<u8>) -> Result<Vec<u8>, io::Error> {
                    self.0.extend_from_slice(&piece);
                    Ok(piece)
                }
            }
            let mut collected = Collect(Vec::new());
            spool.for_each_piece(&mut collected).await.unwrap();
            assert_eq!(collected.0, expected);

            spool.clear();
            assert!(spool.is_empty());
            assert!(!spool.is_spilled());
        });
    }
}
