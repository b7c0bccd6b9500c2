// Declarations of wx-login-client (what `require('wx-login-client')` returns), for editors and
// for `tsc --checkJs` with miniprogram-api-typings. Only names the mini-program runtime has.

/** client-wasm's machine settings (its `Config`); every field has a default. */
export interface MachineConfig {
  /** Login attempts before the session gives up (`failed`). */
  max_attempts?: number;
  /** First retry delay; doubled per attempt up to `max_backoff_ms`. */
  base_backoff_ms?: number;
  max_backoff_ms?: number;
  /** Storage key of the bare token. */
  storage_key?: string;
  /** Storage key of the token's expiry (ms since the epoch). */
  expiry_storage_key?: string;
  /** Storage key of logged-out tokens the server has not confirmed revoking yet. */
  logout_storage_key?: string;
  /** The AppID sent with each login when the server serves several mini-programs. */
  appid?: string;
  /**
   * What the account's session list calls this phone, sent with each login (cut to 128
   * characters). By default "<model> / <system>" from wx.getDeviceInfo (or
   * wx.getSystemInfoSync on base libraries before 2.20.1); '' sends none.
   */
  device?: string;
}

/** An error of the session: `code` says which kind (`network`, `unauthorized`, `wasm_unavailable`, ...). */
export interface CodedError extends Error {
  code: string;
  /** The HTTP status, when the server answered with an unexpected one (the code is then the server's). */
  status?: number;
}

/** One live session of the account, as `GET /me/sessions` lists it. */
export interface SessionInfo {
  /** Its public id, for `endSession`; no token can be derived from it. */
  id: string;
  /** How it was made: `miniprogram` for a mini-program login. */
  kind: string;
  /** The mini-program, for a mini-program session. */
  appid?: string;
  /** Unix seconds. */
  created_at: number;
  /** Unix seconds. */
  expires_at: number;
  /** The client's address at login, as the server saw it. */
  ip?: string;
  /** What it logged in on (`device` of its login, or its User-Agent). */
  device?: string;
  /** Whether it is this phone's own session. */
  current: boolean;
}

/** The browser asking to log in with a website's login code, as `scan` describes it. */
export interface WebLoginBrowser {
  /** Its address, as the server saw it. */
  ip: string;
  /** What it is, from its User-Agent (e.g. "Chrome on Windows"). */
  device: string;
  /** When it asked to log in, in Unix seconds. */
  created_at: number;
}

/** The server's answer to a scan of a website's login code. */
export interface WebLoginScan {
  browser: WebLoginBrowser;
}

export interface LogoutOptions {
  /**
   * End every session of the account on the server (other phones, other mini-programs of the
   * team, this one), and log out here only once the server confirmed it.
   */
  everywhere?: boolean;
}

/** Where the login stands, as pages show it. */
export interface LoginView {
  /** `unknown`, `reading-storage`, `checking`, `getting-code`, `exchanging-code`, `logged-in`, `retry-waiting`, `failed` or `logged-out`. */
  state: string;
  /** Whether the server confirmed the token at this launch. */
  verified: boolean;
  attempt: number;
  /** When the token expires (ms since the epoch), or null. */
  expiresAt: number | null;
  error: { code: string; message: string } | null;
}

export interface SessionOptions {
  /** The login server, e.g. 'https://login.example.com'; `request()` paths are relative to it. */
  baseUrl: string;
  machine?: MachineConfig;
  /** wx.request's timeout for the session's own requests, in ms. */
  requestTimeoutMs?: number;
  /** Called after every change of the view or of the token ('' when none). */
  onChange?: (view: LoginView, token: string) => void;
  /**
   * The module's path in the code package for `WXWebAssembly.instantiate`, when miniprogram_npm/
   * is not at the package root: '/<dir>/miniprogram_npm/wx-login-client/wasm/client_bg.wasm.br'.
   */
  wasmPath?: string;
}

/** wx.request's options for `Session.request`, with `url` a path on `baseUrl` or an absolute URL. */
export interface RequestOptions {
  url: string;
  method?: 'GET' | 'POST' | 'PUT' | 'DELETE' | 'PATCH' | 'HEAD' | 'OPTIONS';
  data?: string | Record<string, unknown> | ArrayBuffer;
  header?: Record<string, string>;
  timeout?: number;
  dataType?: string;
  responseType?: 'text' | 'arraybuffer';
}

/** The answer, for every status but a 401 that a fresh token got too. */
export interface Response<T = any> {
  statusCode: number;
  data: T;
  header: Record<string, string>;
}

export interface Session {
  /** Resolves with a usable token, logging in if needed; rejects with a CodedError. */
  ensureLogin(): Promise<string>;
  /** Like ensureLogin, after making sure the server holds the session_key WeChat encrypts with now. */
  ensureFreshSession(): Promise<string>;
  /** wx.request with the token; a 401 logs in again and retries once. */
  request<T = any>(options: RequestOptions): Promise<Response<T>>;
  /** A fresh login. */
  login(): Promise<string>;
  /**
   * Logs out here at once and on the server as soon as it can be reached. With
   * `{everywhere: true}`: ends every session of the account on the server (DELETE
   * /me/sessions), then logs out here; it waits for the server, and on a failure rejects with
   * a CodedError and changes nothing here.
   */
  logout(options?: LogoutOptions): Promise<void>;
  /**
   * Deletes the account: logs in afresh (a new wx.login), sends DELETE /me with the new token,
   * and after the server's 204 logs out here. Rejects with a CodedError (`reauth_required`,
   * `network`, the login's code, ...) and changes nothing else when it fails.
   */
  deleteAccount(): Promise<void>;
  /** The account's live sessions (GET /me/sessions), newest first. */
  sessions(): Promise<SessionInfo[]>;
  /** Ends another session of the account (DELETE /me/sessions/{id}); `not_found` for an unknown id. */
  endSession(id: string): Promise<void>;
  /**
   * Claims a website's login code for this account (POST /web-login/{id}/scan; `id` is the
   * code's `scene`, decoded): resolves with the browser asking to log in, for the user to
   * check. Without a token it logs in first. Rejects with a CodedError: `invalid_request`
   * (not 1 to 32 characters of A-Z a-z 0-9 _ -; nothing is sent), `ticket_not_found`,
   * `ticket_expired` (410), `ticket_taken` (409: another account scanned it first),
   * `ticket_closed` (409), `network`, ...
   */
  scan(ticketId: string): Promise<WebLoginScan>;
  /** Logs the scanned browser in to this account (POST /web-login/{id}/confirm); rejects like scan. */
  confirm(ticketId: string): Promise<void>;
  /** Turns the scanned browser away (POST /web-login/{id}/deny); rejects like scan. */
  deny(ticketId: string): Promise<void>;
  /** Tells the session that a business API answered 401 for `token`. */
  unauthorized(token: string): Promise<void>;
  view(): LoginView;
  token(): string;
}

export function createSession(options: SessionOptions): Session;
