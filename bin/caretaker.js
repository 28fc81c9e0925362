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
  });
