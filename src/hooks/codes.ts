/**
 * The return codes of a hook, with qpsmtpd's numbers (lib/Qpsmtpd/Constants.pm) so that log lines
 * and notes read the same as there.
 */

export const OK = 900 as const;
export const DENY = 901 as const;
export const DENYSOFT = 902 as const;
export const DENY_DISCONNECT = 903 as const;
/** Old name of DENY_DISCONNECT, kept for plugins ported from qpsmtpd. */
export const DENYHARD = DENY_DISCONNECT;
export const DENYSOFT_DISCONNECT = 904 as const;
export const DECLINED = 909 as const;
export const DONE = 910 as const;

export type Code =
  | typeof OK
  | typeof DENY
  | typeof DENYSOFT
  | typeof DENY_DISCONNECT
  | typeof DENYSOFT_DISCONNECT
  | typeof DECLINED
  | typeof DONE;

const NAMES: ReadonlyMap<number, string> = new Map([
  [OK, 'OK'],
  [DENY, 'DENY'],
  [DENYSOFT, 'DENYSOFT'],
  [DENY_DISCONNECT, 'DENY_DISCONNECT'],
  [DENYSOFT_DISCONNECT, 'DENYSOFT_DISCONNECT'],
  [DECLINED, 'DECLINED'],
  [DONE, 'DONE'],
]);

export function isCode(value: unknown): value is Code {
  return typeof value === 'number' && NAMES.has(value);
}

/** `DENY` for 901 and so on; the number itself for anything else. */
export function codeName(code: number): string {
  return NAMES.get(code) ?? String(code);
}

/** The codes that make the `deny` observers run (everything else runs `ok`). */
export function isDenial(code: number): boolean {
  return code === DENY || code === DENYSOFT || code === DENY_DISCONNECT || code === DENYSOFT_DISCONNECT;
}
