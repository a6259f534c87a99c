// Build dist/: every .ts under src/ and plugins/ transpiled to .js (types stripped, relative
// `.ts` imports pointed at `.js`), .mjs files copied. No bundling: dist/ mirrors the source tree.
// Type checking is `tsc`, run by `npm test`.
import { transform } from 'esbuild';
import { mkdir, readdir, readFile, rm, writeFile, copyFile } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const out = join(root, 'dist');
const RELATIVE_TS = /((?:from|import)\s*\(?\s*)(['"])(\.{1,2}\/[^'"]*?)\.ts\2/g;

async function* files(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

await rm(out, { recursive: true, force: true });
let count = 0;
for (const top of ['src', 'plugins']) {
  for await (const file of files(join(root, top))) {
    const target = join(out, relative(root, file));
    await mkdir(dirname(target), { recursive: true });
    if (file.endsWith('.mjs') || file.endsWith('.js')) {
      await copyFile(file, target);
    } else if (file.endsWith('.ts') && !file.endsWith('.d.ts')) {
      const source = await readFile(file, 'utf8');
      const result = await transform(source, { loader: 'ts', format: 'esm', target: 'node20', sourcefile: file, sourcemap: 'inline' });
      await writeFile(target.replace(/\.ts$/, '.js'), result.code.replace(RELATIVE_TS, '$1$2$3.js$2'));
    } else {
      continue;
    }
    count++;
  }
}
process.stdout.write(`built ${count} files into dist/\n`);
