//! `SESSION_STORE`: which backend holds the sessions and where, parsed from one URL, and
//! printed without the password a Redis URL may carry.

use std::{fmt, str::FromStr};

/// Where the session store lives.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreUrl {
    Memory,
    Sqlite(std::path::PathBuf),
    /// A `redis://` or `rediss://` URL, kept whole for the Redis client to parse.
    Redis(String),
    /// The seed nodes of a Redis Cluster, each as a `redis://` URL carrying the credentials
    /// (the Redis client checks that all seeds agree on them).
    RedisCluster(Vec<String>),
}

/// The scheme of a Redis Cluster: `redis+cluster://[[USER]:PASSWORD@]HOST:PORT,HOST:PORT,…`.
/// The `+` names the transport the way `git+ssh://` does; the list is of seeds, any of which
/// tells the client where every slot lives.
const CLUSTER_SCHEME: &str = "redis+cluster://";

/// Reads the seed list after [`CLUSTER_SCHEME`]. Error messages quote hosts only, never the
/// credentials before the `@`.
fn parse_cluster(rest: &str) -> Result<StoreUrl, String> {
    // The host list holds no `@`, so the last one ends the user-info, whatever the password
    // holds.
    let (userinfo, hosts) = match rest.rsplit_once('@') {
        Some((userinfo, hosts)) => (Some(userinfo), hosts),
        None => (None, rest),
    };
    let mut seeds = Vec::new();
    for seed in hosts.split(',').map(str::trim) {
        let port = seed
            .rsplit_once(':')
            .filter(|(host, _)| !host.is_empty())
            .and_then(|(_, port)| port.parse::<u16>().ok());
        if port.is_none() {
            return Err(format!(
                "redis+cluster:// seed {seed:?} is not HOST:PORT (a cluster has one database, \
                 so no /DB either); e.g. redis+cluster://10.0.0.1:7000,10.0.0.2:7000"
            ));
        }
        seeds.push(match userinfo {
            Some(userinfo) => format!("redis://{userinfo}@{seed}"),
            None => format!("redis://{seed}"),
        });
    }
    Ok(StoreUrl::RedisCluster(seeds))
}

impl FromStr for StoreUrl {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s == "memory" {
            Ok(StoreUrl::Memory)
        } else if let Some(path) = s.strip_prefix("sqlite://") {
            if path.is_empty() {
                return Err("sqlite:// needs a file path, e.g. sqlite://data/sessions.db".into());
            }
            Ok(StoreUrl::Sqlite(path.into()))
        } else if s.starts_with("redis://") || s.starts_with("rediss://") {
            Ok(StoreUrl::Redis(s.to_owned()))
        } else if let Some(rest) = s.strip_prefix(CLUSTER_SCHEME) {
            parse_cluster(rest)
        } else {
            Err(format!(
                "unsupported session store {:?}: use sqlite://PATH, redis://HOST:PORT/DB, \
                 redis+cluster://HOST:PORT,HOST:PORT or memory",
                redact_password(s)
            ))
        }
    }
}

impl fmt::Display for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreUrl::Memory => f.write_str("memory"),
            StoreUrl::Sqlite(path) => write!(f, "sqlite://{}", path.display()),
            // The URL may carry a password: show only where it points.
            StoreUrl::Redis(url) => write!(f, "redis://{}", without_credentials(url)),
            StoreUrl::RedisCluster(seeds) => {
                let hosts: Vec<&str> = seeds.iter().map(|s| without_credentials(s)).collect();
                write!(f, "{CLUSTER_SCHEME}{}", hosts.join(","))
            }
        }
    }
}

/// Shown the way `Display` shows it: a derived `Debug` would print the Redis password.
impl fmt::Debug for StoreUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "StoreUrl({self})")
    }
}

/// What follows the scheme and the user-info of a Redis URL: where it points.
fn without_credentials(url: &str) -> &str {
    let host = url.rsplit('@').next().unwrap_or(url);
    host.split("://").last().unwrap_or(host)
}

/// `s` with the password of a URL's user-info replaced by `***`, for error messages.
fn redact_password(s: &str) -> String {
    match url::Url::parse(s) {
        Ok(mut url) if url.password().is_some() => {
            // Only fails for URLs that cannot have a password, and this one has one.
            let _ = url.set_password(Some("***"));
            url.to_string()
        }
        // Not a URL with a password the parser sees, yet it may hold one: redact the user-info
        // by hand.
        _ if s.contains('@') => {
            let (before, after) = s.rsplit_once('@').unwrap_or((s, ""));
            match before.split_once("://") {
                Some((scheme, userinfo)) => {
                    let user = userinfo.split(':').next().unwrap_or("");
                    format!("{scheme}://{user}:***@{after}")
                }
                None => format!("***@{after}"),
            }
        }
        _ => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_urls_parse_and_print_without_their_password() {
        let url: StoreUrl = "redis://:hunter2@10.0.0.5:6379/2".parse().unwrap();
        assert_eq!(
            url,
            StoreUrl::Redis("redis://:hunter2@10.0.0.5:6379/2".into())
        );
        assert_eq!(url.to_string(), "redis://10.0.0.5:6379/2");
        assert!(!format!("{url:?}").contains("hunter2"));
    }

    #[test]
    fn cluster_seed_lists_parse_and_print_without_their_password() {
        let url: StoreUrl = "redis+cluster://:hunter2@10.0.0.5:7000, 10.0.0.6:7001,[::1]:7002"
            .parse()
            .unwrap();
        assert_eq!(
            url,
            StoreUrl::RedisCluster(vec![
                "redis://:hunter2@10.0.0.5:7000".into(),
                "redis://:hunter2@10.0.0.6:7001".into(),
                "redis://:hunter2@[::1]:7002".into(),
            ])
        );
        assert_eq!(
            url.to_string(),
            "redis+cluster://10.0.0.5:7000,10.0.0.6:7001,[::1]:7002"
        );
        assert!(!format!("{url:?}").contains("hunter2"));
        let plain: StoreUrl = "redis+cluster://h1:7000".parse().unwrap();
        assert_eq!(
            plain,
            StoreUrl::RedisCluster(vec!["redis://h1:7000".into()])
        );
        for bad in [
            "redis+cluster://admin:hunter2@h1:7000,h2",
            "redis+cluster://:hunter2@h1:7000/0",
            "redis+cluster://:hunter2@",
            "redis+cluster://:hunter2@h1:7000,,h2:7001",
        ] {
            let err = bad.parse::<StoreUrl>().unwrap_err();
            assert!(err.contains("HOST:PORT"), "{err}");
            assert!(!err.contains("hunter2"), "{err}");
        }
    }

    #[test]
    fn bad_store_urls_are_refused_with_a_hint_and_without_their_password() {
        let err = "postgres://x".parse::<StoreUrl>().unwrap_err();
        assert!(err.contains("sqlite://PATH"));
        for url in [
            "postgres://admin:hunter2@db.internal:5432/x",
            "mysql://:hunter2@db",
            "weird:/admin:hunter2@db",
        ] {
            let err = url.parse::<StoreUrl>().unwrap_err();
            assert!(!err.contains("hunter2"), "{err}");
            assert!(err.contains("***"), "{err}");
        }
    }
}
