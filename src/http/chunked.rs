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
    Extension { size: u64, part: ExtensionPart },
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

/// The position inside the chunk extensions of a chunk-size line, following RFC 9112 §7.1.1:
///
/// ```text
/// chunk-ext      = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )
/// chunk-ext-name = token
/// chunk-ext-val  = token / quoted-string
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ExtensionPart {
    /// After a `;` and any BWS, where a name must start.
    NameStart,
    /// Inside a name.
    Name,
    /// BWS after a name, which must lead to `=` or `;`.
    NameWhitespace,
    /// After a `=` and any BWS, where a value must start.
    ValueStart,
    /// Inside a token value.
    TokenValue,
    /// Inside a quoted-string value.
    QuotedValue,
    /// After a backslash inside a quoted-string value, where the escaped byte comes next.
    QuotedPair,
    /// Right after the closing quote of a quoted-string value.
    QuotedEnd,
    /// BWS after a value, which must lead to `;`.
    ValueWhitespace,
}

impl ExtensionPart {
    /// Returns whether the chunk-size line may end here, which is only right after a name or a
    /// value. RFC 9112 §7.1.1 allows BWS only before `;` and around `=`, not before the CRLF.
    fn may_end_line(self) -> bool {
        matches!(self, Self::Name | Self::TokenValue | Self::QuotedEnd)
    }

    /// Returns the position after `byte`, or `None` if the grammar does not allow `byte` here.
    /// CR and LF are never allowed, because the caller handles the line end.
    fn next(self, byte: u8) -> Option<Self> {
        let is_whitespace = matches!(byte, b' ' | b'\t');
        match self {
            Self::NameStart if is_whitespace => Some(Self::NameStart),
            Self::NameStart | Self::Name if is_token_byte(byte) => Some(Self::Name),
            Self::Name | Self::NameWhitespace if is_whitespace => Some(Self::NameWhitespace),
            Self::Name | Self::NameWhitespace if byte == b'=' => Some(Self::ValueStart),
            Self::ValueStart if is_whitespace => Some(Self::ValueStart),
            Self::ValueStart if byte == b'"' => Some(Self::QuotedValue),
            Self::ValueStart | Self::TokenValue if is_token_byte(byte) => Some(Self::TokenValue),
            Self::QuotedValue => match byte {
                b'"' => Some(Self::QuotedEnd),
                b'\\' => Some(Self::QuotedPair),
                _ if is_qdtext(byte) => Some(Self::QuotedValue),
                _ => None,
            },
            Self::QuotedPair if is_quoted_pair_byte(byte) => Some(Self::QuotedValue),
            Self::TokenValue | Self::QuotedEnd | Self::ValueWhitespace if is_whitespace => {
                Some(Self::ValueWhitespace)
            }
            Self::Name
            | Self::NameWhitespace
            | Self::TokenValue
            | Self::QuotedEnd
            | Self::ValueWhitespace
                if byte == b';' =>
            {
                Some(Self::NameStart)
            }
            _ => None,
        }
    }
}

/// Returns whether `byte` may appear unescaped in a quoted string. RFC 9110 §5.6.4:
/// `qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text`.
fn is_qdtext(byte: u8) -> bool {
    matches!(byte, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// Returns whether `byte` may follow the backslash of a quoted-pair. RFC 9110 §5.6.4:
/// `quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text )`.
fn is_quoted_pair_byte(byte: u8) -> bool {
    matches!(byte, b'\t' | b' '..=b'~' | 0x80..=0xff)
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
            State::Extension { size, part } => self.on_extension_byte(size, part, byte),
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
                Ok(State::Extension {
                    size,
                    part: ExtensionPart::NameStart,
                })
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
            b';' => Ok(State::Extension {
                size,
                part: ExtensionPart::NameStart,
            }),
            b'\n' => Err(RequestError::BareLf),
            _ => Err(RequestError::InvalidChunkSize),
        }
    }

    /// Checks one byte of the chunk extensions against their grammar (RFC 9112 §7.1.1) and
    /// ends the chunk-size line at a CR.
    fn on_extension_byte(
        &mut self,
        size: u64,
        part: ExtensionPart,
        byte: u8,
    ) -> Result<State, RequestError> {
        match byte {
            b'\r' if part.may_end_line() => return Ok(State::SizeLf { size }),
            b'\n' => return Err(RequestError::BareLf),
            _ => {}
        }

        let part = part.next(byte).ok_or(RequestError::InvalidChunkExtension)?;
        self.count_line_byte()?;
        Ok(State::Extension { size, part })
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
