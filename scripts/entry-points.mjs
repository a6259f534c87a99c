// The modules of src/ that scripts/build.mjs keeps as entry points of dist/ (every bundled plugin
// is one too): the places other code opens by path. The rest of src/ may land in a chunk of
// dist/src/chunks/; test/architecture.test.ts holds such modules to the rule that comes with it.
export const SOURCE_ENTRY_POINTS = [
  'src/cli.ts',
  'src/index.ts',
  'src/testing/index.ts',
  // bench/session-cpu.mjs and bench/plugin-cost.mjs drive the daemon in-process
  'src/app.ts',
  'src/testing/conn.ts',
];
