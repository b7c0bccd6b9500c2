// Builds a mini-program's miniprogram_npm/ with Tencent's miniprogram-ci, as DevTools' "Build
// npm" does: each dependency of <package.json> is copied from node_modules/ into
// <dist>/miniprogram_npm/<name>/ (a package with a "miniprogram" field: that folder as it is,
// wasm files included). Offline; run by `cargo xtask build`.
// Usage: node pack-npm.js <path of the mini-program's package.json> <folder to write into>
'use strict';

const path = require('node:path');
const ci = require('miniprogram-ci');

const [packageJsonPath, distDir] = process.argv.slice(2).map((arg) => path.resolve(arg));
if (!packageJsonPath || !distDir) {
  console.error('usage: node pack-npm.js <package.json> <dist dir>');
  process.exit(2);
}

ci.packNpmManually({ packageJsonPath, miniprogramNpmDistDir: distDir }).then(
  (result) => {
    for (const warning of result.warnList || []) console.error(`warning: ${JSON.stringify(warning)}`);
    console.log(`packed ${result.miniProgramPackNum} mini-program package(s), ${result.otherNpmPackNum} other`);
  },
  (error) => {
    console.error(`packNpmManually failed: ${error && error.stack ? error.stack : error}`);
    process.exit(1);
  },
);
