/**
 * THE reply table: for every hook that answers the client, what each return code replies and what
 * the session does next; and the core's own replies. No other code picks reply codes.
 *
 * Codes and texts follow qpsmtpd 1.00 (lib/Qpsmtpd/SMTP.pm) with the changes in hooks.md;
 * enhanced status codes (RFC 3463) are added everywhere except the greeting and HELO/EHLO.
 */
import { DECLINED, DENY, DENYSOFT, DENYSOFT_DISCONNECT, DENY_DISCONNECT, DONE, OK } from '../hooks/codes.ts';
import type { HookName } from '../hooks/hook-map.ts';
import { FAULT, type HookOutcome } from '../hooks/runner.ts';
import { makeReply, type Reply } from '../protocol/reply.ts';

/** Values the reply texts may use; the session fills in what the command knows. */
export interface ReplyVars {
  readonly me: string;
  /** The client as `name [ip]`, or `[ip]` when its name is not known. */
  readonly client: string;
  /** `<user@host>` of the command's address. */
  readonly address?: string;
  readonly mechanism?: string;
  readonly user?: string;
  /** The full 220 greeting line. */
  readonly greeting?: string;
  /** The EHLO capability lines (after the first). */
  readonly capabilities?: readonly string[];
  readonly helpLines?: readonly string[];
}

type Text = string | ((v: ReplyVars) => string | readonly string[]);

interface Row {
  readonly code: number;
  readonly enhanced: string | null;
  readonly text: Text;
  /** Close the connection after the reply. */
  readonly close?: boolean;
  /** Drop the transaction after the reply. */
  readonly reset?: boolean;
  /** The command goes ahead (sets the sender, adds the recipient, greets, ...). */
  readonly accept?: boolean;
  /** The text is always ours, whatever message the plugin gave. */
  readonly fixedText?: boolean;
}

/** No reply now: the command goes on (e.g. DATA checks the sequence, then answers 354). */
const PROCEED = 'proceed' as const;
/** No reply: the plugin answered itself (DONE) or the hook's result is ignored. */
const SILENT = 'silent' as const;
type Action = Row | typeof PROCEED | typeof SILENT;

type Column = 'OK' | 'DENY' | 'DENYSOFT' | 'DENY_DISCONNECT' | 'DENYSOFT_DISCONNECT' | 'DECLINED' | 'DONE' | 'FAULT';
type HookRows = Partial<Record<Column, Action>> & { readonly else: Action };

/** Effects a row may carry beyond its reply. */
type Effects = Pick<Row, 'close' | 'reset' | 'accept' | 'fixedText'>;
const row = (code: number, enhanced: string | null, text: Text, effects: Effects = {}): Row => ({ code, enhanced, text, ...effects });
const CLOSE = { close: true } as const;
const RESET = { reset: true } as const;

/** The temporary failure for a plugin that threw or answered nonsense (hooks.md). */
const FAULT_ROW = row(451, '4.3.0', 'Temporary failure, please try again later');

const HELLO_ROWS = (success: Row): HookRows => ({
  DENY: row(550, '5.7.1', 'Access denied'),
  DENYSOFT: row(450, '4.7.1', 'Access temporarily denied'),
  DENY_DISCONNECT: row(550, '5.7.1', 'Access denied', CLOSE),
  DENYSOFT_DISCONNECT: row(421, '4.7.1', 'Access temporarily denied', CLOSE),
  DONE: SILENT,
  FAULT: FAULT_ROW,
  else: success,
});

const AUTH_ROWS: HookRows = {
  OK: row(235, '2.7.0', (v) => `${v.mechanism} authentication successful for ${v.user}`, { accept: true, fixedText: true }),
  DENY: row(535, '5.7.8', (v) => `${v.mechanism} authentication failed for ${v.user}`),
  DENYSOFT: row(454, '4.7.0', 'Temporary authentication failure'),
  DENY_DISCONNECT: row(535, '5.7.8', (v) => `${v.mechanism} authentication failed for ${v.user}`, CLOSE),
  DENYSOFT_DISCONNECT: row(421, '4.7.0', 'Temporary authentication failure', CLOSE),
  DONE: SILENT,
  FAULT: row(454, '4.3.0', 'Temporary authentication failure'),
  else: row(535, '5.7.8', (v) => `${v.mechanism} authentication failed for ${v.user}`, { fixedText: true }),
};

/** The hooks that answer the client, and how. Hooks not listed make no reply. */
const TABLE = {
  'pre-connection': {
    DENY: row(550, '5.7.1', 'Sorry, service not available for you', CLOSE),
    DENY_DISCONNECT: row(550, '5.7.1', 'Sorry, service not available for you', CLOSE),
    DENYSOFT: row(451, '4.7.1', 'Sorry, try again later', CLOSE),
    DENYSOFT_DISCONNECT: row(451, '4.7.1', 'Sorry, try again later', CLOSE),
    FAULT: row(451, '4.3.0', 'Temporary failure, please try again later', CLOSE),
    else: PROCEED,
  },
  connect: {
    DENY: row(550, '5.7.1', 'Connection from you denied, bye bye.', CLOSE),
    DENY_DISCONNECT: row(550, '5.7.1', 'Connection from you denied, bye bye.', CLOSE),
    DENYSOFT: row(450, '4.7.1', 'Connection from you temporarily denied, bye bye.', CLOSE),
    DENYSOFT_DISCONNECT: row(450, '4.7.1', 'Connection from you temporarily denied, bye bye.', CLOSE),
    DONE: row(0, null, '', { accept: true }),
    FAULT: row(451, '4.3.0', 'Temporary failure, please try again later', CLOSE),
    else: row(220, null, (v) => v.greeting ?? `${v.me} ESMTP`, { accept: true, fixedText: true }),
  },
  helo: HELLO_ROWS(
    row(250, null, (v) => `${v.me} Hi ${v.client}; I am so happy to meet you.`, { accept: true, fixedText: true }),
  ),
  ehlo: HELLO_ROWS(
    row(250, null, (v) => [`${v.me} Hi ${v.client}`, ...(v.capabilities ?? [])], { accept: true, fixedText: true }),
  ),
  auth: AUTH_ROWS,
  'auth-plain': AUTH_ROWS,
  'auth-login': AUTH_ROWS,
  'auth-cram-md5': AUTH_ROWS,
  mail: {
    DENY: row(550, '5.7.1', (v) => `${v.address}, denied`),
    DENYSOFT: row(450, '4.7.1', (v) => `${v.address}, temporarily denied`),
    DENY_DISCONNECT: row(550, '5.7.1', (v) => `${v.address}, denied`, CLOSE),
    DENYSOFT_DISCONNECT: row(421, '4.7.1', (v) => `${v.address}, temporarily denied`, CLOSE),
    DONE: SILENT,
    FAULT: FAULT_ROW,
    else: row(250, '2.1.0', (v) => `${v.address}, sender OK - how exciting to get mail from you!`, { accept: true }),
  },
  rcpt: {
    OK: row(250, '2.1.5', (v) => `${v.address}, recipient ok`, { accept: true }),
    DENY: row(550, '5.7.1', 'relaying denied'),
    DENYSOFT: row(450, '4.7.1', 'relaying denied'),
    DENY_DISCONNECT: row(550, '5.7.1', 'delivery denied', CLOSE),
    DENYSOFT_DISCONNECT: row(421, '4.7.1', 'delivery denied', CLOSE),
    DONE: SILENT,
    FAULT: FAULT_ROW,
    // Nobody said yes: refuse, temporarily, so that nobody relays by accident.
    else: row(450, '4.7.1', 'No plugin decided if relaying is allowed', { fixedText: true }),
  },
  data: {
    DENY: row(554, '5.7.1', 'Message denied', RESET),
    DENY_DISCONNECT: row(554, '5.7.1', 'Message denied', CLOSE),
    DENYSOFT: row(451, '4.7.1', 'Message denied temporarily', RESET),
    DENYSOFT_DISCONNECT: row(451, '4.7.1', 'Message denied temporarily', CLOSE),
    DONE: SILENT,
    FAULT: FAULT_ROW,
    else: PROCEED,
  },
  data_headers_end: {
    DENY_DISCONNECT: row(554, '5.7.1', 'Message denied', CLOSE),
    DENYSOFT_DISCONNECT: row(421, '4.7.1', 'Message denied temporarily', CLOSE),
    FAULT: row(451, '4.3.0', 'Temporary failure, please try again later', RESET),
    else: PROCEED,
  },
  data_post_headers: {
    FAULT: row(451, '4.3.0', 'Temporary failure, please try again later', RESET),
    else: PROCEED,
  },
  data_post: {
    DENY: row(552, '5.7.1', 'Message denied', RESET),
    DENYSOFT: row(452, '4.7.1', 'Message denied temporarily', RESET),
    DENY_DISCONNECT: row(552, '5.7.1', 'Message denied', CLOSE),
    DENYSOFT_DISCONNECT: row(452, '4.7.1', 'Message denied temporarily', CLOSE),
    DONE: row(0, null, '', RESET),
    FAULT: row(451, '4.3.0', 'Temporary failure, please try again later', RESET),
    else: PROCEED,
  },
  queue_pre: {
    DONE: row(0, null, '', RESET),
    FAULT: row(451, '4.3.0', 'Temporary failure, please try again later', RESET),
    else: PROCEED,
  },
  queue: {
    OK: row(250, '2.0.0', 'Queued', RESET),
    DENY: row(552, '5.7.1', 'Message denied', RESET),
    DENYSOFT: row(452, '4.3.0', 'Message denied temporarily', RESET),
    DONE: row(0, null, '', RESET),
    FAULT: row(451, '4.3.0', 'Temporary failure, please try again later', RESET),
    else: row(451, '4.3.0', 'Queuing declined or disabled; try again later', { reset: true, fixedText: true }),
  },
  vrfy: {
    OK: row(250, '2.1.5', 'User OK'),
    DENY: row(554, '5.7.1', 'Access Denied'),
    DONE: SILENT,
    FAULT: FAULT_ROW,
    else: row(252, '2.1.5', "Just try sending a mail and we'll see how it turns out ...", { fixedText: true }),
  },
  noop: {
    DENY: row(500, '5.5.1', 'Stop wasting my time.'),
    DENY_DISCONNECT: row(500, '5.5.1', 'Stop wasting my time.', CLOSE),
    DONE: SILENT,
    FAULT: FAULT_ROW,
    else: row(250, '2.0.0', 'OK', { fixedText: true }),
  },
  help: {
    DENY: row(500, '5.5.2', 'Syntax error, command not recognized'),
    DONE: SILENT,
    FAULT: FAULT_ROW,
    else: row(214, '2.0.0', (v) => v.helpLines ?? ['This is qpsmtpd']),
  },
  quit: {
    DONE: row(0, null, '', CLOSE),
    // A plugin that wants its own goodbye answers with respond() and DONE (quit_fortune does).
    else: row(221, '2.0.0', (v) => `${v.me} closing connection. Have a wonderful day.`, { close: true, fixedText: true }),
  },
  unrecognized_command: {
    DENY: row(500, '5.5.1', 'Unrecognized command'),
    DENY_DISCONNECT: row(521, '5.5.1', 'Unrecognized command', CLOSE),
    DONE: SILENT,
    FAULT: FAULT_ROW,
    else: row(500, '5.5.1', 'Unrecognized command', { fixedText: true }),
  },
} satisfies Partial<Record<HookName, HookRows>>;

export type ReplyingHook = keyof typeof TABLE;

/** What the session does with a hook's outcome. */
export interface Decision {
  /** The reply to send now, or null. */
  readonly reply: Reply | null;
  /** The command goes ahead. */
  readonly accept: boolean;
  readonly close: boolean;
  readonly reset: boolean;
}

const SILENT_DECISION: Decision = Object.freeze({ reply: null, accept: false, close: false, reset: false });
const PROCEED_DECISION: Decision = Object.freeze({ reply: null, accept: true, close: false, reset: false });

function columnOf(code: number): Column {
  switch (code) {
    case OK:
      return 'OK';
    case DENY:
      return 'DENY';
    case DENYSOFT:
      return 'DENYSOFT';
    case DENY_DISCONNECT:
      return 'DENY_DISCONNECT';
    case DENYSOFT_DISCONNECT:
      return 'DENYSOFT_DISCONNECT';
    case DONE:
      return 'DONE';
    case FAULT:
      return 'FAULT';
    case DECLINED:
    default:
      return 'DECLINED';
  }
}

/** Look up what a hook's outcome means for the client. */
export function decide(hook: ReplyingHook, outcome: HookOutcome, vars: ReplyVars | (() => ReplyVars)): Decision {
  const rows: HookRows = TABLE[hook];
  const action = rows[columnOf(outcome.code)] ?? rows.else;
  if (action === SILENT) return SILENT_DECISION;
  if (action === PROCEED) return PROCEED_DECISION;
  let reply: Reply | null = null;
  if (action.code !== 0) {
    const own = !action.fixedText && outcome.message !== undefined && outcome.message.length > 0;
    const text = own ? outcome.message! : resolveText(action.text, vars);
    reply = makeReply(action.code, action.enhanced, text);
  }
  return { reply, accept: action.accept === true, close: action.close === true, reset: action.reset === true };
}

/** Vars may come as a function: most replies are fixed text, and then they are never built. */
function resolveText(text: Text, vars: ReplyVars | (() => ReplyVars)): string | readonly string[] {
  if (typeof text !== 'function') return text;
  return text(typeof vars === 'function' ? vars() : vars);
}

/** The core's own replies: protocol errors and steps that no hook decides. */
export const CORE = {
  rsetOk: () => makeReply(250, '2.0.0', 'OK'),
  /** A plugin's parser failed: the same answer as any plugin fault (hooks.md). */
  pluginFault: () => makeReply(451, '4.3.0', 'Temporary failure, please try again later'),
  startData: () => makeReply(354, null, 'go ahead'),
  contentBeforeGo: () => makeReply(554, '5.5.0', 'Message content sent before the 354 reply: refused (RFC 2920)'),
  syntaxError: () => makeReply(500, '5.5.2', 'Syntax error, command unrecognized'),
  lineTooLong: () => makeReply(500, '5.5.6', 'Line too long'),
  bareLineEnd: () => makeReply(500, '5.5.2', 'Line must end with CRLF; bare CR or LF refused'),
  notUtf8: () => makeReply(500, '5.6.7', 'Command is not valid UTF-8'),
  notImplemented: () => makeReply(502, '5.5.1', 'Command not implemented'),
  paramSyntax: (message: string) => makeReply(501, '5.5.4', message),
  helloSyntax: (verb: string, message: string) => makeReply(501, '5.5.4', `${verb} ${message}`),
  badSender: (reason: string) => makeReply(501, '5.1.7', `could not parse your mail from command: ${reason}`),
  badRecipient: (reason: string) => makeReply(501, '5.1.3', `could not parse recipient: ${reason}`),
  nullRecipient: () => makeReply(501, '5.1.3', 'could not parse recipient: the null address is no recipient'),
  needHello: () => makeReply(503, '5.5.1', 'please say hello first ...'),
  needMail: () => makeReply(503, '5.5.1', 'Use MAIL before RCPT'),
  dataNeedsMail: () => makeReply(503, '5.5.1', 'MAIL first'),
  dataNeedsRcpt: () => makeReply(503, '5.5.1', 'RCPT first'),
  tooManyRecipients: () => makeReply(452, '4.5.3', 'Too many recipients'),
  spoolFull: () => makeReply(452, '4.3.1', 'Insufficient system storage, try again later'),
  spoolFailed: () => makeReply(451, '4.3.0', 'Temporary failure storing the message, try again later'),
  headerTooBig: () => makeReply(552, '5.6.0', 'Header block too large'),
  tooManyConnections: () => makeReply(421, '4.7.0', 'Too many connections, try again later'),
  needSmtputf8: () => makeReply(553, '5.6.7', 'This address needs SMTPUTF8: say MAIL FROM:<...> SMTPUTF8'),
  badBody: () => makeReply(501, '5.5.4', 'BODY must be 7BIT or 8BITMIME'),
  sizeTooBig: (limit: number) => makeReply(552, '5.3.4', `Message size exceeds fixed maximum message size (${limit} bytes)`),
  messageTooBig: () => makeReply(552, '5.3.4', 'Message too big!'),
  bareLineEndInData: () =>
    makeReply(550, '5.5.2', 'Message contains a bare CR or LF; lines must end with CRLF (see https://www.postfix.org/smtp-smuggling.html)'),
  timeout: () => makeReply(421, '4.4.2', 'Timeout - closing connection'),
  shuttingDown: () => makeReply(421, '4.3.2', 'Service shutting down, please try again later'),
  internalError: () => makeReply(421, '4.3.0', 'Internal error - try again later'),
  authAlready: () => makeReply(503, '5.5.1', 'but you already said AUTH ...'),
  authAfterHelo: () => makeReply(503, '5.5.1', 'AUTH not defined for HELO'),
  authInTransaction: () => makeReply(503, '5.5.1', 'AUTH not permitted during a mail transaction'),
  authNeedsTls: () => makeReply(530, '5.7.0', 'Must issue a STARTTLS command first'),
  authUnknownMechanism: (mechanism: string) => makeReply(504, '5.5.4', `Unimplemented authentication mechanism: ${mechanism}`),
  authCancelled: () => makeReply(501, '5.0.0', 'Authentication canceled'),
  authBadEncoding: () => makeReply(501, '5.5.2', 'Cannot decode the response'),
  authTooManyFailures: () => makeReply(421, '4.7.0', 'Too many authentication failures, closing connection'),
  authChallenge: (base64: string) => makeReply(334, null, base64),
} as const;

// ---- a readable form of the table, for docs/plugins.md and the plugin scaffold -----------------

/** The results a plugin can give, as the table's columns name them, in the order docs list them. */
const COLUMNS: readonly Column[] = ['OK', 'DENY', 'DENYSOFT', 'DENY_DISCONNECT', 'DENYSOFT_DISCONNECT', 'DONE', 'DECLINED', 'FAULT'];

/** What one or more results of a hook make the daemon do, in words. */
export interface ReplyRule {
  /** The results covered: code names, and `FAULT` (the plugin threw or returned no code). */
  readonly results: readonly string[];
  /** The reply, `550 5.7.1 relaying denied`, with `<me>`, `<client>`, `<address>` ... for the variable parts; null: the core sends none. */
  readonly reply: string | null;
  /** A message the plugin gave replaces the reply's text. */
  readonly pluginText: boolean;
  /** The command goes ahead (the sender is set, the recipient added, the client greeted ...). */
  readonly accept: boolean;
  /** No reply yet: the command goes on (DATA checks the sequence, the message goes to the queue ...). */
  readonly proceed: boolean;
  readonly close: boolean;
  /** The transaction is dropped. */
  readonly reset: boolean;
}

const PLACEHOLDERS: ReplyVars = {
  me: '<me>',
  client: '<client>',
  address: '<address>',
  mechanism: '<mechanism>',
  user: '<user>',
  greeting: '<greeting>',
  capabilities: ['<capabilities>'],
};

/** The hooks that answer the client themselves (their result picks a reply from the table). */
export const REPLYING_HOOKS: readonly ReplyingHook[] = Object.keys(TABLE) as ReplyingHook[];

/**
 * The table's rows for a hook, in words: one rule per distinct outcome, results that do the same
 * thing grouped. Undefined for a hook whose result makes no reply.
 */
export function describeReplies(hook: HookName): readonly ReplyRule[] | undefined {
  if (!Object.hasOwn(TABLE, hook)) return undefined;
  const rows: HookRows = TABLE[hook as ReplyingHook];
  const rules: { key: string; results: string[]; rule: Omit<ReplyRule, 'results'> }[] = [];
  for (const column of COLUMNS) {
    const action = rows[column] ?? rows.else;
    const described = ruleOf(action);
    // A plugin that failed gave no message to use.
    const rule = column === 'FAULT' ? { ...described, pluginText: false } : described;
    const key = JSON.stringify(rule);
    const same = rules.find((r) => r.key === key);
    if (same) same.results.push(column);
    else rules.push({ key, results: [column], rule });
  }
  return rules.map((r) => ({ results: r.results, ...r.rule }));
}

function ruleOf(action: Action): Omit<ReplyRule, 'results'> {
  const base = { reply: null, pluginText: false, accept: false, proceed: false, close: false, reset: false };
  if (action === SILENT) return base;
  if (action === PROCEED) return { ...base, accept: true, proceed: true };
  const text = resolveText(action.text, PLACEHOLDERS);
  const lines = typeof text === 'string' ? [text] : [...text];
  const reply = action.code === 0 ? null : [String(action.code), action.enhanced, lines.join(' / ')].filter((p) => p !== null && p !== '').join(' ');
  return {
    ...base,
    reply,
    pluginText: action.code !== 0 && action.fixedText !== true,
    accept: action.accept === true,
    close: action.close === true,
    reset: action.reset === true,
  };
}

/**
 * Hooks whose `[OK, value]` hands the core a value instead of choosing a reply, and what the value
 * is; any other result leaves the core's own behaviour. (The parse and `_pre` hooks, `config`,
 * `user_config` and `received_line` are read by the session's command handlers.)
 */
export const VALUE_HOOKS = {
  helo_parse: 'a parser for the HELO argument, used instead of the built-in one',
  ehlo_parse: 'a parser for the EHLO argument, used instead of the built-in one',
  auth_parse: 'a parser for the AUTH argument, used instead of the built-in one',
  mail_parse: 'a parser for `FROM:<...>`, used instead of the built-in one (a parse error is 501)',
  rcpt_parse: 'a parser for `TO:<...>`, used instead of the built-in one (a parse error is 501)',
  mail_pre: 'the address string to parse instead (e.g. with the missing `<>` added)',
  rcpt_pre: 'the address string to parse instead (e.g. with the missing `<>` added)',
  config: 'the values of the setting, instead of the config file',
  user_config: 'the values of the setting for this address',
  received_line: "the Received header's body, instead of the default",
} as const satisfies Partial<Record<HookName, string>>;
