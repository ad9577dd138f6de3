// dependency-cruiser: the allowed import directions (docs/DESIGN.md), checked by `npm run deps:check`.
//
//   protocol/  the wire contract: imports nothing of ours, and of the packages only zod
//   machines/  the statecharts: protocol/ and each other, xstate and zod; no IO, no actors
//   lib/       the plumbing the actors use (bus, NATS, durability, model client, sandbox, rules, git,
//              rollouts, telemetry): protocol/ and machines/ below it, never actors/ or cli/
//   actors/    the actors (session host, tasks, sub-agents, tools, gateway, jobs): never cli/
//   cli/       the command line and the inspector, on top of everything
//   testing/   the test kit shipped as troupe/testing (the fake model server); never test code
//
// Type-only imports count: a type that crosses a boundary is a dependency all the same.
/** @type {import('dependency-cruiser').IConfiguration} */
module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'Modules import each other in a circle: the circle is one module that pretends to be several. Break it by moving what both need into one place.',
      from: {},
      to: { circular: true },
    },
    {
      name: 'no-circular-folders',
      severity: 'error',
      comment:
        'Folders import each other in a circle (tools → sandbox → tools): neither can be understood, or moved, without the other. Move what both need below both.',
      scope: 'folder',
      from: {},
      to: { circular: true },
    },
    {
      name: 'protocol-imports-only-zod',
      severity: 'error',
      comment: 'protocol/ is the wire contract: it depends on nothing of ours and on no package but zod.',
      from: { path: '^protocol/' },
      to: { pathNot: ['^protocol/', '^node_modules/zod/'] },
    },
    {
      name: 'machines-import-only-protocol',
      severity: 'error',
      comment: 'machines/ holds the statecharts, whose IO is injected: they import protocol/, each other, xstate and zod, nothing else.',
      from: { path: '^machines/' },
      to: { pathNot: ['^machines/', '^protocol/', '^node_modules/(xstate|zod)/'] },
    },
    {
      name: 'lib-imports-no-actor',
      severity: 'error',
      comment: 'lib/ is the plumbing the actors use: it knows no actor and no command, so it can be read and tested on its own.',
      from: { path: '^lib/' },
      to: { path: '^(actors|cli)/' },
    },
    {
      name: 'actors-import-no-cli',
      severity: 'error',
      comment: 'The actors run under any front end (library, app-server, worker, MCP): they never import the command line.',
      from: { path: '^actors/' },
      to: { path: '^cli/' },
    },
    {
      name: 'no-test-code-in-the-runtime',
      severity: 'error',
      comment:
        'The runtime (index.ts, protocol/, machines/, actors/) and the shipped test kit (testing/) must not import test code: test/ is not what the package ships.',
      from: { path: '^(index\\.ts$|protocol/|machines/|lib/|actors/|cli/|testing/)' },
      to: { path: '^test/' },
    },
    {
      name: 'no-unresolvable',
      severity: 'error',
      comment: 'An import that resolves to no file (a typo, or a module that moved).',
      from: {},
      to: { couldNotResolve: true },
    },
    {
      name: 'no-dev-dependencies-in-the-runtime',
      severity: 'error',
      comment: 'The runtime must not import a devDependency: an installed package would not have it.',
      from: { path: '^(index\\.ts$|protocol/|machines/|lib/|actors/|cli/)' },
      to: { dependencyTypes: ['npm-dev'] },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    exclude: { path: '^(dist|node_modules)/' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default', 'types'],
      mainFields: ['module', 'main', 'types', 'typings'],
    },
    reporterOptions: {
      text: { highlightFocused: true },
    },
  },
};
