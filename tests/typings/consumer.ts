// What a TypeScript mini-program writes against wx-login-client: every declaration it imports
// is checked under tests/typings/tsconfig.json. Type-checked only, never run.
import { CodedError, LoginView, Session, SessionInfo, WebLoginBrowser, WebLoginScan, createSession } from '../../packages/wx-login-client/miniprogram_dist';
import { Client, InitOutput, WASM_PATH, init } from '../../packages/wx-login-client/miniprogram_dist/wasm/client';

const session: Session = createSession({
  baseUrl: 'https://login.example.com',
  machine: { max_attempts: 3, device: 'kiosk 7 / Android 14' },
  onChange(view: LoginView, token: string) {
    wx.setStorageSync('login_state', token === '' ? view.state : 'logged-in');
  },
});

export async function profile(): Promise<unknown> {
  try {
    const response = await session.request<{ nickname: string }>({ url: '/me' });
    return response.data.nickname;
  } catch (e) {
    return (e as CodedError).code;
  }
}

export async function endOtherSessions(): Promise<string[]> {
  const sessions: SessionInfo[] = await session.sessions();
  const others = sessions.filter((s) => !s.current);
  await Promise.all(others.map((s) => session.endSession(s.id)));
  return others.map((s) => `${s.device ?? s.kind} since ${new Date(s.created_at * 1000).toISOString()}`);
}

export async function leave(deleteIt: boolean): Promise<number | undefined> {
  try {
    await (deleteIt ? session.deleteAccount() : session.logout({ everywhere: true }));
    return undefined;
  } catch (e) {
    return (e as CodedError).status;
  }
}

export async function webLogin(scene: string, yes: boolean): Promise<string> {
  const id = decodeURIComponent(scene);
  try {
    const { browser }: WebLoginScan = await session.scan(id);
    const who: WebLoginBrowser = browser;
    await (yes ? session.confirm(id) : session.deny(id));
    return `${who.device} at ${who.ip}, ${new Date(who.created_at * 1000).toISOString()}`;
  } catch (e) {
    return (e as CodedError).code;
  }
}

export async function machineState(): Promise<string> {
  const wasm: InitOutput = await init(WASM_PATH);
  const client = new Client(JSON.stringify({ storage_key: 'token' }));
  try {
    client.handle(JSON.stringify({ type: 'launched', now_ms: Date.now() }));
    return `${client.state()} (${wasm.memory.buffer.byteLength} bytes)`;
  } finally {
    client.free();
  }
}
