#!/usr/bin/env node
'use strict';
/**
 * Runs a seeded sample of the tests one at a time, each alone in its file
 * (`npx jest <file> -t '^<full name>$'`), and fails naming every test that
 * fails alone: a test that passes only after another one in its file depends
 * on what that one left behind.
 *
 *   node scripts/test-alone.js [--count N] [--seed N] [--all] [--list] [jest path patterns...]
 *
 * --count  how many tests to run (25 by default); --all runs every one.
 * --seed   picks the same sample again, to replay a failure (printed at the start).
 * --list   prints the sample without running it.
 * Path patterns restrict the tests sampled from, as jest's own do.
 */
const { spawnSync } = require('node:child_process');
const { mkdtempSync, readFileSync, rmSync } = require('node:fs');
const { tmpdir } = require('node:os');
const path = require('node:path');

const ROOT = path.resolve(__dirname, '..');
const DEFAULT_COUNT = 25;
/** A test name pattern that matches nothing: jest then loads every file and lists its tests without running a hook. */
const MATCH_NOTHING = '(?!)';
/** How much of a failed run's output to show: its end holds jest's failure and summary. */
const OUTPUT_TAIL_LINES = 60;

function parseArgs(argv) {
  const options = { count: DEFAULT_COUNT, seed: undefined, all: false, list: false, patterns: [] };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const value = () => {
      const v = argv[++i];
      if (v === undefined || !/^\d+$/.test(v)) usage(`${arg} needs a whole number`);
      return Number(v);
    };
    if (arg === '--count') options.count = value();
    else if (arg === '--seed') options.seed = value();
    else if (arg === '--all') options.all = true;
    else if (arg === '--list') options.list = true;
    else if (arg === '--help' || arg === '-h') usage();
    else if (arg.startsWith('-')) usage(`unknown option ${arg}`);
    else options.patterns.push(arg);
  }
  options.seed ??= Math.floor(Math.random() * 2 ** 31);
  return options;
}

function usage(problem) {
  if (problem) process.stderr.write(`test-alone: ${problem}\n`);
  process.stderr.write('usage: node scripts/test-alone.js [--count N] [--seed N] [--all] [--list] [jest path patterns...]\n');
  process.exit(problem ? 2 : 0);
}

/** Runs jest with `args`, its JSON report written to a temporary file; returns the exit status, output and report. */
function jest(args) {
  const dir = mkdtempSync(path.join(tmpdir(), 'test-alone-'));
  const report = path.join(dir, 'report.json');
  try {
    const run = spawnSync('npx', ['jest', '--json', `--outputFile=${report}`, ...args], {
      cwd: ROOT,
      encoding: 'utf8',
      maxBuffer: 64 * 1024 * 1024,
    });
    let json = null;
    try {
      json = JSON.parse(readFileSync(report, 'utf8'));
    } catch {
      // No report: jest broke before writing it; the caller says so with the output.
    }
    return { status: run.status ?? 1, output: `${run.stdout}${run.stderr}`, json };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Every test jest finds, as { file, fullName }, in a stable order (the seed then picks the same sample anywhere). */
function listTests(patterns) {
  const { output, json } = jest(['-t', MATCH_NOTHING, ...patterns]);
  if (!json) fail(`could not list the tests:\n${tail(output)}`);
  const broken = json.testResults.filter((f) => f.status === 'failed');
  if (broken.length) fail(`these test files do not load:\n${broken.map((f) => `  ${relative(f.name)}: ${firstLine(f.message)}`).join('\n')}`);
  const tests = json.testResults.flatMap((f) => f.assertionResults.map((a) => ({ file: relative(f.name), fullName: a.fullName })));
  return tests.sort((a, b) => (a.file === b.file ? compare(a.fullName, b.fullName) : compare(a.file, b.file)));
}

/** mulberry32: a small seeded generator, so a sample can be replayed. */
function seededRandom(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function sample(tests, count, seed) {
  const random = seededRandom(seed);
  const shuffled = [...tests];
  for (let i = shuffled.length - 1; i > 0; i--) {
    const j = Math.floor(random() * (i + 1));
    [shuffled[i], shuffled[j]] = [shuffled[j], shuffled[i]];
  }
  return shuffled.slice(0, count);
}

/** The -t pattern matching exactly this test: jest matches it against describe titles and test title joined by spaces. */
function exactNamePattern(fullName) {
  return `^${fullName.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}$`;
}

/** Shell-quoted, so the printed replay command can be pasted as it is. */
function quote(s) {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

function replayCommand(test) {
  return `npx jest ${test.file} -t ${quote(exactNamePattern(test.fullName))}`;
}

/** Runs one test alone; returns why it failed, or null. A test the file itself skips (it.skip, a missing service) is not a failure. */
function runAlone(test) {
  const { status, output, json } = jest([test.file, '-t', exactNamePattern(test.fullName)]);
  if (!json) return `jest broke before reporting:\n${tail(output)}`;
  const results = json.testResults.flatMap((f) => f.assertionResults).filter((a) => a.fullName === test.fullName);
  if (results.length !== 1) return `matched ${results.length} tests named so (expected exactly 1)`;
  const [result] = results;
  if (result.status === 'failed') return tail(result.failureMessages.join('\n'));
  // A passing test in a file whose hooks or teardown failed still fails the run.
  if (status !== 0) return `the test passed but jest exited ${status}:\n${tail(output)}`;
  return null;
}

function main() {
  const options = parseArgs(process.argv.slice(2));
  const tests = listTests(options.patterns);
  const picked = options.all ? tests : sample(tests, options.count, options.seed);
  console.log(`test-alone: ${picked.length} of ${tests.length} tests, each alone${options.all ? '' : ` (seed ${options.seed}: --seed ${options.seed} picks them again)`}`);
  if (options.list) {
    for (const t of picked) console.log(`  ${t.file}: ${t.fullName}`);
    return;
  }
  const failures = [];
  const started = Date.now();
  picked.forEach((test, i) => {
    const t0 = Date.now();
    const problem = runAlone(test);
    const seconds = ((Date.now() - t0) / 1000).toFixed(1);
    console.log(`${problem ? 'FAIL' : 'ok  '} ${i + 1}/${picked.length} ${test.file}: ${test.fullName} (${seconds} s)`);
    if (problem) failures.push({ test, problem });
  });
  const total = (Date.now() - started) / 1000;
  console.log(`test-alone: ${picked.length - failures.length} passed alone, ${failures.length} failed alone, ${(total / Math.max(picked.length, 1)).toFixed(1)} s per test`);
  if (!failures.length) return;
  console.log('\nThese tests fail when run alone (they depend on what an earlier test in their file left):');
  for (const { test, problem } of failures) {
    console.log(`\n● ${test.file}: ${test.fullName}\n  ${replayCommand(test)}\n${indent(problem)}`);
  }
  if (!options.all) console.log(`\nThe same sample again: npm run test:alone -- --seed ${options.seed} --count ${options.count}${options.patterns.map((p) => ` ${quote(p)}`).join('')}`);
  process.exitCode = 1;
}

const relative = (file) => path.relative(ROOT, file);
const compare = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
const firstLine = (s) => (s ?? '').trim().split('\n')[0];
const tail = (s) => s.trimEnd().split('\n').slice(-OUTPUT_TAIL_LINES).join('\n');
const indent = (s) => s.split('\n').map((l) => `    ${l}`).join('\n');

function fail(message) {
  process.stderr.write(`test-alone: ${message}\n`);
  process.exit(2);
}

main();
