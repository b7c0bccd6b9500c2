//! The default SQLite store across a restart: tokens stay valid, and the files hold only
//! hashes of them.

use workspace_tests::{TestServer, config, holds, temp_dir};

#[tokio::test]
async fn tokens_survive_a_restart_and_never_touch_the_disk_in_the_clear() {
    let dir = temp_dir("durable-store");
    let url = format!("sqlite://{}", dir.join("sessions.db").display());

    let first = TestServer::start_with(config(&["--session-store", &url]), None).await;
    let kept = first.login().await.token;
    let dropped = first.login().await.token;
    let response = first.logout(&dropped).await;
    assert_eq!(response.status(), 204);
    first.stop().await;

    let second = TestServer::start_with(config(&["--session-store", &url]), None).await;
    assert!(
        second.check_bearer(&kept).await,
        "a token from before the restart still works"
    );
    assert!(
        !second.check_bearer(&dropped).await,
        "a logout before the restart still holds"
    );

    // Every file SQLite wrote (database, WAL, shared memory) is free of the raw tokens.
    let mut files = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let bytes = std::fs::read(entry.unwrap().path()).unwrap();
        files += 1;
        for token in [&kept, &dropped] {
            assert!(
                !holds(&bytes, token.as_bytes()),
                "raw token found in the store"
            );
        }
    }
    assert!(files >= 1);
    second.stop().await;
}
