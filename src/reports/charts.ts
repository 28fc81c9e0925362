/**
 * The report's trend charts as PNG images: a vega-lite line chart per trend,
 * compiled to vega, rendered headless to SVG (renderer 'none': no canvas,
 * no browser), rasterised by resvg. Mail clients show PNG; few show SVG.
 */
import * as vega from 'vega';
import * as vegaLite from 'vega-lite';
import { Resvg } from '@resvg/resvg-js';
import type { Trend } from './model';

export interface Chart {
  metric: string;
  title: string;
  /** Content-ID of the email attachment (referenced as `cid:<cid>`). */
  cid: string;
  filename: string;
  png: Buffer;
}

const WIDTH = 520;
const HEIGHT = 160;

/** Axis unit: bytes as MiB/GiB would need per-chart scaling; a d3 SI format reads well enough. */
const AXIS_FORMAT: Record<Trend['unit'], string> = { bytes: '.2s', count: '~s', seconds: '~s', ratio: '.0%' };
const AXIS_SUFFIX: Record<Trend['unit'], string> = { bytes: ' (bytes)', count: '', seconds: ' (s)', ratio: '' };

/** The vega-lite spec of one trend: weeks on x, one coloured line per target. */
export function trendSpec(trend: Trend): vegaLite.TopLevelSpec {
  const values = trend.series.flatMap((s) => s.points.filter((p) => p.value !== undefined).map((p) => ({ week: p.week, target: s.target, value: p.value })));
  const weeks = trend.series[0]?.points.map((p) => p.week) ?? [];
  return {
    $schema: 'https://vega.github.io/schema/vega-lite/v5.json',
    title: { text: trend.title, anchor: 'start', fontSize: 13 },
    width: WIDTH,
    height: HEIGHT,
    background: 'white',
    data: { values },
    mark: { type: 'line', point: true },
    encoding: {
      x: { field: 'week', type: 'ordinal', sort: weeks, scale: { domain: weeks }, axis: { title: null, labelAngle: -40, labelExpr: 'slice(datum.value, 5)' } },
      y: { field: 'value', type: 'quantitative', axis: { title: `${trend.title}${AXIS_SUFFIX[trend.unit]}`, format: AXIS_FORMAT[trend.unit] }, scale: { zero: false } },
      color: { field: 'target', type: 'nominal', legend: { title: null, orient: 'bottom' } },
    },
  };
}

/** Renders one trend to PNG bytes. */
export async function renderTrendPng(trend: Trend): Promise<Buffer> {
  const { spec } = vegaLite.compile(trendSpec(trend));
  const view = new vega.View(vega.parse(spec), { renderer: 'none' });
  try {
    const svg = await view.toSVG();
    return Buffer.from(new Resvg(svg, { font: { loadSystemFonts: true }, background: 'white' }).render().asPng());
  } finally {
    view.finalize();
  }
}

/** One chart per trend that has data (a trend nobody measured is left out, not drawn empty). */
export async function renderCharts(trends: readonly Trend[]): Promise<Chart[]> {
  const charts: Chart[] = [];
  for (const trend of trends) {
    if (!trend.series.some((s) => s.points.some((p) => p.value !== undefined))) continue;
    charts.push({
      metric: trend.metric,
      title: trend.title,
      cid: `trend-${trend.metric}@caretaker`,
      filename: `${trend.metric}.png`,
      png: await renderTrendPng(trend),
    });
  }
  return charts;
}
