//! A small JSON reader and writer for the wasm path.
//!
//! Why not serde_json: the module ships inside a mini-program (≤ 64 KiB after `wasm-opt -Oz` is
//! the budget) and serde_json's generic deserialiser, its error formatting and the float
//! formatting it drags in came to over 100 KiB for this crate. Everything that crosses the
//! boundary here is small, flat and of known shape, so a reader that builds a tiny tree and a
//! writer that appends to a `String` are enough. serde derives stay on the public types for Rust
//! hosts, and the tests check that both encodings agree byte for byte.

use std::borrow::Cow;

/// A parsed JSON value. Numbers are kept as their text (only unsigned integers are ever read);
/// object members keep their raw text too, for fields that pass JSON through unchanged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Json<'a> {
    Null,
    Bool(bool),
    Num(&'a str),
    Str(Cow<'a, str>),
    Arr(Vec<Json<'a>>),
    Obj(Vec<Member<'a>>),
}

/// One `"key": value` of an object, with the value's source text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member<'a> {
    pub key: Cow<'a, str>,
    pub value: Json<'a>,
    pub raw: &'a str,
}

/// Deeper nesting than this is refused, so hostile input cannot exhaust the stack.
const MAX_DEPTH: u32 = 32;

/// Parses one JSON document (surrounding whitespace allowed).
pub fn parse(text: &str) -> Result<Json<'_>, &'static str> {
    let mut p = Parser {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    let value = p.value(0)?;
    p.skip_ws();
    if p.pos != p.bytes.len() {
        return Err("trailing characters after the JSON value");
    }
    Ok(value)
}

impl<'a> Json<'a> {
    /// The member `key` of an object (the last one if repeated, as JavaScript does).
    pub fn member(&self, key: &str) -> Option<&Member<'a>> {
        match self {
            Json::Obj(members) => members.iter().rev().find(|m| m.key == key),
            Json::Null | Json::Bool(_) | Json::Num(_) | Json::Str(_) | Json::Arr(_) => None,
        }
    }

    /// The value of member `key`, treating `null` like an absent member.
    pub fn get(&self, key: &str) -> Option<&Json<'a>> {
        self.member(key)
            .map(|m| &m.value)
            .filter(|v| **v != Json::Null)
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Json::Str(s) => Some(s),
            Json::Null | Json::Bool(_) | Json::Num(_) | Json::Arr(_) | Json::Obj(_) => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Json::Bool(b) => Some(*b),
            Json::Null | Json::Num(_) | Json::Str(_) | Json::Arr(_) | Json::Obj(_) => None,
        }
    }

    /// A number without sign, fraction or exponent that fits in a `u64`.
    pub fn as_u64(&self) -> Option<u64> {
        let Json::Num(text) = self else {
            return None;
        };
        text.bytes().try_fold(0u64, |acc, b| {
            if b.is_ascii_digit() {
                acc.checked_mul(10)?.checked_add(u64::from(b - b'0'))
            } else {
                None
            }
        })
    }
}

struct Parser<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Parser<'a> {
    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.bytes.get(self.pos) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn eat(&mut self, byte: u8) -> bool {
        if self.peek() == Some(byte) {
            self.pos += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, value: Json<'a>) -> Result<Json<'a>, &'static str> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(value)
        } else {
            Err("invalid literal")
        }
    }

    fn value(&mut self, depth: u32) -> Result<Json<'a>, &'static str> {
        if depth > MAX_DEPTH {
            return Err("JSON nested too deeply");
        }
        self.skip_ws();
        match self.peek() {
            None => Err("unexpected end of JSON"),
            Some(b'n') => self.literal("null", Json::Null),
            Some(b't') => self.literal("true", Json::Bool(true)),
            Some(b'f') => self.literal("false", Json::Bool(false)),
            Some(b'"') => Ok(Json::Str(self.string()?)),
            Some(b'[') => {
                self.pos += 1;
                let mut items = Vec::new();
                self.skip_ws();
                if !self.eat(b']') {
                    loop {
                        items.push(self.value(depth + 1)?);
                        self.skip_ws();
                        if self.eat(b']') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err("expected `,` or `]`");
                        }
                    }
                }
                Ok(Json::Arr(items))
            }
            Some(b'{') => {
                self.pos += 1;
                let mut members = Vec::new();
                self.skip_ws();
                if !self.eat(b'}') {
                    loop {
                        self.skip_ws();
                        if self.peek() != Some(b'"') {
                            return Err("expected a string key");
                        }
                        let key = self.string()?;
                        self.skip_ws();
                        if !self.eat(b':') {
                            return Err("expected `:`");
                        }
                        self.skip_ws();
                        let start = self.pos;
                        let value = self.value(depth + 1)?;
                        let raw = &self.text[start..self.pos];
                        members.push(Member { key, value, raw });
                        self.skip_ws();
                        if self.eat(b'}') {
                            break;
                        }
                        if !self.eat(b',') {
                            return Err("expected `,` or `}`");
                        }
                    }
                }
                Ok(Json::Obj(members))
            }
            Some(b'-' | b'0'..=b'9') => self.number(),
            Some(_) => Err("expected a JSON value"),
        }
    }

    fn number(&mut self) -> Result<Json<'a>, &'static str> {
        let start = self.pos;
        self.eat(b'-');
        let digits = |p: &mut Self| {
            let from = p.pos;
            while p.peek().is_some_and(|b| b.is_ascii_digit()) {
                p.pos += 1;
            }
            p.pos > from
        };
        if !digits(self) {
            return Err("invalid number");
        }
        if self.eat(b'.') && !digits(self) {
            return Err("invalid number");
        }
        if matches!(self.peek(), Some(b'e' | b'E')) {
            self.pos += 1;
            if !self.eat(b'+') {
                self.eat(b'-');
            }
            if !digits(self) {
                return Err("invalid number");
            }
        }
        Ok(Json::Num(&self.text[start..self.pos]))
    }

    /// A string starting at the opening quote; borrowed when it has no escapes.
    fn string(&mut self) -> Result<Cow<'a, str>, &'static str> {
        self.pos += 1;
        let start = self.pos;
        loop {
            match self.peek() {
                None => return Err("unterminated string"),
                Some(b'"') => {
                    let s = &self.text[start..self.pos];
                    self.pos += 1;
                    return Ok(Cow::Borrowed(s));
                }
                Some(b'\\') => break,
                Some(0..=0x1f) => return Err("control character in string"),
                Some(_) => self.pos += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.pos]);
        loop {
            // Copy the run up to the next quote or backslash in one go (keeps UTF-8 intact).
            let run = self.pos;
            while let Some(b) = self.peek() {
                if b == b'"' || b == b'\\' {
                    break;
                }
                if b < 0x20 {
                    return Err("control character in string");
                }
                self.pos += 1;
            }
            out.push_str(&self.text[run..self.pos]);
            match self.peek() {
                None => return Err("unterminated string"),
                Some(b'"') => {
                    self.pos += 1;
                    return Ok(Cow::Owned(out));
                }
                Some(_) => {
                    self.pos += 1;
                    let escaped = self.peek().ok_or("unterminated string")?;
                    self.pos += 1;
                    match escaped {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return Err("invalid escape"),
                    }
                }
            }
        }
    }

    /// After `\u`: four hex digits, or a surrogate pair written as two escapes.
    fn unicode_escape(&mut self) -> Result<char, &'static str> {
        let first = self.hex4()?;
        let code = if (0xD800..0xDC00).contains(&first) {
            if !(self.eat(b'\\') && self.eat(b'u')) {
                return Err("unpaired surrogate");
            }
            let second = self.hex4()?;
            if !(0xDC00..0xE000).contains(&second) {
                return Err("unpaired surrogate");
            }
            0x10000 + ((first - 0xD800) << 10) + (second - 0xDC00)
        } else {
            first
        };
        char::from_u32(code).ok_or("unpaired surrogate")
    }

    fn hex4(&mut self) -> Result<u32, &'static str> {
        let mut n = 0;
        for _ in 0..4 {
            let digit = self
                .peek()
                .and_then(|b| char::from(b).to_digit(16))
                .ok_or("invalid \\u escape")?;
            n = n * 16 + digit;
            self.pos += 1;
        }
        Ok(n)
    }
}

/// Builds compact JSON text, spelled exactly as serde_json spells it (tests compare the two).
#[derive(Debug, Default)]
pub struct Writer {
    out: String,
    /// Whether the next member or element needs a comma before it.
    comma: bool,
}

impl Writer {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn finish(self) -> String {
        self.out
    }

    fn sep(&mut self) {
        if self.comma {
            self.out.push(',');
        }
        self.comma = true;
    }

    pub fn begin_object(&mut self) {
        self.sep();
        self.out.push('{');
        self.comma = false;
    }

    pub fn end_object(&mut self) {
        self.out.push('}');
        self.comma = true;
    }

    pub fn begin_array(&mut self) {
        self.sep();
        self.out.push('[');
        self.comma = false;
    }

    pub fn end_array(&mut self) {
        self.out.push(']');
        self.comma = true;
    }

    /// Starts member `key`; the value written next belongs to it.
    pub fn key(&mut self, key: &str) {
        self.sep();
        write_string(&mut self.out, key);
        self.out.push(':');
        self.comma = false;
    }

    pub fn string(&mut self, s: &str) {
        self.sep();
        write_string(&mut self.out, s);
    }

    pub fn u64(&mut self, n: u64) {
        self.sep();
        push_u64(&mut self.out, n);
    }

    pub fn bool(&mut self, b: bool) {
        self.sep();
        self.out.push_str(if b { "true" } else { "false" });
    }

    pub fn null(&mut self) {
        self.sep();
        self.out.push_str("null");
    }

    pub fn opt_string(&mut self, s: Option<&str>) {
        match s {
            Some(s) => self.string(s),
            None => self.null(),
        }
    }

    pub fn opt_u64(&mut self, n: Option<u64>) {
        match n {
            Some(n) => self.u64(n),
            None => self.null(),
        }
    }

    /// `"key":"value"` in one call, the common case.
    pub fn str_member(&mut self, key: &str, value: &str) {
        self.key(key);
        self.string(value);
    }
}

/// Appends `s` as a JSON string literal.
pub fn write_string(out: &mut String, s: &str) {
    out.push('"');
    let mut run = 0;
    for (i, b) in s.bytes().enumerate() {
        let short = match b {
            b'"' => "\\\"",
            b'\\' => "\\\\",
            b'\n' => "\\n",
            b'\r' => "\\r",
            b'\t' => "\\t",
            0x08 => "\\b",
            0x0c => "\\f",
            0..=0x1f => "",
            _ => continue,
        };
        out.push_str(&s[run..i]);
        if short.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            out.push_str("\\u00");
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 0xf)]));
        } else {
            out.push_str(short);
        }
        run = i + 1;
    }
    out.push_str(&s[run..]);
    out.push('"');
}

/// Appends the decimal digits of `n` (no `format!`: the formatting machinery is kept out of
/// the wasm module wherever it is easy to).
pub fn push_u64(out: &mut String, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &d in &digits[i..] {
        out.push(char::from(d));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_what_json_allows() {
        let v = parse(
            r#" {"a": [1, -2.5e3, true, false, null], "b": "x\"\u00e9\ud83d\ude00\n", "a2": {}} "#,
        )
        .unwrap();
        let a = v.get("a").unwrap();
        assert_eq!(
            *a,
            Json::Arr(vec![
                Json::Num("1"),
                Json::Num("-2.5e3"),
                Json::Bool(true),
                Json::Bool(false),
                Json::Null
            ])
        );
        assert_eq!(v.get("b").unwrap().as_str(), Some("x\"é😀\n"));
        assert_eq!(v.member("a2").unwrap().raw, "{}");
        assert_eq!(v.member("a").unwrap().raw, "[1, -2.5e3, true, false, null]");
        assert_eq!(parse("\"é\"").unwrap().as_str(), Some("é"));
    }

    #[test]
    fn rejects_what_json_does_not_allow() {
        for bad in [
            "",
            " ",
            "{",
            "}",
            "[1,]",
            "{\"a\":}",
            "{a:1}",
            "01x",
            "-",
            "1.",
            "1e",
            "tru",
            "\"\\x\"",
            "\"\u{1}\"",
            "\"abc",
            "\"\\ud800\"",
            "1 2",
            "{\"a\" 1}",
            "[1 2]",
        ] {
            assert!(parse(bad).is_err(), "{bad:?} must be rejected");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert_eq!(parse(&deep), Err("JSON nested too deeply"));
    }

    #[test]
    fn reads_only_plain_unsigned_integers() {
        let n = |t: &str| parse(t).unwrap().as_u64();
        assert_eq!(n("0"), Some(0));
        assert_eq!(n("18446744073709551615"), Some(u64::MAX));
        assert_eq!(n("18446744073709551616"), None);
        assert_eq!(n("-1"), None);
        assert_eq!(n("1.5"), None);
        assert_eq!(n("1e3"), None);
        assert_eq!(n("\"1\""), None);
    }

    #[test]
    fn null_members_count_as_absent() {
        let v = parse(r#"{"a":null,"b":1,"b":2}"#).unwrap();
        assert!(v.get("a").is_none());
        assert!(v.member("a").is_some());
        assert_eq!(v.get("b").unwrap().as_u64(), Some(2));
    }

    #[test]
    fn writes_like_serde_json() {
        for s in [
            "",
            "plain",
            "q\"b\\s/",
            "\u{0}\u{1f}\u{8}\u{c}\n\r\t",
            "é😀",
            "\u{7f}",
        ] {
            let mut out = String::new();
            write_string(&mut out, s);
            assert_eq!(out, serde_json::to_string(s).unwrap());
            assert_eq!(parse(&out).unwrap().as_str(), Some(s));
        }
        for n in [0, 7, 10, 1_700_000_000_000, u64::MAX] {
            let mut out = String::new();
            push_u64(&mut out, n);
            assert_eq!(out, n.to_string());
        }
        let mut w = Writer::new();
        w.begin_array();
        w.begin_object();
        w.str_member("a", "b");
        w.key("n");
        w.opt_u64(None);
        w.key("t");
        w.bool(true);
        w.end_object();
        w.u64(3);
        w.end_array();
        assert_eq!(w.finish(), r#"[{"a":"b","n":null,"t":true},3]"#);
    }
}
