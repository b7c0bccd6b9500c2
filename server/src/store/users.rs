//! What the server keeps per user of an app, beyond any one login: the last few session_keys
//! (sealed), so that open data WeChat encrypted just before a re-login still opens, and the
//! phone number the user shared.
//!
//! WeChat gives a user a new session_key at every `wx.login()`. Data the client obtained just
//! before (a `getUserInfo`, a share ticket) is encrypted under the key before, and SDKs that
//! keep only the newest key fail on it now and then ("invalid padding", -41003). Keeping
//! [`KEY_HISTORY`] keys per user and trying them newest first removes that failure.

use async_trait::async_trait;

use super::StoreError;
use crate::data_keys::SealedSessionKey;

/// Session keys kept per user and app: the current one and the two before it.
pub const KEY_HISTORY: usize = 3;

/// One user of one app, as the server knows them.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct UserRecord {
    /// Newest first, at most [`KEY_HISTORY`].
    pub session_keys: Vec<SealedSessionKey>,
    pub phone: Option<Phone>,
}

/// A phone number as WeChat's `getuserphonenumber` gives it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Phone {
    /// With the country code, e.g. `+8613800000000`.
    pub phone_number: String,
    /// Without it.
    pub pure_phone_number: String,
    pub country_code: String,
}

impl UserRecord {
    /// Puts `key` first, dropping the oldest past [`KEY_HISTORY`]; a key already known moves
    /// to the front instead of appearing twice.
    pub fn push_session_key(&mut self, key: SealedSessionKey) {
        self.session_keys.retain(|k| *k != key);
        self.session_keys.insert(0, key);
        self.session_keys.truncate(KEY_HISTORY);
    }
}

#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// The user `openid` of `appid`, if the server has seen them log in.
    async fn user(&self, appid: &str, openid: &str) -> Result<Option<UserRecord>, StoreError>;

    /// Records `key` as the user's newest session_key (see [`UserRecord::push_session_key`]).
    async fn add_session_key(
        &self,
        appid: &str,
        openid: &str,
        key: SealedSessionKey,
    ) -> Result<(), StoreError>;

    async fn set_phone(&self, appid: &str, openid: &str, phone: Phone) -> Result<(), StoreError>;
}

/// The contract every user store meets.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests {
    use super::*;

    fn key(n: u8) -> SealedSessionKey {
        SealedSessionKey::from_bytes(vec![1, n, n, n])
    }

    /// Panics on the first broken rule. Uses its own openids: safe on a shared store.
    pub async fn run_all(users: &dyn UserStore) {
        let openid = format!("o-users-{}", uuid::Uuid::new_v4().simple());
        assert_eq!(users.user("wxA", &openid).await.unwrap(), None);
        for n in 1..=4 {
            users.add_session_key("wxA", &openid, key(n)).await.unwrap();
        }
        let record = users.user("wxA", &openid).await.unwrap().unwrap();
        assert_eq!(
            record.session_keys,
            [key(4), key(3), key(2)],
            "newest three, newest first"
        );
        assert_eq!(
            users.user("wxB", &openid).await.unwrap(),
            None,
            "apps are apart"
        );

        let phone = Phone {
            phone_number: "+8613800000000".into(),
            pure_phone_number: "13800000000".into(),
            country_code: "86".into(),
        };
        users
            .set_phone("wxA", &openid, phone.clone())
            .await
            .unwrap();
        users.add_session_key("wxA", &openid, key(5)).await.unwrap();
        let record = users.user("wxA", &openid).await.unwrap().unwrap();
        assert_eq!(record.phone, Some(phone), "a login keeps the phone");
        assert_eq!(record.session_keys[0], key(5));
        users.add_session_key("wxA", &openid, key(4)).await.unwrap();
        let record = users.user("wxA", &openid).await.unwrap().unwrap();
        assert_eq!(
            record.session_keys,
            [key(4), key(5), key(3)],
            "no key twice"
        );
    }

    /// A user's record follows them through account changes: made before their account, kept
    /// when it is created and when it merges into an older one, erased with it. Uses its own
    /// openids.
    pub async fn a_record_outlives_account_changes(
        users: &dyn UserStore,
        accounts: &dyn crate::store::AccountStore,
    ) {
        let fresh = |p: &str| format!("{p}-{}", uuid::Uuid::new_v4().simple());
        let (oa, ob, u) = (fresh("o-a"), fresh("o-b"), fresh("u"));
        users.add_session_key("wxA", &oa, key(1)).await.unwrap();
        let older = account_of(accounts, "wxA", &oa, None).await;
        users.add_session_key("wxA", &oa, key(2)).await.unwrap();
        let record = users.user("wxA", &oa).await.unwrap().unwrap();
        assert_eq!(
            record.session_keys,
            [key(2), key(1)],
            "the key from before the account is kept"
        );
        let newer = account_of(accounts, "wxB", &ob, Some(&u)).await;
        assert_ne!(older, newer);
        users.add_session_key("wxB", &ob, key(7)).await.unwrap();
        // App A now sees the unionid: B's account merges into A's.
        assert_eq!(account_of(accounts, "wxA", &oa, Some(&u)).await, older);
        let keys = |appid, openid| async move {
            users
                .user(appid, openid)
                .await
                .unwrap()
                .map(|r| r.session_keys)
        };
        assert_eq!(keys("wxA", &oa).await, Some(vec![key(2), key(1)]));
        assert_eq!(
            keys("wxB", &ob).await,
            Some(vec![key(7)]),
            "the merged-away side's history moves with its identity"
        );
        assert!(accounts.delete_account(older, 3_000).await.unwrap());
        assert_eq!(keys("wxA", &oa).await, None, "erased with the account");
        assert_eq!(keys("wxB", &ob).await, None, "erased with the account");
    }

    async fn account_of(
        accounts: &dyn crate::store::AccountStore,
        appid: &str,
        openid: &str,
        unionid: Option<&str>,
    ) -> crate::store::UserId {
        use crate::store::{Creation, LoginIdentity, Resolution, UserId};
        let login = LoginIdentity {
            appid,
            openid,
            unionid,
        };
        match accounts
            .resolve(&login, Creation::Allowed(UserId::generate()), 1_000)
            .await
            .unwrap()
        {
            Resolution::Created { user_id } | Resolution::Existing { user_id, .. } => user_id,
            Resolution::NoAccount => panic!("creation was allowed"),
        }
    }
}
