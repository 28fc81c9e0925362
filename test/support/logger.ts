import pino from 'pino';

/** Silent unless TEST_LOG=1: tests assert on results, not on log lines. */
export const testLogger = pino({ level: process.env.TEST_LOG === '1' ? 'debug' : 'silent' });
