#!/usr/bin/env node
'use strict';
// Thin launcher so `npx caretaker` works from a checkout: `npm ci` builds dist/ (the "prepare" script).
require('../dist/src/cli.js')
  .cli(process.argv)
  .then((code) => {
    process.exitCode = code;
  });
