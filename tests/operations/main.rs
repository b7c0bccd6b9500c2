//! The server as operators run it: accounts and webhooks, crash safety, serving limits, hostile clients, WeChat and clients misbehaving, proxies in
//! front, forward auth behind nginx, start-up guards, the systemd unit, metrics and logs.
//!
//! Metrics and logs are read from server processes of their own: nothing here installs a
//! recorder or a logger in this process, which the tests share.

mod accounts;
mod crash_safety;
mod deploy;
mod forward_auth;
mod hostile_clients;
mod junk_codes;
mod log_format;
mod log_volume;
mod metrics;
mod serving_limits;
mod startup_guards;
mod trusted_proxies;
mod under_pressure;
mod upstream_trouble;
