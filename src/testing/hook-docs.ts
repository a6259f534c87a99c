/**
 * What each result of a hook does, in words, from the reply table (session/responders.ts): the
 * "results" column of docs/plugins.md and the comments of `qpsmtpd new-plugin`'s hook methods.
 */
import type { HookName } from '../hooks/hook-map.ts';
import { describeReplies, VALUE_HOOKS, type ReplyRule } from '../session/responders.ts';
import type { HookSignature } from './hook-signatures.ts';

const RESULT_LABEL: Readonly<Record<string, string>> = { FAULT: 'throws / no code' };

/** One rule in words: ``DENY: `550 5.7.1 relaying denied`, closes``. */
export function describeRule(rule: ReplyRule, hook: HookName): string {
  const who = rule.results.map((r) => RESULT_LABEL[r] ?? r).join(', ');
  const effects: string[] = [];
  let what: string;
  if (rule.reply !== null) {
    what = '`' + rule.reply + '`' + (rule.pluginText ? '' : ' (fixed text)');
  } else if (rule.proceed) {
    what = 'no reply; the core goes on';
  } else if (rule.results.includes('DONE')) {
    what = hook === 'connect' ? 'no reply (the plugin sent the greeting)' : 'no reply (the plugin answered, `this.qp.respond`)';
  } else {
    what = 'no reply';
  }
  if (rule.accept && !rule.proceed) effects.push('goes ahead');
  if (rule.reset) effects.push('drops the transaction');
  if (rule.close) effects.push('closes');
  return `${who}: ${what}${effects.length > 0 ? ', ' + effects.join(', ') : ''}`;
}

/** What the results of a hook do, one line per distinct outcome (Markdown code spans included). */
export function describeResults(signature: HookSignature): string[] {
  const rules = describeReplies(signature.hook);
  if (rules !== undefined) return rules.map((r) => describeRule(r, signature.hook));
  const value = (VALUE_HOOKS as Readonly<Partial<Record<HookName, string>>>)[signature.hook];
  if (value !== undefined) return [`\`[OK, ${signature.payload ?? 'value'}]\`: ${value}; anything else: the built-in behaviour`];
  if (signature.hook === 'logging') return ['OK or DECLINED: the line is written or not; no reply'];
  return ['ignored (no reply)'];
}
