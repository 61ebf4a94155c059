import t from 'tap';
import { formatBytes, formatDuration, formatPercent, formatRate, formatRatio, formatTable } from '../../lib/report/format';

t.test('formatBytes', async (t) => {
  t.equal(formatBytes(null), '-');
  t.equal(formatBytes(512), '512 B');
  t.equal(formatBytes(1536), '1.5 KiB');
  t.equal(formatBytes(-3 * 1048576), '-3.0 MiB');
  t.equal(formatBytes(5 * 1024 ** 3), '5.0 GiB');
});

t.test('formatRatio shows the ratio with its signed bytes', async (t) => {
  t.equal(formatRatio(null), '-');
  t.equal(formatRatio({ ratio: 1.5, bytes: 1048576 }), '1.50 (+1.0 MiB)');
  t.equal(formatRatio({ ratio: 0.5, bytes: -2048 }), '0.50 (-2.0 KiB)');
});

t.test('formatTable aligns columns', async (t) => {
  t.equal(formatTable(['a', 'bb'], [['xyz', '1'], ['q', '22']]), 'a    bb\n---  --\nxyz   1\nq    22');
});

t.test('formatDuration picks a unit a person reads at a glance', async (t) => {
  t.equal(formatDuration(850), '850 ms');
  t.equal(formatDuration(12_300), '12.3 s');
  t.equal(formatDuration(270_000), '4.5 min');
  t.equal(formatDuration(2.5 * 3_600_000), '2.5 h');
  t.equal(formatDuration(3 * 86_400_000), '3.0 d');
});

t.test('formatRate and formatPercent', async (t) => {
  t.equal(formatRate(3 * 1048576, 's'), '+3.0 MiB/s');
  t.equal(formatRate(-512, 'min'), '-512 B/min');
  t.equal(formatPercent(0.4123), '41%');
});
