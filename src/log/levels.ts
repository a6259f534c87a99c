/** Syslog-style log levels, as qpsmtpd numbers them: a message is written when level <= threshold. */

export const LOGEMERG = 0 as const;
export const LOGRADAR = 0 as const;
export const LOGALERT = 1 as const;
export const LOGCRIT = 2 as const;
export const LOGERROR = 3 as const;
export const LOGWARN = 4 as const;
export const LOGNOTICE = 5 as const;
export const LOGINFO = 6 as const;
export const LOGDEBUG = 7 as const;

export type LogLevel = 0 | 1 | 2 | 3 | 4 | 5 | 6 | 7;

/** The threshold when `config/loglevel` is absent or not a number. */
export const DEFAULT_LOGLEVEL: LogLevel = LOGWARN;

const BY_NAME: Readonly<Record<string, LogLevel>> = {
  LOGEMERG,
  LOGRADAR,
  LOGALERT,
  LOGCRIT,
  LOGERROR,
  LOGWARN,
  LOGNOTICE,
  LOGINFO,
  LOGDEBUG,
};

const NAMES = ['EMERG', 'ALERT', 'CRIT', 'ERROR', 'WARN', 'NOTICE', 'INFO', 'DEBUG'] as const;

/** `LOGINFO`, `INFO`, `info` or `6` into 6; undefined when it is none of these. */
export function parseLogLevel(text: string | undefined): LogLevel | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (/^[0-7]$/.test(t)) return Number(t) as LogLevel;
  const upper = t.toUpperCase();
  return BY_NAME[upper] ?? BY_NAME['LOG' + upper];
}

export function levelName(level: number): string {
  return NAMES[level] ?? String(level);
}

export function clampLevel(level: number): LogLevel {
  return Math.min(7, Math.max(0, Math.round(level))) as LogLevel;
}
