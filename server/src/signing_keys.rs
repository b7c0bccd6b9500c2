//! The keys that sign OpenID Connect ID tokens, and the public half relying parties fetch
//! (JWKS). The first key signs; the others stay published so tokens they signed still verify
//! while a rotation settles.
//!
//! Keys are PEM files of the operator's (`OIDC_SIGNING_KEYS`): RSA (RS256, the one algorithm
//! every relying party supports) or P-256 (ES256). Each key's `kid` is its RFC 7638 thumbprint,
//! so the same key always has the same id, on every instance. Signing and the JWK come from
//! `jsonwebtoken` on aws-lc-rs, which rustls already builds; dev mode's key is made by
//! aws-lc-rs too (RSA key generation in pure Rust is slow in debug builds).

use std::{fmt, path::Path};

use jsonwebtoken::{
    Algorithm, DecodingKey, EncodingKey, Header,
    jwk::{Jwk, JwkSet, KeyAlgorithm, PublicKeyUse, ThumbprintHash},
};

/// Why a signing key could not be used. Never carries the key's text.
#[derive(Debug, thiserror::Error)]
pub enum SigningKeyError {
    #[error("signing key file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
    #[error(
        "signing key {which} is neither an RSA nor a P-256 private key in PEM (PKCS#1, PKCS#8 \
         or SEC1): make one with `openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048`"
    )]
    NotAKey { which: String },
    #[error("no signing key")]
    None,
    #[error("cannot sign: {0}")]
    Sign(String),
    #[error("cannot make a signing key: {0}")]
    Generate(String),
}

/// One key: what signs with it, what verifies with it, and what is published of it.
struct SigningKey {
    kid: String,
    algorithm: Algorithm,
    encoding: EncodingKey,
    decoding: DecodingKey,
    jwk: Jwk,
}

/// The signing keys, the first one signing.
pub struct SigningKeys(Vec<SigningKey>);

impl fmt::Debug for SigningKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.0.iter().map(|k| (&k.kid, k.algorithm)))
            .finish()
    }
}

impl SigningKeys {
    /// The keys in `pems`, in order; `names` says what to call each in an error.
    pub fn from_pems(pems: &[(String, Vec<u8>)]) -> Result<Self, SigningKeyError> {
        let keys = pems
            .iter()
            .map(|(name, pem)| parse(name, pem))
            .collect::<Result<Vec<_>, _>>()?;
        if keys.is_empty() {
            return Err(SigningKeyError::None);
        }
        Ok(Self(keys))
    }

    /// The keys in the PEM files at `paths`, in order.
    pub fn load(paths: &[impl AsRef<Path>]) -> Result<Self, SigningKeyError> {
        let pems = paths
            .iter()
            .map(|path| {
                let path = path.as_ref();
                std::fs::read(path)
                    .map(|pem| (path.display().to_string(), pem))
                    .map_err(|source| SigningKeyError::File {
                        path: path.display().to_string(),
                        source,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        Self::from_pems(&pems)
    }

    /// Dev mode's key: the RSA key in `path`, made (mode 600) on first use.
    pub fn load_or_create(path: &Path) -> Result<Self, SigningKeyError> {
        if !path.exists() {
            let pem = generate_rsa_pem()?;
            write_private(path, pem.as_bytes()).map_err(|source| SigningKeyError::File {
                path: path.display().to_string(),
                source,
            })?;
        }
        Self::load(&[path])
    }

    /// A fresh RSA key in this process only: for tests and stores no file goes with.
    pub fn generate() -> Result<Self, SigningKeyError> {
        let pem = generate_rsa_pem()?;
        Self::from_pems(&[("a generated key".into(), pem.into_bytes())])
    }

    /// The algorithm the signing key signs with.
    pub fn algorithm(&self) -> Algorithm {
        self.0[0].algorithm
    }

    /// Every algorithm a published key uses, the signing one first.
    pub fn algorithms(&self) -> Vec<Algorithm> {
        let mut algorithms = Vec::new();
        for key in &self.0 {
            if !algorithms.contains(&key.algorithm) {
                algorithms.push(key.algorithm);
            }
        }
        algorithms
    }

    /// The `kid` new tokens carry.
    pub fn current_kid(&self) -> &str {
        &self.0[0].kid
    }

    /// The public keys, for `jwks_uri`.
    pub fn jwks(&self) -> JwkSet {
        JwkSet {
            keys: self.0.iter().map(|k| k.jwk.clone()).collect(),
        }
    }

    /// `claims` as a JWT signed by the first key, its `kid` in the header.
    pub fn sign<T: serde::Serialize>(&self, claims: &T) -> Result<String, SigningKeyError> {
        let key = &self.0[0];
        let mut header = Header::new(key.algorithm);
        header.kid = Some(key.kid.clone());
        jsonwebtoken::encode(&header, claims, &key.encoding)
            .map_err(|e| SigningKeyError::Sign(e.to_string()))
    }

    /// The claims of `token` when one of the keys signed it (by its `kid`), with `validation`'s
    /// checks: what a relying party does, for the tests.
    pub fn verify<T: serde::de::DeserializeOwned>(
        &self,
        token: &str,
        validation: &jsonwebtoken::Validation,
    ) -> Result<T, jsonwebtoken::errors::Error> {
        let header = jsonwebtoken::decode_header(token)?;
        let key = self
            .0
            .iter()
            .find(|k| Some(&k.kid) == header.kid.as_ref() && k.algorithm == header.alg)
            .ok_or(jsonwebtoken::errors::ErrorKind::InvalidSignature)?;
        jsonwebtoken::decode(token, &key.decoding, validation).map(|data| data.claims)
    }
}

fn parse(name: &str, pem: &[u8]) -> Result<SigningKey, SigningKeyError> {
    let not_a_key = || SigningKeyError::NotAKey {
        which: name.to_owned(),
    };
    let (algorithm, encoding) = if let Ok(key) = EncodingKey::from_rsa_pem(pem) {
        (Algorithm::RS256, key)
    } else if let Ok(key) = EncodingKey::from_ec_pem(pem) {
        (Algorithm::ES256, key)
    } else {
        return Err(not_a_key());
    };
    let mut jwk = Jwk::from_encoding_key(&encoding, algorithm).map_err(|_| not_a_key())?;
    let kid = jwk.thumbprint(ThumbprintHash::SHA256);
    jwk.common.key_id = Some(kid.clone());
    jwk.common.public_key_use = Some(PublicKeyUse::Signature);
    jwk.common.key_algorithm = Some(match algorithm {
        Algorithm::ES256 => KeyAlgorithm::ES256,
        _ => KeyAlgorithm::RS256,
    });
    let decoding = DecodingKey::from_jwk(&jwk).map_err(|_| not_a_key())?;
    Ok(SigningKey {
        kid,
        algorithm,
        encoding,
        decoding,
        jwk,
    })
}

/// A new RSA 2048 private key in PKCS#8 PEM, as `OIDC_SIGNING_KEYS` takes it.
pub fn generate_rsa_pem() -> Result<String, SigningKeyError> {
    use aws_lc_rs::{
        encoding::AsDer,
        rsa::{KeyPair, KeySize},
    };
    use base64::{Engine, engine::general_purpose::STANDARD};
    let failed = |what: &str| SigningKeyError::Generate(what.to_owned());
    let pair = KeyPair::generate(KeySize::Rsa2048).map_err(|_| failed("RSA key generation"))?;
    let der = pair.as_der().map_err(|_| failed("PKCS#8 encoding"))?;
    let body = STANDARD.encode(der.as_ref());
    let mut pem = String::from("-----BEGIN PRIVATE KEY-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).unwrap_or_default());
        pem.push('\n');
    }
    pem.push_str("-----END PRIVATE KEY-----\n");
    Ok(pem)
}

/// Writes `bytes` to a new file only its owner can read.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)?;
    }
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    options.mode(0o600);
    options.open(path)?.write_all(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 key in PKCS#8 PEM, made for these tests only.
    const EC_PEM: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgjYvGwtmg8X2OadWT
xWZvZRZeQz55hfDs17G0okHeTMahRANCAATPzL1I47OsRH8xQGEZToLF552Etkol
fOD6Kh2OB+YOuTuq1X+SkMJlg4g8aKhXpQQNBMfVjpeReQFO0xZa9pmo
-----END PRIVATE KEY-----
";

    #[derive(serde::Serialize, serde::Deserialize, Debug, PartialEq)]
    struct Claims {
        sub: String,
        aud: String,
        exp: u64,
    }

    fn claims() -> Claims {
        Claims {
            sub: "someone".into(),
            aud: "client".into(),
            exp: 4_000_000_000,
        }
    }

    fn validation(algorithm: Algorithm) -> jsonwebtoken::Validation {
        let mut v = jsonwebtoken::Validation::new(algorithm);
        v.set_audience(&["client"]);
        v
    }

    #[test]
    fn a_generated_rsa_key_signs_rs256_and_publishes_its_kid() {
        let keys = SigningKeys::generate().unwrap();
        assert_eq!(keys.algorithm(), Algorithm::RS256);
        let token = keys.sign(&claims()).unwrap();
        let header = jsonwebtoken::decode_header(&token).unwrap();
        assert_eq!(header.kid.as_deref(), Some(keys.current_kid()));
        let back: Claims = keys.verify(&token, &validation(Algorithm::RS256)).unwrap();
        assert_eq!(back, claims());
        let jwks = serde_json::to_value(keys.jwks()).unwrap();
        let key = &jwks["keys"][0];
        assert_eq!(key["kty"], "RSA");
        assert_eq!(key["use"], "sig");
        assert_eq!(key["alg"], "RS256");
        assert_eq!(key["kid"], keys.current_kid());
        assert!(key.get("d").is_none(), "no private part: {key}");
    }

    #[test]
    fn the_first_key_signs_and_the_older_ones_still_verify() {
        let old = SigningKeys::generate().unwrap();
        let old_token = old.sign(&claims()).unwrap();
        let dir = tempfile_dir();
        let (new_path, old_path) = (dir.join("new.pem"), dir.join("old.pem"));
        std::fs::write(&new_path, generate_rsa_pem().unwrap()).unwrap();
        let old_pem = generate_rsa_pem().unwrap();
        std::fs::write(&old_path, &old_pem).unwrap();
        let rotated = SigningKeys::load(&[&new_path, &old_path]).unwrap();
        let previous = SigningKeys::load(&[&old_path]).unwrap();
        let signed_before = previous.sign(&claims()).unwrap();
        let v = validation(Algorithm::RS256);
        assert!(rotated.verify::<Claims>(&signed_before, &v).is_ok());
        assert!(
            rotated.verify::<Claims>(&old_token, &v).is_err(),
            "an unknown key"
        );
        let fresh = rotated.sign(&claims()).unwrap();
        let kid = jsonwebtoken::decode_header(&fresh).unwrap().kid.unwrap();
        assert_eq!(kid, rotated.current_kid());
        assert_ne!(kid, previous.current_kid());
        assert_eq!(rotated.jwks().keys.len(), 2);
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_p256_key_signs_es256() {
        let keys = SigningKeys::from_pems(&[("ec".into(), EC_PEM.as_bytes().to_vec())]).unwrap();
        assert_eq!(keys.algorithm(), Algorithm::ES256);
        let token = keys.sign(&claims()).unwrap();
        let back: Claims = keys.verify(&token, &validation(Algorithm::ES256)).unwrap();
        assert_eq!(back, claims());
        let jwks = serde_json::to_value(keys.jwks()).unwrap();
        assert_eq!(jwks["keys"][0]["kty"], "EC");
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        assert_eq!(jwks["keys"][0]["alg"], "ES256");
    }

    #[test]
    fn junk_is_refused_without_echoing_it() {
        let err = SigningKeys::from_pems(&[("k".into(), b"secret-looking junk".to_vec())])
            .unwrap_err()
            .to_string();
        assert!(!err.contains("junk"), "{err}");
        assert!(err.contains("openssl"), "{err}");
    }

    fn tempfile_dir() -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("keys-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }
}
