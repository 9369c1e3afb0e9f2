//! The field grammars of RFC 9110 that framing depends on: tokens and quoted strings
//! (section 5.6).

/// `tchar` (RFC 9110 section 5.6.2): the bytes of a token.
pub(crate) fn is_tchar(b: u8) -> bool {
    TCHAR[b as usize]
}

const TCHAR: [bool; 256] = {
    let mut table = [false; 256];
    let extra = b"!#$%&'*+-.^_`|~";
    let mut b = 0;
    while b < 256 {
        table[b] = (b as u8).is_ascii_alphanumeric();
        b += 1;
    }
    let mut i = 0;
    while i < extra.len() {
        table[extra[i] as usize] = true;
        i += 1;
    }
    table
};

/// `qdtext`: a byte that may stand unescaped in a quoted string.
pub(crate) fn is_qdtext(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21 | 0x23..=0x5b | 0x5d..=0x7e | 0x80..=0xff)
}

/// A byte that may follow `\` in a quoted string (`HTAB / SP / VCHAR / obs-text`).
pub(crate) fn is_escapable(b: u8) -> bool {
    matches!(b, b'\t' | b' ' | 0x21..=0x7e | 0x80..=0xff)
}
