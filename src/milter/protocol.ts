/**
 * The Sendmail milter protocol, version 6, as libmilter's mfdef.h and mfapi.h define it: the
 * command and reply codes (one ASCII letter each), the action flags a milter asks for, the
 * protocol flags (stages it does not want, stages it will not answer), the macro stages.
 *
 * Numbers here are facts of the wire format; nothing in this module does any I/O.
 */

/** The protocol version we speak (and offer in SMFIC_OPTNEG). */
export const MILTER_VERSION = 6;
/** The oldest milter version we accept: 2 (what qpsmtpd's and most old filters speak). */
export const MILTER_MIN_VERSION = 2;
/** Largest body chunk per SMFIC_BODY (MILTER_CHUNK_SIZE). */
export const MILTER_CHUNK_SIZE = 65535;

/** MTA to milter. */
export const Cmd = {
  ABORT: 'A',
  BODY: 'B',
  CONNECT: 'C',
  MACRO: 'D',
  BODYEOB: 'E',
  HELO: 'H',
  QUIT_NC: 'K',
  HEADER: 'L',
  MAIL: 'M',
  EOH: 'N',
  OPTNEG: 'O',
  QUIT: 'Q',
  RCPT: 'R',
  DATA: 'T',
  UNKNOWN: 'U',
} as const;
export type CmdCode = (typeof Cmd)[keyof typeof Cmd];

/** Milter to MTA. */
export const Reply = {
  ADDRCPT: '+',
  DELRCPT: '-',
  ADDRCPT_PAR: '2',
  SHUTDOWN: '4',
  ACCEPT: 'a',
  REPLBODY: 'b',
  CONTINUE: 'c',
  DISCARD: 'd',
  CHGFROM: 'e',
  CONN_FAIL: 'f',
  ADDHEADER: 'h',
  INSHEADER: 'i',
  SETSYMLIST: 'l',
  CHGHEADER: 'm',
  PROGRESS: 'p',
  QUARANTINE: 'q',
  REJECT: 'r',
  SKIP: 's',
  TEMPFAIL: 't',
  REPLYCODE: 'y',
  OPTNEG: 'O',
} as const;
export type ReplyCode = (typeof Reply)[keyof typeof Reply];

/** Address families in SMFIC_CONNECT. */
export const Family = { UNKNOWN: 'U', UNIX: 'L', INET: '4', INET6: '6' } as const;
export type FamilyCode = (typeof Family)[keyof typeof Family];

/** Actions (SMFIF_*): what a milter may do to a message at its end. */
export const Action = {
  ADDHDRS: 0x001,
  CHGBODY: 0x002,
  ADDRCPT: 0x004,
  DELRCPT: 0x008,
  CHGHDRS: 0x010,
  QUARANTINE: 0x020,
  CHGFROM: 0x040,
  ADDRCPT_PAR: 0x080,
  SETSYMLIST: 0x100,
} as const;
/** Every action of version 6: all of them we can carry out. */
export const ALL_ACTIONS = 0x1ff;

/** Protocol flags (SMFIP_*): stages the milter does not want (NO*), stages it will not answer (NR_*). */
export const Proto = {
  NOCONNECT: 0x00000001,
  NOHELO: 0x00000002,
  NOMAIL: 0x00000004,
  NORCPT: 0x00000008,
  NOBODY: 0x00000010,
  NOHDRS: 0x00000020,
  NOEOH: 0x00000040,
  NR_HDR: 0x00000080,
  NOUNKNOWN: 0x00000100,
  NODATA: 0x00000200,
  SKIP: 0x00000400,
  RCPT_REJ: 0x00000800,
  NR_CONN: 0x00001000,
  NR_HELO: 0x00002000,
  NR_MAIL: 0x00004000,
  NR_RCPT: 0x00008000,
  NR_DATA: 0x00010000,
  NR_UNKN: 0x00020000,
  NR_EOH: 0x00040000,
  NR_BODY: 0x00080000,
  HDR_LEADSPC: 0x00100000,
  MDS_256K: 0x10000000,
  MDS_1M: 0x20000000,
} as const;

/**
 * The protocol flags we offer: every stage flag and no-reply flag of version 6, SKIP and
 * HDR_LEADSPC. Not RCPT_REJ (we never show a milter recipients that other plugins refused) and
 * not the MDS sizes (we keep to 64 KB packets both ways).
 */
export const OFFERED_PROTOCOL = 0x001fffff & ~Proto.RCPT_REJ;

/** Macro stages (SMFIM_*), the indexes of the macro lists a milter may ask for in its OPTNEG reply. */
export const MacroStage = { CONNECT: 0, HELO: 1, ENVFROM: 2, ENVRCPT: 3, DATA: 4, EOM: 5, EOH: 6 } as const;
export type MacroStageIndex = (typeof MacroStage)[keyof typeof MacroStage];

