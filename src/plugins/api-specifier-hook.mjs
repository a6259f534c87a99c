// Module resolution hook (node:module register), plain JS because it runs on the loader thread
// before any TypeScript support exists:
// - `import ... from 'qpsmtpd'` in a plugin resolves to the running daemon's own API, from any
//   folder, with nothing installed there;
// - a `.ts` file outside node_modules is an ES module even where no package.json says
//   "type": "module" (a plugin folder like /srv/mail/plugins), as the plugin contract requires.
let apiUrl;

export function initialize(data) {
  apiUrl = data.apiUrl;
}

export async function resolve(specifier, context, nextResolve) {
  if (specifier === 'qpsmtpd') return { url: apiUrl, format: apiUrl.endsWith('.ts') ? 'module' : undefined, shortCircuit: true };
  const result = await nextResolve(specifier, context);
  if (
    result.url.startsWith('file:') &&
    /\.ts$/.test(result.url) &&
    !result.url.includes('/node_modules/') &&
    (result.format === undefined || result.format === null || result.format === 'commonjs')
  ) {
    return { ...result, format: 'module' };
  }
  return result;
}
