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
export { addAuthResult, formatAuthResult, parseAuthResult, authResultValue, authComment, authservIdOf, claimsAuthservId, ownAuthservId } from './message/auth-results.ts';
export type { AuthResult } from './message/auth-results.ts';
export { messageTexts, decodeQuotedPrintable } from './message/mime-text.ts';
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

// Time limits that survive garbage collection (instead of AbortSignal.any + AbortSignal.timeout)
export { deadline, withDeadline, DeadlineExceeded } from './util/deadline.ts';
export type { Deadline } from './util/deadline.ts';

// DNS (the daemon's resolver is `this.dns` in a plugin)
export { DnsResolver } from './dns/resolver.ts';
export type { DnsStats, LookupOptions } from './dns/resolver.ts';
export { DnsError, isNegativeAnswer } from './dns/errors.ts';
export type { DnsErrorCode } from './dns/errors.ts';
export type { RecordType, RecordsOf, MxRecord, SoaRecord } from './dns/wire.ts';
export { lookUp, withTimeout, txtText, askDnsList, askZones, timeoutArgument } from './dns/lookup.ts';
export type { LookupResult, ListAnswer, ZoneListing } from './dns/lookup.ts';

// Shared plugin policy (reject, reject_type, immunity)
export { getReject, rejectCode, isImmune } from './plugins/policy.ts';
export type { RejectArgs } from './plugins/policy.ts';

// Connection and HELO policy plugins
export { adjustKarma, checkableSender } from './plugins/policy.ts';
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

// The state store of the stateful plugins (greylisting, karma, limit): SQLite or Redis
export {
  StoreError,
  parseStoreConfig,
  DEFAULT_SQLITE_FILE,
  openStore,
  storeFailure,
  storeErrorPolicy,
  STORE_FAILURE_MESSAGE,
} from './store/index.ts';
export type { Store, StoreCallOptions, WindowCount, StoreSpec, StoreErrorPolicy } from './store/index.ts';
// Content scanners (spamd, rspamd, clamd, command-line scanners): the socket request, the
// message as a stream, argument words, and what a failed scan or a verdict does
export { socketRequest, ScanError } from './scan/socket-request.ts';
export type { SocketRequestOptions, ScanErrorKind } from './scan/socket-request.ts';
export { parseScanTarget, describeScanTarget } from './scan/target.ts';
export type { ScanTarget } from './scan/target.ts';
export { messageSource, overSizeLimit, isMultipart, writeMessageFile } from './scan/message.ts';
export type { MessageFile } from './scan/message.ts';
export { parseFlag, flagArgument, choiceArgument, parseSeconds, parseCount, scanFailure, parseOldHeaders, clearOldHeader, applyVirusVerdict } from './scan/policy.ts';
export type { OldHeaders, VirusVerdict, VirusNote, VirusVerdictOptions } from './scan/policy.ts';
export { CLAMD_MAX_REPLY, clamdInstream, clamdReplyComplete, parseClamdScan, parseClamdVersion } from './scan/clamd.ts';
export { SPAMD_MAX_REPLY, spamcHeadersRequest, parseSpamdReply } from './scan/spamc.ts';
export type { SpamcRequest, SpamdField, SpamdReply } from './scan/spamc.ts';
export { httpResponseComplete, parseHttpResponse } from './scan/http.ts';
export type { HttpResponse } from './scan/http.ts';
export { RSPAMD_MAX_REPLY, rspamdCheckRequest, parseRspamdReply, applyRspamdHeaderChanges } from './scan/rspamd.ts';
export type { RspamdEnvelope, RspamdSymbol, RspamdHeaderAdd, RspamdResult } from './scan/rspamd.ts';
export { runScanCommand } from './scan/command.ts';
export type { CommandScan } from './scan/command.ts';
// The milter protocol (Sendmail's content filter API, version 6): codec, link, conversation
export { Cmd as MilterCmd, Reply as MilterReply, Family as MilterFamily, Action as MilterAction, Proto as MilterProto, MacroStage as MilterMacroStage, MILTER_VERSION, MILTER_CHUNK_SIZE, ALL_ACTIONS as MILTER_ALL_ACTIONS, OFFERED_PROTOCOL as MILTER_OFFERED_PROTOCOL } from './milter/protocol.ts';
export type { FamilyCode as MilterFamilyCode } from './milter/protocol.ts';
export { PacketReader as MilterPacketReader, encodePacket as encodeMilterPacket } from './milter/packets.ts';
export type { Packet as MilterPacket } from './milter/packets.ts';
export { encodeCommand as encodeMilterCommand, decodeCommand as decodeMilterCommand } from './milter/commands.ts';
export type { MilterCommand } from './milter/commands.ts';
export { encodeResponse as encodeMilterResponse, decodeResponse as decodeMilterResponse, parseReplyCode as parseMilterReplyCode } from './milter/responses.ts';
export type { MilterResponse, MilterVerdict, MilterModification, OptnegReply as MilterOptnegReply } from './milter/responses.ts';
export { MilterLink, MilterError } from './milter/link.ts';
export type { Deadline as MilterDeadline } from './milter/link.ts';
export { MilterSession, MACRO_STAGES as MILTER_MACRO_STAGES } from './milter/session.ts';
export type { MilterSessionOptions, MacroLists as MilterMacroLists, MacroSource as MilterMacroSource, MacroStageName as MilterMacroStageName, ConnectInfo as MilterConnectInfo, HeaderField as MilterHeaderField, Negotiated as MilterNegotiated } from './milter/session.ts';
export { macroSource as milterMacroSource, DEFAULT_MACROS as MILTER_DEFAULT_MACROS, KNOWN_MACROS as MILTER_KNOWN_MACROS, bareMacroName as milterMacroName } from './milter/macros.ts';
export type { MacroFacts as MilterMacroFacts } from './milter/macros.ts';
export { MilterChanges } from './milter/changes.ts';
export type { QuarantineNote, ApplyOptions as MilterApplyOptions } from './milter/changes.ts';
export type { BodyStore } from './message/body-store.ts';
export { ToCrlf } from './mail/line-ends.ts';
export { parseMilterSocket, describeMilterTarget } from './milter/socket-spec.ts';
export type { MilterTarget } from './milter/socket-spec.ts';
// Sender authentication (sender_permitted_from, dkim, dmarc, arc): mailauth behind our resolver
export {
  authResolver,
  preloadMailauth,
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
