//! The data keys that seal WeChat's `session_key` at rest, and the sealed form the stores keep.
//!
//! A store (a SQLite file, a Redis dump, a backup of either) is easier to leak than the
//! process's environment, and a `session_key` decrypts the user's open data (phone number,
//! shared groups) and signs `wx.checkSession`-style checks. So no store ever holds it in the
//! clear: it is sealed with AES-256-GCM under a data key the operator keeps elsewhere
//! (`DATA_KEY`, or `DATA_KEYS` for rotation), and opened only by code that needs it.
//!
//! Sealed format, version 1 (stored as bytes in SQLite, as base64 inside Redis's JSON):
//! `0x01 | key id (4 bytes) | nonce (12 bytes, random) | ciphertext | GCM tag (16 bytes)`.
//! The key id is a fingerprint of the data key, so opening picks the right key among several
//! and a missing one is named in the error rather than guessed at. The associated data binds
//! the sealed key to its app and user: copied into another session's row it does not open.
//!
//! Random 96-bit nonces are safe for about 2^32 seals under one key; rotate the key (new key
//! first in `DATA_KEYS`) well before a deployment gets near that many logins.

use std::{
    fmt,
    io::Write,
    path::{Path, PathBuf},
    sync::Arc,
};

use aes_gcm::{
    Aes256Gcm, Nonce,
    aead::{Aead, KeyInit, Payload},
};
use base64::{Engine, engine::general_purpose::STANDARD};
use sha2::{Digest, Sha256};

/// Bytes in a data key (AES-256).
pub const KEY_LEN: usize = 32;
const FORMAT_V1: u8 = 1;
const KEY_ID_LEN: usize = 4;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;
const HEADER_LEN: usize = 1 + KEY_ID_LEN + NONCE_LEN;

/// The parsed, validated data keys: the first seals, every one opens. Cheap to clone; `Debug`
/// shows key ids only.
#[derive(Clone)]
pub struct DataKeys {
    keys: Arc<[DataKey]>,
}

struct DataKey {
    id: [u8; KEY_ID_LEN],
    cipher: Aes256Gcm,
}

/// WeChat's `session_key` in the clear, as code that uses it gets it. `Debug` hides it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionKey(String);

/// A `session_key` as the stores keep it: unreadable without the data key it was sealed under.
#[derive(Clone, PartialEq, Eq)]
pub struct SealedSessionKey(Vec<u8>);

/// Why a data key setting or key file was refused. Never carries the key's text.
#[derive(Debug, thiserror::Error)]
pub enum DataKeyError {
    #[error("key {position} is not base64")]
    NotBase64 { position: usize },
    #[error(
        "key {position} decodes to {len} bytes; a data key is {KEY_LEN} bytes \
         (make one with `openssl rand -base64 32`)"
    )]
    WrongLength { position: usize, len: usize },
    #[error("data key file {}: {source}", path.display())]
    File {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("data key file {}: {why}", path.display())]
    BadFile {
        path: PathBuf,
        why: Box<DataKeyError>,
    },
}

/// Why a sealed `session_key` did not open. Only code that needs the `session_key` meets it:
/// the session itself stays valid.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OpenError {
    #[error(
        "this session_key was sealed under data key {key_id}, which is not among the configured \
         keys: add it to DATA_KEYS (after the current key) to open sessions sealed before a rotation"
    )]
    UnknownKey { key_id: String },
    #[error(
        "this session_key does not open under data key {key_id}: the stored value was altered, \
         or it belongs to another app or user"
    )]
    Rejected { key_id: String },
    #[error("this sealed session_key is malformed (unknown format or too short)")]
    Malformed,
}

impl DataKeys {
    /// Parses a comma-separated list of base64 keys (one key for `DATA_KEY`). Errors say which
    /// entry is wrong and how, never what it holds.
    pub fn parse(text: &str) -> Result<Self, DataKeyError> {
        let mut keys = Vec::new();
        for (i, entry) in text.split(',').enumerate() {
            let position = i + 1;
            let raw = STANDARD
                .decode(entry.trim())
                .map_err(|_| DataKeyError::NotBase64 { position })?;
            let raw: [u8; KEY_LEN] =
                raw.as_slice()
                    .try_into()
                    .map_err(|_| DataKeyError::WrongLength {
                        position,
                        len: raw.len(),
                    })?;
            keys.push(DataKey::new(&raw));
        }
        Ok(Self { keys: keys.into() })
    }

    /// A fresh random key, for a process whose sealed data dies with it (the memory store).
    pub fn generate() -> Self {
        Self {
            keys: vec![DataKey::new(&random_key())].into(),
        }
    }

    /// The key in the file at `path`, created (0600, random) when there is none: dev mode keeps
    /// its key beside its SQLite file, so sessions open across restarts with nothing to set.
    pub fn load_or_create(path: &Path) -> Result<Self, DataKeyError> {
        let file_error = |source| DataKeyError::File {
            path: path.to_owned(),
            source,
        };
        match std::fs::read_to_string(path) {
            Ok(text) => {
                return Self::parse(text.trim()).map_err(|why| DataKeyError::BadFile {
                    path: path.to_owned(),
                    why: Box::new(why),
                });
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(file_error(e)),
        }
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(file_error)?;
        }
        // Written whole to a file of its own, then linked into place: a second process starting
        // at the same moment either wins the link or reads the complete key of the first.
        let text = format!("{}\n", STANDARD.encode(random_key()));
        let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
        let written = write_private(&tmp, text.as_bytes());
        let linked = written.and_then(|()| std::fs::hard_link(&tmp, path));
        std::fs::remove_file(&tmp).ok();
        match linked {
            Ok(()) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    // The link itself must survive a power cut, or the sealed keys would outlive
                    // the key that opens them.
                    std::fs::File::open(dir).and_then(|d| d.sync_all()).ok();
                }
                Self::parse(text.trim()).map_err(|why| DataKeyError::BadFile {
                    path: path.to_owned(),
                    why: Box::new(why),
                })
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => Self::load_or_create(path),
            Err(e) => Err(file_error(e)),
        }
    }

    /// The id of the key that seals, for the start-up log: it tells which key is in use
    /// without revealing it.
    pub fn sealing_key_id(&self) -> String {
        crate::token::hex(&self.keys[0].id)
    }

    /// Seals `key` for the session of `openid` in `appid`, under the first key.
    pub fn seal(&self, key: &SessionKey, appid: &str, openid: &str) -> SealedSessionKey {
        let data_key = &self.keys[0];
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the OS random number generator failed");
        let mut sealed = Vec::with_capacity(HEADER_LEN + key.0.len() + TAG_LEN);
        sealed.push(FORMAT_V1);
        sealed.extend_from_slice(&data_key.id);
        sealed.extend_from_slice(&nonce);
        let aad = associated_data(&sealed[..HEADER_LEN], appid, openid);
        let ciphertext = data_key
            .cipher
            .encrypt(
                Nonce::from_slice(&nonce),
                Payload {
                    msg: key.0.as_bytes(),
                    aad: &aad,
                },
            )
            // AES-GCM fails only on inputs of many gigabytes; a session_key is 24 characters.
            .expect("AES-GCM seals a short message");
        sealed.extend_from_slice(&ciphertext);
        SealedSessionKey(sealed)
    }

    /// Opens what [`DataKeys::seal`] made for this app and user, with whichever configured key
    /// sealed it.
    pub fn open(
        &self,
        sealed: &SealedSessionKey,
        appid: &str,
        openid: &str,
    ) -> Result<SessionKey, OpenError> {
        let bytes = &sealed.0;
        if bytes.len() < HEADER_LEN + TAG_LEN || bytes[0] != FORMAT_V1 {
            return Err(OpenError::Malformed);
        }
        let id = &bytes[1..1 + KEY_ID_LEN];
        let key_id = crate::token::hex(id);
        let data_key =
            self.keys
                .iter()
                .find(|k| k.id == id)
                .ok_or_else(|| OpenError::UnknownKey {
                    key_id: key_id.clone(),
                })?;
        let aad = associated_data(&bytes[..HEADER_LEN], appid, openid);
        let plain = data_key
            .cipher
            .decrypt(
                Nonce::from_slice(&bytes[1 + KEY_ID_LEN..HEADER_LEN]),
                Payload {
                    msg: &bytes[HEADER_LEN..],
                    aad: &aad,
                },
            )
            .map_err(|_| OpenError::Rejected {
                key_id: key_id.clone(),
            })?;
        String::from_utf8(plain)
            .map(SessionKey)
            .map_err(|_| OpenError::Rejected { key_id })
    }
}

impl DataKey {
    fn new(raw: &[u8; KEY_LEN]) -> Self {
        let id = Sha256::new()
            .chain_update(b"wxlogin data key id\0")
            .chain_update(raw)
            .finalize();
        Self {
            id: [id[0], id[1], id[2], id[3]],
            cipher: Aes256Gcm::new(raw.into()),
        }
    }
}

fn random_key() -> [u8; KEY_LEN] {
    let mut raw = [0u8; KEY_LEN];
    getrandom::fill(&mut raw).expect("the OS random number generator failed");
    raw
}

/// What a sealed key is bound to besides its own header: the app and the user. Lengths are
/// written out so no two (appid, openid) pairs give the same bytes.
fn associated_data(header: &[u8], appid: &str, openid: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(header.len() + 32 + appid.len() + openid.len());
    aad.extend_from_slice(b"wxlogin session_key\0");
    aad.extend_from_slice(header);
    for part in [appid, openid] {
        aad.extend_from_slice(&(part.len() as u32).to_be_bytes());
        aad.extend_from_slice(part.as_bytes());
    }
    aad
}

/// Creates `path` readable by its owner only and writes `bytes` to disk for good.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

impl fmt::Debug for DataKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let ids: Vec<String> = self.keys.iter().map(|k| crate::token::hex(&k.id)).collect();
        f.debug_struct("DataKeys").field("key_ids", &ids).finish()
    }
}

impl SessionKey {
    pub fn new(key: impl Into<String>) -> Self {
        Self(key.into())
    }

    /// The only way to the value; grep for it to audit every use.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The 16 bytes WeChat's base64 stands for: the AES-128 key of the user's open data.
    /// `None` for a key WeChat could not have sent.
    pub fn raw_aes_key(&self) -> Option<[u8; 16]> {
        STANDARD.decode(&self.0).ok()?.try_into().ok()
    }
}

impl fmt::Debug for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionKey([redacted])")
    }
}

impl SealedSessionKey {
    /// Bytes a store read back; whether they open is [`DataKeys::open`]'s to say.
    pub fn from_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl fmt::Debug for SealedSessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealedSessionKey([sealed])")
    }
}

/// Base64 text in documents (Redis keeps a session as JSON).
impl serde::Serialize for SealedSessionKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(&self.0))
    }
}

impl<'de> serde::Deserialize<'de> for SealedSessionKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        STANDARD
            .decode(text.as_bytes())
            .map(Self)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const KEY_B: &str = "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8=";

    fn wechat_key() -> SessionKey {
        SessionKey::new("tiihtNczf5v6AKRyjwEUhQ==")
    }

    #[test]
    fn a_sealed_key_opens_for_its_own_app_and_user_only() {
        let keys = DataKeys::parse(KEY_A).unwrap();
        let sealed = keys.seal(&wechat_key(), "wxapp", "o-alice");
        assert_eq!(
            keys.open(&sealed, "wxapp", "o-alice").unwrap(),
            wechat_key()
        );
        for (appid, openid) in [("wxother", "o-alice"), ("wxapp", "o-bob")] {
            assert!(
                matches!(
                    keys.open(&sealed, appid, openid),
                    Err(OpenError::Rejected { .. })
                ),
                "{appid} {openid}"
            );
        }
        // The sealed bytes hold neither the key's text nor its decoded bytes.
        let raw = STANDARD.decode(wechat_key().expose()).unwrap();
        for needle in [wechat_key().expose().as_bytes(), raw.as_slice()] {
            assert!(!sealed.0.windows(needle.len()).any(|w| w == needle));
        }
        // Two seals of one key differ (fresh nonce), and both open.
        let again = keys.seal(&wechat_key(), "wxapp", "o-alice");
        assert_ne!(sealed, again);
        assert_eq!(keys.open(&again, "wxapp", "o-alice").unwrap(), wechat_key());
    }

    #[test]
    fn the_first_key_seals_and_every_key_opens() {
        let old = DataKeys::parse(KEY_A).unwrap();
        let sealed_old = old.seal(&wechat_key(), "wxapp", "o-1");
        let rotated = DataKeys::parse(&format!("{KEY_B}, {KEY_A}")).unwrap();
        assert_eq!(
            rotated.open(&sealed_old, "wxapp", "o-1").unwrap(),
            wechat_key()
        );
        let sealed_new = rotated.seal(&wechat_key(), "wxapp", "o-1");
        assert_eq!(
            sealed_new.0[1..5],
            DataKeys::parse(KEY_B).unwrap().keys[0].id
        );
        assert!(matches!(
            old.open(&sealed_new, "wxapp", "o-1"),
            Err(OpenError::UnknownKey { .. })
        ));
    }

    #[test]
    fn a_wrong_key_is_a_clear_error_naming_the_missing_key_id_not_a_panic() {
        let sealed = DataKeys::parse(KEY_A)
            .unwrap()
            .seal(&wechat_key(), "wxapp", "o-1");
        let wrong = DataKeys::parse(KEY_B).unwrap();
        let err = wrong.open(&sealed, "wxapp", "o-1").unwrap_err();
        let id_a = DataKeys::parse(KEY_A).unwrap().sealing_key_id();
        assert_eq!(
            err,
            OpenError::UnknownKey {
                key_id: id_a.clone()
            }
        );
        let message = err.to_string();
        assert!(
            message.contains(&id_a) && message.contains("DATA_KEYS"),
            "{message}"
        );

        // Tampered, truncated, or of an unknown format: errors too.
        let mut tampered = sealed.clone();
        let last = tampered.0.len() - 1;
        tampered.0[last] ^= 1;
        assert!(matches!(
            DataKeys::parse(KEY_A)
                .unwrap()
                .open(&tampered, "wxapp", "o-1"),
            Err(OpenError::Rejected { .. })
        ));
        for bytes in [vec![], vec![1; 10], vec![9; 64]] {
            assert_eq!(
                wrong.open(&SealedSessionKey(bytes), "wxapp", "o-1"),
                Err(OpenError::Malformed)
            );
        }
    }

    #[test]
    fn malformed_keys_are_refused_without_echoing_them() {
        let not_base64 = "this-is-not-base64!!";
        let short = STANDARD.encode([7u8; 16]);
        for (text, expect) in [
            (not_base64, "key 1 is not base64"),
            (short.as_str(), "16 bytes"),
            ("", "key 1 decodes to 0 bytes"),
        ] {
            let err = DataKeys::parse(text).unwrap_err().to_string();
            assert!(err.contains(expect), "{err}");
            if !text.is_empty() {
                assert!(!err.contains(text), "the key is echoed: {err}");
            }
        }
        let err = DataKeys::parse(&format!("{KEY_A},{short}"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("key 2"), "{err}");
    }

    #[test]
    fn debug_output_shows_key_ids_and_never_a_key() {
        let keys = DataKeys::parse(&format!("{KEY_A},{KEY_B}")).unwrap();
        let shown = format!("{keys:?}");
        assert!(shown.contains(&keys.sealing_key_id()), "{shown}");
        assert!(!shown.contains(&KEY_A[..12]) && !shown.contains(&KEY_B[..12]));
        assert_eq!(format!("{:?}", wechat_key()), "SessionKey([redacted])");
    }

    #[test]
    fn the_dev_key_file_is_created_private_once_and_reused() {
        let dir = std::env::temp_dir().join(format!("data-key-{}", uuid::Uuid::new_v4()));
        let path = dir.join("nested/data_key");
        let first = DataKeys::load_or_create(&path).unwrap();
        let second = DataKeys::load_or_create(&path).unwrap();
        assert_eq!(first.sealing_key_id(), second.sealing_key_id());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600, "{mode:o}");
        }
        let leftovers: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(leftovers, ["data_key"], "no temporary file is left");

        std::fs::write(&path, "garbage\n").unwrap();
        let err = DataKeys::load_or_create(&path).unwrap_err().to_string();
        assert!(
            err.contains("data_key") && err.contains("not base64"),
            "{err}"
        );
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn sealed_keys_round_trip_through_json() {
        let sealed = DataKeys::generate().seal(&wechat_key(), "wxapp", "o-1");
        let json = serde_json::to_string(&sealed).unwrap();
        assert_eq!(
            serde_json::from_str::<SealedSessionKey>(&json).unwrap(),
            sealed
        );
    }
}
