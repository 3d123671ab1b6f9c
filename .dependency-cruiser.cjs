// The layering of src/, checked in CI (`npm run check:layers`). Each folder is
// one stage; a folder imports only the folders named in its `may` list (and
// itself), so arrows point down and there are no cycles. This file is the
// rule book: change the layering here, with a reason in docs/architecture.md.
//
//   cli                 the command line: puts everything together
//   daemon              the live pipeline's lifecycle and wiring
//   server   sync       the baseline server; the endpoint's side of it
//   report              outbox and sinks
//   detect              pure scoring: eligibility, tiers, dedup, sightings rules
//   enrich              what a connection is: process, image, signer, injection, DNS name
//   sources             where events come from: eBPF, /proc polling, log replay
//   baseline            the baseline file format shared by endpoint, CLI and server
//   config              the config language and every default
//   model               records, alerts and their renderings, addresses, naming rules
//   common              log, backoff, secrets, TLS files, /proc, SQLite, caches
const below = {
  common: [],
  model: ['common'],
  config: ['model', 'common'],
  baseline: ['config', 'model', 'common'],
  sources: ['config', 'model', 'common'],
  enrich: ['sources', 'config', 'model', 'common'],
  detect: ['baseline', 'config', 'model', 'common'],
  report: ['config', 'model', 'common'],
  sync: ['baseline', 'config', 'model', 'common'],
  server: ['baseline', 'config', 'model', 'common'],
  daemon: ['sync', 'report', 'detect', 'enrich', 'sources', 'baseline', 'config', 'model', 'common'],
  cli: ['daemon', 'server', 'sync', 'report', 'detect', 'enrich', 'sources', 'baseline', 'config', 'model', 'common'],
};

const layers = Object.keys(below);

module.exports = {
  forbidden: [
    {
      name: 'no-cycle',
      severity: 'error',
      comment: 'A cycle ties stages together: break it by moving the shared piece down.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'unknown-stage',
      severity: 'error',
      comment: 'Every file of src/ sits in one of the stage folders named in this file.',
      from: { path: '^src/', pathNot: `^src/(${layers.join('|')})/` },
      to: {},
    },
    ...layers.map((layer) => ({
      name: `layers-${layer}`,
      severity: 'error',
      comment: `${layer}/ may import only ${below[layer].length === 0 ? 'node and npm modules' : below[layer].join(', ')} (arrows point down).`,
      from: { path: `^src/${layer}/` },
      to: { path: '^src/', pathNot: `^src/(${[layer, ...below[layer]].join('|')})/` },
    })),
    {
      name: 'src-not-test',
      severity: 'error',
      comment: 'The product does not import tests or benchmarks.',
      from: { path: '^src/' },
      to: { path: '^(test|bench)/' },
    },
    {
      name: 'not-to-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to nothing is a broken build.',
      from: {},
      to: { couldNotResolve: true },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: { exportsFields: ['exports'], conditionNames: ['import', 'require', 'node', 'default'], extensions: ['.ts', '.js'] },
  },
};
