import { createRequire } from 'node:module';
import { Command, Option } from 'commander';
import { ConfigError } from './errors.js';
import { describeConfig } from './config/describe.js';
import { configJsonSchema } from './config/json-schema.js';
import { loadConfigFile } from './config/loader.js';
import { defaultStateDirectory } from './tls/state-directory.js';
import { createLogger, type LogFormat } from './observe/logger.js';
import { ProxyService } from './runtime/service.js';

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

interface RunCommandOptions {
  config?: string;
  logLevel: string;
  logFormat?: LogFormat;
  watch: boolean;
  stateDir?: string;
}

async function run(options: RunCommandOptions & { config: string }): Promise<void> {
  const format = options.logFormat ?? (process.stdout.isTTY ? 'pretty' : 'json');
  const { logger, writeLine, flush } = await createLogger({ level: options.logLevel, format, env: process.env });
  const exit = (code: number): void => {
    void flush().then(() => process.exit(code));
  };
  try {
    await new ProxyService({
      configFile: options.config,
      watch: options.watch,
      logger,
      writeLine,
      env: process.env,
      stateDirectory: options.stateDir ?? null,
      exit,
    }).start();
  } catch (error) {
    await flush();
    // Config and bind errors, or an inherited socket no listener claims: one line, exit 1.
    fail(error as Error);
  }
}

export function main(argv: readonly string[]): Promise<unknown> {
  const program: Command = new Command()
    .name('sni-passthrough')
    .description('TLS SNI passthrough proxy: routes encrypted connections by the ClientHello server name, never decrypts')
    .version(version, '-v, --version')
    .enablePositionalOptions()
    // Not requiredOption: commander would then demand it before dispatching to `check`.
    .option('-c, --config <file>', 'YAML config file (required)')
    .addOption(new Option('--log-level <level>', 'minimum log level').choices(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'))
    .addOption(new Option('--log-format <format>', 'log format (default: pretty on a terminal, else json)').choices(['json', 'pretty']))
    .option('--no-watch', 'do not reload when the config file changes (SIGHUP still reloads)')
    .option('--state-dir <dir>', "where the local CA of `tls: internal` routes lives (default: the config's stateDir, else $XDG_DATA_HOME/sni-passthrough)")
    .action((options: RunCommandOptions) => {
      const config = options.config ?? program.error("error: required option '-c, --config <file>' not specified");
      return run({ ...options, config });
    });
  program
    .command('check')
    .description('validate a config file and print the listeners and routes it would run')
    .requiredOption('-c, --config <file>', 'YAML config file')
    .action((options: { config: string }) => check(options.config));
  program
    .command('schema')
    .description("print the config file's JSON Schema (for editors: # yaml-language-server: $schema=...)")
    .action(() => {
      process.stdout.write(`${JSON.stringify(configJsonSchema(), null, 2)}\n`);
    });
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
  return program.parseAsync(argv);
}
