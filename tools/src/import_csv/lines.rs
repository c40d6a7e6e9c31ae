//! Physical lines and the fields in them. Each line is split on its own, so a stray quote can
//! spoil only its own row (the `csv` crate would let it swallow the rest of the file). Quoted
//! fields (`"a,b"`, `"say ""hi"""`) work within a line; fields are trimmed of spaces.

use std::io::BufRead;

/// Reads a file line by line (`\n` or `\r\n`), counting lines and bytes.
#[derive(Debug)]
pub(crate) struct Lines<R> {
    inner: R,
    buf: Vec<u8>,
    /// 1-based number of the line last returned.
    pub(crate) line: u64,
    /// Bytes consumed so far.
    pub(crate) bytes: u64,
}

impl<R: BufRead> Lines<R> {
    pub(crate) fn new(inner: R) -> Self {
        Lines { inner, buf: Vec::with_capacity(256), line: 0, bytes: 0 }
    }

    /// The next line without its line ending, or `None` at the end of the input.
    pub(crate) fn next_line(&mut self) -> std::io::Result<Option<&[u8]>> {
        self.buf.clear();
        let n = self.inner.read_until(b'\n', &mut self.buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.line += 1;
        self.bytes += n as u64;
        let mut end = self.buf.len();
        if end > 0 && self.buf[end - 1] == b'\n' {
            end -= 1;
        }
        if end > 0 && self.buf[end - 1] == b'\r' {
            end -= 1;
        }
        Ok(Some(&self.buf[..end]))
    }
}

/// True for a line holding only spaces, tabs or nothing.
pub(crate) fn is_blank(line: &[u8]) -> bool {
    line.iter().all(|&b| b == b' ' || b == b'\t')
}

/// The fields of one line (reused between lines).
#[derive(Debug, Default)]
pub(crate) struct Fields {
    data: Vec<u8>,
    ends: Vec<usize>,
}

impl Fields {
    pub(crate) fn len(&self) -> usize {
        self.ends.len()
    }

    /// Field `i` as bytes.
    pub(crate) fn get(&self, i: usize) -> Option<&[u8]> {
        let end = *self.ends.get(i)?;
        let start = if i == 0 { 0 } else { self.ends[i - 1] };
        Some(&self.data[start..end])
    }

    /// All fields as (lossy) strings, for headers.
    pub(crate) fn to_strings(&self) -> Vec<String> {
        (0..self.len()).map(|i| String::from_utf8_lossy(self.get(i).unwrap_or_default()).into_owned()).collect()
    }
}

/// A quote that does not close on its line (or text after a closing quote), in field `field`
/// (0-based).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct QuoteError {
    pub(crate) field: usize,
}

fn is_space(b: u8, delim: u8) -> bool {
    (b == b' ' || b == b'\t') && b != delim
}

/// Split `line` on `delim` into `out`.
pub(crate) fn split(line: &[u8], delim: u8, out: &mut Fields) -> Result<(), QuoteError> {
    out.data.clear();
    out.ends.clear();
    let n = line.len();
    let mut i = 0;
    loop {
        while i < n && is_space(line[i], delim) {
            i += 1;
        }
        if i < n && line[i] == b'"' {
            let field = out.ends.len();
            i += 1;
            loop {
                let Some(q) = line[i..].iter().position(|&b| b == b'"') else {
                    return Err(QuoteError { field });
                };
                out.data.extend_from_slice(&line[i..i + q]);
                i += q + 1;
                if line.get(i) == Some(&b'"') {
                    out.data.push(b'"');
                    i += 1;
                } else {
                    break;
                }
            }
            while i < n && is_space(line[i], delim) {
                i += 1;
            }
            out.ends.push(out.data.len());
            if i == n {
                return Ok(());
            }
            if line[i] != delim {
                return Err(QuoteError { field });
            }
            i += 1;
        } else {
            let end = line[i..].iter().position(|&b| b == delim).map_or(n, |p| i + p);
            let mut e = end;
            while e > i && is_space(line[e - 1], delim) {
                e -= 1;
            }
            out.data.extend_from_slice(&line[i..e]);
            out.ends.push(out.data.len());
            if end == n {
                return Ok(());
            }
            i = end + 1;
        }
    }
}

/// Delimiters tried when none is given, in order of preference on a tie.
pub(crate) const CANDIDATES: [u8; 4] = [b',', b';', b'\t', b'|'];

/// The delimiter of a header line: the candidate occurring most often outside quotes, or `None`
/// when none occurs.
pub(crate) fn detect_delimiter(header: &[u8]) -> Option<u8> {
    let mut counts = [0usize; CANDIDATES.len()];
    let mut quoted = false;
    for &b in header {
        if b == b'"' {
            quoted = !quoted;
        } else if !quoted && let Some(k) = CANDIDATES.iter().position(|&c| c == b) {
            counts[k] += 1;
        }
    }
    let (k, &n) = counts.iter().enumerate().max_by(|a, b| a.1.cmp(b.1).then(b.0.cmp(&a.0)))?;
    (n > 0).then_some(CANDIDATES[k])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(line: &str, delim: u8) -> Result<Vec<String>, QuoteError> {
        let mut f = Fields::default();
        split(line.as_bytes(), delim, &mut f)?;
        Ok(f.to_strings())
    }

    #[test]
    fn splits_quoted_and_trimmed_fields() {
        assert_eq!(fields("a, b ,c", b',').unwrap(), ["a", "b", "c"]);
        assert_eq!(fields("\"a,b\",\"say \"\"hi\"\"\", x", b',').unwrap(), ["a,b", "say \"hi\"", "x"]);
        assert_eq!(fields(",x,", b',').unwrap(), ["", "x", ""]);
        assert_eq!(fields("a\tb c\t", b'\t').unwrap(), ["a", "b c", ""]);
        assert_eq!(fields("1;2,5", b';').unwrap(), ["1", "2,5"]);
        assert_eq!(fields("a,\"b,c", b','), Err(QuoteError { field: 1 }));
        assert_eq!(fields("\"a\"x,b", b','), Err(QuoteError { field: 0 }));
    }

    #[test]
    fn detects_delimiters() {
        assert_eq!(detect_delimiter(b"date,open,high,low,close"), Some(b','));
        assert_eq!(detect_delimiter(b"date;open;high;low;close"), Some(b';'));
        assert_eq!(detect_delimiter(b"date\topen\thigh\tlow\tclose"), Some(b'\t'));
        assert_eq!(detect_delimiter(b"\"a,b\";open;high"), Some(b';'));
        assert_eq!(detect_delimiter(b"date open high"), None);
    }

    #[test]
    fn lines_strip_endings_and_count() {
        let mut l = Lines::new(b"a\r\nb\n\nc".as_slice());
        let mut got = Vec::new();
        while let Some(x) = l.next_line().unwrap() {
            got.push(String::from_utf8(x.to_vec()).unwrap());
        }
        assert_eq!(got, ["a", "b", "", "c"]);
        assert_eq!((l.line, l.bytes), (4, 7));
    }
}
