//! "Chrome on Windows": the few words the confirm page shows about the browser that asks to
//! log in, so the person can tell their own computer from someone else's.
//!
//! Hand-written rather than a User-Agent database crate: two words are wanted, not versions
//! or device models, and the databases weigh megabytes. Browsers are matched most specific
//! first, since nearly every User-Agent also claims to be Safari and Mozilla.

/// Longest summary kept: a browser's own string is shown only when nothing here knows it.
const MAX_UNKNOWN_CHARS: usize = 40;

/// A short summary of `user_agent`, such as "Chrome on Windows" or "Safari on iPhone".
pub fn summarize(user_agent: Option<&str>) -> String {
    let Some(agent) = user_agent.map(str::trim).filter(|a| !a.is_empty()) else {
        return "Unknown browser".into();
    };
    match (browser(agent), system(agent)) {
        (Some(browser), Some(system)) => format!("{browser} on {system}"),
        (Some(browser), None) => browser.to_owned(),
        (None, Some(system)) => format!("A browser on {system}"),
        (None, None) => agent
            .chars()
            .filter(|c| !c.is_control())
            .take(MAX_UNKNOWN_CHARS)
            .collect(),
    }
}

fn browser(agent: &str) -> Option<&'static str> {
    const BROWSERS: [(&str, &str); 11] = [
        ("MicroMessenger", "WeChat"),
        ("Edg/", "Edge"),
        ("EdgA/", "Edge"),
        ("OPR/", "Opera"),
        ("SamsungBrowser", "Samsung Internet"),
        ("Firefox/", "Firefox"),
        ("FxiOS", "Firefox"),
        ("CriOS", "Chrome"),
        ("Chromium/", "Chromium"),
        ("Chrome/", "Chrome"),
        ("Safari/", "Safari"),
    ];
    if agent.starts_with("curl/") {
        return Some("curl");
    }
    BROWSERS
        .iter()
        .find(|(mark, _)| agent.contains(mark))
        .map(|(_, name)| *name)
}

fn system(agent: &str) -> Option<&'static str> {
    const SYSTEMS: [(&str, &str); 8] = [
        ("iPhone", "iPhone"),
        ("iPad", "iPad"),
        ("Android", "Android"),
        ("CrOS", "ChromeOS"),
        ("Windows", "Windows"),
        ("Mac OS X", "macOS"),
        ("Macintosh", "macOS"),
        ("Linux", "Linux"),
    ];
    SYSTEMS
        .iter()
        .find(|(mark, _)| agent.contains(mark))
        .map(|(_, name)| *name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn common_browsers_are_named_with_their_system() {
        for (agent, want) in [
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
                "Chrome on Windows",
            ),
            (
                "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36 Edg/131.0.0.0",
                "Edge on Windows",
            ),
            (
                "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.1 Safari/605.1.15",
                "Safari on macOS",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0",
                "Firefox on Linux",
            ),
            (
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) HeadlessChrome/131.0.0.0 Safari/537.36",
                "Chrome on Linux",
            ),
            (
                "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47",
                "WeChat on iPhone",
            ),
            (
                "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
                "Chrome on Android",
            ),
            ("curl/8.5.0", "curl"),
        ] {
            assert_eq!(summarize(Some(agent)), want, "{agent}");
        }
    }

    #[test]
    fn an_unknown_or_missing_agent_still_reads_as_something() {
        assert_eq!(summarize(None), "Unknown browser");
        assert_eq!(summarize(Some("  ")), "Unknown browser");
        assert_eq!(summarize(Some("okhttp/4.12")), "okhttp/4.12");
        let long = "x".repeat(500);
        assert_eq!(summarize(Some(&long)).len(), MAX_UNKNOWN_CHARS);
    }
}
