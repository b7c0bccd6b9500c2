//! A login's writes as one step, for a store that can make them one: the person's account
//! resolved and, when it lets them in, their session stored, its session_key added to their
//! key history and, where the store holds the code's claim too, the claim settled. On SQLite
//! that is one write, and so one commit to wait for, where the same writes made one after
//! another waited for two; on Redis it is one round trip after the claim, where they were
//! six.

use std::{fmt, time::Duration};

use async_trait::async_trait;

use super::{ClaimKey, Creation, LoginIdentity, Outcome, Resolution, Session, StoreError, UserId};
use crate::token::TokenHash;

#[async_trait]
pub trait LoginWrites: Send + Sync + fmt::Debug {
    /// Resolves `login` as [`AccountStore::resolve`](super::AccountStore::resolve) does with
    /// `create`; when the resolution [admits](admitted) the person, stores `session` under
    /// `key` with the account's `user_id`, and adds its session_key to the user's history, as
    /// [`SessionStore::insert`](super::SessionStore::insert) and
    /// [`UserStore::add_session_key`](super::UserStore::add_session_key) would. All of it or
    /// none of it; retrying after a failure is safe. A store that holds the code's claims
    /// may also record `settle` with the same writes, and says so in [`Started::settled`];
    /// the caller settles the claim itself otherwise.
    async fn resolve_and_start(
        &self,
        login: &LoginIdentity<'_>,
        create: Creation,
        now: i64,
        key: TokenHash,
        session: Session,
        settle: &Settlement,
    ) -> Result<Started, StoreError>;
}

/// The outcome of a code's exchange, to be kept under its claim for `keep`, as
/// [`ClaimStore::settle`](super::ClaimStore::settle) would keep it.
#[derive(Debug, Clone)]
pub struct Settlement {
    pub claim: ClaimKey,
    pub outcome: Outcome,
    pub keep: Duration,
}

/// What [`LoginWrites::resolve_and_start`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Started {
    pub resolution: Resolution,
    /// Whether the claim was settled with the writes: only ever for a person let in.
    pub settled: bool,
}

/// The account `resolution` lets in: one made, or one found that is not disabled.
pub fn admitted(resolution: &Resolution) -> Option<UserId> {
    match *resolution {
        Resolution::Created { user_id } => Some(user_id),
        Resolution::Existing {
            user_id,
            disabled: false,
            ..
        } => Some(user_id),
        Resolution::Existing { disabled: true, .. } | Resolution::NoAccount => None,
    }
}

/// The contract every [`LoginWrites`] meets, read back through the store's other traits.
#[cfg(any(test, feature = "contract-tests"))]
pub mod contract_tests {
    use std::time::Duration;

    use super::*;
    use crate::{
        store::{
            AccountStore, ClaimState, ClaimStore, Identity, Phone, SessionStore, UserStore,
            contract_tests::{APPID, session},
        },
        time::unix_now,
        token::{SealedToken, Token, TokenShape},
    };

    /// Another app of the same person, for a login that links.
    const OTHER_APPID: &str = "wxcontracttest02";

    /// An account found, enabled, merging nothing.
    fn found(user_id: UserId) -> Resolution {
        Resolution::Existing {
            user_id,
            disabled: false,
            merged_away: None,
        }
    }

    /// Names unique to one run: the suite is safe on a shared store.
    fn fresh(what: &str) -> String {
        format!("{what}-{}", UserId::generate())
    }

    /// A login of `openid` (in `appid`, with `unionid`) under a fresh token and claim.
    struct Attempt {
        appid: &'static str,
        openid: String,
        unionid: Option<String>,
        key: TokenHash,
        session: Session,
        settle: Settlement,
    }

    impl Attempt {
        fn new(appid: &'static str, openid: &str, unionid: Option<&str>) -> Self {
            let mut s = session(openid, 3600);
            s.user_id = UserId::UNKNOWN;
            s.appid = appid.into();
            s.unionid = unionid.map(str::to_owned);
            let claim = *Token::generate().hash().as_bytes();
            Self {
                appid,
                openid: openid.to_owned(),
                unionid: unionid.map(str::to_owned),
                key: Token::generate().hash(),
                settle: Settlement {
                    claim: ClaimKey::new(claim),
                    outcome: Outcome::Issued {
                        sealed_token: SealedToken {
                            shape: TokenShape::Ordered,
                            bytes: [7; 32],
                        },
                        expires_at: s.expires_at,
                    },
                    keep: Duration::from_secs(60),
                },
                session: s,
            }
        }

        async fn run<S: LoginWrites + ?Sized>(&self, store: &S, create: Creation) -> Started {
            let login = LoginIdentity {
                appid: self.appid,
                openid: &self.openid,
                unionid: self.unionid.as_deref(),
            };
            store
                .resolve_and_start(
                    &login,
                    create,
                    unix_now(),
                    self.key,
                    self.session.clone(),
                    &self.settle,
                )
                .await
                .unwrap()
        }
    }

    /// Panics on the first broken rule. `claims` is where the store's claims live, to read a
    /// settlement back.
    pub async fn run_all<S>(store: &S, claims: &dyn ClaimStore)
    where
        S: LoginWrites + SessionStore + UserStore + AccountStore,
    {
        a_new_person_gets_an_account_a_session_and_a_key_history(store, claims).await;
        a_first_login_keeps_what_the_user_had_before_accounts(store, claims).await;
        a_returning_person_keeps_their_account(store, claims).await;
        a_login_that_links_or_merges_follows_the_resolution_rules(store, claims).await;
        a_refused_or_disabled_login_writes_nothing(store, claims).await;
    }

    /// For stores that honour [`Outbox::discard_new_events`](crate::store::Outbox): once
    /// told, neither a login that makes an account nor a resolution that makes or links one
    /// writes an event. Run it last: the store discards from then on.
    pub async fn a_store_told_to_discard_writes_no_event<S>(store: &S)
    where
        S: LoginWrites + AccountStore + crate::store::Outbox,
    {
        let sign_up = || Attempt::new(APPID, &fresh("o-discard"), Some(&fresh("u-discard")));
        let before = sign_up()
            .run(store, Creation::Allowed(UserId::generate()))
            .await;
        let kept = admitted(&before.resolution).expect("an account");
        store.discard_new_events();
        let by_login = sign_up()
            .run(store, Creation::Allowed(UserId::generate()))
            .await;
        let by_resolve = store
            .resolve(
                &LoginIdentity {
                    appid: APPID,
                    openid: &fresh("o-discard-resolve"),
                    unionid: None,
                },
                Creation::Allowed(UserId::generate()),
                unix_now(),
            )
            .await
            .unwrap();
        let made: Vec<UserId> = [by_login.resolution, by_resolve]
            .iter()
            .filter_map(admitted)
            .collect();
        assert_eq!(made.len(), 2, "both made an account");
        let due = store
            .take_due(i64::MAX / 2, Duration::from_secs(1), 1_000_000)
            .await
            .unwrap();
        let names = |entry: &crate::store::OutboxEntry, user_id: &UserId| {
            serde_json::to_value(&entry.event).unwrap()["data"]["user_id"]
                == serde_json::json!(user_id)
        };
        assert!(
            due.iter().any(|entry| names(entry, &kept)),
            "the sign-up from before was kept: {due:?}"
        );
        let written: Vec<_> = due
            .iter()
            .filter(|entry| made.iter().any(|user_id| names(entry, user_id)))
            .collect();
        assert!(written.is_empty(), "events written: {written:?}");
    }

    /// What every admitted login leaves: the session under its key with the account's id,
    /// listed under the account, and the session_key first in the user's history; the claim
    /// settled when the store says so.
    async fn assert_started<S>(store: &S, claims: &dyn ClaimStore, attempt: &Attempt, at: &Started)
    where
        S: LoginWrites + SessionStore + UserStore + AccountStore,
    {
        let user_id = admitted(&at.resolution).expect("an admitted login");
        let stored = store
            .get(attempt.key, unix_now())
            .await
            .unwrap()
            .expect("the session is stored");
        assert_eq!(stored.user_id, user_id, "the session carries the account");
        assert_eq!(
            Session {
                user_id: UserId::UNKNOWN,
                ..(*stored).clone()
            },
            attempt.session,
            "the session is stored as given"
        );
        let listed = store.of_account(user_id, unix_now()).await.unwrap();
        assert!(
            listed.iter().any(|(key, _)| *key == attempt.key),
            "the session is listed under its account"
        );
        let history = store
            .user(attempt.appid, &attempt.openid)
            .await
            .unwrap()
            .expect("a key history");
        assert_eq!(
            history.session_keys.first(),
            Some(&attempt.session.session_key),
            "the newest key leads the history"
        );
        if at.settled {
            let state = claims
                .claim(attempt.settle.claim, Duration::from_secs(60))
                .await
                .unwrap();
            assert_eq!(
                state,
                Some(ClaimState::Done(attempt.settle.outcome.clone()))
            );
        }
    }

    async fn a_new_person_gets_an_account_a_session_and_a_key_history<S>(
        store: &S,
        claims: &dyn ClaimStore,
    ) where
        S: LoginWrites + SessionStore + UserStore + AccountStore,
    {
        let unionid = fresh("u-new");
        let attempt = Attempt::new(APPID, &fresh("o-new"), Some(&unionid));
        let made = UserId::generate();
        let started = attempt.run(store, Creation::Allowed(made)).await;
        assert_eq!(started.resolution, Resolution::Created { user_id: made });
        assert_started(store, claims, &attempt, &started).await;
        let account = store.account(made).await.unwrap().expect("the account");
        assert_eq!(account.identities.len(), 2, "{account:?}");

        // A retry after a lost answer finds what the first try made, and writes it again.
        let again = attempt
            .run(store, Creation::Allowed(UserId::generate()))
            .await;
        assert_eq!(again.resolution, found(made));
        assert_started(store, claims, &attempt, &again).await;
    }

    /// A user known from before accounts (a key history and a phone, but no identity) whose
    /// login now makes their account keeps both, with the new key first.
    async fn a_first_login_keeps_what_the_user_had_before_accounts<S>(
        store: &S,
        claims: &dyn ClaimStore,
    ) where
        S: LoginWrites + SessionStore + UserStore + AccountStore,
    {
        let attempt = Attempt::new(APPID, &fresh("o-before"), None);
        let older = session(&attempt.openid, 3600).session_key;
        let phone = Phone {
            phone_number: "+8613800000001".into(),
            pure_phone_number: "13800000001".into(),
            country_code: "86".into(),
        };
        store
            .add_session_key(APPID, &attempt.openid, older.clone())
            .await
            .unwrap();
        store
            .set_phone(APPID, &attempt.openid, phone.clone())
            .await
            .unwrap();

        let made = UserId::generate();
        let started = attempt.run(store, Creation::Allowed(made)).await;
        assert_eq!(started.resolution, Resolution::Created { user_id: made });
        assert_started(store, claims, &attempt, &started).await;
        let record = store.user(APPID, &attempt.openid).await.unwrap().unwrap();
        assert_eq!(
            record.session_keys,
            vec![attempt.session.session_key.clone(), older]
        );
        assert_eq!(record.phone, Some(phone));
    }

    async fn a_returning_person_keeps_their_account<S>(store: &S, claims: &dyn ClaimStore)
    where
        S: LoginWrites + SessionStore + UserStore + AccountStore,
    {
        let openid = fresh("o-back");
        let first = Attempt::new(APPID, &openid, None);
        let made = UserId::generate();
        first.run(store, Creation::Allowed(made)).await;
        let second = Attempt::new(APPID, &openid, None);
        let started = second
            .run(store, Creation::Allowed(UserId::generate()))
            .await;
        assert_eq!(started.resolution, found(made));
        assert_started(store, claims, &second, &started).await;
        let history = store.user(APPID, &openid).await.unwrap().unwrap();
        assert_eq!(
            history.session_keys,
            [
                second.session.session_key.clone(),
                first.session.session_key.clone()
            ],
            "both keys, newest first"
        );
        let listed = store.of_account(made, unix_now()).await.unwrap();
        assert_eq!(listed.len(), 2, "both sessions listed");
    }

    async fn a_login_that_links_or_merges_follows_the_resolution_rules<S>(
        store: &S,
        claims: &dyn ClaimStore,
    ) where
        S: LoginWrites + SessionStore + UserStore + AccountStore,
    {
        // The same person in a second app: the openid joins the account of the unionid.
        let unionid = fresh("u-link");
        let made = UserId::generate();
        Attempt::new(APPID, &fresh("o-link"), Some(&unionid))
            .run(store, Creation::Allowed(made))
            .await;
        let linking = Attempt::new(OTHER_APPID, &fresh("o-link-b"), Some(&unionid));
        let started = linking
            .run(store, Creation::Allowed(UserId::generate()))
            .await;
        assert_eq!(started.resolution, found(made));
        assert_started(store, claims, &linking, &started).await;
        let account = store.account(made).await.unwrap().unwrap();
        assert!(account.identities.contains(&Identity::MiniProgram {
            appid: OTHER_APPID.into(),
            openid: linking.openid.clone(),
        }));

        // Two accounts found to be one person: the older survives and gets the session.
        let (older, newer) = {
            let (a, b) = (UserId::generate(), UserId::generate());
            (a.min(b), a.max(b))
        };
        let unionid = fresh("u-merge");
        let openid = fresh("o-merge");
        Attempt::new(APPID, &openid, None)
            .run(store, Creation::Allowed(newer))
            .await;
        Attempt::new(OTHER_APPID, &fresh("o-merge-b"), Some(&unionid))
            .run(store, Creation::Allowed(older))
            .await;
        let merging = Attempt::new(APPID, &openid, Some(&unionid));
        let started = merging
            .run(store, Creation::Allowed(UserId::generate()))
            .await;
        assert_eq!(
            started.resolution,
            Resolution::Existing {
                user_id: older,
                disabled: false,
                merged_away: Some(newer)
            }
        );
        assert_started(store, claims, &merging, &started).await;
        assert_eq!(store.account(newer).await.unwrap(), None);
    }

    async fn a_refused_or_disabled_login_writes_nothing<S>(store: &S, claims: &dyn ClaimStore)
    where
        S: LoginWrites + SessionStore + UserStore + AccountStore,
    {
        let stranger = Attempt::new(APPID, &fresh("o-refused"), Some(&fresh("u-refused")));
        let started = stranger.run(store, Creation::Refused).await;
        assert_eq!(
            started,
            Started {
                resolution: Resolution::NoAccount,
                settled: false
            }
        );
        assert_eq!(store.get(stranger.key, unix_now()).await.unwrap(), None);

        let openid = fresh("o-disabled");
        let made = UserId::generate();
        Attempt::new(APPID, &openid, None)
            .run(store, Creation::Allowed(made))
            .await;
        store.set_disabled(made, true, unix_now()).await.unwrap();
        let refused = Attempt::new(APPID, &openid, None);
        let started = refused
            .run(store, Creation::Allowed(UserId::generate()))
            .await;
        assert_eq!(
            started,
            Started {
                resolution: Resolution::Existing {
                    user_id: made,
                    disabled: true,
                    merged_away: None
                },
                settled: false
            }
        );
        assert_eq!(store.get(refused.key, unix_now()).await.unwrap(), None);
        let history = store.user(APPID, &openid).await.unwrap().unwrap();
        assert_eq!(history.session_keys.len(), 1, "no key of a refused login");
        let claim = claims
            .claim(refused.settle.claim, Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(
            claim, None,
            "the claim is the caller's to settle as a refusal"
        );
    }
}
