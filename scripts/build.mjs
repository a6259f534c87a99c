// Build dist/: every .ts under src/ and plugins/ transpiled to .js (types stripped, relative
// `.ts` imports pointed at `.js`, the bundled plugins' `'qpsmtpd'` pointed at dist/src/index.js),
// .mjs files copied. No bundling: dist/ mirrors the source tree. Type checking is `tsc`, run by
// `npm test`. The build is made beside dist/ and swapped in at the end, so a daemon starting
// meanwhile never finds dist/ half written.
import { transform } from 'esbuild';
import { copyFile, mkdir, readdir, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { basename, dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');
const QPSMTPD_IMPORT = /((?:from|import)\s*\(?\s*)(['"])qpsmtpd\2/g;
const RELATIVE_TS = /((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*?)\.ts\2/g;

async function* files(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

/** Write one source file's build under `out`; false for files that are not part of it. */
async function buildFile(file, top, out) {
  const target = join(out, relative(root, file));
  await mkdir(dirname(target), { recursive: true });
  if (file.endsWith('.mjs') || file.endsWith('.js')) {
    await copyFile(file, target);
    return true;
  }
  if (!file.endsWith('.ts') || file.endsWith('.d.ts')) return false;
  const source = await readFile(file, 'utf8');
  // Source maps in files of their own: free unless node runs with --enable-source-maps.
  const result = await transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: file, sourcemap: 'external' });
  let code = result.code.replace(RELATIVE_TS, '$1$2$3.js$2');
  // A bundled plugin reaches the API by a relative path: no resolver hook needed to start.
  if (top === 'plugins') {
    const api = relative(dirname(target), join(out, 'src', 'index.js')).replace(/\\/g, '/');
    code = code.replace(QPSMTPD_IMPORT, `$1$2${api.startsWith('.') ? api : './' + api}$2`);
  }
  const js = target.replace(/\.ts$/, '.js');
  await writeFile(js, `${code}//# sourceMappingURL=${basename(js)}.map\n`);
  await writeFile(`${js}.map`, result.map);
  return true;
}

const out = join(root, `.dist-building-${process.pid}`);
let count = 0;
try {
  for (const top of ['src', 'plugins']) {
    for await (const file of files(join(root, top))) if (await buildFile(file, top, out)) count++;
  }
} catch (err) {
  await rm(out, { recursive: true, force: true });
  throw err;
}
const old = join(root, `.dist-old-${process.pid}`);
await rename(dist, old).catch((err) => {
  if (err.code !== 'ENOENT') throw err;
});
await rename(out, dist);
await rm(old, { recursive: true, force: true });
process.stdout.write(`built ${count} files into dist/\n`);
