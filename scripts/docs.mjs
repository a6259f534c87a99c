// `npm run docs`: writes the generated parts of the documentation (see scripts/docs.ts);
// `node scripts/docs.mjs --check` only says which are out of date (exit 1).
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { register } from 'tsx/esm/api';

register();
const root = fileURLToPath(new URL('..', import.meta.url));
const { generate, outdated } = await import('./docs.ts');
if (process.argv.includes('--check')) {
  const stale = outdated(root);
  for (const path of stale) process.stderr.write(`${path} is out of date: run npm run docs\n`);
  process.exit(stale.length > 0 ? 1 : 0);
}
for (const { path, content } of generate(root)) {
  writeFileSync(join(root, path), content);
  process.stdout.write(`wrote ${path}\n`);
}
