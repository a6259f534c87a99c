// Module resolution hook (node:module register), plain JS because it runs on the loader thread
// before any TypeScript support exists:
// - `import ... from 'qpsmtpd'` in a plugin resolves to the running daemon's own API, from any
//   folder, with nothing installed there; `qpsmtpd/testing` (the plugin author's test kit) to the
//   testing module beside that API (src/testing/index.ts, or dist/src/testing/index.js);
// - a plugin file outside node_modules is an ES module, as the plugin contract says, even where
//   no package.json says "type": "module" (a plugin folder like /srv/mail/plugins): for `.ts`
//   always, for `.js` when it uses import/export (Node's own syntax detection, which the
//   TypeScript loader would otherwise override).
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

let apiUrl;
let testingUrl;
const declaredType = new Map();

export function initialize(data) {
  apiUrl = data.apiUrl;
  testingUrl = data.testingUrl ?? apiUrl.replace(/\/index\.(ts|js)$/, '/testing/index.$1');
}

/** The "type" of the nearest package.json above `dir`, or undefined when none declares one. */
function packageType(dir) {
  if (declaredType.has(dir)) return declaredType.get(dir);
  let type;
  try {
    const pkg = JSON.parse(readFileSync(join(dir, 'package.json'), 'utf8'));
    type = typeof pkg.type === 'string' ? pkg.type : null;
  } catch {
    const parent = dirname(dir);
    type = parent === dir ? null : packageType(parent);
  }
  declaredType.set(dir, type);
  return type;
}

function usesModuleSyntax(path) {
  try {
    return /^\s*(import\s*[\w{*'"]|export\s)/m.test(readFileSync(path, 'utf8'));
  } catch {
    return false;
  }
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'qpsmtpd') return { url: apiUrl, format: apiUrl.endsWith('.ts') ? 'module' : undefined, shortCircuit: true };
  if (specifier === 'qpsmtpd/testing') return { url: testingUrl, format: testingUrl.endsWith('.ts') ? 'module' : undefined, shortCircuit: true };
  const result = await nextResolve(specifier, context);
  const { url, format } = result;
  if (!url.startsWith('file:') || url.includes('/node_modules/') || format === 'module') return result;
  if (/\.ts$/.test(url) && (format === undefined || format === null || format === 'commonjs')) {
    return { ...result, format: 'module' };
  }
  if (/\.js$/.test(url) && format !== 'builtin') {
    const path = fileURLToPath(url);
    if (!packageType(dirname(path)) && usesModuleSyntax(path)) return { ...result, format: 'module' };
  }
  return result;
}
