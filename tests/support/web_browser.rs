//! A browser, as far as the web login needs one: its own cookies (kept as browsers keep them,
//! by name, replaced or removed by `Set-Cookie`), its own User-Agent, and the same-origin
//! marks a browser puts on a page's own requests. Each value is a separate browser: a second
//! one knows nothing of the first's cookies.

use std::{collections::BTreeMap, sync::Mutex, time::Duration};

use reqwest::{Method, Response, header};
use shared::{WebLoginCreated, WebLoginStatus};

/// What Chromium on Windows says it is.
pub const CHROME_ON_WINDOWS: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 \
     (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36";

#[derive(Debug)]
pub struct WebBrowser {
    base: String,
    http: reqwest::Client,
    cookies: Mutex<BTreeMap<String, String>>,
    /// Every `Set-Cookie` line the server sent, in order, for tests of their attributes.
    pub set_cookies: Mutex<Vec<String>>,
}

impl WebBrowser {
    /// A browser that visits `base` (`http://127.0.0.1:port`).
    pub fn new(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: reqwest::Client::builder()
                .user_agent(CHROME_ON_WINDOWS)
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookies: Mutex::default(),
            set_cookies: Mutex::default(),
        }
    }

    /// The cookie `name`, if the browser holds it.
    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.lock().unwrap().get(name).cloned()
    }

    /// Sets a cookie by hand, as an attacker's own client would.
    pub fn put_cookie(&self, name: &str, value: &str) {
        self.cookies
            .lock()
            .unwrap()
            .insert(name.to_owned(), value.to_owned());
    }

    fn cookie_header(&self) -> Option<String> {
        let cookies = self.cookies.lock().unwrap();
        (!cookies.is_empty()).then(|| {
            cookies
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }

    fn keep_cookies(&self, response: &Response) {
        for line in response.headers().get_all(header::SET_COOKIE) {
            let line = line.to_str().unwrap().to_owned();
            let pair = line.split(';').next().unwrap();
            let (name, value) = pair.split_once('=').unwrap();
            let max_age_zero = line
                .split(';')
                .any(|part| part.trim().eq_ignore_ascii_case("Max-Age=0"));
            let mut cookies = self.cookies.lock().unwrap();
            if max_age_zero || value.is_empty() {
                cookies.remove(name);
            } else {
                cookies.insert(name.to_owned(), value.to_owned());
            }
            self.set_cookies.lock().unwrap().push(line);
        }
    }

    /// A request of the site's own page: its cookies, and `Sec-Fetch-Site: same-origin`.
    pub async fn fetch(&self, method: Method, path: &str) -> Response {
        self.send(method, path, &[("sec-fetch-site", "same-origin")])
            .await
    }

    /// A request with these extra headers instead of the same-origin mark: what another
    /// site's page makes the browser send.
    pub async fn send(&self, method: Method, path: &str, headers: &[(&str, &str)]) -> Response {
        let mut request = self.http.request(method, format!("{}{path}", self.base));
        if let Some(cookies) = self.cookie_header() {
            request = request.header(header::COOKIE, cookies);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        self.keep_cookies(&response);
        response
    }

    /// `POST /web-login`; panics unless a ticket is made.
    pub async fn new_ticket(&self) -> WebLoginCreated {
        let response = self.fetch(Method::POST, "/web-login").await;
        assert_eq!(response.status(), 201, "a ticket is made");
        response.json().await.unwrap()
    }

    /// `GET /web-login/{id}`: the raw response.
    pub async fn status(&self, id: &str) -> Response {
        self.fetch(Method::GET, &format!("/web-login/{id}")).await
    }

    /// The ticket's status; panics unless the server answers one.
    pub async fn status_of(&self, id: &str) -> shared::TicketStatus {
        let response = self.status(id).await;
        assert_eq!(response.status(), 200);
        response.json::<WebLoginStatus>().await.unwrap().status
    }

    /// `POST /web-login/{id}/complete` from the page.
    pub async fn complete(&self, id: &str) -> Response {
        self.fetch(Method::POST, &format!("/web-login/{id}/complete"))
            .await
    }

    /// Opens the ticket's event stream.
    pub async fn events(&self, id: &str) -> EventStream {
        let response = self
            .fetch(Method::GET, &format!("/web-login/{id}/events"))
            .await;
        EventStream {
            response,
            buffer: String::new(),
        }
    }
}

/// A Server-Sent Events stream, read event by event.
#[derive(Debug)]
pub struct EventStream {
    pub response: Response,
    buffer: String,
}

/// One event: its `event:` name and its `data:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerEvent {
    pub name: String,
    pub data: String,
}

impl EventStream {
    /// The next event (comments skipped), or `None` when the server ended the stream. Panics
    /// if nothing comes within `within`.
    pub async fn next(&mut self, within: Duration) -> Option<ServerEvent> {
        tokio::time::timeout(within, self.next_event())
            .await
            .expect("an event or the stream's end comes in time")
    }

    async fn next_event(&mut self) -> Option<ServerEvent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let mut event = ServerEvent {
                    name: "message".into(),
                    data: String::new(),
                };
                let mut any = false;
                for line in block.lines() {
                    if let Some(name) = line.strip_prefix("event:") {
                        event.name = name.trim().to_owned();
                        any = true;
                    } else if let Some(data) = line.strip_prefix("data:") {
                        event.data.push_str(data.trim_start());
                        any = true;
                    }
                }
                if any {
                    return Some(event);
                }
                continue;
            }
            let chunk = self.response.chunk().await.expect("the stream reads")?;
            self.buffer.push_str(std::str::from_utf8(&chunk).unwrap());
        }
    }

    /// The status the next `status` event carries; panics on anything else.
    pub async fn next_status(&mut self, within: Duration) -> Option<shared::TicketStatus> {
        let event = self.next(within).await?;
        assert_eq!(event.name, "status");
        Some(
            serde_json::from_str::<WebLoginStatus>(&event.data)
                .unwrap()
                .status,
        )
    }
}
