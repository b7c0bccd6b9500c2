//! Login tokens: where they are made, checked for shape, and hashed.
//!
//! A token is written as unpadded URL-safe base64 so it travels in headers, query strings and
//! storage unescaped. The server keeps only a hash of it: whoever reads the store (a backup, a
//! stolen disk) learns nothing they can log in with. Because the hash is the lookup key, no
//! secret is ever compared byte by byte in a way an attacker could time.
//!
//! Two shapes are accepted:
//! - **ordered** (44 characters, what [`Token::generate`] makes): a format byte, 8 bytes of a
//!   time-ordered id (the first half of a UUIDv7), then 24 bytes (192 bits) from the OS
//!   CSPRNG. Its store key is the time-ordered id followed by 24 bytes of the token's SHA-256,
//!   so keys sort by creation: a store's index of sessions grows at one edge, and a batch of
//!   logins rewrites a few pages instead of one random page each. The id is not secret (the
//!   store records when a session began anyway); the hash part alone keeps the token out of
//!   reach.
//! - **random** (43 characters): 32 bytes from the CSPRNG, keyed by the whole SHA-256. Tokens
//!   issued before ordered ones keep checking in until they expire.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// Length of an ordered token as text: base64 of 33 bytes.
pub const TOKEN_LEN: usize = 44;
/// Length of a random token as text: base64 of 32 bytes without padding.
const RANDOM_LEN: usize = 43;
/// The first byte of an ordered token, so its shape can change again without a guess.
const ORDERED_FORMAT: u8 = 1;
/// Bytes of the time-ordered id that leads an ordered token and its key.
const ORDER_BYTES: usize = 8;
/// What [`Token::seal`] covers: a random token's bytes, or an ordered token's after its
/// format byte.
const SEALED_BYTES: usize = 32;

/// A raw token as handed to the client. Not `Debug`-printable in full, so it cannot end up in
/// a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// A token's store key, derived from it by a one-way hash: the only form the store ever sees.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash([u8; 32]);

/// Which of the two shapes a token has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenShape {
    Random,
    Ordered,
}

/// A token encrypted under a login code (see [`Token::seal`]), with its shape: the bytes alone
/// could be either.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SealedToken {
    pub shape: TokenShape,
    pub bytes: [u8; SEALED_BYTES],
}

impl Token {
    /// Draws a fresh ordered token: a time-ordered id, then 192 bits from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 1 + SEALED_BYTES];
        bytes[0] = ORDERED_FORMAT;
        bytes[1..=ORDER_BYTES].copy_from_slice(&uuid::Uuid::now_v7().as_bytes()[..ORDER_BYTES]);
        getrandom::fill(&mut bytes[1 + ORDER_BYTES..])
            .expect("the OS random number generator failed");
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts text as a token only if it has one of a token's exact shapes. Anything else
    /// cannot be a token we issued, so it is refused before it costs a store lookup.
    pub fn parse(text: &str) -> Option<Self> {
        read(text).map(|_| Token(text.to_owned()))
    }

    /// The key of `text` when it is a well-formed token: what a lookup needs, without the
    /// copy [`Token::parse`] keeps.
    pub fn hash_of(text: &str) -> Option<TokenHash> {
        read(text).map(|shape| key(text, shape))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    #[cfg(test)]
    fn as_bytes_for_test(&self) -> &[u8] {
        self.0.as_bytes()
    }

    pub fn into_string(self) -> String {
        self.0
    }

    pub fn hash(&self) -> TokenHash {
        // A `Token` is only ever built from a well-formed text.
        key(&self.0, read(&self.0).unwrap_or(Shape::Random))
    }

    /// The token encrypted under a one-time pad derived from `login_code`, so that the outcome
    /// of a login can wait in a shared store for concurrent requests with the same code (see
    /// `store/claims.rs`) without the store ever holding a usable token. Only a holder of the
    /// code (which is never stored) can open it with [`Token::unseal`].
    pub fn seal(&self, login_code: &str) -> SealedToken {
        let shape = read(&self.0).map_or(TokenShape::Random, Shape::public);
        // Our own tokens always decode; a foreign string would be refused by `parse` first.
        let raw = URL_SAFE_NO_PAD.decode(&self.0).unwrap_or_default();
        let body = match shape {
            TokenShape::Random => raw.as_slice(),
            TokenShape::Ordered => raw.get(1..).unwrap_or_default(),
        };
        let mut bytes = [0u8; SEALED_BYTES];
        let n = body.len().min(SEALED_BYTES);
        bytes[..n].copy_from_slice(&body[..n]);
        xor_pad(&mut bytes, login_code);
        SealedToken { shape, bytes }
    }

    /// Opens what [`Token::seal`] made with the same code.
    pub fn unseal(sealed: &SealedToken, login_code: &str) -> Self {
        let mut bytes = sealed.bytes;
        xor_pad(&mut bytes, login_code);
        match sealed.shape {
            TokenShape::Random => Token(URL_SAFE_NO_PAD.encode(bytes)),
            TokenShape::Ordered => {
                let mut raw = [0u8; 1 + SEALED_BYTES];
                raw[0] = ORDERED_FORMAT;
                raw[1..].copy_from_slice(&bytes);
                Token(URL_SAFE_NO_PAD.encode(raw))
            }
        }
    }
}

/// XORs `bytes` with SHA-256 of the code under a domain label of its own, so the pad is
/// unrelated to any key derived from the same code.
fn xor_pad(bytes: &mut [u8; SEALED_BYTES], login_code: &str) {
    let pad = Sha256::new()
        .chain_update(b"wxlogin token seal\0")
        .chain_update(login_code.as_bytes())
        .finalize();
    for (b, p) in bytes.iter_mut().zip(pad) {
        *b ^= p;
    }
}

impl std::fmt::Debug for Token {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Token([redacted])")
    }
}

impl TokenHash {
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// A hash as a store kept it; only stores that list sessions by account need this.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash [`TokenHash::to_hex`] wrote, if `hex` is one.
    pub fn from_hex(hex: &str) -> Option<Self> {
        if hex.len() != 64 || !hex.is_ascii() {
            return None;
        }
        let mut bytes = [0u8; 32];
        for (byte, pair) in bytes.iter_mut().zip(hex.as_bytes().chunks(2)) {
            *byte = u8::from_str_radix(std::str::from_utf8(pair).ok()?, 16).ok()?;
        }
        Some(Self(bytes))
    }

    /// A number that is uniform over keys, for spreading them over shards or connections: it
    /// comes from the hash part, since an ordered key begins with the time it was made.
    pub fn spread(&self) -> usize {
        usize::from(u16::from_le_bytes([self.0[30], self.0[31]]))
    }

    /// Lower-case hex, for stores whose keys are text.
    pub fn to_hex(&self) -> String {
        hex(&self.0)
    }

    /// The session's public id, shown to its owner in the session list: a hash of this hash
    /// under its own label, so it names the session without being a key to it. Whoever holds
    /// an id can neither find the token nor look the session up in a store by it.
    pub fn public_id(&self) -> String {
        let digest = Sha256::new()
            .chain_update(b"wxlogin session id\0")
            .chain_update(self.0)
            .finalize();
        hex(&digest[..16])
    }
}

/// Lower-case hex of `bytes`. Redis keys are built with it on every request, so it writes
/// into one buffer rather than formatting byte by byte.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

impl std::fmt::Debug for TokenHash {
    /// A few hash bytes are enough to correlate log lines and reveal nothing usable. They are
    /// the last ones: an ordered token's key begins with its time-ordered id, which is alike
    /// for every session begun in the same second.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash(…{})", hex(&self.0[28..]))
    }
}

/// What [`read`] learns of a well-formed token.
#[derive(Clone, Copy)]
enum Shape {
    Random,
    /// With the token's time-ordered id.
    Ordered([u8; ORDER_BYTES]),
}

impl Shape {
    fn public(self) -> TokenShape {
        match self {
            Shape::Random => TokenShape::Random,
            Shape::Ordered(_) => TokenShape::Ordered,
        }
    }
}

/// The shape of `text` if it is a token this server could have issued: the length and
/// alphabet of one, and for an ordered token its format byte.
fn read(text: &str) -> Option<Shape> {
    let alphabet = text
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    match text.len() {
        _ if !alphabet => None,
        RANDOM_LEN => Some(Shape::Random),
        TOKEN_LEN => {
            // The first 12 characters are exactly the first 9 bytes: format byte and id.
            let mut head = [0u8; 1 + ORDER_BYTES];
            let n = URL_SAFE_NO_PAD.decode_slice(&text[..12], &mut head).ok()?;
            let mut id = [0u8; ORDER_BYTES];
            id.copy_from_slice(&head[1..]);
            (n == head.len() && head[0] == ORDERED_FORMAT).then_some(Shape::Ordered(id))
        }
        _ => None,
    }
}

fn key(text: &str, shape: Shape) -> TokenHash {
    let digest: [u8; 32] = Sha256::digest(text.as_bytes()).into();
    match shape {
        Shape::Random => TokenHash(digest),
        Shape::Ordered(id) => {
            let mut key = [0u8; 32];
            key[..ORDER_BYTES].copy_from_slice(&id);
            key[ORDER_BYTES..].copy_from_slice(&digest[..32 - ORDER_BYTES]);
            TokenHash(key)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;

    #[test]
    fn a_hash_reads_back_from_its_hex() {
        let hash = Token::generate().hash();
        assert_eq!(TokenHash::from_hex(&hash.to_hex()), Some(hash));
        assert_eq!(TokenHash::from_hex("zz"), None);
        assert_eq!(TokenHash::from_hex(&"g".repeat(64)), None);
    }

    #[test]
    fn generated_tokens_are_url_safe_unique_and_parse_back() {
        let tokens: HashSet<String> = (0..1000).map(|_| Token::generate().into_string()).collect();
        assert_eq!(tokens.len(), 1000);
        for t in &tokens {
            assert_eq!(t.len(), TOKEN_LEN);
            let parsed = Token::parse(t).unwrap();
            assert_eq!(parsed.as_str(), t);
            assert_eq!(Token::hash_of(t), Some(parsed.hash()));
        }
    }

    #[test]
    fn malformed_tokens_are_refused() {
        let good = Token::generate().into_string();
        // Byte 0 is the format: 'B' in front makes it 4 instead of 1.
        let unknown_format = format!("B{}", &good[1..]);
        for bad in [
            "",
            "abc",
            &good[..RANDOM_LEN - 1],
            &format!("{good}A"),
            &format!("{}+", &good[..TOKEN_LEN - 1]),
            &format!("{}=", &good[..TOKEN_LEN - 1]),
            &format!("{}.", &good[..RANDOM_LEN - 1]),
            &unknown_format,
        ] {
            assert!(Token::parse(bad).is_none(), "{bad:?} must be refused");
            assert!(Token::hash_of(bad).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn a_random_tokens_key_is_sha256_of_its_text() {
        let token = Token::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        // Computed independently with `printf %s AAA… | sha256sum`.
        assert_eq!(
            token.hash().to_hex(),
            "0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a"
        );
        assert_ne!(token.hash(), Token::generate().hash());
    }

    #[test]
    fn an_ordered_tokens_key_is_its_id_then_sha256_of_its_text() {
        // Format byte 1, id 01930abcdef07123, then the bytes 0..24; the key computed
        // independently with Python's base64 and hashlib.
        let token = Token::parse("AQGTCrze8HEjAAECAwQFBgcICQoLDA0ODxAREhMUFRYX").unwrap();
        assert_eq!(
            token.hash().to_hex(),
            "01930abcdef0712362435219a1071555c1d5806d26541c19403aa33150c42864"
        );
    }

    #[test]
    fn keys_of_generated_tokens_sort_in_the_order_they_were_made() {
        let keys: Vec<TokenHash> = (0..2000).map(|_| Token::generate().hash()).collect();
        for pair in keys.windows(2) {
            assert!(
                pair[0].as_bytes()[..ORDER_BYTES] <= pair[1].as_bytes()[..ORDER_BYTES],
                "{pair:?} out of order"
            );
        }
        let ms = u64::from_be_bytes(keys[0].as_bytes()[..ORDER_BYTES].try_into().unwrap()) >> 16;
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis();
        assert!(
            now.abs_diff(u128::from(ms)) < 60_000,
            "the id leads with unix ms"
        );
    }

    #[test]
    fn tokens_of_both_shapes_survive_sealing_with_their_shape() {
        let random = Token::parse(&URL_SAFE_NO_PAD.encode([9u8; 32])).unwrap();
        for token in [Token::generate(), random] {
            let sealed = token.seal("code-a");
            assert_eq!(Token::unseal(&sealed, "code-a"), token);
            assert_eq!(Token::unseal(&sealed, "code-a").hash(), token.hash());
        }
        assert_eq!(Token::generate().seal("c").shape, TokenShape::Ordered);
    }

    #[test]
    fn hex_is_lower_case_two_digits_per_byte() {
        assert_eq!(hex(&[0x00, 0x0f, 0xa5, 0xff]), "000fa5ff");
        assert_eq!(hex(&[]), "");
    }

    #[test]
    fn sealed_tokens_open_only_with_their_code() {
        let token = Token::generate();
        let sealed = token.seal("code-a");
        assert_eq!(Token::unseal(&sealed, "code-a"), token);
        assert_ne!(Token::unseal(&sealed, "code-b"), token);
        let raw = URL_SAFE_NO_PAD.decode(token.as_str()).unwrap();
        assert_ne!(
            sealed.bytes.as_slice(),
            &raw[1..],
            "the sealed form is not the token"
        );
    }

    #[test]
    fn debug_output_hides_the_token_and_all_but_a_prefix_of_its_hash() {
        let token = Token::generate();
        let shown = format!("{token:?}");
        assert_eq!(shown, "Token([redacted])");
        // No 6-character piece of the token shows, however the output is dressed.
        for piece in token.as_bytes_for_test().windows(6) {
            assert!(!shown.as_bytes().windows(6).any(|w| w == piece));
        }
        let hex = token.hash().to_hex();
        let shown = format!("{:?}", token.hash());
        assert_eq!(shown, format!("TokenHash(…{})", &hex[56..]));
        assert!(
            !shown.contains(&hex[55..]),
            "more than 8 hex digits: {shown}"
        );
    }
}
