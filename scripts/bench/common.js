'use strict';
// What every benchmark script shares: numeric flags and the median (the package's own, from
// dist/: one definition of it in the repository).
const { join } = require('node:path');
const { median } = require(join(__dirname, '..', '..', 'dist', 'stats', 'median.js'));

/** A reader of `--name N` flags from argv: flag('rounds', 5) is 5 unless --rounds is given. */
function flagReader(args) {
  return (name, fallback) => {
    const at = args.indexOf(`--${name}`);
    return at >= 0 ? Number(args[at + 1]) : fallback;
  };
}

module.exports = { flagReader, median };
