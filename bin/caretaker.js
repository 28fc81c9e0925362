#!/usr/bin/env node
'use strict';
// Thin launcher so `npx caretaker` works from a checkout: `npm ci` builds dist/ (the "prepare" script).
// `caretaker tasks | head` closes stdout early: that is the reader's choice, not an error.
process.stdout.on('error', (err) => {
  if (err.code === 'EPIPE') process.exit(0);
  throw err;
});
require('../dist/src/cli.js')
  .cli(process.argv)
  .then((code) => {
    process.exitCode = code;
    // The command is done. A task handed back after the shutdown grace may still hold a socket:
    // it must not keep the process (and its pod) alive. Exit anyway, shortly.
    setTimeout(() => process.exit(code), 2_000).unref();
  });
