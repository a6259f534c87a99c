/**
 * The public plugin API: what `import ... from 'qpsmtpd'` gives a plugin. Plugins import only this.
 */
export { Plugin } from './plugins/plugin.ts';
export type { PluginHost, RegisterHookOptions } from './plugins/plugin.ts';
export type { HookMethods, HookFunction } from './plugins/hook-methods.ts';
export {
  OK,
  DENY,
  DENYSOFT,
  DENY_DISCONNECT,
  DENYHARD,
  DENYSOFT_DISCONNECT,
  DECLINED,
  DONE,
  codeName,
  isCode,
} from './hooks/codes.ts';
export type { Code } from './hooks/codes.ts';
export {
  LOGDEBUG,
  LOGINFO,
  LOGNOTICE,
  LOGWARN,
  LOGERROR,
  LOGCRIT,
  LOGALERT,
  LOGEMERG,
  LOGRADAR,
  parseLogLevel,
} from './log/levels.ts';
export type { LogLevel } from './log/levels.ts';
export { HOOK_NAMES } from './hooks/hook-map.ts';
export type {
  HookName,
  HookArgs,
  HookResult,
  HookReturn,
  Message,
  PreConnectionInfo,
  HelloParser,
  PathParser,
  AuthParser,
  AuthArgs,
} from './hooks/hook-map.ts';
export { Address } from './protocol/address.ts';
export type { EsmtpParams } from './protocol/command.ts';
export { Header } from './message/header.ts';
export type { Transaction } from './session/transaction.ts';
export type { Connection } from './session/connection.ts';
export type { SessionApi, SessionApi as Session } from './session/session-api.ts';
export type { ConfigMap } from './config/config-dir.ts';

// Network helpers for plugins
export {
  parseIp,
  ipFamily,
  isIp,
  isIPv4Text,
  isIPv6Text,
  isMappedIPv4,
  unmapIp,
  mapToIPv6,
  parseAddressLiteral,
  formatIp,
  normalizeIp,
  expandIPv6,
  parseCidr,
  formatCidr,
  cidrContains,
  ipInCidr,
  ipMatchesPrefix,
  ipMatches,
  ipPrefixKeys,
  IpList,
  reverseIpLabels,
  ptrName,
} from './net/ip.ts';
export type { IpFamily, IpAddress, Cidr, IpListMatch } from './net/ip.ts';

// DNS (the daemon's resolver is `this.dns` in a plugin)
export { DnsResolver } from './dns/resolver.ts';
export type { DnsStats, LookupOptions } from './dns/resolver.ts';
export { DnsError, isNegativeAnswer } from './dns/errors.ts';
export type { DnsErrorCode } from './dns/errors.ts';
export type { RecordType, RecordsOf, MxRecord, SoaRecord } from './dns/wire.ts';

// Shared plugin policy (reject, reject_type, immunity)
export { getReject, rejectCode, isImmune } from './plugins/policy.ts';
export type { RejectArgs } from './plugins/policy.ts';

// Connection and HELO policy plugins
export { adjustKarma } from './plugins/policy.ts';
export { parseProxyHeader } from './protocol/proxy-header.ts';
export type { ProxyParse, ProxiedAddresses } from './protocol/proxy-header.ts';

// Sender and recipient plugins
export {
  pairArguments,
  returnCodeByName,
  configLocation,
  ConfigCache,
  isListPattern,
  perlRegExp,
  compileAddressList,
  matchAddressList,
} from './plugins/policy.ts';
export type { PerlRegExpResult, AddressListEntry } from './plugins/policy.ts';

// Mail helpers for plugins (SMTP/LMTP client, line ends, child programs)
export { CrlfToLf, DataEncoder, convertStream } from './mail/line-ends.ts';
export type { LineEndConverter } from './mail/line-ends.ts';
export {
  ReplyParser,
  MailRefusal,
  MAX_REPLY_LINE,
  MAX_REPLY_LINES,
  enhancedCode,
  stripEnhancedCode,
  clipReplyText,
  describeReply,
  parseExtensions,
  refusedRecipients,
  recipientRefusalText,
  replyRefusal,
} from './mail/replies.ts';
export type { ServerReply, RefusedRecipient } from './mail/replies.ts';
export { messageSize, isInternational, mailFromCommand, rcptCommands } from './mail/envelope.ts';
export { connectWithin } from './mail/connect.ts';
export type { ConnectWithinOptions } from './mail/connect.ts';
export { SmtpClient, SmtpLinkError, smtpLinkError, dialogueFailure, CONNECT_FAILURES } from './mail/smtp-client.ts';
export type { SmtpClientOptions, DialogueFailure } from './mail/smtp-client.ts';
export { runProgram } from './mail/child-program.ts';
export type { ProgramOptions, ProgramInput, ProgramRun, ProgramRan, ProgramNotStarted } from './mail/child-program.ts';

// Sender authentication (sender_permitted_from, dkim, dmarc, arc): mailauth behind our resolver
export { formatAuthResult, authValue, authComment, authservIdOf, claimsAuthservId, ownAuthservId } from './message/authentication-results.ts';
export type { AuthResult } from './message/authentication-results.ts';
export {
  authResolver,
  preloadMailauth,
  withinTime,
  authCheckArguments,
  checkSpf,
  receivedSpfValue,
  verifyDkim,
  overallDkimResult,
  signDkim,
  splitField,
  checkDmarc,
  verifyArc,
  sealArc,
} from './senderauth/mailauth.ts';
export type {
  SpfResult,
  SpfCheck,
  SpfOptions,
  DkimResult,
  DkimSignatureCheck,
  DkimVerification,
  SigningKey,
  DmarcResult,
  DmarcPolicy,
  DmarcCheck,
  DmarcOptions,
  ArcResult,
  ArcCheck,
  SealOptions,
} from './senderauth/mailauth.ts';
export { findDkimKey, dkimKeyRoot, dkimTxtRecord } from './senderauth/dkim-keys.ts';
export type { DkimKeyFiles } from './senderauth/dkim-keys.ts';
