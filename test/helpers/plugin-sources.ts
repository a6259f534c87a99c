/**
 * Small plugins for tests, as source text to drop into a test app's plugins/ folder:
 * `testApp({ plugins: { ...TEST_PLUGINS }, config: { plugins: ['answer rcpt OK', 'accept_all'] } })`.
 */

/** `answer HOOK CODE [message words]`: answers CODE (a name) on HOOK, with the message if given. */
const answer = `import { Plugin, OK, DENY, DENYSOFT, DENY_DISCONNECT, DENYSOFT_DISCONNECT, DECLINED, DONE } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
const CODES: Record<string, number> = { OK, DENY, DENYSOFT, DENY_DISCONNECT, DENYSOFT_DISCONNECT, DECLINED, DONE };
export default class Answer extends Plugin {
  register(_qp: PluginHost, hook: string, code: string, ...message: string[]) {
    const value = CODES[code];
    if (value === undefined) throw new Error('unknown code ' + code);
    // DONE means "I replied myself" where a hook makes a reply; elsewhere it is just a code.
    const replies = !['pre-connection', 'data_headers_end', 'data_post_headers'].includes(hook);
    this.registerHook(hook, function (this: Plugin) {
      if (value === DONE && replies) this.qp.respond(hook === 'connect' ? 220 : 299, hook === 'connect' ? 'custom greeting' : 'plugin answered ' + hook);
      return message.length > 0 ? [value as 901, message.join(' ')] : (value as 901);
    });
  }
}
`;

/** `accept_all`: OK for every recipient. */
const acceptAll = `import { Plugin, OK } from 'qpsmtpd';
export default class AcceptAll extends Plugin {
  hook_rcpt() { return OK; }
}
`;

/** `queue_capture DIR`: stores each message as DIR/<n>.eml and answers OK with the file name. */
const queueCapture = `import { Plugin, OK } from 'qpsmtpd';
import type { PluginHost, Transaction } from 'qpsmtpd';
import { createWriteStream, mkdirSync } from 'node:fs';
import { pipeline } from 'node:stream/promises';
import { join } from 'node:path';
export default class QueueCapture extends Plugin {
  dir = '';
  count = 0;
  register(_qp: PluginHost, dir: string) { this.dir = dir; mkdirSync(dir, { recursive: true }); }
  async hook_queue(tx: Transaction) {
    const file = join(this.dir, (++this.count) + '.eml');
    await pipeline(tx.bodyStream(), createWriteStream(file));
    return [OK, 'Queued! ' + file];
  }
}
`;

/** \`throws HOOK\`: throws on HOOK. \`badreturn HOOK\`: returns a string on HOOK. */
const throws = `import { Plugin } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
export default class Throws extends Plugin {
  register(_qp: PluginHost, hook: string, how = 'throw') {
    this.registerHook(hook, () => {
      if (how === 'reject') return Promise.reject(new Error('async boom on ' + hook));
      if (how === 'string') return 'not a code' as never;
      throw new Error('boom on ' + hook);
    });
  }
}
`;

/** `slow HOOK MS`: answers OK after MS milliseconds, noting whether its AbortSignal fired. */
const slow = `import { Plugin, OK } from 'qpsmtpd';
import type { PluginHost } from 'qpsmtpd';
export const aborted: string[] = [];
export default class Slow extends Plugin {
  register(_qp: PluginHost, hook: string, ms: string) {
    this.registerHook(hook, async function (this: Plugin) {
      const signal = this.signal;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Number(ms));
        signal.addEventListener('abort', () => { clearTimeout(timer); (globalThis as any).__slowAborted = ((globalThis as any).__slowAborted ?? 0) + 1; resolve(); });
      });
      return OK;
    });
  }
}
`;

export const TEST_PLUGINS: Readonly<Record<string, string>> = {
  'answer.ts': answer,
  'accept_all.ts': acceptAll,
  'queue_capture.ts': queueCapture,
  'throws.ts': throws,
  'slow.ts': slow,
};
