//! The login as clients meet it, over real HTTP on loopback: the four-step flow, the code
//! exchange, bad input, open data, one server for several apps, and a team's app that mounts
//! the login.

mod accounts;
mod bad_input;
mod business_api;
mod code_exchange;
mod login_flow;
mod oidc;
mod open_data;
mod several_apps;
mod web_login;
