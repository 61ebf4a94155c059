// Each lib/<unit>.ts is covered by test/<unit>.ts (tap docs, structure.md); helpers map to nothing.
module.exports = (testFile) => {
  if (!testFile.startsWith('test/') || testFile.startsWith('test/helpers/')) return null;
  return testFile.replace(/^test\//, 'lib/');
};
