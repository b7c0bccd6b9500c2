// What a TypeScript mini-program writes against wx-login-client: every declaration it imports
// is checked under tests/typings/tsconfig.json. Type-checked only, never run.
import { CodedError, LoginView, Session, createSession } from '../../packages/wx-login-client/miniprogram_dist';
import { Client, InitOutput, WASM_PATH, init } from '../../packages/wx-login-client/miniprogram_dist/wasm/client';

const session: Session = createSession({
  baseUrl: 'https://login.example.com',
  machine: { max_attempts: 3 },
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
