// Build dist/ with esbuild: bundled, with code splitting, because a daemon starts faster from a few
// files than from the ~100 modules of src/ (each ES module costs a read, a parse and a link).
//
// Entry points keep the paths of their sources, so every place that is looked up by path stays
// where it was: dist/src/cli.js (bin/qpsmtpd), dist/src/index.js ('qpsmtpd'), dist/src/testing/
// index.js ('qpsmtpd/testing'), dist/plugins/**.js (the bundled plugins, loaded by path), and the
// .mjs files, copied as they are. Code shared by several entries goes into chunks in
// dist/src/chunks/: one copy of every module, so a plugin's `Plugin` is the class the loader checks.
// A chunk sits at the same depth as src/<folder>/, so `new URL('../x', import.meta.url)` in a
// module of src/<folder>/ means the same file from a chunk; a module that needs a file beside itself
// must spell it as `../<folder>/file` (see src/plugins/import-module.ts).
//
// npm packages stay outside (node_modules); the bundled plugins' `'qpsmtpd'` is the API's source.
// Type checking is `tsc`, run by `npm test`. The build is made beside dist/ and swapped in at the
// end, so a daemon starting meanwhile never finds dist/ half written.
import { build } from 'esbuild';
import { copyFile, mkdir, readdir, readFile, rename, rm } from 'node:fs/promises';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { SOURCE_ENTRY_POINTS } from './entry-points.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const dist = join(root, 'dist');

async function* files(dir) {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    if (entry.isDirectory()) yield* files(path);
    else yield path;
  }
}

/** `export { a, b as c, type T } from './x.ts'` lines of src/index.ts: exported name -> its module. */
async function apiExportMap() {
  const index = join(root, 'src', 'index.ts');
  const map = new Map();
  for (const m of (await readFile(index, 'utf8')).matchAll(/export\s+(type\s+)?\{([^}]*)\}\s*from\s*'([^']+)'/g)) {
    if (m[1]) continue;
    for (const spec of m[2].split(',').map((x) => x.trim()).filter(Boolean)) {
      if (spec.startsWith('type ')) continue;
      const [local, exported = local] = spec.split(/\s+as\s+/);
      map.set(exported, { module: join(root, 'src', m[3]), local });
    }
  }
  return map;
}

/**
 * A bundled plugin's `import { Plugin, DENY } from 'qpsmtpd'` becomes imports from the modules that
 * define those names. Bundled through src/index.ts, every plugin would load every module the API
 * re-exports (esbuild splits by file, not by the names used): scanners, milter and stores for a
 * plugin that needs none of them. Names the map does not know stay on 'qpsmtpd', which is then the
 * API itself (src/index.ts, the same modules, one copy of each).
 */
function bundledPluginImports(exportsOf) {
  return {
    name: 'qpsmtpd-api',
    setup(b) {
      b.onResolve({ filter: /^qpsmtpd(\/testing)?$/ }, (args) => ({ path: join(root, 'src', args.path === 'qpsmtpd' ? 'index.ts' : 'testing/index.ts') }));
      b.onLoad({ filter: /[\\/]plugins[\\/].*\.ts$/ }, async (args) => {
        // The filter also matches src/plugins/: only the bundled plugins are rewritten.
        if (!args.path.startsWith(join(root, 'plugins'))) return undefined;
        const source = await readFile(args.path, 'utf8');
        const contents = source.replace(/import\s*\{([^}]*)\}\s*from\s*'qpsmtpd'\s*;?/g, (whole, specs) => {
          const byModule = new Map();
          const rest = [];
          for (const spec of specs.split(',').map((x) => x.trim()).filter(Boolean)) {
            const [name, alias = name] = spec.replace(/^type\s+/, '').split(/\s+as\s+/);
            const found = spec.startsWith('type ') ? undefined : exportsOf.get(name);
            if (found === undefined) rest.push(spec);
            else (byModule.get(found.module) ?? byModule.set(found.module, []).get(found.module)).push(`${found.local} as ${alias}`);
          }
          const lines = [...byModule].map(([module, names]) => `import { ${names.join(', ')} } from ${JSON.stringify(module)};`);
          if (rest.length) lines.push(`import { ${rest.join(', ')} } from 'qpsmtpd';`);
          // One line for the lot: the plugin's line numbers stay as they were for its source map.
          return lines.join(' ') + '\n'.repeat(whole.split('\n').length - 1);
        });
        return { contents, loader: 'ts', resolveDir: dirname(args.path) };
      });
    },
  };
}

const out = join(root, `.dist-building-${process.pid}`);
let count = 0;
try {
  const entryPoints = SOURCE_ENTRY_POINTS.map((p) => join(root, p));
  const copies = [];
  for (const top of ['src', 'plugins']) {
    for await (const file of files(join(root, top))) {
      if (file.endsWith('.mjs') || file.endsWith('.js')) copies.push(file);
      else if (top === 'plugins' && file.endsWith('.ts') && !file.endsWith('.d.ts')) entryPoints.push(file);
    }
  }
  const result = await build({
    entryPoints,
    outdir: out,
    outbase: root,
    bundle: true,
    splitting: true,
    format: 'esm',
    platform: 'node',
    target: 'node20',
    packages: 'external',
    plugins: [bundledPluginImports(await apiExportMap())],
    chunkNames: 'src/chunks/[name]-[hash]',
    // Source maps in files of their own: free unless node runs with --enable-source-maps.
    sourcemap: 'linked',
    // Not minified, so classes and functions keep their names (plugins and logs read
    // `constructor.name`) without keepNames' extra wrapping.
    keepNames: false,
    logLevel: 'warning',
    metafile: true,
  });
  count = Object.keys(result.metafile.outputs).filter((f) => f.endsWith('.js')).length;
  for (const file of copies) {
    const target = join(out, relative(root, file));
    await mkdir(dirname(target), { recursive: true });
    await copyFile(file, target);
    count++;
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
