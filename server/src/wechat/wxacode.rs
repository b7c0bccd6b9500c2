//! What a mini-program code (`getwxacodeunlimit`) is asked with, and WeChat's rules for it,
//! shared by the client, which checks a request before spending WeChat's quota on it, and the
//! simulator, which refuses what WeChat refuses.

/// WeChat's limit on `scene`, in characters.
pub const SCENE_MAX_LEN: usize = 32;

/// The image width WeChat draws when the request names none, in pixels.
pub const DEFAULT_WIDTH: u32 = 430;

/// Characters WeChat takes in a `scene` besides ASCII letters and digits. No `%`: the page
/// gets the scene URL-encoded, and a `%` in it could not be told from the encoding.
const SCENE_PUNCTUATION: &str = "!#$&'()*+,/:;=?@-._~";

/// Which version of the mini-program a code opens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EnvVersion {
    /// The published version: the only one whose pages `check_path` can find.
    #[default]
    Release,
    /// The trial version ("体验版"), for the people the developer invited.
    Trial,
    /// The development version, for the developers themselves.
    Develop,
}

impl EnvVersion {
    /// WeChat's name of it, as `env_version` carries it.
    pub fn as_str(self) -> &'static str {
        match self {
            EnvVersion::Release => "release",
            EnvVersion::Trial => "trial",
            EnvVersion::Develop => "develop",
        }
    }

    /// The version WeChat's name stands for; `None` for anything else.
    pub fn parse(name: &str) -> Option<Self> {
        match name {
            "release" => Some(EnvVersion::Release),
            "trial" => Some(EnvVersion::Trial),
            "develop" => Some(EnvVersion::Develop),
            _ => None,
        }
    }
}

impl std::fmt::Display for EnvVersion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One mini-program code to draw: scanned, it opens `page` with `scene` as `options.scene`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WxaCodeRequest {
    /// What the page is handed: at most [`SCENE_MAX_LEN`] characters that
    /// [`is_valid_scene`] accepts.
    pub scene: String,
    /// A page of the mini-program, without a leading `/` and without a query.
    pub page: String,
    pub env_version: EnvVersion,
    /// Whether WeChat must find `page` in the published version. Only a released page can
    /// pass, so codes for `trial` or `develop` need `false`.
    pub check_path: bool,
    /// The image's width in pixels; WeChat's [`DEFAULT_WIDTH`] when `None`.
    pub width: Option<u32>,
}

impl WxaCodeRequest {
    /// The JSON body WeChat takes.
    pub(crate) fn body(&self) -> serde_json::Value {
        let mut body = serde_json::json!({
            "scene": self.scene,
            "page": self.page,
            "check_path": self.check_path,
            "env_version": self.env_version.as_str(),
        });
        if let Some(width) = self.width {
            body["width"] = width.into();
        }
        body
    }
}

/// Whether WeChat takes `scene`: 1 to [`SCENE_MAX_LEN`] characters, each an ASCII letter, a
/// digit or one of `!#$&'()*+,/:;=?@-._~`.
pub fn is_valid_scene(scene: &str) -> bool {
    !scene.is_empty()
        && scene.len() <= SCENE_MAX_LEN
        && scene
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || SCENE_PUNCTUATION.contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scenes_follow_wechats_alphabet_and_length() {
        assert!(is_valid_scene("AbC_12-x"));
        assert!(is_valid_scene("a=1&b=2"));
        assert!(is_valid_scene("!#$&'()*+,/:;=?@-._~"));
        assert!(is_valid_scene(&"x".repeat(SCENE_MAX_LEN)));
        assert!(!is_valid_scene(&"x".repeat(SCENE_MAX_LEN + 1)));
        assert!(!is_valid_scene(""));
        for bad in ["a%20b", "a b", "票", "a\"b", "a<b", "a\nb"] {
            assert!(!is_valid_scene(bad), "{bad:?}");
        }
    }

    #[test]
    fn env_versions_round_trip_through_their_names() {
        for version in [EnvVersion::Release, EnvVersion::Trial, EnvVersion::Develop] {
            assert_eq!(EnvVersion::parse(version.as_str()), Some(version));
        }
        assert_eq!(EnvVersion::parse("Release"), None);
        assert_eq!(EnvVersion::default(), EnvVersion::Release);
    }

    #[test]
    fn the_body_names_the_width_only_when_asked() {
        let mut request = WxaCodeRequest {
            scene: "s".into(),
            page: "pages/index/index".into(),
            env_version: EnvVersion::Trial,
            check_path: false,
            width: None,
        };
        let body = request.body();
        assert_eq!(body["env_version"], "trial");
        assert_eq!(body["check_path"], false);
        assert!(body.get("width").is_none());
        request.width = Some(280);
        assert_eq!(request.body()["width"], 280);
    }
}
