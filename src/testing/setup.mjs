// What `qpsmtpd test` loads into the test processes (`node --import`): `import ... from 'qpsmtpd'`
// and `'qpsmtpd/testing'` resolve to this qpsmtpd, from any folder, and `.ts` files load without a
// build step. The project's own test/setup.mjs does the same for its sources. Plain JS: it runs
// before any TypeScript support exists. It works from the sources (src/testing/) and from the build
// (dist/src/testing/), and points both specifiers at the same flavour, so a plugin's `Plugin` is the
// class the loader checks against.
import { existsSync } from 'node:fs';
import { register } from 'node:module';
import { fileURLToPath } from 'node:url';
import { register as registerTypeScript } from 'tsx/esm/api';

const fromSources = existsSync(fileURLToPath(new URL('../index.ts', import.meta.url)));
const api = new URL(fromSources ? '../index.ts' : '../index.js', import.meta.url);
const testing = new URL(fromSources ? './index.ts' : './index.js', import.meta.url);

register(new URL('../plugins/api-specifier-hook.mjs', import.meta.url), { data: { apiUrl: api.href, testingUrl: testing.href } });
registerTypeScript();
globalThis[Symbol.for('qpsmtpd.typescript-loader')] = true;
globalThis[Symbol.for('qpsmtpd.api-resolver')] = true;
