//! With JSON logs, a panic is one more JSON line, not the default hook's plain text. A test
//! binary of its own: it installs the process's logger and panic hook.

use server::{
    captured_log::CapturedLog,
    cli::{LogFormat, init_logging_to},
};

#[test]
fn a_panic_is_logged_as_a_json_line() {
    let log = CapturedLog::default();
    let writer = log.clone();
    init_logging_to(LogFormat::Json, move || writer.clone(), false);

    let caught = std::panic::catch_unwind(|| panic!("a handler went wrong"));
    assert!(caught.is_err());

    let text = log.text();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 1, "{text}");
    let entry: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(entry["level"], "ERROR", "{text}");
    let panic = entry["fields"]["panic"].as_str().unwrap();
    assert!(panic.contains("a handler went wrong"), "{text}");
}
