//! MessagePack for the Alpaca stream: the official Python SDK (alpaca-py) sends the handshake
//! header `Content-Type: application/msgpack`, writes its auth and subscribe messages as msgpack
//! maps and expects msgpack frames back, with `t` as the msgpack timestamp extension (type -1).
//! Only what that needs: values convert to and from `serde_json::Value`; a server frame is
//! encoded from its JSON text, turning every string-valued `t` that parses as RFC 3339 into a
//! timestamp.

use serde_json::{Map, Number, Value};

/// Decode one msgpack value into JSON (`None` if malformed; binary and extension values become
/// null, a timestamp becomes its RFC 3339 text).
pub fn decode(bytes: &[u8]) -> Option<Value> {
    let mut r = Reader { b: bytes, i: 0 };
    let v = r.value(0)?;
    (r.i == bytes.len()).then_some(v)
}

struct Reader<'a> {
    b: &'a [u8],
    i: usize,
}

impl Reader<'_> {
    fn take(&mut self, n: usize) -> Option<&[u8]> {
        let s = self.b.get(self.i..self.i.checked_add(n)?)?;
        self.i += n;
        Some(s)
    }

    fn uint(&mut self, n: usize) -> Option<u64> {
        Some(self.take(n)?.iter().fold(0u64, |a, &x| (a << 8) | u64::from(x)))
    }

    fn int(&mut self, n: usize) -> Option<i64> {
        let u = self.uint(n)?;
        let shift = 64 - 8 * n as u32;
        Some(((u << shift) as i64) >> shift)
    }

    fn str(&mut self, n: usize) -> Option<Value> {
        Some(Value::String(std::str::from_utf8(self.take(n)?).ok()?.to_string()))
    }

    fn array(&mut self, n: usize, depth: u32) -> Option<Value> {
        (0..n).map(|_| self.value(depth + 1)).collect::<Option<Vec<_>>>().map(Value::Array)
    }

    fn map(&mut self, n: usize, depth: u32) -> Option<Value> {
        let mut m = Map::new();
        for _ in 0..n {
            let k = match self.value(depth + 1)? {
                Value::String(s) => s,
                other => other.to_string(),
            };
            let v = self.value(depth + 1)?;
            m.insert(k, v);
        }
        Some(Value::Object(m))
    }

    fn ext(&mut self, n: usize) -> Option<Value> {
        let ty = self.take(1)?[0] as i8;
        let data = self.take(n)?;
        if ty != -1 {
            return Some(Value::Null);
        }
        let (sec, nsec) = match n {
            4 => (i64::from(u32::from_be_bytes(data.try_into().ok()?)), 0),
            8 => {
                let v = u64::from_be_bytes(data.try_into().ok()?);
                ((v & 0x3_ffff_ffff) as i64, (v >> 34) as i64)
            }
            12 => (
                i64::from_be_bytes(data[4..].try_into().ok()?),
                i64::from(u32::from_be_bytes(data[..4].try_into().ok()?)),
            ),
            _ => return Some(Value::Null),
        };
        Some(Value::String(super::wire::rfc3339(sec.checked_mul(1_000_000_000)?.checked_add(nsec)?)))
    }

    fn value(&mut self, depth: u32) -> Option<Value> {
        if depth > 32 {
            return None;
        }
        let c = self.take(1)?[0];
        Some(match c {
            0x00..=0x7f => Value::from(c),
            0x80..=0x8f => return self.map(usize::from(c & 0x0f), depth),
            0x90..=0x9f => return self.array(usize::from(c & 0x0f), depth),
            0xa0..=0xbf => return self.str(usize::from(c & 0x1f)),
            0xc0 => Value::Null,
            0xc2 => Value::Bool(false),
            0xc3 => Value::Bool(true),
            0xc4..=0xc6 => {
                let n = self.uint(1 << (c - 0xc4))? as usize;
                self.take(n)?;
                Value::Null
            }
            0xc7..=0xc9 => {
                let n = self.uint(1 << (c - 0xc7))? as usize;
                return self.ext(n);
            }
            0xca => {
                Number::from_f64(f64::from(f32::from_bits(self.uint(4)? as u32))).map_or(Value::Null, Value::Number)
            }
            0xcb => Number::from_f64(f64::from_bits(self.uint(8)?)).map_or(Value::Null, Value::Number),
            0xcc..=0xcf => Value::from(self.uint(1 << (c - 0xcc))?),
            0xd0..=0xd3 => Value::from(self.int(1 << (c - 0xd0))?),
            0xd4..=0xd8 => return self.ext(1 << (c - 0xd4)),
            0xd9..=0xdb => {
                let n = self.uint(1 << (c - 0xd9))? as usize;
                return self.str(n);
            }
            0xdc | 0xdd => {
                let n = self.uint(2 << (c - 0xdc))? as usize;
                return self.array(n, depth);
            }
            0xde | 0xdf => {
                let n = self.uint(2 << (c - 0xde))? as usize;
                return self.map(n, depth);
            }
            0xe0..=0xff => Value::from(c as i8),
            _ => return None,
        })
    }
}

/// Encode JSON text (a server frame) as msgpack; `None` if the text is not JSON (a malformed
/// frame is then sent as it is).
pub fn encode_frame(json: &str) -> Option<Vec<u8>> {
    let v: Value = serde_json::from_str(json).ok()?;
    let mut out = Vec::with_capacity(json.len());
    encode(&v, None, &mut out);
    Some(out)
}

fn head(out: &mut Vec<u8>, n: usize, fix: u8, fix_max: usize, c16: u8) {
    if n <= fix_max {
        out.push(fix | n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(c16);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(c16 + 1);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
}

fn encode_str(s: &str, out: &mut Vec<u8>) {
    let n = s.len();
    if n < 32 {
        out.push(0xa0 | n as u8);
    } else if n < 256 {
        out.push(0xd9);
        out.push(n as u8);
    } else if let Ok(n) = u16::try_from(n) {
        out.push(0xda);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(0xdb);
        out.extend_from_slice(&(n as u32).to_be_bytes());
    }
    out.extend_from_slice(s.as_bytes());
}

fn encode(v: &Value, key: Option<&str>, out: &mut Vec<u8>) {
    match v {
        Value::Null => out.push(0xc0),
        Value::Bool(b) => out.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Number(n) => {
            if let Some(u) = n.as_u64() {
                out.push(0xcf);
                out.extend_from_slice(&u.to_be_bytes());
            } else if let Some(i) = n.as_i64() {
                out.push(0xd3);
                out.extend_from_slice(&i.to_be_bytes());
            } else {
                out.push(0xcb);
                out.extend_from_slice(&n.as_f64().unwrap_or(0.0).to_bits().to_be_bytes());
            }
        }
        Value::String(s) => match (key, super::wire::parse_time(s)) {
            (Some("t"), Some(ns)) if s.contains('T') => {
                // Timestamp 96: ext 8, type -1, nanoseconds u32 then seconds i64.
                out.extend_from_slice(&[0xc7, 12, 0xff]);
                out.extend_from_slice(&(ns.rem_euclid(1_000_000_000) as u32).to_be_bytes());
                out.extend_from_slice(&ns.div_euclid(1_000_000_000).to_be_bytes());
            }
            _ => encode_str(s, out),
        },
        Value::Array(a) => {
            head(out, a.len(), 0x90, 15, 0xdc);
            for x in a {
                encode(x, None, out);
            }
        }
        Value::Object(m) => {
            head(out, m.len(), 0x80, 15, 0xde);
            for (k, x) in m {
                encode_str(k, out);
                encode(x, Some(k), out);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_with_timestamps() {
        let json = r#"[{"T":"b","S":"AAPL","o":189.01,"v":51234,"t":"2024-03-01T14:31:00Z","n":-3,"c":["R"],"x":null,"ok":true}]"#;
        let mp = encode_frame(json).unwrap();
        assert!(mp.windows(3).any(|w| w == [0xc7, 12, 0xff]), "t as a timestamp extension");
        let back = decode(&mp).unwrap();
        assert_eq!(back, serde_json::from_str::<Value>(json).unwrap());
        assert!(decode(&mp[..mp.len() - 1]).is_none());
        // A long map and string.
        let big: Value = (0..40).map(|i| (format!("k{i}"), Value::from("x".repeat(300)))).collect::<Map<_, _>>().into();
        let mut out = Vec::new();
        encode(&big, None, &mut out);
        assert_eq!(decode(&out).unwrap(), big);
    }
}
