/**
 * An error a plugin throws outside its hook (from a timer, an event handler, a promise nobody
 * awaits) is logged, and the daemon goes on serving.
 */
import assert from 'node:assert/strict';
import { after, test } from 'node:test';
import { ACCEPT_ALL_JS, SmtpClient, cleanupAll, makeRoot, startDaemon, waitFor } from '../helpers/daemon.ts';

after(cleanupAll);

const STRAY = `import { Plugin, DECLINED } from 'qpsmtpd';
export default class Stray extends Plugin {
  hook_connect() {
    setTimeout(() => { throw new Error('stray timer error'); }, 5);
    Promise.reject(new Error('stray rejection'));
    return DECLINED;
  }
}
`;

test('a stray throw and an unhandled rejection do not bring the daemon down', async () => {
  const root = makeRoot({
    config: { plugins: ['stray', 'accept_all'] },
    plugins: { 'stray.js': STRAY, 'accept_all.js': ACCEPT_ALL_JS },
  });
  const daemon = await startDaemon(root);
  const first = await SmtpClient.open(daemon.port);
  await waitFor(() => /stray timer error/.test(daemon.stderr) && /stray rejection/.test(daemon.stderr), 'both errors logged');
  assert.equal((await first.command('EHLO client.example')).code, 250, 'the session that triggered it goes on');
  const second = await SmtpClient.open(daemon.port);
  assert.equal((await second.command('NOOP')).code, 250, 'and new sessions are served');
  assert.match(daemon.stderr, /uncaught exception .*going on/);
  assert.match(daemon.stderr, /unhandled promise rejection .*going on/);
});
