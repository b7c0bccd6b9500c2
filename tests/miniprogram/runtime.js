// A strict stand-in for the WeChat mini-program runtime, for tests. It runs the real
// miniprogram/app.js and its pages in a fresh `vm` context that has the mini-program's globals
// and nothing else: no WebAssembly, fetch, TextEncoder/TextDecoder, process, Buffer, eval or ES
// modules, so code that would break on a phone breaks here first. The wx APIs follow WeChat's
// documented semantics (see /work/shared/notes/miniprogram-runtime.md) and are carried out by
// Node on the host side: wx.request over node:http, wx.login through the server's dev
// simulator, wx.checkSession from the device's login state, wx.scanCode from what the test
// holds up to the camera, wx.navigateTo over the app's own pages, WXWebAssembly through Node's
// WebAssembly reading files of the package.
'use strict';

const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');
const vm = require('node:vm');
const zlib = require('node:zlib');
const { namesOf } = require('./forbidden.js');

const PACKAGE_ROOT = path.resolve(__dirname, '../../miniprogram');

/**
 * Storage is per user and per mini-program and outlives launches, so it lives on a device; so
 * does the WeChat login state (the session_key of the device's last wx.login), which
 * wx.checkSession reports on.
 */
class Device {
  /**
   * options.user  the WeChat user of this phone, as the simulator names users (its default
   *               user when unset): wx.login asks the simulator for that user's code.
   * options.info  the phone as wx.getDeviceInfo and wx.getSystemInfoSync describe it
   *               ({model, system, platform, brand}); null for a runtime that has neither.
   */
  constructor({ user, info = DEFAULT_DEVICE_INFO } = {}) {
    // key → JSON text: values are cloned in and out, never shared by reference.
    this.storage = new Map();
    this.user = user;
    // What wx.getDeviceInfo / wx.getSystemInfoSync say about the phone; null: a runtime
    // without either API.
    this.info = info;
    // Whether the session_key of the last wx.login is still valid at WeChat. None before the
    // first wx.login, as for a user who never logged in to this mini-program.
    this.sessionValid = false;
  }

  /**
   * WeChat let the session_key lapse (the user stayed away, or a later code elsewhere replaced
   * it): wx.checkSession fails from now until the next successful wx.login. WeChat decides
   * this on its own; the tests decide it here.
   */
  expireSession() {
    this.sessionValid = false;
  }

  /** The stored value as the host sees it ('' when absent, as getStorageSync). */
  get(key) {
    return this.storage.has(key) ? JSON.parse(this.storage.get(key)) : '';
  }

  /** Stores `value` as setStorageSync would (for a device some earlier app version used). */
  set(key, value) {
    this.storage.set(key, JSON.stringify(value));
  }
}

// A phone as wx.getDeviceInfo describes one (the fields the tests use).
const DEFAULT_DEVICE_INFO = { brand: 'iPhone', model: 'iPhone 15 Pro<iPhone16,1>', system: 'iOS 17.4.1', platform: 'ios' };

// A request by package name (`name`, `@scope/name`, optionally followed by `/sub/path`).
const NPM_REQUEST = /^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*(\/[\w.-]+)*$/i;

// What wx.scanCode's `scanType` option names, for each kind of code its answer's `scanType`
// names (anything else is a bar code).
const SCAN_FAMILIES = { QR_CODE: 'qrCode', WX_CODE: 'wxCode', DATA_MATRIX: 'datamatrix', PDF_417: 'pdf417' };
const SCAN_TYPES = ['barCode', 'qrCode', 'wxCode', 'datamatrix', 'pdf417'];

// The page stack's limit: wx.navigateTo fails when ten pages are open.
const MAX_PAGES = 10;

// Events of buttons with an open-type, and the open-type that makes a button send them.
const OPEN_TYPE_EVENTS = { getphonenumber: 'getPhoneNumber' };

// Built-ins a fresh V8 context may have but the mini-program runtime does not (the absent
// names of forbidden_globals.txt, WebAssembly among them), or does not have everywhere (the
// rest are missing on older iOS; the glue must cope without).
const REMOVED_BUILTINS = [...namesOf('absent'), 'SharedArrayBuffer', 'Atomics', 'FinalizationRegistry', 'WeakRef'];

/** One mini-program process: `launch()` it, inspect it, `close()` it. */
class Runtime {
  /**
   * options.device     storage to use (new Device() by default; pass one to relaunch)
   * options.simBase    server whose /sim/wx.login issues codes (the WeChat side)
   * options.modules    package files to replace, by absolute package path ('/config.js': {...})
   * options.root       the package folder (miniprogram/ by default)
   * options.libVersion the base library to simulate (project.config.json's by default)
   * options.holdAnswers (call) => boolean: answers to matching wx.request calls are held
   *                    back (the request did reach the server) until releaseHeld()
   * options.failRequests (call) => boolean: matching wx.request calls get no answer, as with
   *                    the network down: `fail` is called and nothing reaches the server.
   *                    Kept as `failRequests`; set it to undefined to bring the network back.
   * options.confirmModals whether the user taps the confirm button of every wx.showModal
   *                    (true by default); kept as `confirmModals`
   * options.entry      where WeChat opens the app: { path, query, scene }, a page of app.json
   *                    (its first by default), that page's query (string values; {} by
   *                    default) and the launch scene (1001 by default; 1047 is a scanned
   *                    mini-program code, whose `scene` parameter is then in the query,
   *                    URL-encoded)
   * options.scanner    (call) => code: what the user holds up to the camera for a
   *                    wx.scanCode `call` ({onlyFromCamera, scanType}): { result, scanType,
   *                    path?, charSet? } as WeChat describes the code (`scanType` 'QR_CODE',
   *                    'WX_CODE', ...; `path` only for a code of this mini-program), or null
   *                    when the user closes the scanner. Kept as `scanner`.
   */
  constructor(options = {}) {
    this.device = options.device || new Device();
    this.simBase = options.simBase;
    this.root = options.root || PACKAGE_ROOT;
    this.overrides = options.modules || {};
    const project = JSON.parse(fs.readFileSync(path.join(this.root, 'project.config.json'), 'utf8'));
    this.libVersion = options.libVersion || project.libVersion;
    this.verbose = Boolean(process.env.MP_LOG);

    this.calls = []; // every wx / WXWebAssembly call, for assertions
    this.holdAnswers = options.holdAnswers; // see releaseHeld()
    this.failRequests = options.failRequests;
    this.confirmModals = options.confirmModals !== false;
    this.entry = options.entry || {};
    this.scanner = options.scanner;
    this.held = []; // answers held back: { call, deliver }
    this.logs = []; // console output of the sandbox
    this.errors = []; // exceptions thrown by sandbox callbacks (WeChat reports them to onError)
    this.rejections = []; // unhandled promise rejections while this runtime was open
    this.pages = []; // the page stack, as getCurrentPages() returns it
    this.app = undefined;
    this.open = false;
    this.timers = new Map();
    this.nextTimer = 1;
    this.modules = new Map();
    this.pageDefinitions = new Map();
    this.onRejection = (reason) => this.rejections.push(reason);
  }

  // ---- lifecycle -------------------------------------------------------------------------

  /** Runs app.js, every page module, App.onLaunch/onShow, then opens the entry page. */
  launch() {
    const appJson = JSON.parse(fs.readFileSync(path.join(this.root, 'app.json'), 'utf8'));
    const { path: entry = appJson.pages[0], query = {}, scene = 1001 } = this.entry;
    if (!appJson.pages.includes(entry)) throw new Error(`entry ${entry} is not a page of app.json`);
    for (const [name, value] of Object.entries(query)) {
      if (typeof value !== 'string') throw new Error(`entry query ${name}: WeChat gives strings, not ${JSON.stringify(value)}`);
    }
    this.appJson = appJson;
    this.open = true;
    process.on('unhandledRejection', this.onRejection);
    this.context = this.createContext();
    this.requireFrom(this.root, './app.js');
    if (this.app === undefined) throw new Error('app.js did not call App()');
    // Like the real runtime, page modules run at start-up, before onLaunch.
    for (const route of appJson.pages) {
      for (const ext of ['wxml', 'json']) {
        if (!fs.existsSync(path.join(this.root, `${route}.${ext}`))) throw new Error(`page ${route} has no .${ext}`);
      }
      this.currentRoute = route;
      this.requireFrom(this.root, `/${route}.js`);
      if (!this.pageDefinitions.has(route)) throw new Error(`${route}.js did not call Page() or Component()`);
    }
    this.currentRoute = undefined;
    const options = this.toSandbox({ path: entry, query, scene });
    this.callHook(this.app, 'onLaunch', options);
    this.callHook(this.app, 'onShow', options);
    this.openPage(entry, query);
    return this;
  }

  /** Stops timers and drops late callbacks, so a closed runtime can do nothing more. */
  close() {
    this.open = false;
    for (const timer of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
    process.off('unhandledRejection', this.onRejection);
  }

  /** Throws when the app threw from a callback or left a promise rejection unhandled. */
  assertHealthy() {
    if (this.rejections.length > 0) throw new Error(`unhandled rejection in the mini-program: ${describe(this.rejections[0])}`);
    if (this.errors.length > 0) throw new Error(`uncaught error in the mini-program: ${describe(this.errors[0])}`);
  }

  /** Runs `code` inside the sandbox (for checks like `typeof WebAssembly`). */
  evaluate(code) {
    return vm.runInContext(code, this.context);
  }

  /** The top page. */
  get page() {
    return this.pages[this.pages.length - 1];
  }

  /**
   * Hands the held answers (of calls matching `filter`, all by default) to the app now, in the
   * order they came; returns how many. Later answers are held no more when `stop` is set.
   */
  releaseHeld(filter = () => true, { stop = false } = {}) {
    if (stop) this.holdAnswers = undefined;
    const now = this.held.filter((h) => filter(h.call));
    this.held = this.held.filter((h) => !filter(h.call));
    for (const h of now) h.deliver();
    return now.length;
  }

  /** wx calls of one kind: count('login'), count('request', 'POST', '/login'). */
  count(api, method, pathname) {
    return this.calls.filter(
      (c) => c.api === api && (method === undefined || c.method === method) && (pathname === undefined || c.path === pathname),
    ).length;
  }

  // ---- the sandbox -----------------------------------------------------------------------

  createContext() {
    // No string evaluation (eval, new Function) in the logic layer, as on a phone.
    const context = vm.createContext({}, { name: 'mini-program', codeGeneration: { strings: false, wasm: false } });
    const global = vm.runInContext('globalThis', context);
    for (const name of REMOVED_BUILTINS) delete global[name];
    delete global.console;
    this.sandbox = vm.runInContext('({ JSON, Promise, Error, TypeError, Object })', context);
    const runtime = this;
    Object.assign(global, {
      App(definition) {
        if (runtime.app !== undefined) throw new runtime.sandbox.Error('App() called twice');
        runtime.app = definition;
      },
      getApp() {
        return runtime.app;
      },
      Page(definition) {
        if (runtime.currentRoute === undefined) throw new runtime.sandbox.Error('Page() called outside a page module');
        runtime.pageDefinitions.set(runtime.currentRoute, { kind: 'page', definition });
      },
      // A page may be a component (base library ≥ 2.4.2): its handlers and page hooks
      // (onLoad, onShow, ...) are in `methods`, its own hooks in `lifetimes` (or at the top).
      Component(definition) {
        if (runtime.currentRoute === undefined) throw new runtime.sandbox.Error('Component() outside a page module: custom components are not supported here');
        runtime.pageDefinitions.set(runtime.currentRoute, { kind: 'component', definition });
      },
      getCurrentPages() {
        return runtime.sandbox.JSON.parse('[]').concat(runtime.pages);
      },
      wx: this.createWx(),
      WXWebAssembly: this.createWXWebAssembly(),
      setTimeout: (fn, ms, ...args) => this.startTimer(fn, ms, args, false),
      setInterval: (fn, ms, ...args) => this.startTimer(fn, ms, args, true),
      clearTimeout: (id) => this.stopTimer(id),
      clearInterval: (id) => this.stopTimer(id),
      console: this.createConsole(),
    });
    return context;
  }

  /**
   * CommonJS `require` as the mini-program has it: files of the package only, by relative path,
   * path from the package root, or npm package name (from miniprogram_npm/, see `resolveNpm`).
   */
  requireFrom(directory, request) {
    const fail = (why) => {
      throw new this.sandbox.Error(`module '${request}' is not defined: ${why}`);
    };
    if (typeof request !== 'string') fail('not a string');
    let file;
    if (/^(\.{1,2})?\//.test(request)) {
      file = request.startsWith('/') ? path.join(this.root, request) : path.resolve(directory, request);
      if (!file.endsWith('.js')) file += '.js';
    } else if (NPM_REQUEST.test(request)) {
      file = this.resolveNpm(directory, request);
      if (file === undefined) fail('no such package in miniprogram_npm/ (build npm first; node_modules/ is not part of the package)');
    } else {
      fail('only relative paths, paths from the package root or npm package names (no Node modules)');
    }
    const relative = path.relative(this.root, file);
    if (relative.startsWith('..') || path.isAbsolute(relative)) fail('outside the package');
    const key = `/${relative.split(path.sep).join('/')}`;
    if (this.modules.has(key)) return this.modules.get(key).exports;

    const module = this.toSandbox({ exports: {} });
    this.modules.set(key, module);
    if (Object.prototype.hasOwnProperty.call(this.overrides, key)) {
      module.exports = this.toSandbox(this.overrides[key]);
      return module.exports;
    }
    if (!fs.existsSync(file)) {
      this.modules.delete(key);
      fail('no such file in the package');
    }
    const source = fs.readFileSync(file, 'utf8');
    const wrapper = vm.runInContext(`(function (require, module, exports) {${source}\n})`, this.context, { filename: file });
    const require = (next) => this.requireFrom(path.dirname(file), next);
    try {
      wrapper.call(module.exports, require, module, module.exports);
    } catch (error) {
      this.modules.delete(key);
      throw error;
    }
    return module.exports;
  }

  /**
   * Where WeChat finds `require('<name>[/<sub>]')`: in `miniprogram_npm/<name>/` of the
   * requiring file's folder or of the nearest folder above it within the package, as
   * `<sub>.js` or `<sub>/index.js` (`index.js` for the bare name). Never node_modules/: only what
   * "Build npm" (or miniprogram-ci) wrote there ships in the code package.
   */
  resolveNpm(directory, request) {
    const parts = request.split('/');
    const nameLength = request.startsWith('@') ? 2 : 1;
    const name = parts.slice(0, nameLength).join('/');
    const sub = parts.slice(nameLength).join('/') || 'index';
    for (let dir = directory; ; dir = path.dirname(dir)) {
      const relative = path.relative(this.root, dir);
      if (relative.startsWith('..') || path.isAbsolute(relative)) return undefined;
      const base = path.join(dir, 'miniprogram_npm', name, sub);
      for (const candidate of [base.endsWith('.js') ? base : `${base}.js`, path.join(base, 'index.js')]) {
        if (fs.existsSync(candidate) && fs.statSync(candidate).isFile()) return candidate;
      }
      if (relative === '') return undefined;
    }
  }

  openPage(route, query) {
    const { kind, definition } = this.pageDefinitions.get(route);
    const page = Object.assign(this.toSandbox({}), kind === 'component' ? definition.methods : definition);
    const lifetime = (name) => {
      const hook = kind === 'component' && ((definition.lifetimes && definition.lifetimes[name]) || definition[name]);
      if (typeof hook === 'function') hook.call(page);
    };
    page.route = route;
    page.data = this.toSandbox(definition.data || {});
    page.setData = (changes, callback) => {
      for (const [key, value] of Object.entries(changes)) {
        if (value === undefined) continue; // dropped by the transfer to the render layer
        page.data[key] = this.toSandbox(value); // crosses to the render layer as JSON
      }
      if (typeof callback === 'function') this.defer(callback);
    };
    this.pages.push(page);
    lifetime('created');
    lifetime('attached');
    this.callHook(page, 'onLoad', this.toSandbox(query));
    this.callHook(page, 'onShow');
    lifetime('ready');
    this.callHook(page, 'onReady');
    return page;
  }

  /** The page's text as its template shows it now (see `render`). */
  pageText(page = this.page) {
    const template = fs.readFileSync(path.join(this.root, `${page.route}.wxml`), 'utf8');
    return render(template, page.data);
  }

  /** Calls the handler a `bindtap` on the page's template names, like a tap would. */
  tap(handler, page = this.page) {
    this.fire('tap', handler, {}, page);
  }

  /**
   * A tap on one of several elements bound to `handler` (a list's rows), told apart by their
   * `data-*` attributes: the handler gets them as `currentTarget.dataset`, as WeChat gives
   * them. Every key of `dataset` must be a `data-` attribute of the bound element.
   */
  tapItem(handler, dataset, page = this.page) {
    this.fire('tap', handler, {}, page, dataset);
  }

  /**
   * Calls the handler that `bind<event>="<handler>"` names on an element of the page's
   * template, with `{type, detail}` (and `currentTarget`/`target` with `dataset`, when given),
   * as the component would. Events of an open-type button (getphonenumber) come only from a
   * button of that open-type.
   */
  fire(event, handler, detail = {}, page = this.page, dataset = undefined) {
    const template = fs.readFileSync(path.join(this.root, `${page.route}.wxml`), 'utf8');
    const has = (tag, attribute) => new RegExp(`\\s${attribute}(\\s|/?>)`).test(tag);
    const element = (template.match(/<[\w-]+[^>]*>/g) || []).find((tag) => has(tag, `bind${event}="${handler}"`));
    if (!element) throw new Error(`no element of ${page.route} binds ${event} to ${handler}`);
    const openType = OPEN_TYPE_EVENTS[event];
    if (openType && !(element.startsWith('<button') && has(element, `open-type="${openType}"`))) {
      throw new Error(`${event} comes only from a <button open-type="${openType}">, not ${element}`);
    }
    const payload = { type: event, detail };
    if (dataset !== undefined) {
      for (const key of Object.keys(dataset)) {
        if (!new RegExp(`\\sdata-${key}="`).test(element)) throw new Error(`${element} has no data-${key}`);
      }
      payload.currentTarget = { dataset };
      payload.target = { dataset };
    }
    this.guard(() => page[handler](this.toSandbox(payload)));
  }

  callHook(target, name, argument) {
    if (typeof target[name] === 'function') target[name](argument);
  }

  /** Values handed to sandbox code are sandbox objects, cloned as JSON (as WeChat does). */
  toSandbox(value) {
    return value === undefined ? undefined : this.sandbox.JSON.parse(JSON.stringify(value));
  }

  // ---- host services ----------------------------------------------------------------------

  /** Runs sandbox code from the host's event loop; a throw is the app's uncaught error. */
  guard(fn) {
    try {
      fn();
    } catch (error) {
      this.errors.push(error);
      if (this.verbose) console.error('[mini-program] uncaught', error);
    }
  }

  /** Calls a wx callback later, as the real runtime does, unless the runtime was closed. */
  defer(fn, argument) {
    setImmediate(() => {
      if (this.open && typeof fn === 'function') this.guard(() => fn(argument));
    });
  }

  startTimer(fn, ms, args, repeat) {
    if (typeof fn !== 'function') throw new this.sandbox.TypeError('timers take a function (no strings)');
    const id = this.nextTimer++;
    const run = () => {
      if (!repeat) this.timers.delete(id);
      if (this.open) this.guard(() => fn(...args));
    };
    this.timers.set(id, repeat ? setInterval(run, ms) : setTimeout(run, ms));
    return id; // a number, as in the mini-program, not Node's Timeout object
  }

  stopTimer(id) {
    const timer = this.timers.get(id);
    if (timer !== undefined) {
      clearTimeout(timer);
      clearInterval(timer);
      this.timers.delete(id);
    }
  }

  createConsole() {
    const console_ = {};
    for (const level of ['log', 'info', 'warn', 'error', 'debug']) {
      console_[level] = (...args) => {
        this.logs.push({ level, text: args.map(describe).join(' ') });
        if (this.verbose) console.error(`[mini-program ${level}]`, ...args);
      };
    }
    return console_;
  }

  createWx() {
    const runtime = this;
    const storage = this.device.storage;
    const checkKey = (key) => {
      if (typeof key !== 'string' || key === '') throw new runtime.sandbox.TypeError('storage key must be a non-empty string');
    };
    const wx = {
      getStorageSync(key) {
        checkKey(key);
        runtime.calls.push({ api: 'getStorageSync', key });
        return storage.has(key) ? runtime.sandbox.JSON.parse(storage.get(key)) : '';
      },
      setStorageSync(key, value) {
        checkKey(key);
        if (value === undefined || typeof value === 'function') throw new runtime.sandbox.TypeError('storage value must be JSON data');
        const text = JSON.stringify(value);
        if (text.length > 1024 * 1024) throw new runtime.sandbox.Error('setStorageSync:fail exceed 1MB');
        runtime.calls.push({ api: 'setStorageSync', key });
        storage.set(key, text);
      },
      removeStorageSync(key) {
        checkKey(key);
        runtime.calls.push({ api: 'removeStorageSync', key });
        storage.delete(key);
      },
      login(options = {}) {
        runtime.calls.push({ api: 'login' });
        runtime.wxLogin(options);
      },
      checkSession(options = {}) {
        runtime.calls.push({ api: 'checkSession' });
        runtime.wxCheckSession(options);
      },
      request(options = {}) {
        return runtime.wxRequest(options);
      },
      scanCode(options = {}) {
        runtime.calls.push({ api: 'scanCode', onlyFromCamera: options.onlyFromCamera, scanType: options.scanType });
        runtime.wxScanCode(options);
      },
      navigateTo(options = {}) {
        runtime.calls.push({ api: 'navigateTo', url: options.url });
        runtime.wxNavigateTo(options);
      },
      showModal(options = {}) {
        runtime.calls.push({ api: 'showModal', title: options.title, content: options.content });
        const confirm = runtime.confirmModals;
        runtime.settle(options, true, { confirm, cancel: !confirm, errMsg: 'showModal:ok' });
      },
    };
    // The phone's description: getSystemInfoSync everywhere (deprecated from 2.20.1 on), and
    // getDeviceInfo from the base library that added it.
    if (this.device.info) {
      wx.getSystemInfoSync = () => {
        runtime.calls.push({ api: 'getSystemInfoSync' });
        return runtime.toSandbox({ ...runtime.device.info, SDKVersion: runtime.libVersion });
      };
      if (compareVersions(this.libVersion, '2.20.1') >= 0) {
        wx.getDeviceInfo = () => {
          runtime.calls.push({ api: 'getDeviceInfo' });
          return runtime.toSandbox(runtime.device.info);
        };
      }
    }
    return wx;
  }

  /** Calls `success` or `fail`, then `complete`, later, with `result`, as every wx API does. */
  settle(options, ok, result) {
    this.defer(ok ? options.success : options.fail, this.toSandbox(result));
    this.defer(options.complete, this.toSandbox(result));
  }

  /**
   * wx.login: a code for the device's user from the server's dev simulator, which gives that
   * user a new session_key with it; the device's login state is valid again from then on.
   */
  wxLogin(options) {
    if (!this.simBase) throw new Error('the runtime has no simBase for wx.login');
    const body = JSON.stringify(this.device.user === undefined ? {} : { user: this.device.user });
    hostRequest(`${this.simBase}/sim/wx.login`, { method: 'POST', body, headers: { 'content-type': 'application/json' } })
      .then((res) => {
        const code = res.statusCode === 200 ? JSON.parse(res.body).code : undefined;
        if (code) {
          this.device.sessionValid = true;
          this.settle(options, true, { code, errMsg: 'login:ok' });
        } else {
          this.settle(options, false, { errMsg: `login:fail simulator answered ${res.statusCode}` });
        }
      })
      .catch((error) => this.settle(options, false, { errMsg: `login:fail ${error.message}` }));
  }

  /**
   * wx.checkSession: whether the session_key of the device's last wx.login is still valid;
   * `success` when it is, `fail` with a `checkSession:fail …` errMsg when it lapsed (see
   * Device.expireSession) or there never was one.
   */
  wxCheckSession(options) {
    if (this.device.sessionValid) this.settle(options, true, { errMsg: 'checkSession:ok' });
    else this.settle(options, false, { errMsg: 'checkSession:fail session time out, need relogin' });
  }

  /**
   * wx.scanCode: the scanner opens, and the test's `scanner` says what the user holds up to
   * it. `success` with {result, scanType, charSet, rawData (base64 of the result), errMsg} and
   * `path` for a code of this mini-program; `fail` with `scanCode:fail cancel` when the user
   * closes the scanner, which is also how a code of a kind the call's `scanType` leaves out
   * ends (the scanner never recognises it). Options of the wrong type fail as WeChat's
   * parameter check does.
   */
  wxScanCode(options) {
    const { onlyFromCamera, scanType } = options;
    const wrong = (name, expected, value) => this.settle(options, false, { errMsg: `scanCode:fail parameter error: parameter.${name} should be ${expected} instead of ${typeName(value)};` });
    if (onlyFromCamera !== undefined && typeof onlyFromCamera !== 'boolean') return wrong('onlyFromCamera', 'Boolean', onlyFromCamera);
    if (scanType !== undefined && !Array.isArray(scanType)) return wrong('scanType', 'Array', scanType);
    const unknown = (scanType || []).find((t) => !SCAN_TYPES.includes(t));
    if (unknown !== undefined) return this.settle(options, false, { errMsg: `scanCode:fail parameter error: parameter.scanType has no type ${JSON.stringify(unknown)}` });
    const code = this.scanner ? this.scanner({ onlyFromCamera: onlyFromCamera === true, scanType }) : null;
    const family = code && (SCAN_FAMILIES[code.scanType] || 'barCode');
    if (!code || (scanType !== undefined && !scanType.includes(family))) return this.settle(options, false, { errMsg: 'scanCode:fail cancel' });
    const result = { errMsg: 'scanCode:ok', result: code.result || '', scanType: code.scanType, charSet: code.charSet || 'UTF-8', rawData: Buffer.from(code.result || '', 'utf8').toString('base64') };
    if (code.path !== undefined) result.path = code.path;
    this.settle(options, true, result);
  }

  /**
   * wx.navigateTo: `url` is a page of app.json, absolute ('/pages/a/a') or relative to the top
   * page's folder, with an optional query. The query reaches the page's onLoad as WeChat's
   * routing splits it: values neither decoded nor checked ('k' alone gives "undefined",
   * 'k=a=b' gives "a"). The top page is hidden, the new one loaded and shown, then `success`.
   * `fail` for a page that is not in app.json or is a tab page, and once ten pages are open.
   */
  wxNavigateTo(options) {
    const fail = (why) => this.settle(options, false, { errMsg: `navigateTo:fail ${why}` });
    if (typeof options.url !== 'string' || options.url === '') return fail('parameter error: parameter.url should be String');
    const [target, search] = splitOnce(options.url, '?');
    const from = this.page ? path.posix.dirname(this.page.route) : '';
    const route = path.posix.normalize(target.startsWith('/') ? target.slice(1) : path.posix.join(from, target));
    if (!this.appJson.pages.includes(route)) return fail(`page "${route}" is not found`);
    const tabs = (this.appJson.tabBar && this.appJson.tabBar.list) || [];
    if (tabs.some((tab) => tab.pagePath === route)) return fail(`can not navigateTo a tabbar page`);
    if (this.pages.length >= MAX_PAGES) return fail('webview count limit exceed');
    const query = {};
    if (search !== undefined && search !== '') {
      for (const pair of search.split('&')) query[pair.split('=')[0]] = String(pair.split('=')[1]);
    }
    setImmediate(() => {
      if (!this.open) return;
      this.guard(() => {
        this.callHook(this.page, 'onHide');
        this.openPage(route, query);
      });
      this.settle(options, true, { errMsg: 'navigateTo:ok' });
    });
  }

  /**
   * wx.request: `success` for every HTTP answer (4xx/5xx too) with {statusCode, data, header};
   * `fail` with {errMsg} only when no answer came. GET data becomes the query string; POST
   * object data is sent as JSON. With dataType 'json' (the default) a JSON body is parsed.
   */
  wxRequest(options) {
    const method = (options.method || 'GET').toUpperCase();
    const headers = {};
    for (const [name, value] of Object.entries(options.header || {})) headers[name.toLowerCase()] = String(value);
    if (!headers['content-type']) headers['content-type'] = 'application/json';
    let url;
    try {
      url = new URL(options.url);
      if (url.protocol !== 'http:' && url.protocol !== 'https:') throw new Error('not http');
    } catch {
      this.calls.push({ api: 'request', method, url: String(options.url) });
      this.defer(options.fail, this.toSandbox({ errMsg: 'request:fail invalid url' }));
      this.defer(options.complete, this.toSandbox({ errMsg: 'request:fail invalid url' }));
      return { abort() {} };
    }
    let body;
    const data = options.data;
    if (method === 'GET') {
      if (data && typeof data === 'object') {
        for (const [name, value] of Object.entries(data)) url.searchParams.append(name, String(value));
      }
    } else if (typeof data === 'string') {
      body = data;
    } else if (data !== undefined && data !== null) {
      body = headers['content-type'].includes('x-www-form-urlencoded')
        ? new URLSearchParams(Object.entries(data).map(([k, v]) => [k, String(v)])).toString()
        : JSON.stringify(data);
    }
    // `status` (or `failed`) is filled in when the answer reaches the app, so tests can wait
    // for it (and see it has not come yet while it is held).
    const call = { api: 'request', method, path: url.pathname, url: url.href, headers, body };
    this.calls.push(call);
    if (this.failRequests && this.failRequests(call)) {
      const result = { errMsg: 'request:fail net::ERR_INTERNET_DISCONNECTED' };
      this.defer(() => {
        call.failed = result.errMsg;
      });
      this.defer(options.fail, this.toSandbox(result));
      this.defer(options.complete, this.toSandbox(result));
      return { abort() {} };
    }
    const hand = (deliver) => {
      if (this.holdAnswers && this.holdAnswers(call)) this.held.push({ call, deliver });
      else deliver();
    };

    let aborted = false;
    hostRequest(url.href, { method, headers, body, timeout: options.timeout || 60000 })
      .then((res) => {
        let responseData = res.body;
        if ((options.dataType || 'json') === 'json') {
          try {
            responseData = JSON.parse(res.body);
          } catch {
            // not JSON: WeChat hands over the text
          }
        }
        const result = { data: responseData, statusCode: res.statusCode, header: res.headers, cookies: [], errMsg: 'request:ok' };
        hand(() => {
          call.status = res.statusCode;
          this.defer(options.success, this.toSandbox(result));
          this.defer(options.complete, this.toSandbox(result));
        });
      })
      .catch((error) => {
        const result = { errMsg: aborted ? 'request:fail abort' : `request:fail ${error.message}` };
        hand(() => {
          call.failed = result.errMsg;
          this.defer(options.fail, this.toSandbox(result));
          this.defer(options.complete, this.toSandbox(result));
        });
      });
    return {
      abort() {
        aborted = true;
      },
    };
  }

  /** WXWebAssembly: instantiate(path, imports) with a path inside the package, nothing else. */
  createWXWebAssembly() {
    const runtime = this;
    return {
      instantiate(packagePath, imports) {
        const { Promise: SandboxPromise, Error: SandboxError } = runtime.sandbox;
        runtime.calls.push({ api: 'WXWebAssembly.instantiate', path: packagePath });
        return new SandboxPromise((resolve, reject) => {
          const fail = (why) => reject(new SandboxError(`WXWebAssembly.instantiate: ${why}`));
          if (typeof packagePath !== 'string') return fail('the first argument must be a path in the package (no bytes, no URL)');
          if (!packagePath.startsWith('/')) return fail('the path must be absolute from the package root');
          if (!/\.wasm(\.br)?$/.test(packagePath)) return fail('the path must end in .wasm or .wasm.br');
          const brotli = packagePath.endsWith('.br');
          if (brotli && compareVersions(runtime.libVersion, '2.14.0') < 0) return fail(`.wasm.br needs base library 2.14.0, not ${runtime.libVersion}`);
          const file = path.join(runtime.root, packagePath);
          if (path.relative(runtime.root, file).startsWith('..') || !fs.existsSync(file)) return fail(`no file ${packagePath} in the package`);
          let bytes = fs.readFileSync(file);
          if (brotli) {
            try {
              bytes = zlib.brotliDecompressSync(bytes);
            } catch (error) {
              return fail(`cannot decompress ${packagePath}: ${error.message}`);
            }
          }
          WebAssembly.instantiate(bytes, imports).then(
            ({ instance, module }) => {
              const result = runtime.toSandbox({});
              result.instance = instance;
              result.module = module;
              resolve(result);
            },
            (error) => fail(error.message),
          );
        });
      },
    };
  }
}

/** One HTTP exchange from the host side; resolves for every status, rejects without answer. */
function hostRequest(url, { method = 'GET', headers = {}, body, timeout = 10000 } = {}) {
  return new Promise((resolve, reject) => {
    const req = http.request(url, { method, headers, timeout }, (res) => {
      const chunks = [];
      res.on('data', (chunk) => chunks.push(chunk));
      res.on('end', () => resolve({ statusCode: res.statusCode, headers: res.headers, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

/**
 * Resolves once `predicate()` (which may return a promise) is true, checking every few
 * milliseconds; rejects after `timeoutMs`. For waiting on something the app or a server does,
 * instead of sleeping for a guessed time.
 */
async function waitFor(what, predicate, timeoutMs = 10000) {
  const deadline = Date.now() + timeoutMs;
  while (!(await predicate())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** One turn of Node's event loop: unhandled rejections of the turns before are reported by then. */
function nextTurn() {
  return new Promise((r) => setImmediate(r));
}

/** `text` cut at the first `separator`: [before, after], or [text, undefined] without one. */
function splitOnce(text, separator) {
  const at = text.indexOf(separator);
  return at < 0 ? [text, undefined] : [text.slice(0, at), text.slice(at + separator.length)];
}

/** A value's type as WeChat's parameter errors name it (String, Number, Array, ...). */
function typeName(value) {
  if (value === null) return 'Null';
  if (Array.isArray(value)) return 'Array';
  const type = typeof value;
  return type.charAt(0).toUpperCase() + type.slice(1);
}

function compareVersions(a, b) {
  const pa = String(a).split('.').map(Number);
  const pb = String(b).split('.').map(Number);
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const d = (pa[i] || 0) - (pb[i] || 0);
    if (d !== 0) return d;
  }
  return 0;
}

function describe(value) {
  // Errors from the sandbox are of another realm: `instanceof Error` would miss them.
  if (value !== null && typeof value === 'object' && 'message' in value) return `${value.code ? `[${value.code}] ` : ''}${value.message}`;
  return typeof value === 'string' ? value : JSON.stringify(value);
}

/**
 * Renders a WXML template to its visible text, for the simple templates of this package:
 * elements, `{{name}}` and `{{name.field}}` interpolation, `wx:if` / `wx:elif` / `wx:else`
 * with such a name or its negation (`!name`), and `wx:for="{{list}}"`, whose element is
 * repeated with `item` and `index` in scope. Anything else is an error, so the templates
 * stay within what this checks.
 */
function render(template, data) {
  const value = (expression, scope) => {
    const match = /^\s*(!?)([A-Za-z_$][\w$]*(?:\.[A-Za-z_$][\w$]*)*)\s*$/.exec(expression);
    if (!match) throw new Error(`render: unsupported expression {{${expression}}}`);
    const v = match[2].split('.').reduce((object, name) => (object === undefined || object === null ? undefined : object[name]), scope);
    return match[1] ? !v : v;
  };
  const interpolate = (text, scope) => text.replace(/\{\{(.*?)\}\}/g, (_, e) => String(value(e, scope) ?? ''));
  const condition = (attr, scope) => value(/^\{\{(.*)\}\}$/.exec(attr.trim())[1], scope);

  // Parse into a tree of { tag, attrs, children } and strings.
  const root = { tag: '#root', attrs: {}, children: [] };
  const stack = [root];
  const tokens = template.replace(/<!--[\s\S]*?-->/g, '').split(/(<[^>]+>)/);
  for (const token of tokens) {
    if (token.startsWith('</')) {
      stack.pop();
    } else if (token.startsWith('<')) {
      const [, tag, rest] = /^<([\w-]+)([\s\S]*?)\/?>$/.exec(token);
      const attrs = {};
      for (const [, name, val] of rest.matchAll(/([\w:-]+)(?:="([^"]*)")?/g)) attrs[name] = val ?? '';
      const node = { tag, attrs, children: [] };
      stack[stack.length - 1].children.push(node);
      if (!token.endsWith('/>')) stack.push(node);
    } else if (token.trim()) {
      stack[stack.length - 1].children.push(token.trim());
    }
  }

  const out = [];
  const walk = (node, scope) => {
    let chainTaken = false;
    for (const child of node.children) {
      if (typeof child === 'string') {
        out.push(interpolate(child, scope));
        continue;
      }
      const { attrs } = child;
      if ('wx:for' in attrs) {
        if ('wx:if' in attrs || 'wx:elif' in attrs || 'wx:else' in attrs) throw new Error('render: wx:for with wx:if on one element is not supported');
        const list = condition(attrs['wx:for'], scope);
        if (!Array.isArray(list)) throw new Error(`render: wx:for of a non-list ${attrs['wx:for']}`);
        list.forEach((item, index) => walk(child, { ...scope, item, index }));
        continue;
      }
      let show = true;
      if ('wx:if' in attrs) {
        show = Boolean(condition(attrs['wx:if'], scope));
        chainTaken = show;
      } else if ('wx:elif' in attrs) {
        show = !chainTaken && Boolean(condition(attrs['wx:elif'], scope));
        chainTaken = chainTaken || show;
      } else if ('wx:else' in attrs) {
        show = !chainTaken;
      }
      if (show) walk(child, scope);
    }
  };
  walk(root, data);
  return out.join(' ');
}

module.exports = { Runtime, Device, hostRequest, render, waitFor, nextTurn, PACKAGE_ROOT };
