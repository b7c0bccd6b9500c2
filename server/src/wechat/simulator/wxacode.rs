//! The simulator's `getwxacodeunlimit`: a real QR code, PNG, that any scanner reads as
//! `<page>?scene=<scene>`, so a test or a person with a phone can follow a web login from the
//! picture alone. WeChat draws its round "mini-program code" instead, which only WeChat reads;
//! what the page is handed (`page`, `scene`) is the same.
//!
//! It refuses what WeChat refuses, with WeChat's errcodes: a token that is not the current one
//! (40001, 42001), more codes in a minute than the quota (45009), a scene that is too long or has
//! a character WeChat does not take (40169), a page with a leading `/` or a query, or, with
//! `check_path`, one the demo mini-program does not have (41030: WeChat's "invalid page" covers
//! all of these).

use std::{
    collections::VecDeque,
    time::{Duration, Instant},
};

use axum::{
    Json,
    body::Bytes,
    extract::{Query, State},
    http::header,
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{Simulator, errcode, error, open_api::token_refusal};
use crate::wechat::wxacode::{DEFAULT_WIDTH, EnvVersion, is_valid_scene};

/// The pages of the demo mini-program (`miniprogram/app.json`), the home page first: the
/// pages `check_path` finds, as if that version were published.
pub const DEMO_PAGES: &[&str] = &["pages/index/index", "pages/web-login/confirm"];

/// WeChat's quota of codes per app per minute ("5000 次/分钟").
pub const WXACODE_QUOTA_PER_MINUTE: u32 = 5000;

/// WeChat draws widths in this range, whatever is asked.
const MIN_WIDTH: u32 = 280;
const MAX_WIDTH: u32 = 1280;

/// The light border scanners need around a QR code, in modules (ISO/IEC 18004).
const QUIET_ZONE: usize = 4;

/// WeChat's answer to a body that is not JSON of the expected shape.
const DATA_FORMAT_ERROR: i64 = 47001;

#[derive(Default)]
pub(super) struct WxaCodeState {
    /// `None`: [`WXACODE_QUOTA_PER_MINUTE`].
    quota_per_minute: Option<u32>,
    /// When the codes of the last minute were asked for.
    recent: VecDeque<Instant>,
    calls: u64,
}

impl Simulator {
    /// Sets the quota of codes per minute (WeChat's 5,000 until set), so that a test can reach
    /// 45009 in a call or two.
    pub fn set_wxacode_quota(&self, per_minute: u32) {
        self.state().wxacode.quota_per_minute = Some(per_minute);
    }

    /// How many times `getwxacodeunlimit` was called, refused calls included.
    pub fn wxacode_calls(&self) -> u64 {
        self.state().wxacode.calls
    }

    /// `getwxacodeunlimit`: the token first, then the quota, then the request. The PNG, or
    /// WeChat's error object.
    fn wxacode(&self, access_token: Option<&str>, body: &[u8]) -> Result<Vec<u8>, Value> {
        let mut state = self.state();
        state.wxacode.calls += 1;
        if let Some(refusal) = token_refusal(&state.open, access_token) {
            return Err(refusal);
        }
        let quota = state
            .wxacode
            .quota_per_minute
            .unwrap_or(WXACODE_QUOTA_PER_MINUTE);
        let now = Instant::now();
        let recent = &mut state.wxacode.recent;
        while recent
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(60))
        {
            recent.pop_front();
        }
        if recent.len() >= quota as usize {
            return Err(error(
                errcode::WXACODE_QUOTA,
                "reach max api minute quota limit",
            ));
        }
        recent.push_back(now);
        drop(state);
        let body: WxaCodeBody = serde_json::from_slice(body)
            .map_err(|_| error(DATA_FORMAT_ERROR, "data format error"))?;
        let code = body.checked()?;
        render_png(&code.text(), code.width)
            .map_err(|e| error(errcode::BUSY, &format!("system error: {e}")))
    }
}

/// The request as WeChat reads it: absent fields take WeChat's defaults.
#[derive(Deserialize)]
struct WxaCodeBody {
    scene: Option<String>,
    page: Option<String>,
    check_path: Option<bool>,
    env_version: Option<String>,
    width: Option<u32>,
}

/// A request WeChat would draw.
struct Drawn {
    scene: String,
    page: String,
    width: u32,
}

impl Drawn {
    /// What the QR code says: what the page would be opened with.
    fn text(&self) -> String {
        format!("{}?scene={}", self.page, self.scene)
    }
}

impl WxaCodeBody {
    fn checked(self) -> Result<Drawn, Value> {
        let scene = self.scene.unwrap_or_default();
        if !is_valid_scene(&scene) {
            return Err(error(
                errcode::INVALID_SCENE,
                "invalid length for scene, or the data is not json string",
            ));
        }
        // WeChat opens the home page when none is named.
        let page = match self.page.filter(|p| !p.is_empty()) {
            Some(page) => page,
            None => DEMO_PAGES[0].to_owned(),
        };
        if page.starts_with('/') || page.contains('?') {
            return Err(error(errcode::INVALID_PAGE, "invalid page"));
        }
        // Not one of WeChat's documented errcodes for this API; its generic "invalid args".
        if self
            .env_version
            .as_deref()
            .is_some_and(|v| EnvVersion::parse(v).is_none())
        {
            return Err(error(errcode::INVALID_ARGUMENT, "invalid env_version"));
        }
        if self.check_path.unwrap_or(true) && !DEMO_PAGES.contains(&page.as_str()) {
            return Err(error(errcode::INVALID_PAGE, "invalid page"));
        }
        Ok(Drawn {
            scene,
            page,
            width: self
                .width
                .unwrap_or(DEFAULT_WIDTH)
                .clamp(MIN_WIDTH, MAX_WIDTH),
        })
    }
}

/// A black-on-white QR code of `text`, with its quiet zone, as an 8-bit grey PNG close to
/// `width` pixels wide: whole pixels per module, so every module stays sharp for a scanner.
fn render_png(text: &str, width: u32) -> Result<Vec<u8>, String> {
    let code = qrcode::QrCode::new(text.as_bytes()).map_err(|e| e.to_string())?;
    let modules = code.width();
    let dark = code.to_colors();
    let side_modules = modules + 2 * QUIET_ZONE;
    let scale = (width as usize / side_modules).max(1);
    let side = side_modules * scale;
    let mut pixels = vec![0xffu8; side * side];
    for (i, color) in dark.iter().enumerate() {
        if *color != qrcode::Color::Dark {
            continue;
        }
        let (x, y) = (i % modules + QUIET_ZONE, i / modules + QUIET_ZONE);
        for row in y * scale..(y + 1) * scale {
            pixels[row * side + x * scale..row * side + (x + 1) * scale].fill(0);
        }
    }
    let side = u32::try_from(side).map_err(|e| e.to_string())?;
    let mut png = Vec::new();
    let mut encoder = png::Encoder::new(&mut png, side, side);
    encoder.set_color(png::ColorType::Grayscale);
    encoder.set_depth(png::BitDepth::Eight);
    let mut writer = encoder.write_header().map_err(|e| e.to_string())?;
    writer
        .write_image_data(&pixels)
        .map_err(|e| e.to_string())?;
    writer.finish().map_err(|e| e.to_string())?;
    Ok(png)
}

#[derive(Deserialize)]
pub(super) struct WxaCodeQuery {
    access_token: Option<String>,
}

pub(super) async fn wxacode(
    State(sim): State<Simulator>,
    Query(query): Query<WxaCodeQuery>,
    body: Bytes,
) -> Response {
    match sim.wxacode(query.access_token.as_deref(), &body) {
        Ok(png) => ([(header::CONTENT_TYPE, "image/png")], png).into_response(),
        // This API's errors are labelled JSON, unlike code2Session's.
        Err(refusal) => (
            [(header::CONTENT_TYPE, "application/json; encoding=utf-8")],
            refusal.to_string(),
        )
            .into_response(),
    }
}

/// `POST /wxacode`: a test's setting of the quota; `{}` only reads.
#[derive(Deserialize)]
pub(super) struct WxaCodeControl {
    quota_per_minute: Option<u32>,
}

/// What `POST /wxacode` answers, for tests that run the simulator in another process.
#[derive(Debug, Serialize)]
pub(super) struct WxaCodeSettings {
    quota_per_minute: u32,
    wxacode_calls: u64,
}

pub(super) async fn wxacode_control(
    State(sim): State<Simulator>,
    Json(body): Json<WxaCodeControl>,
) -> Json<WxaCodeSettings> {
    if let Some(quota) = body.quota_per_minute {
        sim.set_wxacode_quota(quota);
    }
    let state = sim.state();
    Json(WxaCodeSettings {
        quota_per_minute: state
            .wxacode
            .quota_per_minute
            .unwrap_or(WXACODE_QUOTA_PER_MINUTE),
        wxacode_calls: state.wxacode.calls,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn token(sim: &Simulator) -> String {
        sim.invalidate_access_token();
        sim.current_access_token().unwrap()
    }

    fn ask(sim: &Simulator, token: &str, body: Value) -> Result<Vec<u8>, i64> {
        sim.wxacode(Some(token), body.to_string().as_bytes())
            .map_err(|e| e["errcode"].as_i64().unwrap())
    }

    fn confirm(scene: &str) -> Value {
        json!({ "scene": scene, "page": "pages/web-login/confirm", "env_version": "release" })
    }

    /// `DEMO_PAGES` is the demo's own list, so `check_path` finds what a published demo has.
    #[test]
    fn the_demo_pages_are_those_of_app_json() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../miniprogram/app.json");
        let app: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
        let pages: Vec<&str> = app["pages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p.as_str().unwrap())
            .collect();
        assert_eq!(pages, DEMO_PAGES, "miniprogram/app.json's pages");
    }

    #[test]
    fn a_code_is_a_png_of_about_the_asked_width() {
        let sim = Simulator::new("wxapp", "s3cret");
        let token = token(&sim);
        let png = ask(&sim, &token, confirm("AbC_12-x")).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let info = decoder.read_info().unwrap().info().clone();
        assert_eq!(info.width, info.height);
        assert!(
            (DEFAULT_WIDTH * 3 / 4..=DEFAULT_WIDTH).contains(&info.width),
            "{}",
            info.width
        );
        let mut wide = confirm("AbC_12-x");
        wide["width"] = json!(1000);
        let png = ask(&sim, &token, wide).unwrap();
        let decoder = png::Decoder::new(std::io::Cursor::new(&png));
        let width = decoder.read_info().unwrap().info().width;
        assert!((750..=1000).contains(&width), "{width}");
        assert_eq!(sim.wxacode_calls(), 2);
    }

    #[test]
    fn the_token_is_checked_first() {
        let sim = Simulator::new("wxapp", "s3cret");
        let stale = token(&sim);
        sim.invalidate_access_token();
        assert_eq!(ask(&sim, &stale, confirm("a")), Err(40001));
        assert_eq!(
            sim.wxacode(None, confirm("a").to_string().as_bytes())
                .unwrap_err()["errcode"],
            40001
        );
        sim.set_access_token_ttl(Duration::ZERO);
        let expired = sim.current_access_token().unwrap();
        assert_eq!(ask(&sim, &expired, confirm("a")), Err(42001));
    }

    #[test]
    fn scenes_wechat_does_not_take_get_40169() {
        let sim = Simulator::new("wxapp", "s3cret");
        let token = token(&sim);
        for scene in [
            "x".repeat(33),
            "a%20b".into(),
            "a b".into(),
            "中文".into(),
            String::new(),
        ] {
            assert_eq!(ask(&sim, &token, confirm(&scene)), Err(40169), "{scene:?}");
        }
        assert!(ask(&sim, &token, confirm(&"x".repeat(32))).is_ok());
        assert!(ask(&sim, &token, confirm("!#$&'()*+,/:;=?@-._~")).is_ok());
        assert_eq!(
            ask(&sim, &token, json!({ "page": "pages/index/index" })),
            Err(40169),
            "a scene is required"
        );
    }

    #[test]
    fn pages_wechat_cannot_find_get_41030() {
        let sim = Simulator::new("wxapp", "s3cret");
        let token = token(&sim);
        let page = |page: &str, check_path: Option<bool>| {
            let mut body = json!({ "scene": "s", "page": page });
            if let Some(check) = check_path {
                body["check_path"] = json!(check);
            }
            ask(&sim, &token, body)
        };
        assert_eq!(page("/pages/web-login/confirm", None), Err(41030));
        assert_eq!(page("/pages/web-login/confirm", Some(false)), Err(41030));
        assert_eq!(page("pages/web-login/confirm?x=1", Some(false)), Err(41030));
        assert_eq!(page("pages/nowhere/nowhere", None), Err(41030));
        assert_eq!(page("pages/nowhere/nowhere", Some(true)), Err(41030));
        assert!(page("pages/nowhere/nowhere", Some(false)).is_ok());
        assert!(page("pages/web-login/confirm", None).is_ok());
        assert!(page("", None).is_ok(), "no page: the home page");
        let mut body = confirm("s");
        body["env_version"] = json!("beta");
        assert_eq!(ask(&sim, &token, body), Err(40097));
        assert_eq!(
            sim.wxacode(Some(&token), b"not json").unwrap_err()["errcode"],
            47001
        );
    }

    #[test]
    fn codes_past_the_minutes_quota_get_45009() {
        let sim = Simulator::new("wxapp", "s3cret");
        let token = token(&sim);
        for _ in 0..3 {
            assert!(ask(&sim, &token, confirm("s")).is_ok());
        }
        sim.set_wxacode_quota(1);
        assert_eq!(ask(&sim, &token, confirm("s")), Err(45009));
        sim.set_wxacode_quota(4);
        assert!(ask(&sim, &token, confirm("s")).is_ok());
        assert_eq!(ask(&sim, &token, confirm("s")), Err(45009));
        assert_eq!(sim.wxacode_calls(), 6);
    }
}
