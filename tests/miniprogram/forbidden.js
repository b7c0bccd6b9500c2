// The names the mini-program runtime lacks, read from forbidden_globals.txt (the list the
// build's check of the generated glue reads too, xtask/src/wasm/forbidden.rs), and a check that
// code names none of them. Not a test file itself (node --test picks *.test.js).
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const KINDS = ['absent', 'no-codegen', 'syntax', 'unreliable'];

/** The list's entries as { name, kind }; a malformed line is an error, not a dropped name. */
function readList(file = path.join(__dirname, 'forbidden_globals.txt')) {
  return fs
    .readFileSync(file, 'utf8')
    .split('\n')
    .map((line) => line.trim())
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => {
      const [name, kind, ...rest] = line.split(/\s+/);
      if (!KINDS.includes(kind) || rest.length > 0) {
        throw new Error(`forbidden_globals.txt: '${line}' is not '<name> <kind>' with a kind among ${KINDS}`);
      }
      return { name, kind };
    });
}

const FORBIDDEN = readList();

/** The names of one kind: namesOf('absent'). */
const namesOf = (kind) => FORBIDDEN.filter((entry) => entry.kind === kind).map((entry) => entry.name);

/**
 * Whether `code` names `name` as a whole identifier: not a property (`.buffer`) nor a part of
 * another name (`WXWebAssembly`); `import(` and `import.meta` count wherever they stand.
 */
function names(code, name) {
  const escaped = name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const end = /[\w$]$/.test(name) ? '(?![\\w$])' : '';
  return new RegExp(`(^|[^\\w$.])${escaped}${end}`, 'm').test(code);
}

/** The names of the list that `code` names, for an assertion message. */
const forbiddenIn = (code) => FORBIDDEN.map((entry) => entry.name).filter((name) => names(code, name));

module.exports = { namesOf, forbiddenIn };
