/** RFC 5322 §3.3 date-time, in local time with its offset: `Wed, 25 Nov 2026 15:14:31 +0100`. */

const DAYS = ['Sun', 'Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat'];
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** The text of the current second: every message of that second has the same Received date. */
let cached: { second: number; text: string } | undefined;

export function rfc5322Date(date?: Date): string {
  if (date !== undefined) return format(date);
  const now = Date.now();
  const second = Math.floor(now / 1000);
  if (cached?.second !== second) cached = { second, text: format(new Date(now)) };
  return cached.text;
}

function format(date: Date): string {
  const pad = (n: number): string => String(n).padStart(2, '0');
  const offsetMinutes = -date.getTimezoneOffset();
  const sign = offsetMinutes >= 0 ? '+' : '-';
  const abs = Math.abs(offsetMinutes);
  return (
    `${DAYS[date.getDay()]}, ${date.getDate()} ${MONTHS[date.getMonth()]} ${date.getFullYear()} ` +
    `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())} ` +
    `${sign}${pad(Math.floor(abs / 60))}${pad(abs % 60)}`
  );
}
