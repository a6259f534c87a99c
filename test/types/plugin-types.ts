/**
 * Type tests, checked by `tsc` (part of `npm test`): what the plugin API accepts and refuses at
 * compile time. Every `@ts-expect-error` line must be an error, or tsc fails.
 */
import { Plugin, OK, DENY, DECLINED, DENYSOFT, DONE } from '../../src/index.ts';
import type { Address, EsmtpParams, PluginHost, Transaction } from '../../src/index.ts';

export class Good extends Plugin {
  hook_rcpt(_tx: Transaction, rcpt: Address) {
    if (rcpt.address === 'hans@meine.do.main') return [DENY, `Mail to ${rcpt} not accepted here`];
    return DECLINED;
  }
  async hook_mail(_tx: Transaction, sender: Address, params: EsmtpParams) {
    return params['size'] === undefined && sender.isNull ? [DENYSOFT, ['two', 'lines']] : OK;
  }
  hook_mail_pre(_tx: Transaction, address: string) {
    return [OK, `<${address}>`] as const;
  }
  hook_config(_tx: Transaction, name: string) {
    return name === 'me' ? [OK, 'mx.example'] : DECLINED;
  }
  hook_quit() {
    this.qp.respond(221, 'bye');
    return DONE;
  }
  hook_unrecognized_command(_tx: Transaction, verb: string, rest: string) {
    return verb === 'xyzzy' && rest === '' ? DONE : undefined;
  }
  register(_qp: PluginHost, path?: string) {
    this.registerHook('rcpt', function (this: Plugin, _tx, rcpt) {
      return rcpt.host === path ? OK : DECLINED;
    });
    this.registerHook('helo', 'hook_quit', { first: true });
  }
}

export class WrongArgument extends Plugin {
  // @ts-expect-error: rcpt is an Address, not a string
  hook_rcpt(_tx: Transaction, rcpt: string) {
    return rcpt ? OK : DECLINED;
  }
}

export class WrongVrfyArgument extends Plugin {
  // @ts-expect-error: the VRFY argument is a string
  hook_vrfy(_tx: Transaction, address: Address) {
    return address ? OK : DECLINED;
  }
}

export class WrongReturn extends Plugin {
  // @ts-expect-error: a string is not a return code
  hook_noop() {
    return 'yes';
  }
}

export class WrongMessage extends Plugin {
  // @ts-expect-error: a message is a string or string array
  hook_noop() {
    return [DENY, 5];
  }
}

export class AsyncConfig extends Plugin {
  // @ts-expect-error: the config hook is synchronous
  async hook_config() {
    return DECLINED;
  }
}

export class WrongRegisteredHandler extends Plugin {
  register() {
    // @ts-expect-error: a registered rcpt handler gets an Address, not a number
    this.registerHook('rcpt', (_tx: Transaction, rcpt: number) => (rcpt ? OK : DECLINED));
    // @ts-expect-error: no such hook
    this.registerHook('rctp', 'x');
  }
}
