import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Command, type CommanderError, InvalidArgumentError, Option } from 'commander';
import { AdminClientError, ConfigError, ValueError } from './errors.js';
import type { WorkersSetting } from './config/types.js';
import { parseWorkers } from './config/values.js';
import { describeConfig } from './config/describe.js';
import { loadConfigFile } from './config/loader.js';
import { defaultStateDirectory } from './tls/state-directory.js';
import { createLogger, type LogFormat } from './observe/logger.js';
import { ProxyService } from './runtime/service.js';
import type { DiffCommandOptions } from './cli/diff.js';
import type { RouteCommandOptions } from './cli/route.js';
import { type ServeConfig, ServeFlagError, type ServeFlags, serveBanner, serveConfig } from './cli/serve.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** One line on stderr, exit 1. A config error starts with its FILE:LINE:COL, as compilers print it, for editors to jump to. */
function fail(error: Error): never {
  process.stderr.write(error instanceof ConfigError ? `${error.message}\n` : `sni-passthrough: ${error.message}\n`);
  process.exit(1);
}

async function check(configFile: string): Promise<void> {
  try {
    const { config } = await loadConfigFile(configFile);
    process.stdout.write(`${configFile}: ok, ${config.listeners.length} listener${config.listeners.length === 1 ? '' : 's'}\n${describeConfig(config)}\n`);
  } catch (error) {
    if (error instanceof ConfigError) fail(error);
    throw error;
  }
}

interface LogOptions {
  logLevel: string;
  logFormat?: LogFormat;
}

interface RunCommandOptions extends LogOptions {
  config?: string;
  watch: boolean;
  stateDir?: string;
  workers?: WorkersSetting;
}

/** `--workers`: the config's parser, so the flag and the key accept exactly the same values. */
function workersFlag(value: string): WorkersSetting {
  try {
    return parseWorkers(value);
  } catch (error) {
    if (error instanceof ValueError) throw new InvalidArgumentError(error.message);
    throw error;
  }
}

/**
 * Runs the proxy on `configFile` until a signal ends it; resolves with each
 * listener's bound address once serving. `cleanUp` runs before the process
 * exits. A config or bind error is one line on stderr and exit 1.
 */
async function runService(
  configFile: string,
  options: LogOptions & { watch: boolean; stateDir?: string; workers?: WorkersSetting },
  cleanUp: () => void = () => {},
): Promise<Record<string, string>> {
  const format = options.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json');
  const { logger, writeLine, flush } = await createLogger({ level: options.logLevel, format, env: process.env });
  const exit = (code: number): void => {
    void flush().then(() => {
      cleanUp();
      process.exit(code);
    });
  };
  try {
    return await new ProxyService({
      configFile,
      watch: options.watch,
      logger,
      writeLine,
      env: process.env,
      stateDirectory: options.stateDir ?? null,
      exit,
      workers: options.workers ?? null,
      log: { logLevel: options.logLevel, logFormat: format },
    }).start();
  } catch (error) {
    await flush();
    cleanUp();
    // Config and bind errors, or an inherited socket no listener claims: one line, exit 1.
    fail(error as Error);
  }
}

interface ServeCommandOptions extends LogOptions, ServeFlags {
  stateDir?: string;
  printConfig: boolean;
}

/** `serve`: the flags are turned into a config (the same one a file would hold), written to a private temp file, and run. */
async function serve(options: ServeCommandOptions): Promise<void> {
  let config: ServeConfig;
  try {
    config = serveConfig(options);
  } catch (error) {
    if (error instanceof ServeFlagError) fail(error);
    throw error;
  }
  const text = `${JSON.stringify(config, null, 2)}\n`;
  if (options.printConfig) {
    process.stdout.write(`# The config these flags stand for (JSON is YAML): save it and run sni-passthrough --config FILE\n${text}`);
    return;
  }
  const directory = mkdtempSync(join(tmpdir(), 'sni-passthrough-serve-'));
  const file = join(directory, 'serve.yaml');
  writeFileSync(file, text, { mode: 0o600 });
  const cleanUp = (): void => rmSync(directory, { recursive: true, force: true });
  const bound = await runService(file, { ...options, watch: false }, cleanUp);
  // On stderr: stdout carries the log lines (JSON when not a terminal).
  process.stderr.write(serveBanner(options, config, bound, options.stateDir ?? defaultStateDirectory(process.env)));
}

const commandOutput = {
  print: (text: string) => process.stdout.write(`${text}\n`),
  fail: (line: string) => process.stderr.write(`${line}\n`),
};

const logLevelOption = (): Option =>
  new Option('--log-level <level>', 'minimum log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info');
const logFormatOption = (): Option => new Option('--log-format <format>', 'log format (default: pretty on a terminal, else json)').choices(['json', 'pretty']);

export function main(argv: readonly string[]): Promise<unknown> {
  const program: Command = new Command()
    .name('sni-passthrough')
    .description('TLS SNI passthrough proxy: routes encrypted connections by the ClientHello server name, never decrypts')
    .version(version, '-v, --version')
    .enablePositionalOptions()
    // Not requiredOption: commander would then demand it before dispatching to `check`.
    .option('-c, --config <file>', 'YAML config file (required)')
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .option('--no-watch', 'do not reload when the config file changes (SIGHUP still reloads)')
    .option('--state-dir <dir>', "where the local CA of `tls: internal` routes lives (default: the config's stateDir, else $XDG_DATA_HOME/sni-passthrough)")
    .option(
      '--workers <n>',
      'worker processes: a number or "auto" (one per CPU); wins over the config\'s workers (default: the config\'s, else 1)',
      workersFlag,
    )
    .action((options: RunCommandOptions) => {
      const config = options.config ?? program.error("error: required option '-c, --config <file>' not specified");
      void runService(config, options);
    });
  program
    .command('check')
    .description('validate a config file and print the listeners and routes it would run')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .action((options: { config: string }) => check(options.config));
  program
    .command('schema')
    .description("print the config file's JSON Schema (for editors: # yaml-language-server: $schema=...)")
    .action(async () => {
      const { configJsonSchema } = await import('./config/json-schema.js');
      process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    });
  // `route` and `diff` are for scripts: their exit status means something (as diff(1): 2 is trouble), so usage errors exit 2, not 1.
  const usageExit = (error: CommanderError): never => process.exit(error.exitCode === 0 ? 0 : 2);
  program
    .command('route')
    .description('explain where a connection for HOSTNAME would go on each listener, and why (exit 0 routed, 1 not routed, 2 error)')
    .argument('<hostname>', "the server name a client sends ('' for none)")
    .option('-c, --config <file>', 'YAML config file (default with --admin: the running config)')
    .option('--alpn <protocols>', 'ALPN protocols the client offers, comma-separated (repeatable)', (value: string, values: string[] = []) => [
      ...values,
      value,
    ])
    .option('--client <ip>', "the client's address, for allow/deny lists")
    .option('--listener <name>', 'only this listener')
    .option('--admin <url>', "the running proxy's admin endpoint: adds live backend health")
    .option('--json', 'print the decision as JSON', false)
    .exitOverride(usageExit)
    .action(async (hostname: string, options: RouteCommandOptions) => {
      const { runRouteCommand } = await import('./cli/route.js');
      process.exitCode = await runRouteCommand(hostname, { ...options, alpn: options.alpn ?? [] }, commandOutput);
    });
  program
    .command('diff')
    .description('preview a reload: what NEW.yaml changes against OLD.yaml or the running proxy (exit 0 no changes, 1 changes, 2 error)')
    .requiredOption('-c, --config <file>', 'the new config file')
    .option('--against <file>', 'the config file to compare with')
    .option('--admin <url>', "compare with the running generation, from this admin endpoint's GET /config")
    .option('--json', 'print the changes as JSON', false)
    .exitOverride(usageExit)
    .action(async (options: DiffCommandOptions) => {
      const { runDiffCommand } = await import('./cli/diff.js');
      process.exitCode = await runDiffCommand(options, commandOutput);
    });
  program
    .command('serve')
    .description('route local names to local servers without a config file: HTTPS on --listen, each --route a hostname and its backends')
    .option('--listen <address>', 'where HTTPS is served', '127.0.0.1:8443')
    .option(
      '--route <name=host:port>',
      'a hostname (or "*.suffix") and its backend(s), comma-separated (repeatable)',
      (route: string, routes: string[] = []) => [...routes, route],
    )
    .option('--terminate <internal>', 'terminate TLS with certificates from the local CA, so the backends can be plain-HTTP dev servers')
    .option('--http <address>', 'also listen for plain HTTP here and redirect it to HTTPS')
    .option('--state-dir <dir>', 'where the local CA lives (default $XDG_DATA_HOME/sni-passthrough)')
    .option('--print-config', 'print the config these flags stand for and exit', false)
    .addOption(logLevelOption())
    .addOption(logFormatOption())
    .action((options: ServeCommandOptions & { route?: string[] }) => serve({ ...options, route: options.route ?? [] }));
  program
    .command('trust')
    .description("add the local CA (used by `tls: internal` routes) to the system's and browsers' trust stores; created first if needed")
    .option('--state-dir <dir>', 'where the local CA lives', defaultStateDirectory(process.env))
    .option('--ca-dir <dir>', 'add to this OpenSSL CA directory (-CApath, curl --capath) instead of the system store')
    .option('--nss-db <dir>', "add to this NSS database instead of Chromium's and Firefox's (repeatable)", (dir: string, dirs: string[] = []) => [...dirs, dir])
    .option('--uninstall', 'remove what trust added (same flags)', false)
    .action(async (options: { stateDir: string; caDir?: string; nssDb?: string[]; uninstall: boolean }) => {
      // Loaded only for this command: a running proxy does not carry it.
      const { trust } = await import('./cli/trust.js');
      process.exitCode = await trust(options, {
        env: process.env,
        isRoot: process.getuid?.() === 0,
        print: (line) => process.stdout.write(`${line}\n`),
        fail: (line) => process.stderr.write(`${line}\n`),
      });
    });
  program
    .command('status')
    .description("show a running proxy's listeners, backends (health, drain) and open connections per route, from its admin endpoint")
    .requiredOption('--admin <url>', 'the admin endpoint: http://127.0.0.1:9900 or 127.0.0.1:9900 (admin.listen in the config)')
    .option('--json', 'print the report as JSON', false)
    .action(async (options: { admin: string; json: boolean }) => {
      const { fetchStatus, renderStatus } = await import('./cli/status.js');
      try {
        const report = await fetchStatus(options.admin);
        process.stdout.write(options.json ? `${JSON.stringify(report, null, 2)}\n` : renderStatus(report));
      } catch (error) {
        if (error instanceof AdminClientError) fail(error);
        throw error;
      }
    });
  return program.parseAsync(argv);
}
