//! Content-coding negotiation from `Accept-Encoding` (RFC 9110 §12.5.3), as a pure function.

/// A quality value in thousandths, 0 to 1000 (RFC 9110 §12.4.2).
type Quality = u16;

const QUALITY_MAX: Quality = 1000;

/// Whether to send the gzip variant to a client that sent these `Accept-Encoding` field lines.
///
/// gzip is chosen when its quality (from `gzip`, `x-gzip` or `*`) is above zero and not below a
/// quality the client gave `identity` (itself or through `*`), so a tie goes to the smaller body. Without any Accept-Encoding field it
/// returns false: RFC 9110 §12.5.3 would allow any coding, but a client that sends no field
/// most likely cannot decode one. When identity is refused and gzip is not acceptable either, the
/// caller still sends identity, which RFC 9110 §12.1 allows as disregarding the field instead of
/// answering 406. Members with an invalid quality value are skipped.
pub fn accepts_gzip(lines: &[&[u8]]) -> bool {
    if lines.is_empty() {
        return false;
    }

    let mut gzip: Option<Quality> = None;
    let mut identity: Option<Quality> = None;
    let mut any: Option<Quality> = None;
    for member in lines
        .iter()
        .flat_map(|line| line.split(|&byte| byte == b','))
    {
        let Some((coding, quality)) = parse_member(member) else {
            continue;
        };
        let slot = if coding.eq_ignore_ascii_case(b"gzip") || coding.eq_ignore_ascii_case(b"x-gzip")
        {
            &mut gzip
        } else if coding.eq_ignore_ascii_case(b"identity") {
            &mut identity
        } else if coding == b"*" {
            &mut any
        } else {
            continue;
        };
        *slot = Some(slot.map_or(quality, |previous| previous.max(quality)));
    }

    let gzip = gzip.or(any).unwrap_or(0);
    let identity = identity.or(any).unwrap_or(0);
    gzip > 0 && gzip >= identity
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
