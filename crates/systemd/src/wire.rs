//! The D-Bus wire format (the D-Bus specification, "Message Protocol"): values, their
//! signatures, marshalling with the alignment rules, and whole messages.
//!
//! Every value is aligned to its type's boundary counted from the start of the message
//! (1 for `y g v`, 4 for `b u i s o a`, 8 for `t x` and structs); the body starts at an
//! 8-byte boundary, so a body marshalled from offset 0 lines up. Berth writes little-endian
//! messages and reads both byte orders.

use std::fmt::Write as _;

/// A D-Bus value, typed enough to marshal it and to know its signature.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Byte(u8),
    Bool(bool),
    I32(i32),
    U32(u32),
    I64(i64),
    U64(u64),
    Str(String),
    Path(String),
    Sig(String),
    Variant(Box<Value>),
    /// The element signature (so that an empty array has one) and the elements.
    Array(String, Vec<Value>),
    Struct(Vec<Value>),
}

impl Value {
    pub fn str(s: impl Into<String>) -> Value {
        Value::Str(s.into())
    }

    pub fn variant(v: Value) -> Value {
        Value::Variant(Box::new(v))
    }

    /// This value's signature (one complete type).
    pub fn signature(&self) -> String {
        match self {
            Value::Byte(_) => "y".into(),
            Value::Bool(_) => "b".into(),
            Value::I32(_) => "i".into(),
            Value::U32(_) => "u".into(),
            Value::I64(_) => "x".into(),
            Value::U64(_) => "t".into(),
            Value::Str(_) => "s".into(),
            Value::Path(_) => "o".into(),
            Value::Sig(_) => "g".into(),
            Value::Variant(_) => "v".into(),
            Value::Array(elem, _) => format!("a{elem}"),
            Value::Struct(fields) => {
                let mut s = String::from("(");
                for f in fields {
                    s.push_str(&f.signature());
                }
                s.push(')');
                s
            }
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) | Value::Path(s) | Value::Sig(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_u32(&self) -> Option<u32> {
        match self {
            Value::U32(n) => Some(*n),
            _ => None,
        }
    }
}

/// The signature of a list of values (a message body).
pub fn signature_of(values: &[Value]) -> String {
    values.iter().map(Value::signature).collect()
}

fn alignment(code: u8) -> usize {
    match code {
        b'y' | b'g' | b'v' => 1,
        b'n' | b'q' => 2,
        b'b' | b'i' | b'u' | b's' | b'o' | b'a' | b'h' => 4,
        _ => 8, // x t d ( {
    }
}

/// Marshals values little-endian into a buffer whose offset 0 is 8-aligned in the message.
#[derive(Debug, Default)]
pub struct Writer {
    pub buf: Vec<u8>,
}

impl Writer {
    fn pad(&mut self, align: usize) {
        while !self.buf.len().is_multiple_of(align) {
            self.buf.push(0);
        }
    }

    fn u32(&mut self, n: u32) {
        self.pad(4);
        self.buf.extend_from_slice(&n.to_le_bytes());
    }

    fn string(&mut self, s: &str) {
        self.u32(s.len() as u32);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
    }

    pub fn value(&mut self, v: &Value) {
        match v {
            Value::Byte(b) => self.buf.push(*b),
            Value::Bool(b) => self.u32(u32::from(*b)),
            Value::I32(n) => {
                self.pad(4);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U32(n) => self.u32(*n),
            Value::I64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::U64(n) => {
                self.pad(8);
                self.buf.extend_from_slice(&n.to_le_bytes());
            }
            Value::Str(s) | Value::Path(s) => self.string(s),
            Value::Sig(s) => {
                self.buf.push(s.len() as u8);
                self.buf.extend_from_slice(s.as_bytes());
                self.buf.push(0);
            }
            Value::Variant(inner) => {
                let sig = inner.signature();
                self.value(&Value::Sig(sig));
                self.value(inner);
            }
            Value::Array(elem, items) => {
                self.u32(0);
                let len_at = self.buf.len() - 4;
                // The padding to the first element is not counted in the length.
                self.pad(alignment(elem.as_bytes().first().copied().unwrap_or(b'y')));
                let start = self.buf.len();
                for item in items {
                    self.value(item);
                }
                let len = (self.buf.len() - start) as u32;
                self.buf[len_at..len_at + 4].copy_from_slice(&len.to_le_bytes());
            }
            Value::Struct(fields) => {
                self.pad(8);
                for f in fields {
                    self.value(f);
                }
            }
        }
    }
}

/// A malformed message or value: what was wrong and where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Malformed(pub String);

type Parse<T> = Result<T, Malformed>;

/// Reads values of a given signature from a message buffer.
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    little: bool,
    depth: usize,
}

impl<'a> Reader<'a> {
    /// `buf` starts at an 8-aligned offset of its message.
    pub fn new(buf: &'a [u8], little: bool) -> Reader<'a> {
        Reader {
            buf,
            pos: 0,
            little,
            depth: 0,
        }
    }

    fn bad<T>(&self, why: impl Into<String>) -> Parse<T> {
        Err(Malformed(format!("{} at byte {}", why.into(), self.pos)))
    }

    fn align(&mut self, n: usize) -> Parse<()> {
        let to = self.pos.div_ceil(n) * n;
        if to > self.buf.len() {
            return self.bad("padding past the end");
        }
        self.pos = to;
        Ok(())
    }

    fn take(&mut self, n: usize) -> Parse<&'a [u8]> {
        if self.buf.len() - self.pos < n {
            return self.bad(format!(
                "{n} bytes wanted, {} left",
                self.buf.len() - self.pos
            ));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn u32(&mut self) -> Parse<u32> {
        self.align(4)?;
        let b: [u8; 4] = self.take(4)?.try_into().expect("4 bytes");
        Ok(if self.little {
            u32::from_le_bytes(b)
        } else {
            u32::from_be_bytes(b)
        })
    }

    fn u64(&mut self) -> Parse<u64> {
        self.align(8)?;
        let b: [u8; 8] = self.take(8)?.try_into().expect("8 bytes");
        Ok(if self.little {
            u64::from_le_bytes(b)
        } else {
            u64::from_be_bytes(b)
        })
    }

    fn text(&mut self, len: usize) -> Parse<String> {
        let bytes = self.take(len + 1)?;
        if bytes[len] != 0 {
            return self.bad("a string without its NUL");
        }
        match std::str::from_utf8(&bytes[..len]) {
            Ok(s) => Ok(s.to_string()),
            Err(_) => self.bad("a string that is not UTF-8"),
        }
    }

    /// Reads the values of `sig` (a sequence of complete types).
    pub fn values(&mut self, sig: &str) -> Parse<Vec<Value>> {
        let mut out = Vec::new();
        let mut rest = sig;
        while !rest.is_empty() {
            let (one, tail) = split_type(rest)?;
            out.push(self.value(one)?);
            rest = tail;
        }
        Ok(out)
    }

    /// Reads one value of the complete type `sig`.
    pub fn value(&mut self, sig: &str) -> Parse<Value> {
        self.depth += 1;
        if self.depth > 64 {
            return self.bad("values nested deeper than 64");
        }
        let v = self.value_inner(sig);
        self.depth -= 1;
        v
    }

    fn value_inner(&mut self, sig: &str) -> Parse<Value> {
        let code = sig.as_bytes()[0];
        Ok(match code {
            b'y' => Value::Byte(self.take(1)?[0]),
            b'b' => match self.u32()? {
                0 => Value::Bool(false),
                1 => Value::Bool(true),
                n => return self.bad(format!("boolean {n}")),
            },
            b'i' => Value::I32(self.u32()? as i32),
            b'u' => Value::U32(self.u32()?),
            b'x' => Value::I64(self.u64()? as i64),
            b't' => Value::U64(self.u64()?),
            b's' | b'o' => {
                let len = self.u32()? as usize;
                let s = self.text(len)?;
                if code == b's' {
                    Value::Str(s)
                } else {
                    Value::Path(s)
                }
            }
            b'g' => {
                let len = self.take(1)?[0] as usize;
                Value::Sig(self.text(len)?)
            }
            b'v' => {
                let len = self.take(1)?[0] as usize;
                let inner = self.text(len)?;
                let (one, rest) = split_type(&inner)?;
                if !rest.is_empty() {
                    return self.bad(format!("variant signature {inner:?} is not one type"));
                }
                Value::variant(self.value(one)?)
            }
            b'a' => {
                let elem = &sig[1..];
                let len = self.u32()? as usize;
                if len > 64 << 20 {
                    return self.bad(format!("array of {len} bytes"));
                }
                self.align(alignment(elem.as_bytes()[0]))?;
                let end = self.pos + len;
                if end > self.buf.len() {
                    return self.bad(format!("array of {len} bytes past the end"));
                }
                let mut items = Vec::new();
                while self.pos < end {
                    items.push(self.value(elem)?);
                }
                if self.pos != end {
                    return self.bad("array elements overrun its length");
                }
                Value::Array(elem.to_string(), items)
            }
            b'(' | b'{' => {
                self.align(8)?;
                let inner = &sig[1..sig.len() - 1];
                Value::Struct(self.values(inner)?)
            }
            other => return self.bad(format!("type code {:?} is not supported", other as char)),
        })
    }
}

/// Splits the first complete type off a signature.
pub fn split_type(sig: &str) -> Parse<(&str, &str)> {
    if sig.len() > MAX_SIGNATURE {
        return Err(Malformed(format!(
            "a signature of {} bytes (at most {MAX_SIGNATURE})",
            sig.len()
        )));
    }
    let b = sig.as_bytes();
    let end = type_end(b, 0, 0, 0).ok_or_else(|| Malformed(format!("bad signature {sig:?}")))?;
    Ok((&sig[..end], &sig[end..]))
}

/// The longest signature the specification allows.
pub const MAX_SIGNATURE: usize = 255;
/// The deepest array and struct nesting the specification allows, each.
const MAX_NESTING: usize = 32;

/// Where the complete type at `at` ends; `arrays` and `structs` count the enclosing ones,
/// so a hostile signature cannot recurse without bound.
fn type_end(b: &[u8], at: usize, arrays: usize, structs: usize) -> Option<usize> {
    match *b.get(at)? {
        b'y' | b'b' | b'n' | b'q' | b'i' | b'u' | b'x' | b't' | b'd' | b's' | b'o' | b'g'
        | b'v' | b'h' => Some(at + 1),
        b'a' if arrays < MAX_NESTING => type_end(b, at + 1, arrays + 1, structs),
        open @ (b'(' | b'{') if structs < MAX_NESTING => {
            let close = if open == b'(' { b')' } else { b'}' };
            let mut i = at + 1;
            while *b.get(i)? != close {
                i = type_end(b, i, arrays, structs + 1)?;
            }
            (i > at + 1).then_some(i + 1)
        }
        _ => None,
    }
}

/// Message types.
pub const METHOD_CALL: u8 = 1;
pub const METHOD_RETURN: u8 = 2;
pub const ERROR: u8 = 3;
pub const SIGNAL: u8 = 4;

/// A whole message: the header fields berth uses, and the body.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Message {
    pub kind: u8,
    pub flags: u8,
    pub serial: u32,
    pub path: Option<String>,
    pub interface: Option<String>,
    pub member: Option<String>,
    pub error_name: Option<String>,
    pub reply_serial: Option<u32>,
    pub destination: Option<String>,
    pub sender: Option<String>,
    pub body: Vec<Value>,
}

impl Message {
    pub fn method_call(
        destination: &str,
        path: &str,
        interface: &str,
        member: &str,
        body: Vec<Value>,
    ) -> Message {
        Message {
            kind: METHOD_CALL,
            path: Some(path.into()),
            interface: Some(interface.into()),
            member: Some(member.into()),
            destination: Some(destination.into()),
            body,
            ..Message::default()
        }
    }

    /// The wire bytes: little-endian, protocol version 1.
    pub fn encode(&self) -> Vec<u8> {
        let mut body = Writer::default();
        for v in &self.body {
            body.value(v);
        }
        let mut fields = Vec::new();
        let mut field = |code: u8, v: Value| {
            fields.push(Value::Struct(vec![Value::Byte(code), Value::variant(v)]));
        };
        if let Some(p) = &self.path {
            field(1, Value::Path(p.clone()));
        }
        if let Some(s) = &self.interface {
            field(2, Value::str(s));
        }
        if let Some(s) = &self.member {
            field(3, Value::str(s));
        }
        if let Some(s) = &self.error_name {
            field(4, Value::str(s));
        }
        if let Some(n) = self.reply_serial {
            field(5, Value::U32(n));
        }
        if let Some(s) = &self.destination {
            field(6, Value::str(s));
        }
        if let Some(s) = &self.sender {
            field(7, Value::str(s));
        }
        if !self.body.is_empty() {
            field(8, Value::Sig(signature_of(&self.body)));
        }
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[b'l', self.kind, self.flags, 1]);
        w.buf
            .extend_from_slice(&(body.buf.len() as u32).to_le_bytes());
        w.buf.extend_from_slice(&self.serial.to_le_bytes());
        w.value(&Value::Array("(yv)".into(), fields));
        w.pad(8);
        w.buf.extend_from_slice(&body.buf);
        w.buf
    }

    /// The total length of the message whose first 16 bytes are `fixed`.
    pub fn total_len(fixed: &[u8; 16]) -> Parse<usize> {
        let little = match fixed[0] {
            b'l' => true,
            b'B' => false,
            e => return Err(Malformed(format!("endianness byte {e:#x}"))),
        };
        let word = |at: usize| {
            let b: [u8; 4] = fixed[at..at + 4].try_into().expect("4 bytes");
            (if little {
                u32::from_le_bytes(b)
            } else {
                u32::from_be_bytes(b)
            }) as usize
        };
        let (body, fields) = (word(4), word(12));
        // Far above anything systemd sends berth (the specification allows 128 MiB).
        if body > 16 << 20 || fields > 1 << 20 {
            return Err(Malformed(format!(
                "message of {body} body bytes and {fields} header bytes is too large"
            )));
        }
        Ok((16 + fields).div_ceil(8) * 8 + body)
    }

    /// Parses one whole message.
    pub fn decode(bytes: &[u8]) -> Parse<Message> {
        Message::decode_header(bytes)?.decode_body(bytes)
    }

    /// Parses the header of one whole message and leaves the body for later, so that a
    /// message nobody waits for can be dropped without decoding it.
    pub fn decode_header(bytes: &[u8]) -> Parse<Header> {
        if bytes.len() < 16 {
            return Err(Malformed(format!("a message of {} bytes", bytes.len())));
        }
        let fixed: &[u8; 16] = bytes[..16].try_into().expect("16 bytes");
        let total = Message::total_len(fixed)?;
        if total != bytes.len() {
            return Err(Malformed(format!(
                "message length {} where the header says {total}",
                bytes.len()
            )));
        }
        let little = bytes[0] == b'l';
        if bytes[3] != 1 {
            return Err(Malformed(format!("protocol version {}", bytes[3])));
        }
        let mut r = Reader::new(bytes, little);
        r.pos = 4;
        let body_len = r.u32()? as usize;
        let serial = r.u32()?;
        let Value::Array(_, fields) = r.value("a(yv)")? else {
            unreachable!("an array signature reads an array")
        };
        r.align(8)?;
        let body_start = r.pos;
        let mut message = Message {
            kind: bytes[1],
            flags: bytes[2],
            serial,
            ..Message::default()
        };
        let mut signature = String::new();
        for f in fields {
            let Value::Struct(pair) = f else { continue };
            let (Some(Value::Byte(code)), Some(Value::Variant(v))) = (pair.first(), pair.get(1))
            else {
                continue;
            };
            // Each known field has one type (the specification's table); a peer that sends
            // another is refused rather than read as text.
            let want = match code {
                1 => "o",
                2 | 3 | 4 | 6 | 7 => "s",
                5 => "u",
                8 => "g",
                _ => continue,
            };
            if v.signature() != want {
                return Err(Malformed(format!(
                    "header field {code} of type {:?}, not {want:?}",
                    v.signature()
                )));
            }
            let text = v.as_str().map(str::to_string);
            match code {
                1 => message.path = text,
                2 => message.interface = text,
                3 => message.member = text,
                4 => message.error_name = text,
                5 => message.reply_serial = v.as_u32(),
                6 => message.destination = text,
                7 => message.sender = text,
                _ => signature = text.unwrap_or_default(),
            }
        }
        Ok(Header {
            message,
            signature,
            body_start,
            body_len,
            little,
        })
    }
}

/// A message whose header is read and whose body is not yet.
#[derive(Debug)]
pub struct Header {
    /// The message, its body still empty.
    pub message: Message,
    /// The body's signature.
    pub signature: String,
    body_start: usize,
    /// The body's length in bytes.
    pub body_len: usize,
    little: bool,
}

impl Header {
    /// Decodes the body from the same bytes the header came from.
    pub fn decode_body(self, bytes: &[u8]) -> Parse<Message> {
        let Header {
            mut message,
            signature: sig,
            body_start,
            body_len,
            little,
        } = self;
        let body = &bytes[body_start..body_start + body_len];
        let mut br = Reader::new(body, little);
        message.body = br.values(&sig)?;
        if br.pos != body.len() {
            return Err(Malformed(format!(
                "body of signature {sig:?} has {} bytes left over",
                body.len() - br.pos
            )));
        }
        Ok(message)
    }
}

/// Bytes as a hex string, for test failure messages.
pub fn hex(bytes: &[u8]) -> String {
    let mut s = String::new();
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(v: &Value) -> Vec<u8> {
        let mut w = Writer::default();
        w.value(v);
        w.buf
    }

    #[test]
    fn basic_types_marshal_as_the_specification_says() {
        assert_eq!(bytes(&Value::Bool(true)), [1, 0, 0, 0]);
        assert_eq!(bytes(&Value::U64(0x0102)), [2, 1, 0, 0, 0, 0, 0, 0]);
        assert_eq!(bytes(&Value::str("ab")), [2, 0, 0, 0, b'a', b'b', 0]);
        assert_eq!(bytes(&Value::Sig("as".into())), [2, b'a', b's', 0]);
        // A variant: its signature, then the value aligned from where the signature ended.
        assert_eq!(
            bytes(&Value::variant(Value::U32(7))),
            [1, b'u', 0, 0, 7, 0, 0, 0]
        );
    }

    #[test]
    fn array_length_excludes_the_padding_before_its_first_element() {
        // at 0: u32 length = 8; at 4: 4 bytes pad to 8 for `t`; at 8: the element.
        let v = Value::Array("t".into(), vec![Value::U64(5)]);
        assert_eq!(bytes(&v), [8, 0, 0, 0, 0, 0, 0, 0, 5, 0, 0, 0, 0, 0, 0, 0]);
        // An empty array of structs still pads to the struct boundary.
        let e = Value::Array("(sv)".into(), vec![]);
        assert_eq!(bytes(&e), [0, 0, 0, 0, 0, 0, 0, 0]);
        // a(yv) with one (y,v=u): len 8 counts the struct from offset 8 to 16.
        let f = Value::Array(
            "(yv)".into(),
            vec![Value::Struct(vec![
                Value::Byte(5),
                Value::variant(Value::U32(1)),
            ])],
        );
        assert_eq!(
            bytes(&f),
            [8, 0, 0, 0, 0, 0, 0, 0, 5, 1, b'u', 0, 1, 0, 0, 0]
        );
    }

    #[test]
    fn hello_encodes_byte_for_byte() {
        // org.freedesktop.DBus.Hello as every client sends it first, serial 1.
        let mut m = Message::method_call(
            "org.freedesktop.DBus",
            "/org/freedesktop/DBus",
            "org.freedesktop.DBus",
            "Hello",
            vec![],
        );
        m.serial = 1;
        let mut want: Vec<u8> = vec![b'l', 1, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0];
        let fields_len_at = want.len();
        want.extend_from_slice(&[0; 4]);
        let push_field = |want: &mut Vec<u8>, code: u8, sig: u8, s: &str| {
            while !want.len().is_multiple_of(8) {
                want.push(0);
            }
            want.extend_from_slice(&[code, 1, sig, 0]);
            want.extend_from_slice(&(s.len() as u32).to_le_bytes());
            want.extend_from_slice(s.as_bytes());
            want.push(0);
        };
        push_field(&mut want, 1, b'o', "/org/freedesktop/DBus");
        push_field(&mut want, 2, b's', "org.freedesktop.DBus");
        push_field(&mut want, 3, b's', "Hello");
        push_field(&mut want, 6, b's', "org.freedesktop.DBus");
        let fields_len = (want.len() - 16) as u32;
        want[fields_len_at..fields_len_at + 4].copy_from_slice(&fields_len.to_le_bytes());
        while !want.len().is_multiple_of(8) {
            want.push(0);
        }
        assert_eq!(hex(&m.encode()), hex(&want));
        assert_eq!(Message::decode(&want).unwrap(), m);
    }

    #[test]
    fn messages_round_trip_with_nested_bodies() {
        let mut m = Message::method_call(
            "org.freedesktop.systemd1",
            "/org/freedesktop/systemd1",
            "org.freedesktop.systemd1.Manager",
            "StartTransientUnit",
            vec![
                Value::str("berth-x.scope"),
                Value::str("fail"),
                Value::Array(
                    "(sv)".into(),
                    vec![
                        Value::Struct(vec![
                            Value::str("PIDs"),
                            Value::variant(Value::Array("u".into(), vec![Value::U32(42)])),
                        ]),
                        Value::Struct(vec![
                            Value::str("MemoryMax"),
                            Value::variant(Value::U64(1 << 30)),
                        ]),
                        Value::Struct(vec![
                            Value::str("AllowedCPUs"),
                            Value::variant(Value::Array("y".into(), vec![Value::Byte(3)])),
                        ]),
                    ],
                ),
                Value::Array("(sa(sv))".into(), vec![]),
            ],
        );
        m.serial = 9;
        let wire = m.encode();
        assert_eq!(wire.len() % 8, 0);
        let back = Message::decode(&wire).unwrap();
        assert_eq!(back, m);
        assert_eq!(signature_of(&back.body), "ssa(sv)a(sa(sv))");
    }

    #[test]
    fn hostile_messages_are_refused_not_trusted() {
        let mut m = Message::method_call("d", "/p", "i.f", "M", vec![Value::str("x")]);
        m.serial = 1;
        let wire = m.encode();
        // Truncated.
        assert!(Message::decode(&wire[..wire.len() - 1]).is_err());
        // A string length running past the end of the body.
        let mut long = wire.clone();
        let at = long.len() - 6;
        long[at] = 0xff;
        assert!(Message::decode(&long).is_err());
        // Unknown endianness.
        let mut e = wire.clone();
        e[0] = b'x';
        assert!(Message::decode(&e).is_err());
        // Bad signatures.
        assert!(split_type("a").is_err());
        assert!(split_type("()").is_err());
        assert!(split_type("(s").is_err());
        assert_eq!(split_type("a(sv)s").unwrap(), ("a(sv)", "s"));
    }

    /// A message with these header fields (each `(y, v)`) and body bytes.
    fn raw_message(fields: Vec<(u8, Value)>, body: &[u8]) -> Vec<u8> {
        let fields = fields
            .into_iter()
            .map(|(code, v)| Value::Struct(vec![Value::Byte(code), Value::variant(v)]))
            .collect();
        let mut w = Writer::default();
        w.buf.extend_from_slice(&[b'l', SIGNAL, 0, 1]);
        w.buf.extend_from_slice(&(body.len() as u32).to_le_bytes());
        w.buf.extend_from_slice(&1u32.to_le_bytes());
        w.value(&Value::Array("(yv)".into(), fields));
        w.pad(8);
        w.buf.extend_from_slice(body);
        w.buf
    }

    #[test]
    fn header_fields_of_the_wrong_type_are_refused() {
        let body = [1, 0, 0, 0];
        let good = raw_message(
            vec![
                (1, Value::Path("/a".into())),
                (3, Value::str("M")),
                (5, Value::U32(7)),
                (8, Value::Sig("u".into())),
            ],
            &body,
        );
        let m = Message::decode(&good).unwrap();
        assert_eq!(m.body, vec![Value::U32(1)]);
        assert_eq!(m.reply_serial, Some(7));
        // The body signature as a string (which could be 4 GiB long), a path as a string,
        // a member as a path, a reply serial as a string: each refused, naming the field.
        for (code, v, want) in [
            (
                8,
                Value::str("u"),
                "header field 8 of type \"s\", not \"g\"",
            ),
            (
                1,
                Value::str("/a"),
                "header field 1 of type \"s\", not \"o\"",
            ),
            (
                3,
                Value::Path("/M".into()),
                "header field 3 of type \"o\", not \"s\"",
            ),
            (
                5,
                Value::str("7"),
                "header field 5 of type \"s\", not \"u\"",
            ),
        ] {
            let bad = raw_message(vec![(code, v)], &[]);
            let e = Message::decode(&bad).unwrap_err();
            assert_eq!(e.0, want);
        }
        // Unknown fields are skipped, whatever their type.
        let unknown = raw_message(vec![(200, Value::U64(1))], &[]);
        assert!(Message::decode(&unknown).is_ok());
    }

    #[test]
    fn signatures_are_bounded_in_length_and_nesting() {
        // The specification's limits: 32 nested arrays and 32 nested structs, 255 bytes.
        let arrays = |n: usize| format!("{}y", "a".repeat(n));
        let structs = |n: usize| format!("{}y{}", "(".repeat(n), ")".repeat(n));
        assert!(split_type(&arrays(32)).is_ok());
        assert!(split_type(&arrays(33)).is_err());
        assert!(split_type(&structs(32)).is_ok());
        assert!(split_type(&structs(33)).is_err());
        let both = format!("{}{}", "a".repeat(32), structs(32));
        assert!(split_type(&both).is_ok());
        // No stack overflow on a hostile signature, however long.
        let e = split_type(&arrays(1 << 20)).unwrap_err();
        assert!(e.0.contains("at most 255"), "{}", e.0);
        let e = split_type(&"(".repeat(200)).unwrap_err();
        assert!(e.0.contains("bad signature"), "{}", e.0);
    }
}
