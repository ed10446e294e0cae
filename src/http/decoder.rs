//! Reading requests one after another from a connection's byte stream.
//!
//! The decoder owns no buffer and performs no I/O. The connection keeps the bytes it has read,
//! passes the unconsumed ones to [`RequestDecoder::decode`] and drops what was consumed.

use super::chunked::{ChunkedDecoder, copy_body_bytes};
use super::error::RequestError;
use super::head_buffers::HeadBuffers;
use super::limits::Limits;
use super::parse::HeadScanner;
use super::request::{BodyFraming, RequestHead};

/// The outcome of one call to [`RequestDecoder::decode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The input ended before any progress. Read more bytes, append them to the unconsumed
    /// ones and call again.
    NeedMore,
    /// A request head was parsed. The decoder keeps a copy, see [`RequestDecoder::head`].
    Head(RequestHead),
    /// Body bytes were consumed, but the body is not complete yet.
    Body,
    /// The request, head and body, is complete.
    Complete,
}

#[derive(Debug, Clone)]
enum State {
    /// Waiting for a complete head.
    Head(HeadScanner),
    /// Reading a body of known length, with this many bytes left.
    Length { remaining: u64 },
    /// Reading a chunked body.
    Chunked(ChunkedDecoder),
    /// The request is complete and [`RequestDecoder::reset`] has not been called yet.
    Done,
    /// A fault was found. The same error is returned on every later call.
    Failed(RequestError),
}

/// Decodes the requests of one connection: head, then body, then the next request.
///
/// # Call order
///
/// 1. Call [`decode`](Self::decode) with every unconsumed byte read so far and remove the
///    consumed prefix from the buffer. The bytes passed must start with the bytes left
///    unconsumed by the previous call, because the head scan resumes where it stopped.
/// 2. On [`Event::NeedMore`], read more bytes and go back to step 1.
/// 3. On [`Event::Head`], decide on the request: send `100 Continue` if the head requests it,
///    or reject it. Then call `decode` again, even with no new bytes, because a request without
///    a body completes on that call.
/// 4. On [`Event::Body`], call `decode` again with the remaining bytes, or read more.
/// 5. On [`Event::Complete`], the body passed to `decode` contains the whole request body. Handle
///    the request, then call [`reset`](Self::reset) before the next one. Bytes left in the
///    buffer belong to the next, pipelined request. Passing the finished head to
///    [`recycle`](Self::recycle) lets the next head reuse its buffers instead of allocating.
///
/// On an error, send an error response with [`RequestError::status`] and close the connection.
/// At end of stream, call [`finish_on_eof`](Self::finish_on_eof) to tell an idle close from a
/// truncated request.
///
/// The decoder never consumes more body bytes than the framing declares. While waiting for a
/// head it consumes nothing, so the caller's buffer grows up to `max_head_bytes` plus one read
/// before the head is parsed or rejected.
#[derive(Debug, Clone)]
pub struct RequestDecoder {
    limits: Limits,
    state: State,
    has_head: bool,
    /// Whether the last call in the head state saw bytes of an incomplete head.
    partial_head: bool,
    /// Buffers of recycled heads, filled by the next head parsed.
    buffers: HeadBuffers,
}

impl RequestDecoder {
    /// Creates a decoder waiting for the first request head.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            state: State::Head(HeadScanner::default()),
            has_head: false,
            partial_head: false,
            buffers: HeadBuffers::default(),
        }
    }

    /// Returns the limits this decoder enforces.
    pub fn limits(&self) -> &Limits {
        &self.limits
    }

    /// Returns whether [`Event::Head`] was returned for the current request, until
    /// [`reset`](Self::reset). The head itself goes to the caller with the event: keeping a copy
    /// here would cost about ten allocations per request.
    pub fn has_head(&self) -> bool {
        self.has_head
    }

    /// Returns whether the decoder waits for a new request with no bytes of it seen yet, so a
    /// close of the connection now loses nothing.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Head(_)) && !self.partial_head
    }

    /// Consumes from `input`, appending body bytes to `body`.
    ///
    /// Returns the number of bytes of `input` consumed and the [`Event`] they produced. See the
    /// type documentation for the call order.
    ///
    /// # Errors
    ///
    /// Returns the [`RequestError`] of a malformed or oversized head or body. After an error the
    /// decoder returns the same error on every call.
    pub fn decode(
        &mut self,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<(usize, Event), RequestError> {
        let result = match &mut self.state {
            State::Head(_) => self.decode_head(input),
            State::Length { remaining } => {
                let remaining = *remaining;
                Ok(self.decode_length(remaining, input, body))
            }
            State::Chunked(chunked) => Self::decode_chunked(chunked, input, body),
            State::Done => return Ok((0, Event::Complete)),
            State::Failed(error) => return Err(error.clone()),
        };

        match result {
            Ok((consumed, event)) => {
                if event == Event::Complete {
                    self.state = State::Done;
                }
                Ok((consumed, event))
            }
            Err(error) => {
                self.state = State::Failed(error.clone());
                Err(error)
            }
        }
    }

    /// Prepares for the next request on the same connection after [`Event::Complete`].
    ///
    /// Calling it in the middle of a request drops that request's state, and the bytes that
    /// follow are then read as a new request head.
    pub fn reset(&mut self) {
        self.state = State::Head(HeadScanner::default());
        self.has_head = false;
        self.partial_head = false;
    }

    /// Takes back a head that the caller has finished with, so the next head parsed reuses its
    /// string and list buffers. On a keep-alive connection whose requests have heads of a
    /// similar shape, parsing then allocates nothing.
    ///
    /// The decoder keeps at most `max_headers` header entries and
    /// [`MAX_RECYCLED_HEAD_BYTES`](super::MAX_RECYCLED_HEAD_BYTES) of method, target, name and
    /// value capacity, and frees the rest, so an idle connection does not hold a large head.
    pub fn recycle(&mut self, head: RequestHead) {
        self.buffers.recycle(head, self.limits.max_headers);
    }

    /// Classifies the end of the stream from the client.
    ///
    /// # Errors
    ///
    /// Returns [`RequestError::UnexpectedEof`] if the stream ended inside a request head or
    /// body, or the earlier error if decoding already failed. Returns `Ok` between requests,
    /// which is a normal close of an idle keep-alive connection.
    pub fn finish_on_eof(&self) -> Result<(), RequestError> {
        match &self.state {
            State::Head(_) if !self.partial_head => Ok(()),
            State::Done => Ok(()),
            State::Failed(error) => Err(error.clone()),
            State::Head(_) | State::Length { .. } | State::Chunked(_) => {
                Err(RequestError::UnexpectedEof)
            }
        }
    }

    fn decode_head(&mut self, input: &[u8]) -> Result<(usize, Event), RequestError> {
        let State::Head(scanner) = &mut self.state else {
            return Ok((0, Event::NeedMore));
        };
        let Some((head, used)) = scanner.parse_into(input, &self.limits, &mut self.buffers)? else {
            self.partial_head = !input.is_empty();
            return Ok((0, Event::NeedMore));
        };

        self.partial_head = false;
        self.state = match head.framing {
            BodyFraming::Empty => State::Length { remaining: 0 },
            BodyFraming::Length(length) => State::Length { remaining: length },
            BodyFraming::Chunked => State::Chunked(ChunkedDecoder::new(&self.limits)),
        };
        self.has_head = true;
        Ok((used, Event::Head(head)))
    }

    fn decode_length(
        &mut self,
        remaining: u64,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> (usize, Event) {
        if remaining == 0 {
            return (0, Event::Complete);
        }
        if input.is_empty() {
            return (0, Event::NeedMore);
        }

        let (take, remaining) = copy_body_bytes(remaining, input, body);
        self.state = State::Length { remaining };
        if remaining == 0 {
            (take, Event::Complete)
        } else {
            (take, Event::Body)
        }
    }

    fn decode_chunked(
        chunked: &mut ChunkedDecoder,
        input: &[u8],
        body: &mut Vec<u8>,
    ) -> Result<(usize, Event), RequestError> {
        let (consumed, done) = chunked.decode(input, body)?;
        let event = if done {
            Event::Complete
        } else if consumed > 0 {
            Event::Body
        } else {
            Event::NeedMore
        };
        Ok((consumed, event))
    }
}

#[cfg(test)]
#[path = "decoder_tests.rs"]
mod tests;
