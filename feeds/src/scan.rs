//! A strict, zero-copy scanner for the one shape stream frames have: a JSON array of objects.
//! It checks the full JSON grammar (strings with their escapes, numbers, literals, nested arrays
//! and objects up to [`MAX_DEPTH`]) and hands each object's fields to a [`Fields`] as raw text
//! slices of the frame, so numbers are read from their digits later. It exists because it is
//! about twice as fast as serde_json on these frames (see `feeds/PARSING.md`); a differential
//! property test holds it to serde_json's verdict on valid and broken frames.

/// Deepest nesting accepted inside a message (condition lists are one level).
pub(crate) const MAX_DEPTH: u32 = 32;

/// A frame that is not a JSON array of objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Malformed;

/// Receives one object's fields.
pub(crate) trait Fields<'a>: Default {
    /// Keep `raw` (the value's JSON text; never `null`, which reads as absent) if `key` (its raw
    /// bytes, escapes not decoded) is a field of interest. `Err` refuses the frame (a repeated key).
    fn set(&mut self, key: &[u8], raw: &'a str) -> Result<(), Malformed>;
}

/// Ignores every field (nested objects, and the oracle test).
#[derive(Default)]
pub(crate) struct Ignore;

impl Fields<'_> for Ignore {
    fn set(&mut self, _: &[u8], _: &str) -> Result<(), Malformed> {
        Ok(())
    }
}

/// A key of up to 8 bytes packed into an integer (little-endian, zero padded), so a field lookup
/// is one integer `match`; longer keys give [`LONG_KEY`] and are matched as slices.
#[inline]
pub(crate) const fn key_code(k: &[u8]) -> u64 {
    if k.is_empty() || k.len() > 8 {
        return LONG_KEY;
    }
    let mut v = 0u64;
    let mut i = 0;
    while i < k.len() {
        v |= (k[i] as u64) << (8 * i);
        i += 1;
    }
    v
}

/// [`key_code`] of keys longer than 8 bytes (and of the empty key, which no message uses).
pub(crate) const LONG_KEY: u64 = 0;

/// Store `raw` in `slot` unless a value is already there.
#[inline]
pub(crate) fn put<'a>(slot: &mut Option<&'a str>, raw: &'a str) -> Result<(), Malformed> {
    if slot.is_some() {
        return Err(Malformed);
    }
    *slot = Some(raw);
    Ok(())
}

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
}

/// Scan `frame` (`[{...},{...}]`), calling `f` with each object in order. On `Err` some objects
/// may already have been passed to `f`: the caller rolls back.
pub(crate) fn each_object<'a, T: Fields<'a>>(frame: &'a str, mut f: impl FnMut(T)) -> Result<(), Malformed> {
    let mut s = Scanner { s: frame, b: frame.as_bytes(), i: 0 };
    s.ws();
    s.eat(b'[')?;
    s.ws();
    if s.peek() == Some(b']') {
        s.i += 1;
    } else {
        loop {
            f(s.object::<T>(0)?);
            s.ws();
            match s.next()? {
                b',' => s.ws(),
                b']' => break,
                _ => return Err(Malformed),
            }
        }
    }
    s.ws();
    if s.i == s.b.len() { Ok(()) } else { Err(Malformed) }
}

impl<'a> Scanner<'a> {
    #[inline]
    fn peek(&self) -> Option<u8> {
        self.b.get(self.i).copied()
    }

    #[inline]
    fn next(&mut self) -> Result<u8, Malformed> {
        let c = self.peek().ok_or(Malformed)?;
        self.i += 1;
        Ok(c)
    }

    #[inline]
    fn eat(&mut self, c: u8) -> Result<(), Malformed> {
        if self.next()? == c { Ok(()) } else { Err(Malformed) }
    }

    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.peek() {
            self.i += 1;
        }
    }

    fn object<T: Fields<'a>>(&mut self, depth: u32) -> Result<T, Malformed> {
        if depth > MAX_DEPTH {
            return Err(Malformed);
        }
        self.eat(b'{')?;
        self.ws();
        let mut t = T::default();
        if self.peek() == Some(b'}') {
            self.i += 1;
            return Ok(t);
        }
        loop {
            self.eat(b'"')?;
            let k0 = self.i;
            self.string_body()?;
            let key = &self.b[k0..self.i - 1];
            self.ws();
            self.eat(b':')?;
            self.ws();
            let v0 = self.i;
            self.value(depth)?;
            let raw = &self.s[v0..self.i];
            if raw != "null" {
                t.set(key, raw)?;
            }
            self.ws();
            match self.next()? {
                b',' => self.ws(),
                b'}' => return Ok(t),
                _ => return Err(Malformed),
            }
        }
    }

    /// After the opening quote: up to and including the closing one.
    #[inline]
    fn string_body(&mut self) -> Result<(), Malformed> {
        loop {
            match self.next()? {
                b'"' => return Ok(()),
                b'\\' => match self.next()? {
                    b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => {}
                    b'u' => {
                        for _ in 0..4 {
                            if !self.next()?.is_ascii_hexdigit() {
                                return Err(Malformed);
                            }
                        }
                    }
                    _ => return Err(Malformed),
                },
                c if c < 0x20 => return Err(Malformed),
                _ => {}
            }
        }
    }

    fn value(&mut self, depth: u32) -> Result<(), Malformed> {
        match self.peek().ok_or(Malformed)? {
            b'"' => {
                self.i += 1;
                self.string_body()
            }
            b'-' | b'0'..=b'9' => self.number(),
            b'{' => self.object::<Ignore>(depth + 1).map(|_| ()),
            b'[' => {
                if depth >= MAX_DEPTH {
                    return Err(Malformed);
                }
                self.i += 1;
                self.ws();
                if self.peek() == Some(b']') {
                    self.i += 1;
                    return Ok(());
                }
                loop {
                    self.value(depth + 1)?;
                    self.ws();
                    match self.next()? {
                        b',' => self.ws(),
                        b']' => return Ok(()),
                        _ => return Err(Malformed),
                    }
                }
            }
            b't' => self.lit(b"true"),
            b'f' => self.lit(b"false"),
            b'n' => self.lit(b"null"),
            _ => Err(Malformed),
        }
    }

    fn lit(&mut self, w: &[u8]) -> Result<(), Malformed> {
        if self.b[self.i..].starts_with(w) {
            self.i += w.len();
            Ok(())
        } else {
            Err(Malformed)
        }
    }

    #[inline]
    fn digits(&mut self) -> usize {
        let start = self.i;
        while let Some(b'0'..=b'9') = self.peek() {
            self.i += 1;
        }
        self.i - start
    }

    /// `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`
    fn number(&mut self) -> Result<(), Malformed> {
        if self.peek() == Some(b'-') {
            self.i += 1;
        }
        match self.peek() {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Malformed),
        }
        if self.peek() == Some(b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Malformed);
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.i += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Malformed);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use serde::de::IgnoredAny;
    use std::collections::BTreeMap;

    fn scan_ok(s: &str) -> bool {
        each_object::<Ignore>(s, |_| {}).is_ok()
    }

    /// serde_json's verdict on "an array of objects".
    fn serde_ok(s: &str) -> bool {
        serde_json::from_str::<Vec<BTreeMap<String, IgnoredAny>>>(s).is_ok()
    }

    const CORPUS: &[&str] = &[
        r#"[{"T":"b","S":"AAPL","o":189.01,"h":189.20,"l":188.95,"c":189.12,"v":51234,"t":"2024-03-01T14:31:00Z","n":412,"vw":189.08}]"#,
        r#"[{"T":"q","S":"AAPL","bx":"V","bp":189.10,"bs":2,"ax":"V","ap":189.12,"as":3,"t":"2024-03-01T14:31:02.123456789Z","c":["R"],"z":"C"}]"#,
        r#"[{"ev":"status","status":"connected","message":"Connected \"Successfully\" \u00e9"}, {"x":[1,[true,false,null],{"y":-0.5e-3}]}]"#,
        r#" [ ] "#,
        r#"[{"T":"subscription","trades":[],"quotes":["AAPL"],"bars":["*"]}]"#,
    ];

    #[test]
    fn agrees_with_serde_on_known_cases() {
        for s in CORPUS {
            assert!(scan_ok(s) && serde_ok(s), "{s}");
        }
        for bad in [
            "",
            "[",
            "[{]",
            "[{}",
            "[{},]",
            "[{\"a\":1,}]",
            "[{\"a\" 1}]",
            "[{\"a\":01}]",
            "[{\"a\":1.}]",
            "[{\"a\":.5}]",
            "[{\"a\":1e}]",
            "[{\"a\":-}]",
            "[{\"a\":NaN}]",
            "[{\"a\":tru}]",
            "[{\"a\":\"\\x\"}]",
            "[{\"a\":\"\\u12g4\"}]",
            "[{\"a\":\"\u{1}\"}]",
            "[1]",
            "[[]]",
            "{}",
            "[{}] x",
            "[{\"a\":[1,]}]",
            "[{\"a\":1}{\"b\":2}]",
            "[{\"a\":\"unterminated}]",
        ] {
            assert!(!scan_ok(bad) && !serde_ok(bad), "{bad:?}");
        }
        let deep = format!("[{{\"a\":{}1{}}}]", "[".repeat(40), "]".repeat(40));
        assert!(!scan_ok(&deep), "nesting is bounded");
    }

    #[test]
    fn fields_see_raw_text_and_null_is_absent() {
        #[derive(Default)]
        struct F<'a> {
            a: Option<&'a str>,
            b: Option<&'a str>,
        }
        impl<'a> Fields<'a> for F<'a> {
            fn set(&mut self, key: &[u8], raw: &'a str) -> Result<(), Malformed> {
                match key {
                    b"a" => put(&mut self.a, raw),
                    b"b" => put(&mut self.b, raw),
                    _ => Ok(()),
                }
            }
        }
        let mut got = Vec::new();
        each_object::<F<'_>>(r#"[{"a": 1.50e2 ,"b":null,"c":[{"a":9}]},{"b":"x\"y"}]"#, |f| got.push((f.a, f.b)))
            .unwrap();
        assert_eq!(got, [(Some("1.50e2"), None), (None, Some(r#""x\"y""#))]);
        assert_eq!(each_object::<F<'_>>(r#"[{"a":1,"a":2}]"#, |_| {}), Err(Malformed), "a repeated field");
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        /// Broken frames (bytes deleted, inserted, truncated): the scanner accepts exactly what
        /// serde_json accepts.
        #[test]
        fn differential_against_serde_json(
            base in 0..CORPUS.len(),
            ops in prop::collection::vec((0usize..3, 0usize..400, prop::sample::select(b"[]{}\",:.-+eE019aTtnul\\ ".to_vec())), 1..4),
        ) {
            let mut b = CORPUS[base].as_bytes().to_vec();
            for (op, at, c) in ops {
                let at = at % (b.len() + 1);
                match op {
                    0 if at < b.len() => { b.remove(at); }
                    1 => b.insert(at, c),
                    _ => b.truncate(at),
                }
            }
            let s = String::from_utf8(b).unwrap();
            prop_assert_eq!(scan_ok(&s), serde_ok(&s), "{}", s);
        }
    }
}
