// Settings of this mini-program: where the login server is and how patiently to log in.
// For a phone on the LAN, put the computer's address here (and keep urlCheck off in
// project.config.json, or register the domain in the WeChat console for a release).
module.exports = {
  baseUrl: 'http://127.0.0.1:3000',
  // wx.request's own default is 60 s; a login should give up on a dead network sooner.
  requestTimeoutMs: 10000,
  // client-wasm's machine config (see its Config): attempts and backoff of the login (and of
  // resending a logout the server has not confirmed), the storage key the bare token lives
  // under ('token', as the original app used, so other code reading wx.getStorageSync('token')
  // keeps working), the key of its expiry (a number, ms) and the key of the logged-out tokens
  // still to revoke on the server (an array of strings). `appid` is sent with every login when
  // the server serves several mini-programs (its CONFIG_FILE): put this app's AppID there
  // (wx.getAccountInfoSync().miniProgram.appId); empty logs into the server's default app.
  machine: {
    max_attempts: 5,
    base_backoff_ms: 500,
    max_backoff_ms: 30000,
    storage_key: 'token',
    expiry_storage_key: 'token_expires_at_ms',
    logout_storage_key: 'logout_pending',
    appid: '',
  },
};
