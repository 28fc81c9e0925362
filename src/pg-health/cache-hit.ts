/**
 * pg-health's cache check: the share of this database's block reads served
 * from shared buffers since its statistics were reset (`cache_hit_low`).
 */
import type { FindingCodes } from '../contract/task';
import type { CheckResult, PgSession } from './check';

export const CACHE_HIT_CODES = {
  cache_hit_low: "the database's cache hit ratio below `cacheHitWarning`, once `minBlocksRead` blocks were read",
} as const satisfies FindingCodes;
type CacheHitCode = keyof typeof CACHE_HIT_CODES;

export const SQL = {
  /** Block cache counters of this database since its statistics were reset. */
  cache: `
    SELECT blks_hit::float8 AS hit, blks_read::float8 AS read, stats_reset AS "statsReset"
    FROM pg_stat_database
    WHERE datname = current_database()`,
} as const;

/** pg_stat_database's block counters (absent when the database has no row yet). */
interface CacheRow {
  hit: number;
  read: number;
  statsReset: Date | null;
}

/** What the cache check reads from pg-health's params. */
export interface CacheHitOptions {
  cacheHitWarning: number;
  minBlocksRead: number;
}

const pct = (r: number) => `${(r * 100).toFixed(2)} %`;

/** Cache hit ratio: no ratio (nor metric) before the first block is read. */
export async function cacheHit({ db, server }: PgSession, p: CacheHitOptions): Promise<CheckResult<CacheHitCode>> {
  const cache = (await db.query(SQL.cache)).rows[0] as CacheRow | undefined;
  const blocks = cache ? cache.hit + cache.read : 0;
  if (!cache || !(blocks > 0)) return { findings: [], metrics: {}, summary: 'no cache traffic yet' };
  const hitRatio = cache.hit / blocks;
  const low = hitRatio < p.cacheHitWarning && cache.read >= p.minBlocksRead;
  return {
    findings: low
      ? [
          {
            severity: 'warning',
            code: 'cache_hit_low',
            subject: server.database,
            message: `cache hit ratio ${pct(hitRatio)} (below ${pct(p.cacheHitWarning)}): ${cache.read} of ${blocks} blocks read from outside shared buffers`,
            suggestion: 'Find the queries reading the most blocks (pg_stat_statements shared_blks_read) and their missing indexes; if the working set outgrew memory, raise shared_buffers',
            details: { blocksHit: cache.hit, blocksRead: cache.read, ratio: hitRatio, statsReset: cache.statsReset?.toISOString() ?? null },
          },
        ]
      : [],
    metrics: { cache_hit_ratio: hitRatio },
    summary: `cache hit ${pct(hitRatio)}`,
  };
}
