use super::*;

fn decode_whole(input: &[u8], limits: &Limits) -> Result<(Vec<u8>, usize, bool), RequestError> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut out = Vec::new();
    let (consumed, done) = decoder.decode(input, &mut out)?;
    Ok((out, consumed, done))
}

/// Feeds `input` in pieces of the given sizes, repeating the last size, and returns the output,
/// the bytes consumed in total and whether the body completed.
fn decode_in_pieces(
    input: &[u8],
    piece_sizes: &[usize],
    limits: &Limits,
) -> Result<(Vec<u8>, usize, bool), RequestError> {
    let mut decoder = ChunkedDecoder::new(limits);
    let mut out = Vec::new();
    let mut offset = 0;
    let mut sizes = piece_sizes
        .iter()
        .copied()
        .chain(std::iter::repeat(*piece_sizes.last().unwrap_or(&1)));
    let mut consumed_total = 0;
    let mut pending = Vec::new();
    while offset < input.len() {
        let size = sizes.next().unwrap_or(1).max(1);
        let end = (offset + size).min(input.len());
        pending.extend_from_slice(input.get(offset..end).unwrap_or_default());
        offset = end;
        let (consumed, done) = decoder.decode(&pending, &mut out)?;
        pending.drain(..consumed);
        consumed_total += consumed;
        if done {
            return Ok((out, consumed_total, true));
        }
    }
    Ok((out, consumed_total, decoder.is_done()))
}

const WIKIPEDIA: &[u8] = b"4\r\nWiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n\r\n";

#[test]
fn decode_whole_body() {
    let (out, consumed, done) = decode_whole(WIKIPEDIA, &Limits::default()).unwrap();
    assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.");
    assert_eq!(consumed, WIKIPEDIA.len());
    assert!(done);
}

#[test]
fn decode_stops_at_final_crlf() {
    let mut input = WIKIPEDIA.to_vec();
    input.extend_from_slice(b"GET / HTTP/1.1\r\n");
    let (_, consumed, done) = decode_whole(&input, &Limits::default()).unwrap();
    assert_eq!(consumed, WIKIPEDIA.len());
    assert!(done);
}

#[test]
fn decode_split_at_every_byte() {
    let (expected, _, _) = decode_whole(WIKIPEDIA, &Limits::default()).unwrap();
    for split in 0..=WIKIPEDIA.len() {
        let (first, second) = WIKIPEDIA.split_at(split);
        let mut decoder = ChunkedDecoder::new(&Limits::default());
        let mut out = Vec::new();
        let (consumed, first_done) = decoder.decode(first, &mut out).unwrap();
        assert_eq!(consumed, first.len(), "split {split}");
        assert_eq!(first_done, split == WIKIPEDIA.len(), "split {split}");
        let (consumed, done) = decoder.decode(second, &mut out).unwrap();
        assert_eq!(consumed, second.len(), "split {split}");
        assert!(done, "split {split}");
        assert_eq!(out, expected, "split {split}");
    }
}

#[test]
fn decode_byte_by_byte() {
    for sizes in [&[1usize][..], &[2], &[3], &[7], &[1, 5, 2]] {
        let (out, consumed, done) = decode_in_pieces(WIKIPEDIA, sizes, &Limits::default()).unwrap();
        assert_eq!(out, b"Wikipedia in\r\n\r\nchunks.", "{sizes:?}");
        assert_eq!(consumed, WIKIPEDIA.len(), "{sizes:?}");
        assert!(done, "{sizes:?}");
    }
}

#[test]
fn accepted_body_cases() {
    let cases: &[(&[u8], &[u8])] = &[
        (b"0\r\n\r\n", b""),
        (b"000\r\n\r\n", b""),
        (b"a\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"0000A\r\n0123456789\r\n0\r\n\r\n", b"0123456789"),
        (b"1;name\r\nx\r\n0\r\n\r\n", b"x"),
        (b"1;name=value\r\nx\r\n0\r\n\r\n", b"x"),
        (b"1;a=b;c=\"q d\"\r\nx\r\n0;last\r\n\r\n", b"x"),
        (b"1 ;a=b\r\nx\r\n0\r\n\r\n", b"x"),
        (b"1\t;a\r\nx\r\n0\r\n\r\n", b"x"),
        (b"1\r\nx\r\n0\r\nX-Trailer: v\r\n\r\n", b"x"),
        (b"1\r\nx\r\n0\r\nA: 1\r\nB:\r\nC: caf\xc3\xa9\r\n\r\n", b"x"),
        (b"2\r\n\r\n\r\n0\r\n\r\n", b"\r\n"),
    ];
    for (input, expected) in cases {
        let result = decode_whole(input, &Limits::default());
        assert_eq!(
            result,
            Ok((expected.to_vec(), input.len(), true)),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

#[test]
fn rejected_body_cases() {
    let cases: &[(&[u8], RequestError)] = &[
        (b"\r\n", RequestError::InvalidChunkSize),
        (b";a\r\n", RequestError::InvalidChunkSize),
        (b"0x4\r\nWiki\r\n0\r\n\r\n", RequestError::InvalidChunkSize),
        (b"+4\r\nWiki\r\n0\r\n\r\n", RequestError::InvalidChunkSize),
        (b"-4\r\nWiki\r\n0\r\n\r\n", RequestError::InvalidChunkSize),
        (b" 4\r\nWiki\r\n0\r\n\r\n", RequestError::InvalidChunkSize),
        (b"4 \r\nWiki\r\n0\r\n\r\n", RequestError::InvalidChunkSize),
        (b"4g\r\n", RequestError::InvalidChunkSize),
        (b"10000000000000000\r\n", RequestError::ChunkSizeOverflow),
        (b"4\n", RequestError::BareLf),
        (b"4;a\n", RequestError::BareLf),
        (b"4 \n", RequestError::BareLf),
        (b"4\rx", RequestError::BareCr),
        (b"4;a\x01\r\n", RequestError::InvalidChunkExtension),
        (b"4;a\x7f\r\n", RequestError::InvalidChunkExtension),
        (b"4\r\nWikiX", RequestError::ChunkNotTerminated),
        (b"4\r\nWiki\n", RequestError::ChunkNotTerminated),
        (b"4\r\nWiki\rX", RequestError::ChunkNotTerminated),
        (b"4\r\nWikipedia\r\n", RequestError::ChunkNotTerminated),
        (b"0\r\n\r\r", RequestError::BareCr),
        (b"0\r\n\n", RequestError::BareLf),
        (b"0\r\nX: v\n", RequestError::BareLf),
        (b"0\r\nX: v\rx", RequestError::BareCr),
        (
            b"0\r\nX: v\r\n folded\r\n\r\n",
            RequestError::ObsoleteLineFolding,
        ),
        (b"0\r\nX : v\r\n\r\n", RequestError::WhitespaceBeforeColon),
        (b"0\r\n: v\r\n\r\n", RequestError::InvalidHeaderName),
        (b"0\r\nX(: v\r\n\r\n", RequestError::InvalidHeaderName),
        (b"0\r\nNoColon\r\n\r\n", RequestError::InvalidHeaderName),
        (b"0\r\nX: a\x01\r\n\r\n", RequestError::InvalidHeaderValue),
        (b"0\r\nX: a\0\r\n\r\n", RequestError::NulByte),
    ];
    for (input, expected) in cases {
        let result = decode_whole(input, &Limits::default());
        assert_eq!(
            result,
            Err(expected.clone()),
            "{:?}",
            String::from_utf8_lossy(input)
        );
    }
}

/// Builds two chunked bodies that carry `extension`, one on a chunk with data and one on the last
/// chunk.
fn bodies_with_extension(extension: &[u8]) -> [Vec<u8>; 2] {
    [
        [b"4".as_slice(), extension, b"\r\nWiki\r\n0\r\n\r\n"].concat(),
        [b"4\r\nWiki\r\n0".as_slice(), extension, b"\r\n\r\n"].concat(),
    ]
}

#[test]
fn extension_accepted_cases() {
    let cases: &[&[u8]] = &[
        b";a",
        b";a=b",
        b" ; a = b",
        b";a=\"x\\\"y\"",
        b";a;b=c",
        b"\t;\ta\t=\tb",
        b";a ;b",
        b";a=b ;c",
        b";a=\"b\" ;c",
        b";a=\"b\";c=d",
        b";a=\"\"",
        b";a=\"q d;e=f\"",
        b";a=\"\\\\\"",
        b";a=\"\\ \\\t\"",
        b";a=\"caf\xc3\xa9\"",
        b";a=\"\x80\xff\"",
        b";a=\"\\\xff\"",
        b";!#$%&'*+-.^_`|~09Az=!#$%&'*+-.^_`|~09Az",
    ];
    for extension in cases {
        for body in bodies_with_extension(extension) {
            let expected = Ok((b"Wiki".to_vec(), body.len(), true));
            let name = String::from_utf8_lossy(&body);
            assert_eq!(
                decode_whole(&body, &Limits::default()),
                expected,
                "whole {name:?}"
            );
            assert_eq!(
                decode_in_pieces(&body, &[1], &Limits::default()),
                expected,
                "byte by byte {name:?}"
            );
        }
    }
}

#[test]
fn extension_rejected_cases() {
    let invalid = RequestError::InvalidChunkExtension;
    let cases: &[(&[u8], RequestError)] = &[
        (b";", invalid.clone()),
        (b"; ", invalid.clone()),
        (b";;a", invalid.clone()),
        (b";a;", invalid.clone()),
        (b";=x", invalid.clone()),
        (b";a=", invalid.clone()),
        (b";a= ", invalid.clone()),
        (b";a==b", invalid.clone()),
        (b";a=b=c", invalid.clone()),
        (b";a b", invalid.clone()),
        (b";a b=c", invalid.clone()),
        (b";a=b c", invalid.clone()),
        (b";a ", invalid.clone()),
        (b";a=b ", invalid.clone()),
        (b";a=\"b\" ", invalid.clone()),
        (b";\"q\"", invalid.clone()),
        (b";a=\"unterminated", invalid.clone()),
        (b";a=\"x", invalid.clone()),
        (b";a=\"x\\", invalid.clone()),
        (b";a=\"b\"c", invalid.clone()),
        (b";a=\"b\"\"c\"", invalid.clone()),
        (b";a=b\"c\"", invalid.clone()),
        (b";a@b", invalid.clone()),
        (b";a=b,c", invalid.clone()),
        (b";a=(b)", invalid.clone()),
        (b";caf\xc3\xa9", invalid.clone()),
        (b";a=\xff", invalid.clone()),
        (b";a=\"\x01\"", invalid.clone()),
        (b";a=\"\x1f\"", invalid.clone()),
        (b";a=\"\x7f\"", invalid.clone()),
        (b";a=\"\0\"", invalid.clone()),
        (b";a=\"\\\x01\"", invalid.clone()),
        (b";a=\"b\"\x01", invalid.clone()),
        (b";a\x01", invalid.clone()),
        (b";a\x7f", invalid.clone()),
        (b";a=\"x\n", RequestError::BareLf),
        (b";a=\n", RequestError::BareLf),
        (b";a\rx", RequestError::BareCr),
    ];
    for (extension, expected) in cases {
        for body in bodies_with_extension(extension) {
            let name = String::from_utf8_lossy(&body);
            assert_eq!(
                decode_whole(&body, &Limits::default()),
                Err(expected.clone()),
                "whole {name:?}"
            );
            assert_eq!(
                decode_in_pieces(&body, &[1], &Limits::default()),
                Err(expected.clone()),
                "byte by byte {name:?}"
            );
        }
    }
}

#[test]
fn state_size_bounded() {
    // Every connection decoding a chunked body stores a `State`, so the extension sub-state must
    // fit beside the chunk size instead of enlarging the enum past the `Size` variant.
    let size = std::mem::size_of::<State>();
    assert!(
        size <= 3 * std::mem::size_of::<u64>(),
        "State is {size} bytes"
    );
}

#[test]
fn size_line_limit() {
    let limits = Limits {
        max_chunk_extension_bytes: 8,
        ..Limits::default()
    };
    let at_limit = b"1;abcdef\r\nx\r\n0\r\n\r\n";
    assert_eq!(
        decode_whole(at_limit, &limits),
        Ok((b"x".to_vec(), at_limit.len(), true))
    );
    let over = b"1;abcdefg\r\nx\r\n0\r\n\r\n";
    assert_eq!(
        decode_whole(over, &limits),
        Err(RequestError::ChunkExtensionTooLong { max: 8 })
    );
}

#[test]
fn size_line_limit_inside_quoted_string() {
    let limits = Limits {
        max_chunk_extension_bytes: 8,
        ..Limits::default()
    };
    let at_limit = b"1;a=\"bc\"\r\nx\r\n0\r\n\r\n";
    assert_eq!(
        decode_whole(at_limit, &limits),
        Ok((b"x".to_vec(), at_limit.len(), true))
    );
    let over = b"1;a=\"bcd\"\r\nx\r\n0\r\n\r\n";
    assert_eq!(
        decode_whole(over, &limits),
        Err(RequestError::ChunkExtensionTooLong { max: 8 })
    );
}

#[test]
fn size_line_limit_counts_leading_zeros() {
    let limits = Limits {
        max_chunk_extension_bytes: 8,
        ..Limits::default()
    };
    let input = b"000000001\r\nx\r\n0\r\n\r\n";
    assert_eq!(
        decode_whole(input, &limits),
        Err(RequestError::ChunkExtensionTooLong { max: 8 })
    );
}

#[test]
fn size_line_limit_resets_per_chunk() {
    let limits = Limits {
        max_chunk_extension_bytes: 8,
        ..Limits::default()
    };
    let input = b"1;abcdef\r\nx\r\n1;abcdef\r\ny\r\n0;abcdef\r\n\r\n";
    assert_eq!(
        decode_whole(input, &limits),
        Ok((b"xy".to_vec(), input.len(), true))
    );
}

#[test]
fn trailer_limit() {
    // "X: 12\r\n" is 7 bytes and the final CRLF 2 more.
    let at_limit = Limits {
        max_trailer_bytes: 9,
        ..Limits::default()
    };
    let input = b"0\r\nX: 12\r\n\r\n";
    assert_eq!(
        decode_whole(input, &at_limit),
        Ok((Vec::new(), input.len(), true))
    );
    let over = Limits {
        max_trailer_bytes: 8,
        ..Limits::default()
    };
    let error = decode_whole(input, &over).unwrap_err();
    assert_eq!(error, RequestError::TrailersTooLarge { max: 8 });
    assert_eq!(error.status(), 431);
}

#[test]
fn body_limit_on_declared_size() {
    let limits = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let mut decoder = ChunkedDecoder::new(&limits);
    let mut out = Vec::new();
    let error = decoder.decode(b"b\r\n", &mut out).unwrap_err();
    assert_eq!(error, RequestError::BodyTooLarge { max: 10 });
    assert_eq!(error.status(), 413);
    assert!(out.is_empty());
}

#[test]
fn body_limit_on_sum_of_chunks() {
    let limits = Limits {
        max_body_bytes: 10,
        ..Limits::default()
    };
    let at_limit = b"5\r\n12345\r\n5\r\n67890\r\n0\r\n\r\n";
    assert_eq!(
        decode_whole(at_limit, &limits),
        Ok((b"1234567890".to_vec(), at_limit.len(), true))
    );
    let over = b"5\r\n12345\r\n6\r\n678901\r\n0\r\n\r\n";
    assert_eq!(
        decode_whole(over, &limits),
        Err(RequestError::BodyTooLarge { max: 10 })
    );
}

#[test]
fn body_limit_with_huge_size() {
    let error = decode_whole(b"ffffffffffffffff\r\n", &Limits::default()).unwrap_err();
    assert_eq!(
        error,
        RequestError::BodyTooLarge {
            max: Limits::default().max_body_bytes
        }
    );
}

#[test]
fn done_decoder_consumes_nothing() {
    let mut decoder = ChunkedDecoder::new(&Limits::default());
    let mut out = Vec::new();
    assert_eq!(decoder.decode(b"0\r\n\r\n", &mut out), Ok((5, true)));
    assert_eq!(decoder.decode(b"more", &mut out), Ok((0, true)));
    assert!(out.is_empty());
}

#[test]
fn error_repeats_on_later_calls() {
    let mut decoder = ChunkedDecoder::new(&Limits::default());
    let mut out = Vec::new();
    assert_eq!(
        decoder.decode(b"zz", &mut out),
        Err(RequestError::InvalidChunkSize)
    );
    assert_eq!(
        decoder.decode(b"0\r\n\r\n", &mut out),
        Err(RequestError::InvalidChunkSize)
    );
    assert_eq!(
        decoder.decode(b"", &mut out),
        Err(RequestError::InvalidChunkSize)
    );
}

#[test]
fn incomplete_body_not_done() {
    let input = WIKIPEDIA.get(..WIKIPEDIA.len() - 1).unwrap_or_default();
    let (_, consumed, done) = decode_whole(input, &Limits::default()).unwrap();
    assert_eq!(consumed, input.len());
    assert!(!done);
}

#[test]
fn body_bytes_counted() {
    let mut decoder = ChunkedDecoder::new(&Limits::default());
    let mut out = Vec::new();
    decoder.decode(b"4\r\nWi", &mut out).unwrap();
    assert_eq!(decoder.body_bytes(), 2);
    decoder.decode(b"ki\r\n", &mut out).unwrap();
    assert_eq!(decoder.body_bytes(), 4);
}

#[test]
fn large_body_in_uneven_pieces() {
    let mut input = Vec::new();
    let mut expected = Vec::new();
    for (index, size) in [1usize, 15, 16, 255, 4096, 65536, 3]
        .into_iter()
        .enumerate()
    {
        let data: Vec<u8> = (0..size)
            .map(|offset| ((offset + index) % 251) as u8)
            .collect();
        input.extend_from_slice(format!("{size:x}\r\n").as_bytes());
        input.extend_from_slice(&data);
        input.extend_from_slice(b"\r\n");
        expected.extend_from_slice(&data);
    }
    input.extend_from_slice(b"0\r\n\r\n");
    for sizes in [&[1000usize][..], &[1, 4095, 17]] {
        let (out, consumed, done) = decode_in_pieces(&input, sizes, &Limits::default()).unwrap();
        assert_eq!(out, expected, "{sizes:?}");
        assert_eq!(consumed, input.len(), "{sizes:?}");
        assert!(done, "{sizes:?}");
    }
}
