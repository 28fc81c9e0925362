#!/usr/bin/env node
'use strict';
/**
 * `npm start`'s build step: runs the TypeScript build only when a source
 * changed since the last one (tsc, even incremental, takes seconds to find
 * that nothing did). "Changed" is any file or folder under src/ and bench/,
 * or tsconfig.json / package.json / package-lock.json, newer than the
 * newest source the last successful build started from (kept in
 * dist/.build-stamp); a folder's time moves when a file in it is added,
 * removed or renamed.
 *
 *   node scripts/build-if-changed.js [--force]
 */
const { spawnSync } = require('node:child_process');
const { existsSync, readFileSync, readdirSync, statSync, writeFileSync } = require('node:fs');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const STAMP = path.join(ROOT, 'dist', '.build-stamp');
const TREES = ['src', 'bench'];
const FILES = ['tsconfig.json', 'package.json', 'package-lock.json'];

/** The newest modification time (ms) under `dir`, folders included. */
function newestIn(dir) {
  let newest = statSync(dir).mtimeMs;
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    const full = path.join(dir, entry.name);
    newest = Math.max(newest, entry.isDirectory() ? newestIn(full) : statSync(full).mtimeMs);
  }
  return newest;
}

function newestSource() {
  let newest = 0;
  for (const tree of TREES) if (existsSync(path.join(ROOT, tree))) newest = Math.max(newest, newestIn(path.join(ROOT, tree)));
  for (const file of FILES) if (existsSync(path.join(ROOT, file))) newest = Math.max(newest, statSync(path.join(ROOT, file)).mtimeMs);
  return newest;
}

/** The newest source time of the last successful build (ms, as the file system gives it), or 0. */
function builtFrom() {
  try {
    return Number(readFileSync(STAMP, 'utf8').trim()) || 0;
  } catch {
    return 0;
  }
}

function main() {
  const force = process.argv.includes('--force');
  const started = newestSource();
  if (!force && builtFrom() >= started && existsSync(path.join(ROOT, 'dist', 'src', 'cli.js'))) return;
  const build = spawnSync(process.execPath, [require.resolve('typescript/bin/tsc'), '-p', path.join(ROOT, 'tsconfig.json')], { cwd: ROOT, stdio: 'inherit' });
  if (build.status !== 0) process.exit(build.status ?? 1);
  // The stamp holds the newest source time the build started from: a file saved during the build is newer, and builds next time.
  writeFileSync(STAMP, `${started}\n`);
}

main();
