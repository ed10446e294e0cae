//! Content-coding negotiation from `Accept-Encoding` (RFC 9110 §12.5.3), as a pure function.

/// A quality value in thousandths, 0 to 1000 (RFC 9110 §12.4.2).
type Quality = u16;

const QUALITY_MAX: Quality = 1000;

/// A content coding that a static response can carry (RFC 9110 §8.4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ContentCoding {
    /// Brotli (RFC 7932), from a `.br` sibling file.
    Br,
    /// Zstandard (RFC 8878), from a `.zst` sibling file.
    Zstd,
    /// gzip (RFC 1952), from a `.gz` sibling file or compressed by the server.
    Gzip,
}

impl ContentCoding {
    /// Every coding, in the order the server prefers among codings of equal quality: the
    /// smallest output first for typical text.
    pub const PREFERENCE: [ContentCoding; 3] =
        [ContentCoding::Br, ContentCoding::Zstd, ContentCoding::Gzip];

    /// Returns the token for `Content-Encoding`.
    pub fn token(self) -> &'static str {
        match self {
            ContentCoding::Br => "br",
            ContentCoding::Zstd => "zstd",
            ContentCoding::Gzip => "gzip",
        }
    }

    /// Returns the file name extension of a pre-compressed sibling, without the dot.
    pub fn extension(self) -> &'static str {
        match self {
            ContentCoding::Br => "br",
            ContentCoding::Zstd => "zst",
            ContentCoding::Gzip => "gz",
        }
    }

    /// Returns whether an `Accept-Encoding` member names this coding. `x-gzip` is an alias of
    /// `gzip` (RFC 9110 §8.4.1.3). Tokens compare case-insensitively.
    fn is_named_by(self, token: &[u8]) -> bool {
        match self {
            ContentCoding::Br => token.eq_ignore_ascii_case(b"br"),
            ContentCoding::Zstd => token.eq_ignore_ascii_case(b"zstd"),
            ContentCoding::Gzip => {
                token.eq_ignore_ascii_case(b"gzip") || token.eq_ignore_ascii_case(b"x-gzip")
            }
        }
    }

    fn index(self) -> usize {
        match self {
            ContentCoding::Br => 0,
            ContentCoding::Zstd => 1,
            ContentCoding::Gzip => 2,
        }
    }
}

/// Chooses the coding to send to a client that sent these `Accept-Encoding` field lines, among
/// the codings for which `is_available` returns true. None means the identity representation.
///
/// The coding with the highest quality above zero wins, ties going to the earlier coding in
/// [`ContentCoding::PREFERENCE`]. A coding not listed takes the quality of `*`, or zero without
/// one. The winner is sent only when its quality is not below the quality of `identity` (itself
/// or through `*`), so a tie goes to the smaller body. An `identity` that is not listed counts
/// as quality zero in that comparison. RFC 9110 §12.5.3 leaves identity acceptable but gives it
/// no weight, and the compressed body is the better choice.
///
/// Without any Accept-Encoding field it returns None. RFC 9110 §12.5.3 would allow any coding,
/// but a client that sends no field most likely cannot decode one. When identity is refused
/// (`identity;q=0` or `*;q=0`) and no available coding is acceptable, the caller still sends
/// identity, which RFC 9110 §12.1 allows as disregarding the field instead of responding with 406.
/// Members with an invalid quality value are skipped.
///
/// It reads `lines` once and allocates nothing.
pub fn choose<'a>(
    lines: impl IntoIterator<Item = &'a [u8]>,
    is_available: impl Fn(ContentCoding) -> bool,
) -> Option<ContentCoding> {
    let mut any_line = false;
    let mut codings: [Option<Quality>; 3] = [None; 3];
    let mut identity: Option<Quality> = None;
    let mut any: Option<Quality> = None;
    for line in lines {
        any_line = true;
        for member in line.split(|&byte| byte == b',') {
            let Some((token, quality)) = parse_member(member) else {
                continue;
            };
            let named = ContentCoding::PREFERENCE
                .into_iter()
                .find(|coding| coding.is_named_by(token));
            let slot = match named {
                Some(coding) => codings.get_mut(coding.index()),
                None if token.eq_ignore_ascii_case(b"identity") => Some(&mut identity),
                None if token == b"*" => Some(&mut any),
                None => None,
            };
            // Listed twice: the higher quality counts.
            if let Some(slot) = slot {
                *slot = Some(slot.map_or(quality, |previous| previous.max(quality)));
            }
        }
    }
    if !any_line {
        return None;
    }

    let identity = identity.or(any).unwrap_or(0);
    let mut best: Option<(ContentCoding, Quality)> = None;
    for coding in ContentCoding::PREFERENCE {
        if !is_available(coding) {
            continue;
        }
        let explicit = codings.get(coding.index()).copied().flatten();
        let quality = explicit.or(any).unwrap_or(0);
        let better = best.is_none_or(|(_, best_quality)| quality > best_quality);
        if quality > 0 && better {
            best = Some((coding, quality));
        }
    }
    match best {
        Some((coding, quality)) if quality >= identity => Some(coding),
        _ => None,
    }
}

/// Returns whether to send a gzip body: [`choose`] with gzip the only coding available.
pub fn accepts_gzip(lines: &[&[u8]]) -> bool {
    let only_gzip = |coding| coding == ContentCoding::Gzip;
    choose(lines.iter().copied(), only_gzip) == Some(ContentCoding::Gzip)
}

/// Splits `coding *( OWS ";" OWS parameter )` into the coding and its `q` weight (default 1).
fn parse_member(member: &[u8]) -> Option<(&[u8], Quality)> {
    let mut parts = member.split(|&byte| byte == b';');
    let coding = parts.next()?.trim_ascii();
    if coding.is_empty() {
        return None;
    }

    let mut quality = QUALITY_MAX;
    for parameter in parts {
        let parameter = parameter.trim_ascii();
        let equals = parameter.iter().position(|&byte| byte == b'=')?;
        let (name, value) = parameter.split_at(equals);
        if name.trim_ascii().eq_ignore_ascii_case(b"q") {
            quality = parse_quality(value.get(1..)?.trim_ascii())?;
        }
    }
    Some((coding, quality))
}

/// Parses `qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )` into thousandths.
fn parse_quality(value: &[u8]) -> Option<Quality> {
    let (whole, fraction) = match value.iter().position(|&byte| byte == b'.') {
        Some(dot) => (value.get(..dot)?, value.get(dot + 1..)?),
        None => (value, &b""[..]),
    };
    if fraction.len() > 3 || !fraction.iter().all(u8::is_ascii_digit) {
        return None;
    }

    let mut thousandths: Quality = 0;
    for place in 0..3 {
        let digit = fraction
            .get(place)
            .map_or(0, |&digit| Quality::from(digit - b'0'));
        thousandths = thousandths * 10 + digit;
    }
    match whole {
        b"0" => Some(thousandths),
        b"1" if thousandths == 0 => Some(QUALITY_MAX),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_gzip_case_table() {
        let cases: &[(&[&str], bool)] = &[
            // Absent or empty field.
            (&[], false),
            (&[""], false),
            // Plain lists as browsers send them.
            (&["gzip"], true),
            (&["gzip, deflate, br"], true),
            (&["br, gzip"], true),
            (&["deflate, br"], false),
            (&["GZIP"], true),
            (&["x-gzip"], true),
            (&["br", "gzip"], true),
            // Quality values.
            (&["gzip;q=0"], false),
            (&["gzip; q=0.000"], false),
            (&["gzip;q=0.001"], true),
            (&["gzip;Q=0.5"], true),
            (&["gzip;q=1.000"], true),
            (&["gzip;q=0.5, identity"], false),
            (&["gzip;q=0.5, identity;q=0.4"], true),
            (&["gzip, identity;q=0"], true),
            // Invalid quality values skip the member.
            (&["gzip;q=2"], false),
            (&["gzip;q=1.5"], false),
            (&["gzip;q=0.1234"], false),
            (&["gzip;q=abc"], false),
            (&["gzip;q"], false),
            (&["gzip;q=-1"], false),
            // `*` covers codings not listed.
            (&["*"], true),
            (&["*;q=0"], false),
            (&["*, gzip;q=0"], false),
            (&["*;q=0, gzip"], true),
            (&["*;q=0.5"], true),
            (&["*;q=0.5, identity"], false),
            (&["identity"], false),
            (&["identity;q=0"], false),
            // Parameters other than q are ignored.
            (&["gzip;level=1"], true),
            (&[" , gzip ,"], true),
        ];
        for &(lines, expected) in cases {
            let lines: Vec<&[u8]> = lines.iter().map(|line| line.as_bytes()).collect();
            assert_eq!(accepts_gzip(&lines), expected, "Accept-Encoding {lines:?}");
        }
    }

    #[test]
    fn choose_case_table() {
        use ContentCoding::{Br, Gzip, Zstd};
        const ALL: &[ContentCoding] = &[Br, Zstd, Gzip];
        let cases: &[(&[&str], &[ContentCoding], Option<ContentCoding>)] = &[
            // Absent field: identity.
            (&[], ALL, None),
            // Equal quality: br, then zstd, then gzip.
            (&["gzip, deflate, br, zstd"], ALL, Some(Br)),
            (&["gzip, zstd"], ALL, Some(Zstd)),
            (&["gzip, deflate, br, zstd"], &[Zstd, Gzip], Some(Zstd)),
            (&["gzip, deflate, br, zstd"], &[Gzip], Some(Gzip)),
            (&["gzip, br"], &[], None),
            // A higher quality beats the preference order.
            (&["br;q=0.5, gzip"], ALL, Some(Gzip)),
            (&["br;q=0.5, zstd;q=0.6, gzip;q=0.4"], ALL, Some(Zstd)),
            (&["br;q=0.5", "gzip;q=0.9"], ALL, Some(Gzip)),
            // q=0 refuses a coding.
            (&["br;q=0, gzip"], ALL, Some(Gzip)),
            (&["br;q=0, gzip;q=0"], ALL, None),
            (&["br;q=0"], &[Br], None),
            // `*` covers codings not listed.
            (&["*"], ALL, Some(Br)),
            (&["*;q=0.5, br;q=0"], ALL, Some(Zstd)),
            (&["*;q=0, gzip"], ALL, Some(Gzip)),
            (&["*;q=0"], ALL, None),
            // identity competes with its own quality.
            (&["br;q=0.5, identity"], ALL, None),
            (&["br;q=0.5, identity;q=0.5"], ALL, Some(Br)),
            (&["identity;q=0"], ALL, None),
            (&["br, identity;q=0"], ALL, Some(Br)),
            // The higher quality of a repeated member counts.
            (&["br;q=0.1, br;q=0.9, gzip;q=0.5"], ALL, Some(Br)),
            // Tokens compare case-insensitively; x-gzip is gzip.
            (&["BR"], ALL, Some(Br)),
            (&["ZStd"], ALL, Some(Zstd)),
            (&["x-gzip"], ALL, Some(Gzip)),
            // Invalid members are skipped.
            (&["br;q=2, gzip"], ALL, Some(Gzip)),
            (&["br;q, zstd;q=abc"], ALL, None),
        ];
        for &(lines, available, expected) in cases {
            let lines: Vec<&[u8]> = lines.iter().map(|line| line.as_bytes()).collect();
            assert_eq!(
                choose(lines.iter().copied(), |coding| available.contains(&coding)),
                expected,
                "Accept-Encoding {lines:?}, available {available:?}"
            );
        }
    }

    #[test]
    fn coding_names_table() {
        let cases = [
            (ContentCoding::Br, "br", "br"),
            (ContentCoding::Zstd, "zstd", "zst"),
            (ContentCoding::Gzip, "gzip", "gz"),
        ];
        for (coding, token, extension) in cases {
            assert_eq!(coding.token(), token, "{coding:?}");
            assert_eq!(coding.extension(), extension, "{coding:?}");
        }
    }

    #[test]
    fn quality_table() {
        let cases: &[(&str, Option<Quality>)] = &[
            ("0", Some(0)),
            ("0.", Some(0)),
            ("0.5", Some(500)),
            ("0.25", Some(250)),
            ("0.125", Some(125)),
            ("1", Some(1000)),
            ("1.0", Some(1000)),
            ("1.000", Some(1000)),
            ("1.001", None),
            ("0.1234", None),
            (".5", None),
            ("", None),
            ("01", None),
        ];
        for &(value, expected) in cases {
            assert_eq!(
                parse_quality(value.as_bytes()),
                expected,
                "qvalue {value:?}"
            );
        }
    }
}
