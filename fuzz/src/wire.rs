//! A schema-free protobuf mutator: parse a message into its fields (a length-delimited field that
//! parses back to the same bytes as a message is taken for one), change leaves or whole fields as
//! an `arbitrary` list of [`Mutation`]s says, and encode it again with every length fixed up. It
//! lets a fuzzer change one number deep inside a stored plan and still get a well-formed message,
//! which random bytes almost never are.

use arbitrary::Arbitrary;

#[derive(Clone, Debug)]
pub enum Value {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(Vec<u8>),
    Msg(Vec<Field>),
}

#[derive(Clone, Debug)]
pub struct Field {
    pub tag: u32,
    pub value: Value,
}

fn varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

fn put_varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// The fields of a message, `None` when `b` is not one (or not one that re-encodes to itself).
pub fn parse(b: &[u8]) -> Option<Vec<Field>> {
    parse_at(b, 0)
}

fn parse_at(b: &[u8], depth: u32) -> Option<Vec<Field>> {
    let mut at = 0;
    let mut fields = Vec::new();
    while at < b.len() {
        let key = varint(b, &mut at)?;
        let (tag, wire) = ((key >> 3) as u32, key & 7);
        if tag == 0 || tag > 64 {
            return None;
        }
        let value = match wire {
            0 => Value::Varint(varint(b, &mut at)?),
            1 => {
                let v = u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?);
                at += 8;
                Value::Fixed64(v)
            }
            2 => {
                let len = varint(b, &mut at)? as usize;
                let end = at.checked_add(len).filter(|&e| e <= b.len())?;
                let inner = &b[at..end];
                at = end;
                let msg = (depth < 8 && !inner.is_empty() && inner.len() <= 4096)
                    .then(|| parse_at(inner, depth + 1))
                    .flatten()
                    .filter(|f| encode(f) == inner);
                match msg {
                    Some(f) => Value::Msg(f),
                    None => Value::Bytes(inner.to_vec()),
                }
            }
            5 => {
                let v = u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?);
                at += 4;
                Value::Fixed32(v)
            }
            _ => return None,
        };
        fields.push(Field { tag, value });
    }
    Some(fields)
}

pub fn encode(fields: &[Field]) -> Vec<u8> {
    let mut out = Vec::new();
    encode_into(fields, &mut out);
    out
}

fn encode_into(fields: &[Field], out: &mut Vec<u8>) {
    for f in fields {
        let wire = match f.value {
            Value::Varint(_) => 0,
            Value::Fixed64(_) => 1,
            Value::Bytes(_) | Value::Msg(_) => 2,
            Value::Fixed32(_) => 5,
        };
        put_varint(((f.tag as u64) << 3) | wire, out);
        match &f.value {
            Value::Varint(v) => put_varint(*v, out),
            Value::Fixed64(v) => out.extend(v.to_le_bytes()),
            Value::Fixed32(v) => out.extend(v.to_le_bytes()),
            Value::Bytes(b) => {
                put_varint(b.len() as u64, out);
                out.extend(b);
            }
            Value::Msg(m) => {
                let inner = encode(m);
                put_varint(inner.len() as u64, out);
                out.extend(inner);
            }
        }
    }
}

/// One change; `at` counts fields in depth-first order (wrapping around).
#[derive(Arbitrary, Clone, Debug)]
pub enum Mutation {
    /// A number set to a value (a float field takes the value's low 32 bits).
    Set { at: u16, value: u64 },
    /// A number moved by a small step.
    Add { at: u16, delta: i8 },
    /// A number set to a boundary: 0, 1, 2, 15, 16, 17, 255, 256, 2³¹−1, 2³¹, 2³², u32::MAX,
    /// i64::MAX, u64::MAX, 2⁶², or, for floats, NaN, ±inf, 0, −0, 1e30.
    Special { at: u16, which: u8 },
    /// A field removed (a repeated element, an optional field, a oneof's member).
    Delete { at: u16 },
    /// A field repeated right after itself.
    Duplicate { at: u16 },
    /// A bytes field (packed floats: weights, biases) grown or cut by `delta` × 4 bytes.
    Resize { at: u16, delta: i8 },
}

fn count(fields: &[Field]) -> usize {
    fields
        .iter()
        .map(|f| match &f.value {
            Value::Msg(m) => 1 + count(m),
            _ => 1,
        })
        .sum()
}

const SPECIAL: [u64; 15] = [
    0,
    1,
    2,
    15,
    16,
    17,
    255,
    256,
    (1 << 31) - 1,
    1 << 31,
    1 << 32,
    u32::MAX as u64,
    i64::MAX as u64,
    u64::MAX,
    1 << 62,
];

const SPECIAL_F32: [f32; 6] = [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, 0.0, -0.0, 1e30];

/// Applies `m` to `fields`.
pub fn apply(fields: &mut Vec<Field>, m: &Mutation) {
    let n = count(fields);
    if n == 0 {
        return;
    }
    let at = match *m {
        Mutation::Set { at, .. }
        | Mutation::Add { at, .. }
        | Mutation::Special { at, .. }
        | Mutation::Delete { at }
        | Mutation::Duplicate { at }
        | Mutation::Resize { at, .. } => at as usize % n,
    };
    let mut k = at;
    visit(fields, &mut k, m);
}

/// Walks to the `k`-th field; returns true once it has been changed.
fn visit(fields: &mut Vec<Field>, k: &mut usize, m: &Mutation) -> bool {
    let mut i = 0;
    while i < fields.len() {
        if *k == 0 {
            match m {
                Mutation::Delete { .. } => {
                    fields.remove(i);
                }
                Mutation::Duplicate { .. } => {
                    let f = fields[i].clone();
                    fields.insert(i + 1, f);
                }
                _ => change(&mut fields[i].value, m),
            }
            return true;
        }
        *k -= 1;
        if let Value::Msg(inner) = &mut fields[i].value {
            if visit(inner, k, m) {
                return true;
            }
        }
        i += 1;
    }
    false
}

fn change(v: &mut Value, m: &Mutation) {
    match (v, m) {
        (Value::Varint(x) | Value::Fixed64(x), Mutation::Set { value, .. }) => *x = *value,
        (Value::Varint(x) | Value::Fixed64(x), Mutation::Add { delta, .. }) => {
            *x = x.wrapping_add(*delta as i64 as u64)
        }
        (Value::Varint(x) | Value::Fixed64(x), Mutation::Special { which, .. }) => {
            *x = SPECIAL[*which as usize % SPECIAL.len()]
        }
        (Value::Fixed32(x), Mutation::Set { value, .. }) => *x = *value as u32,
        (Value::Fixed32(x), Mutation::Add { delta, .. }) => {
            *x = (f32::from_bits(*x) + *delta as f32).to_bits()
        }
        (Value::Fixed32(x), Mutation::Special { which, .. }) => {
            *x = SPECIAL_F32[*which as usize % SPECIAL_F32.len()].to_bits()
        }
        (Value::Bytes(b), Mutation::Resize { delta, .. }) => {
            let d = *delta as isize * 4;
            if d < 0 {
                b.truncate(b.len().saturating_sub(d.unsigned_abs()));
            } else {
                b.extend(std::iter::repeat_n(0u8, d as usize));
            }
        }
        (Value::Bytes(b), Mutation::Set { value, .. }) if !b.is_empty() => {
            // One byte of a string or packed array.
            let i = (*value >> 8) as usize % b.len();
            b[i] = *value as u8;
        }
        (Value::Msg(fields), Mutation::Resize { delta, .. }) => {
            // A message emptied (delta < 0) or left alone.
            if *delta < 0 {
                fields.clear();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let plan = crate::seeds::tiny_classifier();
        let f = super::parse(&plan).unwrap();
        assert_eq!(super::encode(&f), plan);
    }
}
