// Builds dist/: one bundle per entry point with the modules of lib/ it runs,
// and one bundle per dependency in dist/vendor/. A process that loads a few
// files instead of about 120 (lib/ and its dependencies) resolves almost no
// module paths at start: resolving them was hot enough for V8 to optimize the
// resolver, which alone cost about 5 MiB of resident memory, and the modules'
// own records cost 2 more. The dependencies stay in files of their own so
// that each bundle's source map names only its own sources: test coverage of
// the command (run by the end-to-end tests) maps back to lib/, and a file
// whose map names anything under node_modules/ is left out of it.
// Type checking is tsc's job (npm run build runs it first).
import { rmSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));

// Where each entry point runs: the command (dist/cli.js), the thread that reads
// config files (new URL('./loader-worker.js') from the command), and the
// worker processes (cluster's exec, ./worker-main.js from the command).
const entryPoints = {
  cli: 'lib/cli.ts',
  'loader-worker': 'lib/config/loader-worker.ts',
  'worker-main': 'lib/runtime/worker-main.ts',
};

// Bundled into dist/vendor/. The other dependencies load from node_modules
// only when used, which bundled they would not: pino-pretty for --log-format
// pretty, prom-client at the first metrics scrape, yaml for a config error's
// position.
const vendored = ['chokidar', 'commander', 'js-yaml', 'pino'];

const common = {
  absWorkingDir: root,
  bundle: true,
  platform: 'node',
  target: 'node20',
  format: 'esm',
  sourcemap: 'linked',
  logLevel: 'warning',
};

/** Resolves a vendored dependency to its bundle, beside the entry points' bundles. */
const useVendorBundles = {
  name: 'vendor-bundles',
  setup(builder) {
    const filter = new RegExp(`^(${vendored.join('|')})$`);
    builder.onResolve({ filter }, ({ path }) => ({ path: `./vendor/${path}.js`, external: true }));
  },
};

rmSync(new URL('../dist/', import.meta.url), { recursive: true, force: true });

for (const name of vendored) {
  // Re-exported by name: an ES module bundle of a CommonJS package has only the exports it names.
  const module = await import(name);
  const names = Object.keys(module).filter((key) => key !== 'default' && /^[A-Za-z_$][\w$]*$/.test(key));
  const defaultExport = 'default' in module ? `export { default } from '${name}';\n` : '';
  await build({
    ...common,
    stdin: { contents: `export { ${names.join(', ')} } from '${name}';\n${defaultExport}`, resolveDir: root, sourcefile: `vendor/${name}.js` },
    outfile: `dist/vendor/${name}.js`,
    // The CommonJS among them call require(), which an ES module has to make.
    banner: { js: "import { createRequire as __createRequire } from 'node:module'; const require = __createRequire(import.meta.url);" },
  });
}

await build({
  ...common,
  entryPoints,
  outdir: 'dist',
  external: ['pino-pretty', 'prom-client', 'yaml'],
  plugins: [useVendorBundles],
});
