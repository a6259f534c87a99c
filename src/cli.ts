/**
 * `qpsmtpd`: command line and environment into options, options into an app and a transport.
 * The only module that reads process.argv and process.env.
 */
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { App, LoadFailure } from './app.ts';
import { LOGCRIT, LOGNOTICE } from './log/levels.ts';
import { formatProblem } from './plugins/plugins-file.ts';
import { EXIT_CONFIG, isWorker, leavePrimary, onPrimaryMessage, reportReady, runPrimary } from './transport/cluster.ts';
import { DEFAULT_DAYS, ExistsError, KEY_DESCRIPTION, defaultHost, defaultPaths, generateSelfSigned, writePair } from './tls/self-signed.ts';
import { stdioConn } from './transport/stdio.ts';
import { TcpListeners, parseListenAddress, type ListenAddress } from './transport/tcp.ts';

const HELP = `Usage:
  qpsmtpd [--config DIR] [--listen HOST:PORT ...] [--listen-tls HOST:PORT ...] [--workers N] [--grace SECONDS]
  qpsmtpd [--config DIR] --stdio
  qpsmtpd check [--config DIR]
  qpsmtpd tls-cert [--config DIR] [--host NAME] [--days N] [--force]
  qpsmtpd dkim-key DOMAIN [SELECTOR] [--config DIR] [--bits N] [--type rsa|ed25519] [--force]
  qpsmtpd new-plugin NAME [--hook HOOK ...] [--dir DIR] [--config DIR]
  qpsmtpd test [--config DIR] [FILE|DIR ...]
  qpsmtpd --help | --version

  --config DIR       the config directory (default: $QPSMTPD_CONFIG, else ./config)
  --listen HOST:PORT listen there; may be repeated; [::1]:25 for IPv6, :25 for every address
                     (default 127.0.0.1:2525); port 465 is implicit TLS
  --listen-tls HOST:PORT
                     a listener where TLS starts with the first byte (SMTPS, RFC 8314); needs the
                     tls plugin; may be repeated
  --workers N        N worker processes share the listening sockets (prefork); a worker that
                     dies is replaced
  --stdio            one SMTP session on stdin/stdout (inetd, tcpserver, systemd Accept=yes);
                     the client's address comes from TCPREMOTEIP/TCPREMOTEPORT when set
  --grace SECONDS    on SIGTERM/SIGINT, how long sessions in flight may take to finish (default 30)
  check              load the config and every plugin, print each hook with its plugins, exit 0;
                     on any error print it with its file and line and exit 1
  tls-cert           write a self-signed certificate and key for the tls plugin into the config
                     directory's ssl/qpsmtpd-server.crt and .key (key mode 0600)
    --host NAME      the name it certifies (default: config/me, else the machine's name)
    --days N         how long it is valid (default 730)
    --force          replace an existing certificate and key
  dkim-key DOMAIN [SELECTOR]
                     make a DKIM key pair for the dkim plugin in the config directory's
                     dkim/DOMAIN/ (selector, private (mode 0600), public, dns) and print the TXT
                     record to publish; SELECTOR defaults to the month and year (nov2026)
    --bits N         RSA key length, 1024 to 4096 (default 2048)
    --type TYPE      rsa (default) or ed25519
    --force          replace an existing key
  new-plugin NAME    write NAME.ts, a typed plugin with one method per --hook (default: rcpt),
                     and NAME.test.ts, its test with qpsmtpd/testing; never overwrites a file
    --hook HOOK      a hook it serves (rcpt, mail, data_post, pre-connection ...); may be repeated
    --dir DIR        where to write them (default: plugins/ beside the config directory)
  test               run plugin tests (*.test.ts, .js, .mjs) with node --test, TypeScript loaded
                     and 'qpsmtpd' and 'qpsmtpd/testing' importable from any folder; FILE or DIR
                     default to plugins/ beside the config directory

Signals: SIGTERM/SIGINT stop accepting, let sessions finish, exit 0.
         SIGHUP reloads config and plugins for new sessions; sessions in flight keep theirs.`;

type Command = 'serve' | 'check' | 'tls-cert' | 'dkim-key' | 'new-plugin' | 'test' | 'help' | 'version';
const COMMANDS: readonly string[] = ['check', 'tls-cert', 'dkim-key', 'new-plugin', 'test'];

interface Options {
  readonly command: Command;
  readonly configDir: string;
  readonly listen: ListenAddress[];
  readonly workers: number;
  readonly stdio: boolean;
  readonly graceMs: number;
  /** tls-cert: --host, --days, --force. */
  readonly certHost: string | undefined;
  readonly certDays: number;
  readonly certForce: boolean;
  /** dkim-key: the domain, the selector, --bits, --type (and --force). */
  readonly dkimDomain: string | undefined;
  readonly dkimSelector: string | undefined;
  readonly dkimBits: number;
  readonly dkimType: 'rsa' | 'ed25519';
  /** new-plugin: the name, --hook, --dir. test: the files and folders. */
  readonly pluginName: string | undefined;
  readonly hooks: readonly string[];
  readonly dir: string | undefined;
  readonly testTargets: readonly string[];
}

class UsageError extends Error {}

function parseOptions(argv: readonly string[], env: NodeJS.ProcessEnv): Options {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      allowPositionals: true,
      options: {
        config: { type: 'string', short: 'c' },
        listen: { type: 'string', short: 'l', multiple: true },
        'listen-tls': { type: 'string', multiple: true },
        workers: { type: 'string', short: 'w' },
        stdio: { type: 'boolean' },
        grace: { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean', short: 'v' },
        host: { type: 'string' },
        days: { type: 'string' },
        force: { type: 'boolean' },
        hook: { type: 'string', multiple: true },
        dir: { type: 'string' },
        bits: { type: 'string' },
        type: { type: 'string' },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const { values, positionals } = parsed;
  const [first, ...rest] = positionals;
  if (first !== undefined && !COMMANDS.includes(first)) throw new UsageError(`unknown command "${positionals.join(' ')}"`);
  if (first === 'new-plugin' && rest.length !== 1) throw new UsageError('new-plugin needs exactly one NAME');
  if ((first === 'check' || first === 'tls-cert') && rest.length > 0) throw new UsageError(`unknown command "${positionals.join(' ')}"`);
  if (first !== 'new-plugin' && (values.hook !== undefined || values.dir !== undefined)) {
    throw new UsageError('--hook and --dir belong to the new-plugin command');
  }
  if (first === 'dkim-key' && (rest.length < 1 || rest.length > 2)) throw new UsageError('dkim-key needs a DOMAIN and at most a SELECTOR');
  const tlsCert = first === 'tls-cert';
  const dkimKey = first === 'dkim-key';
  if (!tlsCert && (values.host !== undefined || values.days !== undefined)) {
    throw new UsageError('--host and --days belong to the tls-cert command');
  }
  if (!tlsCert && !dkimKey && values.force !== undefined) throw new UsageError('--force belongs to the tls-cert and dkim-key commands');
  if (!dkimKey && (values.bits !== undefined || values.type !== undefined)) throw new UsageError('--bits and --type belong to the dkim-key command');
  const dkimBits = values.bits === undefined ? 2048 : Number(values.bits);
  if (!Number.isInteger(dkimBits) || dkimBits < 1024 || dkimBits > 4096) throw new UsageError('--bits must be a whole number from 1024 to 4096');
  const dkimType = values.type ?? 'rsa';
  if (dkimType !== 'rsa' && dkimType !== 'ed25519') throw new UsageError('--type must be rsa or ed25519');
  const certDays = values.days === undefined ? DEFAULT_DAYS : Number(values.days);
  if (!Number.isInteger(certDays) || certDays < 1 || certDays > 36500) throw new UsageError('--days must be a whole number of days from 1 to 36500');
  const workers = values.workers === undefined ? 0 : Number(values.workers);
  if (!Number.isInteger(workers) || workers < 0 || workers > 256) throw new UsageError(`--workers must be a whole number from 1 to 256`);
  const grace = values.grace === undefined ? 30 : Number(values.grace);
  if (!(grace >= 0)) throw new UsageError('--grace must be a number of seconds');
  let listen: ListenAddress[];
  try {
    const plain = values.listen ?? (values['listen-tls'] === undefined ? ['127.0.0.1:2525'] : []);
    listen = [...plain.map((spec) => parseListenAddress(spec)), ...(values['listen-tls'] ?? []).map((spec) => parseListenAddress(spec, true))];
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  const command: Command = values.help ? 'help' : values.version ? 'version' : ((first ?? 'serve') as Command);
  return {
    command,
    configDir: values.config ?? env['QPSMTPD_CONFIG'] ?? 'config',
    listen,
    workers,
    stdio: values.stdio === true,
    graceMs: grace * 1000,
    certHost: values.host,
    certDays,
    certForce: values.force === true,
    dkimDomain: dkimKey ? rest[0] : undefined,
    dkimSelector: dkimKey ? rest[1] : undefined,
    dkimBits,
    dkimType,
    pluginName: first === 'new-plugin' ? rest[0] : undefined,
    hooks: values.hook ?? [],
    dir: values.dir,
    testTargets: first === 'test' ? rest : [],
  };
}

function packageVersion(): string {
  for (const rel of ['../package.json', '../../package.json']) {
    try {
      const pkg = JSON.parse(readFileSync(fileURLToPath(new URL(rel, import.meta.url)), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'qpsmtpd' && pkg.version) return pkg.version;
    } catch {
      // not there: running from dist/, try one level up
    }
  }
  return '0.0.0';
}

/** Run the command line; resolves with the exit code. */
export async function main(argv: readonly string[]): Promise<number> {
  let options: Options;
  try {
    options = parseOptions(argv, process.env);
  } catch (err) {
    process.stderr.write(`qpsmtpd: ${(err as Error).message}\n\n${HELP}\n`);
    return 64;
  }
  if (options.command === 'help') {
    process.stdout.write(HELP + '\n');
    return 0;
  }
  const version = packageVersion();
  if (options.command === 'version') {
    process.stdout.write(`qpsmtpd ${version}\n`);
    return 0;
  }
  if (options.command === 'tls-cert') return tlsCertCommand(options);
  if (options.command === 'dkim-key') return dkimKeyCommand(options);
  if (options.command === 'new-plugin') return newPluginCommand(options);
  if (options.command === 'test') return testCommand(options, process.env);
  if (options.workers > 0 && !options.stdio && options.command === 'serve' && !isWorker(options.workers)) {
    return runPrimary({ workers: options.workers, log: (line) => process.stderr.write(`${process.pid} qpsmtpd: ${line}\n`) });
  }

  let app: App;
  try {
    app = await App.load({
      configDir: options.configDir,
      env: process.env,
      version,
      bundledPluginDir: fileURLToPath(new URL('../plugins/', import.meta.url)),
      // Running from dist/: the project's plugins/ folder holds the sources of the same plugins.
      bundledSourceDir: fileURLToPath(new URL('../../plugins/', import.meta.url)),
    });
  } catch (err) {
    if (!(err instanceof LoadFailure)) throw err;
    process.stderr.write(`qpsmtpd: cannot load the configuration:\n${err.problems.map((p) => '  ' + formatProblem(p)).join('\n')}\n`);
    return isWorker(options.workers) ? EXIT_CONFIG : 1;
  }

  if (options.command !== 'check') guardProcess(app);

  if (options.command === 'check') {
    process.stdout.write(`config ${app.configDir.dir}: OK\n`);
    for (const { hook, plugins } of app.registry.describe()) process.stdout.write(`${hook}: ${plugins.join(', ')}\n`);
    await app.close(0);
    return 0;
  }

  if (options.stdio) {
    // stdout is the SMTP channel: what a library prints with console.log (mailauth 4.13.3 does,
    // for a DKIM l= tag that does not match the body) goes to stderr, never into the session.
    console.log = console.info = console.debug = console.error;
    // inetd, tcpserver and systemd stop a session with SIGTERM too: it ends as a server's would.
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logStopping(app, why, options.graceMs);
      void app.stop(options.graceMs);
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    await app.handle(stdioConn(process.env, process.stdin, process.stdout));
    await app.close(0);
    return 0;
  }
  return serve(app, options, version);
}

async function serve(app: App, options: Options, version: string): Promise<number> {
  let listeners: TcpListeners;
  try {
    listeners = await TcpListeners.open(app, options.listen);
  } catch (err) {
    process.stderr.write(`qpsmtpd: ${(err as Error).message}\n`);
    return isWorker(options.workers) ? EXIT_CONFIG : 1;
  }
  const bound = listeners
    .bound()
    .map((a) => (a.host.includes(':') ? `[${a.host}]:${a.port}` : `${a.host}:${a.port}`) + (a.implicitTls ? ' (implicit TLS)' : ''));
  app.log(LOGNOTICE, `qpsmtpd ${version} listening on ${bound.join(', ')}`);

  return new Promise<number>((resolve) => {
    let stopping = false;
    const stop = (why: string): void => {
      if (stopping) return;
      stopping = true;
      logStopping(app, why, options.graceMs);
      // server.close() stops accepting at once but reports back only when every connection has
      // ended: the sessions must be told to finish now, not after they have ended by themselves.
      const closed = listeners.close();
      void app
        .close(options.graceMs)
        .then(() => closed)
        .then(() => {
          if (isWorker(options.workers)) leavePrimary();
          resolve(0);
        });
    };
    const reload = (): void => {
      void app.reload();
    };
    process.on('SIGTERM', stop);
    process.on('SIGINT', stop);
    process.on('SIGHUP', reload);
    if (isWorker(options.workers)) {
      onPrimaryMessage((message) => (message.type === 'stop' ? stop('told by the primary') : reload()));
      reportReady();
    }
  });
}

/**
 * A plugin's stray callback (a timer or event handler that throws outside its hook) must not take
 * the sessions of the whole process down with it: the error is logged and the daemon goes on.
 */
function guardProcess(app: App): void {
  process.on('uncaughtException', (err) => app.log(LOGCRIT, 'uncaught exception (a plugin callback outside its hook?); going on:', err));
  process.on('unhandledRejection', (reason) => app.log(LOGCRIT, 'unhandled promise rejection (a plugin promise nobody awaited?); going on:', reason));
}

/** `qpsmtpd tls-cert`: a self-signed pair where the tls plugin looks by default. */
async function tlsCertCommand(options: Options): Promise<number> {
  const configDir = resolve(options.configDir);
  const host = options.certHost ?? defaultHost(configDir);
  const paths = defaultPaths(configDir);
  try {
    const pair = await generateSelfSigned({ host, days: options.certDays });
    writePair(pair, paths, options.certForce);
    process.stdout.write(
      [
        `wrote a self-signed certificate for ${host} (${KEY_DESCRIPTION}):`,
        `  certificate  ${paths.cert}`,
        `  private key  ${paths.key} (mode 0600)`,
        `  valid until  ${pair.validTo.toISOString()}`,
        `  SHA-256      ${pair.fingerprint256}`,
        `To enable STARTTLS, put "tls" as the first line of ${join(configDir, 'plugins')}, then`,
        `check with "qpsmtpd check --config ${configDir}" and reload (SIGHUP) or restart qpsmtpd.`,
        `For implicit TLS (SMTPS) also listen with --listen-tls HOST:465.`,
        '',
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    process.stderr.write(`qpsmtpd tls-cert: ${(err as Error).message}\n`);
    return err instanceof ExistsError ? 73 : 1;
  }
}

/** `qpsmtpd dkim-key DOMAIN [SELECTOR]`: a key pair where the dkim plugin looks, and the record to publish. */
async function dkimKeyCommand(options: Options): Promise<number> {
  const { DkimKeyExistsError, generateDkimKey } = await import('./senderauth/dkim-keys.ts');
  const configDir = resolve(options.configDir);
  try {
    const key = generateDkimKey({
      configDir,
      domain: options.dkimDomain!,
      selector: options.dkimSelector,
      bits: options.dkimBits,
      type: options.dkimType,
      force: options.certForce,
    });
    const kind = options.dkimType === 'ed25519' ? 'Ed25519' : `RSA ${options.dkimBits}-bit`;
    process.stdout.write(
      [
        `wrote a DKIM key for ${key.domain} (${kind}, selector ${key.selector}) in ${key.dir}:`,
        `  selector     ${join(key.dir, 'selector')}`,
        `  private key  ${join(key.dir, 'private')} (mode 0600)`,
        `  public key   ${join(key.dir, 'public')}`,
        `Publish this TXT record (also in ${join(key.dir, 'dns')}, with SPF and DMARC suggestions):`,
        '',
        key.zoneLine,
        '',
        `The dkim plugin signs mail from relay clients whose sender is at ${key.domain} (or a subdomain)`,
        `once the record is in DNS; check with "dig TXT ${key.dnsName}".`,
        '',
      ].join('\n'),
    );
    return 0;
  } catch (err) {
    process.stderr.write(`qpsmtpd dkim-key: ${(err as Error).message}\n`);
    return err instanceof DkimKeyExistsError ? 73 : 64;
  }
}

/** The `plugins/` folder beside the config directory. */
function pluginsBesideConfig(options: Options): string {
  return join(dirname(resolve(options.configDir)), 'plugins');
}

/** `qpsmtpd new-plugin NAME`: a plugin file and its test. (Loaded on demand: the daemon never needs it.) */
async function newPluginCommand(options: Options): Promise<number> {
  const { ScaffoldExistsError, ScaffoldUsageError, describeNewPlugin, newPlugin } = await import('./testing/scaffold.ts');
  try {
    const result = newPlugin({ name: options.pluginName!, hooks: options.hooks, dir: resolve(options.dir ?? pluginsBesideConfig(options)) });
    process.stdout.write(describeNewPlugin(result, process.cwd()));
    return 0;
  } catch (err) {
    process.stderr.write(`qpsmtpd new-plugin: ${(err as Error).message}\n`);
    return err instanceof ScaffoldUsageError ? 64 : err instanceof ScaffoldExistsError ? 73 : 1;
  }
}

/** `qpsmtpd test [FILE|DIR ...]`: node --test with the qpsmtpd resolver and TypeScript. */
async function testCommand(options: Options, env: NodeJS.ProcessEnv): Promise<number> {
  const { TestTargetError, findTestFiles, runTests } = await import('./testing/run-tests.ts');
  const cwd = process.cwd();
  let files: string[];
  try {
    files = findTestFiles(options.testTargets.length > 0 ? options.testTargets : [pluginsBesideConfig(options)], cwd);
  } catch (err) {
    if (!(err instanceof TestTargetError)) throw err;
    process.stderr.write(`qpsmtpd test: ${err.message}\n`);
    return 66;
  }
  if (files.length === 0) {
    process.stderr.write(`qpsmtpd test: no test files (*.test.ts, *.test.js, *.test.mjs) in ${options.testTargets.join(' ') || pluginsBesideConfig(options)}\n`);
    return 1;
  }
  return runTests({ files, cwd, env });
}

function logStopping(app: App, why: string, graceMs: number): void {
  app.log(LOGNOTICE, `${why}: stopping; ${app.activeSessions} session(s) in flight may take up to ${graceMs / 1000} s to finish`);
}
