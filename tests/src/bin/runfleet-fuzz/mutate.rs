//! The mutator: turns a seed into a nearby input, the way a byte-level
//! fuzzer does (bit flips, interesting bytes, insertions, deletions,
//! duplications, splices with another seed), plus JSON-aware moves that
//! reach the contract's corners: a token from the dictionary put anywhere,
//! a string's or a number's text replaced.

use fastrand::Rng;
use serde_json::Value;

/// Byte values that tend to matter to parsers.
const INTERESTING_BYTES: &[u8] = &[
    0x00, 0x01, 0x09, b'\n', b'\r', b' ', b'"', b'\\', b'{', b'}', b'[', b']', b',', b':', b'.',
    b'*', b'>', b'~', b'=', b'#', 0x7f, 0x80, 0xbf, 0xc0, 0xc3, 0xe9, 0xed, 0xf0, 0xf4, 0xff,
];

/// Fragments put into inputs as they are.
const DICTIONARY: &[&str] = &[
    "\"\\u0000\"",
    "\\u0000",
    "\\ud800",
    "\"\\udfff\"",
    "\\ud83d\\ude00",
    "\\\"",
    "\\n",
    "1e999",
    "-0",
    "0.0",
    "1.5",
    "-1",
    "0",
    "18446744073709551615",
    "18446744073709551616",
    "9223372036854775808",
    "-9223372036854775809",
    "1e-400",
    "null",
    "true",
    "false",
    "[]",
    "{}",
    "\"\"",
    "\" \"",
    "\"a.b\"",
    "\"a*\"",
    "\"a>\"",
    "\"é\"",
    "\"2026-02-30T25:61:00Z\"",
    "\"2026-12-01T00:00:00Z\"",
    "\"2026-12-01T00:00:00.123456789+14:00\"",
    "\"1\"",
    ",\"text\":\"x\"",
    ",\"text\":\"y\"",
    ",\"seq\":2",
    ",\"payload\":{}",
    ",\"extra\":1",
    "\"schema\":\"runfleet.command.create\"",
    "\"schema\":\"runfleet.run.create\"",
    "\"schema\":\"runfleet.receipt\"",
    "\"schema\":\"runfleet.dead-letter\"",
    "\"payload_encoding\":\"base64\"",
    "\"type\":\"result\"",
    "\"type\":\"step_end\"",
    "\"type\":\"metric\"",
    "\"kind\":\"close\"",
    "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[",
    "\u{feff}",
    "\u{2028}",
    "\r\n",
    "\\x",
    "\\u12",
    "'",
    "=",
    "[profiles.x]",
    "kind = \"process\"",
    "program = \"/bin/true\"",
    "concurrency = 0",
    "ack_wait = \"1ns\"",
    "ack_wait = \"99999999999999h\"",
    "\"\"\"",
    "runfleet.cmd.",
    "~0123456789abcdef",
];

/// A seeded mutator (the same seed gives the same inputs).
pub struct Mutator {
    rng: Rng,
}

impl Mutator {
    /// A mutator drawing from `seed`.
    pub fn new(seed: u64) -> Mutator {
        Mutator {
            rng: Rng::with_seed(seed),
        }
    }

    /// A random index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        self.rng.usize(..n)
    }

    /// A mutation of `seed`; `other` is the splice partner. Half of the
    /// time, when the seed is JSON, one value of its tree is changed and
    /// the tree written back (inputs that get past the JSON parser to the
    /// contract's own checks); otherwise one to four byte-level mutations.
    pub fn mutate(&mut self, seed: &[u8], other: &[u8]) -> Vec<u8> {
        if self.rng.bool()
            && let Ok(mut value) = serde_json::from_slice::<Value>(seed)
        {
            for _ in 0..self.rng.usize(1..=2) {
                self.mutate_tree(&mut value);
            }
            if let Ok(bytes) = serde_json::to_vec(&value) {
                return bytes;
            }
        }
        let mut out = seed.to_vec();
        for _ in 0..self.rng.usize(1..=4) {
            self.once(&mut out, other);
        }
        out
    }

    /// Changes one node of `value`: a value replaced, a key removed,
    /// renamed or added.
    fn mutate_tree(&mut self, value: &mut Value) {
        let descend = self.rng.u8(..3) != 0;
        match value {
            Value::Object(map) if !map.is_empty() => {
                let key = map.keys().nth(self.rng.usize(..map.len())).cloned();
                let Some(key) = key else { return };
                match self.rng.u8(..8) {
                    0 => {
                        map.remove(&key);
                    }
                    1 => {
                        if let Some(v) = map.remove(&key) {
                            map.insert(self.text(), v);
                        }
                    }
                    2 => {
                        let v = self.leaf();
                        map.insert(self.text(), v);
                    }
                    _ if descend => {
                        if let Some(v) = map.get_mut(&key) {
                            self.mutate_tree(v);
                        }
                    }
                    _ => {
                        let v = self.leaf();
                        map.insert(key, v);
                    }
                }
            }
            Value::Array(items) if !items.is_empty() && descend => {
                let i = self.rng.usize(..items.len());
                match self.rng.u8(..4) {
                    0 => {
                        items.remove(i);
                    }
                    1 => {
                        let copy = items[i].clone();
                        items.push(copy);
                    }
                    _ => self.mutate_tree(&mut items[i]),
                }
            }
            other => *other = self.leaf(),
        }
    }

    /// An extreme or ordinary JSON value.
    fn leaf(&mut self) -> Value {
        match self.rng.u8(..10) {
            0 => Value::Null,
            1 => Value::Bool(self.rng.bool()),
            2 => [
                Value::from(0),
                Value::from(1),
                Value::from(-1),
                Value::from(u64::MAX),
                Value::from(i64::MIN),
                Value::from(0.5),
                Value::from(1e300),
            ][self.rng.usize(..7)]
            .clone(),
            3 => Value::Array(vec![]),
            4 => Value::Object(serde_json::Map::new()),
            5 => Value::String(
                [
                    "",
                    " ",
                    "\0",
                    "a.b",
                    "a*",
                    ">",
                    "é",
                    "2026-12-01T00:00:00Z",
                    "2026-13-01T00:00:00Z",
                    "close",
                    "base64",
                    "utf8",
                    "echo",
                ][self.rng.usize(..13)]
                .to_owned(),
            ),
            _ => Value::String(self.text()),
        }
    }

    /// A string of a length near the contract's bounds.
    fn text(&mut self) -> String {
        let len = [0, 1, 2, 63, 64, 65, 127, 128, 129, 200, 256, 257][self.rng.usize(..12)];
        let pick = self.rng.u8(..4);
        (0..len)
            .map(|_| match pick {
                0 => self.rng.alphanumeric(),
                1 => ['a', '-', '_', ':', '.', 'é', '\u{1F600}'][self.rng.usize(..7)],
                2 => self.rng.char(..),
                _ => 'x',
            })
            .collect()
    }

    fn position(&mut self, out: &[u8]) -> usize {
        self.rng.usize(..=out.len())
    }

    fn range(&mut self, out: &[u8]) -> (usize, usize) {
        let start = self.rng.usize(..=out.len());
        let len = self.rng.usize(..=(out.len() - start).min(32));
        (start, start + len)
    }

    fn once(&mut self, out: &mut Vec<u8>, other: &[u8]) {
        match self.rng.u8(..10) {
            0 if !out.is_empty() => {
                let i = self.rng.usize(..out.len());
                out[i] ^= 1 << self.rng.u8(..8);
            }
            1 if !out.is_empty() => {
                let i = self.rng.usize(..out.len());
                out[i] = INTERESTING_BYTES[self.rng.usize(..INTERESTING_BYTES.len())];
            }
            2 => {
                let at = self.position(out);
                let bytes: Vec<u8> = (0..self.rng.usize(1..8)).map(|_| self.rng.u8(..)).collect();
                out.splice(at..at, bytes);
            }
            3 => {
                let (a, b) = self.range(out);
                out.drain(a..b);
            }
            4 => {
                let (a, b) = self.range(out);
                let copy = out[a..b].to_vec();
                let at = self.position(out);
                out.splice(at..at, copy);
            }
            5 | 6 => {
                let token = DICTIONARY[self.rng.usize(..DICTIONARY.len())].as_bytes();
                let at = self.position(out);
                out.splice(at..at, token.iter().copied());
            }
            7 if !other.is_empty() => {
                let cut = self.position(out);
                let from = self.rng.usize(..other.len());
                out.truncate(cut);
                out.extend_from_slice(&other[from..]);
            }
            8 => self.replace_string(out),
            9 => self.replace_number(out),
            _ => {
                let cut = self.position(out);
                out.truncate(cut);
            }
        }
    }

    /// Replaces the text of one JSON string (between two quotes) with a
    /// dictionary token's or random bytes.
    fn replace_string(&mut self, out: &mut Vec<u8>) {
        let quotes: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'"')
            .map(|(i, _)| i)
            .collect();
        if quotes.len() < 2 {
            return;
        }
        let pair = self.rng.usize(..quotes.len() / 2) * 2;
        let (a, b) = (quotes[pair] + 1, quotes[pair + 1]);
        let replacement: Vec<u8> = if self.rng.bool() {
            let token = DICTIONARY[self.rng.usize(..DICTIONARY.len())];
            token.trim_matches('"').as_bytes().to_vec()
        } else {
            let len = [0, 1, 64, 65, 128, 129, 300][self.rng.usize(..7)];
            (0..len).map(|_| self.rng.alphanumeric() as u8).collect()
        };
        out.splice(a..b, replacement);
    }

    /// Replaces one run of digits with an extreme number.
    fn replace_number(&mut self, out: &mut Vec<u8>) {
        let digits: Vec<usize> = out
            .iter()
            .enumerate()
            .filter(|(_, b)| b.is_ascii_digit())
            .map(|(i, _)| i)
            .collect();
        if digits.is_empty() {
            return;
        }
        let start = digits[self.rng.usize(..digits.len())];
        let end = out[start..]
            .iter()
            .position(|b| !b.is_ascii_digit())
            .map_or(out.len(), |n| start + n);
        let numbers = [
            "0",
            "-1",
            "1e999",
            "18446744073709551616",
            "9007199254740993",
            "1.0",
            "4294967296",
        ];
        let number = numbers[self.rng.usize(..numbers.len())];
        out.splice(start..end, number.bytes());
    }
}
