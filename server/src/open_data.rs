//! WeChat's open data: the `encryptedData` WeChat hands the client under the user's
//! session_key, and the `rawData` signatures. Pure functions over bytes and time; which keys to
//! try and which app to expect is the caller's business.
//!
//! The scheme is WeChat's documented one: base64 inputs, AES-128-CBC with the session_key as
//! key and the given IV, PKCS#7 padding; the plaintext is a JSON object whose `watermark`
//! names the app and the time the data was made. Signatures are `hex(sha1(rawData +
//! session_key))`.
//!
//! CBC has no MAC, and the user sees every plaintext the server opens for them. So whoever
//! holds a token can drop leading blocks and choose the IV: the first 16 bytes of the
//! plaintext then say what they like, while the rest, watermark included, is still WeChat's.
//! An opened object is therefore accepted only when it repeats no key, at any depth, and names
//! no user but the session's ([`check_owner`]). Neither check makes the data authentic: they
//! close the forgeries that matter, an identity that is not the session's and a key shadowed by
//! a chosen copy of it.

use std::{fmt, time::Duration};

use aes::cipher::{BlockDecryptMut, KeyIvInit, block_padding::Pkcs7};
use base64::{Engine, engine::general_purpose::STANDARD};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use sha1::{Digest, Sha1};
use subtle::ConstantTimeEq;

/// Why a piece of open data was refused. Each is the client's to fix, and each has its own
/// error code in the API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenDataError {
    #[error("`{0}` is not valid base64")]
    BadBase64(&'static str),
    #[error("`iv` must decode to 16 bytes")]
    BadIvLength,
    #[error("`encryptedData` must decode to a non-empty multiple of 16 bytes")]
    BadDataLength,
    /// No key the server holds opens the data: it was encrypted under a session_key older than
    /// those kept, or it is not WeChat's data at all.
    #[error(
        "the data was not encrypted under this session's key: log in again, then fetch the data again"
    )]
    StaleSessionKey,
    #[error("the decrypted data has no watermark")]
    NoWatermark,
    #[error("the data was made for another mini-program")]
    WrongApp,
    #[error("the data is older than the server accepts ({age_seconds} s old): fetch it again")]
    Expired { age_seconds: i64 },
    /// It opened, but WeChat never made it so: it names another user, or repeats a key.
    #[error("the decrypted data {0}: it was altered after WeChat made it")]
    Forged(Forgery),
}

/// What gave altered open data away; shown to the client, who made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forgery {
    /// An object names one key twice.
    RepeatedKey,
    /// `openId` is not the session's openid.
    OtherOpenId,
    /// `unionId` is not the session's unionid, or the session has none.
    OtherUnionId,
}

impl fmt::Display for Forgery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Forgery::RepeatedKey => "repeats a key",
            Forgery::OtherOpenId => "names another user's openId",
            Forgery::OtherUnionId => "names a unionId that is not the session's",
        })
    }
}

/// Inputs read and checked once, before any key is tried.
#[derive(Debug)]
pub struct Sealed {
    data: Vec<u8>,
    iv: [u8; 16],
}

impl Sealed {
    /// Decodes the client's two base64 fields. WeChat sends standard base64 with padding; a
    /// `+` turned into a space by form encoding on the way is mended, not refused.
    pub fn parse(encrypted_data: &str, iv: &str) -> Result<Self, OpenDataError> {
        let decode = |text: &str, field| {
            STANDARD
                .decode(text.trim().replace(' ', "+"))
                .map_err(|_| OpenDataError::BadBase64(field))
        };
        let data = decode(encrypted_data, "encryptedData")?;
        let iv = decode(iv, "iv")?;
        let iv: [u8; 16] = iv.try_into().map_err(|_| OpenDataError::BadIvLength)?;
        if data.is_empty() || data.len() % 16 != 0 {
            return Err(OpenDataError::BadDataLength);
        }
        Ok(Self { data, iv })
    }

    /// The JSON object inside, with the first of `keys` that opens it; `keys` are raw 16-byte
    /// session_keys, newest first. A wrong key almost always breaks the padding, and when it
    /// does not, the result is not a JSON object: either way the next key is tried. An object
    /// that repeats a key is [`OpenDataError::Forged`], whichever key opened it.
    pub fn open<'k>(
        &self,
        keys: impl IntoIterator<Item = &'k [u8; 16]>,
    ) -> Result<Map<String, Value>, OpenDataError> {
        keys.into_iter()
            .find_map(|key| self.open_with(key))
            .unwrap_or(Err(OpenDataError::StaleSessionKey))
    }

    fn open_with(&self, key: &[u8; 16]) -> Option<Result<Map<String, Value>, OpenDataError>> {
        let plain = cbc::Decryptor::<aes::Aes128>::new(key.into(), (&self.iv).into())
            .decrypt_padded_vec_mut::<Pkcs7>(&self.data)
            .ok()?;
        match serde_json::from_slice::<NoRepeats>(&plain) {
            Ok(NoRepeats(Value::Object(map))) => Some(Ok(map)),
            // The only data error the reader raises is a repeated key: the rest is syntax.
            Err(e) if e.is_data() => Some(Err(OpenDataError::Forged(Forgery::RepeatedKey))),
            _ => None,
        }
    }
}

/// A JSON value read as `serde_json::Value` is, except that an object naming one key twice
/// (after unescaping) is an error rather than its last copy silently winning: readers disagree
/// on which copy counts, so a repeat is how chosen bytes would override genuine ones.
struct NoRepeats(Value);

impl<'de> Deserialize<'de> for NoRepeats {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer
            .deserialize_any(NoRepeatsVisitor)
            .map(NoRepeats)
    }
}

struct NoRepeatsVisitor;

impl<'de> Visitor<'de> for NoRepeatsVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        while let Some(NoRepeats(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut entries: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        while let Some(key) = entries.next_key::<String>()? {
            if object.contains_key(&key) {
                return Err(de::Error::custom("an object repeats a key"));
            }
            let NoRepeats(value) = entries.next_value()?;
            object.insert(key, value);
        }
        Ok(Value::Object(object))
    }
}

/// Checks the watermark WeChat puts in every piece of open data: made for `appid`, and, when
/// `max_age` is set, made no longer than that before `now` (unix seconds).
pub fn check_watermark(
    data: &Map<String, Value>,
    appid: &str,
    now: i64,
    max_age: Option<Duration>,
) -> Result<(), OpenDataError> {
    let watermark = data
        .get("watermark")
        .and_then(Value::as_object)
        .ok_or(OpenDataError::NoWatermark)?;
    let made_for = watermark.get("appid").and_then(Value::as_str);
    let made_at = watermark.get("timestamp").and_then(Value::as_i64);
    let (Some(made_for), Some(made_at)) = (made_for, made_at) else {
        return Err(OpenDataError::NoWatermark);
    };
    if made_for != appid {
        return Err(OpenDataError::WrongApp);
    }
    if let Some(max_age) = max_age {
        let age = now.saturating_sub(made_at);
        if age > i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX) {
            return Err(OpenDataError::Expired { age_seconds: age });
        }
    }
    Ok(())
}

/// Checks that the data names no user but the session's: `openId` and `unionId`, when
/// present, must be the session's own. Keys are compared without regard to ASCII case, since
/// readers of the answer may look for `openid`. A `unionId` in a session without one is
/// refused: the server cannot vouch for a unionid WeChat never gave it.
pub fn check_owner(
    data: &Map<String, Value>,
    openid: &str,
    unionid: Option<&str>,
) -> Result<(), OpenDataError> {
    for (key, value) in data {
        let (expected, forgery) = if key.eq_ignore_ascii_case("openid") {
            (Some(openid), Forgery::OtherOpenId)
        } else if key.eq_ignore_ascii_case("unionid") {
            (unionid, Forgery::OtherUnionId)
        } else {
            continue;
        };
        match (value.as_str(), expected) {
            (Some(named), Some(own)) if named == own => {}
            _ => return Err(OpenDataError::Forged(forgery)),
        }
    }
    Ok(())
}

/// Whether `signature` is `hex(sha1(raw_data + session_key))`, with `session_key` in the
/// base64 text WeChat gave. Compared in constant time; case-insensitive hex.
pub fn signature_matches(raw_data: &str, signature: &str, session_key: &str) -> bool {
    let digest = Sha1::new()
        .chain_update(raw_data.as_bytes())
        .chain_update(session_key.as_bytes())
        .finalize();
    let expected: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let given = signature.trim().to_ascii_lowercase();
    bool::from(expected.as_bytes().ct_eq(given.as_bytes()))
}

/// Encrypts `plain` as WeChat does, for the simulator and for tests.
pub fn seal(plain: &[u8], key: &[u8; 16], iv: &[u8; 16]) -> Vec<u8> {
    use aes::cipher::BlockEncryptMut;
    cbc::Encryptor::<aes::Aes128>::new(key.into(), iv.into()).encrypt_padded_vec_mut::<Pkcs7>(plain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// WeChat's own published sample ("WXBizDataCrypt" demo, the open-data documentation).
    const SAMPLE_APPID: &str = "wx4f4bc4dec97d474b";
    const SAMPLE_KEY: &str = "tiihtNczf5v6AKRyjwEUhQ==";
    const SAMPLE_IV: &str = "r7BXXKkLb8qrSNn05n0qiA==";
    const SAMPLE_DATA: &str = "CiyLU1Aw2KjvrjMdj8YKliAjtP4gsMZMQmRzooG2xrDcvSnxIMXFufNstNGTyaGS9uT5geRa0W4oTOb1WT7fJlAC+oNPdbB+3hVbJSRgv+4lGOETKUQz6OYStslQ142dNCuabNPGBzlooOmB231qMM85d2/fV6ChevvXvQP8Hkue1poOFtnEtpyxVLW1zAo6/1Xx1COxFvrc2d7UL/lmHInNlxuacJXwu0fjpXfz/YqYzBIBzD6WUfTIF9GRHpOn/Hz7saL8xz+W//FRAUid1OksQaQx4CMs8LOddcQhULW4ucetDf96JcR3g0gfRK4PC7E/r7Z6xNrXd2UIeorGj5Ef7b1pJAYB6Y5anaHqZ9J6nKEBvB4DnNLIVWSgARns/8wR2SiRS7MNACwTyrGvt9ts8p12PKFdlqYTopNHR1Vf7XjfhQlVsAJdNiKdYmYVoKlaRv85IfVunYzO0IKXsyl7JCUjCpoG20f0a04COwfneQAGGwd5oa+T8yO5hzuyDb/XcxxmK01EpqOyuxINew==";

    fn key(b64: &str) -> [u8; 16] {
        STANDARD.decode(b64).unwrap().try_into().unwrap()
    }

    fn sealed_json(value: &Value, key: &[u8; 16]) -> (String, String) {
        let iv = [7u8; 16];
        let data = seal(value.to_string().as_bytes(), key, &iv);
        (STANDARD.encode(data), STANDARD.encode(iv))
    }

    #[test]
    fn wechats_published_sample_opens() {
        let data = Sealed::parse(SAMPLE_DATA, SAMPLE_IV)
            .unwrap()
            .open([&key(SAMPLE_KEY)])
            .unwrap();
        assert_eq!(data["openId"], "oGZUI0egBJY1zhBYw2KhdUfwVJJE");
        assert_eq!(data["nickName"], "Band");
        assert_eq!(data["unionId"], "ocMvos6NjeKLIBqg5Mr9QjxrP1FA");
        assert_eq!(data["watermark"]["appid"], SAMPLE_APPID);
        assert_eq!(data["watermark"]["timestamp"], 1_477_314_187);
        check_watermark(&data, SAMPLE_APPID, 1_477_314_187, None).unwrap();
        assert_eq!(
            check_watermark(
                &data,
                SAMPLE_APPID,
                1_477_314_187 + 3601,
                Some(Duration::from_secs(3600))
            ),
            Err(OpenDataError::Expired { age_seconds: 3601 })
        );
    }

    #[test]
    fn data_we_seal_opens_with_its_key_and_the_right_watermark() {
        let k = [42u8; 16];
        let value = json!({"phone": "123", "watermark": {"appid": "wxA", "timestamp": 1000}});
        let (data, iv) = sealed_json(&value, &k);
        let opened = Sealed::parse(&data, &iv).unwrap().open([&k]).unwrap();
        assert_eq!(Value::Object(opened.clone()), value);
        check_watermark(&opened, "wxA", 1000 + 3600, Some(Duration::from_secs(3600))).unwrap();
        assert_eq!(
            check_watermark(&opened, "wxB", 1000, None),
            Err(OpenDataError::WrongApp)
        );
    }

    #[test]
    fn an_earlier_key_opens_what_the_current_one_cannot() {
        let (old, current, older) = ([1u8; 16], [2u8; 16], [3u8; 16]);
        let value = json!({"watermark": {"appid": "wxA", "timestamp": 1}});
        let (data, iv) = sealed_json(&value, &old);
        let sealed = Sealed::parse(&data, &iv).unwrap();
        assert!(sealed.open([&current, &old]).is_ok());
        assert_eq!(
            sealed.open([&current, &older]),
            Err(OpenDataError::StaleSessionKey)
        );
        assert_eq!(sealed.open([]), Err(OpenDataError::StaleSessionKey));
    }

    #[test]
    fn malformed_inputs_each_have_their_own_error() {
        let iv = STANDARD.encode([0u8; 16]);
        let block = STANDARD.encode([0u8; 16]);
        assert_eq!(
            Sealed::parse("not base64!", &iv).unwrap_err(),
            OpenDataError::BadBase64("encryptedData")
        );
        assert_eq!(
            Sealed::parse(&block, "%%").unwrap_err(),
            OpenDataError::BadBase64("iv")
        );
        assert_eq!(
            Sealed::parse(&block, &STANDARD.encode([0u8; 12])).unwrap_err(),
            OpenDataError::BadIvLength
        );
        assert_eq!(
            Sealed::parse(&STANDARD.encode([0u8; 17]), &iv).unwrap_err(),
            OpenDataError::BadDataLength
        );
        assert_eq!(
            Sealed::parse("", &iv).unwrap_err(),
            OpenDataError::BadDataLength
        );
        // Well-formed but under no key we hold: bad padding, or padding that happens to pass
        // over bytes that are not JSON.
        let sealed = Sealed::parse(&block, &iv).unwrap();
        assert_eq!(
            sealed.open([&[9u8; 16]]),
            Err(OpenDataError::StaleSessionKey)
        );
        // A JSON value that is not an object, and an object without a watermark.
        let k = [5u8; 16];
        let (data, iv5) = sealed_json(&json!([1, 2]), &k);
        assert_eq!(
            Sealed::parse(&data, &iv5).unwrap().open([&k]),
            Err(OpenDataError::StaleSessionKey)
        );
        let (data, iv5) = sealed_json(&json!({"a": 1}), &k);
        let opened = Sealed::parse(&data, &iv5).unwrap().open([&k]).unwrap();
        assert_eq!(
            check_watermark(&opened, "wxA", 0, None),
            Err(OpenDataError::NoWatermark)
        );
    }

    #[test]
    fn a_plus_turned_into_a_space_is_mended() {
        let with_space = SAMPLE_DATA.replacen('+', " ", 3);
        assert!(
            Sealed::parse(&with_space, SAMPLE_IV)
                .unwrap()
                .open([&key(SAMPLE_KEY)])
                .is_ok()
        );
    }

    /// What an attacker sends: `sealed` (of the known `plain`) without the blocks before the
    /// one holding byte `cut`, under an IV that makes that block read `first`.
    fn forge(plain: &[u8], sealed: &[u8], iv: &[u8; 16], cut: usize, first: &[u8; 16]) -> Sealed {
        assert_eq!(cut % 16, 0);
        let previous = if cut == 0 {
            &iv[..]
        } else {
            &sealed[cut - 16..cut]
        };
        let mut forged_iv = [0u8; 16];
        for i in 0..16 {
            forged_iv[i] = first[i] ^ plain[cut + i] ^ previous[i];
        }
        Sealed {
            data: sealed[cut..].to_vec(),
            iv: forged_iv,
        }
    }

    #[test]
    fn a_chosen_first_block_opens_but_names_another_user_and_is_refused() {
        let k = [11u8; 16];
        let iv = [4u8; 16];
        let openid = "oGZUI0egBJY1zhBYw2KhdUfwVJJE";
        // WeChat's own order: the openId first, the watermark last.
        let plain = format!(
            r#"{{"openId":"{openid}","nickName":"Band","watermark":{{"timestamp":1477314187,"appid":"wxA"}}}}"#
        );
        let sealed = seal(plain.as_bytes(), &k, &iv);
        let genuine = Sealed {
            data: sealed.clone(),
            iv,
        }
        .open([&k])
        .unwrap();
        check_owner(&genuine, openid, None).unwrap();

        // The block starting at byte 16 lies inside the openid: the attacker keeps it and what
        // follows, and writes their own start.
        let forged = forge(plain.as_bytes(), &sealed, &iv, 16, br#"{"openId":"oEVIL"#);
        let opened = forged
            .open([&k])
            .expect("CBC lets the first block be chosen");
        assert!(opened["openId"].as_str().unwrap().starts_with("oEVIL"));
        check_watermark(&opened, "wxA", 1_477_314_187, None).expect("the watermark is genuine");
        assert_eq!(
            check_owner(&opened, openid, None),
            Err(OpenDataError::Forged(Forgery::OtherOpenId))
        );
    }

    #[test]
    fn an_openid_or_unionid_must_be_the_sessions_own() {
        let data = |value: Value| value.as_object().unwrap().clone();
        let own = data(json!({"openId": "oA", "unionId": "uA", "watermark": {}}));
        check_owner(&own, "oA", Some("uA")).unwrap();
        check_owner(&data(json!({"phoneNumber": "1"})), "oA", None).unwrap();
        for (value, unionid, forgery) in [
            (json!({"openId": "oB"}), None, Forgery::OtherOpenId),
            (json!({"openid": "oB"}), None, Forgery::OtherOpenId),
            (json!({"OPENID": "oB"}), None, Forgery::OtherOpenId),
            (json!({"openId": ["oA"]}), None, Forgery::OtherOpenId),
            (json!({"openId": null}), None, Forgery::OtherOpenId),
            (json!({"unionId": "uB"}), Some("uA"), Forgery::OtherUnionId),
            (json!({"unionid": "uA"}), None, Forgery::OtherUnionId),
        ] {
            assert_eq!(
                check_owner(&data(value.clone()), "oA", unionid),
                Err(OpenDataError::Forged(forgery)),
                "{value}"
            );
        }
    }

    #[test]
    fn an_object_that_repeats_a_key_at_any_depth_is_forged() {
        let k = [12u8; 16];
        let iv = [5u8; 16];
        for plain in [
            r#"{"openId":"oB","openId":"oA","watermark":{"appid":"wxA","timestamp":1}}"#,
            r#"{"openId":"oA","watermark":{"appid":"wxB","appid":"wxA","timestamp":1}}"#,
            r#"{"open\u0049d":"oB","openId":"oA","watermark":{"appid":"wxA","timestamp":1}}"#,
            r#"{"list":[{"a":1,"a":2}],"watermark":{"appid":"wxA","timestamp":1}}"#,
        ] {
            let sealed = Sealed {
                data: seal(plain.as_bytes(), &k, &iv),
                iv,
            };
            assert_eq!(
                sealed.open([&[1u8; 16], &k]),
                Err(OpenDataError::Forged(Forgery::RepeatedKey)),
                "{plain}"
            );
        }
        // The same keys in sibling objects are not repeats, and values read as serde_json's.
        let plain = r#"{"a":{"x":1},"b":{"x":-2.5},"c":[true,null,"s",18446744073709551615]}"#;
        let sealed = Sealed {
            data: seal(plain.as_bytes(), &k, &iv),
            iv,
        };
        assert_eq!(
            Value::Object(sealed.open([&k]).unwrap()),
            serde_json::from_str::<Value>(plain).unwrap()
        );
    }

    #[test]
    fn signatures_match_only_their_data_and_key() {
        // WeChat's documented example of rawData and its signature under the sample key.
        let raw = r#"{"nickName":"Band","gender":1,"language":"zh_CN","city":"Guangzhou","province":"Guangdong","country":"CN","avatarUrl":"http://wx.qlogo.cn/mmopen/vi_32/1vZvI39NWFQ9XM4LtQpFrQJ1xlgZxx3w7bQxKARol6503Iuswjjn6nIGBiaycAjAtpujxyzYsrztuuICqIM5ibXQ/0"}"#;
        let signature = "75e81ceda165f4ffa64f4068af58c64b8f54b88c";
        assert!(signature_matches(
            raw,
            signature,
            "HyVFkGl5F5OQWJZZaNzBBg=="
        ));
        assert!(signature_matches(
            raw,
            &signature.to_uppercase(),
            "HyVFkGl5F5OQWJZZaNzBBg=="
        ));
        assert!(!signature_matches(
            &raw.replace("Band", "Bond"),
            signature,
            "HyVFkGl5F5OQWJZZaNzBBg=="
        ));
        assert!(!signature_matches(raw, signature, SAMPLE_KEY));
        assert!(!signature_matches(raw, "", "HyVFkGl5F5OQWJZZaNzBBg=="));
    }
}
