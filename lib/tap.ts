/**
 * allocscope's tap plugin (tap >= 18 plugin API): adds `t.nativeHeapStable(fn, options)`, which
 * passes when `fn` keeps no native memory per call and fails with the measurements otherwise.
 * Enable it with `tap plugin add allocscope/tap` (or `plugin: [allocscope/tap]` in .taprc).
 */
import { AllocscopeError } from './errors';
import { assertNoNativeLeak, type NoLeakOptions } from './testing';

/** The part of tap's TestBase this plugin uses. */
interface Assertions {
  pass(message: string, extra: Record<string, unknown>): boolean;
  fail(message: string, extra: Record<string, unknown>): boolean;
}

export interface NativeHeapPlugin {
  /** Resolves true when `fn` does not grow native memory per call (see assertNoNativeLeak). */
  nativeHeapStable(fn: () => unknown, options?: NoLeakOptions & { message?: string }): Promise<boolean>;
}

export const plugin = (t: Assertions): NativeHeapPlugin => ({
  async nativeHeapStable(fn, options = {}) {
    const { message = 'native heap is stable', ...measureOptions } = options;
    try {
      const growth = await assertNoNativeLeak(fn, measureOptions);
      return t.pass(message, { liveBytesPerIteration: growth.liveBytesPerIteration, allocator: growth.allocator });
    } catch (error) {
      if (error instanceof AllocscopeError && error.code === 'ELEAK') {
        return t.fail(`${message}: ${error.message}`, { ...error.details });
      }
      throw error;
    }
  },
});
