//! Login tokens: where they are made, checked for shape, and hashed.
//!
//! A token is 32 bytes from the operating system's CSPRNG (256 bits, far beyond guessing),
//! written as unpadded URL-safe base64 (43 characters) so it travels in headers, query strings
//! and storage unescaped. The server keeps only its SHA-256: whoever reads the store (a backup,
//! a stolen disk) learns nothing they can log in with. Because the hash is the lookup key, no
//! secret is ever compared byte by byte in a way an attacker could time.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use sha2::{Digest, Sha256};

/// Bytes of randomness in a token.
const TOKEN_BYTES: usize = 32;
/// Length of a token as text: base64 of 32 bytes without padding.
pub const TOKEN_LEN: usize = 43;

/// A raw token as handed to the client. Not `Debug`-printable in full, so it cannot end up in
/// a log line by accident.
#[derive(Clone, PartialEq, Eq)]
pub struct Token(String);

/// The SHA-256 of a token: the only form the store ever sees.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TokenHash([u8; 32]);

impl Token {
    /// Draws a fresh token from the OS CSPRNG.
    pub fn generate() -> Self {
        let mut bytes = [0u8; TOKEN_BYTES];
        getrandom::fill(&mut bytes).expect("the OS random number generator failed");
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }

    /// Accepts text as a token only if it has a token's exact shape. Anything else cannot be a
    /// token we issued, so it is refused before it costs a store lookup.
    pub fn parse(text: &str) -> Option<Self> {
        well_formed(text).then(|| Token(text.to_owned()))
    }

    /// The hash of `text` when it is a well-formed token: what a lookup needs, without the
    /// copy [`Token::parse`] keeps.
    pub fn hash_of(text: &str) -> Option<TokenHash> {
        well_formed(text).then(|| digest(text))
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
        digest(&self.0)
    }

    /// The token encrypted under a one-time pad derived from `login_code`, so that the outcome
    /// of a login can wait in a shared store for concurrent requests with the same code (see
    /// `store/claims.rs`) without the store ever holding a usable token. Only a holder of the
    /// code (which is never stored) can open it with [`Token::unseal`].
    pub fn seal(&self, login_code: &str) -> [u8; TOKEN_BYTES] {
        let mut bytes = [0u8; TOKEN_BYTES];
        // Our own tokens always decode; a foreign string would be refused by `parse` first.
        let raw = URL_SAFE_NO_PAD.decode(&self.0).unwrap_or_default();
        bytes[..raw.len().min(TOKEN_BYTES)].copy_from_slice(&raw[..raw.len().min(TOKEN_BYTES)]);
        xor_pad(&mut bytes, login_code);
        bytes
    }

    /// Opens what [`Token::seal`] made with the same code.
    pub fn unseal(sealed: &[u8; TOKEN_BYTES], login_code: &str) -> Self {
        let mut bytes = *sealed;
        xor_pad(&mut bytes, login_code);
        Token(URL_SAFE_NO_PAD.encode(bytes))
    }
}

/// XORs `bytes` with SHA-256 of the code under a domain label of its own, so the pad is
/// unrelated to any key derived from the same code.
fn xor_pad(bytes: &mut [u8; TOKEN_BYTES], login_code: &str) {
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
    /// A short prefix is enough to correlate log lines and reveals nothing usable.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TokenHash({}…)", &self.to_hex()[..8])
    }
}

/// The length and alphabet of [`Token::generate`]'s output.
fn well_formed(text: &str) -> bool {
    text.len() == TOKEN_LEN
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn digest(token: &str) -> TokenHash {
    TokenHash(Sha256::digest(token.as_bytes()).into())
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
        for bad in [
            "",
            "abc",
            &good[..TOKEN_LEN - 1],
            &format!("{good}A"),
            &format!("{}+", &good[..TOKEN_LEN - 1]),
            &format!("{}=", &good[..TOKEN_LEN - 1]),
        ] {
            assert!(Token::parse(bad).is_none(), "{bad:?} must be refused");
            assert!(Token::hash_of(bad).is_none(), "{bad:?} must be refused");
        }
    }

    #[test]
    fn hash_is_sha256_of_the_token_text() {
        let token = Token::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        // Computed independently with `printf %s AAA… | sha256sum`.
        assert_eq!(
            token.hash().to_hex(),
            "0f007385b6f9d4b7eeb2748605afe1a984a0a3bfa3f014d09e2a784ce9e5cd1a"
        );
        assert_ne!(token.hash(), Token::generate().hash());
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
            sealed.as_slice(),
            raw.as_slice(),
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
        assert_eq!(shown, format!("TokenHash({}…)", &hex[..8]));
        assert!(
            !shown.contains(&hex[..9]),
            "more than 8 hex digits: {shown}"
        );
    }
}
