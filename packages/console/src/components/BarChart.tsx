import { useId } from 'react'

/**
 * A small stacked bar chart in plain SVG, for the admin pages (a tenant's usage per day, a
 * migration run's progress). Written here rather than taken from a chart library: the ones
 * that render accessible SVG weigh tens of KiB gzipped (Recharts, Chart.js plus a React
 * wrapper, Victory), far more than these two charts need, and none of them gives the data
 * table a screen-reader user needs for free. So: the SVG is one image with a name and a
 * one-line summary (role="img", <title>, <desc>), and the same numbers are a real table under
 * a disclosure, which is also what the browser tests read.
 */

export interface ChartSeries {
  key: string
  label: string
  /** A fill with at least 3:1 contrast against white (WCAG 1.4.11). */
  color: string
}

export interface ChartBar {
  label: string
  values: Record<string, number>
}

export interface BarChartProps {
  /** The chart's accessible name, e.g. "Requests per day of acme". */
  title: string
  /** What it shows in a sentence: totals, the largest bar. */
  summary: string
  series: ChartSeries[]
  bars: ChartBar[]
  /** Header of the table's first column (what a bar is: "Day", "Poll"). */
  category: string
  height?: number
}

const WIDTH = 480
const PAD = { top: 14, right: 8, bottom: 20, left: 44 }

const compact = (n: number) => (n >= 1e6 ? `${(n / 1e6).toFixed(1)}M` : n >= 1e4 ? `${Math.round(n / 1e3)}k` : String(Math.round(n)))

export function BarChart({ title, summary, series, bars, category, height = 140 }: BarChartProps) {
  const id = useId()
  const total = (bar: ChartBar) => series.reduce((sum, s) => sum + (bar.values[s.key] ?? 0), 0)
  const max = Math.max(1, ...bars.map(total))
  const plotW = WIDTH - PAD.left - PAD.right
  const plotH = height - PAD.top - PAD.bottom
  const step = plotW / Math.max(1, bars.length)
  const barW = Math.max(2, Math.min(40, step * 0.7))
  const y = (v: number) => (v / max) * plotH
  // Labels under the first and last bar only (and every bar when they fit).
  const labelled = (i: number) => bars.length <= 8 || i === 0 || i === bars.length - 1
  return (
    <figure className="chart">
      <svg viewBox={`0 0 ${WIDTH} ${height}`} role="img" aria-labelledby={`${id}-title`} aria-describedby={`${id}-desc`} className="chart-svg">
        <title id={`${id}-title`}>{title}</title>
        <desc id={`${id}-desc`}>{summary}</desc>
        <line x1={PAD.left} x2={WIDTH - PAD.right} y1={PAD.top + plotH} y2={PAD.top + plotH} stroke="#8c959f" />
        <text x={PAD.left - 4} y={PAD.top + 4} textAnchor="end" className="chart-tick">
          {compact(max)}
        </text>
        <text x={PAD.left - 4} y={PAD.top + plotH} textAnchor="end" className="chart-tick">
          0
        </text>
        {bars.map((bar, i) => {
          const x = PAD.left + i * step + (step - barW) / 2
          let base = PAD.top + plotH
          return (
            <g key={bar.label} className="chart-bar" data-label={bar.label}>
              {series.map((s) => {
                const value = bar.values[s.key] ?? 0
                if (value <= 0) return null
                const h = Math.max(1, y(value))
                base -= h
                return <rect key={s.key} x={x} y={base} width={barW} height={h} fill={s.color} data-series={s.key} data-value={value} />
              })}
              {labelled(i) && (
                <text x={x + barW / 2} y={height - 6} textAnchor="middle" className="chart-tick">
                  {bar.label}
                </text>
              )}
            </g>
          )
        })}
      </svg>
      <figcaption className="small">
        {series.length > 1 && (
          <span className="chart-legend" aria-hidden="true">
            {series.map((s) => (
              <span key={s.key}>
                <span className="chart-swatch" style={{ background: s.color }} /> {s.label}
              </span>
            ))}
          </span>
        )}
        <details>
          <summary>{title}: table</summary>
          <table>
            <caption className="visually-hidden">{title}</caption>
            <thead>
              <tr>
                <th scope="col">{category}</th>
                {series.map((s) => (
                  <th scope="col" key={s.key}>
                    {s.label}
                  </th>
                ))}
              </tr>
            </thead>
            <tbody>
              {bars.map((bar) => (
                <tr key={bar.label}>
                  <th scope="row">{bar.label}</th>
                  {series.map((s) => (
                    <td key={s.key}>{bar.values[s.key] ?? 0}</td>
                  ))}
                </tr>
              ))}
            </tbody>
          </table>
        </details>
      </figcaption>
    </figure>
  )
}
