// Loaded with `node --import ./test/setup.mjs`: the `qpsmtpd` specifier pointed at src/index.ts
// (as bin/qpsmtpd points it at dist/), then TypeScript for the tests and their plugins. The order
// matches the daemon's: the TypeScript loader runs first and asks ours.
import { register } from 'node:module';
import { register as registerTypeScript } from 'tsx/esm/api';

register(new URL('../src/plugins/api-specifier-hook.mjs', import.meta.url), {
  data: { apiUrl: new URL('../src/index.ts', import.meta.url).href },
});
registerTypeScript();
globalThis[Symbol.for('qpsmtpd.typescript-loader')] = true;
globalThis[Symbol.for('qpsmtpd.api-resolver')] = true;
