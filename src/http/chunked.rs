//! The chunked transfer coding decoder for request bodies (RFC 9112 §7.1).
//!
//! It takes the bytes after a request head, in pieces of any size, and appends the chunk data to
//! a caller-owned buffer. Chunk extensions and trailer fields are checked and discarded, because
//! the body is forwarded with a Content-Length. It owns no buffer and stops at the final CRLF,
//! so bytes of a pipelined request stay with the caller.

use super::error::RequestError;
use super::limits::Limits;
use super::parse::is_token_byte;

/// The decoder's position inside the chunked body.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Reading the hex digits of a chunk size.
    Size { size: u64, digits: usize },
    /// Whitespace after the size, which must lead to a chunk extension (BWS before `;`).
    SizeWhitespace { size: u64 },
    /// Inside the chunk extensions, up to the CR of the chunk-size line.
    Extension { size: u64 },
    /// The chunk-size line's CR was read and its LF comes next.
    SizeLf { size: u64 },
    /// Inside chunk data, with this many bytes left.
    Data { remaining: u64 },
    /// Chunk data ended and its CR comes next.
    DataCr,
    /// Chunk data and its CR ended and the LF comes next.
    DataLf,
    /// At the start of a trailer line or of the final empty line.
    TrailerLineStart,
    /// Inside a trailer field name.
    TrailerName,
    /// Inside a trailer field value, after the colon.
    TrailerValue,
    /// A trailer line's CR was read and its LF comes next.
    TrailerLf,
    /// The final empty line's CR was read and its LF comes next.
    FinalLf,
    /// The body is complete.
    Done,
    /// A fault was found. The same error is returned on every later call.
    Failed(RequestError),
}

/// Decodes one chunked request body, fed in pieces that may split it at any byte.
#[derive(Debug, Clone)]
pub struct ChunkedDecoder {
    state: State,
    /// Bytes of the current chunk-size line so far, without its CRLF.
    line_bytes: usize,
    /// Bytes of the trailer section so far.
    trailer_bytes: usize,
    /// Body bytes decoded so far.
    body_bytes: u64,
    max_line_bytes: usize,
    max_trailer_bytes: usize,
    max_body_bytes: u64,
}

impl ChunkedDecoder {
    /// Creates a decoder at the start of a chunked body, bounded by `limits`.
    pub fn new(limits: &Limits) -> Self {
        Self {
            state: State::Size { size: 0, digits: 0 },
            line_bytes: 0,
            trailer_bytes: 0,
            body_bytes: 0,
            max_line_bytes: limits.max_chunk_extension_bytes,
            max_trailer_bytes: limits.max_trailer_bytes,
            max_body_bytes: limits.max_body_bytes,
        }
    }

    /// Returns whether the whole body, including the trailer section and the final CRLF, has
    /// been decoded.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Returns the number of body bytes decoded so far.
    pub fn body_bytes(&self) -> u64 {
        self.body_bytes
    }

    /// Decodes as much of `input` as possible and appends the chunk data to `out`.
    ///
    /// Returns the number of bytes of `input` consumed and whether the body is complete. Once it
    /// is complete, nothing past the final CRLF is consumed, and later calls return `(0, true)`.
    ///
    /// # Errors
    ///
    /// Returns a [`RequestError`] for a malformed chunk-size line, chunk data not followed by
    /// CRLF, a malformed trailer field, or a chunk-size line, trailer section or body over its
    /// limit. After an error the decoder returns the same error on every call.
    pub fn decode(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
    ) -> Result<(usize, bool), RequestError> {
        let mut consumed = 0;
        while let Some(rest) = input.get(consumed..).filter(|rest| !rest.is_empty()) {
            match &self.state {
                State::Done => break,
                State::Failed(error) => return Err(error.clone()),
                State::Data { remaining } => {
                    let remaining = *remaining;
                    consumed += self.take_data(remaining, rest, out);
                }
                _ => {
                    if let Some(&byte) = rest.first() {
                        self.on_byte(byte)?;
                        consumed += 1;
                    }
                }
            }
        }

        if let State::Failed(error) = &self.state {
            return Err(error.clone());
        }
        Ok((consumed, self.is_done()))
    }

    /// Appends up to `remaining` bytes of chunk data from `rest` and returns how many it took.
    fn take_data(&mut self, remaining: u64, rest: &[u8], out: &mut Vec<u8>) -> usize {
        let (take, left) = copy_body_bytes(remaining, rest, out);
        self.body_bytes = self.body_bytes.saturating_add(remaining - left);
        self.state = match left {
            0 => State::DataCr,
            left => State::Data { remaining: left },
        };
        take
    }

    /// Advances the state by one byte outside chunk data, recording a fault in the state.
    fn on_byte(&mut self, byte: u8) -> Result<(), RequestError> {
        let next = match self.state {
            State::Size { size, digits } => self.on_size_byte(size, digits, byte),
            State::SizeWhitespace { size } => self.on_size_whitespace_byte(size, byte),
            State::Extension { size } => self.on_extension_byte(size, byte),
            State::SizeLf { size } => self.on_size_line_end(size, byte),
            State::DataCr => match byte {
                b'\r' => Ok(State::DataLf),
                _ => Err(RequestError::ChunkNotTerminated),
            },
            State::DataLf => match byte {
                b'\n' => {
                    self.line_bytes = 0;
                    Ok(State::Size { size: 0, digits: 0 })
                }
                _ => Err(RequestError::ChunkNotTerminated),
            },
            State::TrailerLineStart
            | State::TrailerName
            | State::TrailerValue
            | State::TrailerLf
            | State::FinalLf => self.on_trailer_byte(byte),
            State::Data { .. } | State::Done | State::Failed(_) => Ok(self.state.clone()),
        };

        match next {
            Ok(state) => {
                self.state = state;
                Ok(())
            }
            Err(error) => {
                self.state = State::Failed(error.clone());
                Err(error)
            }
        }
    }

    /// Counts one byte of the chunk-size line against its limit.
    fn count_line_byte(&mut self) -> Result<(), RequestError> {
        self.line_bytes += 1;
        if self.line_bytes > self.max_line_bytes {
            return Err(RequestError::ChunkExtensionTooLong {
                max: self.max_line_bytes,
            });
        }
        Ok(())
    }

    /// RFC 9112 §7.1: `chunk-size = 1*HEXDIG`, then extensions or CRLF. No sign, no `0x`.
    fn on_size_byte(&mut self, size: u64, digits: usize, byte: u8) -> Result<State, RequestError> {
        if byte == b'\n' {
            return Err(RequestError::BareLf);
        }
        if let Some(value) = hex_value(byte) {
            self.count_line_byte()?;
            let size = size
                .checked_mul(16)
                .and_then(|size| size.checked_add(value))
                .ok_or(RequestError::ChunkSizeOverflow)?;
            return Ok(State::Size {
                size,
                digits: digits + 1,
            });
        }
        if digits == 0 {
            return Err(RequestError::InvalidChunkSize);
        }

        match byte {
            b'\r' => Ok(State::SizeLf { size }),
            b';' => {
                self.count_line_byte()?;
                Ok(State::Extension { size })
            }
            b' ' | b'\t' => {
                self.count_line_byte()?;
                Ok(State::SizeWhitespace { size })
            }
            _ => Err(RequestError::InvalidChunkSize),
        }
    }

    fn on_size_whitespace_byte(&mut self, size: u64, byte: u8) -> Result<State, RequestError> {
        self.count_line_byte()?;
        match byte {
            b' ' | b'\t' => Ok(State::SizeWhitespace { size }),
            b';' => Ok(State::Extension { size }),
            b'\n' => Err(RequestError::BareLf),
            _ => Err(RequestError::InvalidChunkSize),
        }
    }

    /// Accepts the bytes a chunk extension may contain (tokens, quoted strings, `=`, `;` and
    /// whitespace) up to the CR.
    // NOTE: only the byte set is checked, not the `chunk-ext` grammar. Extensions are discarded
    // and the line must still end in CRLF, so a malformed one cannot change the framing.
    fn on_extension_byte(&mut self, size: u64, byte: u8) -> Result<State, RequestError> {
        match byte {
            b'\r' => Ok(State::SizeLf { size }),
            b'\n' => Err(RequestError::BareLf),
            b'\t' | b' '..=b'~' | 0x80..=0xff => {
                self.count_line_byte()?;
                Ok(State::Extension { size })
            }
            _ => Err(RequestError::InvalidChunkExtension),
        }
    }

    /// Handles the LF of a chunk-size line: the start of chunk data, or of the trailer section
    /// after the last chunk.
    fn on_size_line_end(&mut self, size: u64, byte: u8) -> Result<State, RequestError> {
        if byte != b'\n' {
            return Err(RequestError::BareCr);
        }
        if size == 0 {
            return Ok(State::TrailerLineStart);
        }
        // Rejects an oversized chunk before any of its data is buffered.
        let total = self.body_bytes.checked_add(size);
        if total.is_none_or(|total| total > self.max_body_bytes) {
            return Err(RequestError::BodyTooLarge {
                max: self.max_body_bytes,
            });
        }
        Ok(State::Data { remaining: size })
    }

    /// Checks trailer lines as header fields (RFC 9112 §7.1.2) and the final CRLF.
    fn on_trailer_byte(&mut self, byte: u8) -> Result<State, RequestError> {
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.max_trailer_bytes {
            return Err(RequestError::TrailersTooLarge {
                max: self.max_trailer_bytes,
            });
        }
        if byte == b'\n' && !matches!(self.state, State::TrailerLf | State::FinalLf) {
            return Err(RequestError::BareLf);
        }
        if byte == 0 {
            return Err(RequestError::NulByte);
        }

        match (&self.state, byte) {
            (State::TrailerLineStart, b'\r') => Ok(State::FinalLf),
            (State::TrailerLineStart, b' ' | b'\t') => Err(RequestError::ObsoleteLineFolding),
            (State::TrailerLineStart | State::TrailerName, byte) if is_token_byte(byte) => {
                Ok(State::TrailerName)
            }
            (State::TrailerName, b':') => Ok(State::TrailerValue),
            (State::TrailerName, b' ' | b'\t') => Err(RequestError::WhitespaceBeforeColon),
            (State::TrailerLineStart | State::TrailerName, _) => {
                Err(RequestError::InvalidHeaderName)
            }
            (State::TrailerValue, b'\r') => Ok(State::TrailerLf),
            (State::TrailerValue, b'\t' | b' '..=b'~' | 0x80..=0xff) => Ok(State::TrailerValue),
            (State::TrailerValue, _) => Err(RequestError::InvalidHeaderValue),
            (State::TrailerLf, b'\n') => Ok(State::TrailerLineStart),
            (State::FinalLf, b'\n') => Ok(State::Done),
            _ => Err(RequestError::BareCr),
        }
    }
}

/// Appends up to `remaining` bytes of `input` to `out`. Returns the number of bytes copied and
/// the number still expected after them.
pub(crate) fn copy_body_bytes(remaining: u64, input: &[u8], out: &mut Vec<u8>) -> (usize, u64) {
    let take =
        usize::try_from(remaining).map_or(input.len(), |remaining| remaining.min(input.len()));
    out.extend_from_slice(input.get(..take).unwrap_or_default());
    // `take` is at most `remaining`, so it fits in a u64 and the subtraction cannot underflow.
    let left = remaining.saturating_sub(u64::try_from(take).unwrap_or(remaining));
    (take, left)
}

fn hex_value(byte: u8) -> Option<u64> {
    char::from(byte).to_digit(16).map(u64::from)
}

#[cfg(test)]
#[path = "chunked_tests.rs"]
mod tests;
