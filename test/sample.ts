import t from 'tap';
import { readerForRecord, readerForSlots, sampleFromRecord, sampleFromSlots } from '../lib/sample';

const NAMES = ['monotonicNs', 'statm.size', 'statm.resident', 'status.VmRSS', 'mallinfo2.arena', 'mallinfo2.ordblks'] as const;

t.test('slots: read by name, NaN and unknown names are null', async (t) => {
  const slots = Float64Array.from([7, 100, 50, NaN, 4096, 3]);
  const sample = sampleFromSlots(NAMES, slots);
  t.equal(sample.read('statm.resident'), 50);
  t.equal(sample.read('status.VmRSS'), null);
  t.equal(sample.read('no.such.slot'), null);
  t.equal(readerForSlots(NAMES, slots)('mallinfo2.arena'), 4096);
});

t.test('slots: groups keep the names order, drop the prefix and the missing slots', async (t) => {
  const slots = Float64Array.from([7, 100, NaN, NaN, 4096, 3]);
  const sample = sampleFromSlots(NAMES, slots);
  t.strictSame(sample.group('statm.'), { size: 100 });
  t.strictSame(Object.keys(sample.group('mallinfo2.') ?? {}), ['arena', 'ordblks']);
  t.equal(sample.group('status.'), null, 'a group with no slot present is null');
  t.equal(sample.group('smaps_rollup.'), null, 'a prefix no name has is null');
});

t.test('slots: each group is a fresh object, and later writes to the slots do not reach it', async (t) => {
  const slots = Float64Array.from([7, 100, 50, NaN, 4096, 3]);
  const sample = sampleFromSlots(NAMES, slots);
  const first = sample.group('statm.');
  slots[2] = 60;
  const second = sample.group('statm.');
  t.strictSame(first, { size: 100, resident: 50 });
  t.strictSame(second, { size: 100, resident: 60 });
  t.not(first, second);
});

t.test('records: the same answers as slots for the same figures', async (t) => {
  const record = { monotonicNs: 7, 'statm.size': 100, 'status.VmRSS': 'n/a', 'mallinfo2.arena': 4096, 'mallinfo2.ordblks': Infinity };
  const sample = sampleFromRecord(NAMES, record);
  t.equal(sample.read('statm.size'), 100);
  t.equal(sample.read('status.VmRSS'), null, 'non-numbers are null');
  t.strictSame(sample.group('mallinfo2.'), { arena: 4096 }, 'non-finite numbers are left out');
  t.equal(sample.group('status.'), null);
  t.equal(readerForRecord(record)('statm.resident'), null);
});
