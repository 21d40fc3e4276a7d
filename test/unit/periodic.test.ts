// The one helper every background job runs on: its ticks, its errors and its stop, on fake timers.
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest'
import { every } from '../../src/lib/periodic.js'

beforeEach(() => {
  vi.useFakeTimers()
})
afterEach(() => {
  vi.useRealTimers()
})

describe('every', () => {
  it('runs the job once an interval, the first time after one interval', async () => {
    const job = vi.fn()
    const periodic = every(1_000, job, () => {})
    await vi.advanceTimersByTimeAsync(999)
    expect(job).not.toHaveBeenCalled()
    await vi.advanceTimersByTimeAsync(1)
    expect(job).toHaveBeenCalledTimes(1)
    await vi.advanceTimersByTimeAsync(2_000)
    expect(job).toHaveBeenCalledTimes(3)
    periodic.stop()
  })

  it('reports a job that throws, and runs it again at the next tick', async () => {
    const boom = new Error('boom')
    const job = vi.fn(() => {
      throw boom
    })
    const onError = vi.fn()
    const periodic = every(100, job, onError)
    await vi.advanceTimersByTimeAsync(200)
    expect(job).toHaveBeenCalledTimes(2)
    expect(onError).toHaveBeenCalledTimes(2)
    expect(onError).toHaveBeenCalledWith(boom)
    periodic.stop()
  })

  it('reports a job whose promise rejects (never an unhandled rejection)', async () => {
    const boom = new Error('database away')
    const onError = vi.fn()
    const periodic = every(100, () => Promise.reject(boom), onError)
    await vi.advanceTimersByTimeAsync(100)
    expect(onError).toHaveBeenCalledExactlyOnceWith(boom)
    periodic.stop()
  })

  it('swallows a reporter that throws: the failed tick still leaves no unhandled rejection', async () => {
    // Vitest fails the run on an unhandled rejection, so this test fails if the guard goes.
    const onError = vi.fn(() => {
      throw new Error('broken reporter')
    })
    const job = vi.fn(() => Promise.reject(new Error('boom')))
    const periodic = every(100, job, onError)
    await vi.advanceTimersByTimeAsync(200)
    expect(job).toHaveBeenCalledTimes(2)
    expect(onError).toHaveBeenCalledTimes(2)
    periodic.stop()
  })

  it('stops: no tick after stop(), while a tick already running still reports its failure', async () => {
    let fail: (err: unknown) => void = () => {}
    const job = vi.fn(
      () =>
        new Promise<void>((_resolve, reject) => {
          fail = reject
        }),
    )
    const onError = vi.fn()
    const periodic = every(100, job, onError)
    await vi.advanceTimersByTimeAsync(100)
    expect(job).toHaveBeenCalledTimes(1)
    periodic.stop()
    await vi.advanceTimersByTimeAsync(1_000)
    expect(job).toHaveBeenCalledTimes(1)
    expect(vi.getTimerCount()).toBe(0)
    const late = new Error('late')
    fail(late)
    await vi.advanceTimersByTimeAsync(0)
    expect(onError).toHaveBeenCalledExactlyOnceWith(late)
  })

  it('never holds the process open (its timer is unref’d)', () => {
    const spy = vi.spyOn(globalThis, 'setInterval')
    const periodic = every(
      100,
      () => {},
      () => {},
    )
    const timer = spy.mock.results[0]?.value as NodeJS.Timeout
    expect(timer.hasRef()).toBe(false)
    periodic.stop()
    spy.mockRestore()
  })
})
