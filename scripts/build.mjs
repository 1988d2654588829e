// Builds dist/: one bundle per entry point, each with the modules and
// dependencies it runs. A process that loads one file instead of about 120
// (lib/ and its dependencies) resolves no module paths at start: resolving
// them was hot enough for V8 to optimize the resolver, which alone cost about
// 5 MiB of resident memory, and the modules' own records cost 2 more.
// Type checking is tsc's job (npm run typecheck, run first by npm run build).
import { rmSync } from 'node:fs';
import { build } from 'esbuild';

const root = new URL('..', import.meta.url);
const dist = new URL('dist/', root);

// Entry points, and where they run: the command (dist/cli.js), the thread that
// reads config files (new URL('./loader-worker.js') from the command), and
// the worker processes (cluster's exec, ./worker-main.js from the command).
const entryPoints = {
  cli: 'lib/cli.ts',
  'loader-worker': 'lib/config/loader-worker.ts',
  'worker-main': 'lib/runtime/worker-main.ts',
};

rmSync(dist, { recursive: true, force: true });
await build({
  absWorkingDir: new URL('.', root).pathname,
  entryPoints,
  outdir: 'dist',
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  // Loaded only when used, from node_modules: pino-pretty for --log-format
  // pretty, prom-client at the first metrics scrape, yaml for a config error's
  // position. Bundled, they would be parsed at every start.
  external: ['pino-pretty', 'prom-client', 'yaml'],
  // The dependencies written as CommonJS (commander, pino) call require(); in
  // an ES module it has to be made.
  banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  logLevel: 'warning',
});
