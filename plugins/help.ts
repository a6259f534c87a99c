/**
 * help: answer the HELP command from help files (qpsmtpd's `help`).
 *
 *   HELP            214 Try 'HELP COMMAND' for getting help on COMMAND
 *   HELP MAIL       214 with the lines of the help file for MAIL, or
 *                   214 No help available for SMTP command: mail
 *   HELP ../x       502 Invalid command name (only letters, digits and _ name a command)
 * With `not_implemented 1` every HELP gets `502 Not implemented.`
 *
 * Where the help text comes from, for HELP COMMAND (COMMAND lower-cased):
 *   1. a file given for that command in the arguments (`mail FILE`), else
 *   2. the file `COMMAND` in the help folder, if there is one.
 *
 * Arguments (pairs, config/plugins):
 *   help_dir PATH          the help folder. Without any arguments it is `help/`; given arguments
 *                          and no help_dir, there is none.
 *   not_implemented 0|1    1: answer every HELP with 502.
 *   COMMAND FILE           the help file for COMMAND. A FILE without `/` is looked for in `help/`;
 *                          one with `/` is taken as it is. A file that is missing is logged and
 *                          the pair ignored.
 *   loglevel N             the usual log level adjustment.
 * Relative paths (help/, help_dir, files) start from the folder that holds the config dir, which
 * is qpsmtpd's working directory and where its `help/` folder lives. File names may hold only
 * letters, digits, `_ . - /`. An odd number of arguments stops the plugin from loading.
 *
 * Help files are read when asked for (at most 64 KiB of each), so edits apply at once; each line
 * of the file is a line of the 214 reply. The core adds the enhanced status code.
 *
 * Config files: none (the help files). Hooks: help.
 *
 * Deliberate differences from qpsmtpd:
 *   - A file without `/` is found in `help/` (qpsmtpd looked for `help/help/FILE` and so never
 *     found it, a plain bug).
 *   - The settings belong to the instance (qpsmtpd kept them in a file-wide hash).
 *   - An odd number of arguments is a load error (qpsmtpd went on with a warning).
 */
import { existsSync } from 'node:fs';
import { open } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { Plugin, DONE, OK, LOGERROR, LOGWARN } from 'qpsmtpd';
import type { HookResult, PluginHost, Transaction } from 'qpsmtpd';

const MAX_FILE_BYTES = 64 * 1024;
const SAFE_PATH = /^[\w.\-/]+$/;

export default class Help extends Plugin {
  notImplemented = false;
  /** The help folder (absolute), if any. */
  helpDir: string | undefined;
  /** Help files (absolute) by lower-cased command. */
  readonly files = new Map<string, string>();

  register(qp: PluginHost, ...args: string[]): void {
    const root = dirname(qp.configDir);
    if (args.length % 2 !== 0) throw new Error(`help: arguments come in pairs, such as "help_dir ./help/" (got "${args.join(' ')}")`);
    if (args.length === 0) this.helpDir = resolve(root, 'help');
    for (let i = 0; i < args.length; i += 2) {
      const key = args[i]!;
      const value = args[i + 1]!;
      if (!/^\w+$/.test(key)) {
        this.log(LOGWARN, `Invalid argument for the 'help' plugin ${key}`);
        continue;
      }
      if (key === 'not_implemented') {
        this.notImplemented = !/^(0|no|false|off)?$/i.test(value.trim());
      } else if (key === 'loglevel') {
        // applied by the loader
      } else if (!SAFE_PATH.test(value)) {
        this.log(LOGERROR, `Invalid characters in filename for command ${key}`);
      } else if (key === 'help_dir') {
        this.helpDir = resolve(root, value);
      } else {
        const file = resolve(root, value.includes('/') ? value : `help/${value}`);
        if (existsSync(file)) this.files.set(key.toLowerCase(), file);
        else this.log(LOGWARN, `No help file for command '${key}'`);
      }
    }
  }

  async hook_help(_tx: Transaction, rest: string): Promise<HookResult> {
    if (this.notImplemented) {
      this.qp.respond(502, '5.5.1 Not implemented.');
      return DONE;
    }
    const word = rest.trim().split(/\s+/)[0] ?? '';
    if (word === '') return [OK, "Try 'HELP COMMAND' for getting help on COMMAND"];
    const command = word.toLowerCase();
    // Anything else could name a file outside the help folder ("HELP ../../etc/passwd").
    if (!/^\w+$/.test(command)) {
      this.qp.respond(502, '5.5.4 Invalid command name');
      return DONE;
    }
    const noHelp = `No help available for SMTP command: ${command}`;
    const file = this.files.get(command) ?? (this.helpDir !== undefined ? resolve(this.helpDir, command) : undefined);
    if (file === undefined || (!this.files.has(command) && !existsSync(file))) return [OK, noHelp];
    let text: string;
    try {
      text = await readStart(file);
    } catch (err) {
      this.log(LOGERROR, `failed to open help file for ${command}: ${err instanceof Error ? err.message : String(err)}`);
      return [OK, noHelp];
    }
    const lines = text.replace(/\r\n?/g, '\n').split('\n');
    while (lines.length > 0 && lines[lines.length - 1] === '') lines.pop();
    return [OK, lines.length > 0 ? lines : [noHelp]];
  }
}

/** The first MAX_FILE_BYTES of a file, as UTF-8. */
async function readStart(path: string): Promise<string> {
  const handle = await open(path, 'r');
  try {
    const buffer = Buffer.alloc(MAX_FILE_BYTES);
    let length = 0;
    while (length < buffer.length) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
    }
    return buffer.subarray(0, length).toString('utf8');
  } finally {
    await handle.close();
  }
}
