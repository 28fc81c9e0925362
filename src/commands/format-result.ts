import type { TaskResult } from '../contract/result';

const MARK: Record<string, string> = { ok: 'OK', warning: 'WARNING', critical: 'CRITICAL', error: 'ERROR', info: 'info' };

/**
 * A result as an operator reads it in a terminal; the first line is the
 * monitoring-plugin status line (`CONNECTIONS WARNING - ...`).
 */
export function formatResult(r: TaskResult): string {
  const lines = [`${r.task.toUpperCase()} ${MARK[r.status]} - ${r.target}: ${r.summary}${r.dryRun ? ' (dry run)' : ''}`];
  for (const f of r.findings) {
    lines.push(`  [${MARK[f.severity]}] ${f.code} ${f.subject}: ${f.message}`);
    if (f.suggestion) lines.push(`      suggestion: ${f.suggestion}`);
  }
  for (const a of r.actions) {
    lines.push(`  ${a.applied ? 'did' : 'would'} ${a.kind} ${a.subject}${a.durationMs !== undefined ? ` (${a.durationMs} ms)` : ''}`);
  }
  const metrics = Object.entries(r.metrics);
  if (metrics.length > 0) lines.push(`  metrics: ${metrics.map(([k, v]) => `${k}=${Number.isInteger(v) ? v : v.toFixed(3)}`).join(' ')}`);
  return lines.join('\n');
}
