import { describe, expect, it } from 'vitest'
import { addedWorkUs } from './harness.js'

describe('addedWorkUs', () => {
  it('solves a straight yardstick line for a rate between its points and beyond them', () => {
    // 25 µs per operation at rest, and each µs of added work costs 0.9 µs of time per operation.
    const rate = (us: number) => 1e6 / (25 + 0.9 * us)
    const points = [0, 10, 20].map((us) => ({ us, perSec: rate(us) }))
    expect(addedWorkUs(points, rate(15))).toBeCloseTo(15, 9)
    expect(addedWorkUs(points, rate(40))).toBeCloseTo(40, 9)
    expect(addedWorkUs(points, rate(0))).toBeCloseTo(0, 9)
  })

  it('fits noisy points by least squares rather than through the first two', () => {
    const points = [
      { us: 0, perSec: 1e6 / 25 },
      { us: 10, perSec: 1e6 / 35 },
      { us: 20, perSec: 1e6 / 43 },
    ]
    // The line through them: slope 0.9, intercept 25.33…; 40 µs per operation lies 16.3 µs along it.
    expect(addedWorkUs(points, 1e6 / 40)).toBeCloseTo((40 - 76 / 3) / 0.9, 9)
  })
})
