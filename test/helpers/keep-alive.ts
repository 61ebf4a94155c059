/**
 * monitor() timers are unref'd by design (a monitor never keeps a process alive); a test that
 * awaits their samples needs something else that does, as a service's server would.
 */
import type { Test } from 'tap';

export function keepAliveUntilTeardown(t: Test): void {
  const keepAlive = setInterval(() => undefined, 1000);
  t.teardown(() => clearInterval(keepAlive));
}
