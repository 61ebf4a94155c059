import t from 'tap';
import { checkPlatform, currentPlatform, native } from '../lib/binding';

t.test('the addon loads and exports every function of NativeBinding', async (t) => {
  const binding = native();
  for (const name of ['detect', 'sampleSlotNames', 'sampleInto', 'sampleAsync', 'glibcMallinfo2', 'glibcMallocInfo', 'glibcMallocInfoAsync', 'glibcMallocTrim', 'jemallocReadAny', 'jemallocReadString', 'jemallocWrite', 'jemallocBins', 'jemallocStatsPrint', 'jemallocPurge', 'tcmallocProperty', 'tcmallocReleaseFreeMemory', 'tcmallocStatsText', 'mimallocProcessInfo', 'mimallocCollect', 'peerCredentials']) {
    t.type((binding as unknown as Record<string, unknown>)[name], 'function', name);
  }
  t.equal(native(), binding, 'loaded once');
});

t.test('this platform is supported: Linux with glibc', async (t) => {
  const facts = currentPlatform();
  t.equal(facts.platform, 'linux');
  t.match(facts.glibcVersionRuntime, /^2\.\d+/);
  t.doesNotThrow(() => checkPlatform(facts));
});

t.test('non-Linux and musl platforms are refused with EUNSUPPORTED', async (t) => {
  t.throws(() => checkPlatform({ platform: 'darwin', glibcVersionRuntime: undefined }), { code: 'EUNSUPPORTED' });
  t.throws(() => checkPlatform({ platform: 'win32', glibcVersionRuntime: undefined }), { code: 'EUNSUPPORTED' });
  t.throws(() => checkPlatform({ platform: 'linux', glibcVersionRuntime: undefined }), { code: 'EUNSUPPORTED' }, 'musl');
});
